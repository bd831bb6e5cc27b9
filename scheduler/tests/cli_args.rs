//! The `mini-sched` binary's argument handling: every mistake is one line on stderr and a
//! non-zero exit, before (or without) any call to the daemon.

use std::path::PathBuf;
use std::process::{Command, Output};

fn mini_sched(args: &[&str], socket: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mini-sched"));
    cmd.args(args).env_remove("MINI_SCHED_SOCKET");
    if let Some(s) = socket {
        cmd.env("MINI_SCHED_SOCKET", s);
    }
    cmd.output().expect("mini-sched runs")
}

/// A socket path nothing listens on, unique to this test process.
fn absent_socket(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "mini-sched-args-{}-{name}.sock",
        std::process::id()
    ))
}

/// The one line on stderr; fails when there is not exactly one or anything went to stdout.
fn one_line_failure(out: &Output, code: i32) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "stderr: {stderr}");
    assert!(out.stdout.is_empty(), "stdout: {:?}", out.stdout);
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr:?}");
    assert!(stderr.starts_with("mini-sched: "), "{stderr}");
    stderr
}

#[test]
fn get_of_an_unknown_kind_fails_with_one_line() {
    let line = one_line_failure(&mini_sched(&["get", "bogus"], None), 2);
    assert!(line.contains("'bogus'"), "{line}");
    assert!(line.contains("nodes, workloads, instances"), "{line}");
}

#[test]
fn missing_arguments_name_what_is_missing_and_the_usage() {
    let line = one_line_failure(&mini_sched(&["describe", "node"], None), 2);
    assert!(line.contains("<NAME>"), "{line}");
    assert!(
        line.contains("usage: mini-sched describe <KIND> <NAME>"),
        "{line}"
    );
    let line = one_line_failure(&mini_sched(&["exec", "web-1"], None), 2);
    assert!(line.contains("<COMMAND>"), "{line}");
}

#[test]
fn unknown_subcommands_and_bad_numbers_fail_with_one_line() {
    one_line_failure(&mini_sched(&["bogus"], None), 2);
    let line = one_line_failure(&mini_sched(&["scale", "web", "many"], None), 2);
    assert!(line.contains("'many'"), "{line}");
    let line = one_line_failure(
        &mini_sched(&["rollout", "status", "web", "--timeout", "5x"], None),
        2,
    );
    assert!(line.contains("'5x'"), "{line}");
    let line = one_line_failure(&mini_sched(&["get", "nodes", "--all"], None), 1);
    assert!(line.contains("`get instances` only"), "{line}");
}

#[test]
fn bad_label_and_taint_changes_fail_before_calling_the_daemon() {
    let socket = absent_socket("edits");
    let socket = socket.to_str().unwrap();
    let line = one_line_failure(
        &mini_sched(&["label", "node", "n1", "zone"], Some(socket)),
        1,
    );
    assert!(line.contains("key=value"), "{line}");
    let line = one_line_failure(
        &mini_sched(&["taint", "node", "n1", "gpu=yes:Never"], Some(socket)),
        1,
    );
    assert!(
        line.contains("NoSchedule, PreferNoSchedule, NoExecute"),
        "{line}"
    );
}

#[test]
fn an_absent_daemon_is_named_with_its_socket() {
    let socket = absent_socket("env");
    let line = one_line_failure(
        &mini_sched(&["get", "nodes"], Some(socket.to_str().unwrap())),
        1,
    );
    assert!(
        line.contains(&format!(
            "cannot reach the scheduler at {}",
            socket.display()
        )),
        "{line}"
    );
    assert!(
        line.ends_with("(is `mini-sched daemon` running?)\n"),
        "{line}"
    );

    let flag = absent_socket("flag");
    let line = one_line_failure(
        &mini_sched(
            &["--socket", flag.to_str().unwrap(), "get", "workloads"],
            Some(socket.to_str().unwrap()),
        ),
        1,
    );
    assert!(
        line.contains(flag.to_str().unwrap()),
        "--socket wins over the environment: {line}"
    );
}

#[test]
fn an_unreadable_spec_file_is_named() {
    let missing = absent_socket("spec").with_extension("yaml");
    let line = one_line_failure(
        &mini_sched(&["apply", "-f", missing.to_str().unwrap()], None),
        1,
    );
    assert!(
        line.contains(&format!("reading {}", missing.display())),
        "{line}"
    );
}

#[test]
fn a_yaml_syntax_error_is_named_by_file_line_and_column() {
    let spec = absent_socket("syntax").with_extension("yaml");
    std::fs::write(&spec, "name: web\nreplicas: 3\n  bad: [\n").expect("write the spec");
    let out = mini_sched(&["apply", "-f", spec.to_str().unwrap()], None);
    let _ = std::fs::remove_file(&spec);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "mini-sched: {} is not a valid workload spec:\n  line 3, column 6: the spec is not \
             valid YAML: mapping values are not allowed in this context\n",
            spec.display()
        )
    );
}

#[test]
fn help_lists_the_commands() {
    let out = mini_sched(&["--help"], None);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for command in [
        "apply",
        "get",
        "describe",
        "scale",
        "delete",
        "rollout",
        "migrate",
        "cordon",
        "drain",
        "label",
        "taint",
        "logs",
        "exec",
        "events",
        "rebalance",
    ] {
        assert!(help.contains(command), "{command} in {help}");
    }
}

/// `mini-sched ARGS` with `stdin` and its address space limited to 512 MiB: a spec read
/// without a bound then runs out of memory and fails the test, not the machine.
fn mini_sched_with_little_memory(args: &[&str], stdin: std::fs::File) -> Output {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mini-sched"));
    cmd.args(args)
        .env("MINI_SCHED_SOCKET", absent_socket("bounded"))
        .stdin(stdin);
    // SAFETY: only setrlimit, which is async-signal-safe, runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 512 << 20,
                rlim_max: 512 << 20,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.output().expect("mini-sched runs")
}

#[test]
fn a_spec_from_a_device_or_an_endless_stdin_is_refused_at_once() {
    let null = || std::fs::File::open("/dev/null").unwrap();
    let out = mini_sched_with_little_memory(&["apply", "-f", "/dev/zero"], null());
    let line = one_line_failure(&out, 1);
    assert!(
        line.contains("reading /dev/zero: a character device, not a regular file"),
        "{line}"
    );
    let zero = std::fs::File::open("/dev/zero").unwrap();
    let out = mini_sched_with_little_memory(&["apply", "-f", "-"], zero);
    let line = one_line_failure(&out, 1);
    assert!(
        line.contains("reading stdin: larger than the limit of 16 MiB"),
        "{line}"
    );
}
