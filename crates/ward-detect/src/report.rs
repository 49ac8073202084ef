//! Turns a [`Detection`] into the SCC finding record.

use crate::config::EngineConfig;
use crate::Detection;
use sha2::{Digest, Sha256 as Hasher};
use std::collections::BTreeMap;
use ward_event::finding::*;
use ward_event::time::{format_rfc3339, IdClock};
use ward_event::{ContainerMeta, ExecEvent, ScriptInfo};
use ward_proctable::{Proc, ProcessTable};

/// The deterministic finding id: the same events give the same names in replay and live.
///
/// With an [`IdClock`] (live events, and replays of recordings that name one) the time hashed
/// is the kernel's boot-time stamp on that boot, not the wall-clock `time` derived from it
/// with a per-process offset: two agents seeing the same event name it the same way.
pub fn finding_id(d: &Detection, scope: &str, clock: Option<&IdClock>) -> String {
    let mut h = Hasher::new();
    h.update(d.category.api_name().as_bytes());
    h.update([0]);
    h.update(scope.as_bytes());
    h.update([0]);
    h.update(d.key.as_bytes());
    h.update([0]);
    match clock {
        Some(c) => {
            h.update(b"boot\0");
            h.update(c.boot_id.as_bytes());
            h.update([0]);
            h.update(c.boot_ns(d.time).to_le_bytes());
        }
        None => h.update(d.time.to_le_bytes()),
    }
    hex::encode(&h.finalize()[..16])
}

/// Where a finding applies: the container id, else the node.
pub fn scope_of(proc: Option<&Proc>, node: &str) -> String {
    match proc.and_then(|p| p.container_id.as_deref()) {
        Some(id) => format!("container:{id}"),
        None => format!("node:{node}"),
    }
}

/// Builds the finding; `scope` is [`scope_of`] the triggering process.
pub fn build(
    d: &Detection,
    scope: &str,
    table: &ProcessTable,
    cfg: &EngineConfig,
    clock: Option<&IdClock>,
) -> Finding {
    let proc = table.get(d.pid);
    let exec = match d.judged.first() {
        Some(e) => Some(e),
        None => proc.and_then(|p| p.exec.as_deref()),
    };
    let node = exec.map(|e| e.node.as_str()).unwrap_or("");
    let id = finding_id(d, scope, clock);
    let name = format!("{}/findings/{}", cfg.finding_parent, id);
    let time = format_rfc3339(d.time);

    let mut processes = Vec::new();
    if !d.judged.is_empty() {
        for (n, e) in d.judged.iter().take(cfg.max_ancestors + 1).enumerate() {
            processes.push(exec_process(
                e,
                n == 0 && d.script_contents,
                cfg.script_contents_max,
                cfg.report_environment_variables,
            ));
        }
    } else if let Some(p) = proc {
        let env = cfg.report_environment_variables;
        processes.push(process(p, d.script_contents, cfg.script_contents_max, env));
        for a in table.ancestors(d.pid).take(cfg.max_ancestors) {
            processes.push(process(a, false, 0, env));
        }
    } else {
        processes.push(Process {
            pid: d.pid,
            ..Default::default()
        });
    }

    let container_id = exec.and_then(|e| e.container_id.as_deref());
    let meta = exec.and_then(|e| e.container.as_ref());
    let container = container_id.map(|id| container_record(id, meta));
    let pod = meta.and_then(|m| m.pod.as_ref());

    let resource_name = match (container_id, pod) {
        (Some(_), Some(p)) => format!(
            "//ward/nodes/{node}/namespaces/{}/pods/{}/containers/{}",
            p.namespace,
            p.name,
            container.as_ref().map(|c| c.name.as_str()).unwrap_or("")
        ),
        (Some(id), None) => format!("//ward/nodes/{node}/containers/{id}"),
        (None, _) => format!("//ward/nodes/{node}"),
    };

    let mut props: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    if !node.is_empty() {
        props.insert("VM_Instance_Name".into(), node.into());
    }
    if let Some(c) = &container {
        props.insert("Container_Name".into(), c.name.clone().into());
        if let Some(uri) = &c.uri {
            props.insert("Container_Image_Uri".into(), uri.clone().into());
        }
    }
    if let Some(id) = container_id {
        props.insert("Container_Id".into(), id.into());
    }
    if let Some(p) = pod {
        props.insert("Pod_Namespace".into(), p.namespace.clone().into());
        props.insert("Pod_Name".into(), p.name.clone().into());
    }
    if let Some(note) = meta.and_then(|m| m.note.as_ref()) {
        props.insert("Container_Metadata_Note".into(), note.clone().into());
    } else if container_id.is_some() && meta.is_none() {
        props.insert(
            "Container_Metadata_Note".into(),
            "container metadata was unavailable; the container id identifies it".into(),
        );
    }
    props.insert("Detector".into(), d.detector.into());
    props.insert("Count".into(), 1.into());
    props.insert("First_Seen_Time".into(), time.clone().into());
    props.insert("Last_Seen_Time".into(), time.clone().into());
    if let Some(e) = exec {
        props.insert(
            "Commands".into(),
            vec![serde_json::Value::from(crate::detectors::command_line(e))].into(),
        );
    }
    props.insert(
        "Mitre_Technique_Ids".into(),
        d.category
            .technique_ids()
            .into_iter()
            .map(serde_json::Value::from)
            .collect::<Vec<_>>()
            .into(),
    );
    if !d.hashes.is_empty() {
        let links: Vec<serde_json::Value> = d
            .hashes
            .iter()
            .map(|h| serde_json::Value::from(h.virustotal_url()))
            .collect();
        props.insert("VirusTotal_Links".into(), links.into());
    }
    let cut_here = d.script_contents
        && exec
            .and_then(|e| e.script.as_ref())
            .and_then(|s| s.contents.as_ref())
            .is_some_and(|c| c.len() > cfg.script_contents_max);
    if cut_here {
        props.insert("Script_Contents_Truncated".into(), true.into());
    }
    if !d.evidence.is_empty() {
        props.insert(
            EVIDENCE_KEY.into(),
            serde_json::to_value(&d.evidence).unwrap_or_default(),
        );
    }
    for (k, v) in &d.properties {
        props.insert((*k).into(), v.clone());
    }

    let indicator = d.connection.map(|c| Indicator {
        ip_addresses: vec![c.remote_ip.to_string()],
        ..Default::default()
    });
    let mut description = d.category.description().to_string();
    if !d.detail.is_empty() {
        description.push(' ');
        description.push_str(&d.detail);
    }

    Finding {
        canonical_name: name.clone(),
        name,
        parent: cfg.finding_parent.clone(),
        resource_name,
        state: State::Active,
        category: d.category.display_name().into(),
        finding_class: "THREAT".into(),
        severity: d.category.severity(),
        event_time: time.clone(),
        create_time: time,
        description,
        next_steps: d.category.next_steps().into(),
        mute: Mute::Undefined,
        external_uri: d.hashes.first().map(|h| h.virustotal_url()),
        mitre_attack: d.category.mitre_attack(),
        processes,
        kubernetes: pod.map(|p| Kubernetes {
            pods: vec![Pod {
                ns: p.namespace.clone(),
                name: p.name.clone(),
                labels: labels(&p.labels),
                containers: container.iter().cloned().collect(),
            }],
            nodes: if node.is_empty() {
                vec![]
            } else {
                vec![Node { name: node.into() }]
            },
        }),
        containers: container.into_iter().collect(),
        connections: d
            .connection
            .map(|c| Connection {
                destination_ip: c.remote_ip.to_string(),
                destination_port: c.remote_port,
                source_ip: c.local_ip.to_string(),
                source_port: c.local_port,
                protocol: match c.protocol {
                    ward_event::Protocol::Tcp => "TCP",
                    ward_event::Protocol::Udp => "UDP",
                    ward_event::Protocol::Other => "OTHER",
                }
                .into(),
            })
            .into_iter()
            .collect(),
        indicator,
        source_properties: props,
        cluster: None,
        project_display_name: None,
    }
}

fn labels(map: &BTreeMap<String, String>) -> Vec<Label> {
    map.iter()
        .map(|(k, v)| Label {
            name: k.clone(),
            value: v.clone(),
        })
        .collect()
}

fn container_record(id: &str, meta: Option<&ContainerMeta>) -> Container {
    let short = &id[..id.len().min(12)];
    match meta {
        Some(m) => Container {
            name: if m.name.is_empty() {
                short.to_string()
            } else {
                m.name.clone()
            },
            uri: (!m.image.is_empty()).then(|| m.image.clone()),
            image_id: (!m.image_id.is_empty()).then(|| m.image_id.clone()),
            labels: labels(&m.labels),
            create_time: m.created.map(format_rfc3339),
        },
        None => Container {
            name: short.to_string(),
            ..Default::default()
        },
    }
}

fn process(p: &Proc, with_contents: bool, contents_max: usize, env: bool) -> Process {
    let Some(e) = p.exec.as_deref() else {
        return Process {
            pid: p.pid,
            parent_pid: Some(p.ppid),
            ..Default::default()
        };
    };
    Process {
        parent_pid: Some(p.ppid),
        ..exec_process(e, with_contents, contents_max, env)
    }
}

/// A process as its exec describes it; with `env`, its environment at exec (SCC's
/// `envVariables`, `NAME=value` split at the first `=`; an entry without one is a name with an
/// empty value).
fn exec_process(e: &ExecEvent, with_contents: bool, contents_max: usize, env: bool) -> Process {
    Process {
        name: e.program().to_string(),
        binary: Some(binary(e)),
        script: e
            .script
            .as_ref()
            .map(|s| script(s, with_contents, contents_max)),
        args: e.argv.clone(),
        arguments_truncated: e.argv_truncated,
        env_variables: if env {
            e.env
                .iter()
                .map(|v| {
                    let (name, val) = v.split_once('=').unwrap_or((v, ""));
                    EnvVariable {
                        name: name.to_string(),
                        val: val.to_string(),
                    }
                })
                .collect()
        } else {
            Vec::new()
        },
        env_variables_truncated: env && e.env_truncated,
        pid: e.pid,
        parent_pid: Some(e.ppid),
    }
}

fn binary(e: &ExecEvent) -> File {
    let b = &e.binary;
    File {
        path: Some(b.path.clone()),
        size: Some(b.size),
        sha256: b.sha256.map(|h| h.to_hex()),
        hashed_size: b.hashed_size,
        partially_hashed: b.partially_hashed,
        contents: None,
    }
}

fn script(s: &ScriptInfo, with_contents: bool, max: usize) -> File {
    let contents = if with_contents {
        s.contents.as_ref().map(|c| truncate(c, max))
    } else {
        None
    };
    File {
        path: s.path.clone(),
        size: Some(s.size),
        sha256: s.sha256.map(|h| h.to_hex()),
        hashed_size: None,
        partially_hashed: false,
        contents,
    }
}

/// At most `max` bytes of `s`, cut at a character boundary.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s[..cut].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ward_event::Category;

    fn detection(time: u64) -> Detection {
        Detection::new(
            Category::ReverseShell,
            "test",
            time,
            42,
            "10.0.0.9:4444".into(),
        )
    }

    #[test]
    fn ids_do_not_depend_on_the_per_process_clock_offset() {
        // The same kernel stamp, converted by two agents whose offsets differ by 1.234 us.
        let boot_ns = 5_000_000_123u64;
        let a = IdClock {
            boot_id: "b1".into(),
            offset_ns: 1_795_255_200_000_000_000,
        };
        let b = IdClock {
            offset_ns: a.offset_ns + 1234,
            ..a.clone()
        };
        let (ta, tb) = (boot_ns + a.offset_ns as u64, boot_ns + b.offset_ns as u64);
        let scope = "container:abc";
        assert_eq!(
            finding_id(&detection(ta), scope, Some(&a)),
            finding_id(&detection(tb), scope, Some(&b))
        );
        // Without the clock the wall times differ, and so did the ids (the bug this fixes).
        assert_ne!(
            finding_id(&detection(ta), scope, None),
            finding_id(&detection(tb), scope, None)
        );
        // Another boot, or another kernel stamp, is another finding.
        let other_boot = IdClock {
            boot_id: "b2".into(),
            ..a.clone()
        };
        assert_ne!(
            finding_id(&detection(ta), scope, Some(&a)),
            finding_id(&detection(ta), scope, Some(&other_boot))
        );
        assert_ne!(
            finding_id(&detection(ta), scope, Some(&a)),
            finding_id(&detection(ta + 1), scope, Some(&a))
        );
    }
}
