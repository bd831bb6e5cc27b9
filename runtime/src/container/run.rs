//! `run`: create and start in one step. In the foreground the runtime stays the init's parent:
//! it forwards signals, reaps the init with waitpid (a blocked SIGCHLD stays pending, so an exit
//! is never missed however fast it comes), removes the container and returns its exit status.

use super::create::{self, CreateOptions, StartMode};
use super::delete;
use crate::error::Result;
use crate::logging::debug;
use crate::process::signals;
use crate::state::ContainerDir;
use crate::terminal;
use std::path::Path;

/// Runs the container; returns the exit status `run` should exit with. With `keep`, a
/// foreground run leaves the stopped container for `state` and `delete` (runc's `--keep`).
pub fn run(root: &Path, opts: &CreateOptions, detach: bool, keep: bool) -> Result<i32> {
    let forwarded = signals::forwarded();
    if !detach {
        // Blocked before the clone: nothing sent from now on is lost or handled by default.
        signals::block(&forwarded)?;
    }
    let opts = CreateOptions {
        foreground: !detach,
        ..opts.clone()
    };
    let created = create::create(root, &opts, StartMode::Immediately)?;
    // Other commands (state, kill, exec) must reach the container while it runs.
    drop(created.dir);
    super::run_poststart(&created.record);
    if detach {
        debug(&format!(
            "run {}: detached from init {}",
            opts.id, created.pid
        ));
        return Ok(0);
    }
    debug(&format!(
        "run {}: waiting for init {}",
        opts.id, created.pid
    ));
    let status = match created.console {
        Some(ours) => terminal::foreground(ours, created.pid, &forwarded)?,
        None => signals::wait_forwarding(created.pid, &forwarded, None)?,
    };
    debug(&format!(
        "run {}: the process exited with status {status}",
        opts.id
    ));
    // Unless someone deleted it meanwhile, the container goes with its process.
    if keep {
        return Ok(status);
    }
    if let Ok(dir) = ContainerDir::open(root, &opts.id) {
        delete::destroy(dir, &created.record)?;
    }
    Ok(status)
}
