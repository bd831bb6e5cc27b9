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

/// runc's table: ID, PID, STATUS, BUNDLE, CREATED, OWNER, laid out as Go's tabwriter does it
/// for runc (each column but the last as wide as its widest cell plus 3, at least 12).
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
        let state = r.oci_state(*s);
        rows.push([
            r.id.clone(),
            state.pid.to_string(),
            s.to_string(),
            r.bundle.display().to_string(),
            state.created,
            OWNER.into(),
        ]);
    }
    let widths: Vec<usize> = (0..5)
        .map(|c| {
            rows.iter()
                .map(|r| r[c].len() + 3)
                .max()
                .unwrap_or(0)
                .max(12)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        for (cell, width) in row.iter().zip(&widths) {
            out.push_str(&format!("{cell:<width$}"));
        }
        out.push_str(&row[5]);
        out.push('\n');
    }
    out
}

/// The owner `list` names: the runtime runs as root.
const OWNER: &str = "root";

/// runc's `list --format json`: an array of state objects (`null` when empty, as runc prints).
pub fn json(items: &[(Record, Status)]) -> String {
    if items.is_empty() {
        return "null".into();
    }
    let states: Vec<_> = items
        .iter()
        .map(|(r, s)| crate::state::OciState {
            owner: OWNER,
            ..r.oci_state(*s)
        })
        .collect();
    serde_json::to_string(&states).expect("states serialize")
}
