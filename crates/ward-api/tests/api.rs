//! The REST API against a real SQLite database over real HTTP on 127.0.0.1.

mod common;

use common::*;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use ward_api::{ApiConfig, ConfigError, Server};
use ward_store::{FindingStore, SqliteStore};

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn json_of(r: reqwest::Response) -> (StatusCode, Value) {
    let s = r.status();
    let v = r.json::<Value>().await.unwrap_or(Value::Null);
    (s, v)
}

async fn get(c: &Client, url: &str, token: Option<&str>) -> (StatusCode, Value) {
    let mut rq = c.get(url);
    if let Some(t) = token {
        rq = rq.bearer_auth(t);
    }
    json_of(rq.send().await.unwrap()).await
}

async fn post(c: &Client, url: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
    let mut rq = c.post(url).json(&body);
    if let Some(t) = token {
        rq = rq.bearer_auth(t);
    }
    json_of(rq.send().await.unwrap()).await
}

fn id_of(f: &Value) -> String {
    f["name"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string()
}

fn authed() -> ApiConfig {
    ApiConfig {
        tokens: tokens(),
        ..ApiConfig::default()
    }
}

async fn list_pages_through_every_finding_exactly_once(b: Backend) {
    let Some((_d, store, findings)) =
        example_store_on(b, "list_pages_through_every_finding_exactly_once")
    else {
        return;
    };
    assert!(findings.len() >= 15, "{}", findings.len());
    let srv = TestServer::start(authed(), store.clone()).await;
    let c = client();
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let url = format!(
            "{}/v1/findings?pageSize=4&pageToken={}",
            srv.base,
            urlencode(&token)
        );
        let (s, v) = get(&c, &url, Some(READ_TOKEN)).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["totalSize"], json!(findings.len()));
        let page = v["listFindingsResults"].as_array().unwrap();
        assert!(page.len() <= 4);
        seen.extend(page.iter().map(|r| id_of(&r["finding"])));
        pages += 1;
        match v["nextPageToken"].as_str() {
            Some(t) => token = t.to_string(),
            None => break,
        }
    }
    assert_eq!(pages, findings.len().div_ceil(4));
    let unique: BTreeSet<_> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "a finding appeared twice");
    assert_eq!(seen.len(), findings.len());
    // Default order: newest event first.
    let (_, v) = get(&c, &format!("{}/v1/findings", srv.base), Some(READ_TOKEN)).await;
    let times: Vec<&str> = v["listFindingsResults"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["finding"]["eventTime"].as_str().unwrap())
        .collect();
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(times, sorted);
    // includeTotal=false leaves totalSize out.
    let (_, v) = get(
        &c,
        &format!("{}/v1/findings?includeTotal=false&pageSize=1", srv.base),
        Some(READ_TOKEN),
    )
    .await;
    assert!(v.get("totalSize").is_none(), "{v}");
    assert!(v["nextPageToken"].is_string());
    srv.stop().await;
}

fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

async fn filters_and_order_match_the_store(b: Backend) {
    let Some((_d, store, _)) = example_store_on(b, "filters_and_order_match_the_store") else {
        return;
    };
    let srv = TestServer::start(authed(), store.clone()).await;
    let c = client();
    for filter in [
        "severity=CRITICAL",
        "category=\"Reverse Shell\" AND severity=\"CRITICAL\" AND containerName:\"web\"",
        "category:MALICIOUS",
        "severity>=HIGH state=ACTIVE",
        "NOT category=REVERSE_SHELL",
        "ns=shop (severity=LOW OR category:compiler)",
        "-severity=LOW",
        "-category:compiler -state=INACTIVE",
    ] {
        let url = format!(
            "{}/v1/findings?pageSize=1000&filter={}",
            srv.base,
            urlencode(filter)
        );
        let (s, v) = get(&c, &url, Some(READ_TOKEN)).await;
        assert_eq!(s, StatusCode::OK, "{filter}: {v}");
        let n = store.count(filter).unwrap();
        assert_eq!(v["totalSize"], json!(n), "{filter}");
        assert_eq!(
            v["listFindingsResults"].as_array().unwrap().len() as u64,
            n,
            "{filter}"
        );
    }
    let crit = store.count("severity=CRITICAL").unwrap();
    assert!(crit > 0 && crit < store.count("").unwrap());
    // orderBy severity desc: ranks never increase.
    let (s, v) = get(
        &c,
        &format!(
            "{}/v1/findings?orderBy=severity%20desc&pageSize=1000",
            srv.base
        ),
        Some(READ_TOKEN),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let rank = |s: &str| {
        ["LOW", "MEDIUM", "HIGH", "CRITICAL"]
            .iter()
            .position(|x| *x == s)
    };
    let ranks: Vec<_> = v["listFindingsResults"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| rank(r["finding"]["severity"].as_str().unwrap()))
        .collect();
    assert!(ranks.windows(2).all(|w| w[0] >= w[1]), "{ranks:?}");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_400_with_details() {
    let (_d, store, _) = example_store();
    let srv = TestServer::start(authed(), store.clone()).await;
    let c = client();
    let b = &srv.base;
    // Malformed filters: the position of the error.
    for (filter, position) in [
        ("severity=", 9),
        ("colour=red", 0),
        ("name=\"abc", 5),
        ("state=ACTIVE AND", 13),
        ("containerName>web", 14),
        ("createTime=2026-02-30", 11),
        ("eventTime>2026-11-21T00:00:00+99:99", 10),
    ] {
        let (s, v) = get(
            &c,
            &format!("{b}/v1/findings?filter={}", urlencode(filter)),
            Some(READ_TOKEN),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{filter}");
        assert_eq!(v["error"]["code"], json!(400));
        assert_eq!(v["error"]["status"], json!("INVALID_ARGUMENT"));
        assert_eq!(v["error"]["field"], json!("filter"));
        assert_eq!(v["error"]["position"], json!(position), "{filter}: {v}");
        assert_eq!(v["error"]["column"], json!(position + 1));
        assert!(v["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&format!("column {}", position + 1)));
    }
    // Invalid UTF-8 in a filter is an error at its position, not a search for U+FFFD.
    let (s, v) = get(
        &c,
        &format!("{b}/v1/findings?filter=ns%3D%C3%A9%FF"),
        Some(READ_TOKEN),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["field"], json!("filter"), "{v}");
    assert_eq!(v["error"]["position"], json!(4), "{v}");
    let m = v["error"]["message"].as_str().unwrap();
    assert!(m.contains("invalid UTF-8 at byte 5"), "{m}");
    let (s, v) = get(
        &c,
        &format!("{b}/v1/findings?orderBy=%FF"),
        Some(READ_TOKEN),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("'orderBy'"),
        "{v}"
    );
    for (q, what) in [
        ("colour=red", "unknown query parameter"),
        ("pageSize=ten", "non-numeric pageSize"),
        ("pageSize=-1", "negative pageSize"),
        ("pageToken=garbage", "bad page token"),
        ("orderBy=colour", "bad orderBy"),
        ("includeTotal=maybe", "bad boolean"),
        ("filter=a&filter=b", "repeated parameter"),
    ] {
        let (s, v) = get(&c, &format!("{b}/v1/findings?{q}"), Some(READ_TOKEN)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{what}: {v}");
        assert!(v["error"]["message"].is_string(), "{what}: {v}");
    }
    // Page tokens are bound to their query.
    let (_, v) = get(&c, &format!("{b}/v1/findings?pageSize=1"), Some(READ_TOKEN)).await;
    let t = v["nextPageToken"].as_str().unwrap();
    let (s, v) = get(
        &c,
        &format!("{b}/v1/findings?pageSize=1&filter=severity%3DLOW&pageToken={t}"),
        Some(READ_TOKEN),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["field"], json!("pageToken"));
    // Unknown query on other routes too.
    let id = store.list(&Default::default()).unwrap().findings[0]
        .id()
        .to_string();
    let (s, _) = get(&c, &format!("{b}/v1/findings/{id}?x=1"), Some(READ_TOKEN)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = get(
        &c,
        &format!("{b}/v1/findings/{id}/related?window=5"),
        Some(READ_TOKEN),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    for w in ["0", "100000", "x"] {
        let (s, _) = get(
            &c,
            &format!("{b}/v1/findings/{id}/related?windowMinutes={w}"),
            Some(READ_TOKEN),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "windowMinutes={w}");
    }
    // Unknown routes and methods are JSON too.
    let (s, v) = get(&c, &format!("{b}/v2/nothing"), Some(READ_TOKEN)).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["status"], json!("NOT_FOUND"));
    let r = c
        .delete(format!("{b}/v1/findings"))
        .bearer_auth(WRITE_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    // An over-long filter is the filter's own error while the URI fits (16 KiB); beyond, 414.
    let (s, v) = get(
        &c,
        &format!("{b}/v1/findings?filter={}", "a".repeat(10_000)),
        Some(READ_TOKEN),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("too long"),
        "{v}"
    );
    let (s, v) = get(
        &c,
        &format!("{b}/v1/findings?filter={}", "a".repeat(17_000)),
        Some(READ_TOKEN),
    )
    .await;
    assert_eq!(s, StatusCode::URI_TOO_LONG, "{v}");
    srv.stop().await;
}

async fn get_returns_the_exact_record_and_404s_are_json(b: Backend) {
    let Some((_d, store, findings)) =
        example_store_on(b, "get_returns_the_exact_record_and_404s_are_json")
    else {
        return;
    };
    let srv = TestServer::start(authed(), store.clone()).await;
    let c = client();
    for f in &findings {
        let (s, v) = get(
            &c,
            &format!("{}/v1/findings/{}", srv.base, f.id()),
            Some(READ_TOKEN),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        let stored = store.get(f.id()).unwrap().unwrap();
        assert_eq!(v["finding"], serde_json::to_value(&stored).unwrap());
        assert_eq!(
            v["resource"],
            serde_json::to_value(stored.resource()).unwrap()
        );
        assert_eq!(v.as_object().unwrap().len(), 2, "{v}");
    }
    // The full name, URL-encoded, works too.
    let f = &findings[0];
    let (s, v) = get(
        &c,
        &format!("{}/v1/findings/{}", srv.base, urlencode(&f.name)),
        Some(READ_TOKEN),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["finding"]["name"], json!(f.name));
    let (s, v) = get(
        &c,
        &format!("{}/v1/findings/0000deadbeef", srv.base),
        Some(READ_TOKEN),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["code"], json!(404));
    srv.stop().await;
}

async fn related_finds_the_same_container_within_the_window(b: Backend) {
    let Some((_d, store, findings)) =
        example_store_on(b, "related_finds_the_same_container_within_the_window")
    else {
        return;
    };
    let srv = TestServer::start(authed(), store.clone()).await;
    let c = client();
    let anchor = &findings[0];
    let (s, v) = get(
        &c,
        &format!("{}/v1/findings/{}/related", srv.base, anchor.id()),
        Some(READ_TOKEN),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["windowMinutes"], json!(60));
    let api: Vec<String> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(id_of)
        .collect();
    let want: Vec<String> = store
        .related(anchor.id(), 3_600_000_000_000)
        .unwrap()
        .iter()
        .map(|f| f.id().to_string())
        .collect();
    assert_eq!(api, want);
    assert!(!api.is_empty(), "example traces share a container");
    assert!(!api.contains(&anchor.id().to_string()));
    for f in v["findings"].as_array().unwrap() {
        let same_container = f["sourceProperties"]["Container_Id"]
            == json!(anchor.source_str("Container_Id"))
            || f["sourceProperties"]["Pod_Name"] == json!(anchor.source_str("Pod_Name"));
        assert!(same_container, "{f}");
    }
    // windowMinutes=1: a narrower (or equal) set, all within a minute.
    let (s, v) = get(
        &c,
        &format!(
            "{}/v1/findings/{}/related?windowMinutes=1",
            srv.base,
            anchor.id()
        ),
        Some(READ_TOKEN),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(v["findings"].as_array().unwrap().len() <= api.len());
    let (s, _) = get(
        &c,
        &format!("{}/v1/findings/nope/related", srv.base),
        Some(READ_TOKEN),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    srv.stop().await;
}

/// Lists and gets pair each finding with SCC's resource (`{finding, resource}`); the
/// resource carries the cluster, project and node; `resource.cluster` / `project` filters
/// select through the API; findings written through the server's store that name no cluster
/// get the collector's `[api] default_cluster` / `default_project`.
async fn list_and_get_pair_findings_with_their_resource(b: Backend) {
    let Some((_d, store, findings)) =
        example_store_on(b, "list_and_get_pair_findings_with_their_resource")
    else {
        return;
    };
    let cfg = ApiConfig {
        default_cluster: " collector-default ".into(),
        default_project: "ops".into(),
        ..authed()
    };
    let srv = TestServer::start(cfg, store.clone()).await;
    let c = client();
    // Two findings arrive through the server's store: one naming its own cluster (an agent
    // with `[agent] cluster`), one naming none.
    let mut own = findings[0].clone();
    own.name = format!("{}/findings/fleet-own", own.parent);
    own.canonical_name = own.name.clone();
    own.cluster = Some("prod-eu".into());
    let mut bare = findings[1].clone();
    bare.name = format!("{}/findings/fleet-bare", bare.parent);
    bare.canonical_name = bare.name.clone();
    let s2 = srv.store.clone();
    tokio::task::block_in_place(|| s2.upsert_many(&[own, bare])).unwrap();

    let (s, v) = get(
        &c,
        &format!("{}/v1/findings?pageSize=1000", srv.base),
        Some(READ_TOKEN),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(
        v.get("findings").is_none(),
        "the list is SCC's listFindingsResults"
    );
    let results = v["listFindingsResults"].as_array().unwrap();
    assert_eq!(results.len(), findings.len() + 2);
    for r in results {
        let f: ward_event::Finding = serde_json::from_value(r["finding"].clone()).unwrap();
        assert_eq!(r["resource"], serde_json::to_value(f.resource()).unwrap());
        assert_eq!(r["resource"]["name"], r["finding"]["resourceName"]);
        assert!(
            ["container", "pod", "node"].contains(&r["resource"]["type"].as_str().unwrap()),
            "{r}"
        );
        assert!(r["resource"]["display_name"].is_string(), "{r}");
    }
    let (s, v) = get(
        &c,
        &format!("{}/v1/findings/fleet-own", srv.base),
        Some(READ_TOKEN),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["resource"]["cluster"], json!("prod-eu"));
    assert_eq!(v["resource"]["project_display_name"], json!("ops"));
    assert_eq!(v["finding"]["cluster"], json!("prod-eu"));
    assert_eq!(v["finding"]["projectDisplayName"], json!("ops"));
    assert_eq!(v["resource"]["node"], json!(findings[0].node_name()), "{v}");
    let (_, v) = get(
        &c,
        &format!("{}/v1/findings/fleet-bare", srv.base),
        Some(READ_TOKEN),
    )
    .await;
    assert_eq!(v["resource"]["cluster"], json!("collector-default"));
    // Filters on the resource's identity, by SCC's names and the short ones.
    for (filter, want) in [
        (r#"resource.cluster="prod-eu""#, vec!["fleet-own"]),
        ("cluster=collector-default", vec!["fleet-bare"]),
        (
            r#"resource.project_display_name="ops""#,
            vec!["fleet-bare", "fleet-own"],
        ),
        ("project=ops -cluster:prod", vec!["fleet-bare"]),
    ] {
        let (s, v) = get(
            &c,
            &format!("{}/v1/findings?filter={}", srv.base, urlencode(filter)),
            Some(READ_TOKEN),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{filter}: {v}");
        let mut got: Vec<String> = v["listFindingsResults"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| id_of(&r["finding"]))
            .collect();
        got.sort();
        assert_eq!(got, want, "{filter}");
        assert_eq!(v["totalSize"], json!(want.len()), "{filter}");
    }
    // The store itself was not wrapped: what was there keeps no cluster.
    assert_eq!(store.count(r#"cluster="""#).unwrap(), findings.len() as u64);
    srv.stop().await;
}

async fn set_state_and_mute_need_write_and_persist(b: Backend) {
    let Some((_d, store, findings)) =
        example_store_on(b, "set_state_and_mute_need_write_and_persist")
    else {
        return;
    };
    let srv = TestServer::start(authed(), store.clone()).await;
    let c = client();
    let id = findings[0].id().to_string();
    let st = format!("{}/v1/findings/{id}:setState", srv.base);
    let mu = format!("{}/v1/findings/{id}:setMute", srv.base);
    let body = json!({"state": "INACTIVE"});
    let (s, v) = post(&c, &st, None, body.clone()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(v["error"]["status"], json!("UNAUTHENTICATED"));
    let (s, v) = post(&c, &st, Some(READ_TOKEN), body.clone()).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(v["error"]["status"], json!("PERMISSION_DENIED"));
    let (s, _) = post(&c, &st, Some("write-token-0123456789abcdeX"), body.clone()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(
        store.get(&id).unwrap().unwrap().state.as_str(),
        "ACTIVE",
        "refused writes change nothing"
    );
    let (s, v) = post(&c, &st, Some(WRITE_TOKEN), body).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["state"], json!("INACTIVE"));
    assert_eq!(store.get(&id).unwrap().unwrap().state.as_str(), "INACTIVE");
    let (s, v) = post(&c, &mu, Some(WRITE_TOKEN), json!({"mute": "MUTED"})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["mute"], json!("MUTED"));
    assert_eq!(store.get(&id).unwrap().unwrap().mute.as_str(), "MUTED");
    // The filter sees it.
    let (_, v) = get(
        &c,
        &format!("{}/v1/findings?filter=mute%3DMUTED", srv.base),
        Some(READ_TOKEN),
    )
    .await;
    assert_eq!(v["totalSize"], json!(1));
    // totalSize is cached per filter, but writes through the API invalidate it.
    let inactive = format!("{}/v1/findings?filter=state%3DINACTIVE", srv.base);
    let (_, v) = get(&c, &inactive, Some(READ_TOKEN)).await;
    let before = v["totalSize"].as_u64().unwrap();
    let other = findings[1].id();
    let (s, _) = post(
        &c,
        &format!("{}/v1/findings/{other}:setState", srv.base),
        Some(WRITE_TOKEN),
        json!({"state": "INACTIVE"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (_, v) = get(&c, &inactive, Some(READ_TOKEN)).await;
    assert_eq!(v["totalSize"], json!(before + 1));
    // Bad bodies.
    for (body, what) in [
        (json!({"state": "INACTIVE", "why": "x"}), "unknown field"),
        (json!({"state": "CLOSED"}), "unknown state"),
        (json!({}), "missing state"),
        (json!(["INACTIVE"]), "not an object"),
    ] {
        let (s, v) = post(&c, &st, Some(WRITE_TOKEN), body).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{what}: {v}");
    }
    let (s, _) = post(&c, &mu, Some(WRITE_TOKEN), json!({"mute": "UNDEFINED"})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, v) = post(
        &c,
        &mu,
        Some(WRITE_TOKEN),
        json!({"mute": "MUTED", "state": "x"}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    // Wrong content type, oversized body, unknown verb, unknown finding.
    let r = c
        .post(&st)
        .bearer_auth(WRITE_TOKEN)
        .header("content-type", "text/plain")
        .body(r#"{"state":"ACTIVE"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let huge = format!(r#"{{"state":"ACTIVE","pad":"{}"}}"#, "x".repeat(200_000));
    let r = c
        .post(&st)
        .bearer_auth(WRITE_TOKEN)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // Refused before its body was read: the connection ends, and says so, so that the client
    // does not send its next request on it (that request failed now and then, IncompleteMessage).
    assert_eq!(
        r.headers().get("connection").map(|v| v.as_bytes()),
        Some(&b"close"[..])
    );
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], json!(413));
    let (s, _) = post(
        &c,
        &format!("{}/v1/findings/{id}:delete", srv.base),
        Some(WRITE_TOKEN),
        json!({}),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = post(
        &c,
        &format!("{}/v1/findings/0000nothing:setState", srv.base),
        Some(WRITE_TOKEN),
        json!({"state": "ACTIVE"}),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Back to ACTIVE.
    let (s, v) = post(&c, &st, Some(WRITE_TOKEN), json!({"state": "ACTIVE"})).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["state"], json!("ACTIVE"));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_need_a_token_when_tokens_are_configured() {
    let (_d, store, _) = example_store();
    let srv = TestServer::start(authed(), store.clone()).await;
    let c = client();
    for path in ["/v1/findings", "/v1/categories", "/metrics"] {
        let r = c.get(format!("{}{path}", srv.base)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert!(r.headers().get("www-authenticate").is_some());
        for t in [READ_TOKEN, WRITE_TOKEN] {
            let r = c
                .get(format!("{}{path}", srv.base))
                .bearer_auth(t)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK, "{path}");
        }
    }
    // Open: health, the OpenAPI document, the console's static files (no data in them).
    for path in ["/healthz", "/v1/openapi.json", "/", "/assets/app.js"] {
        let r = c.get(format!("{}{path}", srv.base)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }
    let m = c
        .get(format!("{}/metrics", srv.base))
        .bearer_auth(READ_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(m.contains("ward_api_auth_failures_total 3"), "{m}");
    assert!(m.contains("route=\"/v1/findings\""), "{m}");
    assert!(
        m.contains("ward_api_request_duration_seconds_bucket"),
        "{m}"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_without_tokens_opens_reads_and_guards_writes_and_host() {
    let (_d, store, findings) = example_store();
    let srv = TestServer::start(ApiConfig::default(), store.clone()).await;
    let token = srv.ephemeral_token.clone().unwrap();
    assert!(srv.console_url.ends_with(&format!("#token={token}")));
    let c = client();
    let (s, _) = get(&c, &format!("{}/v1/findings", srv.base), None).await;
    assert_eq!(s, StatusCode::OK);
    let url = format!("{}/v1/findings/{}:setState", srv.base, findings[0].id());
    let (s, _) = post(&c, &url, None, json!({"state": "INACTIVE"})).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "writes always need a token");
    let (s, _) = post(&c, &url, Some(&token), json!({"state": "INACTIVE"})).await;
    assert_eq!(s, StatusCode::OK);
    // DNS rebinding: a foreign Host header is refused while reads are open.
    let r = c
        .get(format!("{}/v1/findings", srv.base))
        .header("host", "attacker.example:8080")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = c
        .get(format!("{}/v1/findings", srv.base))
        .header("host", "localhost:8080")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    srv.stop().await;
}

#[test]
fn refuses_to_start_off_loopback_without_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path().join("w.db")).unwrap());
    for listen in ["0.0.0.0:0", "10.1.2.3:8080", "[::]:8080"] {
        let cfg = ApiConfig {
            listen: listen.parse().unwrap(),
            ..ApiConfig::default()
        };
        let e = Server::new(cfg, store.clone()).unwrap_err();
        assert!(matches!(e, ConfigError::TokensRequired { .. }), "{e}");
        assert!(e.to_string().contains("without API tokens"), "{e}");
    }
    let cfg = ApiConfig {
        listen: "0.0.0.0:0".parse().unwrap(),
        tokens: tokens(),
        ..ApiConfig::default()
    };
    let s = Server::new(cfg, store.clone()).unwrap();
    assert!(s.ephemeral_write_token().is_none());
    // Token files are read; missing ones are errors.
    let tf = dir.path().join("t");
    std::fs::write(&tf, format!("{WRITE_TOKEN}\n")).unwrap();
    let mut cfg = authed();
    cfg.tokens[1].token = None;
    cfg.tokens[1].token_file = Some(tf);
    Server::new(cfg.clone(), store.clone()).unwrap();
    cfg.tokens[1].token_file = Some(dir.path().join("missing"));
    assert!(matches!(
        Server::new(cfg, store),
        Err(ConfigError::Read { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_headers_and_no_cors() {
    let (_d, store, _) = example_store();
    let srv = TestServer::start(authed(), store).await;
    let c = client();
    for path in [
        "/",
        "/assets/app.js",
        "/v1/findings",
        "/healthz",
        "/nothing",
    ] {
        let r = c
            .get(format!("{}{path}", srv.base))
            .bearer_auth(READ_TOKEN)
            .header("origin", "https://attacker.example")
            .send()
            .await
            .unwrap();
        let h = r.headers();
        let csp = h.get("content-security-policy").unwrap().to_str().unwrap();
        assert!(csp.contains("script-src 'self'"), "{path}");
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
        assert!(csp.contains("frame-ancestors 'none'"));
        assert_eq!(h.get("x-content-type-options").unwrap(), "nosniff");
        assert_eq!(h.get("referrer-policy").unwrap(), "no-referrer");
        assert!(
            h.get("access-control-allow-origin").is_none(),
            "{path}: no CORS"
        );
    }
    // A CORS preflight gets no allowance.
    let r = c
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/v1/findings", srv.base),
        )
        .header("origin", "https://attacker.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    assert_ne!(r.status(), StatusCode::OK);
    srv.stop().await;
}

/// Every path and method in the OpenAPI document answers with a status it documents.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_openapi_route_answers() {
    let (_d, store, findings) = example_store();
    let srv = TestServer::start(authed(), store).await;
    let c = client();
    let (s, doc) = get(&c, &format!("{}/v1/openapi.json", srv.base), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        doc["openapi"].as_str().unwrap().split('.').next(),
        Some("3")
    );
    let id = findings[0].id();
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 9);
    let mut checked = 0;
    for (path, item) in paths {
        // The fleet endpoints need a node registry and node credentials: tests/ingest.rs.
        if ["/v1/enroll", "/v1/ingest", "/v1/nodes"]
            .iter()
            .any(|p| path.starts_with(p))
        {
            continue;
        }
        for (method, op) in item.as_object().unwrap() {
            let url = format!("{}{}", srv.base, path.replace("{id}", id));
            let rq = match method.as_str() {
                "get" => c.get(&url),
                "post" => {
                    let body = if path.ends_with(":setState") {
                        json!({"state": "ACTIVE"})
                    } else {
                        json!({"mute": "UNMUTED"})
                    };
                    c.post(&url).json(&body)
                }
                m => panic!("unexpected method {m}"),
            };
            let r = rq.bearer_auth(WRITE_TOKEN).send().await.unwrap();
            let status = r.status().as_u16().to_string();
            assert_eq!(status, "200", "{method} {path}");
            let documented = op["responses"].as_object().unwrap();
            assert!(documented.contains_key(&status), "{method} {path} {status}");
            let ct = r.headers()["content-type"].to_str().unwrap().to_string();
            let want = documented["200"]["content"]
                .as_object()
                .unwrap()
                .keys()
                .next()
                .unwrap()
                .clone();
            assert!(ct.starts_with(&want), "{method} {path}: {ct} vs {want}");
            checked += 1;
        }
    }
    assert!(checked >= 9);
    // And each router path is documented (the list is the router's, kept here in sync).
    for p in [
        "/v1/findings",
        "/v1/findings/{id}",
        "/v1/findings/{id}:setState",
        "/v1/findings/{id}:setMute",
        "/v1/findings/{id}/related",
        "/v1/categories",
        "/v1/openapi.json",
        "/healthz",
        "/metrics",
    ] {
        assert!(paths.contains_key(p), "{p} not documented");
    }
    srv.stop().await;
}

/// The OpenAPI document lists every status an operation can answer: the ones any request can
/// get before a handler runs (malformed: 400, DNS-rebinding guard: 403, body deadline and size:
/// 408/413, URI and head size: 414/431, per-client cap: 429), 401 behind the token, the store's
/// 500/503, 404 on a finding, and 409/415 on the writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_lists_every_status_and_405s_name_the_methods() {
    let doc: Value = serde_json::from_str(ward_api::OPENAPI_JSON).unwrap();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let documented: BTreeSet<&str> = op["responses"]
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            let mut want = vec!["200", "400", "403", "408", "413", "414", "429", "431"];
            if op["security"] != json!([{}]) {
                want.push("401");
            }
            if path.starts_with("/v1/findings") {
                want.extend(["500", "503"]);
            }
            if path.contains("{id}") {
                want.push("404");
            }
            if method == "post" {
                want.extend(["409", "415"]);
            }
            for s in want {
                assert!(documented.contains(s), "{method} {path} does not list {s}");
            }
        }
    }
    // A 405 says what the resource takes (RFC 9110 15.5.6).
    let (_d, store, findings) = example_store();
    let srv = TestServer::start(authed(), store).await;
    let c = client();
    let id = findings[0].id();
    for (method, path, allow) in [
        (
            reqwest::Method::POST,
            format!("/v1/findings/{id}"),
            "GET,HEAD",
        ),
        (
            reqwest::Method::GET,
            format!("/v1/findings/{id}:setState"),
            "POST",
        ),
        (
            reqwest::Method::DELETE,
            format!("/v1/findings/{id}:setMute"),
            "POST",
        ),
        (
            reqwest::Method::OPTIONS,
            format!("/v1/findings/{id}:setMute"),
            "POST",
        ),
        (
            reqwest::Method::DELETE,
            "/v1/findings".to_string(),
            "GET,HEAD",
        ),
    ] {
        let r = c
            .request(method.clone(), format!("{}{path}", srv.base))
            .bearer_auth(WRITE_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        let got = r
            .headers()
            .get("allow")
            .map(|v| v.to_str().unwrap().replace(' ', ""));
        assert_eq!(got.as_deref(), Some(allow), "{method} {path}");
        let (_, v) = json_of(r).await;
        assert_eq!(v["error"]["code"], json!(405), "{method} {path}: {v}");
    }
    srv.stop().await;
}

/// A writer holding SQLite's write lock (another process, e.g. the agent) never turns into a
/// 500: reads go on (WAL), writes wait for the lock (busy timeout) and then succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_database_is_never_a_500() {
    let (dir, store, findings) = example_store();
    let srv = TestServer::start(authed(), store.clone()).await;
    let db = dir.path().join("ward.db");
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    // Another connection takes the write lock and holds it for 1.5 s.
    let holder = std::thread::spawn(move || {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch("BEGIN IMMEDIATE; UPDATE findings SET count = count WHERE seq = 1;")
            .unwrap();
        locked_tx.send(()).unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        conn.execute_batch("COMMIT").unwrap();
    });
    locked_rx.recv().unwrap();
    let c = client();
    let t0 = std::time::Instant::now();
    let write = {
        let c = c.clone();
        let url = format!("{}/v1/findings/{}:setState", srv.base, findings[1].id());
        tokio::spawn(async move {
            post(&c, &url, Some(WRITE_TOKEN), json!({"state": "INACTIVE"})).await
        })
    };
    let mut reads = 0;
    while t0.elapsed() < Duration::from_millis(1200) {
        let (s, v) = get(&c, &format!("{}/v1/findings", srv.base), Some(READ_TOKEN)).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        reads += 1;
    }
    let (s, v) = write.await.unwrap();
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(
        t0.elapsed() >= Duration::from_millis(1400),
        "the write waited for the lock"
    );
    holder.join().unwrap();
    assert!(reads > 5);
    // A busy writer in a loop (upserts) while the API reads and writes.
    let store2 = Arc::new(SqliteStore::open(dir.path().join("ward.db")).unwrap());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let churn = {
        let stop = stop.clone();
        let fs = findings.clone();
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                store2.upsert_many(&fs).unwrap();
                n += 1;
                // Like the agent, which flushes batches: a writer that re-takes the lock in a
                // tight loop starves others (SQLite's busy handler is not fair).
                std::thread::sleep(Duration::from_millis(2));
            }
            n
        })
    };
    for i in 0..40 {
        let (s, v) = get(
            &c,
            &format!("{}/v1/findings?pageSize=5", srv.base),
            Some(READ_TOKEN),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let state = if i % 2 == 0 { "INACTIVE" } else { "ACTIVE" };
        let (s, v) = post(
            &c,
            &format!(
                "{}/v1/findings/{}:setState",
                srv.base,
                findings[i % findings.len()].id()
            ),
            Some(WRITE_TOKEN),
            json!({ "state": state }),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(churn.join().unwrap() > 0);
    srv.stop().await;
}

#[cfg(feature = "tls")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_https_with_configured_cert_and_key() {
    let (dir, store, _) = example_store();
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert_pem = cert.cert.pem();
    std::fs::write(dir.path().join("cert.pem"), &cert_pem).unwrap();
    std::fs::write(dir.path().join("key.pem"), cert.key_pair.serialize_pem()).unwrap();
    let cfg = ApiConfig {
        tokens: tokens(),
        tls: Some(ward_api::TlsConfig {
            cert: dir.path().join("cert.pem"),
            key: dir.path().join("key.pem"),
        }),
        ..ApiConfig::default()
    };
    let srv = TestServer::start(cfg, store).await;
    assert!(srv.base.starts_with("https://"));
    let c = Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let r = c
        .get(format!("{}/v1/findings", srv.base))
        .bearer_auth(READ_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().get("strict-transport-security").is_some());
    // hyper's own answers are JSON over TLS too: more header fields than it takes is its 431,
    // rewritten under the TLS stream (src/wire.rs) with the security headers and HSTS.
    let mut rq = c.get(format!("{}/healthz", srv.base));
    for i in 0..150 {
        rq = rq.header(format!("x-f{i}"), "v");
    }
    let r = rq.send().await.unwrap();
    assert_eq!(r.status().as_u16(), 431);
    for h in [
        "content-security-policy",
        "strict-transport-security",
        "x-frame-options",
    ] {
        assert!(r.headers().get(h).is_some(), "no {h}: {:?}", r.headers());
    }
    let (_, v) = json_of(r).await;
    assert_eq!(v["error"]["code"], json!(431), "{v}");
    // Plain HTTP on the TLS port gets no answer.
    let plain = srv.base.replace("https://", "http://");
    assert!(client()
        .get(format!("{plain}/healthz"))
        .send()
        .await
        .is_err());
    // A client that does not trust the certificate is refused.
    assert!(client()
        .get(format!("{}/healthz", srv.base))
        .send()
        .await
        .is_err());
    srv.stop().await;
}

both!(list_pages_through_every_finding_exactly_once);
both!(filters_and_order_match_the_store);
both!(get_returns_the_exact_record_and_404s_are_json);
both!(related_finds_the_same_container_within_the_window);
both!(set_state_and_mute_need_write_and_persist);
both!(list_and_get_pair_findings_with_their_resource);

/// PostgreSQL down (a collector's database restarting): the API answers 503 with a JSON
/// error, never a 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_is_down_is_a_503() {
    let Some((mut guard, store, _)) =
        example_store_on(Backend::Postgres, "a_database_that_is_down_is_a_503")
    else {
        return;
    };
    let srv = TestServer::start(authed(), store.clone()).await;
    let c = client();
    let url = format!("{}/v1/findings?pageSize=1", srv.base);
    let (s, _) = get(&c, &url, Some(READ_TOKEN)).await;
    assert_eq!(s, StatusCode::OK);
    let pg = guard.postgres().unwrap();
    tokio::task::block_in_place(|| pg.stop());
    let (s, v) = get(&c, &url, Some(READ_TOKEN)).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("unavailable"),
        "{v}"
    );
    srv.stop().await;
}
