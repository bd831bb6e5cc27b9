//! A stored image: its identity, layers and the run defaults of its config, with the helpers
//! that turn them into a container's process (`args`, `env`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::spec::RunConfig;

/// An image in the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Image {
    /// The manifest digest (`sha256:...`): the image's identity.
    pub id: String,
    /// Names it can be looked up by (`localhost/busybox:latest`).
    pub names: Vec<String>,
    /// The config blob's digest.
    pub config_digest: String,
    /// The layers, base first.
    pub layers: Vec<Layer>,
    /// The run defaults and platform of the image config.
    pub config: ImageConfig,
}

/// One layer of an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer {
    /// The digest of the uncompressed tar stream (the config's `diff_id`); the store keeps one
    /// unpacked copy per `diff_id`.
    pub diff_id: String,
    /// The blob's digest as the manifest names it.
    pub digest: String,
    /// The blob's media type.
    pub media_type: String,
    /// The blob's size in bytes.
    pub size: u64,
}

/// What the image config says about running the image (image-spec "config.md",
/// `config` object), plus its platform.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// `KEY=value` entries.
    pub env: Vec<String>,
    /// The executable and its leading arguments (may be empty).
    pub entrypoint: Vec<String>,
    /// Default arguments, or the command when there is no entrypoint.
    pub cmd: Vec<String>,
    /// The working directory; empty means "/".
    pub working_dir: String,
    /// `user`, `uid`, `user:group` or `uid:gid`; empty means root. Resolve it with
    /// [`crate::resolve_user`] against the mounted rootfs.
    pub user: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// The graceful stop signal, e.g. "SIGTERM"; empty if the image names none.
    pub stop_signal: String,
    /// Documented ports ("80/tcp").
    pub exposed_ports: Vec<String>,
    /// Paths the image marks as volumes.
    pub volumes: Vec<String>,
    /// GOOS spelling, "linux".
    pub os: String,
    /// GOARCH spelling, "amd64".
    pub architecture: String,
}

impl ImageConfig {
    pub(crate) fn new(run: RunConfig, os: String, architecture: String) -> ImageConfig {
        ImageConfig {
            env: run.env,
            entrypoint: run.entrypoint,
            cmd: run.cmd,
            working_dir: run.working_dir,
            user: run.user,
            labels: run.labels,
            stop_signal: run.stop_signal,
            exposed_ports: run.exposed_ports,
            volumes: run.volumes,
            os,
            architecture,
        }
    }

    /// The process arguments for a container, as Docker and Kubernetes compose them:
    /// entrypoint followed by cmd; an `entrypoint` override drops the image's cmd, a `cmd`
    /// override replaces only the cmd. Empty if neither the image nor the overrides name a
    /// command (the caller must refuse that).
    pub fn args(&self, entrypoint: Option<&[String]>, cmd: Option<&[String]>) -> Vec<String> {
        let (ep, default_cmd) = match entrypoint {
            Some(ep) => (ep, &[][..]),
            None => (&self.entrypoint[..], &self.cmd[..]),
        };
        ep.iter()
            .chain(cmd.unwrap_or(default_cmd))
            .cloned()
            .collect()
    }

    /// The image's environment with `overrides` (`KEY=value`) applied: a key set in both takes
    /// the override's value at the image's position; new keys follow in order.
    pub fn env(&self, overrides: &[String]) -> Vec<String> {
        let key = |e: &str| e.split_once('=').map_or(e, |(k, _)| k).to_string();
        let mut out: Vec<String> = self.env.clone();
        for o in overrides {
            match out.iter_mut().find(|e| key(e) == key(o)) {
                Some(slot) => *slot = o.clone(),
                None => out.push(o.clone()),
            }
        }
        out
    }

    /// The working directory for the process ("/" when the image sets none).
    pub fn cwd(&self) -> &str {
        if self.working_dir.is_empty() {
            "/"
        } else {
            &self.working_dir
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn args_follow_entrypoint_and_cmd_rules() {
        let c = ImageConfig {
            entrypoint: v(&["/bin/sh", "-c"]),
            cmd: v(&["echo hi"]),
            ..Default::default()
        };
        assert_eq!(c.args(None, None), v(&["/bin/sh", "-c", "echo hi"]));
        assert_eq!(
            c.args(None, Some(&v(&["date"]))),
            v(&["/bin/sh", "-c", "date"])
        );
        assert_eq!(c.args(Some(&v(&["/bin/true"])), None), v(&["/bin/true"]));
        assert!(ImageConfig::default().args(None, None).is_empty());
    }

    #[test]
    fn env_overrides_replace_in_place_and_append() {
        let c = ImageConfig {
            env: v(&["PATH=/bin", "A=1"]),
            ..Default::default()
        };
        assert_eq!(c.env(&v(&["A=2", "B=3"])), v(&["PATH=/bin", "A=2", "B=3"]));
        assert_eq!(c.cwd(), "/");
    }
}
