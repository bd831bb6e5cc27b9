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

use crate::error::{Error, Result};
use oci_spec::runtime::Hook;
use serde_json::Value;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `hooks` in order with `state` on stdin; the first failure stops the rest.
pub fn run(kind: &str, hooks: &[Hook], state: &Value) -> Result<()> {
    let input = serde_json::to_vec(state).expect("state serializes");
    for hook in hooks {
        run_one(kind, hook, &input)?;
    }
    Ok(())
}

/// Runs `hooks`, logging failures as warnings (poststart, poststop).
pub fn run_warn(kind: &str, hooks: &[Hook], state: &Value) {
    let input = serde_json::to_vec(state).expect("state serializes");
    for hook in hooks {
        if let Err(e) = run_one(kind, hook, &input) {
            crate::logging::warn(&e.to_string());
            eprintln!("mini-run: warning: {e}");
        }
    }
}

fn run_one(kind: &str, hook: &Hook, input: &[u8]) -> Result<()> {
    let path = hook.path();
    let fail = |what: String| Error::invalid(format!("{kind} hook {}: {what}", path.display()));
    let mut cmd = Command::new(path);
    if let Some(args) = hook.args().as_deref().filter(|a| !a.is_empty()) {
        cmd.arg0(&args[0]).args(&args[1..]);
    }
    cmd.env_clear();
    for kv in hook.env().iter().flatten() {
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
