//! `list`: every container under the root, as a table or as runc's JSON.

use crate::error::Result;
use crate::state::{list_ids, ContainerDir, Record, Status};
use std::path::Path;

/// Lists the containers with their status. Directories that vanish or hold no state (a create
/// in progress) are skipped.
pub fn list(root: &Path) -> Result<Vec<(Record, Status)>> {
    let mut out = Vec::new();
    for id in list_ids(root)? {
        let Ok(dir) = ContainerDir::open(root, &id) else {
            continue;
        };
        if let Ok(rec) = dir.load() {
            let status = rec.status(&dir);
            out.push((rec, status));
        }
    }
    Ok(out)
}

/// runc's table: ID, PID, STATUS, BUNDLE, CREATED, OWNER.
pub fn table(items: &[(Record, Status)]) -> String {
    let mut rows = vec![[
        "ID".to_string(),
        "PID".into(),
        "STATUS".into(),
        "BUNDLE".into(),
        "CREATED".into(),
        "OWNER".into(),
    ]];
    for (r, s) in items {
        let pid = if *s == Status::Stopped { 0 } else { r.pid };
        rows.push([
            r.id.clone(),
            pid.to_string(),
            s.to_string(),
            r.bundle.display().to_string(),
            r.created.clone(),
            "root".into(),
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, cell)| {
                if i == 5 {
                    cell.clone()
                } else {
                    format!("{cell:<w$}", w = widths[i] + 3)
                }
            })
            .collect();
        out.push_str(line.concat().trim_end());
        out.push('\n');
    }
    out
}

/// runc's `list --format json`: an array of state objects (`null` when empty, as runc prints).
pub fn json(items: &[(Record, Status)]) -> String {
    if items.is_empty() {
        return "null".into();
    }
    let states: Vec<_> = items.iter().map(|(r, s)| r.oci_state(*s)).collect();
    serde_json::to_string(&states).expect("states serialize")
}
