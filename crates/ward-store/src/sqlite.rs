//! SQLite backend.
//!
//! One writer connection and one reader connection per store, each behind a mutex, so a
//! shared `SqliteStore` lets readers list while a writer commits (WAL mode). Several stores
//! (or processes) may open the same file; `busy_timeout` makes a connection wait for a lock
//! instead of failing with `SQLITE_BUSY`, and writes take the lock up front
//! (`BEGIN IMMEDIATE`) so they never fail on a lock upgrade.

use crate::filter::{self, Dialect, SqlParam};
use crate::order::{Cursor, ListPlan, SortKey};
use crate::{FindingStore, ListQuery, Page, StoreError, UpsertSummary, Upserted, RELATED_LIMIT};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, ToSql, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tracing::{debug, info, warn};
use ward_event::finding::{Mute, State};
use ward_event::Finding;

/// How long a connection waits for a lock held by another connection.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Schema migrations, in order. Migration `i` takes `user_version` from `i` to `i + 1`.
/// Append only: never edit a released migration.
const MIGRATIONS: &[&str] = &[
    // 1: findings table and indexes.
    r#"
CREATE TABLE findings (
    seq             INTEGER PRIMARY KEY,
    name            TEXT    NOT NULL UNIQUE,
    id              TEXT    NOT NULL,
    category        TEXT    NOT NULL,
    severity        TEXT    NOT NULL,
    severity_rank   INTEGER NOT NULL,
    state           TEXT    NOT NULL,
    mute            TEXT    NOT NULL,
    state_by_user   INTEGER NOT NULL DEFAULT 0,
    mute_by_user    INTEGER NOT NULL DEFAULT 0,
    event_time_ns   INTEGER NOT NULL,
    create_time_ns  INTEGER NOT NULL,
    container_name  TEXT    NOT NULL DEFAULT '',
    container_id    TEXT    NOT NULL DEFAULT '',
    image           TEXT    NOT NULL DEFAULT '',
    pod             TEXT    NOT NULL DEFAULT '',
    namespace       TEXT    NOT NULL DEFAULT '',
    node            TEXT    NOT NULL DEFAULT '',
    resource_name   TEXT    NOT NULL DEFAULT '',
    count           INTEGER NOT NULL,
    json            TEXT    NOT NULL
);
CREATE INDEX findings_id             ON findings(id);
CREATE INDEX findings_event_time     ON findings(event_time_ns);
CREATE INDEX findings_create_time    ON findings(create_time_ns);
CREATE INDEX findings_severity_time  ON findings(severity_rank, event_time_ns);
CREATE INDEX findings_category_time  ON findings(category, event_time_ns);
CREATE INDEX findings_state_time     ON findings(state, event_time_ns);
CREATE INDEX findings_mute_time      ON findings(mute, event_time_ns);
CREATE INDEX findings_cid_time       ON findings(container_id, event_time_ns);
CREATE INDEX findings_container_time ON findings(container_name, event_time_ns);
CREATE INDEX findings_image_time     ON findings(image, event_time_ns);
CREATE INDEX findings_pod_time       ON findings(pod, event_time_ns);
CREATE INDEX findings_namespace_time ON findings(namespace, event_time_ns);
CREATE INDEX findings_node_time      ON findings(node, event_time_ns);
CREATE INDEX findings_resource_time  ON findings(resource_name, event_time_ns);
"#,
    // 2: what lists, filters and counts read moves out of the wide `findings` rows (whose JSON
    // makes every row visit a page read) into tables kept by triggers, so `findings` stays
    // the one place a finding is written:
    // * `resources`: each distinct (container id, container name, image, pod, namespace,
    //   node, resource name) once. A filter on any of these fields (`=`, `!=`, contains)
    //   selects resource ids here, in a table of one row per container rather than per
    //   finding.
    // * `finding_keys`: one narrow row per finding (resource id, times, severity, state, mute,
    //   category, count) with covering indexes, so a page or a count is an index range plus
    //   a top-N sort, not a walk over findings.
    // * `finding_counts`: findings per (category, severity, state, mute), and
    //   `finding_resource_counts`: the same per resource. A filter over those fields and the
    //   resource fields (not times, count or name) is counted by summing these rows.
    // The per-column indexes of `findings` go; `name` (unique) and `id` stay.
    r#"
CREATE TABLE resources (
    id             INTEGER PRIMARY KEY,
    container_id   TEXT    NOT NULL,
    container_name TEXT    NOT NULL,
    image          TEXT    NOT NULL,
    pod            TEXT    NOT NULL,
    namespace      TEXT    NOT NULL,
    node           TEXT    NOT NULL,
    resource_name  TEXT    NOT NULL,
    UNIQUE (container_id, container_name, image, pod, namespace, node, resource_name)
);
CREATE TABLE finding_keys (
    seq            INTEGER PRIMARY KEY,
    resource_id    INTEGER NOT NULL,
    event_time_ns  INTEGER NOT NULL,
    create_time_ns INTEGER NOT NULL,
    severity_rank  INTEGER NOT NULL,
    state          TEXT    NOT NULL,
    mute           TEXT    NOT NULL,
    category       TEXT    NOT NULL,
    count          INTEGER NOT NULL
);
CREATE TABLE finding_counts (
    category       TEXT    NOT NULL,
    severity_rank  INTEGER NOT NULL,
    state          TEXT    NOT NULL,
    mute           TEXT    NOT NULL,
    n              INTEGER NOT NULL,
    PRIMARY KEY (category, severity_rank, state, mute)
) WITHOUT ROWID;
CREATE TABLE finding_resource_counts (
    resource_id    INTEGER NOT NULL,
    category       TEXT    NOT NULL,
    severity_rank  INTEGER NOT NULL,
    state          TEXT    NOT NULL,
    mute           TEXT    NOT NULL,
    n              INTEGER NOT NULL,
    PRIMARY KEY (resource_id, category, severity_rank, state, mute)
) WITHOUT ROWID;

INSERT OR IGNORE INTO resources
    (container_id, container_name, image, pod, namespace, node, resource_name)
    SELECT container_id, container_name, image, pod, namespace, node, resource_name
    FROM findings ORDER BY seq;
INSERT INTO finding_keys
    SELECT f.seq, r.id, f.event_time_ns, f.create_time_ns, f.severity_rank, f.state, f.mute,
           f.category, f.count
    FROM findings AS f JOIN resources AS r
      ON r.container_id = f.container_id AND r.container_name = f.container_name
     AND r.image = f.image AND r.pod = f.pod AND r.namespace = f.namespace
     AND r.node = f.node AND r.resource_name = f.resource_name
    ORDER BY f.seq;
INSERT INTO finding_counts
    SELECT category, severity_rank, state, mute, COUNT(*) FROM finding_keys
    GROUP BY category, severity_rank, state, mute;
INSERT INTO finding_resource_counts
    SELECT resource_id, category, severity_rank, state, mute, COUNT(*) FROM finding_keys
    GROUP BY resource_id, category, severity_rank, state, mute;

CREATE INDEX resources_container_name ON resources(container_name, node);
CREATE INDEX resources_image          ON resources(image);
CREATE INDEX resources_pod            ON resources(pod, namespace);
CREATE INDEX resources_namespace      ON resources(namespace);
CREATE INDEX resources_node           ON resources(node);
CREATE INDEX resources_resource_name  ON resources(resource_name);

-- The explicit `seq` after the time keeps each index in (key, time, seq) order, the order
-- pages use; the columns after it let a filter be checked without leaving the index.
CREATE INDEX keys_time     ON finding_keys(event_time_ns, seq,
                                           resource_id, severity_rank, state, mute, category, count);
CREATE INDEX keys_create   ON finding_keys(create_time_ns);
CREATE INDEX keys_resource ON finding_keys(resource_id, event_time_ns, seq,
                                           severity_rank, state, mute, category, count);
CREATE INDEX keys_severity ON finding_keys(severity_rank, event_time_ns, seq,
                                           resource_id, state, mute, category);
CREATE INDEX keys_category ON finding_keys(category, event_time_ns, seq,
                                           resource_id, severity_rank, state, mute);
CREATE INDEX keys_state    ON finding_keys(state, event_time_ns);
CREATE INDEX keys_mute     ON finding_keys(mute, event_time_ns);
CREATE INDEX keys_count    ON finding_keys(count, event_time_ns, seq,
                                           resource_id, severity_rank, state, mute, category);

DROP INDEX findings_event_time;
DROP INDEX findings_create_time;
DROP INDEX findings_severity_time;
DROP INDEX findings_category_time;
DROP INDEX findings_state_time;
DROP INDEX findings_mute_time;
DROP INDEX findings_cid_time;
DROP INDEX findings_container_time;
DROP INDEX findings_image_time;
DROP INDEX findings_pod_time;
DROP INDEX findings_namespace_time;
DROP INDEX findings_node_time;
DROP INDEX findings_resource_time;

-- findings -> resources, finding_keys
CREATE TRIGGER findings_keys_insert AFTER INSERT ON findings BEGIN
    INSERT OR IGNORE INTO resources
        (container_id, container_name, image, pod, namespace, node, resource_name)
        VALUES (NEW.container_id, NEW.container_name, NEW.image, NEW.pod, NEW.namespace,
                NEW.node, NEW.resource_name);
    INSERT INTO finding_keys VALUES (
        NEW.seq,
        (SELECT id FROM resources
          WHERE container_id = NEW.container_id AND container_name = NEW.container_name
            AND image = NEW.image AND pod = NEW.pod AND namespace = NEW.namespace
            AND node = NEW.node AND resource_name = NEW.resource_name),
        NEW.event_time_ns, NEW.create_time_ns, NEW.severity_rank, NEW.state, NEW.mute,
        NEW.category, NEW.count);
END;
CREATE TRIGGER findings_keys_update AFTER UPDATE ON findings BEGIN
    INSERT OR IGNORE INTO resources
        (container_id, container_name, image, pod, namespace, node, resource_name)
        VALUES (NEW.container_id, NEW.container_name, NEW.image, NEW.pod, NEW.namespace,
                NEW.node, NEW.resource_name);
    UPDATE finding_keys SET
        seq = NEW.seq,
        resource_id = (SELECT id FROM resources
          WHERE container_id = NEW.container_id AND container_name = NEW.container_name
            AND image = NEW.image AND pod = NEW.pod AND namespace = NEW.namespace
            AND node = NEW.node AND resource_name = NEW.resource_name),
        event_time_ns = NEW.event_time_ns, create_time_ns = NEW.create_time_ns,
        severity_rank = NEW.severity_rank, state = NEW.state, mute = NEW.mute,
        category = NEW.category, count = NEW.count
    WHERE seq = OLD.seq;
END;
CREATE TRIGGER findings_keys_delete AFTER DELETE ON findings BEGIN
    DELETE FROM finding_keys WHERE seq = OLD.seq;
END;

-- finding_keys -> finding_counts, finding_resource_counts (rows at zero are removed)
CREATE TRIGGER keys_count_insert AFTER INSERT ON finding_keys BEGIN
    INSERT INTO finding_counts VALUES (NEW.category, NEW.severity_rank, NEW.state, NEW.mute, 1)
        ON CONFLICT DO UPDATE SET n = n + 1;
    INSERT INTO finding_resource_counts
        VALUES (NEW.resource_id, NEW.category, NEW.severity_rank, NEW.state, NEW.mute, 1)
        ON CONFLICT DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER keys_count_update
    AFTER UPDATE OF resource_id, category, severity_rank, state, mute ON finding_keys
    WHEN OLD.resource_id IS NOT NEW.resource_id OR OLD.category IS NOT NEW.category
      OR OLD.severity_rank IS NOT NEW.severity_rank OR OLD.state IS NOT NEW.state
      OR OLD.mute IS NOT NEW.mute
BEGIN
    UPDATE finding_counts SET n = n - 1
     WHERE category = OLD.category AND severity_rank = OLD.severity_rank
       AND state = OLD.state AND mute = OLD.mute;
    DELETE FROM finding_counts
     WHERE category = OLD.category AND severity_rank = OLD.severity_rank
       AND state = OLD.state AND mute = OLD.mute AND n = 0;
    INSERT INTO finding_counts VALUES (NEW.category, NEW.severity_rank, NEW.state, NEW.mute, 1)
        ON CONFLICT DO UPDATE SET n = n + 1;
    UPDATE finding_resource_counts SET n = n - 1
     WHERE resource_id = OLD.resource_id AND category = OLD.category
       AND severity_rank = OLD.severity_rank AND state = OLD.state AND mute = OLD.mute;
    DELETE FROM finding_resource_counts
     WHERE resource_id = OLD.resource_id AND category = OLD.category
       AND severity_rank = OLD.severity_rank AND state = OLD.state AND mute = OLD.mute
       AND n = 0;
    INSERT INTO finding_resource_counts
        VALUES (NEW.resource_id, NEW.category, NEW.severity_rank, NEW.state, NEW.mute, 1)
        ON CONFLICT DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER keys_count_delete AFTER DELETE ON finding_keys BEGIN
    UPDATE finding_counts SET n = n - 1
     WHERE category = OLD.category AND severity_rank = OLD.severity_rank
       AND state = OLD.state AND mute = OLD.mute;
    DELETE FROM finding_counts
     WHERE category = OLD.category AND severity_rank = OLD.severity_rank
       AND state = OLD.state AND mute = OLD.mute AND n = 0;
    UPDATE finding_resource_counts SET n = n - 1
     WHERE resource_id = OLD.resource_id AND category = OLD.category
       AND severity_rank = OLD.severity_rank AND state = OLD.state AND mute = OLD.mute;
    DELETE FROM finding_resource_counts
     WHERE resource_id = OLD.resource_id AND category = OLD.category
       AND severity_rank = OLD.severity_rank AND state = OLD.state AND mute = OLD.mute
       AND n = 0;
END;
"#,
    // 3: the outbox of the outputs other than the store (`ward_output`): one row per finding
    // whose latest committed state some output has not acknowledged yet. `seq` only grows
    // (AUTOINCREMENT: never reused after deletes), so an output's position is one number in
    // `output_cursors`. `first_seq` is the seq at which the finding was first queued (NULL:
    // this row's own seq; 0: its first state left the outbox before), so an output that sends
    // only new findings can tell a repeat. `outbox_meta` holds the running totals the bounds
    // check reads (kept by triggers) and the count of rows dropped by the bounds.
    r#"
CREATE TABLE outbox (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    name           TEXT    NOT NULL UNIQUE,
    first_seq      INTEGER,
    severity_rank  INTEGER NOT NULL,
    bytes          INTEGER NOT NULL,
    queued_ns      INTEGER NOT NULL
);
CREATE INDEX outbox_severity ON outbox(severity_rank, seq);
CREATE INDEX outbox_queued ON outbox(queued_ns);
CREATE TABLE output_cursors (
    output  TEXT PRIMARY KEY,
    seq     INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE outbox_meta (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    rows     INTEGER NOT NULL,
    bytes    INTEGER NOT NULL,
    dropped  INTEGER NOT NULL
);
INSERT INTO outbox_meta VALUES (1, 0, 0, 0);
CREATE TRIGGER outbox_add AFTER INSERT ON outbox BEGIN
    UPDATE outbox_meta SET rows = rows + 1, bytes = bytes + NEW.bytes WHERE id = 1;
END;
CREATE TRIGGER outbox_remove AFTER DELETE ON outbox BEGIN
    UPDATE outbox_meta SET rows = rows - 1, bytes = bytes - OLD.bytes WHERE id = 1;
END;
"#,
    // 4: resource identity for a fleet: the cluster and project of a finding's resource
    // (`Finding::cluster`, `Finding::project_display_name`) as columns of `findings` and of
    // the distinct `resources` (so `cluster=`/`project=` filters select resource ids like
    // the other resource fields, and counts stay sums over `finding_resource_counts`).
    // `resources` is rebuilt with the two columns in its identity (same ids: nothing that
    // points at it changes); existing findings have neither (''). The triggers that fill it
    // are recreated with the new columns.
    r#"
DROP TRIGGER findings_keys_insert;
DROP TRIGGER findings_keys_update;
ALTER TABLE findings ADD COLUMN cluster TEXT NOT NULL DEFAULT '';
ALTER TABLE findings ADD COLUMN project TEXT NOT NULL DEFAULT '';
CREATE TABLE resources_v4 (
    id             INTEGER PRIMARY KEY,
    container_id   TEXT    NOT NULL,
    container_name TEXT    NOT NULL,
    image          TEXT    NOT NULL,
    pod            TEXT    NOT NULL,
    namespace      TEXT    NOT NULL,
    node           TEXT    NOT NULL,
    resource_name  TEXT    NOT NULL,
    cluster        TEXT    NOT NULL DEFAULT '',
    project        TEXT    NOT NULL DEFAULT '',
    UNIQUE (container_id, container_name, image, pod, namespace, node, resource_name,
            cluster, project)
);
INSERT INTO resources_v4
    (id, container_id, container_name, image, pod, namespace, node, resource_name)
    SELECT id, container_id, container_name, image, pod, namespace, node, resource_name
    FROM resources ORDER BY id;
DROP TABLE resources;
ALTER TABLE resources_v4 RENAME TO resources;
CREATE INDEX resources_container_name ON resources(container_name, node);
CREATE INDEX resources_image          ON resources(image);
CREATE INDEX resources_pod            ON resources(pod, namespace);
CREATE INDEX resources_namespace      ON resources(namespace);
CREATE INDEX resources_node           ON resources(node);
CREATE INDEX resources_resource_name  ON resources(resource_name);
CREATE INDEX resources_cluster        ON resources(cluster);
CREATE INDEX resources_project        ON resources(project);

CREATE TRIGGER findings_keys_insert AFTER INSERT ON findings BEGIN
    INSERT OR IGNORE INTO resources
        (container_id, container_name, image, pod, namespace, node, resource_name,
         cluster, project)
        VALUES (NEW.container_id, NEW.container_name, NEW.image, NEW.pod, NEW.namespace,
                NEW.node, NEW.resource_name, NEW.cluster, NEW.project);
    INSERT INTO finding_keys VALUES (
        NEW.seq,
        (SELECT id FROM resources
          WHERE container_id = NEW.container_id AND container_name = NEW.container_name
            AND image = NEW.image AND pod = NEW.pod AND namespace = NEW.namespace
            AND node = NEW.node AND resource_name = NEW.resource_name
            AND cluster = NEW.cluster AND project = NEW.project),
        NEW.event_time_ns, NEW.create_time_ns, NEW.severity_rank, NEW.state, NEW.mute,
        NEW.category, NEW.count);
END;
CREATE TRIGGER findings_keys_update AFTER UPDATE ON findings BEGIN
    INSERT OR IGNORE INTO resources
        (container_id, container_name, image, pod, namespace, node, resource_name,
         cluster, project)
        VALUES (NEW.container_id, NEW.container_name, NEW.image, NEW.pod, NEW.namespace,
                NEW.node, NEW.resource_name, NEW.cluster, NEW.project);
    UPDATE finding_keys SET
        seq = NEW.seq,
        resource_id = (SELECT id FROM resources
          WHERE container_id = NEW.container_id AND container_name = NEW.container_name
            AND image = NEW.image AND pod = NEW.pod AND namespace = NEW.namespace
            AND node = NEW.node AND resource_name = NEW.resource_name
            AND cluster = NEW.cluster AND project = NEW.project),
        event_time_ns = NEW.event_time_ns, create_time_ns = NEW.create_time_ns,
        severity_rank = NEW.severity_rank, state = NEW.state, mute = NEW.mute,
        category = NEW.category, count = NEW.count
    WHERE seq = OLD.seq;
END;
"#,
    // 5: the node registry of a central collector (`nodes.rs`): enrolled agents, the SHA-256
    // of each one's token, last seen, agent version, last health summary, revoked.
    r#"
CREATE TABLE nodes (
    name          TEXT    PRIMARY KEY,
    token_sha256  TEXT    NOT NULL UNIQUE,
    created_ns    INTEGER NOT NULL,
    last_seen_ns  INTEGER NOT NULL DEFAULT 0,
    agent_version TEXT    NOT NULL DEFAULT '',
    health        TEXT    NOT NULL DEFAULT '{}',
    revoked       INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
"#,
];

/// SQLite virtual-machine steps between two calls of the read connection's progress handler.
const STEP_BATCH: i32 = 1000;
/// Most step batches an ordered scan may take before `list` gives up on it (5 million steps:
/// a few milliseconds, some 100k index entries). It gets four times what its expected length
/// needs, at least [`SCAN_BUDGET_MIN`].
const SCAN_BUDGET: i64 = 5000;
const SCAN_BUDGET_MIN: i64 = 300;
/// VM steps per index entry of an ordered scan (reading the entry, testing a filter), to
/// size its budget.
const STEPS_PER_ENTRY: u64 = 20;
/// An ordered scan is tried when its expected length is at most this fraction of the
/// matches (which the other plan reads and sorts): matches >= sqrt(10 * page * findings).
const SCAN_ADVANTAGE: u64 = 10;

/// Counts down step batches while armed; the progress handler interrupts the statement when
/// it reaches zero.
#[derive(Debug)]
struct StepBudget {
    /// Batches an ordered scan gets ([`SCAN_BUDGET`]; 0 never tries one).
    batches: AtomicI64,
    armed: AtomicBool,
    left: AtomicI64,
    /// Ordered scans given up.
    interrupted: std::sync::atomic::AtomicU64,
}

impl Default for StepBudget {
    fn default() -> Self {
        StepBudget {
            batches: AtomicI64::new(SCAN_BUDGET),
            armed: AtomicBool::new(false),
            left: AtomicI64::new(0),
            interrupted: Default::default(),
        }
    }
}

impl StepBudget {
    /// Called by SQLite every [`STEP_BATCH`] steps; true interrupts the statement.
    fn spend(&self) -> bool {
        let out =
            self.armed.load(Ordering::Relaxed) && self.left.fetch_sub(1, Ordering::Relaxed) <= 1;
        if out {
            self.interrupted.fetch_add(1, Ordering::Relaxed);
        }
        out
    }

    fn arm(&self, batches: i64) {
        self.left.store(batches, Ordering::Relaxed);
        self.armed.store(true, Ordering::Relaxed);
    }

    fn disarm(&self) {
        self.armed.store(false, Ordering::Relaxed);
    }
}

/// The schema version this code writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

pub struct SqliteStore {
    path: PathBuf,
    /// `None` for a store opened read-only.
    pub(crate) writer: Option<Mutex<Connection>>,
    /// Bounds the ordered scans `list` tries first for filters matching many findings.
    budget: Arc<StepBudget>,
    reader: Mutex<Connection>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("read_only", &self.writer.is_none())
            .finish()
    }
}

fn lock(m: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    // A panic while holding the lock cannot leave a transaction open (rusqlite rolls back
    // on drop), so a poisoned connection is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ToSql for SqlParam {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            SqlParam::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            SqlParam::Int(n) => ToSqlOutput::Borrowed(ValueRef::Integer(*n)),
        })
    }
}

/// The indexed columns of one finding.
pub(crate) struct Row {
    pub(crate) name: String,
    pub(crate) id: String,
    pub(crate) category: String,
    pub(crate) severity: &'static str,
    pub(crate) severity_rank: i64,
    pub(crate) state: &'static str,
    pub(crate) mute: &'static str,
    pub(crate) event_time_ns: i64,
    pub(crate) create_time_ns: i64,
    pub(crate) container_name: String,
    pub(crate) container_id: String,
    pub(crate) image: String,
    pub(crate) pod: String,
    pub(crate) namespace: String,
    pub(crate) node: String,
    pub(crate) resource_name: String,
    pub(crate) cluster: String,
    pub(crate) project: String,
    pub(crate) count: i64,
}

fn parse_time(f: &Finding, field: &str, value: &str) -> Result<i64, StoreError> {
    ward_event::time::parse_rfc3339(value)
        .and_then(|ns| i64::try_from(ns).ok())
        .ok_or_else(|| StoreError::InvalidFinding {
            name: f.name.clone(),
            message: format!("{field} '{value}' is not an RFC 3339 time"),
        })
}

impl Row {
    pub(crate) fn from_finding(f: &Finding) -> Result<Row, StoreError> {
        if f.name.trim().is_empty() {
            return Err(StoreError::InvalidFinding {
                name: f.name.clone(),
                message: "empty name".into(),
            });
        }
        let first_container = f.containers.first();
        let pod = f.kubernetes.as_ref().and_then(|k| k.pods.first());
        let node = f.kubernetes.as_ref().and_then(|k| k.nodes.first());
        let src = |k: &str| f.source_str(k).unwrap_or("").to_string();
        Ok(Row {
            name: f.name.clone(),
            id: f.id().to_string(),
            category: f.category.clone(),
            severity: f.severity.as_str(),
            severity_rank: filter::severity_rank(f.severity),
            state: f.state.as_str(),
            mute: f.mute.as_str(),
            event_time_ns: parse_time(f, "eventTime", &f.event_time)?,
            create_time_ns: parse_time(f, "createTime", &f.create_time)?,
            container_name: first_container
                .map(|c| c.name.clone())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| src("Container_Name")),
            container_id: src("Container_Id"),
            image: first_container
                .and_then(|c| c.uri.clone())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| src("Container_Image_Uri")),
            pod: pod
                .map(|p| p.name.clone())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| src("Pod_Name")),
            namespace: pod
                .map(|p| p.ns.clone())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| src("Pod_Namespace")),
            node: node
                .map(|n| n.name.clone())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| src("VM_Instance_Name")),
            resource_name: f.resource_name.clone(),
            cluster: f.cluster.clone().unwrap_or_default(),
            project: f.project_display_name.clone().unwrap_or_default(),
            count: i64::try_from(f.count()).unwrap_or(i64::MAX),
        })
    }
}

pub(crate) fn parse_state(s: &str) -> State {
    if s == "INACTIVE" {
        State::Inactive
    } else {
        State::Active
    }
}

pub(crate) fn parse_mute(s: &str) -> Mute {
    match s {
        "MUTED" => Mute::Muted,
        "UNMUTED" => Mute::Unmuted,
        _ => Mute::Undefined,
    }
}

pub(crate) fn to_json(f: &Finding) -> Result<String, StoreError> {
    serde_json::to_string(f).map_err(|e| StoreError::InvalidFinding {
        name: f.name.clone(),
        message: format!("cannot serialise: {e}"),
    })
}

pub(crate) fn from_json(name: &str, json: &str) -> Result<Finding, StoreError> {
    serde_json::from_str(json).map_err(|source| StoreError::Corrupt {
        name: name.to_string(),
        source,
    })
}

impl SqliteStore {
    /// Opens (creating it and its parent directories if needed) a store for reading and
    /// writing, and migrates its schema to [`SCHEMA_VERSION`]. Fails if the database was
    /// written by a newer Ward.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        Self::open_with(path.as_ref(), true)
    }

    /// Like [`SqliteStore::open`] without `PRAGMA quick_check` (which reads the whole file):
    /// for a further handle on a store this process has just opened with [`SqliteStore::open`]
    /// (`ward agent --serve` opens one for its API).
    pub fn open_again(path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        Self::open_with(path.as_ref(), false)
    }

    fn open_with(path: &Path, check: bool) -> Result<SqliteStore, StoreError> {
        let path = path.to_path_buf();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| StoreError::CreateDir {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        let mut writer = Self::connect(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        let err = |context: &str| {
            let path = path.clone();
            let context = context.to_string();
            move |source| StoreError::Sqlite {
                context,
                path,
                source,
            }
        };
        if check {
            quick_check(&writer, &path)?;
        }
        let mode: String = writer
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(err("cannot enable WAL"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            warn!(path = %path.display(), mode, "SQLite did not switch to WAL mode");
        }
        writer
            .execute_batch("PRAGMA synchronous=NORMAL;")
            .map_err(err("cannot set synchronous"))?;
        migrate(&mut writer, &path)?;
        let (reader, budget) = Self::connect_reader(&path)?;
        info!(path = %path.display(), version = SCHEMA_VERSION, "finding store open");
        Ok(SqliteStore {
            path,
            writer: Some(Mutex::new(writer)),
            reader: Mutex::new(reader),
            budget,
        })
    }

    /// Like [`SqliteStore::open`], but a corrupt database (see
    /// [`StoreError::CorruptDatabase`]) is moved aside, with its `-wal` and `-shm` files, to
    /// `<file>.corrupt-<UTC time>` (e.g. `findings.db.corrupt-20261201T223000Z`) and an empty
    /// store is created in its place. Returns the store and, when it moved one, the corrupt
    /// file's new path and what was wrong with it.
    pub fn open_or_recreate(
        path: impl AsRef<Path>,
    ) -> Result<(SqliteStore, Option<(PathBuf, String)>), StoreError> {
        let path = path.as_ref();
        match Self::open(path) {
            Err(StoreError::CorruptDatabase { detail, .. }) => {
                let to = move_aside(path)?;
                info!(path = %path.display(), moved_to = %to.display(), detail, "corrupt finding store moved aside");
                Ok((Self::open(path)?, Some((to, detail))))
            }
            other => other.map(|s| (s, None)),
        }
    }

    /// Opens an existing store for reading only. Fails if the file does not exist or its
    /// schema is not [`SCHEMA_VERSION`].
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        let (reader, budget) = Self::connect_reader(&path)?;
        let version: i64 = reader
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|source| StoreError::Sqlite {
                context: "cannot read schema version".into(),
                path: path.clone(),
                source,
            })?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                path,
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        if version < SCHEMA_VERSION {
            return Err(StoreError::SchemaTooOld {
                path,
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        Ok(SqliteStore {
            path,
            writer: None,
            reader: Mutex::new(reader),
            budget,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn is_read_only(&self) -> bool {
        self.writer.is_none()
    }

    /// Runs `PRAGMA optimize` (refreshes the query planner's statistics where useful).
    /// Cheap; call it after large imports or now and then.
    pub fn optimize(&self) -> Result<(), StoreError> {
        let conn = self.writer("optimize")?;
        conn.execute_batch("PRAGMA optimize=0x10002;")
            .map_err(self.err("cannot optimize"))
    }

    /// The read connection, with a progress handler that interrupts a statement once the
    /// armed [`StepBudget`] runs out (and never while it is disarmed).
    fn connect_reader(path: &Path) -> Result<(Connection, Arc<StepBudget>), StoreError> {
        let mut conn = Self::connect(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        let budget = Arc::new(StepBudget::default());
        let b = budget.clone();
        conn.progress_handler(STEP_BATCH, Some(move || b.spend()))
            .map_err(|source| StoreError::Sqlite {
                context: "cannot install the progress handler".into(),
                path: path.to_path_buf(),
                source,
            })?;
        Ok((conn, budget))
    }

    fn connect(path: &Path, flags: OpenFlags) -> Result<Connection, StoreError> {
        let conn =
            Connection::open_with_flags(path, flags).map_err(|source| StoreError::Sqlite {
                context: "cannot open database".into(),
                path: path.to_path_buf(),
                source,
            })?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(|source| StoreError::Sqlite {
                context: "cannot set busy_timeout".into(),
                path: path.to_path_buf(),
                source,
            })?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(conn)
    }

    pub(crate) fn err(
        &self,
        context: &'static str,
    ) -> impl FnOnce(rusqlite::Error) -> StoreError + '_ {
        move |source| StoreError::Sqlite {
            context: context.to_string(),
            path: self.path.clone(),
            source,
        }
    }

    pub(crate) fn writer(
        &self,
        operation: &'static str,
    ) -> Result<MutexGuard<'_, Connection>, StoreError> {
        match &self.writer {
            Some(w) => Ok(lock(w)),
            None => Err(StoreError::ReadOnly {
                path: self.path.clone(),
                operation,
            }),
        }
    }

    pub(crate) fn upsert_in(
        &self,
        tx: &rusqlite::Transaction<'_>,
        f: &Finding,
    ) -> Result<Upserted, StoreError> {
        self.upsert_in_for(tx, f, None)
    }

    /// `upsert_many`, and with `node` `upsert_many_for_node`: one write transaction.
    fn upsert_many_owned(
        &self,
        node: Option<&str>,
        findings: &[Finding],
    ) -> Result<UpsertSummary, StoreError> {
        let mut conn = self.writer("upsert")?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(self.err("cannot begin transaction"))?;
        let mut sum = UpsertSummary::default();
        for f in findings {
            // An error drops `tx` uncommitted: nothing of the batch is written.
            match self.upsert_in_for(&tx, f, node)? {
                Upserted::Inserted => sum.inserted += 1,
                Upserted::Updated => sum.updated += 1,
                Upserted::Stale => sum.stale += 1,
            }
        }
        tx.commit().map_err(self.err("cannot commit"))?;
        debug!(?sum, "upserted batch");
        Ok(sum)
    }

    /// [`upsert_in`](Self::upsert_in); with `node`, a name stored for another node is
    /// refused ([`StoreError::NameOfAnotherNode`]) before anything of it is written.
    fn upsert_in_for(
        &self,
        tx: &rusqlite::Transaction<'_>,
        f: &Finding,
        node: Option<&str>,
    ) -> Result<Upserted, StoreError> {
        let row = Row::from_finding(f)?;
        let existing = tx
            .prepare_cached(
                "SELECT seq, event_time_ns, create_time_ns, state, mute, state_by_user, \
                 mute_by_user, json_extract(json, '$.createTime'), node FROM findings \
                 WHERE name = ?1",
            )
            .and_then(|mut st| {
                st.query_row([&row.name], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, bool>(5)?,
                        r.get::<_, bool>(6)?,
                        r.get::<_, Option<String>>(7)?,
                        r.get::<_, String>(8)?,
                    ))
                })
                .optional()
            })
            .map_err(self.err("cannot look up finding"))?;
        let Some((
            seq,
            old_event,
            old_create,
            old_state,
            old_mute,
            state_by_user,
            mute_by_user,
            old_create_str,
            owner,
        )) = existing
        else {
            let json = to_json(f)?;
            tx.prepare_cached(
                "INSERT INTO findings (name, id, category, severity, severity_rank, state, mute, \
                 event_time_ns, create_time_ns, container_name, container_id, image, pod, \
                 namespace, node, resource_name, count, json, cluster, project) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, \
                 ?17, ?18, ?19, ?20)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    row.name,
                    row.id,
                    row.category,
                    row.severity,
                    row.severity_rank,
                    row.state,
                    row.mute,
                    row.event_time_ns,
                    row.create_time_ns,
                    row.container_name,
                    row.container_id,
                    row.image,
                    row.pod,
                    row.namespace,
                    row.node,
                    row.resource_name,
                    row.count,
                    json,
                    row.cluster,
                    row.project
                ])
            })
            .map_err(self.err("cannot insert finding"))?;
            return Ok(Upserted::Inserted);
        };
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
            merged.state = parse_state(&old_state);
        }
        if mute_by_user {
            merged.mute = parse_mute(&old_mute);
        }
        let mut create_ns = row.create_time_ns;
        if old_create < create_ns {
            if let Some(s) = old_create_str {
                merged.create_time = s;
                create_ns = old_create;
            }
        }
        let json = to_json(&merged)?;
        tx.prepare_cached(
            "UPDATE findings SET id = ?2, category = ?3, severity = ?4, severity_rank = ?5, \
             state = ?6, mute = ?7, event_time_ns = ?8, create_time_ns = ?9, \
             container_name = ?10, container_id = ?11, image = ?12, pod = ?13, namespace = ?14, \
             node = ?15, resource_name = ?16, count = ?17, json = ?18, cluster = ?19, \
             project = ?20 WHERE seq = ?1",
        )
        .and_then(|mut st| {
            st.execute(params![
                seq,
                row.id,
                row.category,
                row.severity,
                row.severity_rank,
                merged.state.as_str(),
                merged.mute.as_str(),
                row.event_time_ns,
                create_ns,
                row.container_name,
                row.container_id,
                row.image,
                row.pod,
                row.namespace,
                row.node,
                row.resource_name,
                row.count,
                json,
                row.cluster,
                row.project
            ])
        })
        .map_err(self.err("cannot update finding"))?;
        Ok(Upserted::Updated)
    }

    /// Resolves a name or id to the stored (seq, name, json).
    fn resolve(
        &self,
        conn: &Connection,
        name_or_id: &str,
    ) -> Result<Option<(i64, String, String)>, StoreError> {
        let by_name = conn
            .prepare_cached("SELECT seq, name, json FROM findings WHERE name = ?1")
            .and_then(|mut st| {
                st.query_row([name_or_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .optional()
            })
            .map_err(self.err("cannot look up finding"))?;
        if by_name.is_some() {
            return Ok(by_name);
        }
        let mut rows: Vec<(i64, String, String)> = conn
            .prepare_cached("SELECT seq, name, json FROM findings WHERE id = ?1 LIMIT 2")
            .and_then(|mut st| {
                st.query_map([name_or_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect()
            })
            .map_err(self.err("cannot look up finding"))?;
        match rows.len() {
            0 => Ok(None),
            1 => Ok(rows.pop()),
            _ => {
                let matches: i64 = conn
                    .query_row(
                        "SELECT COUNT(*) FROM findings WHERE id = ?1",
                        [name_or_id],
                        |r| r.get(0),
                    )
                    .map_err(self.err("cannot look up finding"))?;
                Err(StoreError::AmbiguousId {
                    id: name_or_id.to_string(),
                    matches: usize::try_from(matches).unwrap_or(usize::MAX),
                })
            }
        }
    }

    /// The (name, JSON) of each finding, in the order given.
    fn documents(
        &self,
        conn: &Connection,
        seqs: impl Iterator<Item = i64>,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let mut st = conn
            .prepare_cached("SELECT name, json FROM findings WHERE seq = ?1")
            .map_err(self.err("cannot read findings"))?;
        let mut out = Vec::new();
        for seq in seqs {
            // A key row always has its finding (same transaction, kept by triggers).
            if let Some(doc) = st
                .query_row([seq], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
                .map_err(self.err("cannot read findings"))?
            {
                out.push(doc);
            }
        }
        Ok(out)
    }

    /// Number of findings matching a parsed filter: a sum over the per-class counts (no
    /// filter, or one over category, severity, state and mute), over the per-resource-class
    /// counts (those fields and the resource fields), or a count of key rows (filters on
    /// times, count or name). The compiled filter reads the same column names in all three.
    fn count_in(
        &self,
        conn: &Connection,
        expr: Option<&filter::Expr>,
        compiled: Option<&filter::SqlFilter>,
    ) -> Result<u64, StoreError> {
        let from = match expr.map_or(filter::Countable::ByClass, |e| e.countable()) {
            filter::Countable::ByClass => "SELECT COALESCE(SUM(k.n), 0) FROM finding_counts AS k",
            filter::Countable::ByResourceClass => {
                "SELECT COALESCE(SUM(k.n), 0) FROM finding_resource_counts AS k"
            }
            filter::Countable::ByRow => "SELECT COUNT(*) FROM finding_keys AS k",
        };
        let sql = format!(
            "{from}{}",
            compiled
                .map(|c| format!(" WHERE {}", c.sql))
                .unwrap_or_default()
        );
        let no_params: Vec<SqlParam> = Vec::new();
        let params = compiled.map(|c| &c.params).unwrap_or(&no_params);
        let n: i64 = conn
            .prepare_cached(&sql)
            .and_then(|mut st| {
                st.query_row(rusqlite::params_from_iter(params.iter()), |r| r.get(0))
            })
            .map_err(self.err("cannot count findings"))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    fn set_user_field(
        &self,
        name_or_id: &str,
        operation: &'static str,
        apply: impl FnOnce(&mut Finding) -> (&'static str, &'static str),
    ) -> Result<Finding, StoreError> {
        let mut conn = self.writer(operation)?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(self.err("cannot begin transaction"))?;
        let (seq, name, json) = self
            .resolve(&tx, name_or_id)?
            .ok_or_else(|| StoreError::NotFound(name_or_id.to_string()))?;
        let mut f = from_json(&name, &json)?;
        let (column, value) = apply(&mut f);
        let json = to_json(&f)?;
        // `column` is one of two fixed names chosen by the callers below.
        let sql = format!(
            "UPDATE findings SET {column} = ?1, {column}_by_user = 1, json = ?2 WHERE seq = ?3"
        );
        tx.execute(&sql, params![value, json, seq])
            .map_err(self.err("cannot update finding"))?;
        tx.commit().map_err(self.err("cannot commit"))?;
        info!(name = %name, column, value, "user changed finding");
        Ok(f)
    }
}

fn where_sql(conds: &[String]) -> String {
    if conds.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conds.join(" AND "))
    }
}

/// `PRAGMA quick_check` (every page and b-tree checked, not index contents): a damaged store
/// is refused when it is opened rather than failing writes later.
fn quick_check(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let mut problems: Vec<String> = Vec::new();
    let run = conn.prepare("PRAGMA quick_check(5)").and_then(|mut st| {
        let mut rows = st.query([])?;
        while let Some(row) = rows.next()? {
            problems.push(row.get(0)?);
        }
        Ok(())
    });
    let detail = match run {
        Ok(()) if problems.iter().all(|p| p == "ok") => return Ok(()),
        // One line: SQLite's rows may hold several lines under a "*** in database main ***"
        // heading.
        Ok(()) => format!(
            "quick_check: {}",
            problems
                .iter()
                .flat_map(|p| p.lines())
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with("***"))
                .collect::<Vec<_>>()
                .join("; ")
        ),
        Err(e) if is_corrupt(&e) => sqlite_message(&e, path),
        Err(source) => {
            return Err(StoreError::Sqlite {
                context: "cannot check the integrity of database".into(),
                path: path.to_path_buf(),
                source,
            })
        }
    };
    Err(StoreError::CorruptDatabase {
        path: path.to_path_buf(),
        detail,
    })
}

fn is_corrupt(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
    )
}

/// SQLite's own message, without the file name it sometimes appends.
fn sqlite_message(e: &rusqlite::Error, path: &Path) -> String {
    match e {
        rusqlite::Error::SqliteFailure(_, Some(m)) => {
            let suffix = format!(": {}", path.display());
            m.strip_suffix(&suffix).unwrap_or(m).to_string()
        }
        rusqlite::Error::SqliteFailure(f, None) => f.to_string(),
        other => other.to_string(),
    }
}

/// Why a SQLite call on `path` failed, in plain words (the caller names the file).
pub(crate) fn explain(e: &rusqlite::Error, path: &Path) -> String {
    use rusqlite::ErrorCode as C;
    let msg = sqlite_message(e, path);
    match e.sqlite_error_code() {
        Some(C::DiskFull) => format!("the disk is full ({msg})"),
        Some(C::DatabaseCorrupt | C::NotADatabase) => format!("the file is corrupt ({msg})"),
        Some(C::ReadOnly | C::CannotOpen | C::SystemIoFailure | C::PermissionDenied) => {
            match probe_dir(path) {
                Some(why) => format!("{why} ({msg})"),
                None => msg,
            }
        }
        _ => msg,
    }
}

/// After an open or write failure: is the directory missing, read-only, not writable to us,
/// or full? Creates and removes a probe file to find out (only on this error path).
fn probe_dir(path: &Path) -> Option<String> {
    use std::io::ErrorKind as K;
    let dir = match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(d) => d,
        None => Path::new("."),
    };
    if !dir.is_dir() {
        return Some(format!("the directory {} does not exist", dir.display()));
    }
    let probe = dir.join(format!(".ward-probe-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .and_then(|mut f| {
            std::io::Write::write_all(&mut f, &[0u8; 4096]).and_then(|_| f.sync_all())
        }) {
        Ok(()) => {
            let _ = std::fs::remove_file(&probe);
            match std::fs::metadata(path) {
                Ok(m) if m.permissions().readonly() => Some("the file is read-only".into()),
                _ => None,
            }
        }
        Err(e) => {
            let _ = std::fs::remove_file(&probe);
            Some(match e.kind() {
                K::ReadOnlyFilesystem => {
                    format!(
                        "the directory {} is on a read-only file system",
                        dir.display()
                    )
                }
                K::PermissionDenied => format!("no permission to write in {}", dir.display()),
                K::StorageFull | K::QuotaExceeded => "the disk is full".to_string(),
                _ => format!("cannot write in {}: {e}", dir.display()),
            })
        }
    }
}

/// Moves `path` and its `-wal` / `-shm` files to `<path>.corrupt-<UTC time>[-N]`.
fn move_aside(path: &Path) -> Result<PathBuf, StoreError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    // 2026-12-01T22:30:00.123456789Z -> 20261201T223000Z
    let stamp: String = ward_event::time::format_rfc3339(now)
        .split('.')
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    let with = |suffix: &str| {
        let mut s = path.as_os_str().to_owned();
        s.push(suffix);
        PathBuf::from(s)
    };
    let mut to = with(&format!(".corrupt-{stamp}Z"));
    let mut n = 1;
    while to.exists() {
        to = with(&format!(".corrupt-{stamp}Z-{n}"));
        n += 1;
    }
    let rename = |from: &Path, dest: &Path| {
        std::fs::rename(from, dest).map_err(|source| StoreError::MoveAside {
            path: from.to_path_buf(),
            to: dest.to_path_buf(),
            source,
        })
    };
    rename(path, &to)?;
    for side in ["-wal", "-shm"] {
        let from = with(side);
        if from.exists() {
            let mut dest = to.as_os_str().to_owned();
            dest.push(side);
            rename(&from, Path::new(&dest))?;
        }
    }
    Ok(to)
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let err = |context: &'static str| {
        move |source| StoreError::Sqlite {
            context: context.to_string(),
            path: path.to_path_buf(),
            source,
        }
    };
    let too_new = |found: i64| StoreError::SchemaTooNew {
        path: path.to_path_buf(),
        found,
        supported: SCHEMA_VERSION,
    };
    // The schema version; one newer than this code is an error.
    let read_version = |c: &Connection| -> Result<i64, StoreError> {
        let version: i64 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(err("cannot read schema version"))?;
        if version > SCHEMA_VERSION {
            return Err(too_new(version));
        }
        Ok(version)
    };
    // Up to date (the usual case): no need to wait for the write lock a busy agent holds.
    if read_version(conn)? == SCHEMA_VERSION {
        return Ok(());
    }
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(err("cannot begin migration"))?;
    // Again under the lock: another process may have migrated meanwhile.
    let version = read_version(&tx)?;
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    let start = std::time::Instant::now();
    // Index builds sort in memory up to the page cache size: give them room, once.
    let cache: i64 = tx
        .query_row("PRAGMA cache_size", [], |r| r.get(0))
        .map_err(err("cannot read the cache size"))?;
    tx.execute_batch("PRAGMA cache_size = -131072;")
        .map_err(err("cannot size the cache for migration"))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
        info!(path = %path.display(), to = i + 1, "migrating finding store schema");
        tx.execute_batch(sql)
            .map_err(err("schema migration failed"))?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(err("cannot set schema version"))?;
    tx.commit().map_err(err("cannot commit migration"))?;
    conn.pragma_update(None, "cache_size", cache)
        .map_err(err("cannot reset the cache size"))?;
    if version > 0 {
        info!(
            path = %path.display(),
            from = version,
            to = SCHEMA_VERSION,
            seconds = start.elapsed().as_secs_f64(),
            "finding store migrated"
        );
        // The migration went through the WAL; give that space back (best effort: a reader
        // may still hold old pages).
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())) {
            debug!(error = %e, "checkpoint after migration");
        }
    }
    Ok(())
}

impl FindingStore for SqliteStore {
    fn upsert(&self, finding: &Finding) -> Result<Upserted, StoreError> {
        let mut conn = self.writer("upsert")?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(self.err("cannot begin transaction"))?;
        let r = self.upsert_in(&tx, finding)?;
        tx.commit().map_err(self.err("cannot commit"))?;
        Ok(r)
    }

    fn upsert_many(&self, findings: &[Finding]) -> Result<UpsertSummary, StoreError> {
        self.upsert_many_owned(None, findings)
    }

    fn upsert_many_for_node(
        &self,
        node: &str,
        findings: &[Finding],
    ) -> Result<UpsertSummary, StoreError> {
        self.upsert_many_owned(Some(node), findings)
    }

    fn get(&self, name_or_id: &str) -> Result<Option<Finding>, StoreError> {
        let conn = lock(&self.reader);
        match self.resolve(&conn, name_or_id)? {
            Some((_, name, json)) => from_json(&name, &json).map(Some),
            None => Ok(None),
        }
    }

    fn list(&self, query: &ListQuery) -> Result<Page, StoreError> {
        let expr = filter::parse(&query.filter)?;
        let ListPlan {
            compiled,
            order,
            digest,
            page_size,
            conds,
            params,
            join,
        } = ListPlan::new(query, expr.as_ref(), Dialect::Sqlite)?;
        // Only the sequence number and the sort keys: the sort (a top-N heap) and whatever
        // index the planner walks never carry a finding's JSON.
        let sql = |indexed_by: &str| {
            format!(
                "SELECT k.seq, {} FROM finding_keys AS k{indexed_by}{join}{} ORDER BY {} LIMIT {}",
                order.key_columns().join(", "),
                where_sql(&conds),
                order.order_sql(),
                page_size + 1
            )
        };
        let text_key: Vec<bool> = order.keys.iter().map(|(f, _)| f.is_text()).collect();
        let read_page =
            |conn: &Connection, sql: &str| -> rusqlite::Result<Vec<(i64, Vec<SortKey>)>> {
                conn.prepare_cached(sql).and_then(|mut st| {
                    st.query_map(rusqlite::params_from_iter(params.iter()), |r| {
                        let mut keys = Vec::with_capacity(text_key.len());
                        for (i, is_text) in text_key.iter().enumerate() {
                            keys.push(if *is_text {
                                SortKey::Text(r.get(1 + i)?)
                            } else {
                                SortKey::Int(r.get(1 + i)?)
                            });
                        }
                        Ok((r.get(0)?, keys))
                    })?
                    .collect()
                })
            };

        let mut conn = lock(&self.reader);
        // One read transaction so the page, its records and the total see the same snapshot.
        let tx = conn
            .transaction()
            .map_err(self.err("cannot begin read transaction"))?;
        let total_size = if query.include_total {
            Some(self.count_in(&tx, expr.as_ref(), compiled.as_ref())?)
        } else {
            None
        };
        // Many matches: walking the index of the sort order and keeping the first matches
        // beats fetching every match and sorting them, but SQLite cannot tell (it takes an
        // `IN (subquery)` for a few rows). When the count is known, or cheap, and the walk
        // should read a tenth of the matches or less, walk the order's index, within a step
        // budget in case the matches sit at the far end of the order; then let SQLite
        // choose.
        let matches = match (total_size, expr.as_ref().map(|e| e.countable())) {
            (Some(m), _) => Some(m),
            (None, Some(c)) if c != filter::Countable::ByRow => {
                Some(self.count_in(&tx, expr.as_ref(), compiled.as_ref())?)
            }
            _ => None,
        };
        let max_budget = self.budget.batches.load(Ordering::Relaxed);
        let ordered_scan = match (order.scan_index(), matches) {
            (Some(index), Some(m)) if m > 0 && max_budget > 0 => {
                let all = self.count_in(&tx, None, None)?;
                let page = (page_size + 1) as u64;
                // Matches spread evenly over the order: the walk reads page * all / m entries.
                let expected = page.saturating_mul(all) / m;
                // A resource filter first selects its resource ids (a pass over resources).
                let resources: u64 = if expr.as_ref().map(|e| e.countable())
                    == Some(filter::Countable::ByResourceClass)
                {
                    tx.query_row("SELECT COALESCE(MAX(id), 0) FROM resources", [], |r| {
                        r.get::<_, i64>(0)
                    })
                    .map_err(self.err("cannot list findings"))?
                    .max(0) as u64
                } else {
                    0
                };
                let batches =
                    |steps: u64| i64::try_from(steps / STEP_BATCH as u64).unwrap_or(i64::MAX);
                let extra = batches(resources.saturating_mul(STEPS_PER_ENTRY));
                let budget = batches(expected.saturating_mul(4 * STEPS_PER_ENTRY))
                    .clamp(SCAN_BUDGET_MIN.min(max_budget), max_budget)
                    .saturating_add(extra);
                (m.saturating_mul(m) >= SCAN_ADVANTAGE.saturating_mul(page).saturating_mul(all))
                    .then_some((index, budget))
            }
            _ => None,
        };
        let mut rows = None;
        if matches == Some(0) {
            // Nothing matches (the count says so, in this snapshot): no page to look for.
            rows = Some(Vec::new());
        } else if let Some((index, budget)) = ordered_scan {
            self.budget.arm(budget);
            let r = read_page(&tx, &sql(&format!(" INDEXED BY {index}")));
            self.budget.disarm();
            match r {
                Ok(r) => rows = Some(r),
                Err(e)
                    if e.sqlite_error_code() == Some(rusqlite::ErrorCode::OperationInterrupted) =>
                {
                    debug!(index, "ordered scan over budget; letting SQLite choose");
                }
                Err(e) => return Err(self.err("cannot list findings")(e)),
            }
        }
        let mut rows = match rows {
            Some(r) => r,
            None => read_page(&tx, &sql("")).map_err(self.err("cannot list findings"))?,
        };
        let next_page_token = if rows.len() > page_size {
            rows.truncate(page_size);
            rows.last().map(|(seq, keys)| {
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
        let docs = self.documents(&tx, rows.iter().map(|(seq, _)| *seq))?;
        drop(tx);
        let findings = docs
            .iter()
            .map(|(name, json)| from_json(name, json))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page {
            findings,
            next_page_token,
            total_size,
        })
    }

    fn count(&self, filter_text: &str) -> Result<u64, StoreError> {
        let expr = filter::parse(filter_text)?;
        let compiled = expr.as_ref().map(filter::compile);
        let conn = lock(&self.reader);
        self.count_in(&conn, expr.as_ref(), compiled.as_ref())
    }

    fn related(&self, name_or_id: &str, window_ns: u64) -> Result<Vec<Finding>, StoreError> {
        let mut conn = lock(&self.reader);
        let tx = conn
            .transaction()
            .map_err(self.err("cannot begin read transaction"))?;
        let (seq, name, _) = self
            .resolve(&tx, name_or_id)?
            .ok_or_else(|| StoreError::NotFound(name_or_id.to_string()))?;
        type Anchor = (String, String, String, String, String, i64, String, String);
        let (cid, cname, node, ns, pod, t, cluster, project): Anchor = tx
            .query_row(
                "SELECT container_id, container_name, node, namespace, pod, event_time_ns, \
                 cluster, project FROM findings WHERE seq = ?1",
                [seq],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                        r.get(7)?,
                    ))
                },
            )
            .map_err(self.err("cannot look up finding"))?;
        let w = i64::try_from(window_ns).unwrap_or(i64::MAX);
        let (branches, mut p) = crate::related_branches(&crate::RelatedAnchor {
            container_id: cid,
            container_name: cname,
            node,
            namespace: ns,
            pod,
            cluster,
            project,
            column_prefix: "",
        });
        if branches.is_empty() {
            return Ok(Vec::new());
        }
        p.extend([
            SqlParam::Int(seq),
            SqlParam::Int(t.saturating_sub(w)),
            SqlParam::Int(t.saturating_add(w)),
        ]);
        let sql = format!(
            "SELECT k.seq FROM finding_keys AS k \
             WHERE k.resource_id IN (SELECT id FROM resources WHERE {}) \
             AND k.seq != ? AND k.event_time_ns BETWEEN ? AND ? \
             ORDER BY k.event_time_ns ASC, k.seq ASC LIMIT {}",
            branches.join(" OR "),
            RELATED_LIMIT + 1
        );
        let seqs: Vec<i64> = tx
            .prepare_cached(&sql)
            .and_then(|mut st| {
                st.query_map(rusqlite::params_from_iter(p.iter()), |r| r.get(0))?
                    .collect()
            })
            .map_err(self.err("cannot query related findings"))?;
        if seqs.len() > RELATED_LIMIT {
            warn!(name = %name, limit = RELATED_LIMIT, "related findings truncated");
        }
        let docs = self.documents(&tx, seqs.into_iter().take(RELATED_LIMIT))?;
        drop(tx);
        docs.iter().map(|(n, j)| from_json(n, j)).collect()
    }

    fn set_state(&self, name_or_id: &str, state: State) -> Result<Finding, StoreError> {
        self.set_user_field(name_or_id, "set state", |f| {
            f.state = state;
            ("state", state.as_str())
        })
    }

    fn set_mute(&self, name_or_id: &str, mute: Mute) -> Result<Finding, StoreError> {
        self.set_user_field(name_or_id, "set mute", |f| {
            f.mute = mute;
            ("mute", mute.as_str())
        })
    }
}

#[cfg(test)]
#[path = "sqlite_tests.rs"]
mod tests;
