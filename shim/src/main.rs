//! The `mini-shim` command line: `agent` and `monitor`; all work is done by the library.

use clap::{Parser, Subcommand};

/// Per-container monitors and the host agent of the platform.
#[derive(Parser)]
#[command(name = "mini-shim", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start one container under a detached monitor (the agent runs this; see
    /// mini_shim::monitor). Prints {"monitor_pid":..,"pid":..} once the container runs.
    Monitor(mini_shim::monitor::MonitorArgs),
}

fn main() {
    // A container init started by the mini-run library re-executes this binary: hand it over
    // before anything else runs (see mini_run::process::exe_guard).
    if let Some(fd) = std::env::var_os(mini_run::process::exe_guard::INIT_ENV) {
        let fd = fd.to_str().and_then(|s| s.parse().ok()).unwrap_or(-1);
        mini_run::process::init::main(fd);
    }
    match Cli::parse().command {
        // Forks the monitor before any thread exists: nothing may start one before this.
        Command::Monitor(args) => mini_shim::monitor::main(args),
    }
}
