//! The node registry (`ward_store::NodeStore`) of a central collector, on both backends:
//! enrollment keeps only the token's hash, an enrolled name is not taken twice until it is
//! revoked, visits update last seen / version / health, and a finding's node is the one the
//! stores index.

#[path = "common/backend.rs"]
#[macro_use]
mod backend;
mod common;

use backend::{Backend, Guard};
use common::*;
use ward_event::Category;
use ward_store::{finding_node, Enrolled, NodeStore};

fn open(b: Backend) -> (Guard, Box<dyn NodeStore>) {
    match b {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let s = ward_store::SqliteStore::open(dir.path().join("f.db")).unwrap();
            (Guard::Dir(dir), Box::new(s))
        }
        Backend::Postgres => {
            let pg = ward_testkit::postgres::TempPostgres::start().unwrap();
            let s = ward_store::PgStore::open(&pg.url()).unwrap();
            (Guard::Postgres(pg), Box::new(s))
        }
    }
}

fn enroll_revoke_and_visits(b: Backend) {
    let (_g, s) = open(b);
    let h1 = "a".repeat(64);
    let h2 = "b".repeat(64);
    assert_eq!(
        s.enroll_node("node-a", &h1, "0.1.0", 10).unwrap(),
        Enrolled::Enrolled
    );
    // Taken: a second enrollment changes nothing, the first token still works.
    assert_eq!(
        s.enroll_node("node-a", &h2, "0.2.0", 20).unwrap(),
        Enrolled::Exists
    );
    let n = s.node_by_token(&h1).unwrap().unwrap();
    assert_eq!(
        (n.name.as_str(), n.created_ns, n.revoked),
        ("node-a", 10, false)
    );
    assert!(s.node_by_token(&h2).unwrap().is_none());

    s.node_seen("node-a", "0.1.1", Some(r#"{"dropped":3}"#), 50)
        .unwrap();
    // A heartbeat without health keeps the last summary; last seen never goes back.
    s.node_seen("node-a", "0.1.1", None, 40).unwrap();
    let n = &s.list_nodes().unwrap()[0];
    assert_eq!(n.last_seen_ns, 50);
    assert_eq!(n.agent_version, "0.1.1");
    assert_eq!(n.health_json, r#"{"dropped":3}"#);

    assert!(s.revoke_node("node-a").unwrap());
    assert!(!s.revoke_node("node-zz").unwrap());
    assert!(s.node_by_token(&h1).unwrap().unwrap().revoked);
    // Revoked: the name can enroll again, with a new token; the old one is gone.
    assert_eq!(
        s.enroll_node("node-a", &h2, "0.2.0", 60).unwrap(),
        Enrolled::Enrolled
    );
    assert!(s.node_by_token(&h1).unwrap().is_none());
    let n = s.node_by_token(&h2).unwrap().unwrap();
    assert_eq!((n.created_ns, n.revoked, n.last_seen_ns), (60, false, 0));

    assert_eq!(
        s.enroll_node("node-b", &"c".repeat(64), "", 70).unwrap(),
        Enrolled::Enrolled
    );
    let names: Vec<String> = s
        .list_nodes()
        .unwrap()
        .into_iter()
        .map(|n| n.name)
        .collect();
    assert_eq!(names, ["node-a", "node-b"]);
}
both!(enroll_revoke_and_visits);

#[test]
fn a_findings_node_is_the_indexed_one() {
    let f = finding("f1", Category::ReverseShell, T0, &WEB);
    assert_eq!(finding_node(&f), WEB.node);
    let mut g = f.clone();
    g.kubernetes = None;
    g.source_properties
        .insert("VM_Instance_Name".into(), "host-9".into());
    assert_eq!(finding_node(&g), "host-9");
    g.source_properties.remove("VM_Instance_Name");
    assert_eq!(finding_node(&g), "");
}

/// One store as both the findings store and the registry (what `ward serve` runs on).
fn open_collector(
    b: Backend,
) -> (
    Guard,
    std::sync::Arc<dyn ward_store::FindingStore>,
    std::sync::Arc<dyn NodeStore>,
) {
    match b {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let s = std::sync::Arc::new(
                ward_store::SqliteStore::open(dir.path().join("f.db")).unwrap(),
            );
            (Guard::Dir(dir), s.clone(), s)
        }
        Backend::Postgres => {
            let pg = ward_testkit::postgres::TempPostgres::start().unwrap();
            let s = std::sync::Arc::new(ward_store::PgStore::open(&pg.url()).unwrap());
            (Guard::Postgres(pg), s.clone(), s)
        }
    }
}

fn placed(id: &str, t: u64, place: &Place, cluster: &str, project: &str) -> ward_event::Finding {
    let mut f = finding(id, Category::ReverseShell, t, place);
    f.cluster = (!cluster.is_empty()).then(|| cluster.to_string());
    f.project_display_name = (!project.is_empty()).then(|| project.to_string());
    f
}

/// `list_nodes` names the cluster and project of a node's latest findings; none for a node
/// without findings.
fn nodes_list_the_cluster_and_project_of_their_findings(b: Backend) {
    let (_g, store, nodes) = open_collector(b);
    for (n, h) in [("node-a", "a"), ("node-b", "b"), ("node-c", "c")] {
        nodes.enroll_node(n, &h.repeat(64), "", 1).unwrap();
    }
    store
        .upsert_many(&[
            placed("n1", T0, &WEB, "prod-eu", "shop"),
            // Later, in another container of node-a, in another cluster and project.
            placed("n2", T0 + 60 * SEC, &DB, "prod-us", "data"),
            placed("n3", T0, &API, "", ""),
        ])
        .unwrap();
    let got: Vec<(String, String, String)> = nodes
        .list_nodes()
        .unwrap()
        .into_iter()
        .map(|n| (n.name, n.cluster, n.project))
        .collect();
    let s = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
    assert_eq!(
        got,
        [
            s("node-a", "prod-us", "data"),
            s("node-b", "", ""),
            s("node-c", "", "")
        ]
    );
}
both!(nodes_list_the_cluster_and_project_of_their_findings);

/// `upsert_many_for_node` refuses a batch with a name stored for another node (or for no
/// node), naming the name and the owner, and writes none of it; the owner's batch goes in.
fn a_batch_may_not_take_another_nodes_finding_name(b: Backend) {
    let (_g, store, _nodes) = open_collector(b);
    let a1 = placed("o1", T0, &WEB, "", "");
    let mut orphan = placed("o2", T0, &WEB, "", "");
    orphan.kubernetes = None;
    orphan.source_properties.remove("VM_Instance_Name");
    assert_eq!(finding_node(&orphan), "");
    store.upsert_many(&[a1.clone(), orphan.clone()]).unwrap();

    // node-b's own new finding, then a1's name as node-b's, later (an update otherwise).
    let b_own = placed("o3", T0, &API, "", "");
    let mut taken = placed("o1", T0 + 5 * SEC, &API, "", "");
    taken.name = a1.name.clone();
    let e = store
        .upsert_many_for_node("node-b", &[b_own.clone(), taken])
        .unwrap_err();
    match &e {
        ward_store::StoreError::NameOfAnotherNode { name, owner, node } => {
            assert_eq!(
                (name, owner.as_str(), node.as_str()),
                (&a1.name, "node-a", "node-b")
            );
        }
        other => panic!("{other}"),
    }
    assert!(e.to_string().contains("node 'node-a'"), "{e}");
    assert!(store.get(&b_own.name).unwrap().is_none(), "half-written");
    assert_eq!(store.get(&a1.name).unwrap().unwrap(), a1);
    // A name stored without a node is nobody's to take either.
    let mut claim = orphan.clone();
    claim.kubernetes = a1.kubernetes.clone();
    let e = store.upsert_many_for_node("node-a", &[claim]).unwrap_err();
    assert!(e.to_string().contains("no node"), "{e}");
    // The owner updates its own; node-b's own finding alone goes in.
    let mut later = a1.clone();
    later.event_time = ward_event::time::format_rfc3339(T0 + 9 * SEC);
    let sum = store.upsert_many_for_node("node-a", &[later]).unwrap();
    assert_eq!((sum.inserted, sum.updated), (0, 1));
    let sum = store.upsert_many_for_node("node-b", &[b_own]).unwrap();
    assert_eq!(sum.inserted, 1);
}
both!(a_batch_may_not_take_another_nodes_finding_name);
