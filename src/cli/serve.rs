//! `verdict serve`: build the application, say where it listens, run it.

use verdict::config::Settings;
use verdict::startup::Application;

#[derive(clap::Args, Default)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "VERDICT_BIND")]
    bind: Option<String>,
    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "VERDICT_PORT")]
    port: Option<u16>,
}

pub fn run(mut settings: Settings, args: ServeArgs) -> anyhow::Result<()> {
    if let Some(bind) = args.bind {
        settings.server.bind = bind;
    }
    if let Some(port) = args.port {
        settings.server.port = port;
    }
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(settings.clone()).await?;
        let base = format!("http://{}:{}", settings.server.bind, app.port());
        println!("verdict is listening on {base} (database: {})", settings.database.url);
        for task in app.state().tasks.all() {
            println!(
                "  task {:<16} automation {:<10} live model {}",
                task.name(),
                task.config.automation.as_str(),
                task.live().map(|m| m.version().to_string()).unwrap_or_else(|| "none".into())
            );
        }
        match &app.initial_token {
            Some(token) => {
                println!("\nAn API token was created for this new database. It is shown only this once:\n\n  {token}\n");
                println!("Try it:\n");
                println!("  curl -s -H 'Authorization: Bearer {token}' {base}/api/v1/tasks\n");
                println!("  curl -s -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' \\");
                println!("       -d @examples/case-0001.json {base}/api/v1/tasks/tumor-triage/items\n");
            }
            None => println!("\nUse your API token (create another with: verdict token create --name NAME)."),
        }
        if let Some(password) = &app.initial_admin_password {
            println!("An admin account was created for the web UI: admin / {password}");
            println!("(shown only this once; add people with: verdict user add NAME --role reviewer --task TASK)\n");
        }
        app.run_until_stopped().await?;
        Ok(())
    })
}
