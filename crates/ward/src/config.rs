//! Ward's configuration file (TOML). The documented defaults are `config/ward.toml`.

use anyhow::{Context, Result};
use humantime_serde::re::humantime;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;
use ward_detect::{DetectorsConfig, EngineConfig};

/// The documented default configuration, embedded.
pub const DEFAULT_TOML: &str = include_str!("../../../config/ward.toml");

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WardConfig {
    pub engine: EngineConfig,
    pub detectors: DetectorsConfig,
    /// `ward agent`: metrics, runtime sockets, waits, hashing.
    pub agent: crate::cmd::agent::config::AgentConfig,
    /// Settings every output shares: queues, retry, the outbox bounds, the drain rate.
    pub output: ward_output::OutputSettings,
    /// `ward serve` (and the API inside the agent): listen address, tokens, TLS, limits.
    pub api: ward_api::ApiConfig,
    /// `[[outputs]]`: where findings go besides the store (`docs/outputs.md`); `--output`
    /// flags replace this list.
    pub outputs: Vec<ward_output::OutputSpec>,
}

impl WardConfig {
    /// Parses TOML text, then checks every numeric key against its documented range
    /// ([`bounds`]); errors name `origin`, the line and column at fault and the key.
    pub fn parse(text: &str, origin: &str) -> Result<WardConfig> {
        let cfg: WardConfig = toml::from_str(text).map_err(|e| {
            let at = e.span().map(|s| s.start);
            let key = at
                .and_then(|o| key_at(text, o))
                .map(|k| format!("{k}: "))
                .unwrap_or_default();
            let (line, col) = at.map(|o| line_col(text, o)).unwrap_or((0, 0));
            anyhow::anyhow!("{origin}:{line}:{col}: {key}{}", e.message())
        })?;
        if let Err(e) = cfg.check_bounds() {
            let (line, col) = key_span(text, e.key)
                .map(|o| line_col(text, o))
                .unwrap_or((0, 0));
            anyhow::bail!("{origin}:{line}:{col}: {e}");
        }
        Ok(cfg)
    }

    /// `[engine]` with the keys of other tables that shape findings (`[agent]
    /// report_environment_variables`), for `ward agent` and `ward replay` alike.
    pub fn engine_config(&self) -> EngineConfig {
        let mut e = self.engine.clone();
        e.report_environment_variables = self.agent.report_environment_variables;
        e
    }

    pub fn load(path: &Path) -> Result<WardConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        Self::parse(&text, &path.display().to_string())
    }

    pub fn load_or_default(path: Option<&Path>) -> Result<WardConfig> {
        match path {
            Some(p) => Self::load(p),
            None => Ok(WardConfig::default()),
        }
    }

    /// The first numeric key outside its documented range, if any.
    pub fn check_bounds(&self) -> Result<(), OutOfRange> {
        for b in bounds() {
            if let Some(v) = (b.get)(self) {
                if !b.admits(v) {
                    return Err(OutOfRange {
                        key: b.key,
                        value: v.to_string(),
                        allowed: b.describe(),
                    });
                }
            }
        }
        Ok(())
    }
}

/// A configuration value outside the range `config/ward.toml` documents for its key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key} = {value} is out of range: allowed {allowed}")]
pub struct OutOfRange {
    /// Dotted key, e.g. `agent.ring_buffer_bytes`.
    pub key: &'static str,
    pub value: String,
    pub allowed: String,
}

/// A numeric configuration value, as checked against its range.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub enum Num {
    Int(u64),
    Dur(Duration),
    Float(f64),
}

impl std::fmt::Display for Num {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Num::Int(n) => write!(f, "{n}"),
            Num::Dur(d) => write!(f, "\"{}\"", humantime::format_duration(*d)),
            Num::Float(x) => write!(f, "{x}"),
        }
    }
}

/// The documented range of one numeric key (the `# Range:` line above it in
/// `config/ward.toml`; a test checks the two agree).
pub struct Bound {
    pub key: &'static str,
    pub min: Num,
    pub max: Num,
    /// A value allowed outside `min..=max`: 0 that switches the feature off.
    pub off: Option<Num>,
    pub power_of_two: bool,
    get: fn(&WardConfig) -> Option<Num>,
}

impl Bound {
    fn admits(&self, v: Num) -> bool {
        if Some(v) == self.off {
            return true;
        }
        let pow2 = match v {
            Num::Int(n) => !self.power_of_two || n.is_power_of_two(),
            _ => true,
        };
        // NaN compares false both ways: refused.
        pow2 && v >= self.min && v <= self.max
    }

    fn describe(&self) -> String {
        let mut s = String::new();
        if let Some(off) = self.off {
            s.push_str(&format!("{off} (off) or "));
        }
        if self.power_of_two {
            s.push_str("a power of two ");
        }
        s.push_str(&format!("from {} to {}", self.min, self.max));
        s
    }
}

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;
const DAY: u64 = 86_400;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// `int!(key, min, max, |c| value)`: an integer key.
macro_rules! int {
    ($key:literal, $min:expr, $max:expr, |$c:ident| $e:expr) => {
        Bound {
            key: $key,
            min: Num::Int($min),
            max: Num::Int($max),
            off: None,
            power_of_two: false,
            get: |$c| Some(Num::Int($e as u64)),
        }
    };
}

/// `dur!(key, min, max, |c| value)`: a duration key.
macro_rules! dur {
    ($key:literal, $min:expr, $max:expr, |$c:ident| $e:expr) => {
        Bound {
            key: $key,
            min: Num::Dur($min),
            max: Num::Dur($max),
            off: None,
            power_of_two: false,
            get: |$c| Some(Num::Dur($e)),
        }
    };
}

/// Every numeric key with its range, as `config/ward.toml` documents them.
pub fn bounds() -> Vec<Bound> {
    vec![
        dur!("engine.aggregation_window", secs(0), secs(30 * DAY), |c| {
            c.engine.aggregation_window
        }),
        int!("engine.max_open_findings", 1, 10_000_000, |c| {
            c.engine.max_open_findings
        }),
        int!("engine.max_processes", 16, 16 * MIB, |c| c
            .engine
            .max_processes),
        int!("engine.max_ancestors", 0, 256, |c| c.engine.max_ancestors),
        int!("engine.script_contents_max", 0, MIB, |c| {
            c.engine.script_contents_max
        }),
        int!("engine.max_commands", 0, 1000, |c| c.engine.max_commands),
        Bound {
            key: "detectors.malicious_python.threshold",
            min: Num::Float(0.0),
            max: Num::Float(1.0),
            off: None,
            power_of_two: false,
            get: |c| {
                c.detectors
                    .malicious_python
                    .threshold
                    .map(|t| Num::Float(t.into()))
            },
        },
        dur!("detectors.rules.metadata_wait", secs(0), secs(60), |c| {
            c.detectors.rules.metadata_wait
        }),
        Bound {
            off: Some(Num::Dur(secs(0))),
            ..dur!("agent.health_log_interval", secs(1), secs(DAY), |c| {
                c.agent.health_log_interval
            })
        },
        dur!("agent.metadata_wait", secs(0), secs(10), |c| {
            c.agent.metadata_wait
        }),
        dur!("agent.metadata_timeout", ms(10), secs(60), |c| {
            c.agent.metadata_timeout
        }),
        dur!("agent.metadata_retry", secs(1), secs(DAY), |c| {
            c.agent.metadata_retry
        }),
        dur!("agent.hash_wait", secs(0), secs(10), |c| c.agent.hash_wait),
        int!("agent.hash_max_bytes", 4 * KIB, 4 * GIB, |c| {
            c.agent.hash_max_bytes
        }),
        int!("agent.hash_workers", 1, 64, |c| c.agent.hash_workers),
        int!("agent.hash_small_lane_max", 0, 4 * GIB, |c| {
            c.agent.hash_small_lane_max
        }),
        int!("agent.hash_queue", 1, MIB, |c| c.agent.hash_queue),
        int!("agent.hash_cache_entries", 16, 16 * MIB, |c| {
            c.agent.hash_cache_entries
        }),
        // The kernel wants a power of two and a multiple of the page size (64 KiB covers
        // every page size Linux uses); an exec record takes up to 7.5 KB.
        Bound {
            power_of_two: true,
            ..int!("agent.ring_buffer_bytes", 64 * KIB, GIB, |c| {
                c.agent.ring_buffer_bytes
            })
        },
        dur!("agent.store_flush_interval", ms(1), secs(10), |c| {
            c.agent.store_flush_interval
        }),
        dur!("agent.poll_interval", ms(1), secs(1), |c| c
            .agent
            .poll_interval),
        dur!("agent.batch_interval", ms(0), ms(100), |c| c
            .agent
            .batch_interval),
        int!("output.queue", 1, MIB, |c| c.output.queue),
        int!("output.batch", 1, 10_000, |c| c.output.batch),
        int!("output.outbox_max_bytes", MIB, 64 * GIB, |c| {
            c.output.outbox_max_bytes
        }),
        dur!("output.outbox_max_age", secs(60), secs(30 * DAY), |c| {
            c.output.outbox_max_age
        }),
        int!("output.drain_rate", 1, 1_000_000, |c| c.output.drain_rate),
        dur!("output.retry_initial", ms(1), secs(60), |c| {
            c.output.retry_initial
        }),
        dur!("output.retry_max", ms(1), secs(3600), |c| c
            .output
            .retry_max),
        dur!("output.shutdown_timeout", secs(0), secs(600), |c| {
            c.output.shutdown_timeout
        }),
        int!("api.max_body_bytes", KIB, 64 * MIB, |c| c
            .api
            .max_body_bytes),
        dur!("api.header_timeout", ms(10), secs(3600), |c| {
            c.api.header_timeout
        }),
        dur!("api.body_timeout", ms(10), secs(3600), |c| c
            .api
            .body_timeout),
        int!("api.max_connections_per_client", 1, 65_536, |c| {
            c.api.max_connections_per_client
        }),
        int!("api.max_requests_per_client", 1, 65_536, |c| {
            c.api.max_requests_per_client
        }),
        int!("api.ingest_max_findings", 1, 100_000, |c| {
            c.api.ingest_max_findings
        }),
        int!("api.ingest_max_body_bytes", KIB, 256 * MIB, |c| {
            c.api.ingest_max_body_bytes
        }),
        dur!("api.node_stale_after", secs(1), secs(DAY), |c| {
            c.api.node_stale_after
        }),
    ]
}

/// The spanned document tree, for naming keys and lines in errors.
fn tree(text: &str) -> Option<toml::de::DeTable<'_>> {
    toml::de::DeTable::parse(text).ok().map(|t| t.into_inner())
}

/// Byte offset of the dotted `key` in `text` (where it is set), if it is.
fn key_span(text: &str, key: &str) -> Option<usize> {
    let root = tree(text)?;
    let mut table = &root;
    let mut parts = key.split('.').peekable();
    while let Some(part) = parts.next() {
        let (k, v) = table.iter().find(|(k, _)| k.get_ref().as_ref() == part)?;
        if parts.peek().is_none() {
            return Some(k.span().start);
        }
        table = v.get_ref().as_table()?;
    }
    None
}

/// The dotted key whose entry (key or value) holds byte `offset` of `text`: the deepest one.
fn key_at(text: &str, offset: usize) -> Option<String> {
    fn walk(table: &toml::de::DeTable<'_>, offset: usize, path: &mut Vec<String>) -> bool {
        for (k, v) in table {
            path.push(k.get_ref().to_string());
            let here = k.span().contains(&offset) || v.span().contains(&offset);
            let deeper = match v.get_ref() {
                toml::de::DeValue::Table(t) => walk(t, offset, path),
                toml::de::DeValue::Array(a) => a.iter().any(|item| match item.get_ref() {
                    toml::de::DeValue::Table(t) => walk(t, offset, path),
                    _ => false,
                }),
                _ => false,
            };
            if deeper || here {
                return true;
            }
            path.pop();
        }
        false
    }
    let root = tree(text)?;
    let mut path = Vec::new();
    walk(&root, offset, &mut path).then(|| path.join("."))
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;
    use humantime_serde::re::humantime;

    #[test]
    fn documented_defaults_equal_the_code_defaults() {
        let parsed = WardConfig::parse(DEFAULT_TOML, "config/ward.toml").unwrap();
        assert_eq!(parsed, WardConfig::default());
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let text = "[engine]\nmax_processes = 10\n\n[detectors.compiler]\nenabeld = true\n";
        let e = WardConfig::parse(text, "my.toml").unwrap_err().to_string();
        assert!(e.starts_with("my.toml:5:1:"), "{e}");
        assert!(e.contains("enabeld"), "{e}");
        let e = WardConfig::parse("[engine]\naggregation_window = \"soon\"\n", "x.toml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("x.toml:2:"), "{e}");
        let e = WardConfig::parse("[api]\nlisten = \"127.0.0.1:1\"\nlisen = 2\n", "a.toml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("a.toml:3:1:") && e.contains("lisen"), "{e}");
        let api = WardConfig::parse(
            "[api]\nlisten = \"0.0.0.0:9443\"\n[[api.tokens]]\nname = \"ci\"\nscope = \"read\"\ntoken = \"0123456789abcdef-read\"\n[api.tls]\ncert = \"/c.pem\"\nkey = \"/k.pem\"\n",
            "a.toml",
        )
        .unwrap()
        .api;
        assert_eq!(api.listen.port(), 9443);
        assert_eq!(api.tokens.len(), 1);
        api.validate().unwrap();
        let partial = WardConfig::parse("[detectors.added_binary]\nenabled = true\n", "p").unwrap();
        assert!(partial.detectors.added_binary.enabled);
        assert!(
            partial.detectors.compiler.enabled,
            "unset keys keep defaults"
        );
    }

    /// One `# Range:` line of config/ward.toml: `[OFF (off) or ]MIN to MAX[, a power of two].`
    #[derive(Debug)]
    struct Documented {
        key: String,
        default: Option<String>,
        min: String,
        max: String,
        off: Option<String>,
        power_of_two: bool,
    }

    fn documented() -> Vec<Documented> {
        let mut out = Vec::new();
        let mut table = String::new();
        let lines: Vec<&str> = DEFAULT_TOML.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if let Some(h) = line.strip_prefix('[').filter(|l| !l.starts_with('[')) {
                table = h.trim_end_matches(']').to_string();
            }
            let Some(spec) = line.strip_prefix("# Range: ") else {
                continue;
            };
            let spec = spec.trim_end_matches('.');
            let (spec, power_of_two) = match spec.strip_suffix(", a power of two") {
                Some(s) => (s, true),
                None => (spec, false),
            };
            let (off, spec) = match spec.split_once(" (off) or ") {
                Some((off, rest)) => (Some(off.trim_matches('"').to_string()), rest),
                None => (None, spec),
            };
            let (min, max) = spec.split_once(" to ").expect(spec);
            // The key is on the next line, or shown commented out when it has no default.
            let next = lines[i + 1];
            let (name, value) = next.trim_start_matches("# ").split_once(" = ").expect(next);
            out.push(Documented {
                key: format!("{table}.{name}"),
                default: (!next.starts_with('#')).then(|| value.to_string()),
                min: min.to_string(),
                max: max.to_string(),
                off,
                power_of_two,
            });
        }
        out
    }

    fn dur(s: &str) -> Option<std::time::Duration> {
        humantime::parse_duration(s.trim_matches('"')).ok()
    }

    /// `[table]\nkey = value\n`, parsed.
    fn with(key: &str, value: &str) -> Result<WardConfig> {
        let (table, name) = key.rsplit_once('.').unwrap();
        WardConfig::parse(&format!("[{table}]\n{name} = {value}\n"), "t.toml")
    }

    /// Values just outside and at the edges of a documented range, as TOML.
    fn probes(d: &Documented) -> (Vec<String>, Vec<String>) {
        let (mut bad, mut good) = (Vec::new(), vec![]);
        if let (Ok(min), Ok(max)) = (d.min.parse::<u64>(), d.max.parse::<u64>()) {
            good.extend([min.to_string(), max.to_string()]);
            bad.push(if min > 0 {
                (min - 1).to_string()
            } else {
                "-1".into()
            });
            bad.push((max + 1).to_string());
            if d.power_of_two {
                bad.extend([(min + 1).to_string(), (min * 3).to_string(), "3".into()]);
            }
        } else if let (Ok(min), Ok(max)) = (d.min.parse::<f64>(), d.max.parse::<f64>()) {
            good.extend([format!("{min:?}"), format!("{max:?}")]);
            bad.extend([
                format!("{:?}", min - 0.01),
                format!("{:?}", max + 0.01),
                "nan".into(),
            ]);
        } else {
            let (min, max) = (dur(&d.min).expect(&d.min), dur(&d.max).expect(&d.max));
            let ns = |n: u128| format!("\"{n}ns\"");
            good.extend([ns(min.as_nanos()), ns(max.as_nanos())]);
            if !min.is_zero() {
                bad.push(ns(min.as_nanos() - 1));
            }
            bad.push(ns(max.as_nanos() + 1));
        }
        if let Some(off) = &d.off {
            good.push(if dur(off).is_some() {
                format!("\"{off}\"")
            } else {
                off.clone()
            });
        }
        (bad, good)
    }

    #[test]
    fn every_numeric_key_has_a_documented_range() {
        let documented: Vec<String> = documented().into_iter().map(|d| d.key).collect();
        let mut table = String::new();
        for line in DEFAULT_TOML.lines() {
            if let Some(h) = line.strip_prefix('[').filter(|l| !l.starts_with('[')) {
                table = h.trim_end_matches(']').to_string();
            }
            let Some((name, value)) = line.split_once(" = ") else {
                continue;
            };
            let numeric =
                value.parse::<f64>().is_ok() || (value.starts_with('"') && dur(value).is_some());
            let key = format!("{table}.{name}");
            if numeric && !line.starts_with('#') {
                assert!(documented.contains(&key), "{key} has no `# Range:` line");
            }
        }
        let code: Vec<&str> = bounds().iter().map(|b| b.key).collect();
        assert_eq!(
            documented, code,
            "config/ward.toml's ranges and bounds() list the same keys in the same order"
        );
    }

    #[test]
    fn documented_ranges_are_enforced_naming_the_key() {
        for d in documented() {
            let (bad, good) = probes(&d);
            for v in &bad {
                let e = with(&d.key, v)
                    .err()
                    .unwrap_or_else(|| panic!("{} = {v} accepted", d.key))
                    .to_string();
                assert!(e.starts_with("t.toml:2:"), "{e}");
                assert!(e.contains(&d.key), "{} = {v}: {e}", d.key);
            }
            for v in good.iter().chain(&d.default) {
                with(&d.key, v).unwrap_or_else(|e| panic!("{} = {v}: {e}", d.key));
            }
        }
    }

    #[test]
    fn report_environment_variables_is_off_by_default_and_checked() {
        let d = WardConfig::default();
        assert!(!d.agent.report_environment_variables);
        assert!(!d.engine_config().report_environment_variables);
        let on = with("agent.report_environment_variables", "true").unwrap();
        assert!(on.engine_config().report_environment_variables);
        for bad in ["\"yes\"", "1", "\"true\""] {
            let e = with("agent.report_environment_variables", bad)
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("t.toml:2:"), "{bad}: {e}");
            assert!(e.contains("report_environment_variables"), "{bad}: {e}");
        }
        // Not an [engine] key: the engine's field is set from [agent] only.
        let e = with("engine.report_environment_variables", "true")
            .unwrap_err()
            .to_string();
        assert!(e.contains("report_environment_variables"), "{e}");
    }

    #[test]
    fn range_errors_name_the_line_in_a_whole_file() {
        let text =
            DEFAULT_TOML.replace("ring_buffer_bytes = 8388608", "ring_buffer_bytes = 3000000");
        let line = text
            .lines()
            .position(|l| l.starts_with("ring_buffer_bytes"))
            .unwrap()
            + 1;
        let e = WardConfig::parse(&text, "w.toml").unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "w.toml:{line}:1: agent.ring_buffer_bytes = 3000000 is out of range: allowed a power of two from 65536 to 1073741824"
            )
        );
        let e = with("agent.hash_workers", "0").unwrap_err().to_string();
        assert_eq!(
            e,
            "t.toml:2:1: agent.hash_workers = 0 is out of range: allowed from 1 to 64"
        );
        let e = with("agent.health_log_interval", "\"500ms\"")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("allowed \"0s\" (off) or from \"1s\" to \"1day\""),
            "{e}"
        );
    }
}
