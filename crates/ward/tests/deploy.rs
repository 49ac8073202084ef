//! Static tests of the packaging (docs/deploy.md): the Helm chart in `deploy/helm/ward` and
//! `deploy/Containerfile`. No cluster and no `helm` binary exist here (helm is not packaged
//! in Debian), so the chart is rendered by a small renderer for the subset of Helm's template
//! language the chart uses (`{{ .Values.x }}`, `{{ .Release.Name }}`, `{{ .Chart.* }}`, `if` /
//! `else` / `end`, `{{-`/`-}}` trimming, and the functions `quote`, `toYaml`, `toToml`,
//! `nindent`, `indent`, `sha256sum`, `required`). Anything else in a template is an error
//! here, so the chart cannot drift into constructs these tests do not understand.
//!
//! The rendered manifests are parsed as YAML and checked: required fields, selectors against
//! labels, images, probes against container ports, Services against pods, and that every path
//! the agent's rendered configuration uses is inside a volumeMount of the agent container
//! (removing any one mount makes the check fail: tested below by mutating copies). The
//! rendered `ward.toml`s are validated by the real binary (`ward config check`).

use serde_yaml::{Mapping, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn chart_dir() -> PathBuf {
    repo().join("deploy/helm/ward")
}

// ---------------------------------------------------------------------------------------------
// The renderer.

#[derive(Debug)]
enum Node {
    Text(String),
    Expr(String),
    If(String, Vec<Node>, Vec<Node>),
}

/// Splits a template into text and actions, applying `{{-` and `-}}` trimming.
fn lex(tpl: &str) -> Result<Vec<(bool, String)>, String> {
    let mut out: Vec<(bool, String)> = Vec::new();
    let mut rest = tpl;
    let mut trim_next = false;
    while let Some(start) = rest.find("{{") {
        let mut text = rest[..start].to_string();
        if trim_next {
            text = text.trim_start().to_string();
        }
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| format!("unclosed action at {:?}", &rest[start..]))?;
        let mut action = &after[..end];
        if let Some(a) = action.strip_prefix('-') {
            text = text.trim_end().to_string();
            action = a;
        }
        trim_next = false;
        if let Some(a) = action.strip_suffix('-') {
            trim_next = true;
            action = a;
        }
        out.push((false, text));
        out.push((true, action.trim().to_string()));
        rest = &after[end + 2..];
    }
    let mut text = rest.to_string();
    if trim_next {
        text = text.trim_start().to_string();
    }
    out.push((false, text));
    Ok(out)
}

fn parse(tokens: &[(bool, String)]) -> Result<Vec<Node>, String> {
    fn block(
        tokens: &[(bool, String)],
        i: &mut usize,
        top: bool,
    ) -> Result<(Vec<Node>, Option<String>), String> {
        let mut nodes = Vec::new();
        while *i < tokens.len() {
            let (is_action, s) = &tokens[*i];
            *i += 1;
            if !is_action {
                nodes.push(Node::Text(s.clone()));
                continue;
            }
            if let Some(cond) = s.strip_prefix("if ") {
                let (then, ended) = block(tokens, i, false)?;
                let otherwise = match ended.as_deref() {
                    Some("else") => {
                        let (e, ended) = block(tokens, i, false)?;
                        if ended.as_deref() != Some("end") {
                            return Err(format!("`if {cond}`: else without end"));
                        }
                        e
                    }
                    Some("end") => Vec::new(),
                    _ => return Err(format!("`if {cond}` without end")),
                };
                nodes.push(Node::If(cond.trim().to_string(), then, otherwise));
            } else if s == "else" || s == "end" {
                if top {
                    return Err(format!("`{s}` without if"));
                }
                return Ok((nodes, Some(s.clone())));
            } else if s.starts_with("/*") {
                // a comment
            } else {
                nodes.push(Node::Expr(s.clone()));
            }
        }
        Ok((nodes, None))
    }
    let mut i = 0;
    Ok(block(tokens, &mut i, true)?.0)
}

struct Ctx {
    values: Value,
    release: String,
    namespace: String,
    chart: Value,
}

fn lookup<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    let mut v = root;
    for k in path.split('.').filter(|k| !k.is_empty()) {
        v = v.get(k)?;
    }
    Some(v)
}

/// Words of one pipeline command; string literals keep their quotes off.
fn words(cmd: &str) -> Result<Vec<(bool, String)>, String> {
    let mut out = Vec::new();
    let mut chars = cmd.trim().chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' {
            chars.next();
            let mut s = String::new();
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => s.push(chars.next().ok_or("dangling escape")?),
                    Some(c) => s.push(c),
                    None => return Err(format!("unclosed string in {cmd:?}")),
                }
            }
            out.push((true, s));
        } else {
            let mut s = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                s.push(c);
                chars.next();
            }
            out.push((false, s));
        }
    }
    Ok(out)
}

fn split_pipes(expr: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut in_str = false;
    for c in expr.chars() {
        match c {
            '"' => {
                in_str = !in_str;
                parts.last_mut().unwrap().push(c);
            }
            '|' if !in_str => parts.push(String::new()),
            _ => parts.last_mut().unwrap().push(c),
        }
    }
    parts
}

fn term(ctx: &Ctx, (literal, w): &(bool, String)) -> Result<Value, String> {
    if *literal {
        return Ok(Value::String(w.clone()));
    }
    if let Ok(n) = w.parse::<i64>() {
        return Ok(Value::Number(n.into()));
    }
    if let Some(p) = w.strip_prefix(".Values.") {
        return lookup(&ctx.values, p)
            .cloned()
            .ok_or_else(|| format!("{w}: no such value in values.yaml"));
    }
    if let Some(p) = w.strip_prefix(".Chart.") {
        return lookup(&ctx.chart, p)
            .cloned()
            .ok_or_else(|| format!("{w}: no such Chart.yaml field"));
    }
    match w.as_str() {
        ".Release.Name" => Ok(Value::String(ctx.release.clone())),
        ".Release.Namespace" => Ok(Value::String(ctx.namespace.clone())),
        _ => Err(format!("unsupported term {w:?}")),
    }
}

fn scalar(v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(format!("not a scalar: {other:?}")),
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Sequence(s) => !s.is_empty(),
        Value::Mapping(m) => !m.is_empty(),
        Value::Tagged(_) => true,
    }
}

fn indent(n: usize, s: &str) -> String {
    let pad = " ".repeat(n);
    format!("{pad}{}", s.replace('\n', &format!("\n{pad}")))
}

fn call(
    ctx: &Ctx,
    f: &str,
    args: &[(bool, String)],
    piped: Option<Value>,
) -> Result<Value, String> {
    let mut vals = args
        .iter()
        .map(|a| term(ctx, a))
        .collect::<Result<Vec<_>, _>>()?;
    vals.extend(piped);
    let one = |vals: &[Value]| -> Result<Value, String> {
        match vals {
            [v] => Ok(v.clone()),
            _ => Err(format!("{f}: expected 1 argument, got {}", vals.len())),
        }
    };
    let s = |v: String| Ok(Value::String(v));
    match f {
        "quote" => {
            let v = scalar(&one(&vals)?)?;
            s(format!(
                "\"{}\"",
                v.replace('\\', "\\\\").replace('"', "\\\"")
            ))
        }
        "toYaml" => {
            let v = one(&vals)?;
            let y = serde_yaml::to_string(&v).map_err(|e| e.to_string())?;
            s(y.trim_end_matches('\n').to_string())
        }
        "toToml" => {
            let v = one(&vals)?;
            let t = toml::Value::try_from(&v).map_err(|e| format!("toToml: {e}"))?;
            s(toml::to_string(&t).map_err(|e| format!("toToml: {e}"))?)
        }
        "sha256sum" => {
            let v = scalar(&one(&vals)?)?;
            s(Sha256::digest(v.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect())
        }
        "nindent" | "indent" => match vals.as_slice() {
            [Value::Number(n), v] => {
                let n = n.as_u64().ok_or("indent: bad width")? as usize;
                let body = indent(n, &scalar(v)?);
                s(if f == "nindent" {
                    format!("\n{body}")
                } else {
                    body
                })
            }
            _ => Err(format!("{f}: expected a width and a string")),
        },
        "required" => match vals.as_slice() {
            [Value::String(msg), v] => {
                if truthy(v) {
                    Ok(v.clone())
                } else {
                    Err(format!("required: {msg}"))
                }
            }
            _ => Err("required: expected a message and a value".into()),
        },
        _ => Err(format!("unsupported function {f:?}")),
    }
}

fn eval(ctx: &Ctx, expr: &str) -> Result<Value, String> {
    let mut acc: Option<Value> = None;
    for (i, cmd) in split_pipes(expr).iter().enumerate() {
        let w = words(cmd)?;
        let Some(((lit, head), args)) = w.split_first() else {
            return Err(format!("empty command in {expr:?}"));
        };
        acc = Some(
            if i == 0 && (*lit || head.starts_with('.') || args.is_empty()) {
                if !args.is_empty() {
                    return Err(format!("unexpected arguments after {head} in {expr:?}"));
                }
                if !*lit && !head.starts_with('.') && head.parse::<i64>().is_err() {
                    call(ctx, head, &[], None)?
                } else {
                    term(ctx, &(*lit, head.clone()))?
                }
            } else {
                call(ctx, head, args, acc.take())?
            },
        );
    }
    acc.ok_or_else(|| format!("empty action {expr:?}"))
}

fn exec(ctx: &Ctx, nodes: &[Node], out: &mut String) -> Result<(), String> {
    for n in nodes {
        match n {
            Node::Text(t) => out.push_str(t),
            Node::Expr(e) => {
                out.push_str(&scalar(&eval(ctx, e)?).map_err(|m| format!("{e}: {m}"))?)
            }
            Node::If(c, then, otherwise) => {
                let branch = if truthy(&eval(ctx, c)?) {
                    then
                } else {
                    otherwise
                };
                exec(ctx, branch, out)?;
            }
        }
    }
    Ok(())
}

fn render_template(tpl: &str, ctx: &Ctx) -> Result<String, String> {
    let nodes = parse(&lex(tpl)?)?;
    let mut out = String::new();
    exec(ctx, &nodes, &mut out)?;
    Ok(out)
}

fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(bv) => merge(bv, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// The templates of a chart directory, by file name.
fn templates(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir.join("templates")).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if name.ends_with(".yaml") && !name.starts_with('_') {
            out.insert(name, std::fs::read_to_string(&p).unwrap());
        }
    }
    out
}

/// One rendered manifest and the template it came from.
#[derive(Clone, Debug)]
struct Doc {
    template: String,
    v: Value,
}

/// Renders `templates` with the chart's values.yaml overlaid by `overrides` (YAML text), as
/// `helm template ward-test . -n security` would, and parses every document.
fn render_with(templates: &BTreeMap<String, String>, overrides: &str) -> Result<Vec<Doc>, String> {
    let dir = chart_dir();
    let mut values: Value =
        serde_yaml::from_str(&std::fs::read_to_string(dir.join("values.yaml")).unwrap()).unwrap();
    let over: Value = serde_yaml::from_str(overrides).unwrap();
    if !over.is_null() {
        merge(&mut values, &over);
    }
    let chart: Value =
        serde_yaml::from_str(&std::fs::read_to_string(dir.join("Chart.yaml")).unwrap()).unwrap();
    let chart = {
        // Helm capitalises Chart.yaml's fields in templates.
        let mut m = Mapping::new();
        for (k, v) in chart.as_mapping().unwrap() {
            let k = k.as_str().unwrap();
            let mut c = k.chars();
            let cap: String = c.next().unwrap().to_uppercase().chain(c).collect();
            m.insert(Value::String(cap), v.clone());
        }
        Value::Mapping(m)
    };
    let ctx = Ctx {
        values,
        release: "ward-test".into(),
        namespace: "security".into(),
        chart,
    };
    let mut docs = Vec::new();
    for (name, tpl) in templates {
        let text = render_template(tpl, &ctx).map_err(|e| format!("{name}: {e}"))?;
        for part in text.split("\n---") {
            let v: Value = serde_yaml::from_str(part)
                .map_err(|e| format!("{name}: rendered YAML does not parse: {e}\n{part}"))?;
            if !v.is_null() {
                docs.push(Doc {
                    template: name.clone(),
                    v,
                });
            }
        }
    }
    Ok(docs)
}

/// The overrides every install needs (docs/deploy.md): the collector's write token.
const TOKEN: &str = "collector: {secret: {writeToken: 0123456789abcdef0123456789abcdef}}";

fn render(overrides: &str) -> Vec<Doc> {
    let mut merged: Value = serde_yaml::from_str(TOKEN).unwrap();
    let extra: Value = serde_yaml::from_str(overrides).unwrap();
    if !extra.is_null() {
        merge(&mut merged, &extra);
    }
    render_with(
        &templates(&chart_dir()),
        &serde_yaml::to_string(&merged).unwrap(),
    )
    .unwrap_or_else(|e| panic!("rendering the chart: {e}"))
}

// ---------------------------------------------------------------------------------------------
// The checks. Each returns the problems found, so a mutated copy can be shown to fail.

fn s<'a>(v: &'a Value, path: &str) -> Option<&'a str> {
    lookup(v, path).and_then(Value::as_str)
}

fn seq<'a>(v: &'a Value, path: &str) -> &'a [Value] {
    lookup(v, path)
        .and_then(Value::as_sequence)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn kind_name(d: &Doc) -> String {
    format!(
        "{} {} ({})",
        s(&d.v, "kind").unwrap_or("?"),
        s(&d.v, "metadata.name").unwrap_or("?"),
        d.template
    )
}

fn find<'a>(docs: &'a [Doc], kind: &str, name: &str) -> Option<&'a Doc> {
    docs.iter()
        .find(|d| s(&d.v, "kind") == Some(kind) && s(&d.v, "metadata.name") == Some(name))
}

fn dns_label(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 63
        && n.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !n.starts_with('-')
        && !n.ends_with('-')
}

/// The port number a probe's or Service's `port`/`targetPort` names in `container`.
fn port_of(container: &Value, port: &Value) -> Option<u64> {
    let ports = seq(container, "ports");
    match port {
        Value::Number(n) => ports
            .iter()
            .find(|p| lookup(p, "containerPort").and_then(Value::as_u64) == n.as_u64())
            .and(n.as_u64()),
        Value::String(name) => ports
            .iter()
            .find(|p| s(p, "name") == Some(name))
            .and_then(|p| lookup(p, "containerPort").and_then(Value::as_u64)),
        _ => None,
    }
}

fn labels_match(selector: &Value, labels: &Value) -> bool {
    selector
        .as_mapping()
        .is_some_and(|sel| !sel.is_empty() && sel.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

/// Required fields, names, selectors, images, probes, Services and references.
fn check_manifests(docs: &[Doc]) -> Vec<String> {
    let mut errs = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for d in docs {
        let what = kind_name(d);
        for f in ["apiVersion", "kind", "metadata.name"] {
            if s(&d.v, f).is_none_or(str::is_empty) {
                errs.push(format!("{what}: {f} missing"));
            }
        }
        let name = s(&d.v, "metadata.name").unwrap_or("");
        if !dns_label(name) {
            errs.push(format!("{what}: name {name:?} is not a DNS label"));
        }
        if s(&d.v, "metadata.namespace") != Some("security") {
            errs.push(format!(
                "{what}: metadata.namespace is not the release namespace"
            ));
        }
        if !seen.insert((s(&d.v, "kind").map(String::from), name.to_string())) {
            errs.push(format!("{what}: defined twice"));
        }
        if !matches!(
            s(&d.v, "kind"),
            Some(
                "DaemonSet" | "Deployment" | "Service" | "ConfigMap" | "Secret" | "ServiceMonitor"
            )
        ) {
            errs.push(format!("{what}: unexpected kind"));
        }
    }
    for d in docs {
        let what = kind_name(d);
        match s(&d.v, "kind") {
            Some("DaemonSet" | "Deployment") => {
                if s(&d.v, "apiVersion") != Some("apps/v1") {
                    errs.push(format!("{what}: apiVersion is not apps/v1"));
                }
                let labels = lookup(&d.v, "spec.template.metadata.labels").unwrap_or(&Value::Null);
                let sel = lookup(&d.v, "spec.selector.matchLabels").unwrap_or(&Value::Null);
                if !labels_match(sel, labels) {
                    errs.push(format!(
                        "{what}: selector {sel:?} does not match the pod labels {labels:?}"
                    ));
                }
                let containers = seq(&d.v, "spec.template.spec.containers");
                if containers.is_empty() {
                    errs.push(format!("{what}: no containers"));
                }
                let volumes: Vec<&str> = seq(&d.v, "spec.template.spec.volumes")
                    .iter()
                    .filter_map(|v| s(v, "name"))
                    .collect();
                for c in containers {
                    let cn = s(c, "name").unwrap_or("?");
                    let image = s(c, "image").unwrap_or("");
                    if image.is_empty() || !image.contains(':') || image.ends_with(':') {
                        errs.push(format!(
                            "{what}: container {cn}: image {image:?} has no tag"
                        ));
                    }
                    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
                        let Some(p) = c.get(probe) else { continue };
                        let port = lookup(p, "httpGet.port").unwrap_or(&Value::Null);
                        if port_of(c, port).is_none() {
                            errs.push(format!(
                                "{what}: {cn}.{probe} port {port:?} is not a container port"
                            ));
                        }
                    }
                    for probe in ["livenessProbe", "readinessProbe"] {
                        if s(c, &format!("{probe}.httpGet.path")) != Some("/healthz") {
                            errs.push(format!("{what}: {cn}.{probe} is not GET /healthz"));
                        }
                    }
                    for r in [
                        "requests.cpu",
                        "requests.memory",
                        "limits.cpu",
                        "limits.memory",
                    ] {
                        if lookup(c, &format!("resources.{r}")).is_none() {
                            errs.push(format!("{what}: {cn}: resources.{r} missing"));
                        }
                    }
                    for m in seq(c, "volumeMounts") {
                        let vn = s(m, "name").unwrap_or("?");
                        if !volumes.contains(&vn) {
                            errs.push(format!("{what}: {cn}: volumeMount {vn} has no volume"));
                        }
                    }
                    for e in seq(c, "env") {
                        let Some(r) = lookup(e, "valueFrom.secretKeyRef") else {
                            continue;
                        };
                        let sn = s(r, "name").unwrap_or("");
                        let optional = lookup(r, "optional").and_then(Value::as_bool) == Some(true);
                        match find(docs, "Secret", sn) {
                            Some(sec) => {
                                let key = s(r, "key").unwrap_or("");
                                if lookup(&sec.v, &format!("stringData.{key}")).is_none()
                                    && !optional
                                {
                                    errs.push(format!(
                                        "{what}: {cn}: secret {sn} has no key {key}"
                                    ));
                                }
                            }
                            None => {
                                errs.push(format!("{what}: {cn}: secret {sn:?} is not rendered"))
                            }
                        }
                    }
                }
                for v in seq(&d.v, "spec.template.spec.volumes") {
                    if let Some(cm) = s(v, "configMap.name") {
                        if find(docs, "ConfigMap", cm).is_none() {
                            errs.push(format!("{what}: volume configMap {cm} is not rendered"));
                        }
                    }
                }
            }
            Some("Service") => {
                let sel = lookup(&d.v, "spec.selector").unwrap_or(&Value::Null);
                let pods: Vec<&Doc> = docs
                    .iter()
                    .filter(|w| {
                        matches!(s(&w.v, "kind"), Some("DaemonSet" | "Deployment"))
                            && labels_match(
                                sel,
                                lookup(&w.v, "spec.template.metadata.labels")
                                    .unwrap_or(&Value::Null),
                            )
                    })
                    .collect();
                if pods.is_empty() {
                    errs.push(format!("{what}: selector {sel:?} selects no pod template"));
                }
                for p in seq(&d.v, "spec.ports") {
                    let tp = lookup(p, "targetPort").unwrap_or(&Value::Null);
                    for w in &pods {
                        let ok = seq(&w.v, "spec.template.spec.containers")
                            .iter()
                            .any(|c| port_of(c, tp).is_some());
                        if !ok {
                            errs.push(format!(
                                "{what}: targetPort {tp:?} is not a port of {}",
                                kind_name(w)
                            ));
                        }
                    }
                }
            }
            _ => {}
        }
    }
    errs
}

/// The value following `flag` in a container's command.
fn arg<'a>(c: &'a Value, flag: &str) -> Option<&'a str> {
    let cmd = seq(c, "command");
    cmd.iter()
        .position(|a| a.as_str() == Some(flag))
        .and_then(|i| cmd.get(i + 1))
        .and_then(Value::as_str)
}

/// Where `path` (inside the container) lives: the mount holding it, and the volume.
fn mount_for<'a>(pod: &'a Value, c: &'a Value, path: &str) -> Option<(&'a Value, &'a Value)> {
    let m = seq(c, "volumeMounts")
        .iter()
        .filter(|m| {
            s(m, "mountPath").is_some_and(|mp| {
                Path::new(path).starts_with(mp)
                    // a subPath mount backs exactly its own path
                    && (m.get("subPath").is_none() || Path::new(path) == Path::new(mp))
            })
        })
        .max_by_key(|m| s(m, "mountPath").map_or(0, str::len))?;
    let v = seq(pod, "volumes")
        .iter()
        .find(|v| s(v, "name") == s(m, "name"))?;
    Some((m, v))
}

/// The node path a container path maps to through a hostPath volume.
fn host_path(m: &Value, v: &Value, path: &str) -> Option<PathBuf> {
    let hp = s(v, "hostPath.path")?;
    let rel = Path::new(path).strip_prefix(s(m, "mountPath")?).ok()?;
    Some(Path::new(hp).join(rel))
}

fn strings(t: &toml::Value, path: &str) -> Vec<String> {
    let mut v = Some(t);
    for k in path.split('.') {
        v = v.and_then(|x| x.get(k));
    }
    v.and_then(toml::Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The agent DaemonSet against its own rendered configuration.
fn check_agent(docs: &[Doc]) -> Vec<String> {
    let mut errs = Vec::new();
    let Some(ds) = find(docs, "DaemonSet", "ward-test-agent") else {
        return vec!["no agent DaemonSet".into()];
    };
    let pod = lookup(&ds.v, "spec.template.spec").unwrap();
    let Some(c) = seq(pod, "containers")
        .iter()
        .find(|c| s(c, "name") == Some("agent"))
    else {
        return vec!["no agent container".into()];
    };
    if lookup(pod, "hostPID").and_then(Value::as_bool) != Some(true) {
        errs.push("agent: hostPID is not true".into());
    }
    let node_env = seq(c, "env")
        .iter()
        .find(|e| s(e, "name") == Some("WARD_NODE_NAME"));
    if node_env.and_then(|e| s(e, "valueFrom.fieldRef.fieldPath")) != Some("spec.nodeName") {
        errs.push("agent: WARD_NODE_NAME is not spec.nodeName from the downward API".into());
    }
    if !seq(pod, "tolerations")
        .iter()
        .any(|t| s(t, "operator") == Some("Exists") && t.get("key").is_none())
    {
        errs.push("agent: no toleration of every taint".into());
    }
    // Probes and the metrics port are the port the agent is told to listen on.
    let listen = arg(c, "--metrics-addr").unwrap_or("");
    let port: Option<u64> = listen.rsplit_once(':').and_then(|(_, p)| p.parse().ok());
    if !listen.starts_with("0.0.0.0:") || port.is_none() {
        errs.push(format!(
            "agent: --metrics-addr {listen:?} does not listen on the pod IP"
        ));
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        let p = lookup(c, &format!("{probe}.httpGet.port")).unwrap_or(&Value::Null);
        if port_of(c, p) != port {
            errs.push(format!(
                "agent: {probe} does not call the metrics port {port:?}"
            ));
        }
    }
    let ann = lookup(&ds.v, "spec.template.metadata.annotations");
    if let Some(p) = ann
        .and_then(|a| a.get("prometheus.io/port"))
        .and_then(Value::as_str)
    {
        if p.parse().ok() != port {
            errs.push(format!(
                "agent: prometheus.io/port {p} is not the metrics port {port:?}"
            ));
        }
    }
    // Privileges: privileged, or the capabilities the agent needs.
    let sc = c.get("securityContext").unwrap_or(&Value::Null);
    let privileged = lookup(sc, "privileged").and_then(Value::as_bool) == Some(true);
    if !privileged {
        let add: Vec<&str> = seq(sc, "capabilities.add")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        for cap in [
            "BPF",
            "PERFMON",
            "SYS_ADMIN",
            "SYS_PTRACE",
            "SYS_RESOURCE",
            "DAC_READ_SEARCH",
            "KILL",
        ] {
            if !add.contains(&cap) {
                errs.push(format!(
                    "agent: capability {cap} not added (and not privileged)"
                ));
            }
        }
        if !seq(sc, "capabilities.drop")
            .iter()
            .any(|d| d.as_str() == Some("ALL"))
        {
            errs.push("agent: capabilities are not dropped to the list".into());
        }
    }
    // The configuration the agent reads, and every path in it.
    let Some(config) = arg(c, "--config") else {
        errs.push("agent: no --config".into());
        return errs;
    };
    let cm_name = mount_for(pod, c, config).and_then(|(_, v)| s(v, "configMap.name"));
    let Some(toml_text) = cm_name
        .and_then(|n| find(docs, "ConfigMap", n))
        .and_then(|cm| cm.v.get("data")?.get("ward.toml")?.as_str())
    else {
        errs.push(format!(
            "agent: --config {config} is not a mounted ConfigMap's ward.toml"
        ));
        return errs;
    };
    let cfg: toml::Value = match toml::from_str(toml_text) {
        Ok(c) => c,
        Err(e) => return vec![format!("agent: ward.toml does not parse: {e}")],
    };
    let db = arg(c, "--db").unwrap_or("");
    let mut paths: Vec<(String, &str)> = vec![
        (config.to_string(), "--config"),
        (db.to_string(), "--db"),
        ("/sys/fs/cgroup".into(), "cgroup2 tree"),
        ("/sys/kernel/btf/vmlinux".into(), "kernel BTF"),
        ("/sys/kernel/tracing".into(), "tracefs"),
    ];
    for key in [
        "agent.docker_sockets",
        "agent.cri_sockets",
        "agent.podman_storage",
        "detectors.rules.dirs",
    ] {
        for p in strings(&cfg, key) {
            paths.push((p, key));
        }
    }
    if let Some(out) = arg(c, "--output").and_then(|o| o.strip_prefix("jsonl:")) {
        paths.push((out.to_string(), "--output jsonl"));
    }
    // The stock defaults: where the runtimes really put their sockets and stores on a node.
    let stock: toml::Value =
        toml::from_str(&std::fs::read_to_string(repo().join("config/ward.toml")).unwrap()).unwrap();
    for (p, what) in &paths {
        let Some((m, v)) = mount_for(pod, c, p) else {
            errs.push(format!(
                "agent: {what} path {p} is not inside any volumeMount"
            ));
            continue;
        };
        let hp = host_path(m, v, p);
        match *what {
            "--db" | "--output jsonl"
                if v.get("hostPath").is_none()
                    || lookup(m, "readOnly").and_then(Value::as_bool) == Some(true) =>
            {
                errs.push(format!(
                    "agent: {what} {p} is not on a writable hostPath (lost at restart)"
                ));
            }
            "cgroup2 tree" | "kernel BTF" | "tracefs" if hp.as_deref() != Some(Path::new(p)) => {
                errs.push(format!("agent: {what} {p} is not the node's {p} ({hp:?})"));
            }
            "agent.docker_sockets" | "agent.cri_sockets" | "agent.podman_storage" => {
                let defaults = strings(&stock, what);
                if !hp
                    .as_ref()
                    .is_some_and(|h| defaults.iter().any(|d| Path::new(d) == h))
                {
                    errs.push(format!(
                        "agent: {what} {p} maps to the node's {hp:?}, not one of the runtime's paths {defaults:?}"
                    ));
                }
            }
            _ => {}
        }
    }
    errs
}

/// The collector Deployment: non-root, its store mounted, tokens and database from the Secret.
fn check_collector(docs: &[Doc]) -> Vec<String> {
    let mut errs = Vec::new();
    let Some(dep) = find(docs, "Deployment", "ward-test-collector") else {
        return vec!["no collector Deployment".into()];
    };
    let pod = lookup(&dep.v, "spec.template.spec").unwrap();
    let c = &seq(pod, "containers")[0];
    if lookup(pod, "securityContext.runAsNonRoot").and_then(Value::as_bool) != Some(true)
        || lookup(pod, "securityContext.runAsUser")
            .and_then(Value::as_u64)
            .is_none_or(|u| u == 0)
    {
        errs.push("collector: does not run as a non-root user".into());
    }
    if !seq(c, "securityContext.capabilities.drop")
        .iter()
        .any(|d| d.as_str() == Some("ALL"))
    {
        errs.push("collector: capabilities not dropped".into());
    }
    if seq(c, "command").get(1).and_then(Value::as_str) != Some("serve") {
        errs.push("collector: does not run `ward serve`".into());
    }
    for (p, what) in [(arg(c, "--db"), "--db"), (arg(c, "--config"), "--config")] {
        match p {
            Some(p) if mount_for(pod, c, p).is_some() => {}
            _ => errs.push(format!(
                "collector: {what} {p:?} is not inside a volumeMount"
            )),
        }
    }
    let env = |name: &str| {
        seq(c, "env")
            .iter()
            .find(|e| s(e, "name") == Some(name))
            .and_then(|e| s(e, "valueFrom.secretKeyRef.key"))
            .map(String::from)
    };
    for (var, key) in [
        ("WARD_API_WRITE_TOKEN", "write-token"),
        ("WARD_API_READ_TOKEN", "read-token"),
        ("WARD_DATABASE_URL", "database-url"),
        ("WARD_ENROLLMENT_SECRET", "enrollment-secret"),
    ] {
        if env(var).as_deref() != Some(key) {
            errs.push(format!("collector: {var} is not the Secret's {key}"));
        }
    }
    let port = arg(c, "--listen")
        .and_then(|l| l.rsplit_once(':'))
        .and_then(|(_, p)| p.parse::<u64>().ok());
    let probe = lookup(c, "livenessProbe.httpGet.port").unwrap_or(&Value::Null);
    if port.is_none() || port_of(c, probe) != port {
        errs.push(format!(
            "collector: probes do not call the --listen port {port:?}"
        ));
    }
    errs
}

fn all_checks(docs: &[Doc]) -> Vec<String> {
    let mut e = check_manifests(docs);
    e.extend(check_agent(docs));
    e.extend(check_collector(docs));
    e
}

fn agent_container_mut(docs: &mut [Doc]) -> &mut Value {
    let ds = docs
        .iter_mut()
        .find(|d| s(&d.v, "kind") == Some("DaemonSet"))
        .unwrap();
    ds.v.get_mut("spec")
        .and_then(|v| v.get_mut("template"))
        .and_then(|v| v.get_mut("spec"))
        .and_then(|v| v.get_mut("containers"))
        .and_then(|v| v.get_mut(0))
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// The tests.

#[test]
fn the_chart_renders_and_every_manifest_passes_the_checks() {
    let docs = render("");
    // `WARD_PRINT_CHART=1 cargo test -p ward --test deploy -- --nocapture the_chart_renders`
    // prints what was checked, as `helm template` would.
    if std::env::var_os("WARD_PRINT_CHART").is_some() {
        for d in &docs {
            println!(
                "---\n# Source: ward/templates/{}\n{}",
                d.template,
                serde_yaml::to_string(&d.v).unwrap()
            );
        }
    }
    let kinds: Vec<String> = docs.iter().map(kind_name).collect();
    for want in [
        "DaemonSet ward-test-agent",
        "ConfigMap ward-test-agent ",
        "ConfigMap ward-test-agent-rules",
        "Deployment ward-test-collector",
        "Service ward-test-collector",
        "Secret ward-test-collector",
        "ConfigMap ward-test-collector",
    ] {
        assert!(
            kinds.iter().any(|k| k.starts_with(want)),
            "{want} not rendered: {kinds:#?}"
        );
    }
    let errs = all_checks(&docs);
    assert!(errs.is_empty(), "{errs:#?}");
}

#[test]
fn every_toggle_renders_valid_manifests() {
    for over in [
        "agent: {privileged: true}",
        "metrics: {serviceMonitor: {enabled: true}, podAnnotations: false}",
        "collector: {console: false, replicas: 2, env: [{name: WARD_LOG, value: debug}]}",
        "agent: {env: [{name: WARD_LOG, value: debug}], podAnnotations: {a: b}, rules: {'x.toml': 'y'}}",
        "imagePullSecrets: [{name: regcred}]",
        "agent: {output: 'jsonl:/var/lib/ward/findings.jsonl'}",
        "agent: {central: {enabled: true}}",
    ] {
        let docs = render(over);
        let errs = all_checks(&docs);
        assert!(errs.is_empty(), "with {over}: {errs:#?}");
    }
    // Components can be left out.
    let docs = render("collector: {enabled: false}");
    assert!(find(&docs, "Deployment", "ward-test-collector").is_none());
    assert!(check_agent(&docs).is_empty() && check_manifests(&docs).is_empty());
    let docs = render("agent: {enabled: false}");
    assert!(find(&docs, "DaemonSet", "ward-test-agent").is_none());
    assert!(check_collector(&docs).is_empty() && check_manifests(&docs).is_empty());
}

#[test]
fn the_central_output_points_agents_at_the_collector_with_the_enrollment_secret() {
    let docs = render("agent: {central: {enabled: true}}");
    let ds = find(&docs, "DaemonSet", "ward-test-agent").unwrap();
    let c = &seq(&ds.v, "spec.template.spec.containers")[0];
    let cmd: Vec<&str> = seq(c, "command").iter().filter_map(Value::as_str).collect();
    assert!(
        cmd.windows(2)
            .any(|w| w == ["--output", "central:http://ward-test-collector:8080"]),
        "{cmd:?}"
    );
    let env = seq(c, "env")
        .iter()
        .find(|e| s(e, "name") == Some("WARD_ENROLLMENT_SECRET"))
        .expect("WARD_ENROLLMENT_SECRET");
    assert_eq!(
        s(env, "valueFrom.secretKeyRef.name"),
        Some("ward-test-collector")
    );
    assert_eq!(
        s(env, "valueFrom.secretKeyRef.key"),
        Some("enrollment-secret")
    );
    let docs = render("agent: {central: {enabled: true, url: 'https://a:1,https://b:1'}}");
    let ds = find(&docs, "DaemonSet", "ward-test-agent").unwrap();
    let c = &seq(&ds.v, "spec.template.spec.containers")[0];
    assert!(seq(c, "command")
        .iter()
        .any(|v| v.as_str() == Some("central:https://a:1,https://b:1")));
    // Off by default.
    let docs = render("");
    let ds = find(&docs, "DaemonSet", "ward-test-agent").unwrap();
    let c = &seq(&ds.v, "spec.template.spec.containers")[0];
    assert!(!seq(c, "env")
        .iter()
        .any(|e| s(e, "name") == Some("WARD_ENROLLMENT_SECRET")));
}

#[test]
fn the_servicemonitor_scrapes_the_agents_metrics_port() {
    let docs = render("metrics: {serviceMonitor: {enabled: true}}");
    let sm = find(&docs, "ServiceMonitor", "ward-test-agent").expect("ServiceMonitor");
    let svc = find(&docs, "Service", "ward-test-agent-metrics").expect("metrics Service");
    assert_eq!(s(&sm.v, "apiVersion"), Some("monitoring.coreos.com/v1"));
    assert!(labels_match(
        lookup(&sm.v, "spec.selector.matchLabels").unwrap(),
        lookup(&svc.v, "metadata.labels").unwrap()
    ));
    let port = s(&seq(&sm.v, "spec.endpoints")[0], "port");
    assert!(seq(&svc.v, "spec.ports")
        .iter()
        .any(|p| s(p, "name") == port));
    assert!(render("")
        .iter()
        .all(|d| s(&d.v, "kind") != Some("ServiceMonitor")));
}

#[test]
fn the_privileged_fallback_is_privileged_with_no_capability_list() {
    let docs = render("agent: {privileged: true}");
    let ds = find(&docs, "DaemonSet", "ward-test-agent").unwrap();
    let c = &seq(&ds.v, "spec.template.spec.containers")[0];
    assert_eq!(
        lookup(c, "securityContext.privileged"),
        Some(&Value::Bool(true))
    );
    assert!(lookup(c, "securityContext.capabilities").is_none());
    let docs = render("");
    let ds = find(&docs, "DaemonSet", "ward-test-agent").unwrap();
    let c = &seq(&ds.v, "spec.template.spec.containers")[0];
    assert_eq!(
        lookup(c, "securityContext.privileged"),
        Some(&Value::Bool(false))
    );
    // Without the capabilities (and not privileged) the check fails, naming them.
    let mut docs = render("agent: {capabilities: [BPF]}");
    let errs = check_agent(&docs);
    assert!(errs.iter().any(|e| e.contains("SYS_ADMIN")), "{errs:#?}");
    agent_container_mut(&mut docs)
        .get_mut("securityContext")
        .unwrap()
        .as_mapping_mut()
        .unwrap()
        .insert("privileged".into(), Value::Bool(true));
    assert!(check_agent(&docs).is_empty());
}

#[test]
fn removing_any_agent_mount_fails_the_path_check() {
    let docs = render("");
    let mounts: Vec<String> = seq(agent_container_mut(&mut docs.clone()), "volumeMounts")
        .iter()
        .filter_map(|m| s(m, "name").map(String::from))
        .collect();
    assert!(mounts.len() >= 6, "{mounts:?}");
    for name in &mounts {
        let mut copy = docs.clone();
        let c = agent_container_mut(&mut copy);
        c.get_mut("volumeMounts")
            .and_then(Value::as_sequence_mut)
            .unwrap()
            .retain(|m| s(m, "name") != Some(name));
        let errs = check_agent(&copy);
        assert!(
            errs.iter()
                .any(|e| e.contains("is not inside any volumeMount")
                    || e.contains("not a mounted ConfigMap")),
            "removing mount {name} went unnoticed: {errs:#?}"
        );
    }
    // The same from the template: a copy of the chart without the cgroup mount.
    let mut tpls = templates(&chart_dir());
    let ds = tpls.get_mut("agent-daemonset.yaml").unwrap();
    let cut = "            - name: cgroup\n              mountPath: /sys/fs/cgroup\n              readOnly: true\n";
    assert!(ds.contains(cut));
    *ds = ds.replace(cut, "");
    let docs = render_with(&tpls, TOKEN).unwrap();
    let errs = check_agent(&docs);
    assert!(
        errs.iter()
            .any(|e| e.contains("/sys/fs/cgroup is not inside any volumeMount")),
        "{errs:#?}"
    );
}

#[test]
fn config_paths_outside_the_mounts_or_off_the_runtime_paths_fail() {
    // Without the host root, the runtime sockets in agent.config are not mounted.
    let errs = check_agent(&render("agent: {hostRoot: false}"));
    assert!(
        errs.iter()
            .any(|e| e.contains("/host/run/containerd/containerd.sock is not inside")),
        "{errs:#?}"
    );
    // A socket path that is mounted but is not where containerd puts it on a node.
    let errs = check_agent(&render(
        "agent: {config: {agent: {cri_sockets: [/host/var/run/containerd.sock]}}}",
    ));
    assert!(
        errs.iter()
            .any(|e| e.contains("not one of the runtime's paths")),
        "{errs:#?}"
    );
    // A store that would not survive a restart.
    let mut docs = render("");
    let c = agent_container_mut(&mut docs);
    for m in c
        .get_mut("volumeMounts")
        .and_then(Value::as_sequence_mut)
        .unwrap()
    {
        if s(m, "name") == Some("state") {
            m.as_mapping_mut()
                .unwrap()
                .insert("readOnly".into(), Value::Bool(true));
        }
    }
    let errs = check_agent(&docs);
    assert!(
        errs.iter()
            .any(|e| e.contains("not on a writable hostPath")),
        "{errs:#?}"
    );
}

#[test]
fn broken_selectors_ports_and_probes_are_caught() {
    let docs = render("");
    // A Service selecting nothing.
    let mut copy = docs.clone();
    let svc = copy
        .iter_mut()
        .find(|d| s(&d.v, "kind") == Some("Service"))
        .unwrap();
    svc.v["spec"]["selector"]["app.kubernetes.io/component"] = "nothing".into();
    assert!(check_manifests(&copy)
        .iter()
        .any(|e| e.contains("selects no pod template")));
    // A probe on a port the container does not have.
    let mut copy = docs.clone();
    agent_container_mut(&mut copy)["livenessProbe"]["httpGet"]["port"] = "other".into();
    assert!(check_manifests(&copy)
        .iter()
        .any(|e| e.contains("livenessProbe port")));
    assert!(check_agent(&copy)
        .iter()
        .any(|e| e.contains("livenessProbe does not call")));
    // The metrics port changed in one place only.
    let mut copy = docs.clone();
    let c = agent_container_mut(&mut copy);
    let cmd = c["command"].as_sequence_mut().unwrap();
    let i = cmd
        .iter()
        .position(|a| a.as_str() == Some("--metrics-addr"))
        .unwrap();
    cmd[i + 1] = "0.0.0.0:9999".into();
    assert!(check_agent(&copy)
        .iter()
        .any(|e| e.contains("metrics port")));
    // No node name from the downward API.
    let mut copy = docs.clone();
    agent_container_mut(&mut copy)["env"]
        .as_sequence_mut()
        .unwrap()
        .clear();
    assert!(check_agent(&copy)
        .iter()
        .any(|e| e.contains("WARD_NODE_NAME")));
    // A selector the pod labels do not carry.
    let mut copy = docs.clone();
    let ds = copy
        .iter_mut()
        .find(|d| s(&d.v, "kind") == Some("DaemonSet"))
        .unwrap();
    ds.v["spec"]["selector"]["matchLabels"]["extra"] = "x".into();
    assert!(check_manifests(&copy)
        .iter()
        .any(|e| e.contains("does not match the pod labels")));
    // No image tag.
    let mut copy = docs.clone();
    agent_container_mut(&mut copy)["image"] = "localhost/ward".into();
    assert!(check_manifests(&copy)
        .iter()
        .any(|e| e.contains("has no tag")));
}

#[test]
fn the_collector_write_token_is_required() {
    let err = render_with(&templates(&chart_dir()), "").unwrap_err();
    assert!(
        err.contains("collector.secret.writeToken is required"),
        "{err}"
    );
    // With an existing Secret instead, nothing is required from values.
    let docs = render_with(
        &templates(&chart_dir()),
        "collector: {secret: {create: false, existingName: ward-tokens}}",
    )
    .unwrap();
    assert!(docs.iter().all(|d| s(&d.v, "kind") != Some("Secret")));
    let dep = find(&docs, "Deployment", "ward-test-collector").unwrap();
    let c = &seq(&dep.v, "spec.template.spec.containers")[0];
    assert!(seq(c, "env")
        .iter()
        .all(|e| s(e, "valueFrom.secretKeyRef.name") == Some("ward-tokens")));
}

/// `ward config check` on a rendered ward.toml.
fn config_check(toml_text: &str) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("ward.toml");
    std::fs::write(&p, toml_text).unwrap();
    Command::new(env!("CARGO_BIN_EXE_ward"))
        .args(["config", "check"])
        .arg(&p)
        .output()
        .unwrap()
}

#[test]
fn the_rendered_configurations_pass_ward_config_check() {
    let docs = render("");
    for name in ["ward-test-agent", "ward-test-collector"] {
        let cm = find(&docs, "ConfigMap", name).unwrap();
        let text = cm.v["data"]["ward.toml"].as_str().unwrap();
        let out = config_check(text);
        assert!(
            out.status.success(),
            "{name}: {}\n{}\n{text}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // And a wrong key in values is caught the same way.
    let docs = render("agent: {config: {agent: {ring_buffer_bytes: 3000000}}}");
    let cm = find(&docs, "ConfigMap", "ward-test-agent").unwrap();
    let out = config_check(cm.v["data"]["ward.toml"].as_str().unwrap());
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("ring_buffer_bytes"));
}

#[test]
fn the_agent_takes_its_node_name_from_the_environment() {
    let out = Command::new(env!("CARGO_BIN_EXE_ward"))
        .args(["agent", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("--node-name") && help.contains("WARD_NODE_NAME"),
        "{help}"
    );
}

/// Keys of values.yaml without their comment: keys one and two levels deep
/// (`agent.privileged`) each carry one; deeper keys are documented by their block's comment
/// (`agent.resources`), unless a sibling has its own, and then every sibling needs one.
/// Returns the number of keys seen and the undocumented ones.
fn undocumented_values(text: &str) -> (usize, Vec<String>) {
    let lines: Vec<&str> = text.lines().collect();
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut keys: Vec<(String, usize, bool, String)> = Vec::new(); // parent, depth, commented, where
    for (i, l) in lines.iter().enumerate() {
        let t = l.trim_start();
        if t.starts_with('#') || t.starts_with('-') || t.is_empty() || !t.contains(':') {
            continue;
        }
        let indent = l.len() - t.len();
        while stack.last().is_some_and(|(d, _)| *d >= indent) {
            stack.pop();
        }
        let parent: Vec<&str> = stack.iter().map(|(_, k)| k.as_str()).collect();
        let key = t.split(':').next().unwrap().to_string();
        let prev = lines[..i].iter().rev().find(|p| !p.trim().is_empty());
        let commented = prev.is_some_and(|p| p.trim_start().starts_with('#'));
        keys.push((
            parent.join("."),
            stack.len() + 1,
            commented,
            format!("values.yaml:{}: {t}", i + 1),
        ));
        stack.push((indent, key));
    }
    let mut undocumented = Vec::new();
    for (parent, depth, commented, at) in &keys {
        let sibling_commented = keys.iter().any(|(p, _, c, _)| p == parent && *c);
        if !commented && (*depth <= 2 || sibling_commented) {
            undocumented.push(at.clone());
        }
    }
    (keys.len(), undocumented)
}

#[test]
fn values_yaml_documents_every_value_and_templates_use_only_known_ones() {
    let text = std::fs::read_to_string(chart_dir().join("values.yaml")).unwrap();
    let (n, undocumented) = undocumented_values(&text);
    assert!(n > 40, "{n} keys");
    assert!(
        undocumented.is_empty(),
        "keys without a comment: {undocumented:#?}"
    );
    // A key added without a comment is caught, at the top and inside a commented block.
    for (after, add) in [
        ("  enabled: true\n", "  newKnob: 1\n"),
        ("    create: true\n", "    extra: x\n"),
    ] {
        assert!(text.contains(after));
        let (_, u) = undocumented_values(&text.replacen(after, &format!("{after}{add}"), 1));
        assert!(u.iter().any(|e| e.contains(add.trim())), "{add}: {u:?}");
    }
    // The renderer fails on a value that does not exist, so every toggle rendering above
    // covers its references; make sure it does.
    let mut tpls = templates(&chart_dir());
    tpls.insert(
        "extra.yaml".into(),
        "x: {{ .Values.agent.nosuch }}\n".into(),
    );
    let err = render_with(&tpls, TOKEN).unwrap_err();
    assert!(err.contains(".Values.agent.nosuch: no such value"), "{err}");
}

#[test]
fn chart_image_and_workspace_versions_agree() {
    let chart: Value =
        serde_yaml::from_str(&std::fs::read_to_string(chart_dir().join("Chart.yaml")).unwrap())
            .unwrap();
    let values: Value =
        serde_yaml::from_str(&std::fs::read_to_string(chart_dir().join("values.yaml")).unwrap())
            .unwrap();
    assert_eq!(s(&chart, "apiVersion"), Some("v2"));
    assert_eq!(s(&chart, "appVersion"), Some(env!("CARGO_PKG_VERSION")));
    assert_eq!(s(&values, "image.tag"), Some(env!("CARGO_PKG_VERSION")));
}

// ---------------------------------------------------------------------------------------------
// The Containerfile, checked statically (a hadolint-like subset).

fn check_containerfile(text: &str) -> Vec<String> {
    let mut errs = Vec::new();
    // Join continuation lines.
    let joined = text.replace("\\\n", " ");
    let instrs: Vec<(String, String)> = joined
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (i, rest) = l.split_once(char::is_whitespace).unwrap_or((l, ""));
            (i.to_uppercase(), rest.trim().to_string())
        })
        .collect();
    let mut args: BTreeMap<String, String> = BTreeMap::new();
    let mut stages: Vec<String> = Vec::new();
    let mut last_user: Option<String> = None;
    let mut entry = None;
    let mut exposed = Vec::new();
    for (i, rest) in &instrs {
        match i.as_str() {
            "ARG" => {
                if let Some((k, v)) = rest.split_once('=') {
                    args.insert(k.to_string(), v.to_string());
                }
            }
            "FROM" => {
                let mut image = rest.split_whitespace().next().unwrap_or("").to_string();
                for (k, v) in &args {
                    image = image.replace(&format!("${{{k}}}"), v);
                }
                let stage = rest.split_whitespace().nth(2).unwrap_or("").to_string();
                let is_stage = stages.contains(&image);
                if image != "scratch" && !is_stage {
                    let tag = image.rsplit_once(':').map(|(_, t)| t);
                    if !image.contains("@sha256:")
                        && tag.is_none_or(|t| t.contains('/') || t == "latest" || t.is_empty())
                    {
                        errs.push(format!("FROM {image}: not pinned to a tag or digest"));
                    }
                    if !image.contains('/') || !image.split('/').next().unwrap().contains('.') {
                        errs.push(format!("FROM {image}: not a fully qualified image name"));
                    }
                }
                stages.push(stage);
                last_user = None;
            }
            "RUN" => {
                let r = rest.to_lowercase();
                for bad in [
                    "curl ",
                    "wget ",
                    "| sh",
                    "|sh",
                    "| bash",
                    "rustup",
                    "pip install",
                ] {
                    if r.contains(bad) {
                        errs.push(format!("RUN downloads outside a package registry: {rest}"));
                    }
                }
                if r.contains("apt-get install") && !r.contains("--no-install-recommends") {
                    errs.push(format!(
                        "RUN apt-get install without --no-install-recommends: {rest}"
                    ));
                }
                if r.contains("apt-get install") && !r.contains("rm -rf /var/lib/apt/lists") {
                    errs.push(format!("RUN apt-get install keeps the apt lists: {rest}"));
                }
                if r.contains("cargo build") && !r.contains("--locked") {
                    errs.push("cargo build without --locked".into());
                }
            }
            "ADD" => errs.push(format!("ADD {rest}: use COPY (ADD fetches URLs)")),
            "USER" => last_user = Some(rest.clone()),
            "ENTRYPOINT" => entry = Some(rest.clone()),
            "EXPOSE" => exposed.extend(rest.split_whitespace().map(String::from)),
            _ => {}
        }
    }
    match last_user.as_deref() {
        None => {
            errs.push("the final stage sets no USER (the collector must not run as root)".into())
        }
        Some(u) if u.split(':').next().is_some_and(|u| u == "0" || u == "root") => {
            errs.push(format!("the final stage's USER {u} is root"))
        }
        _ => {}
    }
    if entry.as_deref() != Some(r#"["ward"]"#) {
        errs.push(format!("ENTRYPOINT {entry:?} is not [\"ward\"]"));
    }
    for p in ["8080", "9464"] {
        if !exposed.iter().any(|e| e == p) {
            errs.push(format!("port {p} not EXPOSEd"));
        }
    }
    errs
}

#[test]
fn the_containerfile_passes_the_static_checks() {
    let text = std::fs::read_to_string(repo().join("deploy/Containerfile")).unwrap();
    let errs = check_containerfile(&text);
    assert!(errs.is_empty(), "{errs:#?}");
    // Each check fails on a breach.
    for (from, to, want) in [
        ("USER 10001:10001\n", "", "sets no USER"),
        ("USER 10001:10001\n", "USER root\n", "is root"),
        ("debian:bookworm-slim", "debian:latest", "not pinned"),
        ("debian:bookworm-slim", "debian", "not pinned"),
        ("docker.io/library/debian", "debian", "fully qualified"),
        (
            "--no-install-recommends clang",
            "clang",
            "--no-install-recommends",
        ),
        (
            "cargo build --release --locked",
            "cargo build --release",
            "--locked",
        ),
        ("ENTRYPOINT [\"ward\"]", "ENTRYPOINT [\"sh\"]", "ENTRYPOINT"),
        (
            "RUN apt-get update",
            "RUN curl -sSf https://sh.rustup.rs | sh && apt-get update",
            "downloads",
        ),
        ("COPY config/ward.toml", "ADD config/ward.toml", "use COPY"),
    ] {
        assert!(text.contains(from), "{from}");
        let errs = check_containerfile(&text.replacen(from, to, 1));
        assert!(
            errs.iter().any(|e| e.contains(want)),
            "{from} -> {to}: {errs:#?}"
        );
    }
    // The build context leaves out target/ (many GB) and the repository's databases.
    let ignore = std::fs::read_to_string(repo().join(".containerignore")).unwrap();
    assert!(ignore.lines().any(|l| l.trim() == "target"), "{ignore}");
}

// ---------------------------------------------------------------------------------------------
// Live (root, podman): the image and the chart's agent settings, on this machine.

struct Podman {
    containers: Vec<String>,
    /// The image, then the binary stages' images (each holds a copy of the ~200 MB binary).
    images: Vec<String>,
}

impl Drop for Podman {
    fn drop(&mut self) {
        for c in &self.containers {
            if std::thread::panicking() {
                // What the container said, for the failure's report.
                if let Ok(o) = Command::new("podman").args(["logs", c]).output() {
                    eprintln!(
                        "--- podman logs {c}:\n{}{}",
                        String::from_utf8_lossy(&o.stdout),
                        String::from_utf8_lossy(&o.stderr)
                    );
                }
            }
            let _ = Command::new("podman")
                .args(["rm", "-f", "-t", "2", c])
                .output();
        }
        for i in &self.images {
            let _ = Command::new("podman").args(["rmi", "-f", i]).output();
        }
    }
}

/// The image ids `podman build` committed for the stages named `binary*`.
fn binary_stage_images(build_output: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_binary = false;
    for l in build_output.lines() {
        if l.contains("STEP 1/") {
            in_binary = l.contains(" AS binary");
        } else if let Some(rest) = l.strip_prefix("--> ") {
            // `--> 658f1326221` or `--> Using cache 658f...`
            let id = rest.split_whitespace().last().unwrap_or("");
            if in_binary && id.len() >= 11 && id.chars().all(|c| c.is_ascii_hexdigit()) {
                out.push(id.to_string());
            }
        }
    }
    out
}

fn podman(args: &[&str]) -> String {
    let out = Command::new("podman").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "podman {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A port free on 127.0.0.1 just now (the containers share the host network).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The status code of GET /healthz on 127.0.0.1:PORT, if anything answers.
fn healthz(port: u16) -> Option<u16> {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    c.set_read_timeout(Some(std::time::Duration::from_secs(2)))
        .ok()?;
    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut r = String::new();
    c.read_to_string(&mut r).ok()?;
    r.split_whitespace().nth(1)?.parse().ok()
}

fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < end {
        if f() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    panic!("timed out after {secs} s waiting for {what}");
}

/// Builds the image's runtime stage from this build's `ward` (the `prebuilt` context) over the
/// test Debian image (bookworm, as the default base), then runs the collector as the chart
/// does and the agent with the flags derived from the rendered DaemonSet: its capabilities
/// (not privileged), hostPID, each hostPath mount, the rendered ward.toml, WARD_NODE_NAME.
/// A compiler run in a podman container must come out as a finding naming the node from the
/// environment and the container from podman's store read through /host.
#[test]
fn the_image_runs_the_collector_and_the_agent_as_the_chart_does() {
    let images = ward_testkit::require_containers!();
    let tmp = tempfile::tempdir().unwrap();
    let pid = std::process::id();
    let mut guard = Podman {
        containers: Vec::new(),
        images: Vec::new(),
    };

    // The image.
    let prebuilt = tmp.path().join("prebuilt");
    std::fs::create_dir(&prebuilt).unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_ward"));
    if std::fs::hard_link(bin, prebuilt.join("ward")).is_err() {
        std::fs::copy(bin, prebuilt.join("ward")).unwrap();
    }
    let tag = format!("localhost/ward-deploy-test:{pid}");
    let t0 = std::time::Instant::now();
    let repo = repo();
    let built = podman(&[
        "build",
        "-f",
        repo.join("deploy/Containerfile").to_str().unwrap(),
        "--build-arg",
        "WARD_BINARY_STAGE=prebuilt",
        "--build-arg",
        &format!("RUNTIME_IMAGE={}", images.debian),
        "--build-context",
        &format!("prebuilt={}", prebuilt.display()),
        "-t",
        &tag,
        repo.to_str().unwrap(),
    ]);
    guard.images.push(tag.clone());
    let stages = binary_stage_images(&built);
    assert!(!stages.is_empty(), "no binary stage image in:\n{built}");
    guard.images.extend(stages);
    eprintln!("image built in {:?}", t0.elapsed());
    assert_eq!(
        podman(&["image", "inspect", "--format", "{{.Config.User}}", &tag]),
        "10001:10001"
    );

    // The collector: the image's own user, read-only root, no capabilities.
    let docs = render("");
    let cport = free_port();
    let cdata = tmp.path().join("collector");
    std::fs::create_dir(&cdata).unwrap();
    let cname = format!("ward-deploy-collector-{pid}");
    guard.containers.push(cname.clone());
    podman(&[
        "run",
        "-d",
        "--name",
        &cname,
        "--network",
        "host",
        "--read-only",
        "--cap-drop",
        "ALL",
        "-v",
        &format!("{}:/var/lib/ward:U", cdata.display()),
        &tag,
        "serve",
        "--listen",
        &format!("127.0.0.1:{cport}"),
        "--db",
        "/var/lib/ward/collector.db",
    ]);
    wait_for("the collector's /healthz", 30, || {
        healthz(cport) == Some(200)
    });
    assert_eq!(podman(&["exec", &cname, "id", "-u"]), "10001");

    // The agent, from the rendered DaemonSet.
    let ds = find(&docs, "DaemonSet", "ward-test-agent").unwrap();
    let pod = lookup(&ds.v, "spec.template.spec").unwrap();
    let c = &seq(pod, "containers")[0];
    let cm = find(&docs, "ConfigMap", "ward-test-agent").unwrap();
    let conf = tmp.path().join("ward.toml");
    std::fs::write(&conf, cm.v["data"]["ward.toml"].as_str().unwrap()).unwrap();
    let rules = tmp.path().join("rules.d");
    std::fs::create_dir(&rules).unwrap();
    let state = tmp.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let aname = format!("ward-deploy-agent-{pid}");
    let mut args: Vec<String> = [
        "run",
        "-d",
        "--name",
        &aname,
        "--network",
        "host",
        "--user",
        "0:0",
    ]
    .map(String::from)
    .to_vec();
    assert_eq!(lookup(pod, "hostPID").and_then(Value::as_bool), Some(true));
    args.extend(["--pid".into(), "host".into()]);
    let sc = &c["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"].as_bool(), Some(true));
    args.push("--read-only".into());
    args.extend(["--cap-drop".into(), "ALL".into()]);
    let caps: Vec<&str> = seq(sc, "capabilities.add")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    args.extend(["--cap-add".into(), caps.join(",")]);
    // RuntimeDefault = podman's default seccomp profile; no AppArmor on this machine.
    assert_eq!(s(sc, "seccompProfile.type"), Some("RuntimeDefault"));
    for m in seq(c, "volumeMounts") {
        let (_, v) = mount_for(pod, c, s(m, "mountPath").unwrap()).unwrap();
        let mp = s(m, "mountPath").unwrap();
        let src = match (s(m, "name").unwrap(), s(v, "hostPath.path")) {
            ("config", _) => conf.display().to_string(),
            ("rules", _) => rules.display().to_string(),
            // A private store, not this machine's /var/lib/ward.
            ("state", _) => state.display().to_string(),
            (_, Some(hp)) => hp.to_string(),
            (n, None) => panic!("mount {n}: no hostPath"),
        };
        let mut opts = Vec::new();
        if lookup(m, "readOnly").and_then(Value::as_bool) == Some(true) {
            opts.push("ro");
        }
        if s(m, "mountPropagation") == Some("HostToContainer") {
            opts.push("rslave");
        }
        let opts = if opts.is_empty() {
            String::new()
        } else {
            format!(":{}", opts.join(","))
        };
        args.extend(["-v".into(), format!("{src}:{mp}{opts}")]);
    }
    args.extend(["-e".into(), "WARD_NODE_NAME=deploy-test-node".into()]);
    args.push(tag.clone());
    let aport = free_port();
    let cmd: Vec<String> = seq(c, "command")
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    assert_eq!(cmd[0], "ward");
    for a in &cmd[1..] {
        // The pod's 0.0.0.0 becomes loopback on this machine's network.
        args.push(a.replace("0.0.0.0:9464", &format!("127.0.0.1:{aport}")));
    }
    guard.containers.push(aname.clone());
    podman(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let logs = |n: &str| {
        let out = Command::new("podman").args(["logs", n]).output().unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    wait_for("the agent's /healthz", 90, || {
        let l = logs(&aname);
        assert!(!l.contains("ward: error"), "the agent failed: {l}");
        healthz(aport) == Some(200)
    });
    assert!(
        logs(&aname).contains("ward agent: ready: node deploy-test-node"),
        "{}",
        logs(&aname)
    );

    let probe = format!("ward-deploy-probe-{pid}");
    podman(&["run", "--rm", "--name", &probe, &images.debian, "tcc", "-v"]);
    let mut finding = None;
    wait_for("the compiler finding", 30, || {
        finding = logs(&aname)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|f| f["containers"][0]["name"] == probe.as_str());
        finding.is_some()
    });
    let f = finding.unwrap();
    assert_eq!(
        f["category"],
        "Defense Evasion: Launch Code Compiler Tool In Container"
    );
    assert!(
        f["resourceName"]
            .as_str()
            .unwrap()
            .starts_with("//ward/nodes/deploy-test-node/"),
        "{f}"
    );
    assert_eq!(f["containers"][0]["uri"], images.debian.as_str());
    // The binary was hashed through a fanotify handle (CAP_SYS_ADMIN, the host root mounted).
    // /metrics is re-rendered about once a second, so the count can lag the finding.
    let metrics = || {
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect(("127.0.0.1", aport)).unwrap();
        c.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut r = String::new();
        c.read_to_string(&mut r).unwrap();
        r
    };
    let fanotify = |m: &str| -> u64 {
        m.lines()
            .find_map(|l| l.strip_prefix("ward_enrich_exec_files_total{source=\"fanotify\"} "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    let mut last = String::new();
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while fanotify(&last) == 0 && std::time::Instant::now() < end {
        std::thread::sleep(std::time::Duration::from_millis(250));
        last = metrics();
    }
    assert!(
        fanotify(&last) > 0,
        "no exec hashed through fanotify:\n{last}"
    );
    assert!(
        f["processes"][0]["binary"]["sha256"]
            .as_str()
            .is_some_and(|h| h.len() == 64),
        "{f}"
    );
}
