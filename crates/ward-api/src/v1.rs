//! The `/v1` REST handlers.

use crate::error::ApiError;
use crate::AppState;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use ward_event::finding::{Mute, Resource, State as FindingState};
use ward_event::{Category, Finding};
use ward_store::{FindingStore, ListQuery, StoreError};

/// Default and largest `windowMinutes` of the related-findings query.
pub const DEFAULT_WINDOW_MINUTES: u64 = 60;
pub const MAX_WINDOW_MINUTES: u64 = 7 * 24 * 60;
/// Attempts for a store call that finds SQLite busy (after its own busy timeout).
const BUSY_ATTEMPTS: u32 = 3;
/// Longest finding id or name accepted in a path.
const MAX_ID_LEN: usize = 512;

/// Refuses a query parameter that is not UTF-8 once percent-decoded (serde_urlencoded would
/// replace the bad bytes with U+FFFD and search for something else). A bad `filter` is a
/// filter error with its position; any other parameter is named.
fn check_query_utf8(q: &str) -> Result<(), ApiError> {
    for pair in q.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key_bytes: Vec<u8> = percent_encoding::percent_decode_str(key).collect();
        let Ok(key) = std::str::from_utf8(&key_bytes) else {
            return Err(ApiError::bad_request(
                "a query parameter name is not valid UTF-8 once percent-decoded",
            ));
        };
        let bytes: Vec<u8> = percent_encoding::percent_decode_str(value).collect();
        if key == "filter" {
            ward_store::filter::from_utf8(&bytes)
                .map_err(|e| ApiError::from_store(StoreError::Filter(e)))?;
        } else if let Err(e) = std::str::from_utf8(&bytes) {
            return Err(ApiError::bad_request(format!(
                "query parameter '{key}': invalid UTF-8 at byte {} once percent-decoded",
                e.valid_up_to()
            )));
        }
    }
    Ok(())
}

/// Parses a query string into `T` (which denies unknown fields); errors are 400s.
fn parse_query<T: DeserializeOwned + Default>(raw: Option<String>) -> Result<T, ApiError> {
    match raw.as_deref() {
        None | Some("") => Ok(T::default()),
        Some(q) => {
            check_query_utf8(q)?;
            serde_urlencoded::from_str(q)
                .map_err(|e| ApiError::bad_request(format!("invalid query parameters: {e}")))
        }
    }
}

/// Decodes a JSON body into `T` (which denies unknown fields); errors are 400/413/415.
pub(crate) fn parse_body<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let body = body.map_err(|r| {
        let status = r.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(status, "request body too large")
        } else {
            ApiError::new(status, format!("cannot read request body: {r}"))
        }
    })?;
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("application/json") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the request body must be JSON (Content-Type: application/json)",
        ));
    }
    let value: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "invalid request body: expected a JSON object",
        ));
    }
    serde_json::from_value(value)
        .map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))
}

/// Runs a blocking store call off the async threads, retrying when SQLite stays busy.
pub(crate) async fn store_call<T, F>(st: &AppState, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: Fn(&dyn FindingStore) -> Result<T, StoreError> + Send + Sync + 'static,
{
    let f = Arc::new(f);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let store = st.store.clone();
        let g = f.clone();
        let r = tokio::task::spawn_blocking(move || g(store.as_ref()))
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "store task failed");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
            })?;
        match r {
            Err(e) if ApiError::is_busy(&e) && attempt < BUSY_ATTEMPTS => {
                st.metrics
                    .store_busy_retries
                    .fetch_add(1, Ordering::Relaxed);
                tracing::debug!(attempt, "store busy; retrying");
                tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
            }
            other => return other.map_err(ApiError::from_store),
        }
    }
}

fn check_id(id: &str) -> Result<(), ApiError> {
    if id.is_empty() || id.chars().count() > MAX_ID_LEN || id.chars().any(char::is_control) {
        return Err(ApiError::bad_request("invalid finding id").with_field("id"));
    }
    Ok(())
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
struct ListParams {
    filter: String,
    order_by: String,
    page_size: u32,
    page_token: String,
    /// Count every match (`totalSize`); default true.
    include_total: Option<bool>,
}

/// A finding with its resource: SCC's `ListFindingsResult` (`{finding, resource}`), the item
/// of a list and the answer of a get.
#[derive(Serialize)]
pub struct FindingResult {
    pub finding: Finding,
    pub resource: Resource,
}

impl From<Finding> for FindingResult {
    fn from(finding: Finding) -> FindingResult {
        FindingResult {
            resource: finding.resource(),
            finding,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ListResponse {
    list_findings_results: Vec<FindingResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_page_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    total_size: Option<u64>,
}

pub async fn list_findings(
    State(st): State<Arc<AppState>>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let p: ListParams = parse_query(q)?;
    let want_total = p.include_total.unwrap_or(true);
    let cached = if want_total {
        st.cached_count(&p.filter)
    } else {
        None
    };
    let filter = p.filter.clone();
    let query = ListQuery {
        filter: p.filter,
        order_by: p.order_by,
        page_size: p.page_size,
        page_token: p.page_token,
        include_total: want_total && cached.is_none(),
    };
    let page = store_call(&st, move |s| s.list(&query)).await?;
    if let Some(n) = page.total_size {
        st.store_count(&filter, n);
    }
    Ok(Json(ListResponse {
        list_findings_results: page.findings.into_iter().map(FindingResult::from).collect(),
        next_page_token: page.next_page_token,
        total_size: page.total_size.or(cached),
    })
    .into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NoParams {}

pub async fn get_finding(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<FindingResult>, ApiError> {
    if id.rsplit_once(':').is_some() {
        // `/v1/findings/{id}:setState` and `:setMute` take POST only (ids have no ':').
        return Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "a custom method takes POST",
        ));
    }
    let _: NoParams = parse_query(q)?;
    check_id(&id)?;
    let key = id.clone();
    match store_call(&st, move |s| s.get(&key)).await? {
        Some(f) => Ok(Json(FindingResult::from(f))),
        None => Err(ApiError::not_found(&id)),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
struct RelatedParams {
    window_minutes: Option<u64>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RelatedResponse {
    findings: Vec<Finding>,
    window_minutes: u64,
}

pub async fn related(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    let p: RelatedParams = parse_query(q)?;
    check_id(&id)?;
    let minutes = p.window_minutes.unwrap_or(DEFAULT_WINDOW_MINUTES);
    if minutes == 0 || minutes > MAX_WINDOW_MINUTES {
        return Err(ApiError::bad_request(format!(
            "windowMinutes must be between 1 and {MAX_WINDOW_MINUTES}"
        ))
        .with_field("windowMinutes"));
    }
    let window_ns = minutes * 60 * 1_000_000_000;
    let findings = store_call(&st, move |s| s.related(&id, window_ns)).await?;
    Ok(Json(
        serde_json::to_value(RelatedResponse {
            findings,
            window_minutes: minutes,
        })
        .unwrap_or_default(),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SetStateBody {
    state: FindingState,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SetMuteBody {
    mute: Mute,
}

/// `POST /v1/findings/{id}:setState` and `:setMute` (one path segment, split at the last ':').
pub async fn finding_action(
    State(st): State<Arc<AppState>>,
    Path(segment): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Finding>, ApiError> {
    let _: NoParams = parse_query(q)?;
    let Some((id, verb)) = segment.rsplit_once(':') else {
        return Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "POST needs a custom method: /v1/findings/{id}:setState or :setMute",
        ));
    };
    check_id(id)?;
    let id = id.to_string();
    let f = match verb {
        "setState" => {
            let b: SetStateBody = parse_body(&headers, body)?;
            store_call(&st, move |s| s.set_state(&id, b.state)).await?
        }
        "setMute" => {
            let b: SetMuteBody = parse_body(&headers, body)?;
            if b.mute == Mute::Undefined {
                return Err(
                    ApiError::bad_request("mute must be MUTED or UNMUTED").with_field("mute")
                );
            }
            store_call(&st, move |s| s.set_mute(&id, b.mute)).await?
        }
        other => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("unknown method ':{other}' (expected :setState or :setMute)"),
            ))
        }
    };
    st.forget_counts();
    Ok(Json(f))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CategoryInfo {
    category: &'static str,
    api_name: &'static str,
    severity: &'static str,
    techniques: Vec<TechniqueInfo>,
}

#[derive(Serialize)]
struct TechniqueInfo {
    id: &'static str,
    name: &'static str,
}

/// `GET /v1/categories`: the categories Ward reports, with ATT&CK technique ids.
pub async fn categories(RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let _: NoParams = parse_query(q)?;
    let list: Vec<CategoryInfo> = Category::all()
        .iter()
        .map(|c| {
            let (_, p, _, a) = c.techniques();
            CategoryInfo {
                category: c.display_name(),
                api_name: c.api_name(),
                severity: c.severity().as_str(),
                techniques: p
                    .iter()
                    .chain(a.iter())
                    .map(|t| TechniqueInfo {
                        id: t.id,
                        name: t.scc_name,
                    })
                    .collect(),
            }
        })
        .collect();
    Ok(Json(serde_json::json!({ "categories": list })).into_response())
}

/// The OpenAPI 3 document (hand-written; a test checks every path in it answers).
pub const OPENAPI_JSON: &str = include_str!("openapi.json");

pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON).into_response()
}
