//! The node registry of a central collector: one row per enrolled agent (`nodes` table, in
//! SQLite and PostgreSQL), with the SHA-256 of its token (never the token), when it enrolled
//! and was last seen, the agent version and last health summary it sent, and whether it was
//! revoked. `ward-api`'s ingest and enrollment handlers are its only users.

use crate::StoreError;
use rusqlite::OptionalExtension;
use serde::Serialize;

/// Longest node name accepted (a Kubernetes node name is at most 253 characters).
pub const MAX_NODE_NAME_LEN: usize = 253;

/// One enrolled node as the registry keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeRecord {
    pub name: String,
    /// When it enrolled (last enrollment), ns since the epoch.
    #[serde(skip)]
    pub created_ns: i64,
    /// Last ingest or heartbeat (0: never), ns since the epoch.
    #[serde(skip)]
    pub last_seen_ns: i64,
    pub agent_version: String,
    /// The health summary of its last batch (a JSON object of counters; `{}` before any).
    #[serde(skip)]
    pub health_json: String,
    pub revoked: bool,
    /// The cluster its findings name (the most recent one's), when [`NodeStore::list_nodes`]
    /// read it; empty when unknown (no finding of the node names one) or not read.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cluster: String,
    /// The project its findings name, as `cluster`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub project: String,
}

/// What [`NodeStore::enroll_node`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enrolled {
    /// A new node, or a revoked one enrolled again: the token hash is stored.
    Enrolled,
    /// The name is enrolled and not revoked: nothing changed (revoke it first).
    Exists,
}

/// The node registry (implemented by `SqliteStore` and `PgStore`).
pub trait NodeStore: Send + Sync {
    /// Stores `token_sha256` (hex) for `name` unless the name is enrolled and not revoked.
    fn enroll_node(
        &self,
        name: &str,
        token_sha256: &str,
        agent_version: &str,
        now_ns: i64,
    ) -> Result<Enrolled, StoreError>;
    /// The node whose token hashes to `token_sha256` (revoked ones included: the caller
    /// refuses them).
    fn node_by_token(&self, token_sha256: &str) -> Result<Option<NodeRecord>, StoreError>;
    /// Records an ingest or heartbeat: last seen, agent version, and the health summary when
    /// one was sent (a JSON object).
    fn node_seen(
        &self,
        name: &str,
        agent_version: &str,
        health_json: Option<&str>,
        now_ns: i64,
    ) -> Result<(), StoreError>;
    /// Every node, by name, with the cluster and project its findings name (the most recent
    /// finding's on PostgreSQL, the most recently added resource's on SQLite; empty when
    /// none names one).
    fn list_nodes(&self) -> Result<Vec<NodeRecord>, StoreError>;
    /// Revokes the node's token; `false` when no such node is enrolled.
    fn revoke_node(&self, name: &str) -> Result<bool, StoreError>;
}

/// Checks a node name: 1..=253 characters, letters, digits and `-._` only (what Kubernetes
/// and host names use), so it is safe in logs, URLs and resource names.
pub fn check_node_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("node name is empty".into());
    }
    if name.len() > MAX_NODE_NAME_LEN {
        return Err(format!(
            "node name is {} bytes; at most {MAX_NODE_NAME_LEN}",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')))
    {
        return Err(format!(
            "node name {name:?} has {c:?}; only letters, digits, '-', '.' and '_' are allowed"
        ));
    }
    Ok(())
}

/// The node a finding belongs to, as the stores index it: `kubernetes.nodes[0].name`, else
/// `sourceProperties.VM_Instance_Name` (where `ward agent --node-name` puts it); empty when
/// neither is set.
pub fn finding_node(f: &ward_event::Finding) -> String {
    f.kubernetes
        .as_ref()
        .and_then(|k| k.nodes.first())
        .map(|n| n.name.clone())
        .filter(|s| !s.is_empty())
        .or_else(|| f.source_str("VM_Instance_Name").map(str::to_string))
        .unwrap_or_default()
}

/// Checks what the store would refuse in a finding (empty name, times that are not RFC
/// 3339), without writing it: the ingest API rejects a whole batch before writing any of it.
pub fn validate_finding(f: &ward_event::Finding) -> Result<(), StoreError> {
    crate::sqlite::Row::from_finding(f).map(|_| ())
}

const NODE_COLUMNS: &str = "name, created_ns, last_seen_ns, agent_version, health, revoked";

impl NodeStore for crate::SqliteStore {
    fn enroll_node(
        &self,
        name: &str,
        token_sha256: &str,
        agent_version: &str,
        now_ns: i64,
    ) -> Result<Enrolled, StoreError> {
        let mut conn = self.writer("enroll a node")?;
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(self.err("cannot begin enrollment"))?;
        let revoked: Option<bool> = tx
            .query_row("SELECT revoked FROM nodes WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()
            .map_err(self.err("cannot look up node"))?;
        match revoked {
            Some(false) => return Ok(Enrolled::Exists),
            Some(true) => {
                tx.execute(
                    "UPDATE nodes SET token_sha256 = ?2, created_ns = ?3, agent_version = ?4, \
                     revoked = 0, last_seen_ns = 0, health = '{}' WHERE name = ?1",
                    rusqlite::params![name, token_sha256, now_ns, agent_version],
                )
                .map_err(self.err("cannot enroll node"))?;
            }
            None => {
                tx.execute(
                    "INSERT INTO nodes (name, token_sha256, created_ns, agent_version) \
                     VALUES (?1, ?2, ?3, ?4)",
                    rusqlite::params![name, token_sha256, now_ns, agent_version],
                )
                .map_err(self.err("cannot enroll node"))?;
            }
        }
        tx.commit().map_err(self.err("cannot commit enrollment"))?;
        Ok(Enrolled::Enrolled)
    }

    fn node_by_token(&self, token_sha256: &str) -> Result<Option<NodeRecord>, StoreError> {
        let conn = self.writer("read the node registry")?;
        conn.prepare_cached(&format!(
            "SELECT {NODE_COLUMNS} FROM nodes WHERE token_sha256 = ?1"
        ))
        .and_then(|mut st| st.query_row([token_sha256], sqlite_node).optional())
        .map_err(self.err("cannot look up node token"))
    }

    fn node_seen(
        &self,
        name: &str,
        agent_version: &str,
        health_json: Option<&str>,
        now_ns: i64,
    ) -> Result<(), StoreError> {
        let conn = self.writer("record a node's visit")?;
        conn.execute(
            "UPDATE nodes SET last_seen_ns = MAX(last_seen_ns, ?2), agent_version = ?3, \
             health = COALESCE(?4, health) WHERE name = ?1",
            rusqlite::params![name, now_ns, agent_version, health_json],
        )
        .map_err(self.err("cannot record node visit"))?;
        Ok(())
    }

    fn list_nodes(&self) -> Result<Vec<NodeRecord>, StoreError> {
        let conn = self.writer("read the node registry")?;
        // The cluster and project of the node's latest resource (`resources` has one row
        // per distinct container/pod/node/cluster/project, indexed by node).
        let mut st = conn
            .prepare_cached(
                "SELECT n.name, n.created_ns, n.last_seen_ns, n.agent_version, n.health, \
                 n.revoked, r.cluster, r.project FROM nodes AS n \
                 LEFT JOIN resources AS r ON r.id = (SELECT id FROM resources \
                   WHERE node = n.name ORDER BY id DESC LIMIT 1) \
                 ORDER BY n.name",
            )
            .map_err(self.err("cannot list nodes"))?;
        let rows = st
            .query_map([], |r| {
                let mut n = sqlite_node(r)?;
                n.cluster = r.get::<_, Option<String>>(6)?.unwrap_or_default();
                n.project = r.get::<_, Option<String>>(7)?.unwrap_or_default();
                Ok(n)
            })
            .and_then(|r| r.collect::<Result<Vec<_>, _>>())
            .map_err(self.err("cannot list nodes"))?;
        Ok(rows)
    }

    fn revoke_node(&self, name: &str) -> Result<bool, StoreError> {
        let conn = self.writer("revoke a node")?;
        let n = conn
            .execute("UPDATE nodes SET revoked = 1 WHERE name = ?1", [name])
            .map_err(self.err("cannot revoke node"))?;
        Ok(n > 0)
    }
}

fn sqlite_node(r: &rusqlite::Row<'_>) -> rusqlite::Result<NodeRecord> {
    Ok(NodeRecord {
        name: r.get(0)?,
        created_ns: r.get(1)?,
        last_seen_ns: r.get(2)?,
        agent_version: r.get(3)?,
        health_json: r.get(4)?,
        revoked: r.get(5)?,
        cluster: String::new(),
        project: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names() {
        for ok in [
            "node-a",
            "ip-10-0-0-1.ec2.internal",
            "n_1",
            &"a".repeat(253),
        ] {
            check_node_name(ok).unwrap();
        }
        for bad in ["", "a b", "x/y", "é", &"a".repeat(254)] {
            assert!(check_node_name(bad).is_err(), "{bad}");
        }
    }
}
