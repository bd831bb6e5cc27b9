//! `ps`: the processes of a container, from its cgroup. As runc, the table comes from the host's
//! `ps` (default `-ef`) filtered to the cgroup's pids, and the JSON is the array of host pids.

use crate::error::{Context, Error, Result};
use crate::state::ContainerDir;
use std::path::Path;
use std::process::Command;

/// The host pids of every process in the container's cgroup (a rootless container without
/// one: in its pid namespace), sorted.
pub fn pids(root: &Path, id: &str) -> Result<Vec<i32>> {
    let dir = ContainerDir::open(root, id)?;
    let rec = dir.load()?;
    super::processes(&rec)
}

/// runc's `ps --format json`: the pids as a JSON array (`null` when empty, as runc prints).
pub fn json(pids: &[i32]) -> String {
    if pids.is_empty() {
        return "null".into();
    }
    serde_json::to_string(pids).expect("pids serialize")
}

/// Runs the host's `ps` with `args` (`-ef` if none) and keeps its header and the lines whose
/// PID column names one of `pids`.
pub fn table(pids: &[i32], args: &[String]) -> Result<String> {
    let default = ["-ef".to_string()];
    let args = if args.is_empty() { &default[..] } else { args };
    let out = Command::new("ps")
        .args(args)
        .output()
        .context(|| "running ps (install procps if it is missing)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(Error::invalid(format!(
            "ps {} failed ({}): {}; check the ps options",
            args.join(" "),
            out.status,
            err.lines().next().unwrap_or("").trim()
        )));
    }
    filter(&text, pids)
}

/// Keeps the header of `ps` output and the lines whose PID column is in `pids`.
fn filter(text: &str, pids: &[i32]) -> Result<String> {
    let mut lines = text.lines();
    let header = lines.next().unwrap_or("");
    let column = header
        .split_whitespace()
        .position(|f| f == "PID")
        .ok_or_else(|| {
            Error::invalid(format!(
                "ps output has no PID column (header {header:?}): include pid in the ps format, e.g. -o pid,cmd"
            ))
        })?;
    let mut out = format!("{header}\n");
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let field = line.split_whitespace().nth(column).unwrap_or("");
        let pid: i32 = field.parse().map_err(|_| {
            Error::invalid(format!(
                "cannot parse the PID column {field:?} of ps output line {line:?}: use options that print one process per line"
            ))
        })?;
        if pids.contains(&pid) {
            out.push_str(line);
            out.push('\n');
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_header_and_matching_pids() {
        let text = "UID PID PPID C STIME TTY TIME CMD\nroot 1 0 0 10:00 ? 00:00:01 init\nroot 42 1 0 10:00 ? 00:00:00 sleep 5\n";
        assert_eq!(
            filter(text, &[42]).unwrap(),
            "UID PID PPID C STIME TTY TIME CMD\nroot 42 1 0 10:00 ? 00:00:00 sleep 5\n"
        );
        assert!(filter("UID CMD\nroot x\n", &[1]).is_err());
    }

    #[test]
    fn empty_json_is_null_like_runc() {
        assert_eq!(json(&[]), "null");
        assert_eq!(json(&[3, 4]), "[3,4]");
    }
}
