//! `ward`: the command. Thin: parses the command line, then hands each mode to its module.

mod cmd;
mod config;
mod display;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Runtime threat detection for Linux containers.
///
/// Ward watches process executions, enriches them with container identity and file
/// provenance, and reports Security Command Center findings: reverse shells and remote
/// command execution, compilers started in containers, binaries that match threat
/// intelligence, and malicious Python.
#[derive(Parser, Debug)]
#[command(name = "ward", version, propagate_version = true, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a recorded trace through the detectors and print the findings.
    ///
    /// Prints each new finding as one JSON object per line (the SCC record) on stdout, stores
    /// them when --db is given, and a summary on stderr. Malformed trace lines are reported
    /// with their line number and skipped.
    Replay(cmd::replay::ReplayArgs),
    /// List, filter and show stored findings.
    #[command(subcommand)]
    Findings(cmd::findings::FindingsCommand),
    /// Validate threat-intel feeds.
    #[command(subcommand)]
    Intel(cmd::intel::IntelCommand),
    /// Check detection rules and run their own tests (rules/, docs/rules.md).
    #[command(subcommand)]
    Rules(cmd::rules::RulesCommand),
    /// Show or check configuration.
    #[command(subcommand)]
    Config(cmd::config::ConfigCommand),
    /// Run the live agent: eBPF sensor, enrichment, detectors, findings (needs root).
    ///
    /// Prints each new finding as one JSON object per line (the same record as `ward replay`)
    /// to --output, stores findings in --db, and serves health as Prometheus text on
    /// 127.0.0.1:9464/metrics. SIGINT/SIGTERM flush and exit 0. See docs/agent.md.
    Agent(cmd::agent::AgentArgs),
    /// Trigger each finding type safely in a throwaway container and check the agent reports it.
    ///
    /// Starts its own `ward agent` (needs root, podman and the test images of
    /// scripts/containers), runs a reverse shell to 127.0.0.1, a compiler and harmless test
    /// payloads in a `localhost/ward-test-debian` container, and prints PASS/FAIL per finding.
    Selftest(cmd::agent::selftest::SelftestArgs),
    /// Serve the findings REST API and the web console.
    ///
    /// Open the printed console URL in a browser. On loopback without configured tokens,
    /// reads are open and writes (mark inactive, mute) need the printed one-time token,
    /// carried in the URL fragment. See docs/api.md.
    Serve(cmd::serve::ServeArgs),
    /// Score Python files with the Malicious Python model.
    ///
    /// Prints, for each file, the verdict, score and the strongest reasons (--format json:
    /// {path, sha256, score, malicious, top_reasons}). Binary or non-Python input gets a "not
    /// Python" result. Exits 1 when any file is malicious.
    ScanScript(cmd::model::ScanArgs),
    /// Train, evaluate or inspect the Malicious Python model.
    #[command(subcommand)]
    Model(cmd::model::ModelCommand),
}

/// Where findings are stored unless --db says otherwise.
pub fn default_db() -> PathBuf {
    PathBuf::from("/var/lib/ward/ward.db")
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WARD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        // Colours on a terminal only: a log file, journald or `kubectl logs` gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Replay(args) => cmd::replay::run(args),
        Command::ScanScript(args) => cmd::model::scan_script(args),
        Command::Model(c) => cmd::model::run(c),
        Command::Findings(c) => cmd::findings::run(c),
        Command::Intel(c) => cmd::intel::run(c),
        Command::Config(c) => cmd::config::run(c),
        Command::Rules(c) => cmd::rules::run(c),
        Command::Serve(a) => cmd::serve::run(a),
        Command::Agent(a) => cmd::agent::run(a),
        Command::Selftest(a) => cmd::agent::selftest::run_selftest(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ward: error: {}", error_text(&e));
            ExitCode::from(2)
        }
    }
}

/// An error and its causes, each said once: a cause whose text is already in the message is
/// left out, and a store error's message is whole (it names the file and the cause), so the
/// SQLite errors beneath it are not repeated.
fn error_text(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
        if cause.is::<ward_store::StoreError>() {
            break;
        }
    }
    out
}
