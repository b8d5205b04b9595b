//! `verdict token`: API tokens (only their SHA-256 is stored).

use clap::Subcommand;

use verdict::config::Settings;
use verdict::domain::Rate;

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it (shown once).
    Create {
        #[arg(long)]
        name: String,
        /// Requests this token may make, e.g. 100/s, 6000/min or 5/10s
        /// (default: `[rate_limits] per_token`, if set).
        #[arg(long)]
        rate: Option<Rate>,
    },
    /// Set a token's rate (e.g. 100/s), or with `--rate none` remove it
    /// (running servers apply it within 1 s).
    Rate {
        #[arg(long)]
        name: String,
        #[arg(long)]
        rate: String,
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
        TokenCommand::Create { name, rate } => {
            let token = verdict::tokens::create_with_rate(&mut conn, &name, rate, "cli")?;
            println!("{token}");
            eprintln!("API token {name:?} created; it is shown only this once.");
        }
        TokenCommand::Rate { name, rate } => {
            let rate = match rate.as_str() {
                "none" | "off" => None,
                text => Some(text.parse::<Rate>().map_err(anyhow::Error::msg)?),
            };
            verdict::tokens::set_rate(&mut conn, &name, rate, "cli")?;
            match rate {
                Some(rate) => {
                    println!("token {name:?} may make {rate} (within 1 s on running servers)")
                }
                None => println!("token {name:?} has no rate of its own"),
            }
        }
        TokenCommand::Revoke { name } => {
            verdict::tokens::revoke(&mut conn, &name, "cli")?;
            println!("token {name:?} revoked (running servers stop accepting it within 1 s)");
        }
    }
    Ok(())
}
