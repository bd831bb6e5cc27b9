//! The `mini-sched` command line as a library: a client of the daemon's unix-socket API
//! ([`client`]), the commands ([`commands`], [`rollout`]) and how their answers print
//! ([`tables`], [`describe`], [`format`]). The binary only parses arguments and prints.

pub mod autoscale;
pub mod client;
pub mod cluster;
pub mod commands;
pub mod describe;
pub mod edits;
mod error;
pub mod format;
pub mod json;
pub mod rollout;
pub mod table;
pub mod tables;
pub mod tree;

pub use client::Client;
pub use error::Error;
