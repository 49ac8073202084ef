#![allow(dead_code)]

use std::collections::BTreeMap;
use ward_event::finding::{Container, Kubernetes, Mute, Node, Pod, Severity, State};
use ward_event::time::format_rfc3339;
use ward_event::{Category, Finding};

pub const SEC: u64 = 1_000_000_000;
/// 2026-11-21T00:00:00Z
pub const T0: u64 = 1_795_219_200 * SEC;

/// Where a finding happened.
#[derive(Clone, Default)]
pub struct Place {
    pub container: &'static str,
    pub container_id: &'static str,
    pub image: &'static str,
    pub ns: &'static str,
    pub pod: &'static str,
    pub node: &'static str,
}

/// Three containers the store tests place findings in.
pub const WEB: Place = Place {
    container: "web-frontend",
    container_id: "c-web",
    image: "registry.example/shop/web:1.2",
    ns: "shop",
    pod: "web-7d9",
    node: "node-a",
};
pub const API: Place = Place {
    container: "api",
    container_id: "c-api",
    image: "registry.example/shop/api:3",
    ns: "shop",
    pod: "api-5f",
    node: "node-b",
};
pub const DB: Place = Place {
    container: "postgres",
    container_id: "c-db",
    image: "docker.io/library/postgres:16",
    ns: "data",
    pod: "pg-0",
    node: "node-a",
};

pub fn finding(id: &str, cat: Category, event_ns: u64, place: &Place) -> Finding {
    let parent = "organizations/0/sources/ward";
    let mut sp = BTreeMap::new();
    sp.insert("Count".to_string(), serde_json::json!(1));
    if !place.container_id.is_empty() {
        sp.insert(
            "Container_Id".to_string(),
            serde_json::json!(place.container_id),
        );
    }
    if !place.node.is_empty() {
        sp.insert(
            "VM_Instance_Name".to_string(),
            serde_json::json!(place.node),
        );
    }
    Finding {
        name: format!("{parent}/findings/{id}"),
        canonical_name: format!("{parent}/findings/{id}"),
        parent: parent.into(),
        resource_name: format!("//ward/containers/{}", place.container),
        state: State::Active,
        category: cat.display_name().into(),
        finding_class: "THREAT".into(),
        severity: cat.severity(),
        event_time: format_rfc3339(event_ns),
        create_time: format_rfc3339(event_ns),
        description: cat.description().into(),
        next_steps: cat.next_steps().into(),
        mute: Mute::Undefined,
        external_uri: None,
        mitre_attack: cat.mitre_attack(),
        processes: vec![],
        containers: if place.container.is_empty() {
            vec![]
        } else {
            vec![Container {
                name: place.container.into(),
                uri: (!place.image.is_empty()).then(|| place.image.to_string()),
                ..Default::default()
            }]
        },
        kubernetes: (!place.pod.is_empty() || !place.node.is_empty()).then(|| Kubernetes {
            pods: if place.pod.is_empty() {
                vec![]
            } else {
                vec![Pod {
                    ns: place.ns.into(),
                    name: place.pod.into(),
                    ..Default::default()
                }]
            },
            nodes: if place.node.is_empty() {
                vec![]
            } else {
                vec![Node {
                    name: place.node.into(),
                }]
            },
        }),
        connections: vec![],
        indicator: None,
        source_properties: sp,
        cluster: None,
        project_display_name: None,
    }
}

/// The same finding repeated: higher Count, later eventTime.
pub fn repeat(f: &Finding, count: u64, event_ns: u64) -> Finding {
    let mut g = f.clone();
    g.source_properties
        .insert("Count".into(), serde_json::json!(count));
    g.event_time = format_rfc3339(event_ns);
    g
}

pub fn with_severity(mut f: Finding, s: Severity) -> Finding {
    f.severity = s;
    f
}

pub fn ids(fs: &[Finding]) -> Vec<String> {
    fs.iter().map(|f| f.id().to_string()).collect()
}
