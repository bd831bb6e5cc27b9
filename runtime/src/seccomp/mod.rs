//! OCI seccomp (`linux.seccomp` in config.json): compile a profile to a BPF program, install it
//! as the last step before execve, and hand the notify listener fd to a seccomp agent.
//!
//! How the init uses it:
//! 1. [`compile`] the spec's [`LinuxSeccomp`] while errors can still be reported (it allocates
//!    and calls into libseccomp): unknown syscall names are skipped, as runc does, because
//!    profiles list syscalls only newer kernels have, and syscalls numbered above every one
//!    the profile names get `-ENOSYS` ([`enosys`], runc's stub) so programs fall back.
//! 2. Set no_new_privs if the spec asks, then [`Filter::install`] right before execve. The
//!    install is a single `seccomp(2)` call on the precompiled program (no allocation, no
//!    libseccomp), so it is safe in a forked child. Without no_new_privs the process needs
//!    CAP_SYS_ADMIN (in its user namespace), else the install fails with a message saying so.
//! 3. If any rule uses `SCMP_ACT_NOTIFY`, install returns the listener fd: send it to the agent
//!    at `listenerPath` with [`send_to_listener`] and a [`process_state`] message. Whatever
//!    process sends it must not itself be stopped by the filter: from the filtered process the
//!    syscalls that connect and send (socket, connect, sendmsg, close) must not be NOTIFY'd
//!    (runc instead fetches the fd from its parent, which the filter does not apply to).
//!
//! [`features`] lists the actions, operators, architectures and flags this build supports, for
//! the `features` command.
//!
//! The profile is compiled with libseccomp (the library runc and crun use, linked statically)
//! and exported as BPF; the runtime loads that program itself so it can pass every filter flag
//! the spec names, including ones this libseccomp version has no attribute for
//! (SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV).

mod compile;
mod enosys;
mod features;
mod install;
mod listener;

pub use compile::{compile, Filter};
pub use features::features;
pub use listener::{process_state, send_to_listener};

#[cfg(doc)]
use oci_spec::runtime::LinuxSeccomp;
