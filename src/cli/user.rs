//! `verdict user`: the people who use the web UI.

use clap::Subcommand;

use verdict::accounts;
use verdict::config::Settings;

#[derive(Subcommand)]
pub enum UserCommand {
    /// Add a user. The password is read from standard input (prompted for
    /// without echo on a terminal).
    Add {
        name: String,
        /// reviewer or admin.
        #[arg(long, default_value = "reviewer")]
        role: String,
        /// A task the reviewer may work (repeat for several).
        #[arg(long = "task")]
        tasks: Vec<String>,
    },
    /// Set a user's password (read like `add`'s); their sessions end.
    Password { name: String },
    /// Stop a user from signing in.
    Disable { name: String },
    /// Let a disabled user sign in again.
    Enable { name: String },
    /// List users.
    List,
}

pub fn run(settings: &Settings, command: UserCommand) -> anyhow::Result<()> {
    let mut conn = super::open_store(settings)?;
    match command {
        UserCommand::Add { name, role, tasks } => {
            let role = accounts::parse_role(&role).map_err(anyhow::Error::msg)?;
            for task in &tasks {
                super::check_task(settings, task)?;
            }
            let password = read_password()?;
            accounts::add_user(&mut conn, &name, &password, role, &tasks, "cli")?;
            println!("user {name:?} added ({})", role.as_str());
            if role == verdict::domain::Role::Reviewer && tasks.is_empty() {
                // Not an error (tasks can be given later), but say it: such
                // a reviewer signs in to an empty list of queues.
                eprintln!(
                    "note: {name:?} may review no task: a reviewer works only the \
                     tasks given with --task (the tasks here: {})",
                    settings
                        .tasks
                        .iter()
                        .map(|t| t.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
        UserCommand::Password { name } => {
            let password = read_password()?;
            accounts::set_password(&mut conn, &name, &password, "cli")?;
            println!("password of {name:?} set; their sessions ended");
        }
        UserCommand::Disable { name } => {
            accounts::set_disabled(&mut conn, &name, true, "cli")?;
            println!("user {name:?} disabled");
        }
        UserCommand::Enable { name } => {
            accounts::set_disabled(&mut conn, &name, false, "cli")?;
            println!("user {name:?} enabled");
        }
        UserCommand::List => {
            for (name, role, disabled) in accounts::list(&mut conn)? {
                println!(
                    "{name:<24} {role:<9}{}",
                    if disabled { " disabled" } else { "" }
                );
            }
        }
    }
    Ok(())
}

/// From the terminal without echo, or the first line of standard input.
fn read_password() -> anyhow::Result<String> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")?;
        let again = rpassword::prompt_password("Again: ")?;
        if first != again {
            anyhow::bail!("the passwords differ");
        }
        Ok(first)
    } else {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    }
}
