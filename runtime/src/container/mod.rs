//! The lifecycle operations, one module each, as the CLI names them.

pub mod create;
pub mod delete;
pub mod events;
pub mod exec;
pub mod kill;
pub mod list;
pub mod pause;
pub mod ps;
pub mod resume;
pub mod run;
pub mod start;
pub mod state;
pub mod sub_cgroup;
pub mod update;

use crate::error::{Error, Result};
use crate::state::{Record, Status};
use mini_cgroups::Manager;

/// Runs the poststart hooks of a container that just started (failures are warnings).
pub(crate) fn run_poststart(rec: &Record) {
    if let Some(h) = rec.hooks.as_ref().and_then(|h| h.poststart().as_ref()) {
        crate::hooks::run_warn("poststart", h, &rec.hook_state(Status::Running));
    }
}

/// Reopens the cgroup recorded for a container; an error if it has none.
fn cgroup(rec: &Record) -> Result<Box<dyn Manager>> {
    let config = rec.cgroup.as_ref().ok_or_else(|| {
        Error::invalid(format!(
            "container {:?} has no cgroup recorded in its state: recreate it with this runtime",
            rec.id
        ))
    })?;
    Ok(mini_cgroups::open(config)?)
}
