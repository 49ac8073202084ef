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
