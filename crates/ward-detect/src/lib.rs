//! Detection: the [`Engine`] applies events to the process table, runs each [`Detector`] and
//! turns what they report into SCC findings, aggregating repeats.
//!
//! The built-in detectors are code; the detection rules (`ward-rules`, docs/rules.md) run as
//! one more detector, [`detectors::rules::Rules`], added with [`Engine::set_rules`].
//!
//! Detectors are pure: they see an enriched event, the process table and the values they were
//! given (threat intel, a classifier) and do no IO. Each lives in its own module under
//! `detectors/` with its tests.

pub mod aggregate;
pub mod config;
pub mod detectors;
mod engine;
pub mod report;

pub use config::{DetectorsConfig, EngineConfig};
pub use engine::{Engine, EngineStats, FindingUpdate};

use std::sync::Arc;
use ward_event::finding::Evidence;
use ward_event::{Category, ExecEvent, Pid, ScriptClassifier, Sha256, SocketInfo};
use ward_intel::IntelSet;
use ward_proctable::{Proc, ProcessTable};

/// What detectors may look at besides the event.
pub struct Ctx<'a> {
    pub table: &'a ProcessTable,
    pub intel: &'a IntelSet,
    pub classifier: Option<&'a dyn ScriptClassifier>,
}

/// One detection rule.
pub trait Detector: Send {
    /// Stable name, used in logs and `sourceProperties.Detector`.
    fn name(&self) -> &'static str;

    /// A process executed. `proc` already reflects the exec (stdio, bindings, lineage).
    fn on_exec(&self, ctx: &Ctx<'_>, proc: &Proc, exec: &ExecEvent, out: &mut Vec<Detection>);

    /// A process became bound to a remote socket after its exec (dup onto stdio, a relay
    /// connecting, a pipe it reads starting to carry remote input).
    fn on_bound(&self, _ctx: &Ctx<'_>, _proc: &Proc, _time: u64, _out: &mut Vec<Detection>) {}
}

/// What a detector reports; the engine turns it into a finding.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub category: Category,
    pub detector: &'static str,
    pub time: u64,
    /// The triggering process.
    pub pid: Pid,
    /// Aggregation key within (category, container): a hash, a peer, a tool.
    pub key: String,
    /// One sentence on this occurrence, appended to the category description.
    pub detail: String,
    /// The socket peer, for `connections[]` and `indicator.ipAddresses`.
    pub connection: Option<SocketInfo>,
    /// Hashes involved; each gets a VirusTotal link, the first is `externalUri`.
    pub hashes: Vec<Sha256>,
    /// Whether the finding shows the script contents of the triggering process.
    pub script_contents: bool,
    /// Detector-specific `sourceProperties`.
    pub properties: Vec<(&'static str, serde_json::Value)>,
    /// Typed evidence (`sourceProperties.Evidence`): the conditions that held.
    pub evidence: Vec<Evidence>,
    /// The exec and its ancestry as they were judged, when the finding must be built from
    /// them rather than from the process table (a rule decision held for container metadata:
    /// the process may be gone, and its metadata arrived later). Empty otherwise.
    pub judged: Vec<ExecEvent>,
}

impl Detection {
    pub fn new(
        category: Category,
        detector: &'static str,
        time: u64,
        pid: Pid,
        key: String,
    ) -> Self {
        Detection {
            category,
            detector,
            time,
            pid,
            key,
            detail: String::new(),
            connection: None,
            hashes: vec![],
            script_contents: false,
            properties: vec![],
            evidence: vec![],
            judged: vec![],
        }
    }

    pub fn detail(mut self, detail: String) -> Self {
        self.detail = detail;
        self
    }

    pub fn property(mut self, key: &'static str, value: impl Into<serde_json::Value>) -> Self {
        self.properties.push((key, value.into()));
        self
    }
}

/// Builds the configured detectors.
pub fn build_detectors(cfg: &DetectorsConfig) -> Vec<Box<dyn Detector>> {
    let mut out: Vec<Box<dyn Detector>> = Vec::new();
    if cfg.malicious_binary.enabled {
        out.push(Box::new(detectors::malicious_binary::MaliciousBinary::new(
            &cfg.malicious_binary,
        )));
    }
    if cfg.added_binary.enabled {
        out.push(Box::new(detectors::added_binary::AddedBinary::new(
            &cfg.added_binary,
        )));
    }
    if cfg.malicious_python.enabled {
        out.push(Box::new(detectors::malicious_python::MaliciousPython::new(
            &cfg.malicious_python,
        )));
    }
    if cfg.compiler.enabled {
        out.push(Box::new(detectors::compiler::Compiler::new(&cfg.compiler)));
    }
    if cfg.remote_command_execution.enabled || cfg.reverse_shell.enabled {
        out.push(Box::new(detectors::remote_command::RemoteCommand::new(
            &cfg.remote_command_execution,
            &cfg.reverse_shell,
        )));
    }
    out
}

/// Shared handle types for the values detectors receive.
pub type SharedIntel = Arc<IntelSet>;
pub type SharedClassifier = Arc<dyn ScriptClassifier>;

#[cfg(test)]
pub(crate) mod testing;
