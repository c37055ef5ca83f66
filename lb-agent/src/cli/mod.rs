//! The command line of `lb-agent` (also built into the test suite's copy of the agent): its
//! definition and dispatch; talking to the agent is in `client`.

mod client;
mod docs;
mod real_server;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand, ValueEnum};

use client::{call, print_json, report, Target};

#[derive(Parser)]
#[command(
    name = "lb-agent",
    version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("LB_GIT_COMMIT"), ")"),
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

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
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
    /// With --host, also check that this host can run it (kernel, BPF, capabilities, bpffs,
    /// each interface's driver and XDP mode, MTU, the reals' and peers' neighbours): pass,
    /// warn or fail per item, exit 1 on any fail.
    #[command(
        after_help = "Examples:\n  lb-agent check --config /etc/lb/lb.yaml\n  lb-agent check --host --config /etc/lb/lb.yaml   # on the balancer, as root"
    )]
    Check {
        #[arg(long, short)]
        config: PathBuf,
        /// Also check this host (needs root; loads the XDP program without attaching it for
        /// traffic, and probes native XDP on each interface for a moment).
        #[arg(long)]
        host: bool,
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
        /// Redraw every --interval until interrupted (a live view, like `watch`).
        #[arg(long, short)]
        watch: bool,
        /// Seconds between redraws with --watch.
        #[arg(long, default_value_t = 1.0)]
        interval: f64,
    },
    /// Change a real server at once, without a reload (like `ipvsadm -e`): drain it (weight 0:
    /// established flows stay, new ones go to the other reals), set its weight, or enable it
    /// again (the configured weight). Kept across agent restarts until enabled or until the
    /// config changes that real; `status` shows it with its age.
    #[command(
        after_help = "Examples:\n  lb-agent real drain 192.0.2.100:80 10.0.0.11\n  lb-agent real weight 5 192.0.2.100:53/udp 10.0.0.12\n  lb-agent real enable '[2001:db8::100]:443' 2001:db8::11\n\nSERVICE is VIP:PORT with an optional /tcp (default) or /udp; REAL is the real's address (or address:port)."
    )]
    Real {
        #[command(subcommand)]
        action: RealAction,
        #[command(flatten)]
        target: Target,
    },
    /// On a real server (the other half of direct routing): check it holds the VIP on `lo`,
    /// ignores ARP for it (`arp_ignore`/`arp_announce`), filters no reply path, and listens on
    /// the ports; or set up the runtime part and print the persistent form.
    #[command(
        name = "real-server",
        after_help = "Examples (on each real server, as root):\n  lb-agent real-server check --vip 192.0.2.100 --port 80 --port 443\n  lb-agent real-server setup --vip 192.0.2.100            # runtime settings + prints the persistent form\n  lb-agent real-server setup --vip 192.0.2.100 --write    # also writes /etc/sysctl.d and the networkd file"
    )]
    RealServer {
        #[command(subcommand)]
        action: real_server::RealServerAction,
    },
    /// List connection-table entries (like `ipvsadm -Lnc`): client, virtual service, real. The
    /// whole table is read, so the per-real counts at the end are exact; the listing stops at
    /// --limit and says how many more matched.
    #[command(
        after_help = "Examples:\n  lb-agent conns --vip 192.0.2.100 --limit 20\n  lb-agent conns --real 10.0.0.11 --json | jq .per_real"
    )]
    Conns {
        /// Only flows to this VIP.
        #[arg(long)]
        vip: Option<std::net::IpAddr>,
        /// Only flows on this real.
        #[arg(long)]
        real: Option<std::net::IpAddr>,
        /// Only flows from this client.
        #[arg(long)]
        client: Option<std::net::IpAddr>,
        /// At most this many entries listed.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[command(flatten)]
        target: Target,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
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
        /// Exit 0 even when a service, instance or check could not be carried over (the
        /// YAML is printed either way).
        #[arg(long)]
        allow_partial: bool,
    },
    /// Write the man pages and shell completions generated from this command line (used by
    /// `cargo xtask dist`).
    #[command(hide = true)]
    GenerateDocs {
        /// Directory to write man8/ and completions/ into.
        out: PathBuf,
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

#[derive(Subcommand)]
enum RealAction {
    /// Weight 0: established flows stay on it, new flows go to the other reals.
    Drain { service: String, real: String },
    /// Set its weight (0 drains).
    Weight {
        weight: u32,
        service: String,
        real: String,
    },
    /// Back to the configured weight (ends a drain or weight override).
    Enable { service: String, real: String },
}

/// `VIP:PORT[/tcp|/udp]`.
fn parse_service(s: &str) -> Result<(std::net::SocketAddr, String), String> {
    let (addr, proto) = match s.rsplit_once('/') {
        Some((a, p)) => (a, p.to_ascii_lowercase()),
        None => (s, "tcp".to_owned()),
    };
    if proto != "tcp" && proto != "udp" {
        return Err(format!("{s}: the protocol is tcp or udp"));
    }
    let addr = addr.parse().map_err(|_| {
        format!("{s}: a service is VIP:PORT[/tcp|/udp], e.g. 192.0.2.1:80 or [2001:db8::1]:53/udp")
    })?;
    Ok((addr, proto))
}

/// Parses the command line and runs the command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    crate::logs::init(cli.log_format == LogFormat::Json, &cli.log_level);
    match cli.cmd {
        Cmd::Run { config } => match crate::agent::run(crate::agent::Options { config }) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("lb-agent: {e:#}");
                ExitCode::FAILURE
            }
        },
        Cmd::Check { config, host } => match crate::config::load(&config) {
            Ok(cfg) => {
                print!("{}", crate::config::summary(&cfg));
                println!("{}: configuration OK", config.display());
                if !host {
                    return ExitCode::SUCCESS;
                }
                println!("\nThis host:");
                let r = crate::preflight::run(&cfg);
                print!("{}", r.render());
                if r.failed() {
                    ExitCode::FAILURE
                } else {
                    ExitCode::SUCCESS
                }
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
            watch,
            interval,
        } => client::status(&target, json, flows, watch, interval),
        Cmd::Real { action, target } => {
            let (action, weight, service, real) = match action {
                RealAction::Drain { service, real } => ("drain", None, service, real),
                RealAction::Weight {
                    weight,
                    service,
                    real,
                } => ("weight", Some(weight), service, real),
                RealAction::Enable { service, real } => ("enable", None, service, real),
            };
            let answer = parse_service(&service).and_then(|(vip, proto)| {
                call(
                    &target,
                    crate::control::Request::SetReal {
                        vip,
                        proto,
                        real,
                        action: action.into(),
                        weight,
                    },
                )
            });
            report(answer)
        }
        Cmd::RealServer { action } => real_server::run(action),
        Cmd::Conns {
            vip,
            real,
            client,
            limit,
            target,
            json,
        } => match call(
            &target,
            crate::control::Request::Conns {
                vip,
                real,
                client,
                limit,
            },
        ) {
            Ok(crate::control::Response::Conns(l)) if json => print_json(&l),
            Ok(crate::control::Response::Conns(l)) => {
                print!("{}", crate::control::text::conns(&l));
                ExitCode::SUCCESS
            }
            other => report(other),
        },
        Cmd::ImportKeepalived {
            file,
            allow_partial,
        } => match crate::config::import::import_file(&file) {
            Ok(report) => {
                for n in &report.notes {
                    eprintln!("{}:{}: {}: {}", n.file, n.line, n.severity, n.message);
                }
                print!("{}", crate::config::import::to_yaml(&report));
                let dropped = report
                    .notes
                    .iter()
                    .filter(|n| n.severity == crate::config::import::Severity::Unsupported)
                    .count();
                if dropped > 0 && !allow_partial {
                    eprintln!(
                        "lb-agent: {dropped} directive(s) were not carried over (listed above as \
                         unsupported); the YAML lacks them. Exit 2: pass --allow-partial to \
                         accept that."
                    );
                    ExitCode::from(2)
                } else {
                    ExitCode::SUCCESS
                }
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
            Ok(crate::control::Response::Explain(e)) if json => print_json(&e),
            Ok(crate::control::Response::Explain(e)) => {
                print!("{}", crate::control::text::explain(&e));
                ExitCode::SUCCESS
            }
            other => report(other),
        },
        Cmd::Reload { target } => report(call(&target, crate::control::Request::Reload)),
        Cmd::GenerateDocs { out } => match docs::generate(&out) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("lb-agent: writing to {}: {e}", out.display());
                ExitCode::FAILURE
            }
        },
    }
}
