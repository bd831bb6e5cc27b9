//! mini-run: a runc-compatible OCI runtime. The library holds all logic; the binary only
//! parses flags and prints.

pub mod bundle;
pub mod capabilities;
pub mod container;
pub mod error;
pub mod features;
pub mod hooks;
pub mod identity;
pub mod input_file;
pub mod logging;
pub mod loopback;
pub mod namespaces;
pub mod personality;
pub mod private_files;
pub mod process;
pub mod rlimits;
pub mod rootfs;
pub mod rootless;
pub mod seccomp;
pub mod spec;
pub mod spec_values;
pub mod state;
pub mod sysctl;
pub mod terminal;
