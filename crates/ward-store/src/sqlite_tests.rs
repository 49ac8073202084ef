//! Schema tests that need the store's internals: a database written by schema 1 migrates,
//! and the trigger-kept tables (`finding_keys`, `resources`, `finding_counts`) always agree
//! with `findings`.

#[path = "../tests/common/mod.rs"]
mod common;

use super::*;
use crate::{FindingStore, ListQuery, OrderBy};
use common::*;
use ward_event::finding::Severity;
use ward_event::Category;

const HOST: Place = Place {
    container: "",
    container_id: "",
    image: "",
    ns: "",
    pod: "",
    node: "host-1",
};

/// A store whose file has only the first `version` migrations, written by the same upsert
/// and user-decision code (which has touched only the `findings` table since schema 1).
/// Below schema 4 `findings` has no `cluster`/`project` columns, which that code writes:
/// they are added here for it and removed by [`as_old_file`] once the history is written.
fn store_at_version(path: &Path, version: usize) -> SqliteStore {
    let store = store_at_version_raw(path, version);
    if version < 4 {
        let w = store.writer("test").unwrap();
        w.execute_batch(
            "ALTER TABLE findings ADD COLUMN cluster TEXT NOT NULL DEFAULT '';
             ALTER TABLE findings ADD COLUMN project TEXT NOT NULL DEFAULT '';",
        )
        .unwrap();
    }
    store
}

/// Drops the columns [`store_at_version`] added, leaving the file exactly at its version.
fn as_old_file(store: SqliteStore) {
    let w = store.writer("test").unwrap();
    w.execute_batch(
        "ALTER TABLE findings DROP COLUMN cluster; ALTER TABLE findings DROP COLUMN project;",
    )
    .unwrap();
}

fn store_at_version_raw(path: &Path, version: usize) -> SqliteStore {
    let mut w = SqliteStore::connect(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
    )
    .unwrap();
    let _: String = w
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .unwrap();
    let tx = w.transaction().unwrap();
    for sql in &MIGRATIONS[..version] {
        tx.execute_batch(sql).unwrap();
    }
    tx.pragma_update(None, "user_version", version as i64)
        .unwrap();
    tx.commit().unwrap();
    let (r, budget) = SqliteStore::connect_reader(path).unwrap();
    SqliteStore {
        path: path.to_path_buf(),
        writer: Some(Mutex::new(w)),
        reader: Mutex::new(r),
        budget,
    }
}

/// The same history for any store: inserts in several places, repeats (one moving to
/// another container, one changing category and severity), a stale copy, user decisions.
fn history(store: &SqliteStore) {
    let mut fs = Vec::new();
    let places = [&WEB, &API, &DB, &HOST];
    let cats = [
        Category::ReverseShell,
        Category::PossibleRemoteCommandExecutionDetected,
        Category::AddedBinaryExecuted,
        Category::MaliciousPythonExecuted,
        Category::LaunchCodeCompilerToolInContainer,
    ];
    for i in 0..60u64 {
        fs.push(finding(
            &format!("f{i:02}"),
            cats[(i % 5) as usize],
            T0 + i * 37 * SEC,
            places[(i % 4) as usize],
        ));
    }
    store.upsert_many(&fs).unwrap();
    store.upsert(&repeat(&fs[3], 4, T0 + 5000 * SEC)).unwrap();
    let mut moved = repeat(&fs[5], 2, T0 + 5001 * SEC);
    moved.containers[0].name = "web-canary".into();
    moved
        .source_properties
        .insert("Container_Id".into(), serde_json::json!("c-canary"));
    assert_eq!(store.upsert(&moved).unwrap(), Upserted::Updated);
    let recat = with_severity(repeat(&fs[6], 3, T0 + 5002 * SEC), Severity::High);
    store.upsert(&recat).unwrap();
    assert_eq!(
        store.upsert(&repeat(&fs[3], 2, T0)).unwrap(),
        Upserted::Stale
    );
    store.set_state("f07", State::Inactive).unwrap();
    store.set_state("f08", State::Inactive).unwrap();
    store.set_state("f08", State::Active).unwrap();
    store.set_mute("f09", Mute::Muted).unwrap();
    store.set_mute("f10", Mute::Unmuted).unwrap();
    // A repeat keeps the user's decisions (state and mute columns unchanged).
    store.upsert(&repeat(&fs[9], 8, T0 + 5003 * SEC)).unwrap();
}

/// Every finding has exactly one key row with its values, the resource row it points at
/// holds its resource fields, and the per-class counts are the GROUP BY of findings.
fn assert_derived_tables_agree(store: &SqliteStore) {
    let conn = lock(&store.reader);
    let q = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(
        q("SELECT COUNT(*) FROM findings"),
        q("SELECT COUNT(*) FROM finding_keys"),
        "one key row per finding"
    );
    let wrong = q("SELECT COUNT(*) FROM findings AS f
         LEFT JOIN finding_keys AS k ON k.seq = f.seq
         LEFT JOIN resources AS r ON r.id = k.resource_id
         WHERE k.seq IS NULL OR r.id IS NULL
            OR k.event_time_ns != f.event_time_ns OR k.create_time_ns != f.create_time_ns
            OR k.severity_rank != f.severity_rank OR k.state != f.state OR k.mute != f.mute
            OR k.category != f.category OR k.count != f.count
            OR r.container_id != f.container_id OR r.container_name != f.container_name
            OR r.image != f.image OR r.pod != f.pod OR r.namespace != f.namespace
            OR r.node != f.node OR r.resource_name != f.resource_name
            OR r.cluster != f.cluster OR r.project != f.project");
    assert_eq!(wrong, 0, "key rows disagree with findings");
    let counts_off = q("SELECT COUNT(*) FROM
           (SELECT category, severity_rank, state, mute, COUNT(*) AS n FROM findings
             GROUP BY category, severity_rank, state, mute) AS g
         FULL OUTER JOIN finding_counts AS c
           USING (category, severity_rank, state, mute)
         WHERE g.n IS NOT c.n");
    assert_eq!(counts_off, 0, "finding_counts disagree with findings");
    let resource_counts_off = q("SELECT COUNT(*) FROM
           (SELECT resource_id, category, severity_rank, state, mute, COUNT(*) AS n
              FROM finding_keys GROUP BY resource_id, category, severity_rank, state, mute) AS g
         FULL OUTER JOIN finding_resource_counts AS c
           USING (resource_id, category, severity_rank, state, mute)
         WHERE g.n IS NOT c.n");
    assert_eq!(
        resource_counts_off, 0,
        "finding_resource_counts disagree with findings"
    );
}

const FILTERS: &[&str] = &[
    "",
    "severity=CRITICAL",
    "severity>=HIGH",
    "state=INACTIVE",
    "mute=MUTED",
    "-mute=MUTED",
    "category:shell",
    "category=ADDED_BINARY_EXECUTED state=ACTIVE",
    "containerName:web",
    "containerName:WEB-",
    "containerName=web-canary",
    "containerName!=api",
    "containerId=c-canary",
    "ns=shop severity=CRITICAL",
    "ns=shop containerName:web",
    "ns=\"\"",
    "node=host-1 OR pod:pg",
    "NOT (ns=shop OR ns=data)",
    "image:\"registry.example/\" count>=2",
    "resourceName:postgres",
    "name:f1",
    "name=\"organizations/0/sources/ward/findings/f20\"",
    "eventTime>=2026-11-21T00:10:00Z severity=CRITICAL",
    "cluster=prod-eu",
    "resource.project_display_name=shop OR cluster:staging",
    "cluster=\"\" node=host-1",
];

/// Everything a reader sees: all pages of every filter in two orders, counts, records,
/// related findings.
fn observe(store: &SqliteStore) -> Vec<String> {
    let mut out = Vec::new();
    for f in FILTERS {
        for order in ["", "severity desc", "name", "count desc, createTime"] {
            let mut token = String::new();
            let mut seen = Vec::new();
            loop {
                let page = store
                    .list(&ListQuery {
                        filter: f.to_string(),
                        order_by: order.into(),
                        page_size: 7,
                        page_token: token.clone(),
                        include_total: true,
                    })
                    .unwrap_or_else(|e| panic!("{f}: {e}"));
                assert_eq!(
                    page.total_size,
                    Some(store.count(f).unwrap()),
                    "total of {f}"
                );
                seen.extend(page.findings.iter().map(|x| x.id().to_string()));
                match page.next_page_token {
                    Some(t) => token = t,
                    None => break,
                }
            }
            assert_eq!(seen.len() as u64, store.count(f).unwrap(), "count({f})");
            out.push(format!("{f} | {order} | {}", seen.join(",")));
        }
    }
    for i in 0..60 {
        let id = format!("f{i:02}");
        let rel = store.related(&id, 600 * SEC).unwrap();
        out.push(format!("related {id}: {}", ids(&rel).join(",")));
        out.push(format!("{:?}", store.get(&id).unwrap()));
    }
    out
}

#[test]
fn a_schema_1_database_migrates_and_reads_the_same_as_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let old_path = dir.path().join("v1.db");
    {
        let v1 = store_at_version(&old_path, 1);
        history(&v1);
        let n: i64 = lock(&v1.reader)
            .query_row(
                "SELECT COUNT(*) FROM sqlite_schema WHERE name = 'finding_keys'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 0, "really schema 1");
        as_old_file(v1);
    }
    assert!(matches!(
        SqliteStore::open_read_only(&old_path).unwrap_err(),
        StoreError::SchemaTooOld { found: 1, .. }
    ));
    let migrated = SqliteStore::open(&old_path).unwrap();
    let v: i64 = lock(&migrated.reader)
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, SCHEMA_VERSION);
    assert_derived_tables_agree(&migrated);

    let fresh = SqliteStore::open(dir.path().join("new.db")).unwrap();
    history(&fresh);
    assert_derived_tables_agree(&fresh);
    let (a, b) = (observe(&migrated), observe(&fresh));
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x, y);
    }

    // The migrated store keeps working: writes reach the derived tables.
    history_after(&migrated);
    history_after(&fresh);
    assert_derived_tables_agree(&migrated);
    assert_eq!(observe(&migrated), observe(&fresh));
    assert_eq!(migrated.count("cluster=prod-eu").unwrap(), 3);
    assert_eq!(migrated.count("project=shop").unwrap(), 2);
    assert_eq!(migrated.count("cluster=staging").unwrap(), 0);
    drop(migrated);
    // Reopening does not migrate again.
    let again = SqliteStore::open(&old_path).unwrap();
    assert_derived_tables_agree(&again);
}

/// A database of schema 3 (before resource identity) migrates to schema 4: the resource ids
/// stay, every finding gets an empty cluster and project, and it then reads and writes like
/// a new one.
#[test]
fn a_schema_3_database_gains_cluster_and_project() {
    let dir = tempfile::tempdir().unwrap();
    let old_path = dir.path().join("v3.db");
    let before: Vec<(i64, String)> = {
        let v3 = store_at_version(&old_path, 3);
        history(&v3);
        let ids = {
            let conn = lock(&v3.reader);
            let mut st = conn
                .prepare("SELECT id, container_name FROM resources ORDER BY id")
                .unwrap();
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap()
        };
        as_old_file(v3);
        ids
    };
    let migrated = SqliteStore::open(&old_path).unwrap();
    assert_derived_tables_agree(&migrated);
    {
        let conn = lock(&migrated.reader);
        let mut st = conn
            .prepare("SELECT id, container_name FROM resources ORDER BY id")
            .unwrap();
        let after: Vec<(i64, String)> = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        assert_eq!(after, before, "resource ids survive the rebuild");
    }
    assert_eq!(migrated.count("cluster=\"\"").unwrap(), 60);
    let fresh = SqliteStore::open(dir.path().join("new.db")).unwrap();
    history(&fresh);
    assert_eq!(observe(&migrated), observe(&fresh));
    history_after(&migrated);
    history_after(&fresh);
    assert_derived_tables_agree(&migrated);
    assert_eq!(observe(&migrated), observe(&fresh));
}

fn history_after(store: &SqliteStore) {
    store
        .upsert(&finding(
            "f99",
            Category::ReverseShell,
            T0 + 9000 * SEC,
            &DB,
        ))
        .unwrap();
    store.set_state("f00", State::Inactive).unwrap();
    // Findings of a fleet: the same container in two clusters, and a pod's finding moving
    // to another cluster on update (its resource row changes).
    let mut fleet = Vec::new();
    for (i, (cluster, project)) in [("prod-eu", "shop"), ("staging", ""), ("prod-eu", "")]
        .into_iter()
        .enumerate()
    {
        let mut f = finding(
            &format!("fleet{i}"),
            Category::AddedBinaryExecuted,
            T0 + (9100 + i as u64) * SEC,
            &WEB,
        );
        f.cluster = Some(cluster.into());
        f.project_display_name = (!project.is_empty()).then(|| project.to_string());
        fleet.push(f);
    }
    store.upsert_many(&fleet).unwrap();
    let mut moved = repeat(&fleet[1], 2, T0 + 9200 * SEC);
    moved.cluster = Some("prod-eu".into());
    moved.project_display_name = Some("shop".into());
    assert_eq!(store.upsert(&moved).unwrap(), Upserted::Updated);
}

#[test]
fn derived_tables_follow_every_kind_of_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    let store = SqliteStore::open(&path).unwrap();
    assert_derived_tables_agree(&store);
    history(&store);
    assert_derived_tables_agree(&store);
    // A failed batch leaves nothing behind in any table.
    let mut bad = finding("bad", Category::ReverseShell, T0, &WEB);
    bad.event_time = "never".into();
    let good = finding("good", Category::ReverseShell, T0, &HOST);
    assert!(store.upsert_many(&[good, bad]).is_err());
    assert_derived_tables_agree(&store);
    assert_eq!(store.count("").unwrap(), 60);
    // Deleting (no API does yet; an operator might, with sqlite3) keeps them too.
    {
        let w = store.writer("test").unwrap();
        w.execute("DELETE FROM findings WHERE id IN ('f01', 'f02', 'f09')", [])
            .unwrap();
    }
    assert_derived_tables_agree(&store);
    assert_eq!(store.count("").unwrap(), 57);
    assert_eq!(store.count("mute=MUTED").unwrap(), 0);
}

/// The plans the key table was built for, without `ANALYZE` statistics (what a real
/// database has): a resource filter is driven by the resource index, never by the walk of
/// every ACTIVE finding, and sorting by severity within a namespace needs no table visit.
#[test]
fn resource_filters_drive_the_plan_without_statistics() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("p.db")).unwrap();
    history(&store);
    let conn = lock(&store.reader);
    let plan = |filter: &str, order: &str| -> String {
        let f = filter::parse_to_sql(filter).unwrap().unwrap();
        let o = OrderBy::parse(order).unwrap();
        let sql = format!(
            "EXPLAIN QUERY PLAN SELECT k.seq, {} FROM finding_keys AS k WHERE {} ORDER BY {} LIMIT 101",
            o.key_columns().join(", "),
            f.sql,
            o.order_sql()
        );
        let mut st = conn.prepare(&sql).unwrap();
        let rows: Vec<String> = st
            .query_map(rusqlite::params_from_iter(f.params.iter()), |r| r.get(3))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        rows.join("\n")
    };
    let p = plan("category=REVERSE_SHELL state=ACTIVE containerName:web", "");
    assert!(p.contains("keys_resource"), "{p}");
    let p = plan("ns=shop", "severity desc");
    assert!(p.contains("COVERING INDEX keys_resource"), "{p}");
    let p = plan("state=ACTIVE severity=CRITICAL", "");
    assert!(!p.contains("SCAN k\n") && !p.ends_with("SCAN k"), "{p}");
}

/// Lists walk the sort order's index for filters with many matches and give up on that walk
/// after a step budget; every path gives the same pages.
#[test]
fn ordered_scans_and_their_fallback_list_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("s.db")).unwrap();
    history(&store);
    // Enough findings that broad filters count as "many matches" for pages of 20.
    let more: Vec<Finding> = (0..1500u64)
        .map(|i| {
            let mut f = finding(
                &format!("m{i:04}"),
                [Category::AddedBinaryExecuted, Category::ReverseShell][(i % 2) as usize],
                T0 + i * 11 * SEC,
                [&WEB, &API, &DB][(i % 3) as usize],
            );
            f.source_properties
                .insert("Count".into(), serde_json::json!(1 + i % 4));
            f
        })
        .collect();
    store.upsert_many(&more).unwrap();
    let pages = || -> Vec<String> {
        let mut out = Vec::new();
        for f in FILTERS {
            for order in ["", "severity desc", "count desc", "category", "name"] {
                let mut token = String::new();
                loop {
                    let page = store
                        .list(&ListQuery {
                            filter: f.to_string(),
                            order_by: order.into(),
                            page_size: 20,
                            page_token: token.clone(),
                            include_total: f.len() % 2 == 0,
                        })
                        .unwrap_or_else(|e| panic!("{f}: {e}"));
                    out.push(format!("{f} | {order} | {}", ids(&page.findings).join(",")));
                    match page.next_page_token {
                        Some(t) => token = t,
                        None => break,
                    }
                }
            }
        }
        out
    };
    let set = |b: i64| store.budget.batches.store(b, Ordering::Relaxed);
    set(0);
    let plain = pages();
    set(SCAN_BUDGET);
    assert_eq!(pages(), plain);
    // A budget of one batch: every ordered scan that runs long enough is cut off.
    set(1);
    assert_eq!(pages(), plain);
    assert!(store.budget.interrupted.load(Ordering::Relaxed) > 0);
    // The budget is disarmed outside those scans: counts and related never stop.
    assert_eq!(store.count("").unwrap(), 1560);
    assert!(!store.related("m0001", 3600 * SEC).unwrap().is_empty());
}
