//! The agent as the tests run it: the same code as `lb-agent`, built as a binary of this
//! package so `cargo test -p lb-tests` always runs a fresh one.

fn main() -> std::process::ExitCode {
    lb_agent::cli::main()
}
