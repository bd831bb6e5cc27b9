//! Bad input: every mistake gives a non-zero exit, one line on stderr naming the problem, and
//! leaves nothing behind (state directory, cgroup, mount, process).

use mini_tests::*;
use serde_json::{json, Value};
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
    // (0 is no signal but a liveness check, accepted as in runc: see cli_args.rs.)
    for sig in ["NOPE", "SIGNOPE", "65", "99", "RTMIN+99", "-9"] {
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

/// Runs mini-run `cmd` with its address space limited to 256 MiB: an input read without a
/// bound then runs out of memory and fails the test, instead of exhausting the machine.
fn with_little_memory(mut cmd: std::process::Command) -> std::process::Output {
    limit_child(&mut cmd, nix::sys::resource::Resource::RLIMIT_AS, 256 << 20);
    // Not `captured_output`, which would replace the stdin a test gives: a command refused
    // at its input starts no container that could hold the output pipes open.
    cmd.output().expect("spawn mini-run")
}

/// A sparse file of zeros one byte over the 16 MiB input limit.
fn oversized_file(path: &std::path::Path) {
    std::fs::File::create(path)
        .and_then(|f| f.set_len((16 << 20) + 1))
        .expect("oversized file");
}

#[test]
fn config_json_that_is_a_device_or_too_large_is_refused_at_once() {
    let b = Bundle::new(&["probe"]);
    let config = b.path().join("config.json");
    std::fs::remove_file(&config).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &config).unwrap();
    let rt = Runtime::new();
    for cmd in ["create", "run"] {
        let id = unique("zero-config");
        let out = with_little_memory(rt.command(&[cmd, "--bundle", b.path_str(), &id]));
        assert_fails_with(
            &out,
            &["config.json", "character device, not a regular file"],
        );
        assert_nothing_left(&rt, &id, b.path());
    }
    std::fs::remove_file(&config).unwrap();
    oversized_file(&config);
    let id = unique("big-config");
    let out = with_little_memory(rt.command(&["create", "--bundle", b.path_str(), &id]));
    assert_fails_with(&out, &["config.json", "larger than the limit of 16 MiB"]);
    assert_nothing_left(&rt, &id, b.path());
    assert_eq!(rt.state_dir_count(), 0);
}

#[test]
fn update_resources_from_a_device_stdin_or_a_too_large_file_is_refused_at_once() {
    let rt = Runtime::new();
    let b = Bundle::new(&["probe", "sleep", "60"]);
    let id = unique("upd-zero");
    rt.create_ok(&b, &id);
    let out = with_little_memory(rt.command(&["update", "-r", "/dev/zero", &id]));
    assert_fails_with(&out, &["/dev/zero", "not a regular file"]);
    let mut from_stdin = rt.command(&["update", "-r", "-", &id]);
    from_stdin.stdin(std::fs::File::open("/dev/zero").unwrap());
    let out = with_little_memory(from_stdin);
    assert_fails_with(&out, &["stdin", "larger than the limit of 16 MiB"]);
    let dir = TempDir::new("upd-big");
    let big = dir.path().join("resources.json");
    oversized_file(&big);
    let out = with_little_memory(rt.command(&["update", "-r", big.to_str().unwrap(), &id]));
    assert_fails_with(&out, &["resources.json", "larger than the limit of 16 MiB"]);
    assert_eq!(rt.status(&id), "created");
    rt.ok(&["delete", "--force", &id]);
}

#[test]
fn exec_process_file_that_is_a_device_is_refused_at_once() {
    let rt = Runtime::new();
    let b = Bundle::new(&["probe", "sleep", "60"]);
    let id = unique("exec-zero");
    rt.detached(&["run", "--detach", "--bundle", b.path_str(), &id]);
    let out = with_little_memory(rt.command(&["exec", "--process", "/dev/zero", &id]));
    assert_fails_with(&out, &["--process /dev/zero", "not a regular file"]);
    assert_eq!(rt.status(&id), "running");
    rt.ok(&["delete", "--force", &id]);
}

/// `(uid_t)-1` tells setresuid to change nothing: a process asking for it would stay root.
const NO_CHANGE: u32 = u32::MAX;

#[test]
fn user_and_group_ids_out_of_range_are_rejected() {
    for (field, value) in [
        ("uid", json!(NO_CHANGE)),
        ("gid", json!(NO_CHANGE)),
        ("additionalGids", json!([10, NO_CHANGE])),
        ("uid", json!(2147483648u32)),
    ] {
        let b = Bundle::new(&["probe"]).edit(|c| c["process"]["user"][field] = value.clone());
        rejected(
            &b,
            &["config.json", "process.user", "out of range", "2147483647"],
        );
    }
}

#[test]
fn exec_with_user_or_group_ids_out_of_range_is_rejected() {
    let rt = Runtime::new();
    let b = Bundle::new(&["probe", "sleep", "60"]);
    let id = unique("exec-uid");
    rt.detached(&["run", "--detach", "--bundle", b.path_str(), &id]);
    let max = NO_CHANGE.to_string();
    for args in [
        vec!["exec", "--user", &max, &id, "true"],
        vec!["exec", "--user", "0:4294967295", &id, "true"],
        vec!["exec", "--additional-gids", &max, &id, "true"],
    ] {
        assert_fails_with(&rt.cmd(&args), &["out of range", &max]);
    }
    let dir = TempDir::new("exec-uid");
    let process = dir.path().join("process.json");
    let spec = json!({"args": ["true"], "cwd": "/", "user": {"uid": NO_CHANGE, "gid": 0}});
    std::fs::write(&process, spec.to_string()).unwrap();
    let out = rt.cmd(&["exec", "--process", process.to_str().unwrap(), &id]);
    assert_fails_with(&out, &["--process", "uid 4294967295", "out of range"]);
    let ps: Value = serde_json::from_str(&rt.ok(&["ps", "--format", "json", &id])).unwrap();
    assert_eq!(
        ps.as_array().map(Vec::len),
        Some(1),
        "only the init runs: {ps}"
    );
    rt.ok(&["delete", "--force", &id]);
}
