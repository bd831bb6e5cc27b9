//! Handing the notify listener fd to the seccomp agent at `linux.seccomp.listenerPath`.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::Path;

use nix::sys::socket::{
    connect, send, sendmsg, socket, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType,
    UnixAddr,
};
use oci_spec::runtime::{ContainerProcessState, State, SECCOMP_FD_NAME};

use crate::error::{Context, Error, Result};

/// The message the agent receives with the listener fd: the runtime-spec's
/// `ContainerProcessState` as JSON (`ociVersion`, `fds: ["seccompFd"]`, `pid`, `metadata`
/// from `listenerMetadata`, and the container's `state`), as runc sends it.
///
/// `pid` is the container process's pid as the runtime sees it; `state` is the container's
/// state at that moment (status `creating`); its `ociVersion` is reused for the message.
pub fn process_state(pid: i32, metadata: Option<&str>, state: &State) -> Result<Vec<u8>> {
    let mut message = ContainerProcessState::default();
    message
        .set_version(state.version().clone())
        .set_fds(vec![SECCOMP_FD_NAME.to_string()])
        .set_pid(pid)
        .set_metadata(metadata.map(str::to_string))
        .set_state(state.clone());
    serde_json::to_vec(&message).map_err(|e| {
        Error::invalid(format!(
            "seccomp: encoding the container process state: {e}"
        ))
    })
}

/// Connects to the agent's unix stream socket at `listener_path` and sends `state_json` (see
/// [`process_state`]) with `notify_fd` attached, in one `sendmsg` with `SCM_RIGHTS` (the rest
/// follows with plain sends should the socket take only part of the message).
///
/// The caller keeps `notify_fd`; the agent gets its own copy. The calling process must not be
/// subject to a filter that notifies any of socket, connect, sendmsg or sendto: the agent
/// cannot answer before it has the fd.
pub fn send_to_listener(
    listener_path: &Path,
    notify_fd: BorrowedFd<'_>,
    state_json: &[u8],
) -> Result<()> {
    let agent = || format!("the seccomp agent at {}", listener_path.display());
    if state_json.is_empty() {
        // A stream socket carries no fds without at least one byte of data.
        return Err(Error::invalid(format!(
            "seccomp: empty state message for {}",
            agent()
        )));
    }
    let sock = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .context(|| format!("creating a socket to {}", agent()))?;
    let addr = UnixAddr::new(listener_path)
        .context(|| format!("seccomp listenerPath {}", listener_path.display()))?;
    connect(sock.as_raw_fd(), &addr).context(|| format!("connecting to {}", agent()))?;

    let fds = [notify_fd.as_raw_fd()];
    let mut sent = sendmsg::<UnixAddr>(
        sock.as_raw_fd(),
        &[IoSlice::new(state_json)],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .context(|| format!("sending the seccomp listener fd to {}", agent()))?;
    while sent < state_json.len() {
        sent += send(
            sock.as_raw_fd(),
            &state_json[sent..],
            MsgFlags::MSG_NOSIGNAL,
        )
        .context(|| format!("sending the container state to {}", agent()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::IoSliceMut;
    use std::os::fd::{AsFd, FromRawFd, OwnedFd};
    use std::os::unix::net::UnixListener;

    use nix::sys::socket::{recvmsg, ControlMessageOwned};
    use oci_spec::runtime::{ContainerState, StateBuilder};

    fn state() -> State {
        StateBuilder::default()
            .version("1.2.0")
            .id("c1")
            .status(ContainerState::Creating)
            .pid(42)
            .bundle("/b")
            .build()
            .unwrap()
    }

    #[test]
    fn process_state_has_the_runtime_spec_shape() {
        let json = process_state(42, Some("meta"), &state()).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(v["ociVersion"], "1.2.0");
        assert_eq!(v["fds"], serde_json::json!(["seccompFd"]));
        assert_eq!(v["pid"], 42);
        assert_eq!(v["metadata"], "meta");
        assert_eq!(v["state"]["id"], "c1");
        assert_eq!(v["state"]["status"], "creating");
        let v: serde_json::Value =
            serde_json::from_slice(&process_state(1, None, &state()).unwrap()).unwrap();
        assert!(v.get("metadata").is_none());
    }

    #[test]
    fn sends_state_and_fd_in_one_message() {
        let dir = std::env::temp_dir().join(format!("mini-run-seccomp-ut-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("agent.sock");
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        // Any fd stands in for the notify fd here.
        let file = std::fs::File::open("/dev/null").unwrap();
        let json = process_state(7, None, &state()).unwrap();
        send_to_listener(&path, file.as_fd(), &json).unwrap();

        let (conn, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; 4096];
        let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = recvmsg::<()>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .unwrap();
        let mut fds = Vec::new();
        for c in msg.cmsgs().unwrap() {
            if let ControlMessageOwned::ScmRights(r) = c {
                fds.extend(r);
            }
        }
        let n = msg.bytes;
        assert_eq!(fds.len(), 1);
        // SAFETY: the fd just arrived with SCM_RIGHTS; nothing else owns it.
        drop(unsafe { OwnedFd::from_raw_fd(fds[0]) });
        assert_eq!(&buf[..n], &json[..]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_agent_is_reported_with_its_path() {
        let file = std::fs::File::open("/dev/null").unwrap();
        let err = send_to_listener(Path::new("/nonexistent/agent.sock"), file.as_fd(), b"{}")
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/agent.sock"), "{err}");
    }
}
