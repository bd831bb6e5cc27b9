//! `mini-sched`: the scheduler's command line. Parses arguments, calls `mini_sched::cli` and
//! prints; every failure is one line on stderr and a non-zero exit.

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Parser, Subcommand, ValueEnum};
use mini_sched::api::DEFAULT_SOCKET;
use mini_sched::cli::commands::{self, Kind, Listing, NodeAction, Output};
use mini_sched::cli::{cluster, rollout, Client, Error};
use mini_sched::{daemon, join, Policy};
use mini_shim::connection_limits::LimitArgs;
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Deploys and runs workloads on a cluster of mini-shim agents.
#[derive(Parser)]
#[command(name = "mini-sched", version)]
struct Cli {
    /// The daemon's socket.
    #[arg(long, global = true, env = "MINI_SCHED_SOCKET", default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Creates or updates the workload or service (`kind: service`) a spec file describes.
    Apply {
        /// The spec (YAML or JSON); `-` reads stdin.
        #[arg(short = 'f', long = "filename", value_name = "FILE")]
        file: String,
        /// Validate and report what would happen, changing nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Lists nodes, workloads, instances or services.
    Get {
        /// What to list.
        kind: Kind,
        /// Only the instances of this workload.
        #[arg(short = 'w', long)]
        workload: Option<String>,
        /// Also the instances that ended superseded (stopped, or lost and replaced).
        #[arg(short = 'A', long)]
        all: bool,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value_t)]
        output: Output,
    },
    /// Shows one node, workload, instance or service in detail, with its events.
    Describe {
        /// What kind of object.
        kind: Kind,
        /// Its name.
        name: String,
    },
    /// Sets a workload's replica count.
    Scale {
        /// The workload.
        workload: String,
        /// The new count.
        replicas: u32,
    },
    /// Shows the requests and limits a workload's measured usage calls for (p90 cpu, peak
    /// memory + 15%) against its spec; `--apply` rolls them out as a new revision.
    Rightsize {
        /// The workload.
        workload: String,
        /// Apply the recommendation (a rolling update).
        #[arg(long)]
        apply: bool,
    },
    /// Deletes a workload (`delete workload W` or `delete -f FILE`) or a node (`delete node
    /// N`: it is forgotten, its certificate with it, and its instances are replaced elsewhere).
    Delete {
        /// The workload a spec file names.
        #[arg(short = 'f', long = "filename", value_name = "FILE", conflicts_with_all = ["kind", "name"])]
        file: Option<String>,
        /// `workload`, `service` or `node`.
        #[arg(required_unless_present = "file", requires = "name")]
        kind: Option<DeleteKind>,
        /// The workload's, service's or node's name.
        #[arg(required_unless_present = "file")]
        name: Option<String>,
    },
    /// Follows, undoes or lists a workload's rollouts.
    Rollout {
        #[command(subcommand)]
        command: RolloutCommand,
    },
    /// Moves an instance to another node (make-before-break).
    Migrate {
        /// The instance.
        instance: String,
        /// The target node; default: placement chooses.
        #[arg(long)]
        to: Option<String>,
    },
    /// Marks a node so that it takes no new instances.
    Cordon {
        /// The node.
        node: String,
    },
    /// Lets a cordoned node take new instances again.
    Uncordon {
        /// The node.
        node: String,
    },
    /// Cordons a node and moves its instances elsewhere.
    Drain {
        /// The node.
        node: String,
    },
    /// Sets (`key=value`) or removes (`key-`) a node's labels.
    Label {
        /// `node`.
        kind: NodeKind,
        /// The node.
        node: String,
        /// `key=value` or `key-`.
        #[arg(required = true, value_name = "CHANGE")]
        changes: Vec<String>,
    },
    /// Adds (`key=value:Effect`, `key:Effect`) or removes (`key-`) a node's taints.
    Taint {
        /// `node`.
        kind: NodeKind,
        /// The node.
        node: String,
        /// `key=value:Effect`, `key:Effect` or `key-`.
        #[arg(required = true, value_name = "CHANGE")]
        changes: Vec<String>,
    },
    /// Prints an instance's output.
    Logs {
        /// The instance.
        instance: String,
        /// Keep printing new output until the instance exits.
        #[arg(short = 'f', long)]
        follow: bool,
        /// Only the last N lines.
        #[arg(long, value_name = "N")]
        tail: Option<u64>,
    },
    /// Runs a command in an instance and exits with its code.
    Exec {
        /// The instance.
        instance: String,
        /// The command and its arguments, after `--`.
        #[arg(last = true, required = true, value_name = "COMMAND")]
        command: Vec<String>,
    },
    /// Lists recent events.
    Events {
        /// Only about this workload and its instances.
        #[arg(short = 'w', long)]
        workload: Option<String>,
        /// Output format (`wide` is the table).
        #[arg(short = 'o', long, value_enum, default_value_t)]
        output: Output,
    },
    /// Moves instances off hot nodes and onto idle ones.
    Rebalance,
    /// Creates a cluster: its certificate authority, the scheduler's certificates and a join
    /// token.
    Init {
        /// Where the cluster's files go.
        #[arg(long, default_value = DEFAULT_STATE_DIR)]
        state_dir: PathBuf,
        /// The address agents join through (the daemon's --join-listen as agents reach it).
        #[arg(long, value_name = "IP:PORT")]
        advertise: SocketAddr,
        /// How long the first join token stays valid (at most 30 days).
        #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
        ttl: Duration,
        /// How many agents may join with the first token (default: any number until it
        /// expires).
        #[arg(long, value_name = "N")]
        uses: Option<u32>,
        /// How long the admin certificate (pki/admin.pem) is valid (at most 365 days;
        /// `mini-sched cert admin` makes a new one).
        #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
        admin_ttl: Duration,
        /// The cluster network's addresses: each node gets a subnet of it when it joins.
        #[arg(long, value_name = "CIDR", default_value = mini_sched::network::DEFAULT_CIDR)]
        cluster_cidr: String,
        /// The prefix length of each node's subnet (its instances' addresses).
        #[arg(long, value_name = "PREFIX", default_value_t = mini_sched::network::DEFAULT_SUBNET_SIZE)]
        subnet_size: u8,
        /// How nodes reach each other's subnets: host-gw (a route per node via its address;
        /// the nodes share one L2 segment) or vxlan (a VXLAN device per node; the nodes are
        /// only routed to each other).
        #[arg(long, value_enum, default_value_t = Backend::HostGw)]
        network_backend: Backend,
        /// Do not masquerade instances' traffic to addresses outside the cluster CIDR.
        #[arg(long)]
        no_masquerade: bool,
        /// Where services' virtual addresses come from (must not overlap the cluster CIDR).
        #[arg(long, value_name = "CIDR", default_value = mini_sched::service::settings::DEFAULT_SERVICE_CIDR)]
        service_cidr: String,
        /// The ports a service's `node_port` may use (LOW-HIGH).
        #[arg(long, value_name = "LOW-HIGH", default_value = mini_sched::service::settings::DEFAULT_NODE_PORTS)]
        node_port_range: String,
        /// The DNS domain services answer under (`<service>.<domain>`).
        #[arg(long, value_name = "DOMAIN", default_value = mini_sched::service::settings::DEFAULT_DOMAIN)]
        cluster_domain: String,
    },
    /// Creates, lists or revokes join tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Makes a new admin certificate.
    Cert {
        #[command(subcommand)]
        command: CertCommand,
    },
    /// Runs the scheduler: the API on --socket, the join listener, heartbeats and controllers.
    Daemon {
        /// The cluster made by `init`, and the state store.
        #[arg(long, default_value = DEFAULT_STATE_DIR)]
        state_dir: PathBuf,
        /// Where agents join (default: the address given to `init --advertise`).
        #[arg(long, value_name = "IP:PORT")]
        join_listen: Option<SocketAddr>,
        /// How often every node is polled.
        #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
        heartbeat_interval: Duration,
        /// Silence after which a node is lost and its instances are replaced elsewhere.
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        node_timeout: Duration,
        /// How placement prefers nodes.
        #[arg(long, value_enum, default_value_t = PolicyArg::LeastAllocated)]
        policy: PolicyArg,
        /// How often the rebalancer runs; `0s`: only on `mini-sched rebalance`.
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        rebalance_interval: Duration,
        /// Also serve `GET /metrics` (only that, plain HTTP) on this address for Prometheus;
        /// the API socket always serves it.
        #[arg(long, value_name = "IP:PORT")]
        metrics_listen: Option<SocketAddr>,
        #[command(flatten)]
        limits: LimitArgs,
        /// The lifetime of the certificates issued to nodes and of the scheduler's own (1
        /// minute to 365 days); they are renewed before they expire.
        #[arg(long, default_value = "30days", value_parser = humantime::parse_duration)]
        cert_ttl: Duration,
        /// How long before its expiry a certificate is renewed (default: a third of
        /// --cert-ttl).
        #[arg(long, value_parser = humantime::parse_duration)]
        cert_renew_before: Option<Duration>,
    },
}

#[derive(Subcommand)]
enum CertCommand {
    /// Replaces pki/admin.pem and its key with a new pair valid for --ttl.
    Admin {
        /// The cluster's state directory.
        #[arg(long, default_value = DEFAULT_STATE_DIR)]
        state_dir: PathBuf,
        /// How long it is valid (at most 365 days).
        #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
        ttl: Duration,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Makes a join token and prints it with the join command.
    Create {
        /// The cluster's state directory.
        #[arg(long, default_value = DEFAULT_STATE_DIR)]
        state_dir: PathBuf,
        /// How long it stays valid (at most 30 days).
        #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
        ttl: Duration,
        /// How many agents may join with it (default: any number until it expires; with
        /// --rejoin: one).
        #[arg(long, value_name = "N")]
        uses: Option<u32>,
        /// A token for node NODE only, which may replace that node without its certificate
        /// (an agent whose certificate expired or whose state was lost).
        #[arg(long, value_name = "NODE")]
        rejoin: Option<String>,
    },
    /// Lists the join tokens (never their secrets) with their uses.
    List {
        /// The cluster's state directory.
        #[arg(long, default_value = DEFAULT_STATE_DIR)]
        state_dir: PathBuf,
    },
    /// Revokes a join token: it is refused from now on.
    Revoke {
        /// The cluster's state directory.
        #[arg(long, default_value = DEFAULT_STATE_DIR)]
        state_dir: PathBuf,
        /// The token's id, as `token list` shows it.
        id: String,
    },
}

/// `init --network-backend`.
#[derive(Clone, Copy, ValueEnum)]
enum Backend {
    /// A route per node's subnet via the node's address (nodes on one L2 segment).
    HostGw,
    /// A VXLAN device per node with forwarding entries for each peer (nodes only routed to
    /// each other).
    Vxlan,
}

impl From<Backend> for mini_shim::protocol::NetworkBackend {
    fn from(b: Backend) -> Self {
        match b {
            Backend::HostGw => mini_shim::protocol::NetworkBackend::HostGw,
            Backend::Vxlan => mini_shim::protocol::NetworkBackend::Vxlan,
        }
    }
}

/// `--policy`.
#[derive(Clone, Copy, ValueEnum)]
enum PolicyArg {
    /// Prefer the emptiest nodes.
    LeastAllocated,
    /// Pack onto the fullest nodes that fit.
    MostAllocated,
    /// Prefer nodes whose cpu and memory end up equally used.
    Balanced,
}

impl From<PolicyArg> for Policy {
    fn from(p: PolicyArg) -> Policy {
        match p {
            PolicyArg::LeastAllocated => Policy::LeastAllocated,
            PolicyArg::MostAllocated => Policy::MostAllocated,
            PolicyArg::Balanced => Policy::Balanced,
        }
    }
}

/// Where `init`, `token` and `daemon` keep the cluster unless told otherwise.
const DEFAULT_STATE_DIR: &str = "/var/lib/mini-sched";

#[derive(Subcommand)]
enum RolloutCommand {
    /// Follows a rollout until it completes.
    Status {
        /// The workload.
        workload: String,
        /// Give up (exit 1) after this long without completion; `0s` waits forever.
        #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
    /// Rolls back to the previous (or a given) revision.
    Undo {
        /// The workload.
        workload: String,
        /// The revision to return to.
        #[arg(long, value_name = "N")]
        to_revision: Option<u64>,
    },
    /// Lists a workload's revisions.
    History {
        /// The workload.
        workload: String,
    },
}

/// The only kind `label` and `taint` change.
#[derive(Clone, Copy, ValueEnum)]
enum NodeKind {
    #[value(alias = "nodes")]
    Node,
}

/// What `delete` deletes by name.
#[derive(Clone, Copy, ValueEnum)]
enum DeleteKind {
    #[value(alias = "workloads")]
    Workload,
    #[value(alias = "nodes")]
    Node,
    #[value(alias = "services", alias = "svc")]
    Service,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let command = match local(cli.command, cli.socket.clone()) {
        Ok(Some(command)) => command,
        Ok(None) => return ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("mini-sched: {message}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mini-sched: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let client = Client::new(cli.socket);
    match runtime.block_on(run(&client, command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mini-sched: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the commands that do not call the daemon (`init`, `token`, `daemon` itself); hands
/// back the others.
fn local(command: Command, socket: PathBuf) -> Result<Option<Command>, String> {
    match command {
        Command::Init {
            state_dir,
            advertise,
            ttl,
            uses,
            admin_ttl,
            cluster_cidr,
            subnet_size,
            network_backend,
            no_masquerade,
            service_cidr,
            node_port_range,
            cluster_domain,
        } => {
            let network = mini_sched::network::Settings::new(
                &cluster_cidr,
                subnet_size,
                network_backend.into(),
                !no_masquerade,
            )?;
            let services = mini_sched::service::settings::Settings::new(
                &service_cidr,
                &node_port_range,
                &cluster_domain,
                network.cluster_cidr,
            )?;
            let options = join::InitOptions {
                token: join::TokenSpec {
                    ttl,
                    max_uses: uses,
                    rejoin: None,
                },
                lifetimes: join::Lifetimes {
                    own: join::DEFAULT_CERT_TTL,
                    admin: admin_ttl,
                },
                network,
            };
            let text = cluster::init(&state_dir, advertise, &options).map_err(|e| e.to_string())?;
            services.save(&state_dir).map_err(|e| {
                format!(
                    "writing {}: {e}",
                    state_dir
                        .join(mini_sched::service::settings::SETTINGS_FILE)
                        .display()
                )
            })?;
            emit(&text).map_err(|e| e.to_string())?;
        }
        Command::Token {
            command:
                TokenCommand::Create {
                    state_dir,
                    ttl,
                    uses,
                    rejoin,
                },
        } => {
            let spec = join::TokenSpec {
                ttl,
                max_uses: uses.or(rejoin.as_ref().map(|_| 1)),
                rejoin,
            };
            let text = cluster::token_create(&state_dir, &spec).map_err(|e| e.to_string())?;
            emit(&text).map_err(|e| e.to_string())?;
        }
        Command::Token {
            command: TokenCommand::Revoke { state_dir, id },
        } => {
            let text = cluster::token_revoke(&state_dir, &id).map_err(|e| e.to_string())?;
            emit(&text).map_err(|e| e.to_string())?;
        }
        Command::Cert {
            command: CertCommand::Admin { state_dir, ttl },
        } => {
            let text = cluster::cert_admin(&state_dir, ttl).map_err(|e| e.to_string())?;
            emit(&text).map_err(|e| e.to_string())?;
        }
        Command::Token {
            command: TokenCommand::List { state_dir },
        } => {
            let table = cluster::token_list(&state_dir).map_err(|e| e.to_string())?;
            if table.is_empty() {
                eprintln!("No tokens found.");
            } else {
                emit(&table.render()).map_err(|e| e.to_string())?;
            }
        }
        Command::Daemon {
            state_dir,
            join_listen,
            heartbeat_interval,
            node_timeout,
            policy,
            rebalance_interval,
            metrics_listen,
            cert_ttl,
            cert_renew_before,
            limits,
        } => daemon::run(daemon::Config {
            state_dir,
            socket,
            join_listen,
            heartbeat_interval,
            node_timeout,
            policy: policy.into(),
            rebalance_interval,
            // The join listener, the API socket and perhaps the metrics listener.
            limits: limits.limits(2 + usize::from(metrics_listen.is_some())),
            metrics_listen,
            cert_ttl,
            cert_renew_before,
        })
        .map_err(|e| e.to_string())?,
        other => return Ok(Some(other)),
    }
    Ok(None)
}

/// Prints clap's help and version as clap does; any other parse error as one line.
fn usage_error(e: clap::Error) -> ExitCode {
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit();
    }
    // clap's message runs to the first blank line (the problem, then e.g. the missing
    // arguments or the possible values on lines of their own); the usage follows.
    let rendered = e.render().to_string();
    let message: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .take_while(|l| !l.is_empty())
        .collect();
    let joined = message.join(" ");
    let mut line = joined
        .strip_prefix("error: ")
        .unwrap_or(&joined)
        .to_string();
    if let Some(ContextValue::StyledStr(usage)) = e.get(ContextKind::Usage) {
        let usage = usage.to_string();
        line.push_str(&format!(
            "; usage: {}",
            usage.trim().trim_start_matches("Usage: ")
        ));
    }
    eprintln!("mini-sched: {line}");
    ExitCode::from(2)
}

/// Writes `text` to stdout ending in a newline.
fn emit(text: &str) -> Result<(), Error> {
    if text.ends_with('\n') || text.is_empty() {
        emit_raw(text)
    } else {
        emit_raw(&format!("{text}\n"))
    }
}

/// Writes `text` to stdout as it is; a closed pipe (`| head`) is not an error.
fn emit_raw(text: &str) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

fn emit_listing(listing: Listing) -> Result<(), Error> {
    match listing {
        Listing::Text(text) => emit(&text),
        Listing::Empty(note) => {
            eprintln!("{note}");
            Ok(())
        }
    }
}

async fn run(client: &Client, command: Command) -> Result<ExitCode, Error> {
    match command {
        Command::Apply { file, dry_run } => {
            let (what, text) = commands::read_spec(&file)?;
            emit(&commands::apply(client, &what, text, dry_run).await?)?;
        }
        Command::Get {
            kind,
            workload,
            all,
            output,
        } => emit_listing(commands::get(client, kind, workload.as_deref(), all, output).await?)?,
        Command::Describe { kind, name } => {
            emit(&commands::describe(client, kind, &name).await?)?;
        }
        Command::Scale { workload, replicas } => {
            emit(&commands::scale(client, &workload, replicas).await?)?;
        }
        Command::Rightsize { workload, apply } => {
            emit(&commands::rightsize(client, &workload, apply).await?)?;
        }
        Command::Delete { file, kind, name } => {
            let text = match (file, kind, name) {
                (Some(file), _, _) => {
                    let (what, text) = commands::read_spec(&file)?;
                    commands::delete_spec(client, &what, text).await?
                }
                (None, Some(DeleteKind::Node), Some(name)) => {
                    commands::delete_node(client, &name).await?
                }
                (None, Some(DeleteKind::Service), Some(name)) => {
                    commands::delete_service(client, &name).await?
                }
                (None, _, Some(name)) => commands::delete_workload(client, &name).await?,
                (None, _, None) => unreachable!("clap requires a file or a name"),
            };
            emit(&text)?;
        }
        Command::Rollout { command } => match command {
            RolloutCommand::Status { workload, timeout } => {
                let timeout = (!timeout.is_zero()).then_some(timeout);
                let terminal = std::io::stdout().is_terminal();
                let status = rollout::watch(client, &workload, timeout, terminal).await?;
                emit(&rollout::done_line(&status))?;
            }
            RolloutCommand::Undo {
                workload,
                to_revision,
            } => emit(&commands::rollback(client, &workload, to_revision).await?)?,
            RolloutCommand::History { workload } => {
                emit(&commands::history(client, &workload).await?)?;
            }
        },
        Command::Migrate { instance, to } => {
            emit(&commands::migrate(client, &instance, to).await?)?;
        }
        Command::Cordon { node } => {
            emit(&commands::node_action(client, &node, NodeAction::Cordon).await?)?;
        }
        Command::Uncordon { node } => {
            emit(&commands::node_action(client, &node, NodeAction::Uncordon).await?)?;
        }
        Command::Drain { node } => {
            emit(&commands::node_action(client, &node, NodeAction::Drain).await?)?;
        }
        Command::Label { node, changes, .. } => {
            emit(&commands::label(client, &node, &changes).await?)?
        }
        Command::Taint { node, changes, .. } => {
            emit(&commands::taint(client, &node, &changes).await?)?
        }
        Command::Logs {
            instance,
            follow,
            tail,
        } => {
            let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
            match commands::logs(client, &instance, follow, tail, &mut out, &mut err).await {
                Err(Error::Write(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                other => other?,
            }
        }
        Command::Exec { instance, command } => {
            let result = commands::exec(client, &instance, command).await?;
            emit_raw(&result.stdout)?;
            eprint!("{}", result.stderr);
            if result.timed_out {
                eprintln!("mini-sched: the command ran past its timeout and was killed");
            }
            return Ok(ExitCode::from(exit_status(result.exit_code)));
        }
        Command::Events { workload, output } => {
            emit_listing(commands::events(client, workload.as_deref(), output).await?)?;
        }
        Command::Rebalance => emit(&commands::rebalance(client).await?)?,
        Command::Init { .. }
        | Command::Token { .. }
        | Command::Cert { .. }
        | Command::Daemon { .. } => {
            unreachable!("run by `local`")
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A command's exit code as this process's status (codes outside 0–255 become 255).
fn exit_status(code: i32) -> u8 {
    u8::try_from(code).unwrap_or(u8::MAX)
}
