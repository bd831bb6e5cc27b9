//! mini-usage's per-container numbers for a busy container run with mini-run equal what the
//! container's cgroup files say. The container is paused (frozen) while comparing, so its
//! counters stand still. Runs on this host (cgroup v1) and in the test VM (cgroup v2), where
//! the files differ: the expected values are read here without mini-cgroups, from the paths in
//! /proc/PID/cgroup.

use mini_cgroups::{CgroupConfig, Version};
use mini_tests::{cgroup_dir, cgroup_version, unique, wait_until, Bundle, Runtime};
use mini_usage::ContainerUsage;
use serde_json::json;
use std::time::Duration;

/// Generous: the VM is emulated and slow.
const LONG: Duration = Duration::from_secs(180);
const MEMORY_LIMIT: u64 = 64 << 20;

/// A number from a cgroup file: a plain value, or `key value` from a flat-keyed file.
fn read(pid: i32, controller: &str, file: &str, key: Option<&str>) -> Option<u64> {
    let text = std::fs::read_to_string(cgroup_dir(pid, controller).join(file)).ok()?;
    let value = match key {
        None => text.trim().to_string(),
        Some(k) => text.lines().find_map(|l| {
            let (name, v) = l.split_once(' ')?;
            (name == k).then(|| v.trim().to_string())
        })?,
    };
    Some(if value == "max" {
        u64::MAX
    } else {
        value.parse().expect("a number")
    })
}

/// What the files say, in mini-usage's units (`None` for unlimited or untracked).
fn expected(pid: i32) -> ContainerUsage {
    let limit = |v: Option<u64>| v.filter(|v| *v > 0 && *v < 1 << 62);
    match cgroup_version() {
        Version::V1 => ContainerUsage {
            cpu_usage_ns: read(pid, "cpuacct", "cpuacct.usage", None).unwrap(),
            cpu_periods: read(pid, "cpu", "cpu.stat", Some("nr_periods")).unwrap(),
            cpu_throttled_periods: read(pid, "cpu", "cpu.stat", Some("nr_throttled")).unwrap(),
            cpu_throttled_ns: read(pid, "cpu", "cpu.stat", Some("throttled_time")).unwrap(),
            memory_usage_bytes: read(pid, "memory", "memory.usage_in_bytes", None).unwrap(),
            memory_peak_bytes: read(pid, "memory", "memory.max_usage_in_bytes", None),
            memory_limit_bytes: limit(read(pid, "memory", "memory.limit_in_bytes", None)),
            pids: read(pid, "pids", "pids.current", None).unwrap(),
            pids_limit: limit(read(pid, "pids", "pids.max", None)),
            ..Default::default()
        },
        Version::V2 => ContainerUsage {
            cpu_usage_ns: read(pid, "", "cpu.stat", Some("usage_usec")).unwrap() * 1000,
            cpu_periods: read(pid, "", "cpu.stat", Some("nr_periods")).unwrap(),
            cpu_throttled_periods: read(pid, "", "cpu.stat", Some("nr_throttled")).unwrap(),
            cpu_throttled_ns: read(pid, "", "cpu.stat", Some("throttled_usec")).unwrap() * 1000,
            memory_usage_bytes: read(pid, "", "memory.current", None).unwrap(),
            memory_peak_bytes: read(pid, "", "memory.peak", None),
            memory_limit_bytes: limit(read(pid, "", "memory.max", None)),
            pids: read(pid, "", "pids.current", None).unwrap(),
            pids_limit: limit(read(pid, "", "pids.max", None)),
            ..Default::default()
        },
    }
}

/// The fields [`expected`] knows.
fn comparable(u: &ContainerUsage) -> ContainerUsage {
    ContainerUsage {
        cpu_usage_ns: u.cpu_usage_ns,
        cpu_periods: u.cpu_periods,
        cpu_throttled_periods: u.cpu_throttled_periods,
        cpu_throttled_ns: u.cpu_throttled_ns,
        memory_usage_bytes: u.memory_usage_bytes,
        memory_peak_bytes: u.memory_peak_bytes,
        memory_limit_bytes: u.memory_limit_bytes,
        pids: u.pids,
        pids_limit: u.pids_limit,
        ..Default::default()
    }
}

#[test]
fn container_usage_equals_the_cgroup_files_of_a_busy_container() {
    let rt = Runtime::new();
    let id = unique("usage");
    let bundle = Bundle::new(&["sh", "-c", "while :; do :; done"]).edit(|c| {
        c["linux"]["resources"] = json!({
            "memory": {"limit": MEMORY_LIMIT},
            "pids": {"limit": 32},
            "cpu": {"quota": 20000, "period": 100000},
        });
    });
    rt.detached(&["run", "--detach", "--bundle", bundle.path_str(), &id]);
    let pid = rt.state(&id)["pid"].as_i64().unwrap() as i32;
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(rt.root().join(&id).join("state.json")).unwrap())
            .unwrap();
    let cgroup: CgroupConfig = serde_json::from_value(record["cgroup"].clone()).unwrap();

    // A busy loop under a 20% quota gets throttled.
    let mut usage = ContainerUsage::default();
    let throttled = wait_until(LONG, || {
        usage = ContainerUsage::read(&cgroup).unwrap();
        usage.cpu_throttled_periods > 0
    });
    assert!(
        throttled,
        "a busy container under a cpu quota was never throttled: {usage:?}"
    );

    rt.ok(&["pause", &id]);
    // Frozen, nothing charges the cgroup; the kernel may still settle memory counters, so
    // compare against a file snapshot that stayed the same around the read.
    let mut last = None;
    let agreed = wait_until(LONG, || {
        let before = expected(pid);
        let read = ContainerUsage::read(&cgroup).unwrap();
        let after = expected(pid);
        last = Some((before, read));
        before == after && comparable(&read) == before
    });
    let (files, read) = last.unwrap();
    assert!(agreed, "mini-usage {read:#?}\n!= cgroup files {files:#?}");
    assert!(
        read.cpu_usage_ns > 0 && read.cpu_user_ns + read.cpu_system_ns > 0,
        "{read:?}"
    );
    assert_eq!(read.memory_limit_bytes, Some(MEMORY_LIMIT));
    assert_eq!(read.pids_limit, Some(32));
    assert!(read.pids >= 1, "{read:?}");
    assert!(read.memory_working_set_bytes <= read.memory_usage_bytes);
    assert_eq!(read.oom_kills, 0);

    rt.ok(&["resume", &id]);
    rt.ok(&["delete", "--force", &id]);
}
