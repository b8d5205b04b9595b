//! `verdict train`: a new model version from a CSV file or a dataset
//! snapshot, optionally made live at once.

use verdict::config::Settings;
use verdict::ml::train::{train, TrainOptions};

#[derive(clap::Args)]
pub struct TrainArgs {
    #[command(flatten)]
    options: TrainOptions,
    /// Make the new version live at once.
    #[arg(long)]
    deploy: bool,
}

pub fn run(settings: &Settings, args: TrainArgs) -> anyhow::Result<()> {
    let TrainArgs {
        mut options,
        deploy,
    } = args;
    options.models_dir = settings.models.dir.clone();
    super::labels::resolve_training_data(settings, &mut options)?;
    if let Some(name) = &options.snapshot {
        println!("training from dataset snapshot {name:?}");
    }
    let (task, version) = (options.task.clone(), options.version.clone());
    train(&options, &mut |line| println!("{line}"))?;
    if deploy {
        super::deploy::deploy_version(
            settings,
            &task,
            &version,
            "trained and deployed from the command line",
        )
    } else {
        println!("make it live with: verdict deploy --task {task} --version {version}");
        Ok(())
    }
}
