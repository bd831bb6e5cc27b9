//! `resume`: thaw a paused container.

use crate::error::{Error, Result};
use crate::state::{ContainerDir, Status};
use std::path::Path;

/// Resumes the paused container `id`.
pub fn resume(root: &Path, id: &str) -> Result<()> {
    let dir = ContainerDir::open(root, id)?;
    let rec = dir.load()?;
    let status = rec.status(&dir);
    if status != Status::Paused {
        return Err(Error::invalid(format!(
            "cannot resume container {id:?}: it is {status}, and only a paused container can be resumed"
        )));
    }
    Ok(super::cgroup(&rec)?.thaw()?)
}
