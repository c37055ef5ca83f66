//! The command line of `lb-agent` (also built into the test suite's copy of the agent).

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "lb-agent",
    version,
    about = "XDP direct-routing load balancer with a keepalived-compatible VRRP agent",
    long_about = "lb-agent balances TCP and UDP traffic for virtual services (VIP, port, protocol) \
to real servers in direct-routing mode, with an XDP program that rewrites only Ethernet \
addresses. It runs VRRP (v2/v3, keepalived-compatible) to own the VIPs, health-checks the real \
servers and keeps consistent-hash (Maglev) tables in the kernel.\n\n\
Start with `lb-agent check --config lb.yaml`, then `lb-agent run --config lb.yaml`."
)]
struct Cli {
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Human, global = true)]
    log_format: LogFormat,
    /// Log filter (tracing syntax), e.g. `info`, `debug`, `lb_agent=debug`. Env: LB_LOG.
    #[arg(long, default_value = "info", global = true)]
    log_level: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the agent (needs root: CAP_NET_ADMIN, CAP_NET_RAW, CAP_BPF).
    #[command(after_help = "Example:\n  lb-agent run --config /etc/lb/lb.yaml\n\n\
SIGTERM stops gracefully (a VRRP master hands over first); SIGHUP reloads the config.")]
    Run {
        /// The YAML configuration.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a configuration and print a summary (like `keepalived -t`). Exit 0 if valid.
    #[command(after_help = "Example:\n  lb-agent check --config /etc/lb/lb.yaml")]
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Show the running agent: VRRP instances (state, priority, master, split brains) and
    /// virtual services with their reals (weight, health, last check, flows, packets, rates),
    /// like `ipvsadm -Ln --stats`.
    #[command(
        after_help = "Examples:\n  lb-agent status --config /etc/lb/lb.yaml\n  lb-agent status --json --flows | jq '.services[].reals[]'\n\nThe agent is found through its control socket: --socket, or the config's \
global_defs.control_socket, or /run/lb-agent/lb.sock. Only root can open it."
    )]
    Status {
        #[command(flatten)]
        target: Target,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// Also count each real's entries in the connection table (scans it, up to 200000).
        #[arg(long)]
        flows: bool,
    },
    /// Convert a keepalived.conf (and what it includes) to an lb YAML config on stdout. Every
    /// directive that does not carry over as it was is reported on stderr with its line.
    #[command(
        name = "import-keepalived",
        after_help = "Example:\n  lb-agent import-keepalived /etc/keepalived/keepalived.conf > lb.yaml\n  \
lb-agent check --config lb.yaml\n\n\
Schedulers map onto weighted Maglev (rr, wrr, wlc, ...) or source_hash (sh); NAT and TUN \
services cannot be carried over (direct routing only) and are reported, not imported."
    )]
    ImportKeepalived {
        /// The keepalived configuration file.
        file: PathBuf,
    },
    /// Ask the running agent to reload its config (same as SIGHUP). An invalid file leaves
    /// the running config in place and the error is printed; exit 1.
    #[command(
        after_help = "Example:\n  lb-agent check -c /etc/lb/lb.yaml && lb-agent reload -c /etc/lb/lb.yaml"
    )]
    Reload {
        #[command(flatten)]
        target: Target,
    },
    /// Which real a flow goes to, and why: its connection-table entry (and whether that real
    /// still takes it), or the choice a new flow would get (client affinity, Maglev slot).
    #[command(
        after_help = "Example:\n  lb-agent explain 198.51.100.7:51234 10.0.0.100:80 tcp\n\n\
decision: entry (the flow's remembered real), affinity, maglev (a new flow's table slot), \
none (no usable real: dropped), no service (not an active service here: passed to the kernel)."
    )]
    Explain {
        /// The client's address and port.
        client: std::net::SocketAddr,
        /// The virtual service's address and port.
        vip: std::net::SocketAddr,
        /// tcp or udp.
        #[arg(default_value = "tcp", value_parser = ["tcp", "udp"])]
        proto: String,
        #[command(flatten)]
        target: Target,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
struct Target {
    /// The agent's control socket.
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Find the control socket from this config.
    #[arg(long, short)]
    config: Option<PathBuf>,
}

impl Target {
    fn socket(&self) -> Result<PathBuf, String> {
        if let Some(s) = &self.socket {
            return Ok(s.clone());
        }
        if let Some(c) = &self.config {
            return crate::config::load(c)
                .map(|cfg| cfg.control_socket)
                .map_err(|e| e.to_string());
        }
        Ok(PathBuf::from("/run/lb-agent/lb.sock"))
    }
}

fn call(target: &Target, req: crate::control::Request) -> Result<crate::control::Response, String> {
    let socket = target.socket()?;
    crate::control::client::call(&socket, &req).map_err(|e| format!("{e:#}"))
}

fn init_logs(format: LogFormat, level: &str) {
    let filter = std::env::var("LB_LOG").unwrap_or_else(|_| level.to_owned());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Human => b.init(),
        LogFormat::Json => b.json().init(),
    }
}

/// Parses the command line and runs the command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs(cli.log_format, &cli.log_level);
    match cli.cmd {
        Cmd::Run { config } => match crate::agent::run(crate::agent::Options { config }) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("lb-agent: {e:#}");
                ExitCode::FAILURE
            }
        },
        Cmd::Check { config } => match crate::config::load(&config) {
            Ok(cfg) => {
                print!("{}", crate::config::summary(&cfg));
                println!("{}: configuration OK", config.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprint!("{e}");
                ExitCode::FAILURE
            }
        },
        Cmd::Status {
            target,
            json,
            flows,
        } => match call(&target, crate::control::Request::Status { flows }) {
            Ok(crate::control::Response::Status(snap)) => {
                if json {
                    match serde_json::to_string_pretty(&snap) {
                        Ok(s) => println!("{s}"),
                        Err(e) => {
                            eprintln!("lb-agent: {e}");
                            return ExitCode::FAILURE;
                        }
                    }
                } else {
                    print!("{}", crate::control::text::render(&snap));
                }
                ExitCode::SUCCESS
            }
            Ok(other) => {
                eprintln!("lb-agent: unexpected answer: {other:?}");
                ExitCode::FAILURE
            }
            Err(e) => {
                eprintln!("lb-agent: {e}");
                ExitCode::FAILURE
            }
        },
        Cmd::ImportKeepalived { file } => match crate::config::import::import_file(&file) {
            Ok(report) => {
                for n in &report.notes {
                    eprintln!("{}:{}: {}: {}", n.file, n.line, n.severity, n.message);
                }
                print!("{}", crate::config::import::to_yaml(&report));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("lb-agent: {e}");
                ExitCode::FAILURE
            }
        },
        Cmd::Explain {
            client,
            vip,
            proto,
            target,
            json,
        } => match call(
            &target,
            crate::control::Request::Explain { client, vip, proto },
        ) {
            Ok(crate::control::Response::Explain(e)) => {
                if json {
                    println!("{}", serde_json::to_string_pretty(&e).unwrap_or_default());
                } else {
                    print!("{}", crate::control::text::explain(&e));
                }
                ExitCode::SUCCESS
            }
            Ok(crate::control::Response::Error { message }) => {
                eprintln!("lb-agent: {message}");
                ExitCode::FAILURE
            }
            Ok(other) => {
                eprintln!("lb-agent: unexpected answer: {other:?}");
                ExitCode::FAILURE
            }
            Err(e) => {
                eprintln!("lb-agent: {e}");
                ExitCode::FAILURE
            }
        },
        Cmd::Reload { target } => match call(&target, crate::control::Request::Reload) {
            Ok(crate::control::Response::Reloaded { message }) => {
                println!("{message}");
                ExitCode::SUCCESS
            }
            Ok(crate::control::Response::Error { message }) => {
                eprintln!("lb-agent: {message}");
                ExitCode::FAILURE
            }
            Ok(other) => {
                eprintln!("lb-agent: unexpected answer: {other:?}");
                ExitCode::FAILURE
            }
            Err(e) => {
                eprintln!("lb-agent: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
