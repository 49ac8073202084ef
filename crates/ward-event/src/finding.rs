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
    /// The cluster the affected resource belongs to in a fleet: the agent's `[agent] cluster`,
    /// else the collector's `[api] default_cluster`. Omitted when neither is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// The project (team, environment, tenant) the resource belongs to: the agent's
    /// `[agent] project`, else the collector's `[api] default_project`. SCC's resource
    /// `project_display_name`. Omitted when neither is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_display_name: Option<String>,
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

    /// The node the finding happened on: the first Kubernetes node, else
    /// `sourceProperties.VM_Instance_Name`; empty when neither is known.
    pub fn node_name(&self) -> &str {
        self.kubernetes
            .as_ref()
            .and_then(|k| k.nodes.first())
            .map(|n| n.name.as_str())
            .filter(|s| !s.is_empty())
            .or_else(|| self.source_str("VM_Instance_Name"))
            .unwrap_or("")
    }

    /// The affected resource as Security Command Center pairs it with a finding in a list
    /// (`ListFindingsResult.resource`), derived from the record: a pure function.
    pub fn resource(&self) -> Resource {
        let container = self
            .containers
            .first()
            .map(|c| c.name.as_str())
            .filter(|s| !s.is_empty())
            .or_else(|| self.source_str("Container_Name"))
            .filter(|s| !s.is_empty());
        let pod = self
            .kubernetes
            .as_ref()
            .and_then(|k| k.pods.first())
            .map(|p| p.name.as_str())
            .filter(|s| !s.is_empty())
            .or_else(|| self.source_str("Pod_Name"))
            .filter(|s| !s.is_empty());
        let node = self.node_name();
        let (kind, display) = match (container, pod) {
            (Some(c), _) => (ResourceType::Container, c),
            (None, Some(p)) => (ResourceType::Pod, p),
            (None, None) => (ResourceType::Node, node),
        };
        let nonempty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
        Resource {
            name: self.resource_name.clone(),
            kind,
            display_name: display.to_string(),
            cluster: nonempty(&self.cluster),
            project_display_name: nonempty(&self.project_display_name),
            node: (!node.is_empty()).then(|| node.to_string()),
        }
    }

    /// Fills the cluster and project the finding does not name yet from `identity` (an
    /// empty value leaves the field as it is). Returns whether anything changed. The agent
    /// stamps its own `[agent] cluster`/`project` this way; a collector its defaults.
    pub fn apply_resource_defaults(&mut self, identity: &ResourceIdentity) -> bool {
        let mut changed = false;
        for (field, value) in [
            (&mut self.cluster, &identity.cluster),
            (&mut self.project_display_name, &identity.project),
        ] {
            if field.as_deref().is_none_or(str::is_empty) && !value.is_empty() {
                *field = Some(value.clone());
                changed = true;
            }
        }
        changed
    }

    /// How many events this finding aggregates (1 when never repeated).
    pub fn count(&self) -> u64 {
        self.source_properties
            .get("Count")
            .and_then(|v| v.as_u64())
            .unwrap_or(1)
    }
}

/// A cluster and project name to stamp on findings that do not carry them
/// ([`Finding::apply_resource_defaults`]). Empty strings mean "not set".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceIdentity {
    pub cluster: String,
    pub project: String,
}

impl ResourceIdentity {
    pub fn is_empty(&self) -> bool {
        self.cluster.is_empty() && self.project.is_empty()
    }
}

/// What kind of resource a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResourceType {
    /// A container (in a pod or not).
    Container,
    /// A pod whose container is not known.
    Pod,
    /// The node itself (a process outside any container).
    Node,
}

/// The resource of a finding as Security Command Center's `ListFindingsResult.resource`
/// carries it next to the finding. The keys are snake_case (`display_name`,
/// `project_display_name`), as SCC's console JSON tab and its notifications show them; the
/// finding record itself stays lowerCamelCase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resource {
    /// The full resource name: the finding's `resourceName`
    /// (`//ward/nodes/<node>/namespaces/<ns>/pods/<pod>/containers/<name>`, ...).
    pub name: String,
    /// `container`, `pod` or `node`.
    #[serde(rename = "type")]
    pub kind: ResourceType,
    /// The container's name, else the pod's, else the node's.
    pub display_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_display_name: Option<String>,
    /// The node the finding happened on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
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
    /// The environment at exec, when the agent reports it (`[agent]
    /// report_environment_variables`, off by default).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_variables: Vec<EnvVariable>,
    /// `envVariables` lacks entries: the sensor keeps the first 2 KiB of the environment.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub env_variables_truncated: bool,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(json: serde_json::Value) -> Finding {
        let mut base = serde_json::json!({
            "name": "p/findings/x", "canonicalName": "p/findings/x", "parent": "p",
            "resourceName": "//ward/nodes/n1", "state": "ACTIVE", "category": "Reverse Shell",
            "findingClass": "THREAT", "severity": "CRITICAL",
            "eventTime": "2026-11-21T00:00:00Z", "createTime": "2026-11-21T00:00:00Z",
            "description": "", "nextSteps": "", "mute": "UNDEFINED",
            "mitreAttack": {"primaryTactic": "", "primaryTechniques": [], "version": "15"},
        });
        base.as_object_mut()
            .unwrap()
            .extend(json.as_object().unwrap().clone());
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn the_resource_is_the_container_else_the_pod_else_the_node() {
        let c = finding(serde_json::json!({
            "resourceName": "//ward/nodes/n1/namespaces/shop/pods/web-1/containers/web",
            "containers": [{"name": "web"}],
            "kubernetes": {"pods": [{"ns": "shop", "name": "web-1"}], "nodes": [{"name": "n1"}]},
            "cluster": "prod-eu", "projectDisplayName": "shop-team",
        }));
        let r = c.resource();
        assert_eq!(r.kind, ResourceType::Container);
        assert_eq!(r.display_name, "web");
        assert_eq!(r.name, c.resource_name);
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            serde_json::json!({
                "name": "//ward/nodes/n1/namespaces/shop/pods/web-1/containers/web",
                "type": "container", "display_name": "web", "cluster": "prod-eu",
                "project_display_name": "shop-team", "node": "n1",
            })
        );
        let pod = finding(serde_json::json!({
            "sourceProperties": {"Pod_Name": "web-1", "VM_Instance_Name": "n2"},
        }));
        let r = pod.resource();
        assert_eq!(
            (r.kind, r.display_name.as_str()),
            (ResourceType::Pod, "web-1")
        );
        assert_eq!(r.node.as_deref(), Some("n2"));
        assert_eq!(r.cluster, None);
        let node = finding(serde_json::json!({"sourceProperties": {"VM_Instance_Name": "n3"}}));
        let r = node.resource();
        assert_eq!(
            (r.kind, r.display_name.as_str()),
            (ResourceType::Node, "n3")
        );
        // Absent identity is omitted from the JSON, never an empty string.
        let v = serde_json::to_value(&r).unwrap();
        assert!(v.get("cluster").is_none() && v.get("project_display_name").is_none());
        assert!(serde_json::to_value(&node)
            .unwrap()
            .get("cluster")
            .is_none());
    }

    #[test]
    fn defaults_fill_only_what_is_missing() {
        let ident = ResourceIdentity {
            cluster: "c".into(),
            project: "p".into(),
        };
        let mut f = finding(serde_json::json!({}));
        assert!(f.apply_resource_defaults(&ident));
        assert_eq!(f.cluster.as_deref(), Some("c"));
        assert_eq!(f.project_display_name.as_deref(), Some("p"));
        assert!(!f.apply_resource_defaults(&ResourceIdentity {
            cluster: "other".into(),
            project: "other".into(),
        }));
        assert_eq!(f.cluster.as_deref(), Some("c"));
        let mut g = finding(serde_json::json!({"cluster": ""}));
        assert!(g.apply_resource_defaults(&ResourceIdentity {
            cluster: "c".into(),
            project: String::new(),
        }));
        assert_eq!(g.cluster.as_deref(), Some("c"));
        assert_eq!(g.project_display_name, None);
        assert!(!g.apply_resource_defaults(&ResourceIdentity::default()));
    }
}
