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
        Cmd::Run { config } => {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("lb-agent: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(crate::agent::run(crate::agent::Options { config })) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("lb-agent: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
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
    }
}
