//! Talking to the running agent: finding its control socket, one request per call, and
//! printing the answer.

use std::{path::PathBuf, process::ExitCode};

#[derive(clap::Args)]
pub struct Target {
    /// The agent's control socket (default: the one agent's socket in /run/lb-agent).
    #[arg(long, global = true)]
    socket: Option<PathBuf>,
    /// Find the control socket from this config.
    #[arg(long, short, global = true)]
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
        default_socket()
    }
}

/// The one agent's socket in /run/lb-agent, whatever its router_id.
fn default_socket() -> Result<PathBuf, String> {
    let dir = std::path::Path::new("/run/lb-agent");
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "sock"))
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(format!(
            "no agent control socket in {} (is lb-agent running? is this root?)",
            dir.display()
        )),
        _ => Err(format!(
            "several agents run here ({}): name one with --socket or --config",
            found
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Prints an answer that is a message, or the error; the exit code says which.
pub fn report(r: Result<crate::control::Response, String>) -> ExitCode {
    match r {
        Ok(crate::control::Response::Done { message })
        | Ok(crate::control::Response::Reloaded { message }) => {
            println!("{message}");
            ExitCode::SUCCESS
        }
        Ok(crate::control::Response::Error { message }) | Err(message) => {
            eprintln!("lb-agent: {message}");
            ExitCode::FAILURE
        }
        Ok(other) => {
            eprintln!("lb-agent: unexpected answer: {other:?}");
            ExitCode::FAILURE
        }
    }
}

pub fn call(
    target: &Target,
    req: crate::control::Request,
) -> Result<crate::control::Response, String> {
    let socket = target.socket()?;
    crate::control::client::call(&socket, &req).map_err(|e| format!("{e:#}"))
}

/// Prints `v` as pretty JSON.
pub fn print_json<T: serde::Serialize>(v: &T) -> ExitCode {
    match serde_json::to_string_pretty(v) {
        Ok(s) => {
            println!("{s}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("lb-agent: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `lb-agent status`, once or (`watch`) every `interval` seconds until interrupted.
pub fn status(target: &Target, json: bool, flows: bool, watch: bool, interval: f64) -> ExitCode {
    let every = std::time::Duration::from_secs_f64(interval.clamp(0.1, 3600.0));
    loop {
        let answer = call(target, crate::control::Request::Status { flows });
        let code = match answer {
            Ok(crate::control::Response::Status(snap)) => {
                if watch {
                    // Home, clear: the next picture replaces this one.
                    print!("\x1b[H\x1b[2J");
                    println!(
                        "lb-agent status, every {:.1}s (Ctrl-C ends)   {}",
                        every.as_secs_f64(),
                        crate::control::text::clock()
                    );
                }
                if json {
                    print_json(&snap)
                } else {
                    print!("{}", crate::control::text::render(&snap));
                    ExitCode::SUCCESS
                }
            }
            other => report(other),
        };
        if !watch {
            return code;
        }
        std::thread::sleep(every);
    }
}
