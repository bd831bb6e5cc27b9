//! Outbound traffic of instances: one nftables table owned by the agent ([`TABLE`]) whose
//! postrouting chain masquerades what leaves the cluster CIDR. The table is written with the
//! `nft` binary in its JSON syntax (`nft -j -f -`): one atomic transaction that creates,
//! flushes and refills the table, so a re-apply never leaves half a rule set.

use ipnet::Ipv4Net;
use serde_json::{json, Value};
use std::io::Write;
use std::process::{Command, Stdio};

/// The agent's table (family `ip`).
pub const TABLE: &str = "mini_shim";

fn table() -> Value {
    json!({"family": "ip", "name": TABLE})
}

/// Runs one nft JSON transaction.
pub(crate) fn nft(commands: Vec<Value>) -> Result<(), String> {
    let input = serde_json::to_vec(&json!({"nftables": commands})).expect("JSON");
    let mut child = Command::new("nft")
        .args(["-j", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run nft ({e}): install the Debian package nftables"))?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(&input)
        .map_err(|e| format!("writing to nft: {e}"))?;
    let out = child
        .wait_with_output()
        .map_err(|e| format!("waiting for nft: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "nft: {}",
            String::from_utf8_lossy(&out.stderr)
                .trim()
                .replace('\n', " ")
        ))
    }
}

/// Makes the table masquerade traffic from `cluster` to anywhere outside it.
pub fn apply(cluster: Ipv4Net) -> Result<(), String> {
    let prefix =
        json!({"prefix": {"addr": cluster.network().to_string(), "len": cluster.prefix_len()}});
    let field = |f: &str| json!({"payload": {"protocol": "ip", "field": f}});
    nft(vec![
        json!({"add": {"table": table()}}),
        json!({"flush": {"table": table()}}),
        json!({"add": {"chain": {
            "family": "ip", "table": TABLE, "name": "postrouting",
            "type": "nat", "hook": "postrouting", "prio": 100, "policy": "accept"}}}),
        json!({"add": {"rule": {
        "family": "ip", "table": TABLE, "chain": "postrouting",
        "expr": [
            {"match": {"op": "==", "left": field("saddr"), "right": prefix}},
            {"match": {"op": "!=", "left": field("daddr"), "right": prefix}},
            {"masquerade": null},
        ]}}}),
    ])
}

/// Removes the table (absent is fine).
pub fn remove() -> Result<(), String> {
    // Adding first makes the delete succeed whether or not the table existed.
    nft(vec![
        json!({"add": {"table": table()}}),
        json!({"delete": {"table": table()}}),
    ])
}
