//! The finding record: Security Command Center v2 field names (lowerCamelCase). Fields that
//! do not apply are omitted, never filled with placeholders. Integers are JSON numbers.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "LOW",
            Severity::Medium => "MEDIUM",
            Severity::High => "HIGH",
            Severity::Critical => "CRITICAL",
        }
    }

    pub fn parse(s: &str) -> Option<Severity> {
        [
            Severity::Low,
            Severity::Medium,
            Severity::High,
            Severity::Critical,
        ]
        .into_iter()
        .find(|v| v.as_str().eq_ignore_ascii_case(s))
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum State {
    #[default]
    Active,
    Inactive,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Active => "ACTIVE",
            State::Inactive => "INACTIVE",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Mute {
    Muted,
    Unmuted,
    #[default]
    Undefined,
}

impl Mute {
    pub fn as_str(self) -> &'static str {
        match self {
            Mute::Muted => "MUTED",
            Mute::Unmuted => "UNMUTED",
            Mute::Undefined => "UNDEFINED",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// `<parent>/findings/<id>`; the id is derived from what the finding is about, so a replay
    /// of the same events gives the same names.
    pub name: String,
    pub canonical_name: String,
    pub parent: String,
    /// The affected resource (container or pod).
    pub resource_name: String,
    pub state: State,
    /// Display name of the category, e.g. `Execution: Malicious Python executed`.
    pub category: String,
    /// Always `THREAT` for Ward's findings.
    pub finding_class: String,
    pub severity: Severity,
    /// When the (last) event happened; RFC 3339.
    pub event_time: String,
    /// When the finding was first created (the first event's time, so replays reproduce it).
    pub create_time: String,
    pub description: String,
    pub next_steps: String,
    pub mute: Mute,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_uri: Option<String>,
    pub mitre_attack: MitreAttack,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub processes: Vec<Process>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub containers: Vec<Container>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<Kubernetes>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connections: Vec<Connection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub indicator: Option<Indicator>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub source_properties: BTreeMap<String, serde_json::Value>,
}

impl Finding {
    /// The last path segment of `name`.
    pub fn id(&self) -> &str {
        self.name.rsplit('/').next().unwrap_or(&self.name)
    }

    pub fn source_str(&self, key: &str) -> Option<&str> {
        self.source_properties.get(key).and_then(|v| v.as_str())
    }

    /// The typed evidence of the finding (`sourceProperties.Evidence`): which conditions
    /// held, on which field, with which value. Empty when the finding carries none.
    pub fn evidence(&self) -> Vec<Evidence> {
        self.source_properties
            .get(EVIDENCE_KEY)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default()
    }

    /// How many events this finding aggregates (1 when never repeated).
    pub fn count(&self) -> u64 {
        self.source_properties
            .get("Count")
            .and_then(|v| v.as_u64())
            .unwrap_or(1)
    }
}

/// The `sourceProperties` key of a finding's [`Evidence`] list.
pub const EVIDENCE_KEY: &str = "Evidence";

/// One reason a finding was raised: a condition that held, the field it looked at and the
/// value it saw there. Rule findings list every condition of the rule that held
/// (`parent.basename` = `nginx`); the console shows the list for any category, without
/// knowing the detector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Evidence {
    /// The field, with the process it was read from as a prefix: `basename`, `exe`, `argv`,
    /// `argv.cmdline`, `argv.base64`, `layer`, `image`, `parent.basename`,
    /// `ancestor[2].exe`, ...
    pub field: String,
    /// The value seen there (an argument, a path, a decoded excerpt).
    pub value: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MitreAttack {
    pub primary_tactic: String,
    pub primary_techniques: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional_tactics: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional_techniques: Vec<String>,
    pub version: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Process {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary: Option<File>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<File>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub arguments_truncated: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_variables: Vec<EnvVariable>,
    pub pid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_pid: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct File {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashed_size: Option<u64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partially_hashed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contents: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvVariable {
    pub name: String,
    pub val: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Label {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<Label>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_time: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Kubernetes {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pods: Vec<Pod>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<Node>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pod {
    pub ns: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<Label>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub containers: Vec<Container>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    pub name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    pub destination_ip: String,
    pub destination_port: u16,
    pub source_ip: String,
    pub source_port: u16,
    pub protocol: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Indicator {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_addresses: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub domains: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uris: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signatures: Vec<serde_json::Value>,
}
