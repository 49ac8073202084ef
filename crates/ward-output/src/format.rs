//! What a receiver reads, as pure functions of a finding (golden tests in
//! `tests/formats.rs`): the SCC finding JSON (native), Falco's alert JSON (what falcosidekick
//! and Falco's own `http_output` consumers take), an OCSF 1.3 Detection Finding (class 2004)
//! and an RFC 5424 syslog message. The choices are in `docs/outputs.md`.

use crate::text;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use ward_event::finding::Severity;
use ward_event::Finding;

/// Body format of an output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// The SCC finding JSON, as the store and `ward findings` show it.
    Scc,
    /// Falco's alert JSON (`output`, `priority`, `rule`, `time`, `output_fields`, ...).
    Falco,
    /// OCSF 1.3 Detection Finding (class_uid 2004).
    Ocsf,
    /// One ASCII line, as Falco's `output` field (syslog's default message).
    Text,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "scc" => Some(Format::Scc),
            "falco" => Some(Format::Falco),
            "ocsf" => Some(Format::Ocsf),
            "text" => Some(Format::Text),
            _ => None,
        }
    }
}

/// What a sink leaves out, for alerts that leave the user's boundary. Each `true` removes
/// the item from what the sink sends (the store keeps everything).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Privacy {
    /// Environment variables of every process.
    pub env: bool,
    /// Arguments: each process's `args`, `sourceProperties.Commands`, and the command line
    /// quoted in the description (the description is cut at its first backquote).
    pub args: bool,
    /// Script contents (`processes[].script.contents`) and the model's reasons
    /// (`sourceProperties.Model_Top_Reasons`, which quote the script).
    pub scripts: bool,
}

impl Privacy {
    pub fn is_off(&self) -> bool {
        !self.env && !self.args && !self.scripts
    }
}

/// Context a format needs besides the finding.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    /// This node's name, when the finding names none.
    pub hostname: String,
    /// Ward's version, for OCSF's `metadata.product.version`.
    pub version: String,
    /// The process id syslog's PROCID shows (0: `-`).
    pub pid: u32,
    /// The store the driver writes (the agent's database), when there is one: outputs that
    /// keep state of their own (the central output's node token) keep it next to it.
    pub state_path: Option<std::path::PathBuf>,
    /// The health summary the central output sends with each batch (filled by the agent).
    pub health: HealthBoard,
}

/// A shared health summary: counters by name, updated by the program (the agent's metrics
/// loop) and read by outputs that report health (central). Equal when it is the same board.
#[derive(Debug, Clone, Default)]
pub struct HealthBoard(
    pub std::sync::Arc<std::sync::Mutex<serde_json::Map<String, serde_json::Value>>>,
);

impl HealthBoard {
    /// Replaces the summary.
    pub fn set(&self, m: serde_json::Map<String, serde_json::Value>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = m;
    }

    /// The summary now (empty until the program fills it).
    pub fn get(&self) -> serde_json::Map<String, serde_json::Value> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl PartialEq for HealthBoard {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}
impl Eq for HealthBoard {}

/// The finding with what `privacy` leaves out removed.
pub fn redact<'a>(f: &'a Finding, privacy: &Privacy) -> Cow<'a, Finding> {
    if privacy.is_off() {
        return Cow::Borrowed(f);
    }
    let mut f = f.clone();
    for p in &mut f.processes {
        if privacy.env {
            p.env_variables.clear();
            p.env_variables_truncated = false;
        }
        if privacy.args {
            p.args.clear();
            p.arguments_truncated = false;
        }
        if privacy.scripts {
            if let Some(s) = p.script.as_mut() {
                s.contents = None;
            }
        }
    }
    if privacy.args {
        f.source_properties.remove("Commands");
        if let Some(i) = f.description.find('`') {
            f.description.truncate(i);
            let t = f.description.trim_end().len();
            f.description.truncate(t);
        }
    }
    if privacy.scripts {
        f.source_properties.remove("Model_Top_Reasons");
    }
    if privacy.env {
        redact_env_evidence(&mut f);
    }
    Cow::Owned(f)
}

/// A rule on the environment names the entry that held in its evidence (`env` =
/// `HTTP_PROXY=http://...`) and in its description's last sentence: keep the variable's name,
/// leave its value out of both.
fn redact_env_evidence(f: &mut Finding) {
    let mut evidence = f.evidence();
    let mut changed = false;
    for e in &mut evidence {
        if e.field != "env" && !e.field.ends_with(".env") {
            continue;
        }
        let name = e.value.split('=').next().unwrap_or("");
        let shown = format!("{name}=<redacted>");
        // The description quotes the value cut at 200 bytes (ward-detect's rules detector).
        let mut cut = e.value.len().min(200);
        while !e.value.is_char_boundary(cut) {
            cut -= 1;
        }
        if cut > name.len() {
            f.description = f.description.replace(&e.value[..cut], &shown);
        }
        e.value = shown;
        changed = true;
    }
    if changed {
        if let Ok(v) = serde_json::to_value(&evidence) {
            f.source_properties
                .insert(ward_event::finding::EVIDENCE_KEY.into(), v);
        }
    }
}

/// The body of one finding in `format` (compact JSON, or the text line).
pub fn render(format: Format, f: &Finding, ctx: &Context) -> String {
    match format {
        Format::Scc => serde_json::to_string(f).unwrap_or_default(),
        Format::Falco => falco(f, ctx).to_string(),
        Format::Ocsf => ocsf(f, ctx).to_string(),
        Format::Text => text_line(f),
    }
}

/// Falco's priority names, from SCC severity.
pub fn falco_priority(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "Critical",
        Severity::High => "Error",
        Severity::Medium => "Warning",
        Severity::Low => "Notice",
    }
}

struct Facts<'a> {
    main: Option<&'a ward_event::finding::Process>,
    parent: Option<&'a ward_event::finding::Process>,
    container_id: Option<&'a str>,
    container_name: Option<&'a str>,
    image: Option<&'a str>,
    image_id: Option<&'a str>,
    ns: Option<&'a str>,
    pod: Option<&'a str>,
    node: Option<&'a str>,
    peer: Option<(&'a str, u16)>,
    technique_ids: Vec<&'a str>,
}

fn facts(f: &Finding) -> Facts<'_> {
    let main = f.processes.first();
    let parent = main.and_then(|m| {
        m.parent_pid
            .and_then(|pp| f.processes.iter().find(|p| p.pid == pp))
    });
    let c = f.containers.first();
    let pod = f.kubernetes.as_ref().and_then(|k| k.pods.first());
    Facts {
        main,
        parent,
        container_id: f.source_str("Container_Id"),
        container_name: c
            .map(|c| c.name.as_str())
            .or_else(|| f.source_str("Container_Name")),
        image: c
            .and_then(|c| c.uri.as_deref())
            .or_else(|| f.source_str("Container_Image_Uri")),
        image_id: c.and_then(|c| c.image_id.as_deref()),
        ns: pod
            .map(|p| p.ns.as_str())
            .or_else(|| f.source_str("Pod_Namespace")),
        pod: pod
            .map(|p| p.name.as_str())
            .or_else(|| f.source_str("Pod_Name")),
        node: f
            .source_str("VM_Instance_Name")
            .or_else(|| {
                f.kubernetes
                    .as_ref()
                    .and_then(|k| k.nodes.first())
                    .map(|n| n.name.as_str())
            })
            .filter(|n| !n.is_empty()),
        peer: f
            .connections
            .first()
            .map(|c| (c.destination_ip.as_str(), c.destination_port)),
        technique_ids: f
            .source_properties
            .get("Mitre_Technique_Ids")
            .and_then(|v| v.as_array())
            .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
            .unwrap_or_default(),
    }
}

/// `registry/name:tag@digest` → (`registry/name`, tag).
fn split_image(image: &str) -> (&str, Option<&str>) {
    let no_digest = image.split('@').next().unwrap_or(image);
    let slash = no_digest.rfind('/').map_or(0, |i| i + 1);
    match no_digest[slash..].rfind(':') {
        Some(i) => (&no_digest[..slash + i], Some(&no_digest[slash + i + 1..])),
        None => (no_digest, None),
    }
}

fn cmdline(p: &ward_event::finding::Process) -> String {
    // Falco's proc.cmdline: the process name, then the arguments after argv[0].
    let mut s = p.name.clone();
    for a in p.args.iter().skip(1) {
        s.push(' ');
        s.push_str(a);
    }
    s
}

/// One ASCII line describing the finding (Falco's rule output part).
pub fn text_line(f: &Finding) -> String {
    let x = facts(f);
    let mut parts: Vec<String> = Vec::new();
    parts.push(format!("severity={}", f.severity.as_str()));
    if let Some(c) = x.container_name {
        parts.push(format!("container={c}"));
    }
    if let Some(i) = x.image {
        parts.push(format!("image={i}"));
    }
    if let (Some(ns), Some(pod)) = (x.ns, x.pod) {
        parts.push(format!("pod={ns}/{pod}"));
    }
    if let Some(m) = x.main {
        if let Some(path) = m.binary.as_ref().and_then(|b| b.path.as_deref()) {
            parts.push(format!("exe={path}"));
        }
        if !m.args.is_empty() {
            parts.push(format!("cmdline={}", cmdline(m)));
        }
        parts.push(format!("pid={}", m.pid));
    }
    if let Some((ip, port)) = x.peer {
        parts.push(format!("peer={ip}:{port}"));
    }
    if f.count() > 1 {
        parts.push(format!("count={}", f.count()));
    }
    parts.push(format!("finding={}", f.id()));
    let line = format!("{} ({})", f.category, parts.join(" "));
    text::ascii(&line).into_owned()
}

/// A UUID-shaped id of this finding state (name and eventTime): the same state always gets
/// the same one, so a receiver can deduplicate a resend.
pub fn state_uuid(f: &Finding) -> String {
    let mut h = Sha256::new();
    h.update(f.name.as_bytes());
    h.update([0]);
    h.update(f.event_time.as_bytes());
    let mut b: [u8; 16] = h.finalize()[..16].try_into().unwrap_or([0; 16]);
    b[6] = (b[6] & 0x0f) | 0x80; // version 8: custom
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
    let x = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &x[0..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..32]
    )
}

fn lower_tactic(t: &str) -> String {
    t.to_ascii_lowercase()
}

/// Falco's alert JSON for the finding.
pub fn falco(f: &Finding, ctx: &Context) -> Value {
    let x = facts(f);
    let mut of = Map::new();
    let s = |v: Option<&str>| v.map_or(Value::Null, |v| Value::String(v.to_string()));
    of.insert(
        "container.id".into(),
        s(x.container_id.map(|c| &c[..c.len().min(12)])),
    );
    of.insert("container.full_id".into(), s(x.container_id));
    of.insert("container.name".into(), s(x.container_name));
    let (repo, tag) = x.image.map(split_image).unzip();
    of.insert("container.image.repository".into(), s(repo));
    of.insert("container.image.tag".into(), s(tag.flatten()));
    of.insert("k8s.ns.name".into(), s(x.ns));
    of.insert("k8s.pod.name".into(), s(x.pod));
    of.insert(
        "proc.cmdline".into(),
        x.main
            .filter(|m| !m.args.is_empty())
            .map_or(Value::Null, |m| Value::String(cmdline(m))),
    );
    of.insert(
        "proc.exepath".into(),
        s(x.main
            .and_then(|m| m.binary.as_ref())
            .and_then(|b| b.path.as_deref())),
    );
    of.insert("proc.name".into(), s(x.main.map(|m| m.name.as_str())));
    of.insert(
        "proc.pid".into(),
        x.main.map_or(Value::Null, |m| json!(m.pid)),
    );
    of.insert(
        "proc.ppid".into(),
        x.main
            .and_then(|m| m.parent_pid)
            .map_or(Value::Null, |p| json!(p)),
    );
    of.insert("proc.pname".into(), s(x.parent.map(|p| p.name.as_str())));
    of.insert("fd.rip".into(), s(x.peer.map(|p| p.0)));
    of.insert(
        "fd.rport".into(),
        x.peer.map_or(Value::Null, |p| json!(p.1)),
    );
    let event_ns = ward_event::time::parse_rfc3339(&f.event_time);
    of.insert(
        "evt.time".into(),
        event_ns.map_or(Value::Null, |n| json!(n)),
    );
    of.insert("ward.finding.name".into(), json!(f.name));
    of.insert("ward.finding.count".into(), json!(f.count()));
    of.insert("ward.severity".into(), json!(f.severity.as_str()));
    let mut tags: Vec<String> = x.technique_ids.iter().map(|t| t.to_string()).collect();
    if !f.mitre_attack.primary_tactic.is_empty() {
        tags.push(format!(
            "mitre_{}",
            lower_tactic(&f.mitre_attack.primary_tactic)
        ));
    }
    for t in &f.mitre_attack.additional_tactics {
        tags.push(format!("mitre_{}", lower_tactic(t)));
    }
    if x.container_id.is_some() {
        tags.push("container".into());
    }
    tags.push("ward".into());
    let clock = event_ns
        .map(|n| {
            let t = ward_event::time::format_rfc3339(n);
            t.get(11..29).unwrap_or("").to_string()
        })
        .unwrap_or_default();
    let output = format!("{clock}: {} {}", falco_priority(f.severity), text_line(f));
    json!({
        "uuid": state_uuid(f),
        "output": output,
        "priority": falco_priority(f.severity),
        "rule": f.category,
        "time": f.event_time,
        "output_fields": of,
        "source": "syscall",
        "tags": tags,
        "hostname": x.node.unwrap_or(&ctx.hostname),
    })
}

fn ms(rfc3339: &str) -> Value {
    ward_event::time::parse_rfc3339(rfc3339).map_or(Value::Null, |n| json!(n / 1_000_000))
}

fn ocsf_severity(s: Severity) -> (u8, &'static str) {
    match s {
        Severity::Low => (2, "Low"),
        Severity::Medium => (3, "Medium"),
        Severity::High => (4, "High"),
        Severity::Critical => (5, "Critical"),
    }
}

/// ATT&CK tactic id and name from SCC's tactic enum name.
fn tactic(t: &str) -> (Option<&'static str>, String) {
    let id = match t {
        "RECONNAISSANCE" => Some("TA0043"),
        "RESOURCE_DEVELOPMENT" => Some("TA0042"),
        "INITIAL_ACCESS" => Some("TA0001"),
        "EXECUTION" => Some("TA0002"),
        "PERSISTENCE" => Some("TA0003"),
        "PRIVILEGE_ESCALATION" => Some("TA0004"),
        "DEFENSE_EVASION" => Some("TA0005"),
        "CREDENTIAL_ACCESS" => Some("TA0006"),
        "DISCOVERY" => Some("TA0007"),
        "LATERAL_MOVEMENT" => Some("TA0008"),
        "COLLECTION" => Some("TA0009"),
        "EXFILTRATION" => Some("TA0010"),
        "COMMAND_AND_CONTROL" => Some("TA0011"),
        "IMPACT" => Some("TA0040"),
        _ => None,
    };
    (id, title(t))
}

/// `DEFENSE_EVASION` → `Defense Evasion`.
fn title(s: &str) -> String {
    s.split('_')
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(first) => first.to_string() + &c.as_str().to_ascii_lowercase(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn ocsf_file(b: &ward_event::finding::File) -> Value {
    let mut o = Map::new();
    if let Some(p) = &b.path {
        o.insert("path".into(), json!(p));
        o.insert(
            "name".into(),
            json!(p.rsplit('/').next().unwrap_or(p.as_str())),
        );
    }
    o.insert("type_id".into(), json!(1));
    o.insert("type".into(), json!("Regular File"));
    if let Some(s) = b.size {
        o.insert("size".into(), json!(s));
    }
    if let Some(h) = &b.sha256 {
        o.insert(
            "hashes".into(),
            json!([{"algorithm_id": 3, "algorithm": "SHA-256", "value": h}]),
        );
    }
    Value::Object(o)
}

fn ocsf_process(f: &Finding, p: &ward_event::finding::Process, depth: u8) -> Value {
    let mut o = Map::new();
    o.insert("pid".into(), json!(p.pid));
    o.insert("name".into(), json!(p.name));
    if !p.args.is_empty() {
        o.insert("cmd_line".into(), json!(p.args.join(" ")));
    }
    if let Some(b) = &p.binary {
        o.insert("file".into(), ocsf_file(b));
    }
    if !p.env_variables.is_empty() {
        o.insert(
            "environment_variables".into(),
            Value::Array(
                p.env_variables
                    .iter()
                    .map(|e| json!({"name": e.name, "value": e.val}))
                    .collect(),
            ),
        );
    }
    if let Some(pp) = p.parent_pid {
        match f
            .processes
            .iter()
            .find(|q| q.pid == pp)
            .filter(|_| depth < 8)
        {
            Some(parent) => {
                o.insert("parent_process".into(), ocsf_process(f, parent, depth + 1));
            }
            None => {
                o.insert("parent_process".into(), json!({ "pid": pp }));
            }
        }
    }
    Value::Object(o)
}

/// OCSF 1.3 Detection Finding (class_uid 2004) for the finding.
pub fn ocsf(f: &Finding, ctx: &Context) -> Value {
    let x = facts(f);
    let (sev_id, sev) = ocsf_severity(f.severity);
    // A finding seen once is "Create"; a later state of it (count > 1) is "Update".
    let (activity_id, activity) = if f.count() > 1 {
        (2, "Update")
    } else {
        (1, "Create")
    };
    let (status_id, status) = match f.state {
        ward_event::finding::State::Active => (1, "New"),
        ward_event::finding::State::Inactive => (4, "Resolved"),
    };
    let mut attacks = Vec::new();
    let ma = &f.mitre_attack;
    let techniques: Vec<&String> = ma
        .primary_techniques
        .iter()
        .chain(ma.additional_techniques.iter())
        .collect();
    let (tid, tname) = tactic(&ma.primary_tactic);
    let tactic_obj = {
        let mut t = Map::new();
        t.insert("name".into(), json!(tname));
        if let Some(id) = tid {
            t.insert("uid".into(), json!(id));
        }
        Value::Object(t)
    };
    let paired = techniques.len() == x.technique_ids.len();
    if techniques.is_empty() {
        for id in &x.technique_ids {
            attacks.push(
                json!({"tactic": tactic_obj, "technique": {"uid": id}, "version": ma.version}),
            );
        }
    }
    for (i, t) in techniques.iter().enumerate() {
        let mut tech = Map::new();
        tech.insert("name".into(), json!(title(t)));
        if paired {
            tech.insert("uid".into(), json!(x.technique_ids[i]));
        }
        attacks.push(json!({"tactic": tactic_obj, "technique": tech, "version": ma.version}));
    }
    let mut finding_info = Map::new();
    finding_info.insert("uid".into(), json!(f.id()));
    finding_info.insert("title".into(), json!(f.category));
    finding_info.insert("desc".into(), json!(f.description));
    finding_info.insert("types".into(), json!([f.category]));
    finding_info.insert("created_time".into(), ms(&f.create_time));
    finding_info.insert(
        "first_seen_time".into(),
        f.source_str("First_Seen_Time")
            .map_or_else(|| ms(&f.create_time), ms),
    );
    finding_info.insert(
        "last_seen_time".into(),
        f.source_str("Last_Seen_Time")
            .map_or_else(|| ms(&f.event_time), ms),
    );
    if let Some(d) = f.source_str("Detector") {
        finding_info.insert(
            "analytic".into(),
            json!({"name": d, "type_id": 1, "type": "Rule"}),
        );
    }
    finding_info.insert("attacks".into(), Value::Array(attacks));
    if let Some(u) = &f.external_uri {
        finding_info.insert("src_url".into(), json!(u));
    }
    let mut evidence = Map::new();
    if let Some(m) = x.main {
        evidence.insert("process".into(), ocsf_process(f, m, 0));
    }
    if x.container_id.is_some() || x.container_name.is_some() {
        let mut c = Map::new();
        if let Some(id) = x.container_id {
            c.insert("uid".into(), json!(id));
        }
        if let Some(n) = x.container_name {
            c.insert("name".into(), json!(n));
        }
        if let Some(i) = x.image {
            let (repo, tag) = split_image(i);
            let mut img = Map::new();
            img.insert("name".into(), json!(repo));
            if let Some(t) = tag {
                img.insert("tag".into(), json!(t));
            }
            if let Some(id) = x.image_id {
                img.insert("uid".into(), json!(id));
            }
            c.insert("image".into(), Value::Object(img));
        }
        evidence.insert("container".into(), Value::Object(c));
    }
    if let Some(conn) = f.connections.first() {
        evidence.insert(
            "dst_endpoint".into(),
            json!({"ip": conn.destination_ip, "port": conn.destination_port}),
        );
        evidence.insert(
            "src_endpoint".into(),
            json!({"ip": conn.source_ip, "port": conn.source_port}),
        );
        evidence.insert(
            "connection_info".into(),
            json!({"protocol_name": conn.protocol.to_ascii_lowercase()}),
        );
    }
    let mut resource = Map::new();
    resource.insert("uid".into(), json!(f.resource_name));
    resource.insert(
        "type".into(),
        json!(if x.pod.is_some() {
            "Kubernetes Container"
        } else if x.container_id.is_some() {
            "Container"
        } else {
            "Host"
        }),
    );
    if let Some(n) = x.container_name {
        resource.insert("name".into(), json!(n));
    }
    if let Some(ns) = x.ns {
        resource.insert("namespace".into(), json!(ns));
    }
    let mut unmapped = Map::new();
    for (k, v) in &f.source_properties {
        unmapped.insert(k.clone(), v.clone());
    }
    unmapped.insert("scc_name".into(), json!(f.name));
    unmapped.insert("scc_parent".into(), json!(f.parent));
    if let Some(pod) = x.pod {
        unmapped.insert("k8s_pod_name".into(), json!(pod));
    }
    json!({
        "class_uid": 2004,
        "class_name": "Detection Finding",
        "category_uid": 2,
        "category_name": "Findings",
        "activity_id": activity_id,
        "activity_name": activity,
        "type_uid": 2004 * 100 + activity_id,
        "type_name": format!("Detection Finding: {activity}"),
        "severity_id": sev_id,
        "severity": sev,
        "status_id": status_id,
        "status": status,
        "time": ms(&f.event_time),
        "message": f.description,
        "count": f.count(),
        "finding_info": finding_info,
        "evidences": [Value::Object(evidence)],
        "resources": [Value::Object(resource)],
        "device": {"hostname": x.node.unwrap_or(&ctx.hostname), "type_id": 0, "type": "Unknown"},
        "metadata": {
            "version": "1.3.0",
            "uid": state_uuid(f),
            "product": {"name": "Ward", "vendor_name": "Ward", "version": ctx.version},
            "original_time": f.event_time,
        },
        "unmapped": unmapped,
    })
}

/// Syslog facility codes by name (RFC 5424 table 1).
pub fn facility_code(name: &str) -> Option<u8> {
    let n = match name {
        "kern" => 0,
        "user" => 1,
        "mail" => 2,
        "daemon" => 3,
        "auth" => 4,
        "syslog" => 5,
        "lpr" => 6,
        "news" => 7,
        "uucp" => 8,
        "cron" => 9,
        "authpriv" => 10,
        "ftp" => 11,
        "local0" => 16,
        "local1" => 17,
        "local2" => 18,
        "local3" => 19,
        "local4" => 20,
        "local5" => 21,
        "local6" => 22,
        "local7" => 23,
        _ => return None,
    };
    Some(n)
}

/// Syslog severity from SCC severity: CRITICAL crit(2), HIGH err(3), MEDIUM warning(4), LOW
/// notice(5).
pub fn syslog_severity(s: Severity) -> u8 {
    match s {
        Severity::Critical => 2,
        Severity::High => 3,
        Severity::Medium => 4,
        Severity::Low => 5,
    }
}

/// A header field of printable ASCII without spaces (RFC 5424 PRINTUSASCII), at most `max`
/// characters; `-` when empty.
fn header_field(s: &str, max: usize) -> String {
    let v: String = s
        .chars()
        .filter(|c| ('!'..='~').contains(c))
        .take(max)
        .collect();
    if v.is_empty() {
        "-".into()
    } else {
        v
    }
}

fn sd_value(s: &str) -> String {
    let s = text::ascii(s);
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// One RFC 5424 message: `<PRI>1 TIMESTAMP HOSTNAME ward PROCID finding [ward@32473 ...] MSG`.
/// TIMESTAMP is the finding's eventTime at microseconds (RFC 5424 allows six fraction digits);
/// MSG is the finding in `format` (ASCII: other characters as `\uXXXX`).
pub fn syslog_5424(f: &Finding, ctx: &Context, facility: u8, format: Format) -> String {
    let x = facts(f);
    let pri = u16::from(facility) * 8 + u16::from(syslog_severity(f.severity));
    let ts = match ward_event::time::parse_rfc3339(&f.event_time) {
        Some(ns) => {
            let t = ward_event::time::format_rfc3339(ns);
            // `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ` → six fraction digits.
            format!("{}Z", &t[..26])
        }
        None => "-".into(),
    };
    let host = header_field(x.node.unwrap_or(&ctx.hostname), 255);
    let procid = if ctx.pid == 0 {
        "-".to_string()
    } else {
        ctx.pid.to_string()
    };
    let sd = format!(
        "[ward@32473 name=\"{}\" category=\"{}\" severity=\"{}\" count=\"{}\"]",
        sd_value(&f.name),
        sd_value(&f.category),
        f.severity.as_str(),
        f.count()
    );
    let msg = render(format, f, ctx);
    format!(
        "<{pri}>1 {ts} {host} ward {procid} finding {sd} {}",
        text::ascii(&msg)
    )
}
