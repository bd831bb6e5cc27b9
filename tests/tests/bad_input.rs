//! Bad input: every mistake gives a non-zero exit, one line on stderr naming the problem, and
//! leaves nothing behind (state directory, cgroup, mount, process).

use mini_tests::*;
use serde_json::json;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

/// `create` then `run` of `bundle` must both fail naming `words`, leaving nothing behind.
fn rejected(bundle: &Bundle, words: &[&str]) {
    rejected_at(bundle.path_str(), words);
}

fn rejected_at(bundle: &str, words: &[&str]) {
    let rt = Runtime::new();
    for cmd in ["create", "run"] {
        let id = unique(&format!("bad-{cmd}"));
        let out = rt.cmd(&[cmd, "--bundle", bundle, &id]);
        assert_fails_with(&out, words);
        assert_nothing_left(&rt, &id, std::path::Path::new(bundle));
    }
    assert_eq!(rt.state_dir_count(), 0);
}

#[test]
fn missing_bundle_directory_is_rejected() {
    let dir = TempDir::new("nobundle");
    let missing = dir.path().join("no-such-bundle");
    rejected_at(missing.to_str().unwrap(), &["bundle", "no-such-bundle"]);
}

#[test]
fn missing_config_json_is_rejected() {
    let dir = TempDir::new("noconfig");
    rejected_at(
        dir.path().to_str().unwrap(),
        &["config.json", "no such file"],
    );
}

#[test]
fn config_json_syntax_error_is_rejected() {
    let b = Bundle::new(&["probe"]);
    std::fs::write(
        b.path().join("config.json"),
        "{\"ociVersion\": \"1.0.2\",,}",
    )
    .unwrap();
    rejected(&b, &["config.json", "line 1"]);
}

#[test]
fn unknown_namespace_type_is_rejected() {
    let b = Bundle::new(&["probe"]).edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "bogusns"}));
    });
    rejected(&b, &["config.json", "bogusns"]);
}

#[test]
fn mount_of_unknown_filesystem_type_is_rejected() {
    let b = Bundle::new(&["probe"]).edit(|c| {
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/mnt", "type": "nosuchfs", "source": "none"
        }));
    });
    rejected(&b, &["/mnt", "nosuchfs"]);
}

#[test]
fn bind_mount_from_missing_source_is_rejected() {
    let dir = TempDir::new("nosrc");
    let src = dir.path().join("missing-source");
    let b = Bundle::new(&["probe"]).edit(|c| {
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/mnt", "type": "bind", "source": src, "options": ["rbind", "ro"]
        }));
    });
    rejected(&b, &["/mnt", "missing-source", "does not exist"]);
}

#[test]
fn nonexistent_rootfs_is_rejected() {
    let b = Bundle::new(&["probe"]).edit(|c| c["root"]["path"] = json!("no-such-rootfs"));
    rejected(&b, &["root.path", "no-such-rootfs"]);
}

#[test]
fn empty_args_are_rejected() {
    let b = Bundle::new(&[]);
    rejected(&b, &["process.args", "empty"]);
}

#[test]
fn command_not_found_in_path_is_rejected() {
    let b = Bundle::new(&["no-such-command-xyz"]);
    rejected(&b, &["no-such-command-xyz", "not found"]);
}

#[test]
fn command_path_that_does_not_exist_is_rejected() {
    let b = Bundle::new(&["/bin/no-such-binary-xyz"]);
    rejected(&b, &["/bin/no-such-binary-xyz"]);
}

#[test]
fn rlimit_above_the_host_hard_limit_is_rejected() {
    let b = Bundle::new(&["probe"]).edit(|c| {
        c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 1000000}]);
    });
    rejected(&b, &["RLIMIT_NOFILE", "1000000", "hard limit"]);
}

#[test]
fn non_namespaced_sysctl_is_rejected() {
    let b = Bundle::new(&["probe"]).edit(|c| {
        c["linux"]["sysctl"] = json!({"kernel.panic": "0"});
    });
    rejected(&b, &["kernel.panic", "not namespaced"]);
}

#[test]
fn duplicate_id_is_rejected_and_the_first_container_is_untouched() {
    let rt = Runtime::new();
    let b = Bundle::new(&["probe", "sleep", "60"]);
    let id = unique("dup");
    rt.ok(&["create", "--bundle", b.path_str(), &id]);
    let before = rt.state(&id);
    let other = Bundle::new(&["probe", "sleep", "60"]);
    for cmd in ["create", "run"] {
        let out = rt.cmd(&[cmd, "--bundle", other.path_str(), &id]);
        assert_fails_with(&out, &[&id, "already exists"]);
    }
    let after = rt.state(&id);
    assert_eq!(before, after, "the existing container must be unchanged");
    assert_eq!(after["status"], "created");
    assert_eq!(mounts_mentioning(other.path_str()), 0);
    assert_eq!(rt.state_dir_count(), 1);
    rt.ok(&["start", &id]);
    assert_eq!(rt.status(&id), "running");
}

#[test]
fn unknown_id_is_rejected_by_state_start_kill_and_delete() {
    let rt = Runtime::new();
    let id = unique("ghost");
    for args in [
        vec!["state", &id],
        vec!["start", &id],
        vec!["kill", &id],
        vec!["kill", &id, "KILL"],
        vec!["delete", &id],
    ] {
        assert_fails_with(&rt.cmd(&args), &[&id, "does not exist"]);
    }
    // As with runc, a forced delete of nothing succeeds.
    rt.ok(&["delete", "--force", &id]);
    assert_eq!(rt.state_dir_count(), 0);
}

#[test]
fn signal_to_a_stopped_container_is_rejected() {
    let rt = Runtime::new();
    let b = Bundle::new(&["probe", "exit", "0"]);
    let id = unique("stopped");
    rt.ok(&["create", "--bundle", b.path_str(), &id]);
    rt.ok(&["start", &id]);
    rt.wait_status(&id, "stopped", WAIT);
    assert_fails_with(&rt.cmd(&["kill", &id, "KILL"]), &[&id, "not running"]);
    assert_eq!(rt.status(&id), "stopped");
    rt.ok(&["delete", &id]);
    assert_nothing_left(&rt, &id, b.path());
}

#[test]
fn start_of_a_running_container_is_rejected() {
    let rt = Runtime::new();
    let b = Bundle::new(&["probe", "sleep", "60"]);
    let id = unique("twice");
    rt.ok(&["create", "--bundle", b.path_str(), &id]);
    rt.ok(&["start", &id]);
    assert_fails_with(&rt.cmd(&["start", &id]), &[&id, "running"]);
    assert_eq!(rt.status(&id), "running");
}

#[test]
fn ids_with_slashes_or_dot_dot_are_rejected() {
    let rt = Runtime::new();
    let b = Bundle::new(&["probe", "sleep", "60"]);
    let escape = unique("escape");
    let parent = rt.root().parent().unwrap().to_path_buf();
    for id in [
        format!("../{escape}"),
        format!("a/{escape}"),
        "..".to_string(),
        ".".to_string(),
        format!("/tmp/{escape}"),
        String::new(),
    ] {
        for cmd in ["create", "run"] {
            let out = rt.cmd(&[cmd, "--bundle", b.path_str(), &id]);
            assert_fails_with(&out, &["invalid container id"]);
        }
        for args in [vec!["state", &id], vec!["kill", &id], vec!["delete", &id]] {
            assert_fails_with(&rt.cmd(&args), &["invalid container id"]);
        }
    }
    assert!(
        !parent.join(&escape).exists(),
        "a directory escaped the root"
    );
    assert!(!std::path::Path::new("/tmp").join(&escape).exists());
    assert_eq!(rt.state_dir_count(), 0);
    assert!(cgroups_mentioning(&escape).is_empty());
    assert_eq!(mounts_mentioning(b.path_str()), 0);
}

#[test]
fn unknown_signal_name_is_rejected_and_the_container_keeps_running() {
    let rt = Runtime::new();
    let b = Bundle::new(&["probe", "sleep", "60"]);
    let id = unique("badsig");
    rt.ok(&["create", "--bundle", b.path_str(), &id]);
    rt.ok(&["start", &id]);
    for sig in ["NOPE", "SIGNOPE", "0", "99", "-9"] {
        let out = rt.cmd(&["kill", &id, sig]);
        assert!(!out.status.success(), "kill {sig} should fail");
        let line = String::from_utf8_lossy(&out.stderr);
        assert!(
            line.to_lowercase().contains("signal") || sig == "-9",
            "{line}"
        );
    }
    assert_fails_with(&rt.cmd(&["kill", &id, "NOPE"]), &["unknown signal", "NOPE"]);
    assert_eq!(rt.status(&id), "running");
}

#[test]
fn bad_flag_is_rejected_naming_the_flag() {
    let rt = Runtime::new();
    let b = Bundle::new(&["probe", "sleep", "60"]);
    let id = unique("badflag");
    let out = rt.cmd(&["create", "--no-such-flag", "--bundle", b.path_str(), &id]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let first = err.lines().next().unwrap_or("");
    assert!(first.contains("--no-such-flag"), "{err}");
    assert_nothing_left(&rt, &id, b.path());
    let out = rt.cmd(&["no-such-command"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-command"));
}

#[test]
fn bad_flag_error_is_one_line() {
    let rt = Runtime::new();
    let out = rt.cmd(&["create", "--no-such-flag", "x"]);
    assert_fails_with(&out, &["--no-such-flag"]);
}
