//! `ward rules check` and `ward rules test`: the detection rules as data (`rules/`,
//! docs/rules.md).

use anyhow::Result;
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use ward_rules::{OnMissingMetadata, RuleSet};

#[derive(Subcommand, Debug)]
pub enum RulesCommand {
    /// Load the rules and list them; any problem is printed with its file and line (exit 1).
    Check(RulesArgs),
    /// Run every rule's own tests (execs it must fire on, execs it must stay quiet on).
    Test(RulesArgs),
}

#[derive(Args, Debug)]
pub struct RulesArgs {
    /// Rule directories, layered over the shipped rules in order (a later rule replaces an
    /// earlier one only with `override = true`).
    #[arg(value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
    /// Leave out the rules shipped in the binary: the first DIR is the base set.
    #[arg(long)]
    pub no_shipped: bool,
}

fn load(a: &RulesArgs) -> Result<RuleSet, ExitCode> {
    let set = if a.no_shipped {
        RuleSet::load(&a.dirs)
    } else {
        RuleSet::shipped_and(&a.dirs)
    };
    set.map_err(|errors| {
        for e in &errors.0 {
            eprintln!("ward rules: error: {e}");
        }
        eprintln!("ward rules: {} problems; no rule loaded", errors.0.len());
        ExitCode::from(1)
    })
}

pub fn run(cmd: RulesCommand) -> Result<ExitCode> {
    match cmd {
        RulesCommand::Check(a) => {
            let set = match load(&a) {
                Ok(s) => s,
                Err(code) => return Ok(code),
            };
            for r in set.rules() {
                let metadata = match r.on_missing_metadata {
                    OnMissingMetadata::Alert => "",
                    OnMissingMetadata::Quiet => ", quiet without metadata",
                    OnMissingMetadata::Wait => ", waits for metadata",
                };
                println!(
                    "{:<58} {:<8} {:<3} {} tests, {} exceptions{metadata}  {}  ({})",
                    r.id,
                    r.severity.as_str(),
                    if r.enabled { "on" } else { "off" },
                    r.tests.len(),
                    r.exceptions.len(),
                    r.category,
                    r.place
                );
            }
            let (gated, everywhere) = set.index_stats();
            println!(
                "{} rules; of those on, {gated} are tried only for their basenames, {everywhere} on every exec",
                set.rules().len()
            );
            Ok(ExitCode::SUCCESS)
        }
        RulesCommand::Test(a) => {
            let set = match load(&a) {
                Ok(s) => s,
                Err(code) => return Ok(code),
            };
            let report = set.run_tests();
            for f in &report.failures {
                println!("FAIL {f}");
            }
            println!(
                "ward rules test: {} rules; {} passed, {} failed",
                set.rules().len(),
                report.passed,
                report.failures.len()
            );
            Ok(if report.failures.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}
