//! Store behaviour against both backends: real SQLite files in temporary directories and a
//! real PostgreSQL server per test (`ward_testkit::postgres::TempPostgres`). The shared
//! behaviour is written once over `&dyn FindingStore` and run on each backend by `both!`;
//! backend-specific checks (files, schema versions, concurrency) follow.

mod common;
#[macro_use]
#[path = "common/backend.rs"]
mod backend;

use backend::*;
use common::*;
use std::collections::HashSet;
use ward_event::finding::{Mute, Severity, State};
use ward_event::Category;
use ward_store::{FindingStore, ListQuery, SqliteStore, StoreError, Upserted, SCHEMA_VERSION};

const BUILDER: Place = Place {
    container: "builder",
    container_id: "c-build",
    image: "localhost/builder:latest",
    ns: "",
    pod: "",
    node: "host-1",
};

fn temp_store(b: Backend) -> (Guard, Box<dyn FindingStore>) {
    b.open()
}

#[test]
fn fresh_database_migrates_and_findings_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dirs/findings.db");
    let f = finding("f1", Category::ReverseShell, T0, &WEB);
    {
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.upsert(&f).unwrap(), Upserted::Inserted);
    }
    let conn = rusqlite::Connection::open(&path).unwrap();
    let v: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, SCHEMA_VERSION);
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    drop(conn);

    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.get(&f.name).unwrap(), Some(f.clone()));
    assert_eq!(store.get("f1").unwrap(), Some(f.clone()));
    assert_eq!(store.get("nope").unwrap(), None);
    drop(store);

    let ro = SqliteStore::open_read_only(&path).unwrap();
    assert!(ro.is_read_only());
    assert_eq!(ro.count("").unwrap(), 1);
    let e = ro.upsert(&f).unwrap_err();
    assert!(matches!(e, StoreError::ReadOnly { .. }), "{e}");
    let e = ro.set_state("f1", State::Inactive).unwrap_err();
    assert!(matches!(e, StoreError::ReadOnly { .. }), "{e}");
}

#[test]
fn refuses_a_newer_schema_and_missing_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("future.db");
    drop(SqliteStore::open(&path).unwrap());
    rusqlite::Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    for e in [
        SqliteStore::open(&path).unwrap_err(),
        SqliteStore::open_read_only(&path).unwrap_err(),
    ] {
        assert!(
            matches!(e, StoreError::SchemaTooNew { found: 99, .. }),
            "{e}"
        );
        let msg = e.to_string();
        assert!(msg.contains("future.db") && msg.contains("99"), "{msg}");
    }
    let e = SqliteStore::open_read_only(dir.path().join("missing.db")).unwrap_err();
    assert!(e.to_string().contains("missing.db"), "{e}");

    // A file that is not SQLite: a clear error, no panic.
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, vec![b'x'; 8192]).unwrap();
    let e = SqliteStore::open(&junk).unwrap_err();
    assert!(e.to_string().contains("junk.db"), "{e}");
}

fn upsert_updates_count_and_time_and_keeps_user_state_and_mute(b: Backend) {
    let (_d, store) = temp_store(b);
    let f = finding("f1", Category::ReverseShell, T0, &WEB);
    assert_eq!(store.upsert(&f).unwrap(), Upserted::Inserted);

    let g = repeat(&f, 5, T0 + 60 * SEC);
    assert_eq!(store.upsert(&g).unwrap(), Upserted::Updated);
    let got = store.get("f1").unwrap().unwrap();
    assert_eq!(got.count(), 5);
    assert_eq!(got.event_time, g.event_time);
    assert_eq!(got.create_time, f.create_time);
    assert_eq!(store.count("count=5").unwrap(), 1);

    // The user resolves and mutes it.
    let s = store.set_state(&f.name, State::Inactive).unwrap();
    assert_eq!(s.state, State::Inactive);
    let m = store.set_mute("f1", Mute::Muted).unwrap();
    assert_eq!((m.state, m.mute), (State::Inactive, Mute::Muted));

    // The engine aggregates more repeats: it sends ACTIVE/UNDEFINED again.
    let h = repeat(&f, 9, T0 + 120 * SEC);
    assert_eq!(h.state, State::Active);
    assert_eq!(store.upsert(&h).unwrap(), Upserted::Updated);
    let got = store.get("f1").unwrap().unwrap();
    assert_eq!(got.count(), 9);
    assert_eq!(got.event_time, h.event_time);
    assert_eq!((got.state, got.mute), (State::Inactive, Mute::Muted));
    assert_eq!(store.count("state=INACTIVE AND mute=MUTED").unwrap(), 1);
    assert_eq!(store.count("state=ACTIVE").unwrap(), 0);

    // An older copy arriving late is ignored.
    assert_eq!(
        store.upsert(&repeat(&f, 7, T0 + 90 * SEC)).unwrap(),
        Upserted::Stale
    );
    assert_eq!(store.get("f1").unwrap().unwrap().count(), 9);

    // Without a user decision, the engine's state applies.
    let other = finding("f2", Category::AddedBinaryExecuted, T0, &API);
    store.upsert(&other).unwrap();
    let mut closed = repeat(&other, 2, T0 + SEC);
    closed.state = State::Inactive;
    store.upsert(&closed).unwrap();
    assert_eq!(store.get("f2").unwrap().unwrap().state, State::Inactive);

    // Batch upsert: counts by outcome, one transaction.
    let batch = vec![
        repeat(&other, 3, T0 + 2 * SEC),
        finding("f3", Category::ReverseShell, T0, &DB),
        repeat(&f, 1, T0),
    ];
    let sum = store.upsert_many(&batch).unwrap();
    assert_eq!((sum.inserted, sum.updated, sum.stale), (1, 1, 1));
    assert_eq!(store.count("").unwrap(), 3);

    // Bad input is an error, not a panic, and the batch is rolled back.
    let mut bad = finding("f4", Category::ReverseShell, T0, &DB);
    bad.event_time = "yesterday".into();
    let e = store
        .upsert_many(&[finding("f5", Category::ReverseShell, T0, &DB), bad])
        .unwrap_err();
    assert!(e.to_string().contains("eventTime 'yesterday'"), "{e}");
    assert_eq!(store.count("").unwrap(), 3);

    assert!(matches!(
        store.set_state("nope", State::Active).unwrap_err(),
        StoreError::NotFound(_)
    ));
}

fn ambiguous_ids_need_the_full_name(b: Backend) {
    let (_d, store) = temp_store(b);
    let a = finding("same", Category::ReverseShell, T0, &WEB);
    let mut b = a.clone();
    b.name = "organizations/1/sources/ward/findings/same".into();
    store.upsert_many(&[a.clone(), b]).unwrap();
    let e = store.get("same").unwrap_err();
    assert!(
        matches!(e, StoreError::AmbiguousId { matches: 2, .. }),
        "{e}"
    );
    assert_eq!(store.get(&a.name).unwrap(), Some(a));
}

/// Six findings in four places; f2 repeated, f4 resolved by the user, f6 muted.
fn filter_fixture(b: Backend) -> (Guard, Box<dyn FindingStore>) {
    let (d, store) = temp_store(b);
    let f1 = finding("f1", Category::ReverseShell, T0 + 10 * SEC, &WEB);
    let f2 = finding(
        "f2",
        Category::PossibleRemoteCommandExecutionDetected,
        T0 + 20 * SEC,
        &WEB,
    );
    let f3 = finding(
        "f3",
        Category::MaliciousPythonExecuted,
        T0 + 86_400 * SEC + 5 * SEC,
        &API,
    );
    let f4 = finding(
        "f4",
        Category::LaunchCodeCompilerToolInContainer,
        T0 + 30 * SEC,
        &BUILDER,
    );
    let f5 = finding(
        "f5",
        Category::AddedBinaryExecuted,
        T0 + 2 * 86_400 * SEC,
        &DB,
    );
    let f6 = with_severity(
        finding(
            "f6",
            Category::AddedMaliciousBinaryExecuted,
            T0 + 40 * SEC,
            &DB,
        ),
        Severity::High,
    );
    store
        .upsert_many(&[f1, f2.clone(), f3, f4, f5, f6])
        .unwrap();
    store.upsert(&repeat(&f2, 3, T0 + 25 * SEC)).unwrap();
    store.set_state("f4", State::Inactive).unwrap();
    store.set_mute("f6", Mute::Muted).unwrap();
    (d, store)
}

fn matching(store: &dyn FindingStore, filter: &str) -> Vec<String> {
    let page = store
        .list(&ListQuery {
            filter: filter.into(),
            ..Default::default()
        })
        .unwrap_or_else(|e| panic!("{filter}: {e}"));
    assert!(page.next_page_token.is_none());
    let mut got = ids(&page.findings);
    assert_eq!(
        store.count(filter).unwrap() as usize,
        got.len(),
        "count({filter})"
    );
    got.sort();
    got
}

fn filters_of_every_kind(b: Backend) {
    let (_d, store) = filter_fixture(b);
    let cases: &[(&str, &[&str])] = &[
        ("", &["f1", "f2", "f3", "f4", "f5", "f6"]),
        // category: display name, API name, case-insensitive, contains on either
        (r#"category="Reverse Shell""#, &["f1"]),
        ("category=REVERSE_SHELL", &["f1"]),
        (r#"category="reverse shell""#, &["f1"]),
        (
            r#"category!="Reverse Shell""#,
            &["f2", "f3", "f4", "f5", "f6"],
        ),
        (r#"category:"Execution""#, &["f2", "f3", "f5", "f6"]),
        ("category:MALICIOUS", &["f3", "f6"]),
        ("category:shell", &["f1"]),
        ("category:PYTHON_EXEC", &["f3"]),
        (r#"category="Not A Category""#, &[]),
        // severity, ordered
        ("severity=CRITICAL", &["f1", "f3"]),
        ("severity=critical", &["f1", "f3"]),
        ("severity>=HIGH", &["f1", "f3", "f6"]),
        ("severity>MEDIUM", &["f1", "f3", "f6"]),
        ("severity<MEDIUM", &["f4", "f5"]),
        ("severity<=MEDIUM", &["f2", "f4", "f5"]),
        ("severity:low", &["f4", "f5"]),
        ("severity!=LOW", &["f1", "f2", "f3", "f6"]),
        // state and mute, including user-set values
        ("state=INACTIVE", &["f4"]),
        ("state=active", &["f1", "f2", "f3", "f5", "f6"]),
        ("mute=MUTED", &["f6"]),
        ("mute!=MUTED", &["f1", "f2", "f3", "f4", "f5"]),
        ("mute=UNDEFINED", &["f1", "f2", "f3", "f4", "f5"]),
        // times: RFC 3339, dates (whole day), epoch milliseconds
        (r#"eventTime>="2026-11-22T00:00:00Z""#, &["f3", "f5"]),
        ("eventTime=2026-11-22", &["f3"]),
        ("eventTime:2026-11-22", &["f3"]),
        ("eventTime!=2026-11-21", &["f3", "f5"]),
        ("eventTime>2026-11-21", &["f3", "f5"]),
        ("eventTime<=2026-11-21", &["f1", "f2", "f4", "f6"]),
        ("eventTime<2026-11-21", &[]),
        ("eventTime<2026-11-21T00:00:25Z", &["f1"]),
        ("eventTime<=2026-11-21T00:00:25Z", &["f1", "f2"]),
        (
            "eventTime>2026-11-21T01:00:25+01:00 eventTime<2026-11-21T00:00:35Z",
            &["f4"],
        ),
        ("eventTime>=1795219230000", &["f3", "f4", "f5", "f6"]),
        ("event_time>=1795219230000", &["f3", "f4", "f5", "f6"]),
        (r#"createTime<"2026-11-21T00:00:21Z""#, &["f1", "f2"]),
        // text fields: = exact, : contains (case-insensitive), aliases
        (r#"containerName:"WEB""#, &["f1", "f2"]),
        ("container=web-frontend", &["f1", "f2"]),
        ("containerName=web", &[]),
        ("containerName!=web-frontend", &["f3", "f4", "f5", "f6"]),
        ("containerId=c-db", &["f5", "f6"]),
        (r#"image:"shop/""#, &["f1", "f2", "f3"]),
        (
            r#"containerImageUri="docker.io/library/postgres:16""#,
            &["f5", "f6"],
        ),
        ("pod=pg-0", &["f5", "f6"]),
        (r#"podName:"web""#, &["f1", "f2"]),
        ("ns=shop", &["f1", "f2", "f3"]),
        (r#"namespace="""#, &["f4"]),
        ("node=node-a", &["f1", "f2", "f5", "f6"]),
        (r#"resourceName:"builder""#, &["f4"]),
        (r#"name:"findings/f1""#, &["f1"]),
        (
            r#"name="organizations/0/sources/ward/findings/f3""#,
            &["f3"],
        ),
        // count
        ("count>=3", &["f2"]),
        ("count=1", &["f1", "f3", "f4", "f5", "f6"]),
        ("count<3", &["f1", "f3", "f4", "f5", "f6"]),
        // boolean structure: AND binds tighter than OR; implicit AND; NOT and '-'
        ("ns=shop AND severity=CRITICAL", &["f1", "f3"]),
        ("ns=shop severity=CRITICAL", &["f1", "f3"]),
        ("ns=shop and severity=CRITICAL", &["f1", "f3"]),
        ("severity=LOW OR mute=MUTED", &["f4", "f5", "f6"]),
        (
            "ns=shop AND severity=CRITICAL OR node=host-1",
            &["f1", "f3", "f4"],
        ),
        (
            "node=host-1 OR ns=shop AND severity=CRITICAL",
            &["f1", "f3", "f4"],
        ),
        (
            "ns=shop AND (severity=CRITICAL OR node=node-a)",
            &["f1", "f2", "f3"],
        ),
        ("NOT ns=shop", &["f4", "f5", "f6"]),
        ("-ns=shop", &["f4", "f5", "f6"]),
        ("NOT (ns=shop OR ns=data)", &["f4"]),
        ("-(ns=shop OR ns=data)", &["f4"]),
        ("NOT NOT ns=data", &["f5", "f6"]),
        ("-category:execution -state=INACTIVE", &["f1"]),
        ("((((ns=data))))", &["f5", "f6"]),
    ];
    // '-' and NOT negate any condition: the complement of the plain one, on every field kind.
    let all = matching(&*store, "");
    for plain in [
        "severity=LOW",
        "severity>=HIGH",
        "state=ACTIVE",
        "mute=MUTED",
        "category:execution",
        "count>=3",
        "createTime<\"2026-11-21T00:00:21Z\"",
        "ns=shop",
        "name:\"findings/f1\"",
    ] {
        let hit = matching(&*store, plain);
        let rest: Vec<String> = all.iter().filter(|i| !hit.contains(i)).cloned().collect();
        assert_eq!(matching(&*store, &format!("-{plain}")), rest, "-{plain}");
        assert_eq!(
            matching(&*store, &format!("NOT {plain}")),
            rest,
            "NOT {plain}"
        );
    }
    for (filter, want) in cases {
        let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
        assert_eq!(matching(&*store, filter), want, "filter: {filter}");
    }
}

/// Categories of detection rules join the category table when the rules load; a finding
/// stored by a rule that is no longer loaded still lists, shows and filters by its text.
fn rule_categories_filter_like_built_in_ones_and_unknown_ones_still_list(b: Backend) {
    use ward_event::category::RuleCategory;
    let (_d, store) = filter_fixture(b);
    let techniques = ["T1059.004".to_string()];
    let child_shell = Category::register(&RuleCategory {
        api_name: "STORE_TEST_CHILD_SHELL",
        display_name: "Store Test: Unexpected Child Shell",
        severity: Severity::Critical,
        tactic: "EXECUTION",
        techniques: &techniques,
        description: "A shell under a server.",
        next_steps: "Look.",
        enabled_by_default: true,
    })
    .unwrap();
    store
        .upsert(&finding("r1", child_shell, T0 + 40 * SEC, &WEB))
        .unwrap();
    // A finding whose rule is gone: its category text is in no table.
    let mut gone = finding("r2", Category::ReverseShell, T0 + 50 * SEC, &WEB);
    gone.category = "Store Test: Retired Rule Category".into();
    store.upsert(&gone).unwrap();
    assert_eq!(Category::parse("Store Test: Retired Rule Category"), None);
    for (filter, want) in [
        ("category=STORE_TEST_CHILD_SHELL", &["r1"][..]),
        ("category=store_test_child_shell", &["r1"]),
        (r#"category="Store Test: Unexpected Child Shell""#, &["r1"]),
        ("category:TEST_CHILD", &["r1"]),
        (r#"category:"child shell""#, &["r1"]),
        (r#"category="Store Test: Retired Rule Category""#, &["r2"]),
        ("category:retired", &["r2"]),
        (r#"category:"store test""#, &["r1", "r2"]),
        ("severity=CRITICAL ns=shop", &["f1", "f3", "r1", "r2"]),
    ] {
        let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
        assert_eq!(matching(&*store, filter), want, "filter: {filter}");
    }
    let all = matching(&*store, "");
    assert!(all.contains(&"r2".to_string()), "{all:?}");
    let got = store.get("r2").unwrap().expect("the finding shows");
    assert_eq!(got.category, "Store Test: Retired Rule Category");
}

fn sql_injection_looking_values_are_just_values(b: Backend) {
    let (_d, store) = filter_fixture(b);
    let evil = Place {
        container: "x'); DROP TABLE findings; --",
        container_id: "100%_real\\",
        ..WEB
    };
    store
        .upsert(&finding("evil", Category::ReverseShell, T0, &evil))
        .unwrap();
    for (filter, want) in [
        (
            r#"containerName="x'); DROP TABLE findings; --""#,
            vec!["evil"],
        ),
        (r#"containerName:"DROP TABLE""#, vec!["evil"]),
        (r#"containerName="' OR '1'='1""#, vec![]),
        (r#"ns="shop' OR 1=1 --""#, vec![]),
        // LIKE wildcards in a contains value are literal
        (r#"containerId:"%""#, vec!["evil"]),
        (r#"containerId:"0%_r""#, vec!["evil"]),
        (r#"containerId:"_""#, vec!["evil"]),
        (r#"containerId:"real\\""#, vec!["evil"]),
        (r#"containerId:"c_w""#, vec![]),
        (r#"name:"%""#, vec![]),
    ] {
        assert_eq!(matching(&*store, filter), want, "{filter}");
    }
    assert_eq!(store.count("").unwrap(), 7);
}

fn list_orders_and_validates(b: Backend) {
    let (_d, store) = filter_fixture(b);
    let list = |order: &str| {
        ids(&store
            .list(&ListQuery {
                order_by: order.into(),
                ..Default::default()
            })
            .unwrap()
            .findings)
    };
    assert_eq!(list(""), ["f5", "f3", "f6", "f4", "f2", "f1"]);
    assert_eq!(list("eventTime desc"), list(""));
    assert_eq!(list("eventTime"), ["f1", "f2", "f4", "f6", "f3", "f5"]);
    assert_eq!(list("createTime asc"), ["f1", "f2", "f4", "f6", "f3", "f5"]);
    assert_eq!(
        list("severity desc, eventTime asc"),
        ["f1", "f3", "f6", "f2", "f4", "f5"]
    );
    assert_eq!(list("count desc, name")[0], "f2");
    // Equal severities fall back to eventTime in the same direction.
    assert_eq!(list("severity desc"), ["f3", "f1", "f6", "f2", "f5", "f4"]);
    assert_eq!(list("severity"), ["f4", "f5", "f2", "f6", "f1", "f3"]);
    assert_eq!(list("category")[0], "f4"); // "Defense Evasion: ..."
    for bad in [
        "eventTime sideways",
        "colour",
        "eventTime, eventTime",
        "eventTime desc extra",
        ",",
    ] {
        let e = store
            .list(&ListQuery {
                order_by: bad.into(),
                ..Default::default()
            })
            .unwrap_err();
        assert!(matches!(e, StoreError::InvalidOrderBy { .. }), "{bad}: {e}");
    }
    let e = store
        .list(&ListQuery {
            filter: "severity=".into(),
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "filter error at column 10: expected a value after '='"
    );
    let page = store
        .list(&ListQuery {
            page_size: 2,
            include_total: true,
            filter: "severity>=HIGH".into(),
            ..Default::default()
        })
        .unwrap();
    assert_eq!((page.findings.len(), page.total_size), (2, Some(3)));
}

/// Walks every page; returns the ids in order.
fn walk(store: &dyn FindingStore, filter: &str, order: &str, page_size: u32) -> Vec<String> {
    let mut out = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = store
            .list(&ListQuery {
                filter: filter.into(),
                order_by: order.into(),
                page_size,
                page_token: token.clone(),
                include_total: false,
            })
            .unwrap();
        assert!(page.findings.len() <= page_size as usize);
        out.extend(ids(&page.findings));
        pages += 1;
        assert!(pages < 10_000);
        match page.next_page_token {
            Some(t) => token = t,
            None => return out,
        }
    }
}

fn pagination_has_no_duplicates_and_no_gaps_even_with_ties(b: Backend) {
    let (_d, store) = temp_store(b);
    let cats = Category::BUILT_IN;
    let mut all = Vec::new();
    for i in 0..253u64 {
        // Many findings share each eventTime (ties), in several places.
        let place = [&WEB, &API, &DB, &BUILDER][(i % 4) as usize];
        let mut f = finding(
            &format!("p{i:03}"),
            cats[(i % 8) as usize],
            T0 + (i / 10) * SEC,
            place,
        );
        f.source_properties
            .insert("Count".into(), serde_json::json!(i % 5 + 1));
        all.push(f);
    }
    store.upsert_many(&all).unwrap();
    let by_id: std::collections::HashMap<String, _> = all
        .iter()
        .map(|f| (f.id().to_string(), f.clone()))
        .collect();

    for order in [
        "",
        "eventTime",
        "severity desc",
        "severity desc, eventTime asc",
        "category, count desc",
        "count",
        "createTime desc",
        "name desc",
    ] {
        for (filter, expect) in [("", 253usize), ("ns=shop", 127), ("severity>=HIGH", 158)] {
            for page_size in [1u32, 7, 100] {
                let got = walk(&*store, filter, order, page_size);
                let uniq: HashSet<&String> = got.iter().collect();
                assert_eq!(
                    uniq.len(),
                    got.len(),
                    "duplicates: {order} {filter} {page_size}"
                );
                assert_eq!(got.len(), expect, "gaps: {order} / {filter} / {page_size}");
                // Same order as one big page.
                assert_eq!(got, walk(&*store, filter, order, 1000), "{order}");
            }
        }
        // Order is respected across page boundaries for the primary key.
        let got = walk(&*store, "", order, 7);
        if order.is_empty() {
            let times: Vec<&str> = got.iter().map(|i| by_id[i].event_time.as_str()).collect();
            assert!(times.windows(2).all(|w| w[0] >= w[1]));
        }
    }

    // Tokens are opaque but checked.
    let first = store
        .list(&ListQuery {
            page_size: 5,
            ..Default::default()
        })
        .unwrap();
    let token = first.next_page_token.unwrap();
    for (filter, order, tok) in [
        ("", "", "garbage".to_string()),
        ("", "", "7b7d".to_string()),
        ("ns=shop", "", token.clone()),
        ("", "severity desc", token.clone()),
    ] {
        let e = store
            .list(&ListQuery {
                filter: filter.into(),
                order_by: order.into(),
                page_token: tok,
                ..Default::default()
            })
            .unwrap_err();
        assert!(matches!(e, StoreError::InvalidPageToken(_)), "{e}");
    }
    // Oversized pages are clamped.
    let big = store
        .list(&ListQuery {
            page_size: 100_000,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(big.findings.len(), 253);
}

fn related_findings_share_container_or_pod_within_the_window(b: Backend) {
    let (_d, store) = temp_store(b);
    let web2 = Place {
        container: "sidecar",
        container_id: "c-sidecar",
        ..WEB
    }; // same pod as WEB, other container
    let restarted = Place {
        container_id: "c-web-2",
        ns: "",
        pod: "",
        ..WEB
    }; // same container name and node, other id, no pod
    let no_id = Place {
        container: "builder",
        container_id: "",
        ..BUILDER
    };
    let fs = vec![
        finding("a", Category::ReverseShell, T0 + 100 * SEC, &WEB),
        finding(
            "b",
            Category::PossibleRemoteCommandExecutionDetected,
            T0 + 90 * SEC,
            &WEB,
        ),
        finding("c", Category::AddedBinaryExecuted, T0 + 150 * SEC, &web2),
        finding("d", Category::AddedBinaryExecuted, T0 + 500 * SEC, &WEB), // outside window
        finding("e", Category::AddedBinaryExecuted, T0 + 100 * SEC, &API), // other pod
        finding(
            "f",
            Category::AddedBinaryExecuted,
            T0 + 101 * SEC,
            &restarted,
        ),
        finding("g", Category::AddedBinaryExecuted, T0 + 40 * SEC, &BUILDER),
        finding("h", Category::AddedBinaryExecuted, T0 + 60 * SEC, &no_id),
        finding(
            "i",
            Category::AddedBinaryExecuted,
            T0 + 60 * SEC,
            &Place {
                node: "other",
                ..no_id.clone()
            },
        ),
    ];
    store.upsert_many(&fs).unwrap();
    let rel = |n: &str, w: u64| ids(&store.related(n, w * SEC).unwrap());
    assert_eq!(rel("a", 60), ["b", "c"]);
    assert_eq!(rel("a", 10), ["b"]);
    assert_eq!(rel("a", 1000), ["b", "c", "d"]);
    assert_eq!(rel("a", 0), Vec::<String>::new());
    // The window is inclusive: b is exactly 60 s before c.
    assert_eq!(rel("c", 60), ["b", "a"]);
    assert_eq!(rel("c", 59), ["a"]);
    // Same name and node, different container id: another container.
    assert_eq!(rel("f", 60), Vec::<String>::new());
    // No container id: name + node decide.
    assert_eq!(rel("h", 60), ["g"]);
    assert_eq!(rel("g", 60), ["h"]);
    assert!(matches!(
        store.related("zzz", SEC).unwrap_err(),
        StoreError::NotFound(_)
    ));
    // Huge windows do not overflow.
    assert_eq!(rel("a", u64::MAX / SEC).len(), 3);
}

/// A finding placed in a fleet: `place`, on `cluster` and `project` ("" = not set).
fn in_fleet(id: &str, t: u64, place: &Place, cluster: &str, project: &str) -> ward_event::Finding {
    let mut f = finding(id, Category::AddedBinaryExecuted, t, place);
    f.cluster = (!cluster.is_empty()).then(|| cluster.to_string());
    f.project_display_name = (!project.is_empty()).then(|| project.to_string());
    f
}

/// Resource identity: `cluster`, `project` (and their SCC names `resource.cluster`,
/// `resource.project_display_name`) and `node` select findings on both stores, counts agree
/// with pages, and related findings follow a container id or a pod across nodes (several
/// agents, whichever collector stored them) but never into another cluster.
fn cluster_and_project_filter_and_related_follow_pods_across_nodes(b: Backend) {
    let (_d, store) = temp_store(b);
    let web_b = Place {
        node: "node-b",
        container_id: "c-web-b",
        ..WEB
    }; // the same pod, rescheduled to node-b with a new container
    let moved = Place {
        node: "node-c",
        ..WEB
    }; // the same container id reported from another node
    let fs = vec![
        in_fleet("p1", T0 + 100 * SEC, &WEB, "prod-eu", "shop"),
        in_fleet("p2", T0 + 110 * SEC, &web_b, "prod-eu", "shop"),
        in_fleet("p3", T0 + 120 * SEC, &moved, "prod-eu", "shop"),
        // Same pod and container names in another cluster: not related.
        in_fleet(
            "s1",
            T0 + 105 * SEC,
            &Place {
                container_id: "c-web-staging",
                ..WEB
            },
            "staging",
            "shop",
        ),
        in_fleet("d1", T0 + 130 * SEC, &DB, "prod-us", "data"),
        in_fleet("h1", T0 + 140 * SEC, &BUILDER, "", ""),
    ];
    store.upsert_many(&fs).unwrap();
    let cases: &[(&str, &[&str])] = &[
        ("cluster=prod-eu", &["p1", "p2", "p3"]),
        (r#"resource.cluster="prod-eu""#, &["p1", "p2", "p3"]),
        ("cluster:PROD", &["d1", "p1", "p2", "p3"]),
        ("cluster!=prod-eu", &["d1", "h1", "s1"]),
        (r#"cluster="""#, &["h1"]),
        ("project=shop", &["p1", "p2", "p3", "s1"]),
        (
            r#"resource.project_display_name="shop""#,
            &["p1", "p2", "p3", "s1"],
        ),
        ("projectDisplayName=data", &["d1"]),
        ("-project=shop", &["d1", "h1"]),
        ("project=shop cluster=staging", &["s1"]),
        ("resource.node=node-b", &["p2"]),
        ("node=node-a cluster=prod-eu", &["p1"]),
        ("cluster=prod-eu OR project=data", &["d1", "p1", "p2", "p3"]),
        ("cluster=nowhere", &[]),
    ];
    for (filter, want) in cases {
        let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
        assert_eq!(matching(&*store, filter), want, "filter: {filter}");
    }
    let rel = |n: &str| ids(&store.related(n, 600 * SEC).unwrap());
    // p1 -> p2 (same pod on another node), p3 (same container id on another node).
    assert_eq!(rel("p1"), ["p2", "p3"]);
    assert_eq!(rel("p2"), ["p1", "p3"]);
    // The staging pod of the same name is its own.
    assert_eq!(rel("s1"), Vec::<String>::new());
    // The record and the derived resource carry the identity.
    let got = store.get("p2").unwrap().unwrap();
    let r = got.resource();
    assert_eq!(r.cluster.as_deref(), Some("prod-eu"));
    assert_eq!(r.project_display_name.as_deref(), Some("shop"));
    assert_eq!(r.node.as_deref(), Some("node-b"));
    // A later update moving the finding to another cluster moves it in the filters too.
    let mut again = in_fleet("h1", T0 + 150 * SEC, &BUILDER, "prod-us", "");
    again
        .source_properties
        .insert("Count".into(), serde_json::json!(2));
    assert_eq!(store.upsert(&again).unwrap(), Upserted::Updated);
    assert_eq!(matching(&*store, "cluster=prod-us"), ["d1", "h1"]);
    assert_eq!(matching(&*store, r#"cluster="""#), Vec::<String>::new());
}

/// A collector's defaults fill only what a finding lacks, on every upsert through the
/// wrapped store; an agent's own cluster wins.
fn collector_defaults_fill_missing_cluster_and_project(b: Backend) {
    let (_d, inner) = temp_store(b);
    let inner: std::sync::Arc<dyn FindingStore> = std::sync::Arc::from(inner);
    let store = ward_store::WithResourceDefaults::new(
        inner.clone(),
        ward_store::ResourceDefaults {
            cluster: "default-c".into(),
            project: "default-p".into(),
        },
    );
    store
        .upsert_many(&[
            in_fleet("a", T0, &WEB, "", ""),
            in_fleet("b", T0 + SEC, &API, "own", ""),
            in_fleet("c", T0 + 2 * SEC, &DB, "own", "mine"),
        ])
        .unwrap();
    store
        .upsert(&in_fleet("d", T0 + 3 * SEC, &BUILDER, "", ""))
        .unwrap();
    let pair = |id: &str| {
        let f = inner.get(id).unwrap().unwrap();
        (
            f.cluster.unwrap_or_default(),
            f.project_display_name.unwrap_or_default(),
        )
    };
    assert_eq!(pair("a"), ("default-c".into(), "default-p".into()));
    assert_eq!(pair("b"), ("own".into(), "default-p".into()));
    assert_eq!(pair("c"), ("own".into(), "mine".into()));
    assert_eq!(pair("d"), ("default-c".into(), "default-p".into()));
    assert_eq!(matching(&store, "cluster=default-c"), ["a", "d"]);
    assert_eq!(matching(&store, "project=default-p"), ["a", "b", "d"]);
}

#[test]
fn readers_never_see_busy_while_a_writer_loops() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("busy.db");
    let writer = std::sync::Arc::new(SqliteStore::open(&path).unwrap());
    let reader = SqliteStore::open_read_only(&path).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));

    let w = {
        let writer = writer.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut n = 0u64;
            let start = std::time::Instant::now();
            while start.elapsed() < std::time::Duration::from_millis(1500) {
                let batch: Vec<_> = (0..50)
                    .map(|i| {
                        finding(
                            &format!("w{}", (n * 50 + i) % 700),
                            Category::BUILT_IN[(i % 8) as usize],
                            T0 + n * SEC + i,
                            &WEB,
                        )
                    })
                    .collect();
                writer.upsert_many(&batch).unwrap();
                writer.set_state("w1", State::Inactive).unwrap();
                n += 1;
            }
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
            n
        })
    };
    // One reader on its own read-only store, one sharing the writer's store.
    let shared = {
        let store = writer.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut reads = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                store.list(&ListQuery::default()).unwrap();
                store.count("severity>=HIGH").unwrap();
                reads += 1;
            }
            reads
        })
    };
    let mut reads = 0;
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        let page = reader
            .list(&ListQuery {
                filter: "containerName:web".into(),
                page_size: 20,
                include_total: true,
                ..Default::default()
            })
            .unwrap();
        if let Some(t) = page.next_page_token {
            reader
                .list(&ListQuery {
                    filter: "containerName:web".into(),
                    page_size: 20,
                    page_token: t,
                    ..Default::default()
                })
                .unwrap();
        }
        reader.get("w3").unwrap();
        reads += 1;
    }
    let batches = w.join().unwrap();
    let shared_reads = shared.join().unwrap();
    assert!(
        batches > 3 && reads > 3 && shared_reads > 3,
        "{batches} {reads} {shared_reads}"
    );
    assert_eq!(reader.count("").unwrap(), 700.min(batches * 50));
}

fn the_longest_filter_runs(b: Backend) {
    let (_d, store) = filter_fixture(b);
    // As many terms as fit in the length cap, implicit AND and OR.
    let mut f = String::new();
    while f.len() + 5 <= ward_store::filter::MAX_FILTER_LEN {
        f.push_str("ns=a ");
    }
    assert_eq!(store.count(&f).unwrap(), 0);
    let mut f = String::from("ns=data");
    while f.len() + 8 <= ward_store::filter::MAX_FILTER_LEN {
        f.push_str(" OR ns=a");
    }
    assert_eq!(store.count(&f).unwrap(), 2);
    let mut f = String::new();
    while f.len() + 12 <= ward_store::filter::MAX_FILTER_LEN {
        f.push_str("-category:Z ");
    }
    assert_eq!(store.count(&f).unwrap(), 6);
}

both!(upsert_updates_count_and_time_and_keeps_user_state_and_mute);
both!(ambiguous_ids_need_the_full_name);
both!(filters_of_every_kind);
both!(rule_categories_filter_like_built_in_ones_and_unknown_ones_still_list);
both!(sql_injection_looking_values_are_just_values);
both!(list_orders_and_validates);
both!(pagination_has_no_duplicates_and_no_gaps_even_with_ties);
both!(related_findings_share_container_or_pod_within_the_window);
both!(the_longest_filter_runs);
both!(cluster_and_project_filter_and_related_follow_pods_across_nodes);
both!(collector_defaults_fill_missing_cluster_and_project);
