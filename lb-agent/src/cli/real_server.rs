//! `lb-agent real-server check|setup`.

use std::process::ExitCode;

use clap::Subcommand;

#[derive(Subcommand)]
pub enum RealServerAction {
    /// Report each requirement: pass, warn or fail (exit 1 on a fail).
    Check {
        /// The virtual service's address.
        #[arg(long)]
        vip: std::net::IpAddr,
        /// A port the real must listen on: N, N/tcp or N/udp (repeat for several).
        #[arg(long = "port")]
        ports: Vec<crate::realserver::Listen>,
    },
    /// Put the VIP on lo and set the ARP sysctls now; print the persistent form.
    Setup {
        #[arg(long)]
        vip: std::net::IpAddr,
        /// Also write the persistent files (sysctl.d, and systemd-networkd's where it runs).
        #[arg(long)]
        write: bool,
    },
}

pub fn run(action: RealServerAction) -> ExitCode {
    match action {
        RealServerAction::Check { vip, ports } => {
            let r = crate::realserver::check(vip, &ports);
            print!("{}", r.render());
            if r.failed() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        RealServerAction::Setup { vip, write } => {
            match crate::realserver::setup(vip) {
                Ok(done) if done.is_empty() => println!("already set up for {vip}"),
                Ok(done) => {
                    for d in done {
                        println!("set: {d}");
                    }
                }
                Err(e) => {
                    eprintln!("lb-agent: {e}");
                    return ExitCode::FAILURE;
                }
            }
            println!("\nThese settings are lost at reboot; the persistent form:");
            for f in crate::realserver::persistent(vip) {
                println!("\n# {}{}\n{}", f.path, f.note, f.text);
            }
            if write {
                match crate::realserver::write_persistent(vip) {
                    Ok(files) => {
                        for f in files {
                            println!("written: {f}");
                        }
                    }
                    Err(e) => {
                        eprintln!("lb-agent: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            }
            ExitCode::SUCCESS
        }
    }
}
