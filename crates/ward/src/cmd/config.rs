//! `ward config default|check`.

use crate::config::{WardConfig, DEFAULT_TOML};
use anyhow::Result;
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Print the default configuration with every key documented.
    Default,
    /// Validate a configuration file (unknown keys and bad values are named with their line).
    Check {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

pub fn run(cmd: ConfigCommand) -> Result<ExitCode> {
    match cmd {
        ConfigCommand::Default => {
            print!("{DEFAULT_TOML}");
        }
        ConfigCommand::Check { file } => {
            let cfg = WardConfig::load(&file)?;
            // Outputs as the agent checks them at start (URLs, kinds, keys, names); files,
            // sockets, CA files and HMAC keys are opened only by the agent.
            crate::cmd::outputs::specs(&cfg, &[], false)
                .map_err(|e| e.context(file.display().to_string()))?;
            println!("{}: ok", file.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
