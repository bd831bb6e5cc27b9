//! `state`: runc's state JSON of one container.

use crate::error::Result;
use crate::state::ContainerDir;
use std::path::Path;

/// The state JSON of the container `id`, as runc prints it.
pub fn state(root: &Path, id: &str) -> Result<String> {
    let dir = ContainerDir::open(root, id)?;
    let rec = dir.load()?;
    let status = rec.status(&dir);
    Ok(serde_json::to_string_pretty(&rec.oci_state(status)).expect("state serializes"))
}
