//! The processes of a container start: the runtime (parent), an optional namespace-joining
//! stage, and the container's init, with the typed channel between them.

pub mod channel;
pub mod exe_guard;
pub mod exec;
pub mod exec_config;
pub mod id_map;
pub mod init;
pub mod init_config;
pub mod liveness;
pub mod message;
pub mod procfs;
pub mod signals;
pub mod spawn;
pub mod user_process;
