//! Repeated create/start/delete leaves nothing behind on the host. Its own test binary, and its
//! tests take turns (SERIAL), so the descriptor count of this process is exact.

use mini_tests::*;
use std::path::PathBuf;
use std::time::Duration;

const CYCLES: usize = 200;
/// Other engineers share this host and may mount things while this runs; a leak in the runtime
/// would add at least one mount per cycle, far above this.
const MOUNT_SLACK: usize = 20;

/// Held by each test for its whole run: descriptors are counted process-wide.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Debug, PartialEq)]
struct Snapshot {
    own_fds: usize,
    our_mounts: usize,
    our_cgroups: Vec<PathBuf>,
    state_dirs: usize,
    our_processes: Vec<i32>,
    zombies: usize,
}

fn snapshot(rt: &Runtime, b: &Bundle, prefix: &str, marker: &str) -> Snapshot {
    Snapshot {
        own_fds: own_fd_count(),
        our_mounts: mounts_mentioning(b.path_str()) + mounts_mentioning(prefix),
        our_cgroups: cgroups_mentioning(prefix),
        state_dirs: rt.state_dir_count(),
        our_processes: processes_mentioning(marker),
        zombies: own_zombies(),
    }
}

fn cycle(rt: &Runtime, b: &Bundle, id: &str) {
    rt.ok(&["create", "--bundle", b.path_str(), id]);
    assert_eq!(rt.status(id), "created");
    rt.ok(&["start", id]);
    rt.wait_status(id, "stopped", Duration::from_secs(10));
    rt.ok(&["delete", id]);
}

#[test]
fn create_start_delete_cycles_leak_nothing() {
    let _serial = serial();
    let rt = Runtime::new();
    let marker = unique("leak-marker");
    // The marker lands in the process's command line ($0 of sh -c), so a surviving container
    // process is found by it.
    let b = Bundle::new(&["sh", "-c", "exit 0", &marker]).with_private_rootfs();
    let prefix = unique("leak");
    // One cycle first: the runtime may create its cgroup parents once.
    cycle(&rt, &b, &format!("{prefix}-warmup"));
    let mounts_before = mount_count();
    let before = snapshot(&rt, &b, &prefix, &marker);
    assert_eq!(before.our_mounts, 0);
    assert!(before.our_cgroups.is_empty(), "{:?}", before.our_cgroups);

    for i in 0..CYCLES {
        cycle(&rt, &b, &format!("{prefix}-{i}"));
    }

    let after = snapshot(&rt, &b, &prefix, &marker);
    assert_eq!(after, before, "resources leaked over {CYCLES} cycles");
    let mounts_after = mount_count();
    assert!(
        mounts_after <= mounts_before + MOUNT_SLACK,
        "host mounts grew from {mounts_before} to {mounts_after} over {CYCLES} cycles"
    );
}

#[test]
fn forced_deletes_of_running_containers_leak_nothing() {
    let _serial = serial();
    let rt = Runtime::new();
    let marker = unique("leak-marker-f");
    // (`sleep 60 & wait`: a lone command would be exec'd by sh, losing the marker.)
    let b = Bundle::new(&["sh", "-c", "sleep 60 & wait", &marker]).with_private_rootfs();
    let prefix = unique("leakf");
    let before = snapshot(&rt, &b, &prefix, &marker);
    for i in 0..CYCLES / 4 {
        let id = format!("{prefix}-{i}");
        rt.ok(&["create", "--bundle", b.path_str(), &id]);
        rt.ok(&["start", &id]);
        assert!(
            wait_until(Duration::from_secs(10), || processes_mentioning(&marker)
                .len()
                == 1),
            "the container's process never ran"
        );
        rt.ok(&["delete", "--force", &id]);
    }
    let after = snapshot(&rt, &b, &prefix, &marker);
    assert_eq!(after, before);
}
