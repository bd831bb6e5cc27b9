//! process.terminal: the console-socket protocol and a foreground terminal.

use mini_tests::{run_with_console, unique, Bundle, Runtime};
use std::time::Duration;

#[test]
fn console_socket_receives_the_pty_master_and_the_process_has_a_terminal() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sh", "-c", "tty; ls -l /dev/console; /bin/probe report"]).edit(|c| {
        c["process"]["terminal"] = true.into();
        c["process"]["consoleSize"] = serde_json::json!({"height": 31, "width": 97});
    });
    let id = unique("tty");
    let (name, text) = run_with_console(&rt, &b, &id);
    assert!(name.starts_with("/dev/pts/"), "{name}");
    assert!(text.starts_with(&name), "tty prints the slave name: {text}");
    assert!(
        text.contains("136,"),
        "/dev/console is the pty slave: {text}"
    );
    let report = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .expect("probe output");
    let r: serde_json::Value = serde_json::from_str(report.trim()).unwrap();
    assert_eq!(r["tty"], true);
    rt.wait_status(&id, "stopped", Duration::from_secs(10));
}

/// The console belongs to the process's user and the tty group (5), as runc leaves it: a
/// non-root process can change its own terminal's settings and mode (`mesg`, `stty`).
#[test]
fn the_console_is_owned_by_the_process_user_and_the_tty_group() {
    let b = Bundle::new(&["sh", "-c", "stat -c '%u:%g' $(tty) /dev/console"]).edit(|c| {
        c["process"]["terminal"] = true.into();
        c["process"]["user"] = serde_json::json!({"uid": 1000, "gid": 1000});
    });
    let rt = Runtime::new();
    let id = unique("tty-owner");
    let (_, text) = run_with_console(&rt, &b, &id);
    rt.wait_status(&id, "stopped", Duration::from_secs(10));
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    assert_eq!(lines, ["1000:5", "1000:5"], "{text}");
}

#[test]
fn terminal_without_console_socket_is_refused_for_create() {
    let rt = Runtime::new();
    let b = Bundle::new(&["sh"]).edit(|c| c["process"]["terminal"] = true.into());
    let id = unique("tty-refused");
    let out = rt.create(&b, &id);
    assert!(!out.status.success());
    assert!(mini_tests::stderr_line(&out).contains("--console-socket"));
    mini_tests::assert_nothing_left(&rt, &id, b.path());
}

#[test]
fn foreground_run_with_a_terminal_proxies_it_and_returns_the_exit_status() {
    let rt = Runtime::new();
    let b =
        Bundle::new(&["sh", "-c", "tty; exit 5"]).edit(|c| c["process"]["terminal"] = true.into());
    let id = unique("tty-fg");
    // `script` gives the runtime a terminal of its own, as an interactive user would.
    let cmd = format!(
        "{} --root {} run --bundle {} {}",
        mini_tests::mini_run_bin().display(),
        rt.root().display(),
        b.path_str(),
        id
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("script (bsdutils) is installed");
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("/dev/pts/"));
}
