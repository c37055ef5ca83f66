//! `lb-agent`: run the load balancer, check a config, query or reload a running agent.

fn main() -> std::process::ExitCode {
    lb_agent::cli::main()
}
