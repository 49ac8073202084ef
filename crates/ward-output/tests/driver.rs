//! The driver against a real SQLite store and sinks whose receivers a test controls.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use ward_event::finding::{MitreAttack, Severity};
use ward_event::Finding;
use ward_output::driver::NamedSink;
use ward_output::{Driver, DriverConfig, FindingSink, Item, OutputSettings, SinkError};
use ward_store::{FindingStore, SqliteStore};

#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<(i64, Finding)>>>,
    down: Arc<AtomicBool>,
    writes: Arc<AtomicUsize>,
    /// When set, each write checks that every finding is already in this store.
    check_store: Option<std::path::PathBuf>,
}

struct TestSink(Receiver);

impl FindingSink for TestSink {
    fn write_batch(&mut self, batch: &[Item]) -> Result<(), SinkError> {
        self.0.writes.fetch_add(1, Ordering::SeqCst);
        if self.0.down.load(Ordering::SeqCst) {
            return Err(SinkError::Rejected {
                target: "test".into(),
                message: "receiver down".into(),
            });
        }
        if let Some(p) = &self.0.check_store {
            let st = SqliteStore::open_read_only(p).unwrap();
            for i in batch {
                assert!(
                    st.get(&i.finding.name).unwrap().is_some(),
                    "a sink saw {} before the store had it",
                    i.finding.name
                );
            }
        }
        let mut g = self.0.got.lock().unwrap();
        for i in batch {
            g.push((i.seq, (*i.finding).clone()));
        }
        Ok(())
    }

    fn describe(&self) -> String {
        "test".into()
    }

    fn health(&self) -> Option<String> {
        Some(
            if self.0.down.load(Ordering::SeqCst) {
                "down"
            } else {
                "up"
            }
            .into(),
        )
    }
}

fn finding(i: usize, count: u64, sev: Severity) -> Finding {
    let mut sp = BTreeMap::new();
    sp.insert("Count".to_string(), serde_json::json!(count));
    Finding {
        name: format!("projects/p/sources/ward/locations/global/findings/f{i:04}"),
        canonical_name: String::new(),
        parent: "projects/p/sources/ward/locations/global".into(),
        resource_name: "//ward/nodes/n".into(),
        state: Default::default(),
        category: "Reverse Shell".into(),
        finding_class: "THREAT".into(),
        severity: sev,
        event_time: format!("2026-11-21T10:00:{:02}.000000000Z", count.min(59)),
        create_time: "2026-11-21T10:00:00.000000000Z".into(),
        description: "d".into(),
        next_steps: "n".into(),
        mute: Default::default(),
        external_uri: None,
        mitre_attack: MitreAttack::default(),
        processes: vec![],
        containers: vec![],
        kubernetes: None,
        connections: vec![],
        indicator: None,
        source_properties: sp,
        cluster: None,
        project_display_name: None,
    }
}

fn settings() -> OutputSettings {
    OutputSettings {
        retry_initial: Duration::from_millis(5),
        retry_max: Duration::from_millis(40),
        shutdown_timeout: Duration::from_secs(2),
        drain_rate: 100_000,
        ..OutputSettings::default()
    }
}

fn driver(db: &std::path::Path, sinks: Vec<(&str, bool, Receiver)>, s: OutputSettings) -> Driver {
    Driver::new(
        Some(SqliteStore::open(db).unwrap()),
        sinks
            .into_iter()
            .map(|(n, updates, r)| NamedSink {
                name: n.into(),
                updates,
                sink: Box::new(TestSink(r)),
            })
            .collect(),
        DriverConfig {
            flush_interval: Duration::from_millis(1),
            settings: s,
            program: "test",
            new_at_once: true,
        },
    )
    .unwrap()
}

fn until(d: &mut Driver, what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ok() {
        assert!(Instant::now() < deadline, "{what}: {:?}", d.sink_stats());
        d.tick();
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn a_sink_sees_a_finding_only_after_the_store_committed_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.db");
    let r = Receiver {
        check_store: Some(db.clone()),
        ..Receiver::default()
    };
    let mut d = driver(&db, vec![("a", false, r.clone())], settings());
    for i in 0..50 {
        d.push(finding(i, 1, Severity::High), true);
        d.tick();
    }
    until(&mut d, "50 delivered", || r.got.lock().unwrap().len() == 50);
    d.finish();
}

#[test]
fn a_failing_receiver_is_retried_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let r = Receiver::default();
    r.down.store(true, Ordering::SeqCst);
    let mut d = driver(
        &dir.path().join("w.db"),
        vec![("a", false, r.clone())],
        settings(),
    );
    for i in 0..20 {
        d.push(finding(i, 1, Severity::High), true);
    }
    d.tick();
    until(&mut d, "failures", || r.writes.load(Ordering::SeqCst) >= 4);
    assert_eq!(
        d.sink_stats()[0].health.as_deref(),
        Some("down"),
        "the sink's own word"
    );
    assert!(d.sink_stats()[0].last_error.is_some());
    r.down.store(false, Ordering::SeqCst);
    until(&mut d, "20 delivered", || r.got.lock().unwrap().len() == 20);
    // `sent` counts after the write returned and the sink's health was read.
    let deadline = Instant::now() + Duration::from_secs(10);
    while d.sink_stats()[0].sent < 20 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(2));
    }
    let st = &d.sink_stats()[0];
    assert!(st.failed >= 3 && st.sent == 20 && st.dropped == 0, "{st:?}");
    assert_eq!(st.health.as_deref(), Some("up"));
    d.finish();
}

#[test]
fn a_full_queue_switches_to_the_outbox_and_every_finding_arrives_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let r = Receiver::default();
    r.down.store(true, Ordering::SeqCst);
    let s = OutputSettings {
        queue: 4,
        batch: 2,
        ..settings()
    };
    let mut d = driver(&dir.path().join("w.db"), vec![("a", false, r.clone())], s);
    for i in 0..100 {
        d.push(finding(i, 1, Severity::High), true);
        d.tick();
    }
    assert!(
        d.sink_stats()[0].backlog,
        "the queue of 4 overflowed into the outbox"
    );
    assert!(d.sink_stats()[0].queued <= 6);
    r.down.store(false, Ordering::SeqCst);
    until(&mut d, "100 delivered", || {
        r.got.lock().unwrap().len() >= 100
    });
    let got = r.got.lock().unwrap().clone();
    let seqs: Vec<i64> = got.iter().map(|g| g.0).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in outbox order");
    assert_eq!(got.len(), 100, "each once");
    let deadline = Instant::now() + Duration::from_secs(10);
    while d.sink_stats()[0].backlog {
        assert!(Instant::now() < deadline, "never caught up");
        d.tick();
        std::thread::sleep(Duration::from_millis(2));
    }
    d.finish();
}

#[test]
fn repeats_go_only_to_sinks_that_asked_for_updates() {
    let dir = tempfile::tempdir().unwrap();
    let (first, all) = (Receiver::default(), Receiver::default());
    let mut d = driver(
        &dir.path().join("w.db"),
        vec![("first", false, first.clone()), ("all", true, all.clone())],
        settings(),
    );
    d.push(finding(1, 1, Severity::High), true);
    d.tick();
    until(&mut d, "first state", || all.got.lock().unwrap().len() == 1);
    d.push(finding(1, 2, Severity::High), false);
    d.push(finding(1, 3, Severity::High), false);
    std::thread::sleep(Duration::from_millis(5));
    d.tick();
    until(&mut d, "the update", || all.got.lock().unwrap().len() == 2);
    std::thread::sleep(Duration::from_millis(50));
    d.tick();
    assert_eq!(first.got.lock().unwrap().len(), 1, "only the first state");
    assert_eq!(all.got.lock().unwrap()[1].1.count(), 3, "the latest state");
    d.finish();
}

#[test]
fn a_restart_resumes_at_the_acknowledged_position() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.db");
    let r = Receiver::default();
    let mut d = driver(&db, vec![("a", false, r.clone())], settings());
    for i in 0..5 {
        d.push(finding(i, 1, Severity::High), true);
    }
    d.tick();
    until(&mut d, "5 delivered", || r.got.lock().unwrap().len() == 5);
    r.down.store(true, Ordering::SeqCst);
    for i in 5..12 {
        d.push(finding(i, 1, Severity::High), true);
    }
    d.tick();
    d.finish();
    drop(d);
    // A new driver, a working receiver under the same output name: only the 7 it missed.
    let r2 = Receiver::default();
    let mut d = driver(&db, vec![("a", false, r2.clone())], settings());
    until(&mut d, "the backlog", || r2.got.lock().unwrap().len() >= 7);
    std::thread::sleep(Duration::from_millis(50));
    d.tick();
    let names: Vec<String> = r2
        .got
        .lock()
        .unwrap()
        .iter()
        .map(|g| g.1.id().to_string())
        .collect();
    assert_eq!(
        names,
        (5..12).map(|i| format!("f{i:04}")).collect::<Vec<_>>()
    );
    // An output the store never saw starts at the end: nothing old.
    let fresh = Receiver::default();
    d.finish();
    drop(d);
    let mut d = driver(&db, vec![("new", false, fresh.clone())], settings());
    for _ in 0..20 {
        d.tick();
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(fresh.got.lock().unwrap().is_empty());
    d.finish();
}

#[test]
fn a_full_outbox_drops_low_severity_first_and_counts_it_per_sink() {
    let dir = tempfile::tempdir().unwrap();
    let r = Receiver::default();
    r.down.store(true, Ordering::SeqCst);
    // Room for the 10 critical findings (each at most this long), not for more.
    let one = serde_json::to_string(&finding(19, 1, Severity::Critical))
        .unwrap()
        .len() as u64;
    let s = OutputSettings {
        queue: 1,
        batch: 1,
        outbox_max_bytes: one * 10,
        ..settings()
    };
    let mut d = driver(&dir.path().join("w.db"), vec![("a", false, r.clone())], s);
    for i in 0..10 {
        d.push(finding(i, 1, Severity::Low), true);
        d.tick();
    }
    for i in 10..20 {
        d.push(finding(i, 1, Severity::Critical), true);
        d.tick();
    }
    d.save_positions();
    let st = d.sink_stats()[0].clone();
    let store = d.store_stats();
    // All 10 low ones left the outbox; those already handed to the sink (its queue of 1 and
    // the batch of 1 it is retrying) are still delivered, so the sink counts them apart.
    assert_eq!(store.outbox_dropped, 10, "{store:?}");
    assert!((8..=10).contains(&st.dropped), "{st:?}");
    assert_eq!(st.dropped + st.queued, 10, "{st:?}");
    r.down.store(false, Ordering::SeqCst);
    until(&mut d, "the rest", || {
        r.got
            .lock()
            .unwrap()
            .iter()
            .filter(|g| g.1.severity == Severity::Critical)
            .count()
            == 10
    });
    d.finish();
}

#[test]
fn a_failing_store_holds_nothing_back_and_the_outbox_resends_once_it_works() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.db");
    let r = Receiver::default();
    let mut d = driver(&db, vec![("a", false, r.clone())], settings());
    // Break the store from another connection: every insert aborts.
    let other = rusqlite::Connection::open(&db).unwrap();
    other
        .execute_batch(
            "CREATE TRIGGER broken BEFORE INSERT ON findings BEGIN SELECT RAISE(ABORT, 'test: broken store'); END;",
        )
        .unwrap();
    d.push(finding(1, 1, Severity::Critical), true);
    assert!(!d.tick(), "the commit failed");
    until(&mut d, "the finding handed over directly", || {
        r.got.lock().unwrap().len() == 1
    });
    assert_eq!(r.got.lock().unwrap()[0].0, 0, "no outbox position");
    assert_eq!(d.store_stats().errors, 1);
    // Retries do not hand it over again.
    for _ in 0..30 {
        d.tick();
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(r.got.lock().unwrap().len(), 1);
    // The store works again: the finding is committed and comes through the outbox too.
    other.execute_batch("DROP TRIGGER broken;").unwrap();
    until(&mut d, "the resend", || r.got.lock().unwrap().len() == 2);
    let got = r.got.lock().unwrap().clone();
    assert_eq!(got[0].1.name, got[1].1.name, "a resend has the same name");
    assert!(got[1].0 > 0);
    assert!(d.stored(&got[0].1.name).is_some());
    d.finish();
}

#[test]
fn a_repeat_in_the_same_commit_does_not_replace_the_first_state_an_output_gets() {
    let dir = tempfile::tempdir().unwrap();
    let (first, all) = (Receiver::default(), Receiver::default());
    let mut d = driver(
        &dir.path().join("w.db"),
        vec![("first", false, first.clone()), ("all", true, all.clone())],
        settings(),
    );
    // New, then repeated before the commit: the store gets the later state.
    d.push(finding(7, 1, Severity::High), true);
    d.push(finding(7, 2, Severity::High), false);
    d.tick();
    until(&mut d, "both outputs", || {
        first.got.lock().unwrap().len() == 1 && all.got.lock().unwrap().len() == 1
    });
    assert_eq!(
        first.got.lock().unwrap()[0].1.count(),
        1,
        "the first state, as replay prints it"
    );
    assert_eq!(
        all.got.lock().unwrap()[0].1.count(),
        2,
        "the committed state"
    );
    assert_eq!(
        d.stored(&finding(7, 1, Severity::High).name)
            .unwrap()
            .count(),
        2
    );
    d.finish();
}

#[test]
fn a_backlog_drains_at_the_configured_rate() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.db");
    let r = Receiver::default();
    r.down.store(true, Ordering::SeqCst);
    let mut d = driver(&db, vec![("a", false, r.clone())], settings());
    for i in 0..60 {
        d.push(finding(i, 1, Severity::High), true);
    }
    d.tick();
    d.finish();
    drop(d);
    // Restarted with 60 findings in the outbox for it, at 20 per second: a burst of 20, then
    // 20 a second, so about 2 s for all of them.
    let r2 = Receiver::default();
    let s = OutputSettings {
        drain_rate: 20,
        ..settings()
    };
    let mut d = driver(&db, vec![("a", false, r2.clone())], s);
    let t = Instant::now();
    until(&mut d, "the backlog", || r2.got.lock().unwrap().len() == 60);
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(1800),
        "60 findings at 20/s took only {took:?}"
    );
    d.finish();
}

#[test]
fn repeats_no_output_takes_leave_the_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let r = Receiver::default();
    let mut d = driver(
        &dir.path().join("w.db"),
        vec![("a", false, r.clone())],
        settings(),
    );
    d.push(finding(1, 1, Severity::High), true);
    d.tick();
    until(&mut d, "the first state", || {
        r.got.lock().unwrap().len() == 1
    });
    // Only repeats from now on: each is queued in the outbox, skipped by the output.
    for c in 2..30 {
        d.push(finding(1, c, Severity::High), false);
        std::thread::sleep(Duration::from_millis(2));
        d.tick();
    }
    d.commit();
    d.save_positions();
    assert_eq!(
        d.store_stats().outbox_rows,
        0,
        "rows every output has passed are pruned"
    );
    assert_eq!(r.got.lock().unwrap().len(), 1);
    d.finish();
}

#[test]
fn outputs_get_findings_in_the_order_the_engine_reported_them() {
    let dir = tempfile::tempdir().unwrap();
    let r = Receiver::default();
    let mut d = driver(
        &dir.path().join("w.db"),
        vec![("a", false, r.clone())],
        settings(),
    );
    // One commit holding findings whose names sort the other way round.
    for i in (0..20).rev() {
        d.push(finding(i, 1, Severity::High), true);
    }
    d.tick();
    until(&mut d, "20 delivered", || r.got.lock().unwrap().len() == 20);
    let ids: Vec<String> = r
        .got
        .lock()
        .unwrap()
        .iter()
        .map(|g| g.1.id().to_string())
        .collect();
    let want: Vec<String> = (0..20).rev().map(|i| format!("f{i:04}")).collect();
    assert_eq!(ids, want);
    d.finish();
}
