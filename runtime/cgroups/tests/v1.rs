//! cgroup v1 behaviour on a real host (skipped with a note elsewhere).

mod common;

use std::path::Path;
use std::thread;
use std::time::Duration;

use common::{proc_state, read, resources, v1, wait_state};
use mini_cgroups::{default_allowed_devices, Error};
use serde_json::json;

#[test]
fn create_and_destroy_leave_nothing_behind() {
    let Some(g) = v1("create_destroy") else {
        return;
    };
    let tops: Vec<_> = g
        .mgr
        .config()
        .hierarchies
        .iter()
        .map(|h| {
            assert!(h.dir.is_dir(), "{} created", h.dir.display());
            assert_eq!(h.created.len(), 2, "parent and leaf recorded");
            h.created[0].clone()
        })
        .collect();
    assert!(tops.len() >= 5, "every mounted hierarchy is used: {tops:?}");
    g.mgr.destroy().unwrap();
    for t in &tops {
        assert!(!t.exists(), "{} removed", t.display());
    }
}

#[test]
fn path_is_relative_to_the_hierarchy_root() {
    let Some(g) = v1("path") else {
        return;
    };
    assert_eq!(g.mgr.path(), g.top.join("c"));
    let cfg = g.mgr.config();
    assert!(cfg.hierarchies[0]
        .controllers
        .iter()
        .any(|c| c == "freezer"));
}

#[test]
fn create_refuses_cgroup_with_processes() {
    let Some(mut g) = v1("refuse") else {
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
fn processes_lists_added_process() {
    let Some(mut g) = v1("procs") else {
        return;
    };
    assert!(g.mgr.processes().unwrap().is_empty());
    let pid = g.add_sleeper();
    assert_eq!(g.mgr.processes().unwrap(), vec![pid]);
    let line = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let want = format!(":{}\n", g.mgr.path().display());
    assert!(line.contains(&format!("memory{want}")), "{line}");
}

#[test]
fn memory_limit_is_written_to_limit_in_bytes_on_v1() {
    let Some(g) = v1("memory") else {
        return;
    };
    let memsw = read(&g, "memory", "memory.memsw.limit_in_bytes")
        .parse::<u64>()
        .is_ok();
    let mut r = json!({"memory": {"limit": 64 << 20, "reservation": 32 << 20, "swappiness": 10,
                                  "kernel": 1 << 20, "kernelTCP": 1 << 20}});
    if memsw {
        r["memory"]["swap"] = json!(128 << 20);
    }
    g.mgr.apply(&resources(r)).unwrap();
    assert_eq!(
        read(&g, "memory", "memory.limit_in_bytes"),
        (64u64 << 20).to_string()
    );
    assert_eq!(
        read(&g, "memory", "memory.soft_limit_in_bytes"),
        (32u64 << 20).to_string()
    );
    assert_eq!(read(&g, "memory", "memory.swappiness"), "10");
    if memsw {
        assert_eq!(
            read(&g, "memory", "memory.memsw.limit_in_bytes"),
            (128u64 << 20).to_string()
        );
        // Shrinking both must order the writes so memsw >= limit holds throughout.
        g.mgr
            .apply(&resources(
                json!({"memory": {"limit": 16 << 20, "swap": 16 << 20}}),
            ))
            .unwrap();
        assert_eq!(
            read(&g, "memory", "memory.memsw.limit_in_bytes"),
            (16u64 << 20).to_string()
        );
    }
    g.mgr
        .apply(&resources(json!({"memory": {"limit": -1}})))
        .unwrap();
    let unlimited: u64 = read(&g, "memory", "memory.limit_in_bytes").parse().unwrap();
    assert!(unlimited > 1 << 60, "-1 means unlimited: {unlimited}");
}

#[test]
fn oom_killer_can_be_disabled_on_v1() {
    let Some(g) = v1("oomctl") else {
        return;
    };
    g.mgr
        .apply(&resources(json!({"memory": {"disableOOMKiller": true}})))
        .unwrap();
    assert!(read(&g, "memory", "memory.oom_control").contains("oom_kill_disable 1"));
}

#[test]
fn oom_kill_is_counted_and_waited_for_on_v1() {
    let Some(mut g) = v1("oom") else {
        return;
    };
    let mut r = json!({"memory": {"limit": 16 << 20}});
    if read(&g, "memory", "memory.memsw.limit_in_bytes")
        .parse::<u64>()
        .is_ok()
    {
        r["memory"]["swap"] = json!(16 << 20);
    }
    g.mgr.apply(&resources(r)).unwrap();
    let baseline = g.mgr.oom_kill_count().unwrap();
    assert_eq!(baseline, 0);
    assert!(!g.mgr.wait_oom(baseline, Duration::from_millis(50)).unwrap());
    // tail must hold the whole newline-free stream in memory.
    let (pid, gate) = g.add_gated_shell("head -c 256M /dev/zero | tail -n 1");
    // The waiter compares with the baseline read before the trigger: it sees the kill whether
    // it is armed before or after it happens, whatever the scheduler does to this thread.
    let waiter = {
        let cfg = g.mgr.config().clone();
        thread::spawn(move || {
            let m = mini_cgroups::open(&cfg).unwrap();
            m.wait_oom(baseline, Duration::from_secs(60)).unwrap()
        })
    };
    let out = g.release(gate, pid);
    assert!(!out.status.success(), "the pipeline was OOM-killed");
    assert!(waiter.join().unwrap(), "wait_oom saw the OOM");
    assert!(g.mgr.oom_kill_count().unwrap() >= 1);
}

#[test]
fn pids_limit_is_written_on_v1() {
    let Some(g) = v1("pids") else {
        return;
    };
    g.mgr
        .apply(&resources(json!({"pids": {"limit": 42}})))
        .unwrap();
    assert_eq!(read(&g, "pids", "pids.max"), "42");
    g.mgr
        .apply(&resources(json!({"pids": {"limit": 0}})))
        .unwrap();
    assert_eq!(read(&g, "pids", "pids.max"), "max");
}

#[test]
fn cpu_shares_quota_and_period_are_written_on_v1() {
    let Some(g) = v1("cpu") else {
        return;
    };
    let r = json!({"cpu": {"shares": 512, "quota": 50000, "period": 100000}});
    g.mgr.apply(&resources(r)).unwrap();
    assert_eq!(read(&g, "cpu", "cpu.shares"), "512");
    assert_eq!(read(&g, "cpu", "cpu.cfs_quota_us"), "50000");
    assert_eq!(read(&g, "cpu", "cpu.cfs_period_us"), "100000");
    // A shorter period with a matching quota.
    g.mgr
        .apply(&resources(json!({"cpu": {"quota": 5000, "period": 10000}})))
        .unwrap();
    assert_eq!(read(&g, "cpu", "cpu.cfs_period_us"), "10000");
    g.mgr
        .apply(&resources(json!({"cpu": {"quota": -1}})))
        .unwrap();
    assert_eq!(read(&g, "cpu", "cpu.cfs_quota_us"), "-1");
}

#[test]
fn cpuset_is_inherited_and_applied_on_v1() {
    let Some(g) = v1("cpuset") else {
        return;
    };
    let root_cpus = std::fs::read_to_string("/sys/fs/cgroup/cpuset/cpuset.cpus").unwrap();
    assert_eq!(
        read(&g, "cpuset", "cpuset.cpus"),
        root_cpus.trim(),
        "copied from parent"
    );
    assert!(!read(&g, "cpuset", "cpuset.mems").is_empty());
    g.mgr
        .apply(&resources(json!({"cpu": {"cpus": "0", "mems": "0"}})))
        .unwrap();
    assert_eq!(read(&g, "cpuset", "cpuset.cpus"), "0");
    assert_eq!(read(&g, "cpuset", "cpuset.mems"), "0");
}

#[test]
fn blkio_throttle_is_written_on_v1() {
    let Some(g) = v1("blkio") else {
        return;
    };
    let Some((major, minor)) = common::block_device() else {
        mini_test_skip::skip("blkio", mini_test_skip::Need::Host, "no block device");
        return;
    };
    let r = json!({"blockIO": {
        "throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 1048576}],
        "throttleWriteIOPSDevice": [{"major": major, "minor": minor, "rate": 100}]}});
    g.mgr.apply(&resources(r)).unwrap();
    assert_eq!(
        read(&g, "blkio", "blkio.throttle.read_bps_device"),
        format!("{major}:{minor} 1048576")
    );
    assert_eq!(
        read(&g, "blkio", "blkio.throttle.write_iops_device"),
        format!("{major}:{minor} 100")
    );
}

/// A weight goes to `blkio.weight` (CFQ) or `blkio.bfq.weight` (BFQ); a kernel whose block
/// devices use neither scheduler (mq-deadline, none) has no weight file, and a weight is then
/// an error naming the file, as with runc, rather than silently ignored.
#[test]
fn blkio_weight_is_written_or_refused_on_v1() {
    let Some(g) = v1("blkio_weight") else {
        return;
    };
    let dir = blkio_dir(&g);
    let file = ["blkio.weight", "blkio.bfq.weight"]
        .into_iter()
        .find(|f| dir.join(f).exists());
    let result = g.mgr.apply(&resources(json!({"blockIO": {"weight": 300}})));
    match file {
        Some(file) => {
            result.unwrap();
            let weight = read(&g, "blkio", file);
            assert!(weight.contains("300"), "{file}: {weight}");
        }
        None => {
            let err = result
                .expect_err("a weight without a weight file must fail")
                .to_string();
            assert!(err.contains("weight"), "{err}");
        }
    }
}

fn blkio_dir(g: &common::Guard) -> std::path::PathBuf {
    g.mgr
        .config()
        .hierarchies
        .iter()
        .find(|h| h.has("blkio"))
        .unwrap()
        .dir
        .clone()
}

#[test]
fn device_rules_are_written_to_devices_list_on_v1() {
    let Some(g) = v1("devices") else {
        return;
    };
    let mut rules = vec![serde_json::from_value(json!({"allow": false, "access": "rwm"})).unwrap()];
    rules.extend(default_allowed_devices());
    let mut r = oci_spec::runtime::LinuxResources::default();
    r.set_devices(Some(rules));
    g.mgr.apply(&r).unwrap();
    let list = read(&g, "devices", "devices.list");
    for want in [
        "c *:* m",
        "b *:* m",
        "c 1:3 rwm",
        "c 1:9 rwm",
        "c 136:* rwm",
        "c 5:1 rwm",
    ] {
        assert!(list.lines().any(|l| l == want), "{want} in {list}");
    }
    assert!(!list.contains("a *:* rwm"), "{list}");
}

#[test]
fn freeze_and_thaw_a_real_process_on_v1() {
    let Some(mut g) = v1("freeze") else {
        return;
    };
    let pid = g.add_sleeper();
    assert!(!g.mgr.is_frozen().unwrap());
    g.mgr.freeze().unwrap();
    assert!(g.mgr.is_frozen().unwrap());
    assert_eq!(read(&g, "freezer", "freezer.state"), "FROZEN");
    assert_eq!(proc_state(pid), 'D', "frozen tasks show as D");
    g.mgr.thaw().unwrap();
    assert!(!g.mgr.is_frozen().unwrap());
    assert_eq!(read(&g, "freezer", "freezer.state"), "THAWED");
    assert_eq!(wait_state(pid, 'S'), 'S', "running again after thaw");
}

#[test]
fn kill_all_kills_a_real_process_on_v1() {
    let Some(mut g) = v1("kill") else {
        return;
    };
    g.add_sleeper();
    g.add_sleeper();
    g.mgr.kill_all(libc::SIGKILL).unwrap();
    for mut c in std::mem::take(&mut g.children) {
        let status = c.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    }
    assert!(g.mgr.processes().unwrap().is_empty());
    assert!(!g.mgr.is_frozen().unwrap(), "thawed after signalling");
}

#[test]
fn stats_match_the_files_on_v1() {
    let Some(mut g) = v1("stats") else {
        return;
    };
    g.mgr
        .apply(&resources(
            json!({"pids": {"limit": 50}, "memory": {"limit": 256 << 20}}),
        ))
        .unwrap();
    g.add_sleeper();
    let before: u64 = read(&g, "cpuacct", "cpuacct.usage").parse().unwrap();
    let s = g.mgr.stats().unwrap();
    let after: u64 = read(&g, "cpuacct", "cpuacct.usage").parse().unwrap();
    assert!(before <= s.cpu.usage.total && s.cpu.usage.total <= after);
    assert_eq!(s.cpu.usage.percpu.len(), s.cpu.usage.percpu_user.len());
    assert_eq!(
        s.pids.current,
        read(&g, "pids", "pids.current").parse::<u64>().unwrap()
    );
    assert_eq!(s.pids.current, 1);
    assert_eq!(s.pids.limit, 50);
    assert_eq!(s.memory.usage.limit, 256 << 20);
    assert!(s.memory.usage.usage <= s.memory.usage.limit);
    assert_eq!(
        s.memory.usage.failcnt,
        read(&g, "memory", "memory.failcnt").parse::<u64>().unwrap()
    );
    assert!(s.memory.raw.contains_key("cache"), "{:?}", s.memory.raw);
    assert!(!s.cpuset.cpus.is_empty());
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["pids"], json!({"current": 1, "limit": 50}));
    assert_eq!(json["memory"]["usage"]["limit"], 256 << 20);
}

#[test]
fn destroy_of_missing_cgroup_is_ok() {
    let Some(g) = v1("missing") else {
        return;
    };
    g.mgr.destroy().unwrap();
    g.mgr.destroy().unwrap();
    let never = mini_cgroups::new_manager(Some(Path::new("/mini-cgroups-never-created/x")), "x");
    never.unwrap().destroy().unwrap();
}

#[test]
fn unified_resources_are_rejected_on_v1() {
    let Some(g) = v1("unified") else {
        return;
    };
    let err = g
        .mgr
        .apply(&resources(json!({"unified": {"memory.high": "1000000"}})))
        .unwrap_err();
    assert!(err.to_string().contains("v2"), "{err}");
    g.mgr.apply(&resources(json!({"unified": {}}))).unwrap();
}

#[test]
fn hugetlb_limit_without_v1_hugetlb_is_a_clear_error() {
    let Some(g) = v1("hugetlb") else {
        return;
    };
    let r = resources(json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 2097152}]}));
    if g.mgr.config().hierarchies.iter().any(|h| h.has("hugetlb")) {
        g.mgr.apply(&r).unwrap();
        assert_eq!(read(&g, "hugetlb", "hugetlb.2MB.limit_in_bytes"), "2097152");
    } else {
        let err = g.mgr.apply(&r).unwrap_err();
        assert!(err.to_string().contains("hugetlb"), "{err}");
        // Stats simply leave it out.
        assert!(g.mgr.stats().unwrap().hugetlb.is_empty());
    }
}

#[test]
fn write_errors_name_file_value_and_errno() {
    let Some(g) = v1("errors") else {
        return;
    };
    let err = g
        .mgr
        .apply(&resources(json!({"cpu": {"cpus": "abc"}})))
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("writing abc to /sys/fs/cgroup/cpuset/"),
        "{text}"
    );
    assert!(
        text.ends_with("/c/cpuset.cpus: EINVAL: Invalid argument"),
        "{text}"
    );
    assert_eq!(err.errno(), Some(libc::EINVAL));
}

#[test]
fn mount_sources_and_config_roundtrip_on_v1() {
    let Some(g) = v1("mounts") else {
        return;
    };
    let sources = g.mgr.mount_sources().unwrap();
    // A hybrid host's cgroup2 tree is joined, but not mounted in the container.
    assert!(sources.iter().all(|s| !s.controllers.is_empty()));
    let mem = sources.iter().find(|s| s.hierarchy == "memory").unwrap();
    assert_eq!(mem.controllers, vec!["memory"]);
    assert!(mem
        .host_dir
        .ends_with(g.top.strip_prefix("/").unwrap().join("c")));
    let json = serde_json::to_string(g.mgr.config()).unwrap();
    let back: mini_cgroups::CgroupConfig = serde_json::from_str(&json).unwrap();
    assert_eq!(&back, g.mgr.config());
    assert_eq!(mini_cgroups::open(&back).unwrap().path(), g.mgr.path());
}

#[test]
fn default_path_is_the_id_under_the_runtimes_own_cgroup() {
    if mini_cgroups::detect().is_err() {
        mini_test_skip::skip(
            "default_path_is_the_id_under_the_runtimes_own_cgroup",
            mini_test_skip::Need::Host,
            "no cgroups mounted",
        );
        return;
    }
    let m = mini_cgroups::new_manager(None, "abc").unwrap();
    let same = mini_cgroups::new_manager(Some(Path::new("abc")), "other").unwrap();
    assert_eq!(
        m.config(),
        same.config(),
        "runc's default: the id, relative"
    );
    let h = &m.config().hierarchies[0];
    assert!(h.dir.ends_with("abc"), "{}", h.dir.display());
    assert!(h.created.is_empty(), "nothing created before create()");
    for bad in ["", "a/b", ".."] {
        assert!(mini_cgroups::new_manager(None, bad).is_err(), "{bad:?}");
    }
}
