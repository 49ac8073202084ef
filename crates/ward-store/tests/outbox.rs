//! The outbox against real SQLite files: committed with the findings, one row per finding
//! name, seqs that only grow, cursors that survive reopening, bounds that drop the lowest
//! severity first and count it.

mod common;

use common::*;
use ward_event::Category;
use ward_store::{OutboxBounds, SqliteStore};

const ROOMY: OutboxBounds = OutboxBounds {
    max_bytes: 1 << 30,
    max_age_ns: 3600 * SEC,
};

#[test]
fn a_commit_queues_each_finding_once_with_growing_seqs() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("w.db")).unwrap();
    let a = finding("a", Category::ReverseShell, T0, &WEB);
    let b = finding("b", Category::AddedBinaryExecuted, T0, &WEB);
    let c = store
        .commit_with_outbox(&[a.clone(), b.clone()], Some(ROOMY), &[], T0)
        .unwrap();
    let (sa, sb) = (c.queued[0].unwrap(), c.queued[1].unwrap());
    assert!(sa.seq < sb.seq);
    assert_eq!(sa.first_seq, sa.seq, "a new finding is its own first state");
    // A later state of `a`: a new, larger seq; its first state is remembered.
    let mut a2 = a.clone();
    a2.event_time = "2026-11-21T10:00:05.000000000Z".into();
    let c2 = store
        .commit_with_outbox(&[a2], Some(ROOMY), &[], T0)
        .unwrap();
    let sa2 = c2.queued[0].unwrap();
    assert!(sa2.seq > sb.seq);
    assert_eq!(sa2.first_seq, sa.seq);
    let rows = store.outbox_after(0, 10).unwrap();
    let names: Vec<&str> = rows.iter().map(|e| e.finding.id()).collect();
    assert_eq!(names, ["b", "a"], "one row per finding, latest state last");
    assert_eq!(store.outbox_stats().unwrap().rows, 2);
    // Pruning to b's seq leaves a; a repeat of b after that is a repeat for every output.
    store.save_cursors(&[("x".into(), sb.seq)], sb.seq).unwrap();
    let mut b2 = b.clone();
    b2.event_time = "2026-11-21T10:00:09.000000000Z".into();
    let c3 = store
        .commit_with_outbox(&[b2], Some(ROOMY), &[], T0)
        .unwrap();
    assert_eq!(c3.queued[0].unwrap().first_seq, 0);
    // Seqs are never reused, even after the largest row is deleted.
    let last = store.outbox_stats().unwrap().last_seq;
    store.prune_outbox(i64::MAX).unwrap();
    drop(store);
    let store = SqliteStore::open(dir.path().join("w.db")).unwrap();
    let d = finding("d", Category::ReverseShell, T0, &WEB);
    let c4 = store
        .commit_with_outbox(&[d], Some(ROOMY), &[], T0)
        .unwrap();
    assert!(c4.queued[0].unwrap().seq > last);
    assert_eq!(store.output_cursors().unwrap()["x"], sb.seq);
}

#[test]
fn without_an_outbox_nothing_is_queued() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("w.db")).unwrap();
    let a = finding("a", Category::ReverseShell, T0, &WEB);
    let c = store.commit_with_outbox(&[a], None, &[], T0).unwrap();
    assert_eq!(c.queued, vec![None]);
    assert_eq!(store.outbox_stats().unwrap().rows, 0);
}

#[test]
fn a_full_outbox_drops_the_lowest_severity_first_and_counts_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("w.db")).unwrap();
    // AddedBinaryExecuted is the lowest severity of these; ReverseShell the highest.
    let low = finding("low", Category::AddedBinaryExecuted, T0, &WEB);
    let high = finding("high", Category::ReverseShell, T0, &WEB);
    let one = serde_json::to_string(&high).unwrap().len() as u64;
    let tight = OutboxBounds {
        max_bytes: one + one / 2,
        max_age_ns: 3600 * SEC,
    };
    store
        .commit_with_outbox(std::slice::from_ref(&low), Some(tight), &[], T0)
        .unwrap();
    let c = store
        .commit_with_outbox(std::slice::from_ref(&high), Some(tight), &[], T0)
        .unwrap();
    assert_eq!(c.dropped.len(), 1, "one row had to go");
    let left: Vec<String> = store
        .outbox_after(0, 10)
        .unwrap()
        .into_iter()
        .map(|e| e.finding.id().to_string())
        .collect();
    assert_eq!(
        left,
        ["high"],
        "the low-severity finding was dropped, not the newer high one"
    );
    let st = store.outbox_stats().unwrap();
    assert_eq!(st.dropped, 1);
    assert!(st.bytes <= tight.max_bytes);
    // The store itself keeps both: only the outbox is bounded.
    assert!(ward_store::FindingStore::get(&store, &low.name)
        .unwrap()
        .is_some());
}

#[test]
fn rows_older_than_the_age_bound_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("w.db")).unwrap();
    let bounds = OutboxBounds {
        max_bytes: 1 << 30,
        max_age_ns: 10 * SEC,
    };
    let a = finding("a", Category::ReverseShell, T0, &WEB);
    let b = finding("b", Category::ReverseShell, T0, &API);
    store
        .commit_with_outbox(&[a], Some(bounds), &[], T0)
        .unwrap();
    let c = store
        .commit_with_outbox(&[b], Some(bounds), &[], T0 + 11 * SEC)
        .unwrap();
    assert_eq!(c.dropped.len(), 1);
    assert_eq!(store.outbox_after(0, 10).unwrap().len(), 1);
}
