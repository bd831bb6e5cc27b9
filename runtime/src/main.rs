//! The `mini-run` command line: runc's commands and flags, parsed and printed here; all work
//! is done by the library.

use clap::{Parser, Subcommand, ValueEnum};
use mini_run::container::{
    create, delete, events, exec, kill, list, pause, ps, resume, run, start, state, update,
};
use mini_run::error::{Error, Result};
use mini_run::logging;
use mini_run::process::{exe_guard, init, signals};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "mini-run",
    about = "A runc-compatible OCI container runtime",
    version = concat!(env!("CARGO_PKG_VERSION"), "\nspec: ", "1.0.2-dev"),
    disable_version_flag = true
)]
struct Cli {
    /// Directory for container state [default: /run/mini-run; for a user without privileges
    /// $XDG_RUNTIME_DIR/mini-run].
    #[arg(long, global = true)]
    root: Option<PathBuf>,
    /// Log file (errors and, with --debug, debug messages).
    #[arg(long, global = true)]
    log: Option<PathBuf>,
    /// Log line format.
    #[arg(long = "log-format", global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Log debug messages.
    #[arg(long, global = true)]
    debug: bool,
    /// Print the version.
    #[arg(short = 'v', long = "version", action = clap::ArgAction::Version)]
    version: Option<bool>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum ListFormat {
    Table,
    Json,
}

#[derive(clap::Args)]
struct CreateArgs {
    /// Container id.
    id: String,
    /// Bundle directory (default: the current directory).
    #[arg(short, long)]
    bundle: Option<PathBuf>,
    /// Write the init's pid to this file.
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    /// Unix socket to send the terminal's master to (process.terminal).
    #[arg(long = "console-socket")]
    console_socket: Option<PathBuf>,
    /// Use MS_MOVE and chroot instead of pivot_root (for ramdisk roots).
    #[arg(long = "no-pivot")]
    no_pivot: bool,
    /// Accepted for runc compatibility: mini-run never creates a session keyring.
    #[arg(long = "no-new-keyring")]
    no_new_keyring: bool,
    /// Pass this many descriptors after stdio to the container process.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    preserve_fds: i32,
}

impl CreateArgs {
    fn options(&self) -> create::CreateOptions {
        let _ = self.no_new_keyring;
        create::CreateOptions {
            id: self.id.clone(),
            bundle: self.bundle.clone().unwrap_or_default(),
            pid_file: self.pid_file.clone(),
            console_socket: self.console_socket.clone(),
            foreground: false,
            no_pivot: self.no_pivot,
            preserve_fds: self.preserve_fds,
            parent_death_signal: None,
        }
    }
}

#[derive(clap::Args)]
struct UpdateArgs {
    /// Container id.
    id: String,
    /// A LinuxResources JSON file with the new limits, or "-" for stdin (no other flags then).
    #[arg(short, long)]
    resources: Option<PathBuf>,
    /// Memory limit (bytes, or a size like 512k, 64m, 1g; -1 for unlimited).
    #[arg(long, allow_hyphen_values = true)]
    memory: Option<String>,
    /// Memory soft limit (bytes or a size; -1 for unlimited).
    #[arg(long = "memory-reservation", allow_hyphen_values = true)]
    memory_reservation: Option<String>,
    /// Memory plus swap limit (bytes or a size; -1 for unlimited swap).
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    memory_swap: Option<String>,
    /// Accepted for runc compatibility and ignored: kernel memory limits are obsolete.
    #[arg(long = "kernel-memory", allow_hyphen_values = true)]
    kernel_memory: Option<String>,
    /// CPU shares (relative weight).
    #[arg(long = "cpu-share", visible_alias = "cpu-shares")]
    cpu_share: Option<u64>,
    /// CFS period in microseconds.
    #[arg(long = "cpu-period")]
    cpu_period: Option<u64>,
    /// CFS quota in microseconds per period (-1 for unlimited).
    #[arg(long = "cpu-quota", allow_hyphen_values = true)]
    cpu_quota: Option<i64>,
    /// Realtime period in microseconds.
    #[arg(long = "cpu-rt-period")]
    cpu_rt_period: Option<u64>,
    /// Realtime runtime in microseconds per period.
    #[arg(long = "cpu-rt-runtime", allow_hyphen_values = true)]
    cpu_rt_runtime: Option<i64>,
    /// CPUs the container may use, e.g. 0-1.
    #[arg(long = "cpuset-cpus")]
    cpuset_cpus: Option<String>,
    /// Memory nodes the container may use, e.g. 0.
    #[arg(long = "cpuset-mems")]
    cpuset_mems: Option<String>,
    /// Maximum number of processes (-1 for unlimited).
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pids_limit: Option<i64>,
    /// Block I/O weight, 10 to 1000.
    #[arg(long = "blkio-weight")]
    blkio_weight: Option<u16>,
}

impl UpdateArgs {
    fn options(self) -> update::UpdateOptions {
        update::UpdateOptions {
            resources: self.resources,
            memory: self.memory,
            memory_reservation: self.memory_reservation,
            memory_swap: self.memory_swap,
            kernel_memory: self.kernel_memory,
            cpu_shares: self.cpu_share,
            cpu_period: self.cpu_period,
            cpu_quota: self.cpu_quota,
            cpu_rt_period: self.cpu_rt_period,
            cpu_rt_runtime: self.cpu_rt_runtime,
            cpuset_cpus: self.cpuset_cpus,
            cpuset_mems: self.cpuset_mems,
            pids_limit: self.pids_limit,
            blkio_weight: self.blkio_weight,
        }
    }
}

#[derive(clap::Args)]
struct ExecArgs {
    /// Container id.
    id: String,
    /// Command and arguments to run.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
    /// An OCI Process JSON file describing the process (instead of the command and flags).
    #[arg(short, long)]
    process: Option<PathBuf>,
    /// Add an environment variable (KEY=value); repeatable.
    #[arg(short, long)]
    env: Vec<String>,
    /// Working directory inside the container.
    #[arg(long)]
    cwd: Option<PathBuf>,
    /// User as uid[:gid].
    #[arg(short, long)]
    user: Option<String>,
    /// Supplementary group id; repeatable.
    #[arg(short = 'g', long = "additional-gids")]
    additional_gids: Vec<u32>,
    /// Add a capability (e.g. CAP_NET_ADMIN); repeatable.
    #[arg(short, long)]
    cap: Vec<String>,
    /// Set no_new_privs for the process.
    #[arg(long = "no-new-privs")]
    no_new_privs: bool,
    /// Allocate a pseudo-terminal.
    #[arg(short, long)]
    tty: bool,
    /// Unix socket to send the terminal's master to.
    #[arg(long = "console-socket")]
    console_socket: Option<PathBuf>,
    /// Return once the process started.
    #[arg(short, long)]
    detach: bool,
    /// Write the process's pid to this file.
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    /// Pass this many descriptors after stdio to the process.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    preserve_fds: i32,
    /// Run in this sub-cgroup of the container's cgroup: `PATH`, or (cgroup v1, repeatable)
    /// `CONTROLLER[,CONTROLLER]:PATH`; it must lie inside the container's cgroup.
    #[arg(long)]
    cgroup: Vec<String>,
    /// Allow exec into a paused container.
    #[arg(long = "ignore-paused")]
    ignore_paused: bool,
}

impl ExecArgs {
    fn options(self) -> exec::ExecOptions {
        exec::ExecOptions {
            id: self.id,
            process: self.process,
            args: self.command,
            env: self.env,
            cwd: self.cwd,
            user: self.user,
            additional_gids: self.additional_gids,
            caps: self.cap,
            no_new_privs: self.no_new_privs,
            tty: self.tty,
            console_socket: self.console_socket,
            detach: self.detach,
            pid_file: self.pid_file,
            preserve_fds: self.preserve_fds,
            cgroup: self.cgroup,
            ignore_paused: self.ignore_paused,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Create a container from a bundle; its process waits for `start`.
    Create(CreateArgs),
    /// Run a process in a created or running container.
    Exec(ExecArgs),
    /// Print what this runtime supports (runtime-spec features.md).
    Features,
    /// Not supported: checkpointing needs CRIU, which mini-run does not drive (fails).
    Checkpoint {
        /// runc's flags and the container id: accepted, and the command fails.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Not supported: restoring needs CRIU, which mini-run does not drive (fails).
    Restore {
        /// runc's flags and the container id: accepted, and the command fails.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Start a created container.
    Start {
        /// Container id.
        id: String,
    },
    /// Create and start a container; wait for it unless --detach.
    Run {
        #[command(flatten)]
        create: CreateArgs,
        /// Return once the container runs.
        #[arg(short, long)]
        detach: bool,
        /// Keep the container (stopped) after its process exits, for `state` and `delete`.
        #[arg(long)]
        keep: bool,
    },
    /// Print a container's state as JSON.
    State {
        /// Container id.
        id: String,
    },
    /// Send a signal (default TERM) to a container.
    Kill {
        /// Container id.
        id: String,
        /// Signal name or number: TERM, SIGKILL, RTMIN+3, 37; 0 only checks the container runs.
        #[arg(default_value = "TERM")]
        signal: String,
        /// Signal every process in the container's cgroup.
        #[arg(short, long)]
        all: bool,
    },
    /// Delete a container and everything it holds.
    Delete {
        /// Container id.
        id: String,
        /// Kill the container first if it is still running.
        #[arg(short, long)]
        force: bool,
    },
    /// List containers.
    List {
        /// Output format.
        #[arg(short, long, value_enum, default_value = "table")]
        format: ListFormat,
        /// Print ids only.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Freeze every process of a running container.
    Pause {
        /// Container id.
        id: String,
    },
    /// Thaw a paused container.
    Resume {
        /// Container id.
        id: String,
    },
    /// List the processes of a container (host pids).
    Ps {
        /// Output format: the host's ps table, or a JSON array of pids.
        #[arg(short, long, value_enum, default_value = "table")]
        format: ListFormat,
        /// Container id.
        id: String,
        /// Options for ps(1) (default -ef); put them after the id or after `--`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Change the resource limits of a container.
    Update(UpdateArgs),
    /// Print resource usage and OOM events of a container until it stops.
    Events {
        /// Container id.
        id: String,
        /// Print one stats event and exit.
        #[arg(long)]
        stats: bool,
        /// Time between stats events, e.g. 5s or 500ms.
        #[arg(long, default_value = "5s")]
        interval: String,
    },
    /// Write a default config.json.
    Spec {
        /// Directory to write config.json into.
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        /// A spec for a user without privileges (user namespace, no cgroup rules).
        #[arg(long)]
        rootless: bool,
    },
}

fn execute(cli: Cli) -> Result<i32> {
    let root = &cli.root.unwrap_or_else(mini_run::rootless::default_root);
    match cli.command {
        Command::Create(a) => {
            create::create(root, &a.options(), create::StartMode::WaitForStart)?;
        }
        Command::Exec(a) => return exec::exec(root, &a.options()),
        Command::Features => println!(
            "{}",
            serde_json::to_string_pretty(&mini_run::features::features()).expect("serializes")
        ),
        // `--help` succeeds as runc's does. podman 4.3 asks for CRIU before it reads that
        // exit status, and then calls the command itself, which fails with this line.
        Command::Checkpoint { .. } | Command::Restore { .. } => return Err(Error::invalid(
            "checkpoint/restore is not supported: it needs CRIU, which mini-run does not drive; \
             stop the container and create it again instead",
        )),
        Command::Start { id } => start::start(root, &id)?,
        Command::Run {
            create,
            detach,
            keep,
        } => return run::run(root, &create.options(), detach, keep),
        // Without a final newline, as runc prints it.
        Command::State { id } => print!("{}", state::state(root, &id)?),
        Command::Kill { id, signal, all } => kill::kill(root, &id, signals::parse(&signal)?, all)?,
        Command::Delete { id, force } => delete::delete(root, &id, force)?,
        Command::List { format, quiet } => {
            let items = list::list(root)?;
            if quiet {
                items.iter().for_each(|(r, _)| println!("{}", r.id));
            } else {
                match format {
                    ListFormat::Table => print!("{}", list::table(&items)),
                    ListFormat::Json => println!("{}", list::json(&items)),
                }
            }
        }
        Command::Pause { id } => pause::pause(root, &id)?,
        Command::Resume { id } => resume::resume(root, &id)?,
        Command::Ps {
            format,
            id,
            ps_args,
        } => {
            let pids = ps::pids(root, &id)?;
            match format {
                ListFormat::Table => print!("{}", ps::table(&pids, &ps_args)?),
                ListFormat::Json if ps_args.is_empty() => println!("{}", ps::json(&pids)),
                ListFormat::Json => {
                    return Err(Error::invalid(
                        "ps options only apply to --format table: drop them or the json format",
                    ))
                }
            }
        }
        Command::Update(a) => {
            let id = a.id.clone();
            update::update(root, &id, &a.options())?;
        }
        Command::Events {
            id,
            stats,
            interval,
        } => {
            let interval = events::parse_interval(&interval)?;
            if stats {
                println!("{}", events::stats(root, &id)?);
            } else {
                events::stream(root, &id, interval, &mut std::io::stdout().lock())?;
            }
        }
        Command::Spec { bundle, rootless } => {
            let path = bundle.join("config.json");
            if path.exists() {
                return Err(Error::invalid(format!(
                    "{} already exists: remove it first",
                    path.display()
                )));
            }
            let text = serde_json::to_string_pretty(&mini_run::spec::default_spec(rootless))
                .expect("spec serializes");
            std::fs::write(&path, text + "\n")
                .map_err(|e| Error::invalid(format!("writing {}: {e}", path.display())))?;
        }
    }
    Ok(0)
}

/// A panic aborts mini-run at once, as `panic = "abort"` would (the workspace's release
/// profile unwinds for the daemons' sake, see Cargo.toml): a runtime half-way through setting
/// up a container, or a forked child of it, must never unwind into code that would go on.
fn abort_on_panic() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        std::process::abort();
    }));
}

fn main() {
    abort_on_panic();
    if let Some(fd) = std::env::var_os(exe_guard::INIT_ENV) {
        let fd = fd.to_str().and_then(|s| s.parse().ok()).unwrap_or(-1);
        init::main(fd);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(), // --help, --version
        Err(e) => {
            // One line, like every other error: clap's message up to its usage lines.
            let text = e.render().to_string();
            let message: Vec<&str> = text
                .lines()
                .map(str::trim)
                .take_while(|l| !l.is_empty() && !l.starts_with("Usage:"))
                .collect();
            let message = message.join(" ");
            eprintln!(
                "error: {}; see `mini-run --help`",
                message.trim_start_matches("error: ").trim_end_matches(':')
            );
            std::process::exit(2);
        }
    };
    let format = match cli.log_format {
        LogFormat::Text => logging::Format::Text,
        LogFormat::Json => logging::Format::Json,
    };
    if let Err(e) = logging::init(cli.log.as_deref(), format, cli.debug) {
        let path = cli
            .log
            .as_deref()
            .unwrap_or(std::path::Path::new(""))
            .display();
        eprintln!("error: opening log file {path}: {e}: give a writable --log path");
        std::process::exit(1);
    }
    // runc's convention, which shims read: exec's own failures exit 255, so that they differ
    // from any status the exec'd process itself could return.
    let failure = if matches!(cli.command, Command::Exec(_)) {
        255
    } else {
        1
    };
    match execute(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            let msg = e.to_string();
            logging::error(&msg);
            eprintln!("error: {msg}");
            std::process::exit(failure);
        }
    }
}
