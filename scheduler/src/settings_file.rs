//! The cluster-wide settings `mini-sched init` writes beside the store (`network.json`,
//! `services.json`): JSON files read once at daemon start. A file that is missing means a
//! cluster made before the feature existed, which gets the defaults.

use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::Path;

/// Reads `name` in `state_dir`, or the defaults when the cluster has no such file.
pub fn load<T: DeserializeOwned + Default>(state_dir: &Path, name: &str) -> Result<T, String> {
    let path = state_dir.join(name);
    match mini_run::input_file::read(&path, mini_run::input_file::JSON_LIMIT) {
        Ok(text) => {
            serde_json::from_slice(&text).map_err(|e| format!("{} is corrupt: {e}", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(format!("reading {}: {e}", path.display())),
    }
}

/// Writes `value` as `name` into (a new cluster's) `state_dir`.
pub fn save<T: Serialize>(value: &T, state_dir: &Path, name: &str) -> std::io::Result<()> {
    let text = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    std::fs::write(state_dir.join(name), text)
}
