//! `verdict token`: API tokens (only their SHA-256 is stored).

use clap::Subcommand;

use verdict::config::Settings;

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it (shown once).
    Create {
        #[arg(long)]
        name: String,
    },
    /// Revoke a token by name.
    Revoke {
        #[arg(long)]
        name: String,
    },
}

pub fn run(settings: &Settings, command: TokenCommand) -> anyhow::Result<()> {
    let mut conn = super::open_store(settings)?;
    match command {
        TokenCommand::Create { name } => {
            let token = verdict::tokens::create(&mut conn, &name, "cli")?;
            println!("{token}");
            eprintln!("API token {name:?} created; it is shown only this once.");
        }
        TokenCommand::Revoke { name } => {
            verdict::tokens::revoke(&mut conn, &name, "cli")?;
            println!("token {name:?} revoked (running servers stop accepting it within 1 s)");
        }
    }
    Ok(())
}
