//! process.terminal: the console-socket protocol and a foreground terminal.

use mini_tests::{recv_console, unique, Bundle, Runtime, TempDir};
use std::io::Read;
use std::os::unix::net::UnixListener;
use std::time::Duration;

#[test]
fn console_socket_receives_the_pty_master_and_the_process_has_a_terminal() {
    let rt = Runtime::new();
    let dir = TempDir::new("console");
    let sock = dir.path().join("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let b = Bundle::new(&["sh", "-c", "tty; ls -l /dev/console; /bin/probe report"]).edit(|c| {
        c["process"]["terminal"] = true.into();
        c["process"]["consoleSize"] = serde_json::json!({"height": 31, "width": 97});
    });
    let id = unique("tty");
    let receiver = std::thread::spawn(move || recv_console(&listener));
    let out = rt.cmd(&[
        "create",
        "--console-socket",
        sock.to_str().unwrap(),
        "--bundle",
        b.path_str(),
        &id,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (name, master) = receiver.join().unwrap();
    assert!(name.starts_with("/dev/pts/"), "{name}");
    rt.ok(&["start", &id]);
    let mut text = String::new();
    let mut f = std::fs::File::from(master);
    let mut buf = [0u8; 65536];
    while let Ok(n) = f.read(&mut buf) {
        if n == 0 {
            break;
        }
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
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
