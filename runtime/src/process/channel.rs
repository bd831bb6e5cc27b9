//! The typed channel between the runtime and the container's init: a unix socketpair carrying
//! length-prefixed JSON messages. Every failure in the init crosses back as a message, so the CLI
//! prints the init's own error.

use crate::error::{Context, Error, Result};
use crate::process::message::Message;
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

/// One end of the channel.
pub struct Channel {
    stream: UnixStream,
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

    /// Receives one message; a closed peer is an error naming `peer`.
    pub fn recv(&mut self, peer: &str) -> Result<Message> {
        let mut buf = vec![0u8; 1 << 20];
        let n = loop {
            match self.stream.read(&mut buf) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                r => break r.context(|| format!("reading from {peer}"))?,
            }
        };
        if n == 0 {
            return Err(Error::invalid(format!("{peer} exited unexpectedly")));
        }
        serde_json::from_slice(&buf[..n])
            .map_err(|e| Error::invalid(format!("bad message from {peer}: {e}")))
    }
}
