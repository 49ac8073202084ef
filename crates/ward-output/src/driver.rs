//! The one driver of `ward agent` and `ward replay`: finding updates in, the store first,
//! then every sink.
//!
//! * **Store first.** Updates wait in `pending` (one per finding name, its last state) and are
//!   committed as a group: at once when a new finding is among them, else every
//!   `flush_interval` or 512 updates. A failing store is retried (100 ms doubling to 5 s);
//!   nothing reaches a sink before its commit.
//! * **Outbox.** With sinks configured, the same transaction queues each committed finding
//!   in the store's outbox (`ward_store::SqliteStore::commit_with_outbox`), bounded by bytes
//!   and age (lowest severity dropped first, counted per sink).
//! * **Fan-out.** Each sink has a thread and a bounded queue. After a commit the driver hands
//!   each sink the new states; a sink whose queue is full is switched to *backlog*: it is
//!   then fed from the outbox at `drain_rate` until it has caught up. Nothing is dropped for
//!   a full queue, only by the outbox bounds.
//! * **Acknowledgement.** A sink thread retries a failed batch with exponential backoff and
//!   full jitter; when the receiver has it, the sink's acknowledged seq advances. The driver
//!   stores each sink's position every 250 ms (and at shutdown) and prunes outbox rows every
//!   sink has passed. After a crash a sink resumes at its stored position: findings
//!   acknowledged in the last 250 ms are sent again (same `name`: receivers deduplicate).
//! * **A failing store** keeps the batch and retries (100 ms doubling to 5 s); new findings in
//!   it are handed to the sinks directly once, so a broken store never hides a finding, and
//!   come again through the outbox when the store takes them (same `name`).
//! * **Without a store** (`ward replay` without `--db`) the driver hands updates straight to
//!   the sinks, waiting when a queue is full.

use crate::spec::OutputSettings;
use crate::{FindingSink, Item};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use ward_event::Finding;
use ward_store::{FindingStore, OutboxBounds, SqliteStore, StoreError};

/// Most finding updates held for a failing store (each is the last state of one finding).
pub const STORE_PENDING_MAX: usize = 65_536;
/// How often sink positions are stored (and the outbox pruned).
const CURSOR_SAVE_EVERY: Duration = Duration::from_millis(250);
/// How often the outbox figures (rows, bytes, dropped) are read from the store.
const OUTBOX_STATS_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// Repeats of known findings are committed at least this often (new ones at once).
    pub flush_interval: Duration,
    pub settings: OutputSettings,
    /// Who is driving, for log lines (`ward agent`).
    pub program: &'static str,
    /// Commit as soon as a new finding waits (the agent: outputs see it without delay);
    /// else new findings wait for 512 updates or `flush_interval` too (replay).
    pub new_at_once: bool,
}

/// One configured sink.
pub struct NamedSink {
    /// Names it in metrics and keys its position in the store.
    pub name: String,
    /// Also send later states of a finding (else only its first).
    pub updates: bool,
    pub sink: Box<dyn FindingSink>,
}

/// Counters of one sink.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkStats {
    pub name: String,
    /// Finding states the receiver acknowledged.
    pub sent: u64,
    /// Failed writes (each retried).
    pub failed: u64,
    /// Finding states it will never get: dropped by the outbox bounds before it had them,
    /// or still queued when shutdown gave up (no store).
    pub dropped: u64,
    /// Handed to the sink and not yet acknowledged.
    pub queued: u64,
    /// Catching up from the outbox.
    pub backlog: bool,
    pub last_error: Option<String>,
    /// What the sink says of itself ([`FindingSink::health`]).
    pub health: Option<String>,
}

/// Counters of the store stage and the outbox.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    pub errors: u64,
    pub pending: u64,
    pub dropped: u64,
    pub outbox_rows: u64,
    pub outbox_bytes: u64,
    pub outbox_dropped: u64,
}

#[derive(Default)]
struct Shared {
    sent: AtomicU64,
    failed: AtomicU64,
    depth: AtomicU64,
    acked: AtomicI64,
    stop: AtomicBool,
    last_error: Mutex<Option<String>>,
    health: Mutex<Option<String>>,
}

struct Slot {
    name: String,
    updates: bool,
    tx: Option<SyncSender<Item>>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    /// Everything up to here was handed over (or is a repeat this sink skips).
    enqueued: i64,
    /// Position last stored.
    saved: i64,
    lagging: bool,
    dropped: u64,
    tokens: f64,
    refilled: Instant,
}

struct StoreStage {
    store: SqliteStore,
    /// name → (last state, new since the last commit).
    /// name → (last state, new since the last commit, order of its first push): commits and
    /// outputs follow the order the engine reported findings in, not name order.
    pending: BTreeMap<String, (Finding, bool, u64)>,
    next_order: u64,
    /// A new finding is among `pending`.
    new_waiting: bool,
    /// The first state of each new finding in `pending` (a repeat in the same batch replaces
    /// the state the store gets): what outputs that only take first states are handed.
    firsts: std::collections::HashMap<String, Arc<Finding>>,
    /// New findings handed to the outputs directly while the store fails.
    fell_back: std::collections::HashSet<String>,
    last_flush: Instant,
    errors: u64,
    dropped: u64,
    retry_at: Option<Instant>,
    backoff: Duration,
    last_error: Option<String>,
}

pub struct Driver {
    store: Option<StoreStage>,
    slots: Vec<Slot>,
    cfg: DriverConfig,
    last_save: Instant,
    /// When the outbox figures were last read.
    last_stats: Instant,
    outbox: (u64, u64, u64),
    /// Findings the store holds that this driver committed (new and updated).
    pub committed: u64,
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

impl Driver {
    /// Starts one thread per sink. With a store and sinks, each sink resumes at its stored
    /// position; a sink the store does not know starts at the outbox's end (only findings from
    /// now on), and that position is stored at once.
    pub fn new(
        store: Option<SqliteStore>,
        sinks: Vec<NamedSink>,
        cfg: DriverConfig,
    ) -> Result<Driver, StoreError> {
        let mut positions: Vec<i64> = vec![0; sinks.len()];
        if let Some(st) = store.as_ref().filter(|_| !sinks.is_empty()) {
            let cursors = st.output_cursors()?;
            let last = st.outbox_stats()?.last_seq;
            let mut fresh = Vec::new();
            for (i, s) in sinks.iter().enumerate() {
                positions[i] = match cursors.get(&s.name) {
                    Some(c) => *c,
                    None => {
                        fresh.push((s.name.clone(), last));
                        last
                    }
                };
            }
            if !fresh.is_empty() {
                st.save_cursors(&fresh, i64::MIN)?;
            }
        }
        // An output starts in backlog only when the outbox holds something past its position.
        let behind: Vec<bool> = positions
            .iter()
            .map(|p| {
                store
                    .as_ref()
                    .is_some_and(|st| st.outbox_after(*p, 1).is_ok_and(|r| !r.is_empty()))
            })
            .collect();
        let mut slots = Vec::new();
        for ((s, pos), behind) in sinks.into_iter().zip(positions).zip(behind) {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Item>(cfg.settings.queue.max(1));
            let shared = Arc::new(Shared::default());
            shared.acked.store(pos, Ordering::SeqCst);
            let sh = shared.clone();
            let settings = cfg.settings.clone();
            let sink = s.sink;
            let thread = std::thread::Builder::new()
                .name(format!("ward-output-{}", slots.len()))
                .spawn(move || sink_thread(sink, rx, sh, settings))
                .map_err(|e| StoreError::InvalidFinding {
                    name: s.name.clone(),
                    message: format!("cannot start the output thread: {e}"),
                })?;
            slots.push(Slot {
                name: s.name,
                updates: s.updates,
                tx: Some(tx),
                shared,
                thread: Some(thread),
                enqueued: pos,
                saved: pos,
                lagging: behind,
                dropped: 0,
                tokens: f64::from(cfg.settings.drain_rate.max(1)),
                refilled: Instant::now(),
            });
        }
        Ok(Driver {
            store: store.map(|store| StoreStage {
                store,
                pending: BTreeMap::new(),
                next_order: 0,
                new_waiting: false,
                firsts: Default::default(),
                fell_back: Default::default(),
                last_flush: Instant::now(),
                errors: 0,
                dropped: 0,
                retry_at: None,
                backoff: Duration::from_millis(100),
                last_error: None,
            }),
            slots,
            cfg,
            last_save: Instant::now(),
            last_stats: Instant::now()
                .checked_sub(OUTBOX_STATS_EVERY)
                .unwrap_or_else(Instant::now),
            outbox: (0, 0, 0),
            committed: 0,
        })
    }

    pub fn store(&self) -> Option<&SqliteStore> {
        self.store.as_ref().map(|s| &s.store)
    }

    /// One finding update from the engine.
    pub fn push(&mut self, f: Finding, is_new: bool) {
        match self.store.as_mut() {
            Some(st) => {
                if st.pending.len() >= STORE_PENDING_MAX && !st.pending.contains_key(&f.name) {
                    st.dropped += 1;
                    return;
                }
                let (was_new, order) = match st.pending.get(&f.name) {
                    Some(p) => (p.1, p.2),
                    None => {
                        st.next_order += 1;
                        (false, st.next_order)
                    }
                };
                st.new_waiting |= is_new;
                if is_new && !st.firsts.contains_key(&f.name) {
                    st.firsts.insert(f.name.clone(), Arc::new(f.clone()));
                }
                st.pending
                    .insert(f.name.clone(), (f, is_new || was_new, order));
            }
            None => {
                let f = Arc::new(f);
                for s in &mut self.slots {
                    if !(is_new || s.updates) {
                        continue;
                    }
                    if let Some(tx) = &s.tx {
                        s.shared.depth.fetch_add(1, Ordering::SeqCst);
                        if tx
                            .send(Item {
                                seq: 0,
                                finding: f.clone(),
                            })
                            .is_err()
                        {
                            s.shared.depth.fetch_sub(1, Ordering::SeqCst);
                            s.dropped += 1;
                        }
                    }
                }
            }
        }
    }

    /// Whether a new finding waits for its commit.
    pub fn has_new(&self) -> bool {
        self.store.as_ref().is_some_and(|s| s.new_waiting)
    }

    /// Commits when due (a new finding waits, 512 updates, or `flush_interval` passed), feeds
    /// sinks in backlog from the outbox, and stores sink positions every 250 ms. Returns
    /// whether the store holds everything pushed so far.
    pub fn tick(&mut self) -> bool {
        let due = match &self.store {
            Some(st) => {
                !st.pending.is_empty()
                    && ((self.cfg.new_at_once && st.new_waiting)
                        || st.pending.len() >= 512
                        || st.last_flush.elapsed() >= self.cfg.flush_interval)
            }
            None => false,
        };
        let ok = if due { self.commit() } else { true };
        self.drain_backlog();
        if self.last_save.elapsed() >= CURSOR_SAVE_EVERY {
            self.save_positions();
        }
        ok
    }

    /// Commits what is pending now (the last flush, or a caller that needs it stored).
    pub fn commit(&mut self) -> bool {
        let bounds = (!self.slots.is_empty()).then_some(OutboxBounds {
            max_bytes: self.cfg.settings.outbox_max_bytes,
            max_age_ns: self.cfg.settings.outbox_max_age.as_nanos() as u64,
        });
        let program = self.cfg.program;
        let Some(st) = self.store.as_mut() else {
            return true;
        };
        st.last_flush = Instant::now();
        if st.pending.is_empty() {
            return true;
        }
        if st.retry_at.is_some_and(|t| Instant::now() < t) {
            return false;
        }
        let pending = std::mem::take(&mut st.pending);
        st.new_waiting = false;
        let mut rows: Vec<(Finding, bool, u64)> = pending.into_values().collect();
        rows.sort_by_key(|r| r.2);
        let orders: Vec<u64> = rows.iter().map(|r| r.2).collect();
        let (batch, news): (Vec<Finding>, Vec<bool>) = rows.into_iter().map(|r| (r.0, r.1)).unzip();
        match st.store.commit_with_outbox(&batch, bounds, &[], now_ns()) {
            Ok(c) => {
                if st.retry_at.take().is_some() {
                    eprintln!(
                        "{program}: storing findings in {} works again ({} failed attempts)",
                        st.store.path().display(),
                        st.errors
                    );
                    st.last_error = None;
                    st.backoff = Duration::from_millis(100);
                }
                self.committed += batch.len() as u64;
                st.fell_back.clear();
                for s in &mut self.slots {
                    s.dropped += c.dropped.iter().filter(|d| **d > s.enqueued).count() as u64;
                }
                let mut firsts = std::mem::take(&mut st.firsts);
                if !self.slots.is_empty() {
                    // (seq, first seq, the committed state, the finding's first state).
                    type Handed = (i64, i64, Arc<Finding>, Option<Arc<Finding>>);
                    let items: Vec<Handed> = batch
                        .into_iter()
                        .zip(c.queued)
                        .filter_map(|(f, q)| {
                            let first = firsts.remove(&f.name);
                            q.map(|q| (q.seq, q.first_seq, Arc::new(f), first))
                        })
                        .collect();
                    for s in &mut self.slots {
                        if s.lagging {
                            continue;
                        }
                        for (seq, first_seq, f, first) in &items {
                            // An output that takes first states only gets the state the
                            // engine first reported (a later one may be in the same commit).
                            let f = match first {
                                Some(first) if !s.updates => first,
                                _ => f,
                            };
                            if s.offer(*seq, *first_seq, f) == Offer::Full {
                                s.lagging = true;
                                break;
                            }
                        }
                    }
                }
                true
            }
            Err(e) => {
                st.errors += 1;
                let msg = e.to_string();
                if st.last_error.as_deref() != Some(msg.as_str()) {
                    tracing::error!(error = %msg, db = %st.store.path().display(), findings = batch.len(), "storing findings failed");
                    eprintln!(
                        "{program}: error: storing {} findings in {}: {msg} (kept, retrying; no output sees them before the store has them)",
                        batch.len(),
                        st.store.path().display()
                    );
                    st.last_error = Some(msg);
                }
                st.retry_at = Some(Instant::now() + st.backoff);
                st.backoff = (st.backoff * 2).min(Duration::from_secs(5));
                // A broken store never hides a finding: new ones go to the outputs directly
                // (once), and again through the outbox when the store takes them (a resend
                // with the same name).
                for (f, n) in batch.iter().zip(&news) {
                    if !*n || !st.fell_back.insert(f.name.clone()) {
                        continue;
                    }
                    let f = st
                        .firsts
                        .get(&f.name)
                        .cloned()
                        .unwrap_or_else(|| Arc::new(f.clone()));
                    for s in &mut self.slots {
                        s.hand_directly(&f);
                    }
                }
                st.new_waiting = news.iter().any(|n| *n);
                for ((f, n), o) in batch.into_iter().zip(news).zip(orders) {
                    if st.pending.len() >= STORE_PENDING_MAX && !st.pending.contains_key(&f.name) {
                        st.dropped += 1;
                        continue;
                    }
                    st.pending.insert(f.name.clone(), (f, n, o));
                }
                false
            }
        }
    }

    fn drain_backlog(&mut self) {
        let Some(st) = self.store.as_ref() else {
            return;
        };
        let rate = f64::from(self.cfg.settings.drain_rate.max(1));
        let cap = self.cfg.settings.queue.max(1) as u64;
        for s in &mut self.slots {
            if !s.lagging || s.tx.is_none() {
                continue;
            }
            let dt = s.refilled.elapsed().as_secs_f64();
            s.refilled = Instant::now();
            s.tokens = (s.tokens + rate * dt).min(rate);
            let room = cap.saturating_sub(s.shared.depth.load(Ordering::SeqCst));
            let n = (s.tokens as u64).min(room).min(512) as usize;
            if n == 0 {
                continue;
            }
            let rows = match st.store.outbox_after(s.enqueued, n) {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(output = %s.name, error = %e, "reading the outbox");
                    continue;
                }
            };
            let caught_up = rows.len() < n;
            let mut full = false;
            for r in rows {
                match s.offer(r.at.seq, r.at.first_seq, &Arc::new(r.finding)) {
                    Offer::Sent => s.tokens -= 1.0,
                    Offer::Skipped => {}
                    Offer::Full => {
                        full = true;
                        break;
                    }
                }
            }
            if caught_up && !full {
                s.lagging = false;
            }
        }
    }

    /// Stores each sink's acknowledged position and prunes rows every sink has passed.
    pub fn save_positions(&mut self) {
        self.last_save = Instant::now();
        self.save_cursors();
        // The outbox figures are for /metrics and the health line (filled once a second):
        // read them at most that often, not at every position save.
        if self.last_stats.elapsed() < OUTBOX_STATS_EVERY {
            return;
        }
        self.last_stats = Instant::now();
        if let Some(st) = self.store.as_ref() {
            if let Ok(o) = st.store.outbox_stats() {
                self.outbox = (o.rows, o.bytes, o.dropped);
            }
        }
    }

    fn save_cursors(&mut self) {
        let Some(st) = self.store.as_ref() else {
            return;
        };
        if self.slots.is_empty() {
            return;
        }
        // With nothing in flight, a sink has everything up to `enqueued`: what it was handed
        // is acknowledged and the rest are repeats it skips. Its position moves past those,
        // or rows of repeats would never leave the outbox. (The sink thread stores its ack
        // before lowering `depth`, so depth 0 means every ack is visible.)
        for s in &self.slots {
            if s.shared.depth.load(Ordering::SeqCst) == 0 {
                s.shared.acked.fetch_max(s.enqueued, Ordering::SeqCst);
            }
        }
        let changed: Vec<(String, i64)> = self
            .slots
            .iter()
            .filter_map(|s| {
                let a = s.shared.acked.load(Ordering::SeqCst);
                (a > s.saved).then(|| (s.name.clone(), a))
            })
            .collect();
        if changed.is_empty() {
            return;
        }
        let min = self
            .slots
            .iter()
            .map(|s| s.shared.acked.load(Ordering::SeqCst))
            .min()
            .unwrap_or(0);
        match st.store.save_cursors(&changed, min) {
            Ok(()) => {
                for s in &mut self.slots {
                    if let Some((_, a)) = changed.iter().find(|(n, _)| *n == s.name) {
                        s.saved = *a;
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "storing output positions"),
        }
    }

    /// Last commit, then each sink gets `shutdown_timeout` to deliver what it holds; positions
    /// are stored. Returns whether the store holds everything pushed.
    pub fn finish(&mut self) -> bool {
        if let Some(st) = self.store.as_mut() {
            st.retry_at = None;
        }
        let stored = self.commit();
        let deadline = Instant::now() + self.cfg.settings.shutdown_timeout;
        // Without a store the queues hold the only copy: wait for them within the deadline.
        for s in &mut self.slots {
            s.tx = None;
        }
        for s in &mut self.slots {
            while s.thread.as_ref().is_some_and(|t| !t.is_finished()) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            s.shared.stop.store(true, Ordering::SeqCst);
        }
        for s in &mut self.slots {
            if let Some(t) = s.thread.take() {
                let _ = t.join();
            }
            if self.store.is_none() {
                s.dropped += s.shared.depth.load(Ordering::SeqCst);
            }
        }
        self.save_positions();
        stored
    }

    pub fn store_stats(&self) -> StoreStats {
        let (rows, bytes, dropped) = self.outbox;
        match &self.store {
            Some(st) => StoreStats {
                errors: st.errors,
                pending: st.pending.len() as u64,
                dropped: st.dropped,
                outbox_rows: rows,
                outbox_bytes: bytes,
                outbox_dropped: dropped,
            },
            None => StoreStats::default(),
        }
    }

    pub fn sink_stats(&self) -> Vec<SinkStats> {
        self.slots
            .iter()
            .map(|s| SinkStats {
                name: s.name.clone(),
                sent: s.shared.sent.load(Ordering::SeqCst),
                failed: s.shared.failed.load(Ordering::SeqCst),
                dropped: s.dropped,
                queued: s.shared.depth.load(Ordering::SeqCst),
                backlog: s.lagging,
                last_error: s.shared.last_error.lock().ok().and_then(|e| e.clone()),
                health: s.shared.health.lock().ok().and_then(|e| e.clone()),
            })
            .collect()
    }

    /// Whether every sink has acknowledged everything handed to it (tests, replay).
    pub fn idle(&self) -> bool {
        self.slots
            .iter()
            .all(|s| !s.lagging && s.shared.depth.load(Ordering::SeqCst) == 0)
    }

    /// Reads the pushed finding back (tests).
    pub fn stored(&self, name: &str) -> Option<Finding> {
        self.store
            .as_ref()
            .and_then(|s| s.store.get(name).ok().flatten())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Offer {
    Sent,
    /// Already handed, or a repeat this sink does not send.
    Skipped,
    /// The queue is full: nothing handed, the caller switches to backlog.
    Full,
}

impl Slot {
    /// Hands a finding the store could not take (no outbox position); skipped when the
    /// queue is full (it comes through the outbox once the store takes it).
    fn hand_directly(&mut self, f: &Arc<Finding>) {
        let Some(tx) = &self.tx else { return };
        self.shared.depth.fetch_add(1, Ordering::SeqCst);
        if tx
            .try_send(Item {
                seq: 0,
                finding: f.clone(),
            })
            .is_err()
        {
            self.shared.depth.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Hands one committed state to the sink unless it is a repeat this sink skips.
    fn offer(&mut self, seq: i64, first_seq: i64, f: &Arc<Finding>) -> Offer {
        if seq <= self.enqueued {
            return Offer::Skipped;
        }
        if !self.updates && first_seq <= self.enqueued {
            self.enqueued = seq;
            return Offer::Skipped;
        }
        let Some(tx) = &self.tx else {
            return Offer::Skipped;
        };
        self.shared.depth.fetch_add(1, Ordering::SeqCst);
        match tx.try_send(Item {
            seq,
            finding: f.clone(),
        }) {
            Ok(()) => {
                self.enqueued = seq;
                Offer::Sent
            }
            Err(TrySendError::Full(_)) => {
                self.shared.depth.fetch_sub(1, Ordering::SeqCst);
                Offer::Full
            }
            Err(TrySendError::Disconnected(_)) => {
                self.shared.depth.fetch_sub(1, Ordering::SeqCst);
                self.tx = None;
                Offer::Skipped
            }
        }
    }
}

fn sink_thread(
    mut sink: Box<dyn FindingSink>,
    rx: Receiver<Item>,
    shared: Arc<Shared>,
    settings: OutputSettings,
) {
    let batch_max = settings.batch.max(1);
    let mut batch: Vec<Item> = Vec::with_capacity(batch_max);
    let mut backoff = settings.retry_initial.max(Duration::from_millis(1));
    let target = sink.describe();
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        if batch.is_empty() {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(i) => batch.push(i),
                Err(RecvTimeoutError::Timeout) => {
                    sink.idle();
                    if let Ok(mut h) = shared.health.lock() {
                        *h = sink.health();
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
            while batch.len() < batch_max {
                match rx.try_recv() {
                    Ok(i) => batch.push(i),
                    Err(_) => break,
                }
            }
        }
        let written = sink.write_batch(&batch);
        if let Ok(mut h) = shared.health.lock() {
            *h = sink.health();
        }
        match written {
            Ok(()) => {
                let n = batch.len() as u64;
                shared.sent.fetch_add(n, Ordering::SeqCst);
                if let Some(last) = batch.last() {
                    shared.acked.fetch_max(last.seq, Ordering::SeqCst);
                }
                shared.depth.fetch_sub(n, Ordering::SeqCst);
                batch.clear();
                if backoff > settings.retry_initial {
                    tracing::info!(output = %target, "output delivers again");
                    if let Ok(mut e) = shared.last_error.lock() {
                        *e = None;
                    }
                }
                backoff = settings.retry_initial.max(Duration::from_millis(1));
            }
            Err(e) => {
                let n = shared.failed.fetch_add(1, Ordering::SeqCst) + 1;
                let msg = e.to_string();
                if n <= 3 || n.is_power_of_two() {
                    tracing::warn!(output = %target, error = %msg, failures = n, "output write failed; retrying");
                }
                if let Ok(mut le) = shared.last_error.lock() {
                    *le = Some(msg);
                }
                // Jitter: a uniform wait between half the backoff and all of it.
                let half = backoff / 2;
                let wait = half + half.mul_f64(fastrand::f64());
                let until = Instant::now() + wait;
                while Instant::now() < until && !shared.stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(10).min(wait));
                }
                backoff = (backoff * 2).min(settings.retry_max.max(backoff));
            }
        }
    }
    let _ = sink.flush();
}
