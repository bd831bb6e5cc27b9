//! mini-shim: the per-host side of the platform. A per-container [`monitor`] keeps each
//! container's stdio, logs and exit status alive independently of any daemon; the host
//! [`agent`] is the scheduler's only contact with the host and speaks the [`protocol`]; it
//! gets its credentials by [`join`]ing the scheduler's cluster and pulls images from
//! [`registry`]s. Its listener and the
//! scheduler's share the [`connection_limits`]. [`hollow`] runs many fake agents in one
//! process, for scale tests.

pub mod agent;
pub mod connection_limits;
pub mod hollow;
pub mod join;
pub mod monitor;
pub mod protocol;
pub mod registry;
