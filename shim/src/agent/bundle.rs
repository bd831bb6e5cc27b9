//! Bundle preparation: the OCI `config.json` a workload runs with, built from the request,
//! the image's configuration (when the source is an image) and mini-run's default spec.

use super::Error;
use crate::protocol::{Network, RunRequest, MAX_ID};
use serde_json::{json, Value};

/// The CFS period the CPU limit is expressed in, microseconds.
const CPU_PERIOD_US: u64 = 100_000;

/// What an image says about the process to run (OCI image config's `config`).
#[derive(Debug, Clone, Default)]
pub struct ImageDefaults {
    /// `Entrypoint`.
    pub entrypoint: Vec<String>,
    /// `Cmd`.
    pub cmd: Vec<String>,
    /// `Env` (`NAME=value`).
    pub env: Vec<String>,
    /// `WorkingDir`.
    pub working_dir: Option<String>,
    /// `User`, numeric `uid[:gid]` only.
    pub user: Option<(u32, u32)>,
}

/// The container's root filesystem.
#[derive(Debug, Clone)]
pub struct Root {
    /// Its path (config.json's `root.path`).
    pub path: std::path::PathBuf,
    /// Mounted read-only: a shared rootfs directory, which no container may change.
    pub readonly: bool,
}

/// Builds config.json for `req` with its root at `root`, the process completed from `image`,
/// and the cgroup at `cgroups_path`.
pub fn config(
    req: &RunRequest,
    root: &Root,
    image: &ImageDefaults,
    cgroups_path: &str,
) -> Result<Value, Error> {
    let mut spec = mini_run::spec::default_spec(false);
    spec["root"] = json!({"path": root.path, "readonly": root.readonly});
    if root.readonly {
        // A shared root filesystem directory is mounted read-only; /tmp is the container's
        // own scratch space (a tmpfs, counted against its memory limit), as with
        // `docker run --read-only --tmpfs /tmp`.
        spec["mounts"]
            .as_array_mut()
            .expect("the default spec has mounts")
            .push(json!({
                "destination": "/tmp",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "nodev", "mode=1777", "size=64m"],
            }));
    }
    spec["hostname"] = json!(req.id);
    let process = &mut spec["process"];
    process["terminal"] = json!(false);
    process["args"] = json!(args(req, image)?);
    process["env"] = json!(env(req, image)?);
    if let Some(cwd) = req.process.cwd.as_ref().or(image.working_dir.as_ref()) {
        if !cwd.starts_with('/') {
            return Err(Error::BadRequest(format!(
                "process.cwd {cwd:?} must be an absolute path"
            )));
        }
        process["cwd"] = json!(cwd);
    }
    let (uid, gid) = image.user.unwrap_or((0, 0));
    process["user"] = json!({
        "uid": id("process.uid", req.process.uid, uid)?,
        "gid": id("process.gid", req.process.gid, gid)?,
    });
    let linux = &mut spec["linux"];
    linux["cgroupsPath"] = json!(cgroups_path);
    let resources = &mut linux["resources"];
    if let Some(bytes) = req.resources.memory_bytes {
        if bytes < 4 << 20 {
            return Err(Error::BadRequest(format!(
                "resources.memory_bytes {bytes} is below the 4 MiB a container needs to start"
            )));
        }
        resources["memory"] = json!({"limit": bytes});
    }
    if let Some(millis) = req.resources.cpu_millis {
        if millis == 0 {
            return Err(Error::BadRequest(
                "resources.cpu_millis must be above 0 (leave it out for no limit)".into(),
            ));
        }
        resources["cpu"] = json!({"quota": millis * CPU_PERIOD_US / 1000, "period": CPU_PERIOD_US});
    }
    if let Some(pids) = req.resources.pids {
        if pids == 0 {
            return Err(Error::BadRequest(
                "resources.pids must be above 0 (leave it out for no limit)".into(),
            ));
        }
        resources["pids"] = json!({"limit": pids});
    }
    if req.network == Network::Host {
        let namespaces = linux["namespaces"].as_array_mut().expect("default spec");
        namespaces.retain(|ns| ns["type"] != "network");
    }
    Ok(spec)
}

/// The uid or gid to run as: the request's `given`, else the image's; refused above
/// [`MAX_ID`].
fn id(field: &str, given: Option<u32>, image: u32) -> Result<u32, Error> {
    let (id, from) = match given {
        Some(id) => (id, field.to_owned()),
        None => (image, format!("the image's user ({field})")),
    };
    if id > MAX_ID {
        return Err(Error::BadRequest(format!(
            "{from} {id} is refused: ids must be 0 to {MAX_ID} (the kernel reads 4294967295 \
             as \"no change\", which would leave the process root)"
        )));
    }
    Ok(id)
}

fn args(req: &RunRequest, image: &ImageDefaults) -> Result<Vec<String>, Error> {
    let args = if !req.process.args.is_empty() {
        // Like `docker run IMAGE ARGS`: the arguments replace Cmd, after the Entrypoint.
        [image.entrypoint.clone(), req.process.args.clone()].concat()
    } else {
        [image.entrypoint.clone(), image.cmd.clone()].concat()
    };
    if args.is_empty() {
        return Err(Error::BadRequest(
            "process.args is empty and the source names no command: give process.args".into(),
        ));
    }
    Ok(args)
}

fn env(req: &RunRequest, image: &ImageDefaults) -> Result<Vec<String>, Error> {
    let mut env: Vec<String> =
        vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()];
    for entry in image.env.iter().chain(&req.process.env) {
        let Some((name, _)) = entry.split_once('=').filter(|(n, _)| !n.is_empty()) else {
            return Err(Error::BadRequest(format!(
                "environment entry {entry:?} is not NAME=value"
            )));
        };
        env.retain(|e| e.split_once('=').map(|(n, _)| n) != Some(name));
        env.push(entry.clone());
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> Root {
        Root {
            path: "/r".into(),
            readonly: true,
        }
    }

    fn request(body: &str) -> RunRequest {
        serde_json::from_str(body).unwrap()
    }

    #[test]
    fn a_read_only_root_gets_a_private_writable_tmp() {
        let req = request(r#"{"id":"a","source":{"rootfs":"/r"},"process":{"args":["sh"]}}"#);
        let c = config(&req, &root(), &ImageDefaults::default(), "/x/a").unwrap();
        let tmp = c["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["destination"] == "/tmp")
            .expect("a /tmp mount");
        assert_eq!(tmp["type"], "tmpfs");
        let writable = Root {
            path: "/r".into(),
            readonly: false,
        };
        let c = config(&req, &writable, &ImageDefaults::default(), "/x/a").unwrap();
        assert!(!c["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["destination"] == "/tmp"));
    }

    #[test]
    fn resources_become_cgroup_limits() {
        let req = request(
            r#"{"id":"a","source":{"rootfs":"/r"},"process":{"args":["sh"]},
                "resources":{"memory_bytes":67108864,"cpu_millis":500,"pids":64}}"#,
        );
        let c = config(&req, &root(), &ImageDefaults::default(), "/x/a").unwrap();
        let res = &c["linux"]["resources"];
        assert_eq!(res["memory"]["limit"], 67108864);
        assert_eq!(res["cpu"]["quota"], 50_000);
        assert_eq!(res["cpu"]["period"], 100_000);
        assert_eq!(res["pids"]["limit"], 64);
        assert_eq!(c["linux"]["cgroupsPath"], "/x/a");
    }

    #[test]
    fn request_args_follow_the_image_entrypoint_and_env_overrides() {
        let image = ImageDefaults {
            entrypoint: vec!["/bin/tini".into()],
            cmd: vec!["sh".into()],
            env: vec!["A=1".into(), "B=2".into()],
            working_dir: Some("/srv".into()),
            user: Some((5, 6)),
        };
        let req = request(
            r#"{"id":"a","source":{"rootfs":"/r"},"process":{"args":["echo","hi"],"env":["B=3"]}}"#,
        );
        let c = config(&req, &root(), &image, "/x/a").unwrap();
        assert_eq!(c["process"]["args"], json!(["/bin/tini", "echo", "hi"]));
        let env = c["process"]["env"].as_array().unwrap();
        assert!(env.contains(&json!("A=1")) && env.contains(&json!("B=3")));
        assert!(!env.contains(&json!("B=2")));
        assert_eq!(c["process"]["cwd"], "/srv");
        assert_eq!(c["process"]["user"], json!({"uid": 5, "gid": 6}));
    }

    #[test]
    fn no_command_at_all_is_a_bad_request() {
        let req = request(r#"{"id":"a","source":{"rootfs":"/r"}}"#);
        let e = config(&req, &root(), &ImageDefaults::default(), "/x/a").unwrap_err();
        assert!(e.to_string().contains("process.args"), "{e}");
    }

    #[test]
    fn host_network_drops_the_network_namespace() {
        let req = request(
            r#"{"id":"a","source":{"rootfs":"/r"},"process":{"args":["sh"]},"network":"host"}"#,
        );
        let c = config(&req, &root(), &ImageDefaults::default(), "/x/a").unwrap();
        let ns = c["linux"]["namespaces"].as_array().unwrap();
        assert!(ns.iter().all(|n| n["type"] != "network"));
    }

    #[test]
    fn ids_the_kernel_reads_as_no_change_are_refused() {
        for field in ["uid", "gid"] {
            let req = request(&format!(
                r#"{{"id":"a","source":{{"rootfs":"/r"}},"process":{{"args":["sh"],"{field}":4294967295}}}}"#
            ));
            let e = config(&req, &root(), &ImageDefaults::default(), "/x/a").unwrap_err();
            assert!(matches!(e, Error::BadRequest(_)), "{e}");
            assert!(
                e.to_string()
                    .contains(&format!("process.{field} 4294967295")),
                "{e}"
            );
        }
        let image = ImageDefaults {
            cmd: vec!["sh".into()],
            user: Some((2_147_483_648, 0)),
            ..ImageDefaults::default()
        };
        let req = request(r#"{"id":"a","source":{"rootfs":"/r"}}"#);
        let e = config(&req, &root(), &image, "/x/a").unwrap_err();
        assert!(
            e.to_string().contains("the image's user (process.uid)"),
            "{e}"
        );
        let req = request(r#"{"id":"a","source":{"rootfs":"/r"},"process":{"uid":2147483647}}"#);
        let c = config(&req, &root(), &image, "/x/a").unwrap();
        assert_eq!(c["process"]["user"]["uid"], 2_147_483_647u32);
    }
}
