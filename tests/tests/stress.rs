//! Many foreground runs in a row: none may be lost (wrong status) or hang. Its own test binary,
//! so nothing else in this process competes with it.

use mini_tests::*;
use std::time::{Duration, Instant};

const RUNS: usize = 1000;
/// Far above a normal run (milliseconds); only a hang reaches it.
const PER_RUN: Duration = Duration::from_secs(30);

#[test]
fn a_thousand_foreground_runs_of_true_all_exit_zero() {
    let rt = Runtime::new();
    let b = Bundle::new(&["/bin/true"]);
    let prefix = unique("stress");
    let started = Instant::now();
    for i in 0..RUNS {
        let id = format!("{prefix}-{i}");
        let out = rt
            .cmd_timeout(&["run", "--bundle", b.path_str(), &id], PER_RUN)
            .unwrap_or_else(|e| panic!("run {i} of {RUNS} hung: {e}"));
        assert_eq!(
            out.status.code(),
            Some(0),
            "run {i} of {RUNS} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stderr.is_empty(),
            "run {i} of {RUNS} printed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    eprintln!("{RUNS} runs in {:?}", started.elapsed());
    assert_eq!(rt.state_dir_count(), 0, "foreground runs left state behind");
    assert_eq!(
        runtime_cgroups_with_prefix(&prefix),
        Vec::<std::path::PathBuf>::new()
    );
    assert_eq!(own_zombies(), 0);
}

#[test]
fn a_failing_command_in_a_loop_reports_its_status_every_time() {
    let rt = Runtime::new();
    let b = Bundle::new(&["probe", "exit", "3"]);
    let prefix = unique("stress-exit");
    for i in 0..100 {
        let out = rt
            .cmd_timeout(
                &["run", "--bundle", b.path_str(), &format!("{prefix}-{i}")],
                PER_RUN,
            )
            .unwrap_or_else(|e| panic!("run {i} hung: {e}"));
        assert_eq!(out.status.code(), Some(3), "run {i}: {out:?}");
    }
    assert_eq!(rt.state_dir_count(), 0);
}
