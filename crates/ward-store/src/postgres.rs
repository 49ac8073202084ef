//! PostgreSQL backend (feature `postgres`), for a central collector: several `ward serve`
//! processes over one database.
//!
//! * Driver: rust-postgres (`postgres`, the blocking client over `tokio-postgres`; pure Rust)
//!   with an `r2d2` connection pool. The [`FindingStore`] trait is blocking (the API calls it
//!   from `spawn_blocking`), so the blocking client fits without an async bridge.
//! * Schema: one `findings` table (every filterable field a column, the SCC JSON as text),
//!   with an index per filter/sort shape. Versioned in `ward_schema`; migrations run in one
//!   transaction under an advisory lock, so processes starting together migrate once.
//! * Correctness never relies on in-process locks: an upsert is `INSERT .. ON CONFLICT (name)
//!   DO NOTHING`, then `SELECT .. FOR UPDATE` and `UPDATE` of the row in the same
//!   transaction; a batch locks its rows in name order, so two collectors writing
//!   overlapping batches cannot deadlock. State and mute changes lock the row the same way.
//! * Text columns sorted or compared (`name`, `category`) use the `C` collation: byte order,
//!   as SQLite, so page order and tokens mean the same on both stores.

use crate::filter::{self, Dialect, SqlParam};
use crate::order::{Cursor, ListPlan, SortKey};
use crate::{FindingStore, ListQuery, Page, StoreError, UpsertSummary, Upserted, RELATED_LIMIT};
use postgres::types::ToSql;
use postgres::{GenericClient, IsolationLevel};
use r2d2_postgres::PostgresConnectionManager;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres_rustls::MakeRustlsConnect;
use tracing::{debug, info, warn};
use ward_event::finding::{Mute, State};
use ward_event::Finding;

/// The schema version this code writes ([`PG_MIGRATIONS`]`.len()`).
pub const PG_SCHEMA_VERSION: i64 = PG_MIGRATIONS.len() as i64;

/// Key of the advisory lock migrations hold ("ward" in ASCII).
const MIGRATION_LOCK: i64 = 0x7761_7264;

/// Most pooled connections per store (per process).
const POOL_SIZE: u32 = 16;
/// How long getting a connection may take (the database down: the call fails after it).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Migrations, in order; migration `i` takes the version from `i` to `i + 1`. Append only.
const PG_MIGRATIONS: &[&str] = &[
    // 1: the findings table and its indexes.
    r#"
CREATE TABLE findings (
    seq             BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name            TEXT    COLLATE "C" NOT NULL UNIQUE,
    id              TEXT    NOT NULL,
    category        TEXT    COLLATE "C" NOT NULL,
    severity        TEXT    NOT NULL,
    severity_rank   BIGINT  NOT NULL,
    state           TEXT    NOT NULL,
    mute            TEXT    NOT NULL,
    state_by_user   BOOLEAN NOT NULL DEFAULT FALSE,
    mute_by_user    BOOLEAN NOT NULL DEFAULT FALSE,
    event_time_ns   BIGINT  NOT NULL,
    create_time_ns  BIGINT  NOT NULL,
    container_name  TEXT    NOT NULL DEFAULT '',
    container_id    TEXT    NOT NULL DEFAULT '',
    image           TEXT    NOT NULL DEFAULT '',
    pod             TEXT    NOT NULL DEFAULT '',
    namespace       TEXT    NOT NULL DEFAULT '',
    node            TEXT    NOT NULL DEFAULT '',
    resource_name   TEXT    NOT NULL DEFAULT '',
    count           BIGINT  NOT NULL,
    json            TEXT    NOT NULL
);
CREATE INDEX findings_id             ON findings (id);
CREATE INDEX findings_time           ON findings (event_time_ns, seq);
CREATE INDEX findings_create_time    ON findings (create_time_ns, seq);
CREATE INDEX findings_severity_time  ON findings (severity_rank, event_time_ns, seq);
CREATE INDEX findings_category_time  ON findings (category, event_time_ns, seq);
CREATE INDEX findings_count_time     ON findings (count, event_time_ns, seq);
CREATE INDEX findings_state_time     ON findings (state, event_time_ns, seq);
CREATE INDEX findings_mute_time      ON findings (mute, event_time_ns, seq);
CREATE INDEX findings_cid_time       ON findings (container_id, event_time_ns, seq);
CREATE INDEX findings_container_time ON findings (container_name, node, event_time_ns, seq);
CREATE INDEX findings_pod_time       ON findings (pod, namespace, event_time_ns, seq);
CREATE INDEX findings_namespace_time ON findings (namespace, event_time_ns, seq);
CREATE INDEX findings_node_time      ON findings (node, event_time_ns, seq);
CREATE INDEX findings_image_time     ON findings (image, event_time_ns, seq);
CREATE INDEX findings_resource_time  ON findings (resource_name, event_time_ns, seq);
"#,
    // 2: resource identity for a fleet: the cluster and project of a finding's resource,
    // filterable (`cluster=`, `project=`) and read by related findings, each with an index in
    // the (key, eventTime, seq) order pages use.
    r#"
ALTER TABLE findings ADD COLUMN cluster TEXT NOT NULL DEFAULT '';
ALTER TABLE findings ADD COLUMN project TEXT NOT NULL DEFAULT '';
CREATE INDEX findings_cluster_time ON findings (cluster, event_time_ns, seq);
CREATE INDEX findings_project_time ON findings (project, event_time_ns, seq);
"#,
    // 3: the node registry of a central collector (`nodes.rs`), as in SQLite.
    r#"
CREATE TABLE nodes (
    name          TEXT    COLLATE "C" PRIMARY KEY,
    token_sha256  TEXT    NOT NULL UNIQUE,
    created_ns    BIGINT  NOT NULL,
    last_seen_ns  BIGINT  NOT NULL DEFAULT 0,
    agent_version TEXT    NOT NULL DEFAULT '',
    health        TEXT    NOT NULL DEFAULT '{}',
    revoked       BOOLEAN NOT NULL DEFAULT FALSE
);
"#,
];

type Pool = r2d2::Pool<PostgresConnectionManager<MakeRustlsConnect>>;

/// TLS for the connections (used when the URL's `sslmode` is `prefer`, the default, or
/// `require`): rustls with the ring provider, trusting the PEM certificates of `root_file`
/// when given, else the system's roots. Certificates are always verified (host name
/// included), as libpq's `sslmode=verify-full` does.
fn tls(root_file: Option<&std::path::Path>) -> Result<MakeRustlsConnect, StoreError> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let bad = |message: String| StoreError::PgTls { message };
    let mut roots = rustls::RootCertStore::empty();
    match root_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| {
                    bad(format!(
                        "cannot read CA certificates {}: {e}",
                        path.display()
                    ))
                })?;
            if certs.is_empty() {
                return Err(bad(format!("no certificate in {}", path.display())));
            }
            for c in certs {
                roots
                    .add(c)
                    .map_err(|e| bad(format!("bad CA certificate in {}: {e}", path.display())))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                warn!(error = %e, "system CA certificates");
            }
            roots.add_parsable_certificates(found.certs);
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| bad(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// The PostgreSQL store. Cheap to share (`Arc`); each call takes a pooled connection.
pub struct PgStore {
    /// Always `Some` until drop.
    pool: Option<Pool>,
    /// The URL without its password, for messages.
    url: String,
    /// Why the pool last failed to connect.
    last_error: Arc<LastError>,
}

/// The pool's last connection error with its causes ("error connecting to server: Connection
/// refused (os error 111)"), which r2d2's own error leaves out; also logged once per failure.
#[derive(Debug, Default)]
struct LastError(std::sync::Mutex<Option<String>>);

impl LastError {
    fn explain(&self, e: r2d2::Error) -> String {
        let last = self.0.lock().unwrap_or_else(|p| p.into_inner()).take();
        match last {
            Some(cause) => format!("{cause} (no connection within {CONNECT_TIMEOUT:?})"),
            None => e.to_string(),
        }
    }
}

/// Records each connection error into the store's [`LastError`].
#[derive(Debug)]
struct RecordError(Arc<LastError>);

impl r2d2::HandleError<postgres::Error> for RecordError {
    fn handle_error(&self, error: postgres::Error) {
        let mut text = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(s) = source {
            let s_text = s.to_string();
            if !text.contains(&s_text) {
                text.push_str(": ");
                text.push_str(&s_text);
            }
            source = s.source();
        }
        warn!(error = %text, "PostgreSQL connection failed");
        *self.0 .0.lock().unwrap_or_else(|p| p.into_inner()) = Some(text);
    }
}

impl Drop for PgStore {
    /// Each blocking client owns a small tokio runtime, which must not be dropped inside an
    /// async context (it panics there: `ward serve` drops its store when the server stops,
    /// inside the runtime). The pool, and with it the idle connections, is dropped on a
    /// thread of its own.
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            let t = std::thread::Builder::new()
                .name("ward-pg-close".into())
                .spawn(move || drop(pool));
            if let Ok(t) = t {
                let _ = t.join();
            }
        }
    }
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").field("url", &self.url).finish()
    }
}

/// `postgres://user@host:port/db` with no password, for logs and errors.
fn redacted(config: &postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .zip(config.get_ports().iter().chain(std::iter::repeat(&5432)))
        .map(|(h, p)| match h {
            postgres::config::Host::Tcp(h) => format!("{h}:{p}"),
            postgres::config::Host::Unix(path) => format!("{}:{p}", path.display()),
        })
        .collect();
    format!(
        "postgres://{}@{}/{}",
        config.get_user().unwrap_or(""),
        hosts.join(","),
        config.get_dbname().unwrap_or("")
    )
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/db`, or the
    /// key=value form) and migrates its schema to [`PG_SCHEMA_VERSION`]. Fails if the
    /// database was written by a newer Ward. Must not be called from inside an async task
    /// (the blocking client runs its own runtime); `ward serve` opens it before serving.
    ///
    /// TLS: the CA certificates of the file `PGSSLROOTCERT` names (libpq's variable), else
    /// the system's; see [`PgStore::open_with_roots`].
    pub fn open(url: &str) -> Result<PgStore, StoreError> {
        let roots = std::env::var_os("PGSSLROOTCERT").map(std::path::PathBuf::from);
        PgStore::open_with_roots(url, roots.as_deref())
    }

    /// [`open`](Self::open) trusting the PEM CA certificates in `root_file` (or the system's
    /// when `None`) for TLS connections.
    pub fn open_with_roots(
        url: &str,
        root_file: Option<&std::path::Path>,
    ) -> Result<PgStore, StoreError> {
        let config = postgres::Config::from_str(url).map_err(|e| StoreError::InvalidDbUrl {
            message: e.to_string(),
        })?;
        let shown = redacted(&config);
        let mut config = config;
        if config.get_application_name().is_none() {
            config.application_name("ward");
        }
        let manager = PostgresConnectionManager::new(config, tls(root_file)?);
        let last_error = Arc::new(LastError::default());
        let pool = r2d2::Pool::builder()
            .error_handler(Box::new(RecordError(last_error.clone())))
            .max_size(POOL_SIZE)
            .min_idle(Some(1))
            .connection_timeout(CONNECT_TIMEOUT)
            .build(manager)
            .map_err(|e| StoreError::PgPool {
                url: shown.clone(),
                message: last_error.explain(e),
            })?;
        let store = PgStore {
            pool: Some(pool),
            url: shown,
            last_error,
        };
        store.migrate()?;
        Ok(store)
    }

    /// The URL (without password).
    pub fn url(&self) -> &str {
        &self.url
    }

    fn conn(
        &self,
    ) -> Result<r2d2::PooledConnection<PostgresConnectionManager<MakeRustlsConnect>>, StoreError>
    {
        let pool = self.pool.as_ref().expect("pool present until drop");
        pool.get().map_err(|e| StoreError::PgPool {
            url: self.url.clone(),
            message: self.last_error.explain(e),
        })
    }

    fn err(&self, context: &'static str) -> impl FnOnce(postgres::Error) -> StoreError + '_ {
        move |source| StoreError::Postgres {
            context: context.to_string(),
            url: self.url.clone(),
            source,
        }
    }

    fn migrate(&self) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let mut tx = conn
            .transaction()
            .map_err(self.err("cannot begin migration"))?;
        // Processes starting together: one migrates, the others wait here and then find the
        // schema current.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .map_err(self.err("cannot take the migration lock"))?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS ward_schema (version BIGINT NOT NULL)")
            .map_err(self.err("cannot create the schema table"))?;
        let version: i64 = tx
            .query_opt("SELECT version FROM ward_schema", &[])
            .map_err(self.err("cannot read schema version"))?
            .map(|r| r.get(0))
            .unwrap_or(0);
        if version > PG_SCHEMA_VERSION {
            return Err(StoreError::PgSchemaTooNew {
                url: self.url.clone(),
                found: version,
                supported: PG_SCHEMA_VERSION,
            });
        }
        if version == PG_SCHEMA_VERSION {
            return Ok(());
        }
        for (i, sql) in PG_MIGRATIONS.iter().enumerate().skip(version as usize) {
            info!(url = %self.url, to = i + 1, "migrating PostgreSQL finding store schema");
            tx.batch_execute(sql)
                .map_err(self.err("schema migration failed"))?;
        }
        tx.execute("DELETE FROM ward_schema", &[])
            .map_err(self.err("cannot set schema version"))?;
        tx.execute(
            "INSERT INTO ward_schema (version) VALUES ($1)",
            &[&PG_SCHEMA_VERSION],
        )
        .map_err(self.err("cannot set schema version"))?;
        tx.commit().map_err(self.err("cannot commit migration"))?;
        Ok(())
    }

    /// Upserts in an open transaction, with statements prepared for it.
    /// With `node`, a name stored for another node is refused
    /// ([`StoreError::NameOfAnotherNode`]) under the row's lock, before anything of it changes.
    fn upsert_in(
        &self,
        tx: &mut postgres::Transaction<'_>,
        st: &Statements,
        f: &Finding,
        node: Option<&str>,
    ) -> Result<Upserted, StoreError> {
        // The same indexed columns as the SQLite store extracts.
        let row = crate::sqlite::Row::from_finding(f)?;
        let json = crate::sqlite::to_json(f)?;
        let inserted = tx
            .query_opt(
                &st.insert,
                &[
                    &row.name,
                    &row.id,
                    &row.category,
                    &row.severity,
                    &row.severity_rank,
                    &row.state,
                    &row.mute,
                    &row.event_time_ns,
                    &row.create_time_ns,
                    &row.container_name,
                    &row.container_id,
                    &row.image,
                    &row.pod,
                    &row.namespace,
                    &row.node,
                    &row.resource_name,
                    &row.count,
                    &json,
                    &row.cluster,
                    &row.project,
                ],
            )
            .map_err(self.err("cannot insert finding"))?;
        if inserted.is_some() {
            return Ok(Upserted::Inserted);
        }
        // The name exists (committed, or just committed by another collector, which the
        // insert waited for): lock the row and merge.
        let old = tx
            .query_one(&st.lock, &[&row.name])
            .map_err(self.err("cannot look up finding"))?;
        let seq: i64 = old.get(0);
        let old_event: i64 = old.get(1);
        let old_create: i64 = old.get(2);
        let old_state: String = old.get(3);
        let old_mute: String = old.get(4);
        let state_by_user: bool = old.get(5);
        let mute_by_user: bool = old.get(6);
        let old_json: String = old.get(7);
        let owner: String = old.get(8);
        if let Some(node) = node.filter(|n| *n != owner) {
            return Err(StoreError::NameOfAnotherNode {
                name: row.name,
                owner,
                node: node.to_string(),
            });
        }
        if row.event_time_ns < old_event {
            debug!(name = %row.name, "ignoring an update older than the stored finding");
            return Ok(Upserted::Stale);
        }
        let mut merged = f.clone();
        if state_by_user {
            merged.state = crate::sqlite::parse_state(&old_state);
        }
        if mute_by_user {
            merged.mute = crate::sqlite::parse_mute(&old_mute);
        }
        let mut create_ns = row.create_time_ns;
        if old_create < create_ns {
            let old_create_str = serde_json::from_str::<serde_json::Value>(&old_json)
                .ok()
                .and_then(|v| v.get("createTime")?.as_str().map(str::to_string));
            if let Some(s) = old_create_str {
                merged.create_time = s;
                create_ns = old_create;
            }
        }
        let json = crate::sqlite::to_json(&merged)?;
        if json == old_json {
            // A replay: nothing to write.
            return Ok(Upserted::Updated);
        }
        tx.execute(
            &st.update,
            &[
                &seq,
                &row.id,
                &row.category,
                &row.severity,
                &row.severity_rank,
                &merged.state.as_str(),
                &merged.mute.as_str(),
                &row.event_time_ns,
                &create_ns,
                &row.container_name,
                &row.container_id,
                &row.image,
                &row.pod,
                &row.namespace,
                &row.node,
                &row.resource_name,
                &row.count,
                &json,
                &row.cluster,
                &row.project,
            ],
        )
        .map_err(self.err("cannot update finding"))?;
        Ok(Upserted::Updated)
    }

    /// Rows are locked in name order (a stable sort keeps repeats of a name in batch
    /// order), so concurrent batches over the same names wait for each other instead of
    /// deadlocking.
    fn upsert_sorted(
        &self,
        findings: &[Finding],
        node: Option<&str>,
    ) -> Result<UpsertSummary, StoreError> {
        let mut sorted: Vec<&Finding> = findings.iter().collect();
        sorted.sort_by(|a, b| a.name.cmp(&b.name));
        let sum = self.upsert_batch(&sorted, node)?;
        debug!(?sum, "upserted batch");
        Ok(sum)
    }

    /// One transaction; an error drops it uncommitted (rolled back): nothing is written.
    fn upsert_batch(
        &self,
        findings: &[&Finding],
        node: Option<&str>,
    ) -> Result<UpsertSummary, StoreError> {
        let mut conn = self.conn()?;
        let mut tx = conn
            .transaction()
            .map_err(self.err("cannot begin transaction"))?;
        let st = Statements::prepare(&mut tx).map_err(self.err("cannot prepare upsert"))?;
        let mut sum = UpsertSummary::default();
        for f in findings {
            match self.upsert_in(&mut tx, &st, f, node)? {
                Upserted::Inserted => sum.inserted += 1,
                Upserted::Updated => sum.updated += 1,
                Upserted::Stale => sum.stale += 1,
            }
        }
        tx.commit().map_err(self.err("cannot commit"))?;
        Ok(sum)
    }

    /// Resolves a name or id to the stored (seq, name, json); `lock` takes the row lock.
    fn resolve(
        &self,
        c: &mut impl GenericClient,
        name_or_id: &str,
        lock: bool,
    ) -> Result<Option<(i64, String, String)>, StoreError> {
        let suffix = if lock { " FOR UPDATE" } else { "" };
        let by_name = c
            .query_opt(
                &format!("SELECT seq, name, json FROM findings WHERE name = $1{suffix}"),
                &[&name_or_id],
            )
            .map_err(self.err("cannot look up finding"))?;
        if let Some(r) = by_name {
            return Ok(Some((r.get(0), r.get(1), r.get(2))));
        }
        let rows = c
            .query(
                &format!("SELECT seq, name, json FROM findings WHERE id = $1 LIMIT 2{suffix}"),
                &[&name_or_id],
            )
            .map_err(self.err("cannot look up finding"))?;
        match rows.len() {
            0 => Ok(None),
            1 => Ok(Some((rows[0].get(0), rows[0].get(1), rows[0].get(2)))),
            _ => {
                let matches: i64 = c
                    .query_one(
                        "SELECT COUNT(*) FROM findings WHERE id = $1",
                        &[&name_or_id],
                    )
                    .map_err(self.err("cannot look up finding"))?
                    .get(0);
                Err(StoreError::AmbiguousId {
                    id: name_or_id.to_string(),
                    matches: usize::try_from(matches).unwrap_or(usize::MAX),
                })
            }
        }
    }

    fn count_in(
        &self,
        c: &mut impl GenericClient,
        compiled: Option<&filter::SqlFilter>,
    ) -> Result<u64, StoreError> {
        let (sql, params) = match compiled {
            Some(f) => (
                format!(
                    "SELECT COUNT(*) FROM findings AS k WHERE {}",
                    filter::number_placeholders(&f.sql, 1)
                ),
                f.params.as_slice(),
            ),
            None => ("SELECT COUNT(*) FROM findings AS k".to_string(), &[][..]),
        };
        let n: i64 = c
            .query_one(&sql, &bind(params))
            .map_err(self.err("cannot count findings"))?
            .get(0);
        Ok(u64::try_from(n).unwrap_or(0))
    }

    fn set_user_field(
        &self,
        name_or_id: &str,
        apply: impl FnOnce(&mut Finding) -> (&'static str, &'static str),
    ) -> Result<Finding, StoreError> {
        let mut conn = self.conn()?;
        let mut tx = conn
            .transaction()
            .map_err(self.err("cannot begin transaction"))?;
        let (seq, name, json) = self
            .resolve(&mut tx, name_or_id, true)?
            .ok_or_else(|| StoreError::NotFound(name_or_id.to_string()))?;
        let mut f = crate::sqlite::from_json(&name, &json)?;
        let (column, value) = apply(&mut f);
        let json = crate::sqlite::to_json(&f)?;
        // `column` is one of two fixed names chosen by the callers below.
        let sql = format!(
            "UPDATE findings SET {column} = $1, {column}_by_user = TRUE, json = $2 WHERE seq = $3"
        );
        tx.execute(&sql, &[&value as &(dyn ToSql + Sync), &json, &seq])
            .map_err(self.err("cannot update finding"))?;
        tx.commit().map_err(self.err("cannot commit"))?;
        info!(name = %name, column, value, "user changed finding");
        Ok(f)
    }
}

/// The statements an upsert batch runs, prepared once per batch.
struct Statements {
    insert: postgres::Statement,
    lock: postgres::Statement,
    update: postgres::Statement,
}

impl Statements {
    fn prepare(tx: &mut postgres::Transaction<'_>) -> Result<Statements, postgres::Error> {
        Ok(Statements {
            insert: tx.prepare(
                "INSERT INTO findings (name, id, category, severity, severity_rank, state, mute, \
                 event_time_ns, create_time_ns, container_name, container_id, image, pod, \
                 namespace, node, resource_name, count, json, cluster, project) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
                 $17, $18, $19, $20) ON CONFLICT (name) DO NOTHING RETURNING seq",
            )?,
            lock: tx.prepare(
                "SELECT seq, event_time_ns, create_time_ns, state, mute, state_by_user, \
                 mute_by_user, json, node FROM findings WHERE name = $1 FOR UPDATE",
            )?,
            update: tx.prepare(
                "UPDATE findings SET id = $2, category = $3, severity = $4, severity_rank = $5, \
                 state = $6, mute = $7, event_time_ns = $8, create_time_ns = $9, \
                 container_name = $10, container_id = $11, image = $12, pod = $13, \
                 namespace = $14, node = $15, resource_name = $16, count = $17, json = $18, \
                 cluster = $19, project = $20 WHERE seq = $1",
            )?,
        })
    }
}

/// Parameters as the driver takes them.
fn bind(params: &[SqlParam]) -> Vec<&(dyn ToSql + Sync)> {
    params
        .iter()
        .map(|p| match p {
            SqlParam::Text(s) => s as &(dyn ToSql + Sync),
            SqlParam::Int(n) => n as &(dyn ToSql + Sync),
        })
        .collect()
}

fn where_sql(conds: &[String]) -> String {
    if conds.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conds.join(" AND "))
    }
}

impl FindingStore for PgStore {
    fn upsert(&self, finding: &Finding) -> Result<Upserted, StoreError> {
        let mut conn = self.conn()?;
        let mut tx = conn
            .transaction()
            .map_err(self.err("cannot begin transaction"))?;
        let st = Statements::prepare(&mut tx).map_err(self.err("cannot prepare upsert"))?;
        let r = self.upsert_in(&mut tx, &st, finding, None)?;
        tx.commit().map_err(self.err("cannot commit"))?;
        Ok(r)
    }

    fn upsert_many(&self, findings: &[Finding]) -> Result<UpsertSummary, StoreError> {
        self.upsert_sorted(findings, None)
    }

    fn upsert_many_for_node(
        &self,
        node: &str,
        findings: &[Finding],
    ) -> Result<UpsertSummary, StoreError> {
        self.upsert_sorted(findings, Some(node))
    }

    fn get(&self, name_or_id: &str) -> Result<Option<Finding>, StoreError> {
        let mut conn = self.conn()?;
        match self.resolve(&mut *conn, name_or_id, false)? {
            Some((_, name, json)) => crate::sqlite::from_json(&name, &json).map(Some),
            None => Ok(None),
        }
    }

    fn list(&self, query: &ListQuery) -> Result<Page, StoreError> {
        let expr = filter::parse(&query.filter)?;
        // The order's columns are `k.` (this table) and, for `name`, `f.` (the findings
        // table in the SQLite store): here both are the one table, joined to itself.
        let ListPlan {
            compiled,
            order,
            digest,
            page_size,
            conds,
            params,
            join,
        } = ListPlan::new(query, expr.as_ref(), Dialect::Postgres)?;
        let sql = filter::number_placeholders(
            &format!(
                "SELECT k.seq, k.name, k.json, {} FROM findings AS k{join}{} ORDER BY {} LIMIT {}",
                order.key_columns().join(", "),
                where_sql(&conds),
                order.order_sql(),
                page_size + 1
            ),
            1,
        );
        let text_key: Vec<bool> = order.keys.iter().map(|(f, _)| f.is_text()).collect();

        let mut conn = self.conn()?;
        // One snapshot for the page and its total.
        let mut tx = conn
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .map_err(self.err("cannot begin read transaction"))?;
        let total_size = if query.include_total {
            Some(self.count_in(&mut tx, compiled.as_ref())?)
        } else {
            None
        };
        let rows = tx
            .query(&sql, &bind(&params))
            .map_err(self.err("cannot list findings"))?;
        tx.commit()
            .map_err(self.err("cannot end read transaction"))?;
        let mut page: Vec<(i64, String, String, Vec<SortKey>)> = rows
            .into_iter()
            .map(|r| {
                let keys = text_key
                    .iter()
                    .enumerate()
                    .map(|(i, is_text)| {
                        if *is_text {
                            SortKey::Text(r.get(3 + i))
                        } else {
                            SortKey::Int(r.get(3 + i))
                        }
                    })
                    .collect();
                (r.get(0), r.get(1), r.get(2), keys)
            })
            .collect();
        let next_page_token = if page.len() > page_size {
            page.truncate(page_size);
            page.last().map(|(seq, _, _, keys)| {
                Cursor {
                    v: 1,
                    q: digest.clone(),
                    k: keys.clone(),
                    s: *seq,
                }
                .encode()
            })
        } else {
            None
        };
        let findings = page
            .iter()
            .map(|(_, name, json, _)| crate::sqlite::from_json(name, json))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page {
            findings,
            next_page_token,
            total_size,
        })
    }

    fn count(&self, filter_text: &str) -> Result<u64, StoreError> {
        let expr = filter::parse(filter_text)?;
        let compiled = expr
            .as_ref()
            .map(|e| filter::compile_for(e, Dialect::Postgres));
        let mut conn = self.conn()?;
        self.count_in(&mut *conn, compiled.as_ref())
    }

    fn related(&self, name_or_id: &str, window_ns: u64) -> Result<Vec<Finding>, StoreError> {
        let mut conn = self.conn()?;
        let mut tx = conn
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .map_err(self.err("cannot begin read transaction"))?;
        let (seq, name, _) = self
            .resolve(&mut tx, name_or_id, false)?
            .ok_or_else(|| StoreError::NotFound(name_or_id.to_string()))?;
        let a = tx
            .query_one(
                "SELECT container_id, container_name, node, namespace, pod, event_time_ns, \
                 cluster, project FROM findings WHERE seq = $1",
                &[&seq],
            )
            .map_err(self.err("cannot look up finding"))?;
        let t: i64 = a.get(5);
        let w = i64::try_from(window_ns).unwrap_or(i64::MAX);
        let (branches, mut p) = crate::related_branches(&crate::RelatedAnchor {
            container_id: a.get(0),
            container_name: a.get(1),
            node: a.get(2),
            namespace: a.get(3),
            pod: a.get(4),
            cluster: a.get(6),
            project: a.get(7),
            column_prefix: "k.",
        });
        if branches.is_empty() {
            return Ok(Vec::new());
        }
        p.extend([
            SqlParam::Int(seq),
            SqlParam::Int(t.saturating_sub(w)),
            SqlParam::Int(t.saturating_add(w)),
        ]);
        let sql = filter::number_placeholders(
            &format!(
                "SELECT k.name, k.json FROM findings AS k WHERE ({}) \
                 AND k.seq != ? AND k.event_time_ns BETWEEN ? AND ? \
                 ORDER BY k.event_time_ns ASC, k.seq ASC LIMIT {}",
                branches.join(" OR "),
                RELATED_LIMIT + 1
            ),
            1,
        );
        let rows = tx
            .query(&sql, &bind(&p))
            .map_err(self.err("cannot query related findings"))?;
        tx.commit()
            .map_err(self.err("cannot end read transaction"))?;
        if rows.len() > RELATED_LIMIT {
            warn!(name = %name, limit = RELATED_LIMIT, "related findings truncated");
        }
        rows.iter()
            .take(RELATED_LIMIT)
            .map(|r| crate::sqlite::from_json(r.get(0), r.get(1)))
            .collect()
    }

    fn set_state(&self, name_or_id: &str, state: State) -> Result<Finding, StoreError> {
        self.set_user_field(name_or_id, |f| {
            f.state = state;
            ("state", state.as_str())
        })
    }

    fn set_mute(&self, name_or_id: &str, mute: Mute) -> Result<Finding, StoreError> {
        self.set_user_field(name_or_id, |f| {
            f.mute = mute;
            ("mute", mute.as_str())
        })
    }
}

impl crate::nodes::NodeStore for PgStore {
    fn enroll_node(
        &self,
        name: &str,
        token_sha256: &str,
        agent_version: &str,
        now_ns: i64,
    ) -> Result<crate::Enrolled, StoreError> {
        let mut conn = self.conn()?;
        let mut tx = conn
            .transaction()
            .map_err(self.err("cannot begin enrollment"))?;
        // A new name, or a revoked one taken again; an enrolled, unrevoked name is left as
        // it is (two collectors enrolling the same name at once: one wins, on the key).
        let n = tx
            .execute(
                "INSERT INTO nodes (name, token_sha256, created_ns, agent_version) \
                 VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (name) DO UPDATE SET token_sha256 = EXCLUDED.token_sha256, \
                   created_ns = EXCLUDED.created_ns, agent_version = EXCLUDED.agent_version, \
                   revoked = FALSE, last_seen_ns = 0, health = '{}' \
                 WHERE nodes.revoked",
                &[&name, &token_sha256, &now_ns, &agent_version],
            )
            .map_err(self.err("cannot enroll node"))?;
        tx.commit().map_err(self.err("cannot commit enrollment"))?;
        Ok(if n == 1 {
            crate::Enrolled::Enrolled
        } else {
            crate::Enrolled::Exists
        })
    }

    fn node_by_token(&self, token_sha256: &str) -> Result<Option<crate::NodeRecord>, StoreError> {
        let mut conn = self.conn()?;
        let row = conn
            .query_opt(
                "SELECT name, created_ns, last_seen_ns, agent_version, health, revoked \
                 FROM nodes WHERE token_sha256 = $1",
                &[&token_sha256],
            )
            .map_err(self.err("cannot look up node token"))?;
        Ok(row.map(|r| pg_node(&r)))
    }

    fn node_seen(
        &self,
        name: &str,
        agent_version: &str,
        health_json: Option<&str>,
        now_ns: i64,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        conn.execute(
            "UPDATE nodes SET last_seen_ns = GREATEST(last_seen_ns, $2), agent_version = $3, \
             health = COALESCE($4, health) WHERE name = $1",
            &[&name, &now_ns, &agent_version, &health_json],
        )
        .map_err(self.err("cannot record node visit"))?;
        Ok(())
    }

    fn list_nodes(&self) -> Result<Vec<crate::NodeRecord>, StoreError> {
        let mut conn = self.conn()?;
        let rows = conn
            .query(
                // The cluster and project of the node's latest finding: one probe of the
                // (node, event_time_ns, seq) index per node.
                "SELECT n.name, n.created_ns, n.last_seen_ns, n.agent_version, n.health, \
                 n.revoked, f.cluster, f.project FROM nodes AS n \
                 LEFT JOIN LATERAL (SELECT cluster, project FROM findings \
                   WHERE node = n.name COLLATE \"default\" \
                   ORDER BY event_time_ns DESC, seq DESC LIMIT 1) AS f \
                   ON TRUE \
                 ORDER BY n.name",
                &[],
            )
            .map_err(self.err("cannot list nodes"))?;
        Ok(rows
            .iter()
            .map(|r| {
                let mut n = pg_node(r);
                n.cluster = r.get::<_, Option<String>>(6).unwrap_or_default();
                n.project = r.get::<_, Option<String>>(7).unwrap_or_default();
                n
            })
            .collect())
    }

    fn revoke_node(&self, name: &str) -> Result<bool, StoreError> {
        let mut conn = self.conn()?;
        let n = conn
            .execute("UPDATE nodes SET revoked = TRUE WHERE name = $1", &[&name])
            .map_err(self.err("cannot revoke node"))?;
        Ok(n > 0)
    }
}

fn pg_node(r: &postgres::Row) -> crate::NodeRecord {
    crate::NodeRecord {
        name: r.get(0),
        created_ns: r.get(1),
        last_seen_ns: r.get(2),
        agent_version: r.get(3),
        health_json: r.get(4),
        revoked: r.get(5),
        cluster: String::new(),
        project: String::new(),
    }
}
