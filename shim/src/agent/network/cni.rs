//! The CNI plugin protocol (CNI spec 1.0, "Execution Protocol" and "Network configuration
//! lists"): a plugin is an executable found in the plugin directories; the runtime passes the
//! operation in `CNI_COMMAND` (with `CNI_CONTAINERID`, `CNI_NETNS`, `CNI_IFNAME`, `CNI_PATH`)
//! and the plugin's configuration as JSON on stdin. A plugin answers a result (ADD) or nothing
//! on stdout and exit status 0, or an error object `{code, msg, details}` and a non-zero status.
//!
//! A list runs its plugins in order for ADD and CHECK and in reverse for DEL; each plugin's
//! configuration is its entry in `plugins` with the list's `name` and `cniVersion` added, and,
//! after the first ADD, the previous plugin's result as `prevResult` (for CHECK and DEL, the
//! list's recorded ADD result). The runtime's per-container settings (CNI conventions,
//! "Dynamic plugin specific fields") go to each plugin as `runtimeConfig`, restricted to the
//! capabilities the plugin declares in its `capabilities` (e.g. `portMappings` for `portmap`).

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;
use wait_timeout::ChildExt;

/// Where Debian's `containernetworking-plugins` puts the plugins, then the upstream default.
pub const PLUGIN_DIRS: [&str; 2] = ["/usr/lib/cni", "/opt/cni/bin"];

/// How long one plugin may run before it is killed.
pub const PLUGIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Where plugins are looked for, and how long each may run.
#[derive(Debug, Clone)]
pub struct Plugins {
    /// The directories searched, in order (also the plugins' `CNI_PATH`).
    pub dirs: Vec<PathBuf>,
    /// The time limit of one plugin run.
    pub timeout: Duration,
}

impl Default for Plugins {
    fn default() -> Plugins {
        Plugins {
            dirs: PLUGIN_DIRS.iter().map(PathBuf::from).collect(),
            timeout: PLUGIN_TIMEOUT,
        }
    }
}

/// The operations of the CNI spec the agent uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Attach the container to the network.
    Add,
    /// Check that the attachment is as ADD left it.
    Check,
    /// Detach the container and release what ADD took.
    Del,
}

impl Op {
    /// The `CNI_COMMAND` value.
    pub fn name(self) -> &'static str {
        match self {
            Op::Add => "ADD",
            Op::Check => "CHECK",
            Op::Del => "DEL",
        }
    }
}

/// Which attachment an operation is about.
#[derive(Debug, Clone)]
pub struct Attachment {
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_NETNS`: the path of the container's network namespace.
    pub netns: PathBuf,
    /// `CNI_IFNAME`.
    pub ifname: String,
}

/// Why a plugin (or a list) failed: the plugin's own message when it gave one.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct CniError(pub String);

/// Runs `op` for the whole network configuration list `conflist` on `attachment`. `recorded`
/// is the list's ADD result (the `prevResult` of CHECK and DEL); `runtime` maps capability
/// names to their values. Returns the list's result (ADD: the last plugin's result;
/// CHECK/DEL: `Value::Null`).
pub fn run_list(
    op: Op,
    conflist: &Value,
    attachment: &Attachment,
    recorded: Option<&Value>,
    runtime: &Value,
    plugins: &Plugins,
) -> Result<Value, CniError> {
    let name = conflist["name"].as_str().unwrap_or_default();
    let version = conflist["cniVersion"].as_str().unwrap_or("1.0.0");
    let list = conflist["plugins"]
        .as_array()
        .ok_or_else(|| CniError(format!("network {name:?}: the conflist has no plugins")))?;
    let mut order: Vec<&Value> = list.iter().collect();
    if op == Op::Del {
        order.reverse();
    }
    let mut prev = recorded.cloned();
    for plugin in order {
        let mut config = plugin.clone();
        config["name"] = json!(name);
        config["cniVersion"] = json!(version);
        if let Some(prev) = &prev {
            config["prevResult"] = prev.clone();
        }
        if let Some(capabilities) = runtime.as_object() {
            for (capability, value) in capabilities {
                if plugin["capabilities"][capability] == json!(true) {
                    config["runtimeConfig"][capability] = value.clone();
                }
            }
        }
        let result = run_plugin(op, &config, attachment, plugins)?;
        if op == Op::Add {
            prev = Some(result);
        }
    }
    Ok(if op == Op::Add {
        prev.unwrap_or(Value::Null)
    } else {
        Value::Null
    })
}

/// The path of plugin `typ` in `dirs`, or the error naming the Debian package.
pub fn find_plugin(typ: &str, dirs: &[PathBuf]) -> Result<PathBuf, CniError> {
    if typ.is_empty() || typ.contains('/') {
        return Err(CniError(format!("{typ:?} is not a CNI plugin name")));
    }
    dirs.iter()
        .map(|d| d.join(typ))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            CniError(format!(
                "CNI plugin {typ:?} is not installed in {}: install the Debian package \
                 containernetworking-plugins",
                search_path(dirs, " or ")
            ))
        })
}

fn search_path(dirs: &[PathBuf], sep: &str) -> String {
    dirs.iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(sep)
}

/// Runs one plugin with `config` on stdin; kills it after `timeout`.
pub fn run_plugin(
    op: Op,
    config: &Value,
    attachment: &Attachment,
    plugins: &Plugins,
) -> Result<Value, CniError> {
    let timeout = plugins.timeout;
    let typ = config["type"].as_str().unwrap_or_default();
    let binary = find_plugin(typ, &plugins.dirs)?;
    let failed = |what: String| CniError(format!("CNI plugin {typ} {}: {what}", op.name()));
    let mut child = Command::new(&binary)
        .env_clear()
        .env("CNI_COMMAND", op.name())
        .env("CNI_CONTAINERID", &attachment.container_id)
        .env("CNI_NETNS", &attachment.netns)
        .env("CNI_IFNAME", &attachment.ifname)
        .env("CNI_PATH", search_path(&plugins.dirs, ":"))
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| failed(format!("cannot run {}: {e}", binary.display())))?;
    let input = serde_json::to_vec(config).expect("JSON serializes");
    let mut stdin = child.stdin.take().expect("piped");
    // The pipes are served by threads: a plugin that fills stdout before reading all of
    // stdin (or hangs) must not block the agent past the timeout.
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let mut stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stdout.by_ref().take(1 << 20).read_to_end(&mut out);
        out
    });
    let mut stderr = child.stderr.take().expect("piped");
    let err_reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stderr.by_ref().take(64 << 10).read_to_end(&mut out);
        out
    });
    let status = match child.wait_timeout(timeout) {
        Ok(Some(status)) => status,
        Ok(None) | Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(failed(format!(
                "did not answer within {}s and was killed",
                timeout.as_secs()
            )));
        }
    };
    let _ = writer.join();
    let out = reader.join().unwrap_or_default();
    let err = err_reader.join().unwrap_or_default();
    if !status.success() {
        return Err(failed(plugin_message(&out, &err, status)));
    }
    if out.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&out).map_err(|e| failed(format!("its result is not JSON: {e}")))
}

/// The plugin's own error message (`msg` and `details` of its error object), else its stderr.
fn plugin_message(stdout: &[u8], stderr: &[u8], status: std::process::ExitStatus) -> String {
    if let Ok(error) = serde_json::from_slice::<Value>(stdout) {
        if let Some(msg) = error["msg"].as_str() {
            return match error["details"].as_str().filter(|d| !d.is_empty()) {
                Some(details) => format!("{msg}: {details}"),
                None => msg.to_string(),
            };
        }
    }
    let text = String::from_utf8_lossy(if stderr.is_empty() { stdout } else { stderr });
    let line = text.trim().lines().last().unwrap_or_default().to_string();
    if line.is_empty() {
        format!("it failed ({status}) without a message")
    } else {
        line
    }
}

/// The first IPv4 address of an ADD result (`ips[].address`, CIDR notation), without its
/// prefix length.
pub fn result_address(result: &Value) -> Option<String> {
    result["ips"]
        .as_array()?
        .iter()
        .filter_map(|ip| ip["address"].as_str())
        .find(|a| !a.contains(':'))
        .map(|a| a.split('/').next().unwrap_or(a).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_is_the_first_ipv4_of_the_result() {
        let result = json!({"cniVersion":"1.0.0","ips":[
            {"address":"fd00::2/64"},{"address":"10.88.3.7/24","gateway":"10.88.3.1"}]});
        assert_eq!(result_address(&result).as_deref(), Some("10.88.3.7"));
        assert_eq!(result_address(&json!({})), None);
    }

    #[test]
    fn plugin_errors_carry_the_plugins_message() {
        let ok = std::process::ExitStatus::default();
        let out = br#"{"cniVersion":"1.0.0","code":11,"msg":"failed to allocate","details":"range full"}"#;
        assert_eq!(
            plugin_message(out, b"", ok),
            "failed to allocate: range full"
        );
        assert_eq!(plugin_message(b"", b"panic: x\nboom\n", ok), "boom");
    }

    #[test]
    fn a_missing_plugin_names_the_package() {
        let dirs = Plugins::default().dirs;
        let e = find_plugin("no-such-plugin", &dirs).unwrap_err();
        assert!(e.0.contains("containernetworking-plugins"), "{e}");
        assert!(find_plugin("../bridge", &dirs).is_err());
    }

    /// A directory of shell-script plugins, removed on drop.
    struct ScriptPlugins(PathBuf);

    impl ScriptPlugins {
        fn new(scripts: &[(&str, &str)]) -> ScriptPlugins {
            use std::os::unix::fs::PermissionsExt;
            let dir = std::env::temp_dir().join(format!(
                "mini-shim-cni-{}-{}",
                std::process::id(),
                scripts[0].0
            ));
            std::fs::create_dir_all(&dir).unwrap();
            for (name, body) in scripts {
                let path = dir.join(name);
                std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            }
            ScriptPlugins(dir)
        }

        fn plugins(&self, timeout: Duration) -> Plugins {
            Plugins {
                dirs: vec![self.0.clone()],
                timeout,
            }
        }
    }

    impl Drop for ScriptPlugins {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn attachment() -> Attachment {
        Attachment {
            container_id: "c1".into(),
            netns: "/run/netns/none".into(),
            ifname: "eth0".into(),
        }
    }

    #[test]
    fn a_list_passes_each_result_on_and_del_runs_in_reverse() {
        // `first` answers a result; `second` answers another only when it got the first's
        // as prevResult; both record the order of DEL calls.
        let scripts = ScriptPlugins::new(&[
            (
                "first",
                r#"[ "$CNI_COMMAND" = DEL ] && { echo first >> "$(dirname "$0")/del"; exit 0; }
echo '{"cniVersion":"1.0.0","ips":[{"address":"10.88.0.5/24"}]}'"#,
            ),
            (
                "second",
                r#"[ "$CNI_COMMAND" = DEL ] && { echo second >> "$(dirname "$0")/del"; exit 0; }
grep -q '"prevResult":{"cniVersion":"1.0.0","ips":\[{"address":"10.88.0.5/24"}\]}' || {
  echo '{"code":100,"msg":"no prevResult"}'; exit 1; }
echo '{"cniVersion":"1.0.0","ips":[{"address":"10.88.0.6/24"}]}'"#,
            ),
        ]);
        let list = json!({"cniVersion": "1.0.0", "name": "t",
                          "plugins": [{"type": "first"}, {"type": "second"}]});
        let plugins = scripts.plugins(Duration::from_secs(10));
        let result = run_list(Op::Add, &list, &attachment(), None, &json!({}), &plugins).unwrap();
        assert_eq!(result_address(&result).as_deref(), Some("10.88.0.6"));
        run_list(
            Op::Del,
            &list,
            &attachment(),
            Some(&result),
            &json!({}),
            &plugins,
        )
        .unwrap();
        let order = std::fs::read_to_string(scripts.0.join("del")).unwrap();
        assert_eq!(order, "second\nfirst\n");
    }

    #[test]
    fn a_failing_plugin_reports_its_own_message_and_a_hanging_one_is_killed() {
        let scripts = ScriptPlugins::new(&[
            (
                "failing",
                r#"echo '{"cniVersion":"1.0.0","code":7,"msg":"bridge mini0 is busy"}'; exit 1"#,
            ),
            ("hanging", "exec sleep 600"),
        ]);
        let plugins = scripts.plugins(Duration::from_secs(1));
        let list =
            |typ: &str| json!({"cniVersion": "1.0.0", "name": "t", "plugins": [{"type": typ}]});
        let e = run_list(
            Op::Add,
            &list("failing"),
            &attachment(),
            None,
            &json!({}),
            &plugins,
        )
        .unwrap_err();
        assert_eq!(e.0, "CNI plugin failing ADD: bridge mini0 is busy");
        let e = run_list(
            Op::Add,
            &list("hanging"),
            &attachment(),
            None,
            &json!({}),
            &plugins,
        )
        .unwrap_err();
        assert!(
            e.0.contains("did not answer within 1s and was killed"),
            "{e}"
        );
    }
}
