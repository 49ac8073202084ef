//! Outputs for `ward agent` and `ward replay`: `[[outputs]]` or `--output` flags into sinks
//! for the shared driver (`ward_output::Driver`). HTTP sinks come from `ward_api::outputs`
//! (the one crate that speaks HTTP), the others from `ward_output::local`.

use crate::config::WardConfig;
use anyhow::{bail, Result};
use std::collections::BTreeSet;
use ward_output::driver::NamedSink;
use ward_output::format::Context;
use ward_output::OutputSpec;

/// The outputs to run, each with the place that configured it (`outputs[2]`, `--output`).
/// `--output` flags replace the configured list; `none` means no output besides the store.
/// With neither, `default_stdout` gives JSON Lines on stdout (`ward agent`'s default).
pub fn specs(
    cfg: &WardConfig,
    flags: &[String],
    default_stdout: bool,
) -> Result<Vec<(String, OutputSpec)>> {
    let mut out = Vec::new();
    if !flags.is_empty() {
        for f in flags {
            if f == "none" {
                continue;
            }
            out.push((format!("--output {f:?}"), OutputSpec::parse_flag(f)?));
        }
    } else if !cfg.outputs.is_empty() {
        for (i, s) in cfg.outputs.iter().enumerate() {
            let at = format!("outputs[{i}]");
            s.check(&at)?;
            out.push((at, s.clone()));
        }
    } else if default_stdout {
        out.push((
            "default".into(),
            OutputSpec::new(ward_output::OutputKind::Stdout),
        ));
    }
    let mut names = BTreeSet::new();
    for (at, s) in &out {
        let n = s.effective_name();
        if !names.insert(n.clone()) {
            bail!("{at}: a second output named {n:?}; give one a distinct `name`");
        }
    }
    Ok(out)
}

/// Builds every sink (opening files, sockets, HTTP clients, reading keys): any problem is a
/// startup error naming the key.
pub fn sinks(specs: &[(String, OutputSpec)], ctx: &Context) -> Result<Vec<NamedSink>> {
    let mut out = Vec::new();
    for (at, s) in specs {
        let built = ward_api::outputs::build(s, ctx, at)
            .or_else(|| ward_output::local::build(s, ctx, at))
            .expect("every output kind has a builder")?;
        out.push(NamedSink {
            name: s.effective_name(),
            // A collector keeps the aggregated state: it gets every state of a finding.
            updates: s.updates || s.kind == ward_output::OutputKind::Central,
            sink: built,
        });
    }
    Ok(out)
}

/// What formats need besides the finding; `state_path` is the driver's database (outputs
/// keep state next to it: the central output's node token), `health` the summary the agent
/// keeps current for the central output.
pub fn context(
    hostname: &str,
    state_path: Option<&std::path::Path>,
    health: ward_output::format::HealthBoard,
) -> Context {
    Context {
        hostname: hostname.to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        pid: std::process::id(),
        state_path: state_path.map(std::path::Path::to_path_buf),
        health,
    }
}

/// `name, name` for log lines.
pub fn describe(specs: &[(String, OutputSpec)]) -> String {
    if specs.is_empty() {
        return "no output besides the store".into();
    }
    specs
        .iter()
        .map(|(_, s)| s.effective_name())
        .collect::<Vec<_>>()
        .join(", ")
}
