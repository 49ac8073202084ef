//! The backends the shared store tests run on (`tests/store.rs`).
#![allow(dead_code, unused_macros)]

/// A store backend the shared store tests run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Keeps a test store's backing alive: the SQLite file's temp dir or the PostgreSQL server.
pub enum Guard {
    Dir(tempfile::TempDir),
    Postgres(ward_testkit::postgres::TempPostgres),
}

impl Backend {
    /// A fresh, empty store. PostgreSQL: a private server for this test (see
    /// `ward_testkit::postgres`; missing binaries outside CI panic with a clear message
    /// here, since the skip is decided by `both!` before calling this).
    pub fn open(self) -> (Guard, Box<dyn ward_store::FindingStore>) {
        match self {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let store = ward_store::SqliteStore::open(dir.path().join("findings.db")).unwrap();
                (Guard::Dir(dir), Box::new(store))
            }
            Backend::Postgres => {
                let pg = ward_testkit::postgres::TempPostgres::start()
                    .unwrap_or_else(|e| panic!("cannot start PostgreSQL: {e}"));
                let store = ward_store::PgStore::open(&pg.url())
                    .unwrap_or_else(|e| panic!("{e}; server log: {}", pg.log()));
                (Guard::Postgres(pg), Box::new(store))
            }
        }
    }

    /// Whether this backend can run here; prints `SKIP` when not (PostgreSQL binaries
    /// missing outside CI; in CI that panics).
    pub fn available(self, test: &str) -> bool {
        match self {
            Backend::Sqlite => true,
            Backend::Postgres => postgres_available(test),
        }
    }
}

/// PostgreSQL binaries installed (else SKIP, or panic when `CI=true`).
pub fn postgres_available(test: &str) -> bool {
    ward_testkit::postgres::available_or_skip(test)
}

/// `both!(test_fn);` runs `fn test_fn(b: Backend)` as two tests, `test_fn::sqlite` and
/// `test_fn::postgres`.
macro_rules! both {
    ($name:ident) => {
        mod $name {
            use super::*;
            #[test]
            fn sqlite() {
                super::$name(Backend::Sqlite);
            }
            #[test]
            fn postgres() {
                if Backend::Postgres.available(concat!(stringify!($name), "::postgres")) {
                    super::$name(Backend::Postgres);
                }
            }
        }
    };
}
