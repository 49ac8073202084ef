//! `ward rules check` and `ward rules test`: the detection rules as data (`rules/`,
//! docs/rules.md).

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use ward_detect::config::{RulesConfig, DEFAULT_RULES_DIR};
use ward_rules::{OnMissingMetadata, RuleSet};

/// Registers the categories of the rules `cfg` names (even when it turns them off) in the
/// category table, for commands that read findings (`ward serve`, `ward findings`): filters
/// like `category=UNEXPECTED_CHILD_SHELL` and `/v1/categories` then know them. A finding
/// whose rule is not loaded still lists and shows by its stored text, so a problem here is a
/// warning, not a failure.
pub fn register_categories(cfg: &RulesConfig, who: &str) {
    let cfg = RulesConfig {
        enabled: true,
        ..cfg.clone()
    };
    match configured(&cfg, UrlFeeds::Ignore) {
        Ok(Some(set)) => {
            if let Err(e) = ward_detect::detectors::rules::register_categories(&set) {
                eprintln!("{who}: warning: {e}");
            }
        }
        Ok(None) => {}
        Err(e) => eprintln!(
            "{who}: warning: {e:#}\n{who}: rule categories are not known to filters; findings show as stored"
        ),
    }
}

/// Whether the caller loaded a URL feed (`--url-feed`), for the rules that ask one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlFeeds {
    /// A URL feed is loaded: rules asking `argv.url_listed` stay as configured.
    Loaded,
    /// None is loaded: those rules are turned off (they could never fire), said once.
    None,
    /// Only the categories matter (`ward serve`, `ward findings`): nothing is turned off.
    Ignore,
}

/// Whether `intel` has a URL feed.
pub fn url_feeds(intel: &ward_intel::IntelSet) -> UrlFeeds {
    if intel.has_url_feeds() {
        UrlFeeds::Loaded
    } else {
        UrlFeeds::None
    }
}

/// The rules `[detectors.rules]` configures (the agent and `ward replay`): the shipped rules,
/// then each of `dirs`, then the per-rule switches. `None` when rules are off. Every problem
/// is an error naming its file and line (or the unknown rule id); nothing is skipped, except
/// the default user directory when it does not exist. Without a URL feed (`urls`), a rule
/// that asks one is turned off, with one log line naming it.
pub fn configured(cfg: &RulesConfig, urls: UrlFeeds) -> Result<Option<Arc<RuleSet>>> {
    if !cfg.enabled {
        return Ok(None);
    }
    let dirs: Vec<PathBuf> = cfg
        .dirs
        .iter()
        .filter(|d| d.as_path() != std::path::Path::new(DEFAULT_RULES_DIR) || d.exists())
        .cloned()
        .collect();
    let mut set = match RuleSet::shipped_and(&dirs) {
        Ok(s) => s,
        Err(errors) => bail!(
            "detection rules do not load ({} problems; fix them, or set [detectors.rules] enabled = false):\n{errors}",
            errors.0.len()
        ),
    };
    let unknown = set.set_enabled(cfg.rules.iter().map(|(id, on)| (id.as_str(), *on)));
    if !unknown.is_empty() {
        bail!(
            "[detectors.rules.rules] names rules that no loaded rule file defines: {}",
            unknown.join(", ")
        );
    }
    // Without a URL feed (docs/rules.md) a rule whose conditions ask it can never fire, so it
    // is not evaluated at all (it would scan every command line for URLs and hosts).
    let needs_feed: Vec<String> = set
        .rules()
        .iter()
        .filter(|r| r.enabled && r.uses_url_feed())
        .map(|r| r.id.clone())
        .collect();
    if urls == UrlFeeds::None && !needs_feed.is_empty() {
        set.set_enabled(needs_feed.iter().map(|id| (id.as_str(), false)));
        tracing::warn!(
            rules = ?needs_feed,
            "rules that need a URL feed are off: no URL feed is loaded (--url-feed FILE)"
        );
    }
    tracing::info!(
        rules = set.rules().len(),
        enabled = set.rules().iter().filter(|r| r.enabled).count(),
        dirs = ?dirs,
        "detection rules loaded"
    );
    Ok(Some(Arc::new(set)))
}

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
    let set = set.map_err(|errors| {
        for e in &errors.0 {
            eprintln!("ward rules: error: {e}");
        }
        eprintln!("ward rules: {} problems; no rule loaded", errors.0.len());
        ExitCode::from(1)
    })?;
    // What the agent checks next: every rule's category can join the category table.
    if let Err(e) = ward_detect::detectors::rules::register_categories(&set) {
        eprintln!("ward rules: error: {e}");
        return Err(ExitCode::from(1));
    }
    Ok(set)
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
