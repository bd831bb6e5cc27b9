//! process.terminal: a pseudo-terminal from the container's own devpts instance, its master
//! sent over the console socket (one message: the pty name, with exactly one SCM_RIGHTS
//! descriptor — the protocol runc, containerd and conmon speak), its slave made the process's
//! controlling terminal and stdio, and (for the init) bind-mounted on /dev/console.
//!
//! Against the CVE-2025-52565 shape: ptmx is opened inside the container's root without
//! following symlinks out of it and checked to be a pty multiplexer; the slave is opened from
//! the master with TIOCGPTPEER, never by path; /dev/console is created without following
//! symlinks and mounted through descriptors.

use crate::error::{Context, Error, Result};
use crate::rootfs::secure_path::{ensure, fd_path, open_in_root};
use nix::fcntl::OFlag;
use nix::mount::{mount, MsFlags};
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use nix::sys::stat::{fstat, major, SFlag};
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

/// A pseudo-terminal pair.
pub struct Pty {
    /// The master side, for the console socket's receiver.
    pub master: OwnedFd,
    /// The slave side, for the process.
    pub slave: OwnedFd,
    /// The slave's name inside the container, e.g. /dev/pts/0.
    pub name: String,
}

/// Opens a new pty from the devpts instance at `/dev/pts` under `root`, its slave owned by
/// `owner` (the process's uid) with the group devpts gave it (`tty`, 5, with the usual
/// `gid=5` option), as runc leaves a console.
pub fn open_pty(root: &impl AsFd, owner: u32) -> Result<Pty> {
    let master = open_in_root(
        root,
        Path::new("/dev/pts/ptmx"),
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_NOFOLLOW,
    )
    .map_err(|e| {
        Error::invalid(format!(
            "process.terminal needs a devpts mount at /dev/pts: opening /dev/pts/ptmx: {e}"
        ))
    })?;
    let st = fstat(&master).context(|| "checking /dev/pts/ptmx")?;
    let is_chr = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFCHR;
    if !is_chr || major(st.st_rdev) != 5 {
        return Err(Error::invalid(
            "/dev/pts/ptmx in the container is not a pty multiplexer",
        ));
    }
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads an int we own; TIOCGPTN writes one.
    nix::errno::Errno::result(unsafe {
        libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock)
    })
    .context(|| "unlocking the pty")?;
    let mut n: libc::c_uint = 0;
    // SAFETY: as above.
    nix::errno::Errno::result(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN, &mut n) })
        .context(|| "reading the pty number")?;
    // SAFETY: TIOCGPTPEER returns a new descriptor we then own.
    let slave = nix::errno::Errno::result(unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    })
    .context(|| "opening the pty's slave")?;
    // SAFETY: a fresh descriptor from the kernel.
    let slave = unsafe { OwnedFd::from_raw_fd(slave) };
    nix::unistd::fchown(&slave, Some(nix::unistd::Uid::from_raw(owner)), None)
        .context(|| format!("giving the pty's slave to uid {owner}"))?;
    Ok(Pty {
        master,
        slave,
        name: format!("/dev/pts/{n}"),
    })
}

/// Sets the terminal size (process.consoleSize).
pub fn set_size(fd: BorrowedFd, rows: u16, cols: u16) -> Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads the struct we own.
    nix::errno::Errno::result(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) })
        .map(drop)
        .context(|| "setting the terminal size")
}

/// Bind-mounts the slave on /dev/console under `root`.
pub fn mount_console(root: &impl AsFd, slave: &OwnedFd) -> Result<()> {
    let target = console_mount_point(root)?;
    mount(
        Some(&fd_path(slave)),
        &fd_path(&target),
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .context(|| "mounting the terminal on /dev/console")
}

/// Opens (creating it if missing) /dev/console under `root` without following a symlink there:
/// one planted in the image (or swapped in by a racing container) would otherwise make the
/// terminal mount land on a file of its choosing.
fn console_mount_point(root: &impl AsFd) -> Result<OwnedFd> {
    let path = Path::new("/dev/console");
    let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW;
    let target = match open_in_root(root, path, flags) {
        Err(nix::errno::Errno::ENOENT) => {
            ensure(root, path, false)?;
            open_in_root(root, path, flags)
        }
        r => r,
    }
    .context(|| "opening /dev/console")?;
    let st = fstat(&target).context(|| "checking /dev/console")?;
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK {
        return Err(Error::invalid(
            "/dev/console in the container is a symlink: refusing to mount the terminal on what it points to (remove it from the image)",
        ));
    }
    Ok(target)
}

/// Sends the master over the console socket.
pub fn send_master(socket: RawFd, pty: &Pty) -> Result<()> {
    let fds = [pty.master.as_raw_fd()];
    let iov = [IoSlice::new(pty.name.as_bytes())];
    sendmsg::<()>(
        socket,
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .context(|| "sending the terminal to the console socket")?;
    Ok(())
}

/// Receives a master sent with [`send_master`].
pub fn recv_master(socket: RawFd) -> Result<OwnedFd> {
    let mut name = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut name)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        socket,
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .context(|| "receiving the terminal")?;
    for c in msg.cmsgs().context(|| "reading the terminal message")? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(fd) = fds.first() {
                // SAFETY: the kernel just gave us this descriptor.
                return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
            }
        }
    }
    Err(Error::invalid("the container sent no terminal"))
}

/// Makes the slave the calling process's controlling terminal and its stdin, stdout, stderr.
pub fn make_controlling(slave: OwnedFd) -> Result<()> {
    nix::unistd::setsid().context(|| "starting a session for the terminal")?;
    // SAFETY: TIOCSCTTY takes an int argument.
    nix::errno::Errno::result(unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) })
        .context(|| "making the terminal controlling")?;
    for target in 0..3 {
        // SAFETY: dup2 onto the standard descriptors.
        nix::errno::Errno::result(unsafe { libc::dup2(slave.as_raw_fd(), target) })
            .context(|| "attaching the terminal to stdio")?;
    }
    Ok(())
}

/// The caller's terminal switched to raw mode, restored on drop.
pub struct RawMode {
    saved: Option<nix::sys::termios::Termios>,
}

impl RawMode {
    /// Puts stdin in raw mode if it is a terminal.
    pub fn enter() -> RawMode {
        let stdin = std::io::stdin();
        let saved = nix::sys::termios::tcgetattr(&stdin).ok();
        if let Some(t) = &saved {
            let mut raw = t.clone();
            nix::sys::termios::cfmakeraw(&mut raw);
            let _ = nix::sys::termios::tcsetattr(&stdin, nix::sys::termios::SetArg::TCSANOW, &raw);
        }
        RawMode { saved }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = &self.saved {
            let _ = nix::sys::termios::tcsetattr(
                std::io::stdin(),
                nix::sys::termios::SetArg::TCSANOW,
                t,
            );
        }
    }
}

/// Copies the caller's size to the pty (on start and on SIGWINCH).
pub fn copy_size(master: BorrowedFd) {
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes the struct we own.
    if unsafe { libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) } == 0 {
        let _ = set_size(master, ws.ws_row, ws.ws_col);
    }
}

/// Copies stdin to the pty and the pty to stdout until the container's side closes; the
/// returned thread ends once all output is copied.
pub fn proxy(master: &OwnedFd) -> Result<std::thread::JoinHandle<()>> {
    let input = master.try_clone().context(|| "duplicating the terminal")?;
    let output = master.try_clone().context(|| "duplicating the terminal")?;
    std::thread::spawn(move || {
        let mut to = std::fs::File::from(input);
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut to);
    });
    Ok(std::thread::spawn(move || {
        let mut from = std::fs::File::from(output);
        // Ends with EIO once every slave descriptor is closed.
        let _ = std::io::copy(&mut from, &mut std::io::stdout().lock());
    }))
}

/// Connects to a console socket (`--console-socket`); the descriptor is inherited by the
/// container's init or exec stage, which sends the master over it.
pub fn connect_console_socket(path: &Path) -> Result<OwnedFd> {
    use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, UnixAddr};
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::empty(),
        None,
    )
    .context(|| "creating the console socket")?;
    let addr = UnixAddr::new(path).context(|| format!("console socket {}", path.display()))?;
    connect(fd.as_raw_fd(), &addr)
        .context(|| format!("connecting to the console socket {}", path.display()))?;
    Ok(fd)
}

/// A connected pair for a foreground terminal: (the runtime's end, the container's end).
pub fn console_pair() -> Result<(OwnedFd, OwnedFd)> {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::empty(),
    )
    .context(|| "creating the console socket pair")?;
    nix::fcntl::fcntl(
        &ours,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .context(|| "marking the console socket close-on-exec")?;
    Ok((ours, theirs))
}

/// How a process gets its terminal.
pub enum Console {
    /// No terminal.
    None,
    /// The master goes to a caller's socket.
    Socket(OwnedFd),
    /// The master comes back to the runtime, which proxies it (foreground run/exec).
    Proxy {
        /// Our end.
        ours: OwnedFd,
        /// The container's end.
        theirs: OwnedFd,
    },
}

impl Console {
    /// Decides from process.terminal, --console-socket and whether the runtime stays in the
    /// foreground.
    pub fn choose(terminal: bool, socket: Option<&Path>, foreground: bool) -> Result<Console> {
        match (terminal, socket) {
            (false, _) => Ok(Console::None),
            (true, Some(p)) => Ok(Console::Socket(connect_console_socket(p)?)),
            (true, None) if foreground => {
                let (ours, theirs) = console_pair()?;
                Ok(Console::Proxy { ours, theirs })
            }
            (true, None) => Err(Error::invalid(
                "process.terminal is true: pass --console-socket PATH (a detached or created container cannot use the runtime's terminal)",
            )),
        }
    }

    /// The descriptor the container side inherits.
    pub fn container_fd(&self) -> Option<RawFd> {
        match self {
            Console::None => None,
            Console::Socket(fd) => Some(fd.as_raw_fd()),
            Console::Proxy { theirs, .. } => Some(theirs.as_raw_fd()),
        }
    }

    /// Once the container side has its copy: our end, when we proxy.
    pub fn into_proxy_end(self) -> Option<OwnedFd> {
        match self {
            Console::Proxy { ours, .. } => Some(ours),
            _ => None,
        }
    }
}

/// Runs the foreground terminal of a started process: receives its master, proxies it in raw
/// mode, waits for `pid` forwarding signals (SIGWINCH resizes the pty), returns its status.
pub fn foreground(
    ours: OwnedFd,
    pid: nix::unistd::Pid,
    set: &nix::sys::signal::SigSet,
) -> Result<i32> {
    let master = recv_master(ours.as_raw_fd())?;
    drop(ours);
    let _raw = RawMode::enter();
    copy_size(master.as_fd());
    let output = proxy(&master)?;
    let status =
        crate::process::signals::wait_forwarding(pid, set, Some(&|| copy_size(master.as_fd())));
    drop(master);
    let _ = output.join();
    status
}
