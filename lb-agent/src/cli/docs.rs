//! Man pages and shell completions generated from the command line's definition
//! (`lb-agent generate-docs DIR`, used by `cargo xtask dist`).

pub fn generate(out: &std::path::Path) -> std::io::Result<()> {
    use clap::CommandFactory as _;
    let man = out.join("man8");
    let completions = out.join("completions");
    std::fs::create_dir_all(&man)?;
    std::fs::create_dir_all(&completions)?;
    let cmd = super::Cli::command();
    let page = |c: clap::Command, name: String| -> std::io::Result<()> {
        let mut buf = Vec::new();
        clap_mangen::Man::new(c)
            .section("8")
            .manual("lb manual")
            .render(&mut buf)?;
        std::fs::write(man.join(format!("{name}.8")), buf)
    };
    page(cmd.clone(), "lb-agent".into())?;
    for sub in cmd.get_subcommands().filter(|c| !c.is_hide_set()) {
        let name = format!("lb-agent-{}", sub.get_name());
        page(sub.clone().name(name.clone()), name)?;
    }
    for shell in [
        clap_complete::Shell::Bash,
        clap_complete::Shell::Zsh,
        clap_complete::Shell::Fish,
    ] {
        clap_complete::generate_to(shell, &mut cmd.clone(), "lb-agent", &completions)?;
    }
    Ok(())
}
