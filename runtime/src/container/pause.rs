//! `pause`: freeze every process of a running container with the cgroup freezer.

use crate::error::{Error, Result};
use crate::state::{ContainerDir, Status};
use std::path::Path;

/// Pauses the running container `id`; returns once the kernel reports the cgroup frozen.
pub fn pause(root: &Path, id: &str) -> Result<()> {
    let dir = ContainerDir::open(root, id)?;
    let rec = dir.load()?;
    let status = rec.status(&dir);
    if status != Status::Running {
        return Err(Error::invalid(format!(
            "cannot pause container {id:?}: it is {status}, and only a running container can be paused"
        )));
    }
    Ok(super::cgroup(&rec)?.freeze()?)
}
