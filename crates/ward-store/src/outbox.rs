//! The outbox: what the outputs other than the store still have to deliver, kept in the same
//! SQLite file and committed in the same transaction as the findings themselves, so a finding
//! is queued for every output exactly when the store has it (the store first) and survives a
//! SIGKILL of the agent.
//!
//! * One row per finding name, for its latest committed state; a later state of the same
//!   finding replaces the row with a new, larger `seq` (`seq` only grows).
//! * Each output keeps its position (`output_cursors`): everything up to it was acknowledged
//!   by that output's receiver. Rows every output has passed are deleted ([`SqliteStore::prune_outbox`]).
//! * Bounded by bytes (the finding JSON's size) and age: over a bound, the oldest rows go
//!   (age), then the lowest severity first, oldest first within a severity (bytes). Each row
//!   dropped is counted (`outbox_meta.dropped`) and returned so the caller can tell which
//!   outputs lost it.

use crate::sqlite::{from_json, to_json, SqliteStore};
use crate::{StoreError, Upserted};
use rusqlite::{params, OptionalExtension, TransactionBehavior};
use std::collections::BTreeMap;
use ward_event::Finding;

/// Bounds of the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxBounds {
    /// Most bytes of finding JSON queued.
    pub max_bytes: u64,
    /// Rows queued longer than this (nanoseconds) are dropped.
    pub max_age_ns: u64,
}

/// Where one committed finding sits in the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxSeq {
    pub seq: i64,
    /// The seq at which this finding was first queued; 0 when its first state left the outbox
    /// earlier (delivered or dropped): this state is a repeat for every output.
    pub first_seq: i64,
}

/// What [`SqliteStore::commit_with_outbox`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboxCommit {
    /// Per input finding, in order: its outbox position, or `None` when the update was stale
    /// (the store kept a later state) or no outbox was asked for.
    pub queued: Vec<Option<OutboxSeq>>,
    /// Seqs of rows the bounds dropped in this commit.
    pub dropped: Vec<i64>,
}

/// One row read back from the outbox, with the finding's current stored state.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEntry {
    pub at: OutboxSeq,
    pub finding: Finding,
}

/// Totals of the outbox.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxStats {
    pub rows: u64,
    pub bytes: u64,
    /// Rows dropped by the bounds, over the store's lifetime.
    pub dropped: u64,
    /// The largest seq ever handed out (0 when none).
    pub last_seq: i64,
}

impl SqliteStore {
    /// Upserts `findings` in one transaction and, when `outbox` is given, queues each stored
    /// (not stale) one in the outbox and enforces the bounds (age, then bytes; `now_ns` is the
    /// clock). The given output cursors are stored in the same transaction.
    pub fn commit_with_outbox(
        &self,
        findings: &[Finding],
        outbox: Option<OutboxBounds>,
        cursors: &[(String, i64)],
        now_ns: u64,
    ) -> Result<OutboxCommit, StoreError> {
        let mut conn = self.writer("upsert")?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(self.err("cannot begin transaction"))?;
        let mut out = OutboxCommit::default();
        for f in findings {
            let r = self.upsert_in(&tx, f)?;
            if outbox.is_none() || r == Upserted::Stale {
                out.queued.push(None);
                continue;
            }
            let old_first: Option<i64> = tx
                .prepare_cached(
                    "DELETE FROM outbox WHERE name = ?1 RETURNING COALESCE(first_seq, seq)",
                )
                .and_then(|mut st| st.query_row([&f.name], |r| r.get(0)).optional())
                .map_err(self.err("cannot queue finding in the outbox"))?;
            let bytes = to_json(f)?.len() as i64;
            let first: Option<i64> = match (r, old_first) {
                (_, Some(first)) => Some(first),
                (Upserted::Inserted, None) => None,
                // Its first state left the outbox already: a repeat for everyone.
                _ => Some(0),
            };
            let seq: i64 = tx
                .prepare_cached(
                    "INSERT INTO outbox (name, first_seq, severity_rank, bytes, queued_ns) \
                     VALUES (?1, ?2, ?3, ?4, ?5) RETURNING seq",
                )
                .and_then(|mut st| {
                    st.query_row(
                        params![
                            f.name,
                            first,
                            crate::filter::severity_rank(f.severity),
                            bytes,
                            now_ns as i64
                        ],
                        |r| r.get(0),
                    )
                })
                .map_err(self.err("cannot queue finding in the outbox"))?;
            out.queued.push(Some(OutboxSeq {
                seq,
                first_seq: first.unwrap_or(seq),
            }));
        }
        set_cursors(self, &tx, cursors)?;
        if let Some(bounds) = outbox {
            let cutoff = now_ns.saturating_sub(bounds.max_age_ns) as i64;
            let mut aged: Vec<i64> = tx
                .prepare_cached("DELETE FROM outbox WHERE queued_ns < ?1 RETURNING seq")
                .and_then(|mut st| {
                    st.query_map([cutoff], |r| r.get(0))?
                        .collect::<rusqlite::Result<Vec<i64>>>()
                })
                .map_err(self.err("cannot bound the outbox"))?;
            out.dropped.append(&mut aged);
            loop {
                let bytes: i64 = tx
                    .query_row("SELECT bytes FROM outbox_meta WHERE id = 1", [], |r| {
                        r.get(0)
                    })
                    .map_err(self.err("cannot bound the outbox"))?;
                if bytes <= bounds.max_bytes as i64 {
                    break;
                }
                let seq: Option<i64> = tx
                    .prepare_cached(
                        "DELETE FROM outbox WHERE seq = \
                         (SELECT seq FROM outbox ORDER BY severity_rank, seq LIMIT 1) RETURNING seq",
                    )
                    .and_then(|mut st| st.query_row([], |r| r.get(0)).optional())
                    .map_err(self.err("cannot bound the outbox"))?;
                match seq {
                    Some(s) => out.dropped.push(s),
                    None => break,
                }
            }
            if !out.dropped.is_empty() {
                tx.execute(
                    "UPDATE outbox_meta SET dropped = dropped + ?1 WHERE id = 1",
                    [out.dropped.len() as i64],
                )
                .map_err(self.err("cannot bound the outbox"))?;
            }
        }
        tx.commit().map_err(self.err("cannot commit"))?;
        Ok(out)
    }

    /// Up to `limit` outbox rows after `after`, in seq order, with each finding's current
    /// stored state (a row whose finding is gone is skipped).
    pub fn outbox_after(&self, after: i64, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        let conn = self.writer("read the outbox")?;
        let mut st = conn
            .prepare_cached(
                "SELECT o.seq, COALESCE(o.first_seq, o.seq), f.name, f.json FROM outbox o \
                 JOIN findings f ON f.name = o.name WHERE o.seq > ?1 ORDER BY o.seq LIMIT ?2",
            )
            .map_err(self.err("cannot read the outbox"))?;
        let rows = st
            .query_map(params![after, limit as i64], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(self.err("cannot read the outbox"))?;
        rows.into_iter()
            .map(|(seq, first_seq, name, json)| {
                Ok(OutboxEntry {
                    at: OutboxSeq { seq, first_seq },
                    finding: from_json(&name, &json)?,
                })
            })
            .collect()
    }

    /// Every output's stored position.
    pub fn output_cursors(&self) -> Result<BTreeMap<String, i64>, StoreError> {
        let conn = self.writer("read output cursors")?;
        let mut st = conn
            .prepare_cached("SELECT output, seq FROM output_cursors")
            .map_err(self.err("cannot read output cursors"))?;
        let rows = st
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .and_then(|rows| rows.collect::<rusqlite::Result<BTreeMap<_, _>>>())
            .map_err(self.err("cannot read output cursors"))?;
        Ok(rows)
    }

    /// Stores output positions, then deletes the rows at or below `prune_upto` (every
    /// configured output has acknowledged them; not drops).
    pub fn save_cursors(
        &self,
        cursors: &[(String, i64)],
        prune_upto: i64,
    ) -> Result<(), StoreError> {
        let mut conn = self.writer("write output cursors")?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(self.err("cannot begin transaction"))?;
        set_cursors(self, &tx, cursors)?;
        tx.execute("DELETE FROM outbox WHERE seq <= ?1", [prune_upto])
            .map_err(self.err("cannot prune the outbox"))?;
        tx.commit().map_err(self.err("cannot commit"))?;
        Ok(())
    }

    /// Deletes rows at or below `upto`.
    pub fn prune_outbox(&self, upto: i64) -> Result<(), StoreError> {
        self.save_cursors(&[], upto)
    }

    pub fn outbox_stats(&self) -> Result<OutboxStats, StoreError> {
        let conn = self.writer("read the outbox")?;
        let mut st = conn
            .prepare_cached(
                "SELECT rows, bytes, dropped, \
                 COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'outbox'), 0) \
                 FROM outbox_meta WHERE id = 1",
            )
            .map_err(self.err("cannot read the outbox"))?;
        st.query_row([], |r| {
            Ok(OutboxStats {
                rows: r.get::<_, i64>(0)?.max(0) as u64,
                bytes: r.get::<_, i64>(1)?.max(0) as u64,
                dropped: r.get::<_, i64>(2)?.max(0) as u64,
                last_seq: r.get(3)?,
            })
        })
        .map_err(self.err("cannot read the outbox"))
    }
}

fn set_cursors(
    store: &SqliteStore,
    tx: &rusqlite::Transaction<'_>,
    cursors: &[(String, i64)],
) -> Result<(), StoreError> {
    for (name, seq) in cursors {
        tx.prepare_cached(
            "INSERT INTO output_cursors (output, seq) VALUES (?1, ?2) \
             ON CONFLICT(output) DO UPDATE SET seq = MAX(seq, excluded.seq)",
        )
        .and_then(|mut st| st.execute(params![name, seq]))
        .map_err(store.err("cannot write output cursors"))?;
    }
    Ok(())
}
