//! `ward replay`: a recorded trace through the same engine the agent runs.

use crate::config::WardConfig;
use anyhow::{Context, Result};
use clap::Args;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;
use ward_detect::{Engine, FindingUpdate};
use ward_event::{Event, Finding, TraceReader};
use ward_intel::IntelSet;
use ward_output::{Driver, DriverConfig};
use ward_store::SqliteStore;

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// Trace file in Ward's trace format (JSON Lines); `-` reads stdin.
    pub trace: PathBuf,
    /// Threat-intel feed (sha256 list, HASH;COMMENT, or CSV with a sha256 column). Repeatable.
    #[arg(long = "intel", value_name = "FILE")]
    pub intel: Vec<PathBuf>,
    /// URL feed for the Malicious URL Observed rule: URLs, hosts and `*.domains` one per
    /// line, or the URLhaus CSV dump. Repeatable. Without one that rule is off.
    #[arg(long = "url-feed", value_name = "FILE")]
    pub url_feeds: Vec<PathBuf>,
    /// Store findings in this SQLite database (created if missing).
    #[arg(long, value_name = "PATH", env = "WARD_DB")]
    pub db: Option<PathBuf>,
    /// Configuration file (TOML); see `ward config default`.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Malicious Python model file (default: the model shipped in the binary).
    #[arg(long, value_name = "FILE")]
    pub model: Option<PathBuf>,
    /// Print each finding once, in its final aggregated state, when the trace ends (instead
    /// of each new finding as it is found).
    #[arg(long = "final")]
    pub final_state: bool,
    /// Print nothing on stdout (useful with --db).
    #[arg(long, short)]
    pub quiet: bool,
    /// Also send findings to this output (repeatable; replaces `[[outputs]]`; same forms as
    /// `ward agent --output`). Stdout keeps printing as above.
    #[arg(long, value_name = "SINK")]
    pub output: Vec<String>,
    /// Replay as if recorded on this node: every exec's node is replaced (so the findings,
    /// their ids and resource names are this node's), and outputs identify themselves with it
    /// (the central output enrolls and sends as this node).
    #[arg(long, value_name = "NAME")]
    pub node_name: Option<String>,
    /// How many malformed lines to describe on stderr (all are counted).
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub show_errors: usize,
    /// The cluster and project stamped on every finding, as `ward agent` does (default:
    /// `[agent] cluster`/`project` of the configuration).
    #[command(flatten)]
    pub identity: crate::cmd::agent::IdentityArgs,
}

pub fn run(args: ReplayArgs) -> Result<ExitCode> {
    let cfg = WardConfig::load_or_default(args.config.as_deref())?;
    let intel = load_intel(&args.intel, &args.url_feeds)?;
    let url_feeds = crate::cmd::rules::url_feeds(&intel);
    // One writer per store: a replay into an agent's live database is refused.
    let _writer_lock = match &args.db {
        Some(path) => Some(ward_store::WriterLock::acquire(path, "ward replay")?),
        None => None,
    };
    let store = match &args.db {
        // The store's errors name the file and the cause.
        Some(path) => Some(SqliteStore::open(path)?),
        None => None,
    };
    let output_specs = crate::cmd::outputs::specs(&cfg, &args.output, false)?;
    let node_name = args.node_name.clone().unwrap_or_default();
    let sinks = crate::cmd::outputs::sinks(
        &output_specs,
        &crate::cmd::outputs::context(
            &node_name,
            args.db.as_deref(),
            ward_output::format::HealthBoard::default(),
        ),
    )?;
    // The same driver as the agent's: the store first (with the outbox when outputs are
    // configured), then every output.
    let mut driver = Driver::new(
        store,
        sinks,
        DriverConfig {
            flush_interval: std::time::Duration::from_secs(1),
            settings: cfg.output.clone(),
            new_at_once: false,
            program: "ward replay",
        },
    )?;
    let input: Box<dyn BufRead> = if args.trace.as_os_str() == "-" {
        Box::new(BufReader::with_capacity(1 << 20, std::io::stdin().lock()))
    } else {
        let f = std::fs::File::open(&args.trace)
            .with_context(|| format!("opening trace {}", args.trace.display()))?;
        Box::new(BufReader::with_capacity(1 << 20, f))
    };
    let trace_name = args.trace.display().to_string();
    let reader = TraceReader::new(input).with_context(|| format!("reading {trace_name}"))?;
    // Processes already running when a recording began: seeded, not detected on (as live).
    let mut seeds_left = reader.header().map_or(0, |h| h.seeds);

    let classifier = crate::cmd::model::classifier_for(&cfg, args.model.as_deref())?;
    let mut engine = Engine::new(
        &cfg.engine_config(),
        &cfg.detectors,
        Arc::new(intel),
        classifier,
    );
    if let Some(r) = crate::cmd::rules::configured(&cfg.detectors.rules, url_feeds)? {
        engine.set_rules(r)?;
    }
    // A recording names the boot and clock offset it was made with: same finding ids as live.
    engine.set_id_clock(reader.header().and_then(|h| h.id_clock()));
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut updates: Vec<FindingUpdate> = Vec::new();
    let mut finals: BTreeMap<String, (usize, Finding)> = BTreeMap::new();
    let mut bad_lines = 0u64;
    let mut fatal: Option<anyhow::Error> = None;
    let started = Instant::now();
    let identity = args.identity.resolve(&cfg.agent);

    // After the last event (`None`), the engine decides what still waits (rule decisions
    // held for container metadata).
    let renamed = |item: Option<Result<Event, ward_event::TraceError>>| match item {
        Some(Ok(Event::Exec(mut e))) if !node_name.is_empty() => {
            e.node = node_name.clone();
            Some(Ok(Event::Exec(e)))
        }
        other => other,
    };
    for item in reader.map(Some).chain(std::iter::once(None)).map(renamed) {
        match item {
            None => engine.finish(&mut updates),
            Some(Ok(Event::Exec(e))) if seeds_left > 0 => {
                seeds_left -= 1;
                engine.seed(*e);
            }
            Some(Ok(event)) => engine.process(event, &mut updates),
            Some(Err(e)) if e.is_recoverable() => {
                bad_lines += 1;
                if bad_lines as usize <= args.show_errors {
                    eprintln!("ward: warning: {trace_name}: {e} (line skipped)");
                }
            }
            Some(Err(e)) => {
                fatal = Some(anyhow::Error::new(e).context(format!("reading {trace_name}")));
                break;
            }
        }
        for mut u in updates.drain(..) {
            u.finding.apply_resource_defaults(&identity);
            driver.push(u.finding.clone(), u.is_new);
            if args.final_state {
                let order = finals.len();
                finals
                    .entry(u.finding.name.clone())
                    .and_modify(|e| e.1 = u.finding.clone())
                    .or_insert((order, u.finding));
            } else if u.is_new && !args.quiet {
                crate::display::write_json_line(&mut out, &u.finding)?;
            }
        }
        driver.tick();
    }
    // Whatever happened, what was found is written out.
    if args.final_state && !args.quiet {
        let mut list: Vec<(usize, Finding)> = finals.into_values().collect();
        list.sort_by_key(|(order, _)| *order);
        for (_, f) in list {
            crate::display::write_json_line(&mut out, &f)?;
        }
    }
    out.flush()?;
    // Replay waits for its outputs (up to output.shutdown_timeout); a store that cannot take
    // the findings is an error.
    let stored = if driver.store().is_some() {
        // Outputs fed from the outbox: let them catch up before shutting down.
        let until = std::time::Instant::now() + cfg.output.shutdown_timeout;
        loop {
            driver.tick();
            if driver.idle() || std::time::Instant::now() >= until {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        driver.finish()
    } else {
        driver.finish()
    };
    if !stored {
        if let Some(st) = driver.store() {
            anyhow::bail!("storing findings in {} failed", st.path().display());
        }
    }
    let elapsed = started.elapsed();
    let st = engine.stats();
    let mut summary = format!(
        "ward replay: {} events ({} exec) in {:.3}s ({:.0} events/s); {} malformed lines skipped; {} findings, {} repeats folded in",
        st.events,
        st.execs,
        elapsed.as_secs_f64(),
        st.events as f64 / elapsed.as_secs_f64().max(1e-9),
        bad_lines,
        st.findings_new,
        st.findings_repeated,
    );
    if bad_lines as usize > args.show_errors {
        summary.push_str(&format!(
            " ({} malformed lines not shown)",
            bad_lines as usize - args.show_errors
        ));
    }
    if let Some(s) = driver.store() {
        summary.push_str(&format!(
            "; {} stored in {}",
            driver.committed,
            s.path().display()
        ));
    }
    for o in driver.sink_stats() {
        summary.push_str(&format!(
            "; output {}: sent {}, failed {}, dropped {}",
            o.name, o.sent, o.failed, o.dropped
        ));
    }
    if st.table.evicted > 0 || st.aggregates_evicted > 0 {
        summary.push_str(&format!(
            "; process table evictions {}, aggregates closed early {}",
            st.table.evicted, st.aggregates_evicted
        ));
    }
    eprintln!("{summary}");
    match fatal {
        Some(e) => Err(e),
        None => Ok(ExitCode::SUCCESS),
    }
}

/// Loads hash feeds and URL feeds; any fatal feed problem names the file and line.
pub fn load_intel(paths: &[PathBuf], url_paths: &[PathBuf]) -> Result<IntelSet> {
    let mut set = IntelSet::new();
    for p in paths {
        let feed = ward_intel::Feed::load(p)?;
        let r = feed.report();
        if r.malformed > 0 || r.duplicates > 0 {
            eprintln!(
                "ward: warning: intel feed {}: {} malformed lines, {} duplicates (run `ward intel check {}` for details)",
                p.display(),
                r.malformed,
                r.duplicates,
                p.display()
            );
        }
        set.push(feed);
    }
    for p in url_paths {
        let feed = ward_intel::UrlFeed::load(p)?;
        let r = feed.report();
        if r.malformed > 0 || r.duplicates > 0 {
            eprintln!(
                "ward: warning: URL feed {}: {} malformed lines, {} duplicates (run `ward intel check --url-feed {}` for details)",
                p.display(),
                r.malformed,
                r.duplicates,
                p.display()
            );
        }
        set.push_url_feed(feed);
    }
    Ok(set)
}
