//! Conformance with the runtime spec's config.md (specification version, root, mounts,
//! process, hostname, domainname, hooks, annotations, extensibility, valid values), one test
//! per statement that applies to Linux. Each test's doc comment names the statement (short)
//! and its section; tests/conformance/config.md maps every statement of config.md to its
//! test, to an older test that checks it, or to the reason it is not met. The Linux mount
//! options table belongs to tests/conformance/config-linux.md.

use mini_tests::*;
use serde_json::{json, Value};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

/// `create` and `run` of `bundle` both fail with one line naming `words`, leaving nothing.
fn rejected(b: &Bundle, words: &[&str]) {
    let rt = Runtime::new();
    for op in ["create", "run"] {
        let id = unique("cfg-bad");
        assert_fails_with(&rt.cmd(&[op, "--bundle", b.path_str(), &id]), words);
        assert_nothing_left(&rt, &id, b.path());
    }
}

/// `bundle` with the host directory `dir` mounted read-write at /tmp.
fn with_tmp(b: Bundle, dir: &TempDir) -> Bundle {
    b.with_bind(dir.path(), "/tmp")
}

/// The mounts of a probe report at `point`, in mount order.
fn mounts_at<'a>(report: &'a Value, point: &str) -> Vec<&'a Value> {
    report["mounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .filter(|m| m["mount_point"] == point)
        .collect()
}

fn listed(list: &Value, word: &str) -> bool {
    list.as_array()
        .is_some_and(|l| l.iter().any(|w| w.as_str() == Some(word)))
}

// ---------------------------------------------------------------------------------------------
// Specification version (config.md#configSpecificationVersion)

/// config.md#configSpecificationVersion: ociVersion MUST be SemVer 2.0.0 (and, config.md#valid
/// values, runtimes MUST generate an error for invalid values).
#[test]
fn oci_version_that_is_not_semver_is_rejected() {
    for v in ["1.0", "latest"] {
        let b = Bundle::new(&["probe", "report"]).edit(|c| c["ociVersion"] = json!(v));
        rejected(&b, &["ociVersion", v]);
    }
}

/// config.md#configSpecificationVersion: compatibility holds within a major version only, so a
/// 2.x bundle is an unsupported value (an error), while any 1.x one runs.
#[test]
fn oci_version_of_another_major_version_is_rejected() {
    let b = Bundle::new(&["probe", "report"]).edit(|c| c["ociVersion"] = json!("2.0.0"));
    rejected(&b, &["ociVersion", "2.0.0"]);
    let b = Bundle::new(&["probe", "report"]).edit(|c| c["ociVersion"] = json!("1.2.1"));
    assert_eq!(Runtime::new().report(&b)["pid"], 1);
}

// ---------------------------------------------------------------------------------------------
// Root (config.md#configRoot)

/// config.md#configRoot: root is REQUIRED on every platform but Windows.
#[test]
fn missing_root_is_rejected() {
    let b = Bundle::new(&["probe", "report"]).edit(|c| {
        c.as_object_mut().unwrap().remove("root");
    });
    rejected(&b, &["root"]);
}

/// config.md#configRoot: on POSIX, root.path is an absolute path or one relative to the bundle.
#[test]
fn root_path_may_be_absolute_or_relative_to_the_bundle() {
    let rt = Runtime::new();
    let relative = Bundle::new(&["probe", "report"]).with_private_rootfs();
    assert_eq!(relative.config["root"]["path"], "rootfs");
    assert_eq!(rt.report(&relative)["pid"], 1);
    let absolute = Bundle::new(&["probe", "report"]);
    assert!(Path::new(absolute.config["root"]["path"].as_str().unwrap()).is_absolute());
    assert_eq!(rt.report(&absolute)["pid"], 1);
}

/// config.md#configRoot: a directory MUST exist at root.path.
#[test]
fn root_path_that_is_not_a_directory_is_rejected() {
    let b = Bundle::new(&["probe", "report"]);
    std::fs::write(b.path().join("plain-file"), "x").unwrap();
    let b = b.edit(|c| c["root"]["path"] = json!("plain-file"));
    rejected(&b, &["root.path", "not a directory"]);
}

// ---------------------------------------------------------------------------------------------
// Mounts (config.md#configMounts)

/// config.md#configMounts: the runtime MUST mount entries in the listed order (the later of two
/// mounts on one destination is the one on top; a nested one needs its parent first).
#[test]
fn mounts_are_made_in_the_listed_order() {
    let b = Bundle::new(&["probe", "report"]).edit(|c| {
        let m = c["mounts"].as_array_mut().unwrap();
        for (dest, source) in [
            ("/tmp", "first"),
            ("/tmp", "second"),
            ("/tmp/nested", "third"),
        ] {
            m.push(json!({"destination": dest, "type": "tmpfs", "source": source}));
        }
    });
    let r = Runtime::new().report(&b);
    assert_eq!(
        mounts_at(&r, "/tmp")
            .iter()
            .map(|m| m["source"].clone())
            .collect::<Vec<_>>(),
        [json!("first"), json!("second")]
    );
    assert_eq!(mounts_at(&r, "/tmp/nested")[0]["source"], "third");
}

/// config.md#configMounts: the parameters are mount(2)'s: the filesystem type, the source and
/// the options reach the mount.
#[test]
fn mount_type_source_and_options_reach_the_mount() {
    let b = Bundle::new(&["probe", "report"]).edit(|c| {
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/tmp", "type": "tmpfs", "source": "conformance-src",
            "options": ["nosuid", "nodev", "noexec", "mode=710", "size=1m"]
        }));
    });
    let r = Runtime::new().report(&b);
    let m = mounts_at(&r, "/tmp")[0];
    assert_eq!(m["fs_type"], "tmpfs");
    assert_eq!(m["source"], "conformance-src");
    for o in ["nosuid", "nodev", "noexec"] {
        assert!(listed(&m["options"], o), "{o}: {m}");
    }
    assert!(listed(&m["super_options"], "mode=710"), "{m}");
}

/// config.md#configMounts (Linux): a relative destination (deprecated) MUST be interpreted as
/// relative to "/".
#[test]
fn relative_mount_destination_is_taken_from_the_root() {
    let b = Bundle::new(&["probe", "report"]).edit(|c| {
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "tmp", "type": "tmpfs", "source": "relative-dest"
        }));
    });
    let rt = Runtime::new();
    let out = rt.run(&b, &unique("cfg-reldest"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("warning"));
    assert_eq!(
        mounts_at(&last_json(&out), "/tmp")[0]["source"],
        "relative-dest"
    );
}

/// config.md#configMounts: bind mount sources are absolute or relative to the bundle.
#[test]
fn bind_mount_source_may_be_relative_to_the_bundle() {
    let b = Bundle::new(&["probe", "read", "/tmp/file"]).edit(|c| {
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/tmp", "type": "none", "source": "data", "options": ["bind", "ro"]
        }));
    });
    std::fs::create_dir(b.path().join("data")).unwrap();
    std::fs::write(b.path().join("data/file"), "from the bundle").unwrap();
    let out = Runtime::new().run(&b, &unique("cfg-relsrc"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "from the bundle");
}

// ---------------------------------------------------------------------------------------------
// Process (config.md#configProcess)

/// config.md#configProcess: terminal defaults to false (no terminal), and runtimes MUST ignore
/// consoleSize when terminal is false or unset.
#[test]
fn console_size_is_ignored_without_a_terminal() {
    let b = Bundle::new(&["probe", "report"]).edit(|c| {
        c["process"]
            .as_object_mut()
            .unwrap()
            .remove("terminal")
            .unwrap();
        c["process"]["consoleSize"] = json!({"height": 10, "width": 20});
    });
    let r = Runtime::new().report(&b);
    assert_eq!(r["tty"], false);
    assert_eq!(r["fds"][0]["target"], "/dev/null");
}

/// config.md#configProcess: consoleSize is the size in characters of the terminal.
#[test]
fn console_size_sizes_the_terminal() {
    let rt = Runtime::new();
    let b = Bundle::new(&["stty", "size"]).edit(|c| {
        c["process"]["terminal"] = json!(true);
        c["process"]["consoleSize"] = json!({"height": 31, "width": 97});
    });
    let id = unique("cfg-console");
    let (_, text) = run_with_console(&rt, &b, &id);
    assert_eq!(text.trim(), "31 97");
    rt.wait_status(&id, "stopped", WAIT);
}

/// config.md#configProcess: cwd MUST be an absolute path (config.md#valid-values: an error).
#[test]
fn relative_cwd_is_rejected() {
    let b = Bundle::new(&["probe", "report"]).edit(|c| c["process"]["cwd"] = json!("home"));
    rejected(&b, &["process.cwd", "absolute"]);
}

/// config.md#configProcess: env has environ's semantics, NAME=value strings; an entry without a
/// name and '=' is an invalid value (an error).
#[test]
fn env_entry_that_is_not_name_equals_value_is_rejected() {
    for entry in ["NO_EQUALS", "=value"] {
        let b = Bundle::new(&["probe", "report"])
            .edit(|c| c["process"]["env"] = json!(["PATH=/bin", entry]));
        rejected(&b, &["process.env", entry]);
    }
}

/// config.md#configProcess: args has execvp's argv semantics, and its first entry is looked up
/// as execvp's file (through PATH from process.env when it has no slash).
#[test]
fn args_become_argv_and_the_first_is_found_like_execvp() {
    let rt = Runtime::new();
    for (args, path) in [
        (
            ["probe", "read", "/proc/self/cmdline"],
            "PATH=/nowhere:/bin",
        ),
        (
            ["/bin/probe", "read", "/proc/self/cmdline"],
            "PATH=/nowhere",
        ),
    ] {
        let b = Bundle::new(&args).edit(|c| c["process"]["env"] = json!([path]));
        let out = rt.run(&b, &unique("cfg-args"));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("{}\0", args.join("\0"))
        );
    }
}

// ---------------------------------------------------------------------------------------------
// POSIX process: rlimits (config.md#configPOSIXProcess)

/// config.md#configPOSIXProcess: the runtime MUST generate an error for rlimit types that cannot
/// be mapped to a kernel interface.
#[test]
fn unknown_rlimit_type_is_rejected() {
    let b = Bundle::new(&["probe", "report"]).edit(|c| {
        c["process"]["rlimits"] = json!([{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}]);
    });
    rejected(&b, &["RLIMIT_BOGUS"]);
}

/// config.md#configPOSIXProcess: rlimits with duplicated entries of one type MUST generate an
/// error.
#[test]
fn duplicate_rlimit_type_is_rejected() {
    let b = Bundle::new(&["probe", "report"]).edit(|c| {
        c["process"]["rlimits"] = json!([
            {"type": "RLIMIT_NOFILE", "soft": 100, "hard": 100},
            {"type": "RLIMIT_NOFILE", "soft": 200, "hard": 200}
        ]);
    });
    rejected(&b, &["RLIMIT_NOFILE", "twice"]);
}

// ---------------------------------------------------------------------------------------------
// Linux process (config.md#configLinuxProcess)

/// config.md#configLinuxProcess (spec 1.0.2): a capability that cannot be mapped to a kernel
/// interface MUST cause an error.
#[test]
fn unknown_capability_is_rejected() {
    let b = Bundle::new(&["probe", "report"]).edit(|c| {
        c["process"]["capabilities"]["bounding"]
            .as_array_mut()
            .unwrap()
            .push(json!("CAP_BOGUS"));
    });
    rejected(&b, &["CAP_BOGUS"]);
}

/// config.md#configLinuxProcess: if oomScoreAdj is not set, the runtime MUST NOT change
/// oom_score_adj: the process keeps the value of whoever started the runtime.
#[test]
fn unset_oom_score_adj_is_left_as_inherited() {
    let rt = Runtime::new();
    let b = Bundle::new(&["probe", "report"]);
    assert!(b.config["process"].get("oomScoreAdj").is_none());
    let mut cmd = rt.command(&["run", "--bundle", b.path_str(), &unique("cfg-oom")]);
    // SAFETY: between fork and exec only open/write/close, which are async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            let fd = libc::open(c"/proc/self/oom_score_adj".as_ptr(), libc::O_WRONLY);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let written = libc::write(fd, b"123".as_ptr().cast(), 3);
            libc::close(fd);
            if written != 3 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().expect("spawn mini-run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(last_json(&out)["oom_score_adj"], 123);
}

/// runtime.md#create and config.md#valid-values: a property the runtime cannot apply MUST be
/// an error: mini-run has no AppArmor support, so an apparmorProfile fails create.
#[test]
fn apparmor_profile_that_cannot_be_applied_is_rejected() {
    let b = Bundle::new(&["probe", "report"])
        .edit(|c| c["process"]["apparmorProfile"] = json!("conformance-profile"));
    rejected(&b, &["apparmorProfile"]);
}

/// runtime.md#create and config.md#valid-values: likewise for an SELinux selinuxLabel.
#[test]
fn selinux_label_that_cannot_be_applied_is_rejected() {
    let b = Bundle::new(&["probe", "report"]).edit(|c| {
        c["process"]["selinuxLabel"] = json!("system_u:system_r:container_t:s0");
    });
    rejected(&b, &["selinuxLabel"]);
}

// ---------------------------------------------------------------------------------------------
// Hostname and domainname (config.md#configHostname, #configDomainname)

/// config.md#configHostname: hostname is set in the container's UTS namespace; mini-run, like
/// runc, refuses to set it in the runtime's (no uts namespace in the config).
#[test]
fn hostname_without_a_uts_namespace_is_rejected() {
    let b = Bundle::new(&["probe", "report"]).edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "uts");
    });
    rejected(&b, &["hostname", "uts"]);
}

/// config.md#configDomainname: likewise for domainname.
#[test]
fn domainname_without_a_uts_namespace_is_rejected() {
    let b = Bundle::new(&["probe", "report"]).edit(|c| {
        c.as_object_mut().unwrap().remove("hostname");
        c["domainname"] = json!("example.test");
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "uts");
    });
    rejected(&b, &["domainname", "uts"]);
}

// ---------------------------------------------------------------------------------------------
// Hooks (config.md#configHooks)

/// config.md#configHooks: a hook's path MUST be absolute (execv's path: no PATH lookup).
#[test]
fn relative_hook_path_is_rejected() {
    let b = Bundle::new(&["probe", "report"])
        .edit(|c| c["hooks"] = json!({"createRuntime": [{"path": "true"}]}));
    rejected(&b, &["createRuntime", "absolute"]);
}

/// config.md#configHooks: a hook's timeout, if set, MUST be greater than zero.
#[test]
fn hook_timeout_of_zero_is_rejected() {
    let b = Bundle::new(&["probe", "report"])
        .edit(|c| c["hooks"] = json!({"poststop": [{"path": "/bin/true", "timeout": 0}]}));
    rejected(&b, &["poststop", "timeout"]);
}

/// config.md#configHooks: hooks MUST be called in the listed order (prestart before
/// createRuntime, createContainer after createRuntime, ...), each with the container's state
/// on stdin.
#[test]
fn hooks_run_in_the_listed_order_with_the_state_on_stdin() {
    let rt = Runtime::new();
    let dir = TempDir::new("hook-order");
    let host_log = dir.path().join("order");
    let hook = |kind: &str, n: u32, log: &str| {
        json!({"path": "/bin/sh", "args": ["sh", "-c", format!(
            "st=$(sed 's/.*\"status\":\"\\([a-z]*\\)\".*/\\1/'); echo {kind}-{n} $st >> {log}"
        )]})
    };
    let host = host_log.to_str().unwrap().to_string();
    let b = with_tmp(Bundle::new(&["true"]), &dir).edit(|c| {
        let mut hooks = serde_json::Map::new();
        for kind in [
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop",
        ] {
            // startContainer runs in the container, where the host directory is /tmp.
            let log = if kind == "startContainer" {
                "/tmp/order"
            } else {
                host.as_str()
            };
            hooks.insert(kind.into(), json!([hook(kind, 1, log), hook(kind, 2, log)]));
        }
        c["hooks"] = Value::Object(hooks);
    });
    let id = unique("cfg-order");
    rt.ok(&["create", "--bundle", b.path_str(), &id]);
    rt.ok(&["start", &id]);
    rt.wait_status(&id, "stopped", WAIT);
    rt.ok(&["delete", &id]);
    let order = std::fs::read_to_string(&host_log).unwrap();
    assert_eq!(
        order.lines().collect::<Vec<_>>(),
        [
            "prestart-1 creating",
            "prestart-2 creating",
            "createRuntime-1 creating",
            "createRuntime-2 creating",
            "createContainer-1 creating",
            "createContainer-2 creating",
            "startContainer-1 created",
            "startContainer-2 created",
            "poststart-1 running",
            "poststart-2 running",
            "poststop-1 stopped",
            "poststop-2 stopped",
        ]
    );
}

/// config.md#configHooks: prestart, createRuntime, poststart and poststop hooks' paths MUST
/// resolve in, and the hooks MUST be executed in, the runtime namespace; createContainer's path
/// MUST resolve in the runtime namespace, but it MUST be executed in the container namespace.
#[test]
fn runtime_namespace_hooks_and_create_container_run_where_the_spec_says() {
    let rt = Runtime::new();
    let dir = TempDir::new("hook-ns");
    // A script only the host has: its path resolves in the runtime namespace alone.
    let script = dir.path().join("record-ns");
    let log = dir.path().join("ns");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ncat > /dev/null\necho \"$1 $(readlink /proc/self/ns/mnt) $(readlink /proc/self/ns/net)\" >> {}\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = script.to_str().unwrap().to_string();
    let b = Bundle::new(&["probe", "sleep", "60"]).edit(|c| {
        let mut hooks = serde_json::Map::new();
        for kind in [
            "prestart",
            "createRuntime",
            "createContainer",
            "poststart",
            "poststop",
        ] {
            hooks.insert(kind.into(), json!([{"path": path, "args": [path, kind]}]));
        }
        c["hooks"] = Value::Object(hooks);
    });
    let id = unique("cfg-hookns");
    rt.ok(&["create", "--bundle", b.path_str(), &id]);
    let pid = rt.state(&id)["pid"].as_i64().unwrap();
    let ns = |p: &str, kind: &str| {
        std::fs::read_link(format!("{p}/ns/{kind}"))
            .unwrap()
            .to_string_lossy()
            .into_owned()
    };
    let host = format!("{} {}", ns("/proc/self", "mnt"), ns("/proc/self", "net"));
    let container = format!(
        "{} {}",
        ns(&format!("/proc/{pid}"), "mnt"),
        ns(&format!("/proc/{pid}"), "net")
    );
    rt.ok(&["start", &id]);
    rt.ok(&["delete", "--force", &id]);
    let text = std::fs::read_to_string(&log).unwrap();
    let seen: Vec<(&str, &str)> = text.lines().map(|l| l.split_once(' ').unwrap()).collect();
    assert_eq!(
        seen,
        [
            ("prestart", host.as_str()),
            ("createRuntime", host.as_str()),
            ("createContainer", container.as_str()),
            ("poststart", host.as_str()),
            ("poststop", host.as_str()),
        ]
    );
}

/// config.md#configHooksPrestart, #configHooksCreateRuntime, #configHooksCreateContainer:
/// these hooks MUST be called during create after the runtime environment was made (the
/// config's mounts are in place) but before pivot_root.
#[test]
fn create_hooks_run_after_the_mounts_and_before_pivot_root() {
    let rt = Runtime::new();
    let dir = TempDir::new("hook-pivot");
    let record = |kind: &str, proc_dir: &str| {
        let out = dir.path().join(kind);
        json!({"path": "/bin/sh", "args": ["sh", "-c", format!(
            "pid=$(sed 's/.*\"pid\":\\([0-9]*\\).*/\\1/'); p={proc_dir}; \
             readlink $p/root > {0}; grep 'tmpfs before-pivot' $p/mountinfo | cut -d' ' -f5 >> {0}",
            out.display()
        )]})
    };
    let b = Bundle::new(&["true"]).edit(|c| {
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/tmp", "type": "tmpfs", "source": "before-pivot"
        }));
        c["hooks"] = json!({
            "prestart": [record("prestart", "/proc/$pid")],
            "createRuntime": [record("createRuntime", "/proc/$pid")],
            "createContainer": [record("createContainer", "/proc/self")],
        });
    });
    let id = unique("cfg-prepivot");
    rt.ok(&["create", "--bundle", b.path_str(), &id]);
    let rootfs = std::fs::canonicalize(fixture_rootfs()).unwrap();
    let want = format!("/\n{}/tmp\n", rootfs.display());
    for kind in ["prestart", "createRuntime", "createContainer"] {
        let seen = std::fs::read_to_string(dir.path().join(kind)).unwrap();
        assert_eq!(seen, want, "{kind}: root, then where the config's tmpfs is");
    }
}

/// config.md#configHooks: startContainer hooks' path MUST resolve in, and the hooks MUST be
/// executed in, the container namespace.
#[test]
fn start_container_hook_resolves_and_runs_in_the_container() {
    // /bin/probe exists only in the container's rootfs.
    assert!(!Path::new("/bin/probe").exists());
    let rt = Runtime::new();
    let dir = TempDir::new("hook-sc");
    let b = with_tmp(Bundle::new(&["true"]), &dir).edit(|c| {
        c["hooks"] = json!({"startContainer": [{
            "path": "/bin/probe", "args": ["probe", "try-write", "/tmp/hook-ran", "inside"]
        }]});
    });
    let id = unique("cfg-hooksc");
    rt.ok(&["create", "--bundle", b.path_str(), &id]);
    rt.ok(&["start", &id]);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("hook-ran")).unwrap(),
        "inside"
    );
}

// ---------------------------------------------------------------------------------------------
// Annotations (config.md#configAnnotations)

/// config.md#configAnnotations: keys MUST NOT be an empty string.
#[test]
fn empty_annotation_key_is_rejected() {
    let b = Bundle::new(&["probe", "report"]).edit(|c| c["annotations"] = json!({"": "x"}));
    rejected(&b, &["annotations", "empty"]);
}

/// config.md#configAnnotations: annotations MUST be a key-value map whose values MUST be strings.
#[test]
fn non_string_annotation_value_is_rejected() {
    let b = Bundle::new(&["probe", "report"])
        .edit(|c| c["annotations"] = json!({"com.example.count": 3}));
    rejected(&b, &["config.json"]);
}

// ---------------------------------------------------------------------------------------------
// Extensibility (config.md#configExtensibility)

/// config.md#configExtensibility: runtimes MUST ignore unknown properties, without generating
/// errors (at the top level and inside known objects alike).
#[test]
fn unknown_properties_are_ignored() {
    let b = Bundle::new(&["probe", "report"]).edit(|c| {
        c["org.example.extension"] = json!({"nested": [1, 2]});
        c["process"]["org.example.flag"] = json!(true);
        c["process"]["user"]["org.example.name"] = json!("x");
        c["root"]["org.example.layer"] = json!(7);
        c["linux"]["org.example.tuning"] = json!({"x": "y"});
        c["mounts"][0]["org.example.hint"] = json!("fast");
        c["hooks"] = json!({
            "org.example.onPause": [{"path": "/bin/false"}],
            "poststop": [{"path": "/bin/true", "org.example.note": "ignored"}]
        });
    });
    let r = Runtime::new().report(&b);
    assert_eq!(r["pid"], 1);
    assert_eq!(r["hostname"], b.config["hostname"]);
}
