//! The fleet endpoints of a central collector (docs/api.md, "Fleet"):
//!
//! * `POST /v1/enroll {node, secret, agentVersion}`: the enrollment secret exchanged for a
//!   per-node token (random, shown once; the registry keeps its SHA-256). An enrolled name is
//!   not enrolled again until it is revoked (409).
//! * `POST /v1/ingest` (the node's token): a batch of findings of that node, all or nothing
//!   (one transaction; any malformed finding rejects the batch naming its index and field),
//!   idempotent on the finding `name` (the store's upsert: a replay changes nothing, a later
//!   state merges); a name already stored for another node refuses the batch (403, checked in
//!   the upsert's transaction). An empty batch is a heartbeat. Every accepted batch updates the node's last
//!   seen, agent version and health summary.
//! * `GET /v1/nodes` (read token) and `POST /v1/nodes/{name}:revoke` (write token).

use crate::error::ApiError;
use crate::v1::{parse_body, store_call};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use subtle::ConstantTimeEq;
use ward_event::time::format_rfc3339;
use ward_event::Finding;
use ward_store::{NodeRecord, NodeStore, StoreError};

/// Most keys of a batch's `health` object.
const MAX_HEALTH_KEYS: usize = 64;

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

pub(crate) fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

fn registry(st: &AppState) -> Result<Arc<dyn NodeStore>, ApiError> {
    st.nodes.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "this server keeps no node registry (ward agent --serve); enroll with a collector (ward serve)",
        )
    })
}

/// Runs a blocking registry call off the async threads.
async fn nodes_call<T, F>(st: &AppState, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&dyn NodeStore) -> Result<T, StoreError> + Send + 'static,
{
    let nodes = registry(st)?;
    tokio::task::spawn_blocking(move || f(nodes.as_ref()))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "node registry task failed");
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        })?
        .map_err(ApiError::from_store)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let h = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = h.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim())
        .filter(|t| !t.is_empty())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct EnrollBody {
    node: String,
    secret: String,
    #[serde(default, alias = "agent_version")]
    agent_version: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EnrollResponse {
    node: String,
    token: String,
}

fn check_node(name: &str) -> Result<(), ApiError> {
    ward_store::check_node_name(name).map_err(|m| ApiError::bad_request(m).with_field("node"))
}

fn check_version(v: &str) -> Result<(), ApiError> {
    if v.len() > 64 || v.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "agentVersion must be at most 64 bytes without control characters",
        )
        .with_field("agentVersion"));
    }
    Ok(())
}

/// `POST /v1/enroll`.
pub(crate) async fn enroll(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let Some(expected) = st.enrollment_secret else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "enrollment is off on this collector (configure api.enrollment_secret or api.enrollment_secret_file)",
        ));
    };
    registry(&st)?;
    let b: EnrollBody = parse_body(&headers, body)?;
    check_node(&b.node)?;
    check_version(&b.agent_version)?;
    let presented: [u8; 32] = Sha256::digest(b.secret.trim().as_bytes()).into();
    if !bool::from(presented.ct_eq(&expected)) {
        st.metrics.auth_failures.fetch_add(1, Ordering::Relaxed);
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "wrong enrollment secret",
        ));
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| {
        tracing::error!(error = %e, "no randomness for a node token");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    })?;
    let token = hex::encode(bytes);
    let hash = sha256_hex(&token);
    let (node, version) = (b.node.clone(), b.agent_version.clone());
    let done = nodes_call(&st, move |n| {
        n.enroll_node(&node, &hash, &version, now_ns())
    })
    .await?;
    match done {
        ward_store::Enrolled::Enrolled => {
            st.metrics.enrollments.fetch_add(1, Ordering::Relaxed);
            tracing::info!(node = %b.node, agent_version = %b.agent_version, "node enrolled");
            Ok((
                StatusCode::OK,
                Json(EnrollResponse {
                    node: b.node,
                    token,
                }),
            )
                .into_response())
        }
        ward_store::Enrolled::Exists => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "node '{}' is already enrolled; revoke it first (POST /v1/nodes/{}:revoke) to enroll it again",
                b.node, b.node
            ),
        )
        .with_field("node")),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct IngestBody {
    node: String,
    #[serde(default, alias = "agent_version")]
    agent_version: String,
    #[serde(default)]
    findings: Vec<serde_json::Value>,
    #[serde(default)]
    health: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct IngestResponse {
    node: String,
    accepted: usize,
    inserted: usize,
    updated: usize,
    stale: usize,
}

/// The node a token belongs to (401 when unknown or revoked).
async fn node_of_token(st: &AppState, headers: &HeaderMap) -> Result<NodeRecord, ApiError> {
    let unauth = |m: String| {
        st.metrics.auth_failures.fetch_add(1, Ordering::Relaxed);
        ApiError::new(StatusCode::UNAUTHORIZED, m)
    };
    let Some(token) = bearer(headers) else {
        return Err(unauth(
            "a node token is required (Authorization: Bearer; get one at POST /v1/enroll)".into(),
        ));
    };
    let hash = sha256_hex(token);
    match nodes_call(st, move |n| n.node_by_token(&hash)).await? {
        None => Err(unauth("unknown node token".into())),
        Some(n) if n.revoked => Err(unauth(format!(
            "the token of node '{}' was revoked; enroll the node again",
            n.name
        ))),
        Some(n) => Ok(n),
    }
}

/// Parses and checks every finding of a batch; the first problem rejects the whole batch.
fn parse_findings(node: &str, raw: Vec<serde_json::Value>) -> Result<Vec<Finding>, ApiError> {
    let mut out = Vec::with_capacity(raw.len());
    for (i, v) in raw.into_iter().enumerate() {
        let f: Finding = serde_path_to_error::deserialize(v).map_err(|e| {
            let path = e.path().to_string();
            let at = if path == "." || path.is_empty() {
                format!("findings[{i}]")
            } else {
                format!("findings[{i}].{path}")
            };
            ApiError::bad_request(format!("{at}: {}", e.into_inner())).with_field("findings")
        })?;
        ward_store::validate_finding(&f).map_err(|e| {
            ApiError::bad_request(format!("findings[{i}]: {e}")).with_field("findings")
        })?;
        let of = ward_store::finding_node(&f);
        if of != node {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "findings[{i}] ('{}') is for node '{of}'; this token may only write findings of node '{node}'",
                    f.name
                ),
            )
            .with_field("findings"));
        }
        out.push(f);
    }
    Ok(out)
}

/// `POST /v1/ingest`.
pub(crate) async fn ingest(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<IngestResponse>, ApiError> {
    let r = ingest_inner(&st, &headers, body).await;
    if r.is_err() {
        st.metrics.ingest_rejected.fetch_add(1, Ordering::Relaxed);
    }
    r
}

async fn ingest_inner(
    st: &Arc<AppState>,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<IngestResponse>, ApiError> {
    registry(st)?;
    let node = node_of_token(st, headers).await?;
    let b: IngestBody = parse_body(headers, body)?;
    if b.node != node.name {
        st.metrics.auth_failures.fetch_add(1, Ordering::Relaxed);
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "this token belongs to node '{}', not '{}'",
                node.name, b.node
            ),
        )
        .with_field("node"));
    }
    check_version(&b.agent_version)?;
    if b.findings.len() > st.ingest_max_findings {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "a batch of {} findings is above the limit of {} (api.ingest_max_findings); send smaller batches",
                b.findings.len(),
                st.ingest_max_findings
            ),
        )
        .with_field("findings"));
    }
    let health = match &b.health {
        Some(h) if h.len() > MAX_HEALTH_KEYS => {
            return Err(ApiError::bad_request(format!(
                "health has {} keys; at most {MAX_HEALTH_KEYS}",
                h.len()
            ))
            .with_field("health"))
        }
        Some(h) => Some(serde_json::Value::Object(h.clone()).to_string()),
        None => None,
    };
    let findings = parse_findings(&node.name, b.findings)?;
    let n = findings.len();
    let findings = Arc::new(findings);
    let sum = if n == 0 {
        ward_store::UpsertSummary::default()
    } else {
        let (f, me) = (findings.clone(), node.name.clone());
        // The store refuses a name already stored for another node inside the upsert's
        // transaction (nothing written); that refusal is a 403, not a store failure.
        let r = store_call(st, move |s| match s.upsert_many_for_node(&me, &f) {
            Err(StoreError::NameOfAnotherNode { name, owner, .. }) => Ok(Err((name, owner))),
            other => other.map(Ok),
        })
        .await?;
        match r {
            Ok(sum) => {
                st.forget_counts();
                sum
            }
            Err((name, owner)) => {
                let i = findings.iter().position(|f| f.name == name).unwrap_or(0);
                let owner = if owner.is_empty() {
                    "no node".to_string()
                } else {
                    format!("node '{owner}'")
                };
                tracing::warn!(node = %node.name, finding = %name, stored_for = %owner, "ingest refused: finding name stored for another node");
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    format!(
                        "findings[{i}] ('{name}') is stored for {owner}; node '{}' may not overwrite it (nothing of this batch was written)",
                        node.name
                    ),
                )
                .with_field("findings"));
            }
        }
    };
    let (name, version) = (node.name.clone(), b.agent_version.clone());
    nodes_call(st, move |r| {
        r.node_seen(&name, &version, health.as_deref(), now_ns())
    })
    .await?;
    let m = &st.metrics;
    m.ingest_batches.fetch_add(1, Ordering::Relaxed);
    if n == 0 {
        m.ingest_heartbeats.fetch_add(1, Ordering::Relaxed);
    }
    m.ingest_inserted
        .fetch_add(sum.inserted as u64, Ordering::Relaxed);
    m.ingest_updated
        .fetch_add(sum.updated as u64, Ordering::Relaxed);
    m.ingest_stale
        .fetch_add(sum.stale as u64, Ordering::Relaxed);
    Ok(Json(IngestResponse {
        node: node.name,
        accepted: n,
        inserted: sum.inserted,
        updated: sum.updated,
        stale: sum.stale,
    }))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NodeView {
    name: String,
    create_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_seen_time: Option<String>,
    agent_version: String,
    health: serde_json::Value,
    revoked: bool,
    /// Not seen for longer than `[api] node_stale_after` (or never seen), by this server's
    /// clock.
    stale: bool,
    /// The cluster and project its findings name (omitted when unknown).
    #[serde(skip_serializing_if = "String::is_empty")]
    cluster: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    project: String,
}

impl NodeView {
    fn new(n: NodeRecord, now_ns: i64, stale_after: std::time::Duration) -> NodeView {
        let t = |ns: i64| format_rfc3339(u64::try_from(ns).unwrap_or(0));
        let window = i64::try_from(stale_after.as_nanos()).unwrap_or(i64::MAX);
        NodeView {
            create_time: t(n.created_ns),
            last_seen_time: (n.last_seen_ns > 0).then(|| t(n.last_seen_ns)),
            stale: n.last_seen_ns <= 0 || now_ns.saturating_sub(n.last_seen_ns) > window,
            agent_version: n.agent_version,
            health: serde_json::from_str(&n.health_json)
                .unwrap_or_else(|_| serde_json::Value::Object(Default::default())),
            revoked: n.revoked,
            name: n.name,
            cluster: n.cluster,
            project: n.project,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NodeList {
    nodes: Vec<NodeView>,
    /// `[api] node_stale_after` in seconds: what `stale` means here.
    stale_after_seconds: u64,
}

/// `GET /v1/nodes`.
pub(crate) async fn list_nodes(
    State(st): State<Arc<AppState>>,
) -> Result<Json<NodeList>, ApiError> {
    let nodes = nodes_call(&st, |n| n.list_nodes()).await?;
    let now = now_ns();
    Ok(Json(NodeList {
        nodes: nodes
            .into_iter()
            .map(|n| NodeView::new(n, now, st.node_stale_after))
            .collect(),
        stale_after_seconds: st.node_stale_after.as_secs(),
    }))
}

/// `POST /v1/nodes/{name}:revoke`.
pub(crate) async fn node_action(
    State(st): State<Arc<AppState>>,
    Path(segment): Path<String>,
) -> Result<Json<NodeView>, ApiError> {
    let Some((name, verb)) = segment.rsplit_once(':') else {
        return Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "POST needs a custom method: /v1/nodes/{name}:revoke",
        ));
    };
    if verb != "revoke" {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("unknown method ':{verb}' (expected :revoke)"),
        ));
    }
    check_node(name)?;
    let n = name.to_string();
    let found = nodes_call(&st, move |r| {
        if !r.revoke_node(&n)? {
            return Ok(None);
        }
        Ok(r.list_nodes()?.into_iter().find(|x| x.name == n))
    })
    .await?;
    match found {
        Some(rec) => {
            tracing::info!(node = %rec.name, "node token revoked");
            Ok(Json(NodeView::new(rec, now_ns(), st.node_stale_after)))
        }
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no enrolled node '{name}'"),
        )),
    }
}
