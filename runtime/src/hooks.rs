//! OCI hooks: programs the runtime runs at fixed points of the lifecycle, each given the
//! container's state JSON on stdin, with the hook's own args and env, and killed when its
//! timeout passes.
//!
//! | hook            | when                                            | where              | a failure |
//! |-----------------|-------------------------------------------------|--------------------|-----------|
//! | prestart        | namespaces made, before pivot_root (deprecated) | runtime namespace  | fails create |
//! | createRuntime   | same moment                                     | runtime namespace  | fails create |
//! | createContainer | after createRuntime, before pivot_root          | container's mounts | fails create |
//! | startContainer  | at start, before the user's process executes    | container          | fails start |
//! | poststart       | after the user's process started                | runtime namespace  | a warning |
//! | poststop        | after the container is deleted                  | runtime namespace  | a warning |
//!
//! prestart, createRuntime and createContainer hooks read the status `creating`, as runc's do
//! (crun says `created`): the spec defines `created` as "the runtime has finished the create
//! operation", and these hooks are part of it (one that fails fails `create`). startContainer
//! hooks read `created`. createContainer hooks run with the container's root (the rootfs
//! directory, before pivot_root) as their working directory, as runc's do; a startContainer
//! hook without `env` gets the process's environment (runc's hooks inherit the environment of
//! the process that runs them); every other hook without `env` gets an empty one.

use crate::error::{Error, Result};
use oci_spec::runtime::Hook;
use serde_json::Value;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Where a hook runs beyond its own settings: a working directory, and the environment a
/// hook without `env` gets (none: an empty one).
#[derive(Default, Clone, Copy)]
pub struct Setting<'a> {
    /// The working directory (default: the runtime's).
    pub cwd: Option<&'a Path>,
    /// The environment of a hook that has no `env` of its own.
    pub env: Option<&'a [String]>,
}

/// Runs `hooks` in order with `state` on stdin; the first failure stops the rest.
pub fn run(kind: &str, hooks: &[Hook], state: &Value) -> Result<()> {
    run_in(kind, hooks, state, Setting::default())
}

/// [`run`] with a working directory and a default environment.
pub fn run_in(kind: &str, hooks: &[Hook], state: &Value, setting: Setting) -> Result<()> {
    let input = serde_json::to_vec(state).expect("state serializes");
    for hook in hooks {
        run_one(kind, hook, &input, setting)?;
    }
    Ok(())
}

/// Runs `hooks`, logging failures as warnings (poststart, poststop).
pub fn run_warn(kind: &str, hooks: &[Hook], state: &Value) {
    let input = serde_json::to_vec(state).expect("state serializes");
    for hook in hooks {
        if let Err(e) = run_one(kind, hook, &input, Setting::default()) {
            crate::logging::warn(&e.to_string());
            eprintln!("mini-run: warning: {e}");
        }
    }
}

fn run_one(kind: &str, hook: &Hook, input: &[u8], setting: Setting) -> Result<()> {
    let path = hook.path();
    let fail = |what: String| Error::invalid(format!("{kind} hook {}: {what}", path.display()));
    let mut cmd = Command::new(path);
    if let Some(args) = hook.args().as_deref().filter(|a| !a.is_empty()) {
        cmd.arg0(&args[0]).args(&args[1..]);
    }
    cmd.env_clear();
    if let Some(dir) = setting.cwd {
        cmd.current_dir(dir);
    }
    let env = hook.env().as_deref().or(setting.env).unwrap_or_default();
    for kv in env {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| fail(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is not a failure.
        let _ = stdin.write_all(input);
    }
    let deadline = hook
        .timeout()
        .filter(|t| *t > 0)
        .map(|t| Instant::now() + Duration::from_secs(t as u64));
    let mut pause = Duration::from_micros(100);
    let status = loop {
        match child.try_wait().map_err(|e| fail(e.to_string()))? {
            Some(status) => break status,
            None if deadline.is_some_and(|d| Instant::now() >= d) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(format!(
                    "timed out after {} s",
                    hook.timeout().unwrap_or_default()
                )));
            }
            None => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(10));
            }
        }
    };
    if status.success() {
        Ok(())
    } else {
        Err(fail(format!("exited with {status}")))
    }
}
