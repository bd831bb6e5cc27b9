//! cgroup v2 behaviour. Runs on a pure v2 host, and (for what needs no controllers: create,
//! freeze, kill, processes, device programs) on a hybrid host's unified tree; tests needing
//! a controller the tree lacks are skipped with a note.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::thread;
use std::time::Duration;

use common::{proc_state, read, resources, v2, wait_state};
use mini_cgroups::{attached_device_programs, default_allowed_devices, Error, Version};
use serde_json::json;

#[test]
fn create_and_destroy_leave_nothing_behind_on_v2() {
    let Some(g) = v2("create_destroy_v2", &[]) else {
        return;
    };
    let h = &g.mgr.config().hierarchies[0];
    assert_eq!(g.mgr.version(), Version::V2);
    assert!(h.dir.is_dir());
    assert_eq!(h.created.len(), 2);
    let top = h.created[0].clone();
    g.mgr.destroy().unwrap();
    assert!(!top.exists(), "{} removed", top.display());
    g.mgr.destroy().unwrap();
}

#[test]
fn create_refuses_cgroup_with_processes_on_v2() {
    let Some(mut g) = v2("refuse_v2", &[]) else {
        return;
    };
    let pid = g.add_sleeper();
    let mut again = mini_cgroups::open(g.mgr.config()).unwrap();
    match again.create() {
        Err(Error::NotEmpty { pids, .. }) => assert_eq!(pids, vec![pid]),
        other => panic!("expected NotEmpty, got {other:?}"),
    }
}

#[test]
fn processes_and_proc_cgroup_agree_on_v2() {
    let Some(mut g) = v2("procs_v2", &[]) else {
        return;
    };
    let pid = g.add_sleeper();
    assert_eq!(g.mgr.processes().unwrap(), vec![pid]);
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let line = format!("0::{}", g.mgr.path().display());
    assert!(text.lines().any(|l| l == line), "{line} in {text}");
}

#[test]
fn freeze_and_thaw_a_real_process_on_v2() {
    let Some(mut g) = v2("freeze_v2", &[]) else {
        return;
    };
    let pid = g.add_sleeper();
    assert!(!g.mgr.is_frozen().unwrap());
    g.mgr.freeze().unwrap();
    assert!(g.mgr.is_frozen().unwrap());
    assert_eq!(read(&g, "", "cgroup.freeze"), "1");
    assert!(read(&g, "", "cgroup.events").contains("frozen 1"));
    assert_ne!(proc_state(pid), 'R');
    g.mgr.thaw().unwrap();
    assert!(!g.mgr.is_frozen().unwrap());
    assert_eq!(wait_state(pid, 'S'), 'S', "running again after thaw");
}

#[test]
fn kill_all_kills_real_processes_on_v2() {
    let Some(mut g) = v2("kill_v2", &[]) else {
        return;
    };
    g.add_sleeper();
    g.add_sleeper();
    // SIGTERM goes through freeze/signal/thaw; SIGKILL through cgroup.kill when present.
    g.mgr.kill_all(libc::SIGTERM).unwrap();
    for mut c in std::mem::take(&mut g.children) {
        assert_eq!(c.wait().unwrap().signal(), Some(libc::SIGTERM));
    }
    assert!(!g.mgr.is_frozen().unwrap());
    g.add_sleeper();
    g.mgr.kill_all(libc::SIGKILL).unwrap();
    for mut c in std::mem::take(&mut g.children) {
        assert_eq!(c.wait().unwrap().signal(), Some(libc::SIGKILL));
    }
    assert!(g.mgr.processes().unwrap().is_empty());
}

#[test]
fn dir_fd_and_mount_sources_point_at_the_cgroup_on_v2() {
    let Some(mut g) = v2("fd_v2", &[]) else {
        return;
    };
    use std::os::fd::AsRawFd;
    let fd = g.mgr.dir_fd().unwrap().expect("v2 has a dir fd");
    let link = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap();
    assert_eq!(link, g.mgr.config().hierarchies[0].dir);
    let sources = g.mgr.mount_sources().unwrap();
    assert_eq!(sources.len(), 1);
    assert_eq!(sources[0].hierarchy, "");
    assert_eq!(sources[0].host_dir, link);
}

#[test]
fn unified_values_are_written_verbatim_on_v2() {
    let Some(g) = v2("unified_v2", &[]) else {
        return;
    };
    let r = resources(json!({"unified": {"cgroup.max.descendants": "7"}}));
    g.mgr.apply(&r).unwrap();
    assert_eq!(read(&g, "", "cgroup.max.descendants"), "7");
    let bad = resources(json!({"unified": {"../cgroup.procs": "1"}}));
    assert!(g.mgr.apply(&bad).is_err());
}

#[test]
fn realtime_cpu_is_rejected_on_v2() {
    let Some(g) = v2("rt_v2", &[]) else {
        return;
    };
    let r = resources(json!({"cpu": {"realtimeRuntime": 1000, "realtimePeriod": 10000}}));
    let err = g.mgr.apply(&r).unwrap_err();
    assert!(err.to_string().contains("realtime"), "{err}");
}

#[test]
fn device_program_blocks_denied_devices_on_v2() {
    let Some(mut g) = v2("devices_v2", &[]) else {
        return;
    };
    // Allow everything but /dev/null.
    let rules = vec![
        serde_json::from_value(json!({"allow": true, "access": "rwm"})).unwrap(),
        serde_json::from_value(
            json!({"allow": false, "type": "c", "major": 1, "minor": 3, "access": "rwm"}),
        )
        .unwrap(),
    ];
    let mut r = oci_spec::runtime::LinuxResources::default();
    r.set_devices(Some(rules));
    g.mgr.apply(&r).unwrap();
    let dir = g.mgr.config().hierarchies[0].dir.clone();
    assert_eq!(attached_device_programs(&dir).unwrap(), 1);
    let (pid, gate) = g.add_gated_shell("head -c 1 /dev/zero | wc -c; cat /dev/null");
    let out = g.release(gate, pid);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "1",
        "/dev/zero readable"
    );
    assert!(!out.status.success(), "/dev/null denied");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Operation not permitted"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Updating replaces our program instead of stacking another.
    let mut rules = vec![serde_json::from_value(json!({"allow": false, "access": "rwm"})).unwrap()];
    rules.extend(default_allowed_devices());
    r.set_devices(Some(rules));
    g.mgr.apply(&r).unwrap();
    assert_eq!(attached_device_programs(&dir).unwrap(), 1);
    let (pid, gate) = g.add_gated_shell("cat /dev/null && echo ok; head -c 1 /dev/vda");
    let out = g.release(gate, pid);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "ok",
        "/dev/null allowed now"
    );
    assert!(!out.status.success(), "disks stay denied");
}

#[test]
fn memory_limit_is_written_as_max_on_v2() {
    let Some(g) = v2("memory_v2", &["memory"]) else {
        return;
    };
    let swap = g.mgr.config().hierarchies[0]
        .dir
        .join("memory.swap.max")
        .exists();
    let mut r = json!({"memory": {"limit": 64 << 20, "reservation": 32 << 20,
                                  "swappiness": 10, "disableOOMKiller": true, "kernel": 1}});
    if swap {
        r["memory"]["swap"] = json!(96 << 20);
    }
    g.mgr.apply(&resources(r)).unwrap();
    assert_eq!(read(&g, "", "memory.max"), (64u64 << 20).to_string());
    assert_eq!(read(&g, "", "memory.low"), (32u64 << 20).to_string());
    if swap {
        assert_eq!(read(&g, "", "memory.swap.max"), (32u64 << 20).to_string());
    }
    g.mgr
        .apply(&resources(json!({"memory": {"limit": -1}})))
        .unwrap();
    assert_eq!(read(&g, "", "memory.max"), "max");
    if swap {
        assert_eq!(read(&g, "", "memory.swap.max"), "max");
    }
}

#[test]
fn cpu_shares_and_quota_convert_on_v2() {
    let Some(g) = v2("cpu_v2", &["cpu"]) else {
        return;
    };
    let r = json!({"cpu": {"shares": 1024, "quota": 50000, "period": 100000}});
    g.mgr.apply(&resources(r)).unwrap();
    assert_eq!(read(&g, "", "cpu.weight"), "39");
    assert_eq!(read(&g, "", "cpu.max"), "50000 100000");
    // A period alone keeps the quota (as on v1, and as runc's update does).
    g.mgr
        .apply(&resources(json!({"cpu": {"period": 200000}})))
        .unwrap();
    assert_eq!(read(&g, "", "cpu.max"), "50000 200000");
    g.mgr
        .apply(&resources(json!({"cpu": {"quota": -1}})))
        .unwrap();
    assert_eq!(read(&g, "", "cpu.max"), "max 200000");
}

#[test]
fn cpuset_is_written_on_v2() {
    let Some(g) = v2("cpuset_v2", &["cpuset"]) else {
        return;
    };
    g.mgr
        .apply(&resources(json!({"cpu": {"cpus": "0", "mems": "0"}})))
        .unwrap();
    assert_eq!(read(&g, "", "cpuset.cpus"), "0");
    assert_eq!(read(&g, "", "cpuset.mems"), "0");
}

#[test]
fn pids_limit_is_written_on_v2() {
    let Some(g) = v2("pids_v2", &["pids"]) else {
        return;
    };
    g.mgr
        .apply(&resources(json!({"pids": {"limit": 42}})))
        .unwrap();
    assert_eq!(read(&g, "", "pids.max"), "42");
    g.mgr
        .apply(&resources(json!({"pids": {"limit": -1}})))
        .unwrap();
    assert_eq!(read(&g, "", "pids.max"), "max");
}

#[test]
fn io_max_is_written_on_v2() {
    let Some(g) = v2("io_v2", &["io"]) else {
        return;
    };
    let Some((major, minor)) = common::block_device() else {
        mini_test_skip::skip("io_v2", mini_test_skip::Need::Host, "no block device");
        return;
    };
    let dev = json!([{"major": major, "minor": minor, "rate": 1048576}]);
    let r = json!({"blockIO": {"throttleReadBpsDevice": dev, "throttleWriteIOPSDevice":
        [{"major": major, "minor": minor, "rate": 100}]}});
    g.mgr.apply(&resources(r)).unwrap();
    let io_max = read(&g, "", "io.max");
    assert!(
        io_max.contains(&format!("{major}:{minor} rbps=1048576")),
        "{io_max}"
    );
    assert!(io_max.contains("wiops=100"), "{io_max}");
}

#[test]
fn stats_match_the_files_on_v2() {
    let Some(mut g) = v2("stats_v2", &["memory", "pids"]) else {
        return;
    };
    g.mgr
        .apply(&resources(
            json!({"pids": {"limit": 50}, "memory": {"limit": 256 << 20}}),
        ))
        .unwrap();
    g.add_sleeper();
    let s = g.mgr.stats().unwrap();
    assert_eq!(s.pids.current, 1);
    assert_eq!(s.pids.limit, 50);
    assert_eq!(s.memory.usage.limit, 256 << 20);
    assert!(s.memory.raw.contains_key("file"));
    let usage_usec: u64 = read(&g, "", "cpu.stat")
        .lines()
        .find_map(|l| l.strip_prefix("usage_usec "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(s.cpu.usage.total <= usage_usec * 1000);
    assert!(
        s.cpu.psi.is_some()
            || !g.mgr.config().hierarchies[0]
                .dir
                .join("cpu.pressure")
                .exists()
    );
}

#[test]
fn oom_kill_is_counted_and_waited_for_on_v2() {
    let Some(mut g) = v2("oom_v2", &["memory"]) else {
        return;
    };
    let mut r = json!({"memory": {"limit": 16 << 20}});
    if g.mgr.config().hierarchies[0]
        .dir
        .join("memory.swap.max")
        .exists()
    {
        r["memory"]["swap"] = json!(16 << 20);
    }
    g.mgr.apply(&resources(r)).unwrap();
    let baseline = g.mgr.oom_kill_count().unwrap();
    assert_eq!(baseline, 0);
    let (pid, gate) = g.add_gated_shell("head -c 256M /dev/zero | tail -n 1");
    let cfg = g.mgr.config().clone();
    // Armed with the baseline: the kill is seen even if it comes before the watch.
    let waiter = thread::spawn(move || {
        let m = mini_cgroups::open(&cfg).unwrap();
        m.wait_oom(baseline, Duration::from_secs(60)).unwrap()
    });
    let out = g.release(gate, pid);
    assert!(!out.status.success());
    assert!(waiter.join().unwrap());
    assert!(g.mgr.oom_kill_count().unwrap() >= 1);
}
