//! The `mini-shim` command line: `agent`, `join`, `hollow`, `monitor` and `cert`; all work is done by the
//! library.

use clap::{Args, Parser, Subcommand};
use mini_shim::agent::{self, pki, tls::TlsFiles, Listen};
use mini_shim::connection_limits::LimitArgs;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Per-container monitors and the host agent of the mini platform.
#[derive(Parser)]
#[command(name = "mini-shim", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the shim protocol on this host (the scheduler's contact).
    Agent(AgentArgs),
    /// Join a mini-sched cluster with a join token, then serve as `agent` with the
    /// credentials it issued (a joined agent skips the join when started again).
    Join(JoinArgs),
    /// Run N hollow nodes in this process for scale tests: each joins with the token and
    /// serves the agent API on its own loopback address, with fake containers.
    Hollow(HollowArgs),
    /// Make certificates for the protocol's mutual TLS.
    #[command(subcommand)]
    Cert(CertCommand),
    /// Start one container under a detached monitor (the agent runs this; see
    /// mini_shim::monitor). Prints {"monitor_pid":..,"pid":..} once the container runs.
    Monitor(mini_shim::monitor::MonitorArgs),
}

#[derive(Args)]
struct AgentArgs {
    /// IP:PORT to serve HTTPS on, or unix:PATH (with --dev).
    #[arg(long, default_value = "0.0.0.0:7443")]
    listen: String,
    /// Development mode: plain HTTP without authentication, only on loopback or a unix socket.
    #[arg(long)]
    dev: bool,
    /// The agent's server certificate (PEM).
    #[arg(long, requires_all = ["tls_key", "client_ca"])]
    tls_cert: Option<PathBuf>,
    /// The server certificate's private key (PEM).
    #[arg(long, requires_all = ["tls_cert", "client_ca"])]
    tls_key: Option<PathBuf>,
    /// The CA (PEM) whose client certificates may call this agent.
    #[arg(long, requires_all = ["tls_cert", "tls_key"])]
    client_ca: Option<PathBuf>,
    /// Where containers, logs and exit records live.
    #[arg(long, default_value = "/var/lib/mini-shim")]
    state_dir: PathBuf,
    /// The node's name (default: the hostname).
    #[arg(long)]
    node_name: Option<String>,
    /// On stop (SIGTERM, SIGINT), remove the cluster network's routes, nftables table and
    /// bridge from this host (its containers keep their own namespaces).
    #[arg(long)]
    cleanup: bool,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    registries: RegistryArgs,
}

/// How the agent reaches image registries.
#[derive(Args)]
struct RegistryArgs {
    /// A docker-style config.json with registry credentials (`auths`), read at each pull.
    #[arg(long, value_name = "FILE")]
    registry_auth: Option<PathBuf>,
    /// A CA certificate (PEM) trusted for registries besides the system's (repeatable).
    #[arg(long = "registry-ca", value_name = "FILE")]
    registry_ca: Vec<PathBuf>,
    /// A registry (HOST[:PORT]) reached over plain HTTP, without TLS (repeatable).
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    insecure_registry: Vec<String>,
}

impl RegistryArgs {
    fn options(self) -> mini_shim::registry::RegistryOptions {
        mini_shim::registry::RegistryOptions {
            auth_file: self.registry_auth,
            ca_files: self.registry_ca,
            insecure: self.insecure_registry,
        }
    }
}

#[derive(Args)]
struct JoinArgs {
    /// The scheduler's join listener, IP:PORT (what `mini-sched init` printed).
    #[arg(long)]
    scheduler: SocketAddr,
    /// The join token (`mini-sched token create`).
    #[arg(long)]
    token: String,
    /// IP:PORT to serve HTTPS on.
    #[arg(long, default_value = "0.0.0.0:7443")]
    listen: SocketAddr,
    /// IP:PORT the scheduler reaches this agent at (default: --listen).
    #[arg(long)]
    advertise: Option<SocketAddr>,
    /// A node label KEY=VALUE (repeatable).
    #[arg(long = "label", value_parser = parse_label)]
    labels: Vec<(String, String)>,
    /// The node's name (default: the hostname).
    #[arg(long)]
    node_name: Option<String>,
    /// Where containers, logs, exit records and the joined credentials (pki/) live.
    #[arg(long, default_value = "/var/lib/mini-shim")]
    state_dir: PathBuf,
    /// Join again although this agent has joined before (a new address or labels): the
    /// agent proves it is the node by its current certificate and keeps its key. With an
    /// expired certificate, the token must be one made for it (`mini-sched token create
    /// --rejoin NODE`).
    #[arg(long)]
    rejoin: bool,
    /// On stop (SIGTERM, SIGINT), remove the cluster network's routes, nftables table and
    /// bridge from this host (its containers keep their own namespaces).
    #[arg(long)]
    cleanup: bool,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    registries: RegistryArgs,
}

#[derive(Args)]
struct HollowArgs {
    /// How many nodes.
    #[arg(long)]
    count: usize,
    /// The scheduler's join listener, IP:PORT.
    #[arg(long = "join")]
    scheduler: SocketAddr,
    /// The join token (`mini-sched token create`).
    #[arg(long)]
    token: String,
    /// The nodes are named PREFIX-0, PREFIX-1, ...
    #[arg(long, default_value = "hollow")]
    prefix: String,
    /// The first node's loopback address; node i listens on it plus i.
    #[arg(long, default_value = "127.1.0.1")]
    first_address: std::net::Ipv4Addr,
    /// The port every node listens on.
    #[arg(long, default_value_t = 7443)]
    port: u16,
    /// A label of every node KEY=VALUE (repeatable).
    #[arg(long = "label", value_parser = parse_label)]
    labels: Vec<(String, String)>,
    /// The CPUs each node reports.
    #[arg(long, default_value_t = 32)]
    cpus: u32,
    /// The memory each node reports, in MiB.
    #[arg(long, default_value_t = 128 * 1024)]
    memory_mib: u64,
    /// One directory per node (its credentials) and the freeze file `frozen`.
    #[arg(long)]
    state_dir: PathBuf,
    #[command(flatten)]
    limits: LimitArgs,
}

fn hollow(args: HollowArgs) -> Result<(), mini_shim::join::JoinError> {
    mini_shim::hollow::run(mini_shim::hollow::HollowOptions {
        count: args.count,
        scheduler: args.scheduler,
        token: args.token,
        prefix: args.prefix,
        first_address: args.first_address,
        port: args.port,
        labels: args.labels.into_iter().collect(),
        cpus: args.cpus,
        memory_bytes: args.memory_mib << 20,
        state_dir: args.state_dir,
        limits: args.limits,
    })
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{s:?} is not KEY=VALUE")),
    }
}

#[derive(Subcommand)]
enum CertCommand {
    /// Create a CA: DIR/ca.pem and DIR/ca-key.pem.
    Ca {
        /// The directory to write to.
        #[arg(long)]
        dir: PathBuf,
        /// The CA's common name.
        #[arg(long, default_value = "mini-shim development CA")]
        name: String,
    },
    /// Issue a certificate signed by the CA in DIR: DIR/NAME.pem and DIR/NAME-key.pem.
    Issue {
        /// The directory holding ca.pem and ca-key.pem, where the certificate is written.
        #[arg(long)]
        dir: PathBuf,
        /// The certificate's name (its common name and file name).
        #[arg(long)]
        name: String,
        /// An agent's server certificate (otherwise a client certificate).
        #[arg(long)]
        server: bool,
        /// A DNS name or IP address the server certificate is valid for (repeatable).
        #[arg(long = "san")]
        sans: Vec<String>,
        /// How long the certificate is valid (at most 365 days).
        #[arg(long, default_value = "90days", value_parser = humantime::parse_duration)]
        ttl: std::time::Duration,
    },
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
}

fn agent(args: AgentArgs) -> Result<(), agent::Error> {
    let tls = match (args.tls_cert, args.tls_key, args.client_ca) {
        (Some(cert), Some(key), Some(ca)) => Some(TlsFiles { cert, key, ca }),
        _ => None,
    };
    let config = agent::Config {
        listen: Listen::parse(&args.listen, args.dev, tls)?,
        state_dir: args.state_dir,
        node: args.node_name.unwrap_or_else(hostname),
        limits: args.limits.limits(1),
        cleanup: args.cleanup,
        registries: args.registries.options(),
    };
    agent::run(config)
}

fn join(args: JoinArgs) -> Result<(), mini_shim::join::JoinError> {
    mini_shim::join::run(mini_shim::join::JoinOptions {
        scheduler: args.scheduler,
        token: args.token,
        listen: args.listen,
        advertise: args.advertise,
        labels: args.labels.into_iter().collect::<BTreeMap<_, _>>(),
        node: args.node_name.unwrap_or_else(hostname),
        state_dir: args.state_dir,
        rejoin: args.rejoin,
        limits: args.limits.limits(1),
        cleanup: args.cleanup,
        registries: args.registries.options(),
    })
}

fn cert(command: CertCommand) -> Result<(), agent::Error> {
    match command {
        CertCommand::Ca { dir, name } => {
            pki::write(&dir, "ca", &pki::new_ca(&name)?)?;
            println!("{}", pki::paths(&dir, "ca").0.display());
        }
        CertCommand::Issue {
            dir,
            name,
            server,
            sans,
            ttl,
        } => {
            let ca = pki::read(&dir, "ca")?;
            let role = if server {
                pki::Role::Server
            } else {
                pki::Role::Client
            };
            pki::write(&dir, &name, &pki::issue(&ca, &name, role, &sans, ttl)?)?;
            println!("{}", pki::paths(&dir, &name).0.display());
        }
    }
    Ok(())
}

fn main() {
    // A container init started by the mini-run library re-executes this binary: hand it over
    // before anything else runs (see mini_run::process::exe_guard).
    if let Some(fd) = std::env::var_os(mini_run::process::exe_guard::INIT_ENV) {
        let fd = fd.to_str().and_then(|s| s.parse().ok()).unwrap_or(-1);
        mini_run::process::init::main(fd);
    }
    let result: Result<(), Box<dyn std::error::Error>> = match Cli::parse().command {
        // Forks the monitor before any thread exists: nothing may start one before this.
        Command::Monitor(args) => mini_shim::monitor::main(args),
        Command::Agent(args) => agent(args).map_err(Into::into),
        Command::Join(args) => join(args).map_err(Into::into),
        Command::Hollow(args) => hollow(args).map_err(Into::into),
        Command::Cert(command) => cert(command).map_err(Into::into),
    };
    if let Err(e) = result {
        eprintln!("mini-shim: {e}");
        std::process::exit(1);
    }
}
