//! Shared by the store benchmarks: synthetic findings (a skewed fleet-like mix) and timing.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use ward_event::finding::{Container, Kubernetes, Mute, Node, Pod, State};
use ward_event::time::format_rfc3339;
use ward_event::{Category, Finding};

pub const SEC: u64 = 1_000_000_000;
pub const T0: u64 = 1_795_219_200 * SEC;
pub const SPAN: u64 = 30 * 86_400 * SEC;

pub fn synthetic(i: u64, n: u64) -> Finding {
    // Skewed category mix: noisy low-severity categories dominate, like a real fleet.
    let cat = match i % 20 {
        0..=7 => Category::AddedBinaryExecuted,
        8..=12 => Category::LaunchCodeCompilerToolInContainer,
        13..=15 => Category::PossibleRemoteCommandExecutionDetected,
        16 => Category::ReverseShell,
        17 => Category::MaliciousPythonExecuted,
        18 => Category::AddedMaliciousBinaryExecuted,
        _ => Category::BuiltInMaliciousBinaryExecuted,
    };
    let container = (i * 7919) % 5000;
    let ns = container % 50;
    let node = container % 100;
    let app = ["web", "api", "worker", "db", "cache"][(container % 5) as usize];
    let parent = "organizations/0/sources/ward";
    let id = format!(
        "{:032x}",
        (i as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)
    );
    let event_ns = T0 + i * (SPAN / n.max(1)) / SEC * SEC; // ties: second resolution
    let mut sp = BTreeMap::new();
    sp.insert("Count".to_string(), serde_json::json!(1 + i % 7));
    sp.insert(
        "Container_Id".to_string(),
        serde_json::json!(format!("{container:064x}")),
    );
    sp.insert(
        "VM_Instance_Name".to_string(),
        serde_json::json!(format!("node-{node}")),
    );
    Finding {
        name: format!("{parent}/findings/{id}"),
        canonical_name: format!("{parent}/findings/{id}"),
        parent: parent.into(),
        resource_name: format!("//ward/pods/ns-{ns}/{app}-{container}"),
        state: if i.is_multiple_of(10) {
            State::Inactive
        } else {
            State::Active
        },
        category: cat.display_name().into(),
        finding_class: "THREAT".into(),
        severity: cat.severity(),
        event_time: format_rfc3339(event_ns),
        create_time: format_rfc3339(event_ns),
        description: cat.description().into(),
        next_steps: cat.next_steps().into(),
        mute: if i.is_multiple_of(50) {
            Mute::Muted
        } else {
            Mute::Undefined
        },
        external_uri: None,
        mitre_attack: cat.mitre_attack(),
        processes: vec![],
        containers: vec![Container {
            name: format!("{app}-{container}"),
            uri: Some(format!(
                "registry.example/team-{ns}/{app}:1.{}",
                container % 13
            )),
            ..Default::default()
        }],
        kubernetes: Some(Kubernetes {
            pods: vec![Pod {
                ns: format!("ns-{ns}"),
                name: format!("{app}-{container}-7d9f"),
                ..Default::default()
            }],
            nodes: vec![Node {
                name: format!("node-{node}"),
            }],
        }),
        connections: vec![],
        indicator: None,
        source_properties: sp,
        // A fleet of 10 clusters (10 nodes each) and 3 projects.
        cluster: Some(format!("cluster-{}", node % 10)),
        project_display_name: Some(["shop", "data", "ops"][(ns % 3) as usize].into()),
    }
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

pub fn measure(label: &str, iters: usize, mut f: impl FnMut() -> usize) {
    let mut samples = Vec::with_capacity(iters);
    let mut n = 0;
    let budget = Instant::now();
    for _ in 0..iters {
        let t = Instant::now();
        n = f();
        samples.push(t.elapsed());
        if budget.elapsed() > Duration::from_secs(20) && samples.len() >= 5 {
            break;
        }
    }
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{label:<58} n={:<3} p50 {:>9.2} ms  p99 {:>9.2} ms  max {:>9.2} ms  (rows {n})",
        samples.len(),
        ms(percentile(&samples, 0.5)),
        ms(percentile(&samples, 0.99)),
        ms(*samples.last().unwrap_or(&Duration::ZERO)),
    );
}

/// `synthetic(i, n)` seen again later: the aggregation update the agent writes.
pub fn repeated(i: u64, n: u64, k: u64) -> Finding {
    let mut f = synthetic(i, n);
    let t = ward_event::time::parse_rfc3339(&f.event_time).unwrap_or(T0) + k * 60 * SEC;
    f.event_time = format_rfc3339(t);
    f.source_properties
        .insert("Count".to_string(), serde_json::json!(1 + i % 7 + k));
    f
}
