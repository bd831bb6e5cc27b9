//! mini-shim: the per-host side of the platform. A per-container [`monitor`] keeps each
//! container's stdio, logs and exit status alive independently of any daemon; the host
//! [`agent`] is the scheduler's only contact with the host and speaks the [`protocol`].

pub mod agent;
pub mod monitor;
pub mod protocol;
