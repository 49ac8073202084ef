//! The private PostgreSQL server starts, answers, runs unprivileged, and is gone after drop.

use ward_testkit::postgres::TempPostgres;

#[test]
fn temp_postgres_starts_answers_and_stops_on_drop() {
    let Some(pg) = TempPostgres::start_or_skip("temp_postgres_starts_answers_and_stops_on_drop")
    else {
        return;
    };
    assert_eq!(pg.psql("ward", "SELECT 1 + 1").unwrap().trim(), "2");
    // C collation: byte order, as SQLite sorts text.
    assert_eq!(
        pg.psql(
            "ward",
            "SELECT datcollate FROM pg_database WHERE datname = 'ward'"
        )
        .unwrap()
        .trim(),
        "C"
    );
    let url = pg.create_database("second").unwrap();
    assert!(url.ends_with("/second"), "{url}");
    assert!(url.starts_with("postgres://ward@127.0.0.1:"), "{url}");
    let pid_file = pg.dir().join("data/postmaster.pid");
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // Not root: PostgreSQL refuses root, and the tests run as root.
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap();
    assert_ne!(uid, "0", "postgres runs as root?");
    let dir = pg.dir().to_path_buf();
    drop(pg);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "postgres {pid} still runs after drop"
    );
    assert!(!dir.exists(), "{} left behind", dir.display());
}
