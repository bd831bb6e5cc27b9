//! The messages that cross the runtime ↔ init channel.

use crate::process::exec_config::ExecConfig;
use crate::process::init_config::InitConfig;
use serde::{Deserialize, Serialize};

/// One message on the init channel.
#[derive(Debug, Serialize, Deserialize)]
pub enum Message {
    /// Runtime → init, before the init re-executes: id maps and cgroup are in place.
    Go,
    /// Runtime's helper → init, before `Setup`, with an `O_PATH` descriptor attached: the
    /// source of the spec's mount at this index, opened by host root in the init's mount
    /// namespace (a new user namespace may not be allowed to reach it by path).
    MountSource(usize),
    /// Runtime → init: everything the init needs to prepare the container.
    Setup(Box<InitConfig>),
    /// Runtime → re-executed runtime: join a container and run a process in it.
    Exec(Box<ExecConfig>),
    /// Namespace-joining stage → runtime: the init's host pid.
    InitPid(i32),
    /// Init → runtime: namespaces and mounts are made; run prestart and createRuntime hooks.
    RuntimeHooks,
    /// Runtime → init: those hooks succeeded.
    HooksDone,
    /// Init → runtime, with the seccomp notify listener attached: pass it to the agent.
    SeccompListener,
    /// Init → runtime: the container is prepared; the init now waits for `start`.
    Ready,
    /// Either way: a failure, as the one-line message the user will see.
    Failed(String),
}
