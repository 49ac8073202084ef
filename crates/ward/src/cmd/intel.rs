//! `ward intel check`.

use anyhow::Result;
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum IntelCommand {
    /// Validate feeds: print the detected format, counts and the problems with line numbers.
    ///
    /// Exits 0 when every feed loads with at least one SHA-256 (a URL feed: one URL, host or
    /// domain; malformed lines are reported, not fatal), 1 when a feed cannot be used at all:
    /// unreadable, all lines malformed, or nothing to match (empty, only comments, only
    /// SHA-1/MD5).
    Check {
        /// Hash feed files: one sha256 per line, HASH;COMMENT lines, or CSV with a sha256
        /// column.
        #[arg(value_name = "FILE", required_unless_present = "url_feeds")]
        files: Vec<PathBuf>,
        /// URL feed files (as `ward agent --url-feed`): URLs, hosts and `*.domains` one per
        /// line, or the URLhaus CSV dump. Repeatable.
        #[arg(long = "url-feed", value_name = "FILE")]
        url_feeds: Vec<PathBuf>,
    },
}

pub fn run(cmd: IntelCommand) -> Result<ExitCode> {
    let IntelCommand::Check { files, url_feeds } = cmd;
    let mut failed = 0;
    for path in &files {
        match ward_intel::Feed::load(path) {
            Ok(feed) => {
                // The report names the feed by file name; show the path given instead.
                let mut report = feed.report().clone();
                report.feed = path.display().to_string();
                println!("{report}");
                // An empty feed can never match: as unusable as one of garbage.
                if let Err(e) = feed.require_hashes() {
                    failed += 1;
                    println!("{}: ERROR: {e}", path.display());
                }
            }
            Err(e) => {
                failed += 1;
                println!("{}: ERROR: {e}", path.display());
            }
        }
    }
    for path in &url_feeds {
        match ward_intel::UrlFeed::load(path) {
            Ok(feed) => {
                let mut report = feed.report().clone();
                report.feed = path.display().to_string();
                println!("{report}");
                if let Err(e) = feed.require_entries() {
                    failed += 1;
                    println!("{}: ERROR: {e}", path.display());
                }
            }
            Err(e) => {
                failed += 1;
                println!("{}: ERROR: {e}", path.display());
            }
        }
    }
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
