//! The lifecycle operations, one module each, as the CLI names them.

pub mod create;
pub mod delete;
pub mod kill;
pub mod list;
pub mod run;
pub mod start;
pub mod state;
