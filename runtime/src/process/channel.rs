//! The typed channel between the runtime and the container's init: a unix socketpair carrying
//! length-prefixed JSON messages. Every failure in the init crosses back as a message, so the CLI
//! prints the init's own error.

use crate::error::{Context, Error, Result};
use crate::process::message::Message;
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use std::io::{IoSlice, IoSliceMut, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

/// One end of the channel.
pub struct Channel {
    stream: UnixStream,
    /// A descriptor that came with the last message.
    received: Option<OwnedFd>,
}

/// Creates a connected pair; both ends are close-on-exec.
pub fn pair() -> Result<(Channel, Channel)> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .context(|| "creating the init channel")?;
    Ok((Channel::from(a), Channel::from(b)))
}

impl From<OwnedFd> for Channel {
    fn from(fd: OwnedFd) -> Self {
        Channel {
            stream: UnixStream::from(fd),
            received: None,
        }
    }
}

impl AsFd for Channel {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }
}

impl Channel {
    /// Adopts an inherited descriptor (the init's end after exec).
    ///
    /// # Safety
    /// `fd` must be an open socket owned by nobody else.
    pub unsafe fn from_raw_fd(fd: RawFd) -> Channel {
        Channel::from(OwnedFd::from_raw_fd(fd))
    }

    /// The raw descriptor.
    pub fn raw_fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }

    /// Sends one message.
    pub fn send(&mut self, msg: &Message) -> Result<()> {
        let data = serde_json::to_vec(msg).expect("messages serialize");
        self.stream
            .write_all(&data)
            .context(|| "sending to the container init")
    }

    /// Sends one message with a descriptor attached.
    pub fn send_with_fd(&mut self, msg: &Message, fd: BorrowedFd) -> Result<()> {
        let data = serde_json::to_vec(msg).expect("messages serialize");
        let fds = [fd.as_raw_fd()];
        sendmsg::<()>(
            self.stream.as_raw_fd(),
            &[IoSlice::new(&data)],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            None,
        )
        .context(|| "sending a descriptor over the init channel")?;
        Ok(())
    }

    /// The descriptor that came with the last message received, if any.
    pub fn take_fd(&mut self) -> Option<OwnedFd> {
        self.received.take()
    }

    /// Receives one message; a closed peer is an error naming `peer`.
    pub fn recv(&mut self, peer: &str) -> Result<Message> {
        self.recv_or_closed(peer)?
            .ok_or_else(|| Error::invalid(format!("{peer} exited unexpectedly")))
    }

    /// Receives one message, or `None` once the peer has closed its end (as a process does
    /// when it executes: the channel is close-on-exec).
    pub fn recv_or_closed(&mut self, peer: &str) -> Result<Option<Message>> {
        let mut buf = vec![0u8; 1 << 20];
        let mut space = nix::cmsg_space!([RawFd; 1]);
        let n = loop {
            let mut iov = [IoSliceMut::new(&mut buf)];
            match recvmsg::<()>(
                self.stream.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e).context(|| format!("reading from {peer}")),
                Ok(msg) => {
                    for c in msg.cmsgs().context(|| format!("reading from {peer}"))? {
                        if let ControlMessageOwned::ScmRights(fds) = c {
                            // SAFETY: the kernel just gave us these descriptors.
                            self.received =
                                fds.first().map(|fd| unsafe { OwnedFd::from_raw_fd(*fd) });
                        }
                    }
                    break msg.bytes;
                }
            }
        };
        if n == 0 {
            return Ok(None);
        }
        serde_json::from_slice(&buf[..n])
            .map(Some)
            .map_err(|e| Error::invalid(format!("bad message from {peer}: {e}")))
    }
}
