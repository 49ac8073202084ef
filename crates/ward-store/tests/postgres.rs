//! PostgreSQL-only store behaviour: schema versions, several stores (as several collector
//! processes) writing one database at once, and replays that write nothing. The behaviour
//! both backends share is in `store.rs`.

#[path = "common/backend.rs"]
mod backend;
mod common;

use backend::postgres_available;
use common::*;
use std::sync::Arc;
use ward_event::Category;
use ward_store::{FindingStore, PgStore, StoreError, Upserted, PG_SCHEMA_VERSION};
use ward_testkit::postgres::TempPostgres;

fn server(test: &str) -> Option<TempPostgres> {
    if !postgres_available(test) {
        return None;
    }
    Some(TempPostgres::start().unwrap_or_else(|e| panic!("{test}: {e}")))
}

#[test]
fn migrates_once_across_concurrent_opens_and_refuses_a_newer_schema() {
    let Some(pg) = server("migrates_once_across_concurrent_opens_and_refuses_a_newer_schema")
    else {
        return;
    };
    let url = pg.url();
    // Four "collectors" start at once on an empty database: one migrates, all open.
    let opens: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || PgStore::open(&url).map(|_| ()))
        })
        .collect();
    for o in opens {
        o.join().unwrap().unwrap();
    }
    assert_eq!(
        pg.psql("ward", "SELECT version FROM ward_schema")
            .unwrap()
            .trim(),
        PG_SCHEMA_VERSION.to_string()
    );
    let f = finding("f1", Category::ReverseShell, T0, &WEB);
    PgStore::open(&url).unwrap().upsert(&f).unwrap();
    // Reopened: the finding is there.
    assert_eq!(PgStore::open(&url).unwrap().get("f1").unwrap(), Some(f));

    pg.psql("ward", "UPDATE ward_schema SET version = 99")
        .unwrap();
    let e = PgStore::open(&url).unwrap_err();
    assert!(
        matches!(e, StoreError::PgSchemaTooNew { found: 99, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("127.0.0.1"), "{e}");

    let e = PgStore::open("postgres://ward@127.0.0.1:notaport/ward").unwrap_err();
    assert!(matches!(e, StoreError::InvalidDbUrl { .. }), "{e}");
    // Nothing listening: the error names the cause, not only a pool timeout, and no
    // password.
    let e = PgStore::open("postgres://ward:s3cret@127.0.0.1:1/ward").unwrap_err();
    assert!(matches!(e, StoreError::PgPool { .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("Connection refused"), "{msg}");
    assert!(!msg.contains("s3cret"), "{msg}");
}

#[test]
fn a_replayed_batch_writes_nothing() {
    let Some(pg) = server("a_replayed_batch_writes_nothing") else {
        return;
    };
    let store = PgStore::open(&pg.url()).unwrap();
    let batch: Vec<_> = (0..20)
        .map(|i| {
            finding(
                &format!("r{i}"),
                Category::BUILT_IN[i % 8],
                T0 + i as u64,
                &WEB,
            )
        })
        .collect();
    let sum = store.upsert_many(&batch).unwrap();
    assert_eq!((sum.inserted, sum.updated, sum.stale), (20, 0, 0));
    // xmin is the transaction that last wrote a row version: unchanged = not rewritten.
    let versions = || {
        pg.psql(
            "ward",
            "SELECT string_agg(xmin::text, ',' ORDER BY seq) FROM findings",
        )
        .unwrap()
    };
    let before = versions();
    let sum = store.upsert_many(&batch).unwrap();
    assert_eq!((sum.inserted, sum.stale), (0, 0));
    assert_eq!(versions(), before, "a replay rewrote rows");
    assert_eq!(store.count("").unwrap(), 20);
    // A repeat (later eventTime, higher count) is written.
    assert_eq!(
        store.upsert(&repeat(&batch[3], 4, T0 + 100 * SEC)).unwrap(),
        Upserted::Updated
    );
    assert_ne!(versions(), before);
    assert_eq!(store.get("r3").unwrap().unwrap().count(), 4);
}

/// Two collectors (separate stores, separate connection pools: what two `ward serve`
/// processes are to the database) upsert overlapping batches in opposite orders: no
/// deadlock, no unique violation, each name once, the latest repeat wins.
#[test]
fn several_stores_over_one_database_upsert_the_same_names_safely() {
    let Some(pg) = server("several_stores_over_one_database_upsert_the_same_names_safely") else {
        return;
    };
    let url = pg.url();
    let stores: Vec<Arc<PgStore>> = (0..2)
        .map(|_| Arc::new(PgStore::open(&url).unwrap()))
        .collect();
    const NAMES: u64 = 60;
    const ROUNDS: u64 = 15;
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let store = stores[w % 2].clone();
            std::thread::spawn(move || {
                for round in 0..ROUNDS {
                    let mut batch: Vec<_> = (0..NAMES)
                        .map(|i| {
                            repeat(
                                &finding(&format!("n{i:02}"), Category::ReverseShell, T0, &WEB),
                                round + 1,
                                T0 + round * SEC,
                            )
                        })
                        .collect();
                    if w % 2 == 1 {
                        batch.reverse();
                    }
                    store.upsert_many(&batch).unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let store = &stores[0];
    assert_eq!(store.count("").unwrap(), NAMES);
    assert_eq!(store.count(&format!("count={ROUNDS}")).unwrap(), NAMES);
    assert_eq!(
        pg.psql("ward", "SELECT COUNT(DISTINCT name) FROM findings")
            .unwrap()
            .trim(),
        NAMES.to_string()
    );
}

/// TLS with rustls: `sslmode=require` connects over TLS when the server's certificate chains
/// to the given CA, and refuses a server whose CA is not trusted.
#[test]
fn tls_connections_are_verified_against_the_ca() {
    let test = "tls_connections_are_verified_against_the_ca";
    if !postgres_available(test) {
        return;
    }
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let pg = TempPostgres::start_with_tls(&leaf.pem(), &key.serialize_pem())
        .unwrap_or_else(|e| panic!("{test}: {e}"));
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let url = format!("{}?sslmode=require", pg.url());

    let store = PgStore::open_with_roots(&url, Some(&ca_file))
        .unwrap_or_else(|e| panic!("{e}; log: {}", pg.log()));
    store
        .upsert(&finding("t1", Category::ReverseShell, T0, &WEB))
        .unwrap();
    assert_eq!(store.count("").unwrap(), 1);
    // The pool's connection is encrypted.
    let ssl = pg
        .psql(
            "ward",
            "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) \
             WHERE ssl AND application_name = 'ward'",
        )
        .unwrap();
    assert_ne!(ssl.trim(), "0", "no TLS connection from the store");

    // A CA that did not sign the server's certificate: refused.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let other_file = dir.path().join("other.pem");
    std::fs::write(&other_file, other.cert.pem()).unwrap();
    let e = PgStore::open_with_roots(&url, Some(&other_file)).unwrap_err();
    assert!(matches!(e, StoreError::PgPool { .. }), "{e}");
    // An unreadable CA file is named.
    let e = PgStore::open_with_roots(&url, Some(&dir.path().join("missing.pem"))).unwrap_err();
    assert!(
        matches!(e, StoreError::PgTls { .. }) && e.to_string().contains("missing.pem"),
        "{e}"
    );
}
