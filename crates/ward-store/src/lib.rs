//! Ward's finding store.
//!
//! * [`FindingStore`]: the storage interface (SQLite now, Postgres later).
//! * [`SqliteStore`]: the SQLite backend (WAL, `busy_timeout`, `PRAGMA user_version`
//!   migrations). Each finding is kept as its SCC JSON plus indexed columns extracted from it.
//! * `PgStore` (feature `postgres`, on by default): the PostgreSQL backend for a central
//!   collector; several processes may share one database.
//! * [`filter`]: the SCC-style filter language (`docs/filter-grammar.md`), parsed into an AST
//!   and compiled to a parameterised SQL `WHERE` clause.
//! * [`order`]: `order_by` parsing and opaque keyset page tokens.
//! * the outbox (`outbox.rs`): what outputs other than the store still have to deliver,
//!   committed with the findings ([`SqliteStore::commit_with_outbox`]).

pub mod filter;
pub mod lock;
pub mod nodes;
pub mod order;
mod outbox;
#[cfg(feature = "postgres")]
mod postgres;
mod sqlite;

pub use filter::FilterError;
pub use lock::{LockError, WriterLock};
pub use nodes::{check_node_name, finding_node, validate_finding, Enrolled, NodeRecord, NodeStore};
pub use order::{OrderBy, OrderField, SortKey};
pub use outbox::{OutboxBounds, OutboxCommit, OutboxEntry, OutboxSeq, OutboxStats};
#[cfg(feature = "postgres")]
pub use postgres::{PgStore, PG_SCHEMA_VERSION};
pub use sqlite::{SqliteStore, SCHEMA_VERSION};

/// Whether a `--db` value names a PostgreSQL database (`postgres://` or `postgresql://`)
/// rather than a SQLite file path.
pub fn is_postgres_url(db: &str) -> bool {
    let lower = db.trim_start().to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

use std::path::PathBuf;
use std::sync::Arc;
use ward_event::finding::{Mute, ResourceIdentity, State};
use ward_event::Finding;

/// A collector's `[api] default_cluster` / `default_project`: what a finding that arrives
/// without a cluster or project is stamped with.
pub type ResourceDefaults = ResourceIdentity;

/// Fills the cluster and project `finding` does not name from the collector's `defaults`
/// (an agent's own `[agent] cluster`/`project` always win). Returns whether it changed the
/// finding. Pure: the ingest path calls it on every finding before storing it, and
/// [`WithResourceDefaults`] does it for every upsert through a store.
pub fn apply_resource_defaults(finding: &mut Finding, defaults: &ResourceDefaults) -> bool {
    finding.apply_resource_defaults(defaults)
}

/// A [`FindingStore`] that applies [`apply_resource_defaults`] to every finding upserted
/// through it; reads pass through. `ward serve` wraps its store in one when `[api]
/// default_cluster` or `default_project` is set, so every way findings enter the collector
/// gets the defaults.
pub struct WithResourceDefaults {
    inner: Arc<dyn FindingStore>,
    defaults: ResourceDefaults,
}

impl WithResourceDefaults {
    pub fn new(inner: Arc<dyn FindingStore>, defaults: ResourceDefaults) -> WithResourceDefaults {
        WithResourceDefaults { inner, defaults }
    }

    pub fn defaults(&self) -> &ResourceDefaults {
        &self.defaults
    }

    fn stamped<'a>(&self, f: &'a Finding) -> std::borrow::Cow<'a, Finding> {
        let mut g = std::borrow::Cow::Borrowed(f);
        let lacks = |v: &Option<String>| v.as_deref().is_none_or(str::is_empty);
        if (lacks(&f.cluster) && !self.defaults.cluster.is_empty())
            || (lacks(&f.project_display_name) && !self.defaults.project.is_empty())
        {
            apply_resource_defaults(g.to_mut(), &self.defaults);
        }
        g
    }
}

impl FindingStore for WithResourceDefaults {
    fn upsert(&self, finding: &Finding) -> Result<Upserted, StoreError> {
        self.inner.upsert(&self.stamped(finding))
    }
    fn upsert_many(&self, findings: &[Finding]) -> Result<UpsertSummary, StoreError> {
        let stamped: Vec<Finding> = findings
            .iter()
            .map(|f| self.stamped(f).into_owned())
            .collect();
        self.inner.upsert_many(&stamped)
    }
    fn upsert_many_for_node(
        &self,
        node: &str,
        findings: &[Finding],
    ) -> Result<UpsertSummary, StoreError> {
        let stamped: Vec<Finding> = findings
            .iter()
            .map(|f| self.stamped(f).into_owned())
            .collect();
        self.inner.upsert_many_for_node(node, &stamped)
    }
    fn get(&self, name_or_id: &str) -> Result<Option<Finding>, StoreError> {
        self.inner.get(name_or_id)
    }
    fn list(&self, query: &ListQuery) -> Result<Page, StoreError> {
        self.inner.list(query)
    }
    fn count(&self, filter: &str) -> Result<u64, StoreError> {
        self.inner.count(filter)
    }
    fn related(&self, name_or_id: &str, window_ns: u64) -> Result<Vec<Finding>, StoreError> {
        self.inner.related(name_or_id, window_ns)
    }
    fn set_state(&self, name_or_id: &str, state: State) -> Result<Finding, StoreError> {
        self.inner.set_state(name_or_id, state)
    }
    fn set_mute(&self, name_or_id: &str, mute: Mute) -> Result<Finding, StoreError> {
        self.inner.set_mute(name_or_id, mute)
    }
}

/// The stored identity of the finding whose related findings are asked for.
pub(crate) struct RelatedAnchor {
    pub container_id: String,
    pub container_name: String,
    pub node: String,
    pub namespace: String,
    pub pod: String,
    pub cluster: String,
    pub project: String,
    /// `k.` (PostgreSQL, over the findings table) or empty (SQLite, inside `resources`).
    pub column_prefix: &'static str,
}

/// The SQL alternatives (`?` placeholders) that make a finding related to the anchor, the
/// same on both stores: the same container id, on any node and whichever collector stored
/// it (ids are unique); without an id, the same container name on the same node of the same
/// cluster and project; or the same pod (namespace and name) of the same cluster and project,
/// on any node (a pod's containers can be reported by several agents over its life).
pub(crate) fn related_branches(a: &RelatedAnchor) -> (Vec<String>, Vec<filter::SqlParam>) {
    use filter::SqlParam;
    let k = a.column_prefix;
    let mut branches: Vec<String> = Vec::new();
    let mut p: Vec<SqlParam> = Vec::new();
    let same_place = format!("{k}cluster = ? AND {k}project = ?");
    if !a.container_id.is_empty() {
        branches.push(format!("{k}container_id = ?"));
        p.push(SqlParam::Text(a.container_id.clone()));
    }
    if !a.container_name.is_empty() {
        // When both sides know the container id, the id decides (a restarted container with
        // the same name is another one).
        let no_id = if a.container_id.is_empty() {
            String::new()
        } else {
            format!(" AND {k}container_id = ''")
        };
        branches.push(format!(
            "({k}container_name = ? AND {k}node = ? AND {same_place}{no_id})"
        ));
        p.extend([
            SqlParam::Text(a.container_name.clone()),
            SqlParam::Text(a.node.clone()),
            SqlParam::Text(a.cluster.clone()),
            SqlParam::Text(a.project.clone()),
        ]);
    }
    if !a.namespace.is_empty() && !a.pod.is_empty() {
        branches.push(format!(
            "({k}pod = ? AND {k}namespace = ? AND {same_place})"
        ));
        p.extend([
            SqlParam::Text(a.pod.clone()),
            SqlParam::Text(a.namespace.clone()),
            SqlParam::Text(a.cluster.clone()),
            SqlParam::Text(a.project.clone()),
        ]);
    }
    (branches, p)
}

/// Default `page_size` when a query leaves it 0.
pub const DEFAULT_PAGE_SIZE: u32 = 100;
/// Largest `page_size`; larger requests are clamped to it.
pub const MAX_PAGE_SIZE: u32 = 1000;
/// Most findings [`FindingStore::related`] returns.
pub const RELATED_LIMIT: usize = 1000;

/// What to list. `Default` lists everything, newest event first, 100 per page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// Filter expression (`docs/filter-grammar.md`); empty matches everything.
    pub filter: String,
    /// E.g. `eventTime desc` (the default when empty), `severity desc, eventTime desc`.
    pub order_by: String,
    /// 0 means [`DEFAULT_PAGE_SIZE`]; values above [`MAX_PAGE_SIZE`] are clamped.
    pub page_size: u32,
    /// `next_page_token` of the previous page; empty for the first page.
    pub page_token: String,
    /// Also count every match (`Page::total_size`); costs a second query.
    pub include_total: bool,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub findings: Vec<Finding>,
    /// Pass it as `page_token` to get the next page; `None` on the last page.
    pub next_page_token: Option<String>,
    /// Number of matches over all pages, when `include_total` was asked.
    pub total_size: Option<u64>,
}

/// What an upsert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    /// A new finding.
    Inserted,
    /// An existing finding (same name) was replaced; user-set state and mute were kept.
    Updated,
    /// The stored finding has a later eventTime; the incoming one was ignored.
    Stale,
}

/// Totals of an [`FindingStore::upsert_many`] batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpsertSummary {
    pub inserted: usize,
    pub updated: usize,
    pub stale: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create directory {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// SQLite failed. The message is whole (what, which file, why in plain words: read-only
    /// directory, disk full, corrupt, ...); `source` is kept for matching on the code.
    #[error("{context} {}: {}", path.display(), crate::sqlite::explain(source, path))]
    Sqlite {
        context: String,
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("database {} has schema version {found}, newer than this Ward supports ({supported}); upgrade Ward or use another file", path.display())]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("database {} has schema version {found}, older than {supported}; open it read-write once to migrate it", path.display())]
    SchemaTooOld {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    /// `PRAGMA quick_check` found damage, or SQLite said the file is corrupt or not a
    /// database, when the store was opened.
    #[error("database {} is corrupt: {detail}", path.display())]
    CorruptDatabase { path: PathBuf, detail: String },
    #[error("cannot move corrupt database {} aside to {}: {source}", path.display(), to.display())]
    MoveAside {
        path: PathBuf,
        to: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("database {} was opened read-only; cannot {operation}", path.display())]
    ReadOnly {
        path: PathBuf,
        operation: &'static str,
    },
    /// A `postgres://` URL that does not parse.
    #[error("invalid PostgreSQL URL: {message}")]
    InvalidDbUrl { message: String },
    /// The TLS setup for PostgreSQL failed (CA file unreadable or empty).
    #[error("PostgreSQL TLS: {message}")]
    PgTls { message: String },
    /// No connection to PostgreSQL (down, refused, authentication failed, pool timed out).
    #[error("cannot connect to PostgreSQL {url}: {message}")]
    PgPool { url: String, message: String },
    /// A PostgreSQL statement failed; `url` has no password.
    #[cfg(feature = "postgres")]
    #[error("{context} (PostgreSQL {url}): {source}")]
    Postgres {
        context: String,
        url: String,
        #[source]
        source: ::postgres::Error,
    },
    #[error("PostgreSQL database {url} has schema version {found}, newer than this Ward supports ({supported}); upgrade Ward")]
    PgSchemaTooNew {
        url: String,
        found: i64,
        supported: i64,
    },
    #[error(transparent)]
    Filter(#[from] FilterError),
    #[error("invalid order_by '{order_by}': {message}")]
    InvalidOrderBy { order_by: String, message: String },
    #[error("invalid page token: {0}")]
    InvalidPageToken(String),
    #[error("invalid finding '{name}': {message}")]
    InvalidFinding { name: String, message: String },
    #[error("no finding named '{0}'")]
    NotFound(String),
    /// [`FindingStore::upsert_many_for_node`]: the name is stored for another node (`owner`
    /// empty: stored without a node). Nothing of the batch was written.
    #[error(
        "finding '{name}' is stored for {}; node '{node}' may not overwrite it",
        owner_text(owner)
    )]
    NameOfAnotherNode {
        name: String,
        owner: String,
        node: String,
    },
    #[error("finding id '{id}' is ambiguous ({matches} findings); use the full name")]
    AmbiguousId { id: String, matches: usize },
    #[error("stored finding '{name}' is not valid JSON: {source}")]
    Corrupt {
        name: String,
        #[source]
        source: serde_json::Error,
    },
}

fn owner_text(owner: &str) -> String {
    if owner.is_empty() {
        "no node".to_string()
    } else {
        format!("node '{owner}'")
    }
}

impl StoreError {
    /// The database cannot be reached or asked the client to retry (PostgreSQL down, a
    /// connection lost, the server shutting down, a serialization failure or deadlock):
    /// worth a 503 and a retry, not a 500.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::PgPool { .. } => true,
            #[cfg(feature = "postgres")]
            StoreError::Postgres { source, .. } => {
                source.is_closed()
                    || source.code().is_some_and(|c| {
                        let c = c.code();
                        c.starts_with("08") || c.starts_with("57P") || c == "40001" || c == "40P01"
                    })
                    || source.as_db_error().is_none()
            }
            _ => false,
        }
    }
}

/// Storage for findings. Methods that take `name_or_id` accept the full name
/// (`<parent>/findings/<id>`) or, when unambiguous, the id alone.
pub trait FindingStore: Send + Sync {
    /// Inserts the finding, or replaces the stored one with the same name. A replacement keeps
    /// the state and mute a user set (with [`set_state`](Self::set_state) /
    /// [`set_mute`](Self::set_mute)), in the columns and in the stored JSON, and the earlier
    /// createTime. An incoming finding older (by eventTime) than the stored one is ignored.
    fn upsert(&self, finding: &Finding) -> Result<Upserted, StoreError>;
    /// [`upsert`](Self::upsert) for many findings in one transaction.
    fn upsert_many(&self, findings: &[Finding]) -> Result<UpsertSummary, StoreError>;
    /// [`upsert_many`](Self::upsert_many) for a collector's ingest of `node`'s batch: when a
    /// finding's name is already stored for another node (its stored node column is not
    /// `node`), the whole batch is refused with [`StoreError::NameOfAnotherNode`] and nothing
    /// is written. The check reads the stored row inside the upsert's own transaction (SQLite:
    /// the write transaction; PostgreSQL: the row lock the upsert takes anyway), so two
    /// collectors cannot both pass it for one name.
    fn upsert_many_for_node(
        &self,
        node: &str,
        findings: &[Finding],
    ) -> Result<UpsertSummary, StoreError>;
    fn get(&self, name_or_id: &str) -> Result<Option<Finding>, StoreError>;
    fn list(&self, query: &ListQuery) -> Result<Page, StoreError>;
    /// Number of findings matching `filter` (empty: all).
    fn count(&self, filter: &str) -> Result<u64, StoreError>;
    /// Findings of the same container (same container id, on any node; else same container
    /// name on the same node) or the same pod (namespace and pod name, on any node), within
    /// the same cluster and project ([`related_branches`]), whose eventTime is within
    /// `window_ns` of the given finding's, excluding it, oldest first (at most
    /// [`RELATED_LIMIT`]).
    fn related(&self, name_or_id: &str, window_ns: u64) -> Result<Vec<Finding>, StoreError>;
    /// Sets the state as a user decision, kept across later upserts. Returns the updated finding.
    fn set_state(&self, name_or_id: &str, state: State) -> Result<Finding, StoreError>;
    /// Sets the mute as a user decision, kept across later upserts. Returns the updated finding.
    fn set_mute(&self, name_or_id: &str, mute: Mute) -> Result<Finding, StoreError>;
}
