//! The detection rules as data (`ward-rules`, docs/rules.md) as one detector.
//!
//! On every exec the rule set is evaluated over the process table's view of the exec and its
//! ancestry ([`TableView`]: depth 0 is the exec, depth n the last exec of the n-th ancestor),
//! without allocating unless a rule fires (the hit list is a reused buffer). A firing becomes
//! a [`Detection`] in the rule's own category (registered in the category table when the
//! detector is built, with the rule's severity, ATT&CK mapping, description and next steps),
//! aggregated by the rule's `key`, with the conditions that held as typed
//! [`Evidence`](ward_event::finding::Evidence) and the rule id in `sourceProperties.Rule_Id`.
//!
//! Loading the rule files (IO) is the caller's: `ward` loads them (shipped rules plus
//! `[detectors.rules].dirs`) and hands the compiled set to [`Engine::set_rules`](crate::Engine::set_rules).

use crate::{Ctx, Detection, Detector, SharedIntel};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::sync::Arc;
use ward_event::category::{CategoryError, RuleCategory};
use ward_event::finding::Evidence;
use ward_event::{Category, ContainerMeta, ExecEvent};
use ward_intel::IntelSet;
use ward_proctable::{Proc, ProcessTable};
use ward_rules::{ExecView, Rule, RuleSet, Verdict, WithPeers, MAX_ANCESTORS};

/// At most this many decisions wait for container metadata; beyond it the oldest alerts.
pub const MAX_WAITING: usize = 1024;

/// The default wait for container metadata (`[detectors.rules] metadata_wait`).
pub const DEFAULT_METADATA_WAIT_NS: u64 = 2_000_000_000;

/// A rule's decision held until the exec's container metadata arrives: a snapshot of what the
/// rule looked at (the exec, its ancestry, its pipe neighbours), so that it can be judged again
/// when the process is gone.
struct Held {
    rule: u32,
    deadline: u64,
    container_id: String,
    chain: Vec<ExecEvent>,
    writer: Option<ExecEvent>,
    reader: Option<ExecEvent>,
}

impl Held {
    /// The rule fires on the snapshot; `expired` when the metadata never came (said in the
    /// evidence, since an undecided exception leaves no evidence of its own).
    fn judge(
        &self,
        set: &RuleSet,
        expired: bool,
        out: &mut Vec<Detection>,
        categories: &[Category],
        intel: Option<&IntelSet>,
    ) {
        let peers = WithPeers {
            chain: &self.chain,
            stdin_writer: self.writer.as_ref(),
            stdout_reader: self.reader.as_ref(),
        };
        let view = Feeds {
            view: &peers,
            intel,
        };
        let mut d = detection(set, categories, self.rule, &view, &self.chain[0]);
        if expired {
            d.evidence.push(Evidence {
                field: "container_metadata".into(),
                value: format!("{} (did not arrive within the wait)", ward_rules::MISSING),
            });
        }
        d.judged = self.chain.clone();
        out.push(d);
    }

    /// The metadata, now known, filled into every exec of the snapshot in that container that
    /// lacked it.
    fn fill(&mut self, meta: &ContainerMeta) {
        let cid = Some(self.container_id.as_str());
        let missing = |e: &ExecEvent| {
            e.container_id.as_deref() == cid
                && e.container
                    .as_ref()
                    .is_none_or(|m| m.image.is_empty() && m.note.is_some())
        };
        for e in self
            .chain
            .iter_mut()
            .chain(self.writer.as_mut())
            .chain(self.reader.as_mut())
        {
            if missing(e) {
                e.container = Some(meta.clone());
            }
        }
    }
}

/// The container metadata an exec carries, when it is complete enough to decide on.
fn known_meta(e: &ExecEvent) -> Option<&ContainerMeta> {
    e.container_id.as_ref()?;
    e.container
        .as_ref()
        .filter(|m| !(m.image.is_empty() && m.note.is_some()))
}

pub const NAME: &str = "rules";

/// An exec, its ancestry and its pipe neighbours as the process table holds them.
///
/// Pipe neighbours are looked up only when a rule's condition asks (the rules evaluator calls
/// [`ExecView::stdin_writer`] / [`ExecView::stdout_reader`] for a `stdin_writer` /
/// `stdout_reader` condition only, after the exec's cheap fields held), in the table's pipe
/// index by inode (on only when the rule set has such a condition,
/// [`RuleSet::uses_pipe_neighbours`]): same container, never the exec's own process, and only
/// another process's own exec (a forked subshell that has not exec'd is no neighbour). A
/// neighbour that exited shortly before still counts (`curl` done before `base64 -d` exec'd;
/// [`ward_proctable::PIPE_EXITED_GRACE_NS`]).
///
/// The ancestry is walked once per exec, as far as the rules ask, and kept: every rule asking
/// for the parent (or an ancestor) reads it from the walk, not from the table again.
pub struct TableView<'a> {
    pub table: &'a ProcessTable,
    pub proc: &'a Proc,
    pub exec: &'a ExecEvent,
    /// The ancestors found so far (as [`ProcessTable::ancestors`] gives them), nearest first.
    walked: [Cell<Option<&'a Proc>>; ward_proctable::MAX_DEPTH],
    /// How many of `walked` are filled, and whether the walk has ended.
    filled: Cell<usize>,
    ended: Cell<bool>,
}

impl<'a> TableView<'a> {
    pub fn new(table: &'a ProcessTable, proc: &'a Proc, exec: &'a ExecEvent) -> TableView<'a> {
        TableView {
            table,
            proc,
            exec,
            walked: [const { Cell::new(None) }; ward_proctable::MAX_DEPTH],
            filled: Cell::new(0),
            ended: Cell::new(false),
        }
    }

    /// The `n`-th ancestor (0 = the parent), walking on from the last one found: the same
    /// chain as [`ProcessTable::ancestors`] (at most [`ward_proctable::MAX_DEPTH`], stopping
    /// at pid 0, at a process that is its own parent, and at the exec's own pid).
    fn ancestor(&self, n: usize) -> Option<&'a Proc> {
        while self.filled.get() <= n && !self.ended.get() {
            let k = self.filled.get();
            let ppid = match k {
                0 => Some(self.proc.ppid),
                _ => self.walked[k - 1]
                    .get()
                    .and_then(|p| (p.ppid != p.pid).then_some(p.ppid)),
            };
            let next = ppid
                .filter(|&pp| pp != 0 && pp != self.proc.pid && k < ward_proctable::MAX_DEPTH)
                .and_then(|pp| self.table.get(pp));
            match next {
                Some(p) => {
                    self.walked[k].set(Some(p));
                    self.filled.set(k + 1);
                }
                None => self.ended.set(true),
            }
        }
        self.walked.get(n).and_then(Cell::get)
    }
}

impl ExecView for TableView<'_> {
    fn at(&self, depth: usize) -> Option<&ExecEvent> {
        if depth == 0 {
            return Some(self.exec);
        }
        self.ancestor(depth - 1).and_then(|p| p.exec.as_deref())
    }

    fn stdin_writer(&self, depth: usize) -> Option<&ExecEvent> {
        let e = self.at(depth)?;
        if let Some(i) = e.stdio[0].pipe_inode() {
            if let Some(w) =
                self.table
                    .pipe_writer(i, e.container_id.as_deref(), e.pid, self.exec.time)
            {
                return Some(w);
            }
        }
        // What the exec itself carries: the holder of its stdin pipe's write end among its
        // ancestors (an interpreter relay whose pipe is not on its own fd 1).
        let w = e.stdin_writer.filter(|w| *w != e.pid)?;
        (depth + 1..=depth + ward_rules::MAX_ANCESTORS)
            .map_while(|d| self.at(d))
            .find(|a| a.pid == w)
    }

    fn stdout_reader(&self, depth: usize) -> Option<&ExecEvent> {
        let e = self.at(depth)?;
        let i = e.stdio[1].pipe_inode()?;
        self.table
            .pipe_reader(i, e.container_id.as_deref(), e.pid, self.exec.time)
    }
}

/// The rules detector.
pub struct Rules {
    set: Arc<RuleSet>,
    /// The category of each rule, by rule index.
    categories: Vec<Category>,
    hits: RefCell<Vec<u32>>,
    waiting: RefCell<Vec<u32>>,
    /// Decisions waiting for container metadata, oldest first.
    held: RefCell<VecDeque<Held>>,
    /// The earliest deadline among `held` (`u64::MAX` when none): the engine's per-event check.
    next_deadline: Cell<u64>,
    metadata_wait: u64,
    /// The URL feeds `argv.url_listed` asks (none: nothing is listed).
    intel: Option<SharedIntel>,
}

/// A view whose `url_listed` / `host_listed` answer from the loaded URL feeds.
struct Feeds<'a> {
    view: &'a dyn ExecView,
    intel: Option<&'a IntelSet>,
}

impl ExecView for Feeds<'_> {
    fn at(&self, depth: usize) -> Option<&ExecEvent> {
        self.view.at(depth)
    }
    fn stdin_writer(&self, depth: usize) -> Option<&ExecEvent> {
        self.view.stdin_writer(depth)
    }
    fn stdout_reader(&self, depth: usize) -> Option<&ExecEvent> {
        self.view.stdout_reader(depth)
    }
    fn url_listed(&self, url: &str) -> bool {
        self.intel.is_some_and(|i| i.lookup_url(url).is_some())
    }
    fn host_listed(&self, host: &str) -> bool {
        self.intel.is_some_and(|i| i.lookup_host(host).is_some())
    }
    /// `FEED: KIND ENTRY (COMMENT)`: `urls.csv: url http://x/y (malware_download (elf))`.
    fn listed_entry(&self, text: &str, host: bool) -> Option<String> {
        let i = self.intel?;
        let m = if host {
            i.lookup_host(text)
        } else {
            i.lookup_url(text)
        }?;
        let mut s = format!("{}: {} {}", m.feed, m.kind.as_str(), m.entry);
        if m.kind == ward_intel::UrlEntryKind::Domain {
            s = format!("{}: domain *.{}", m.feed, m.entry);
        }
        if let Some(c) = m.comment {
            s.push_str(&format!(" ({c})"));
        }
        Some(s)
    }
}

impl Rules {
    /// Registers every rule's category in the category table (enabled or not, so findings of
    /// a rule switched off later still name a known category) and builds the detector.
    pub fn new(set: Arc<RuleSet>) -> Result<Rules, RuleCategoryError> {
        let categories = set
            .rules()
            .iter()
            .map(register)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Rules {
            set,
            categories,
            hits: RefCell::new(Vec::new()),
            waiting: RefCell::new(Vec::new()),
            held: RefCell::new(VecDeque::new()),
            next_deadline: Cell::new(u64::MAX),
            metadata_wait: DEFAULT_METADATA_WAIT_NS,
            intel: None,
        })
    }

    /// The feeds `argv.url_listed` conditions are answered from (the engine's intel; only its
    /// URL feeds are asked). Kept only when it has a URL feed.
    pub fn with_url_feeds(mut self, intel: SharedIntel) -> Rules {
        self.intel = intel.has_url_feeds().then_some(intel);
        self
    }

    fn feeds<'a>(&'a self, view: &'a dyn ExecView) -> Feeds<'a> {
        Feeds {
            view,
            intel: self.intel.as_deref(),
        }
    }

    /// How long a `wait` rule holds its decision for the container's metadata (ns of event
    /// time).
    pub fn with_metadata_wait(mut self, ns: u64) -> Rules {
        self.metadata_wait = ns;
        self
    }

    /// The earliest time a held decision is due (`u64::MAX` when none waits).
    pub fn next_deadline(&self) -> u64 {
        self.next_deadline.get()
    }

    /// How many decisions wait for container metadata.
    pub fn waiting(&self) -> usize {
        self.held.borrow().len()
    }

    /// Decides every held decision whose deadline is at or before `now`: the metadata did not
    /// come, so the rule alerts (its evidence shows `image = <missing>`).
    pub fn expire(&self, now: u64, out: &mut Vec<Detection>) {
        let mut held = self.held.borrow_mut();
        held.retain(|h| {
            if h.deadline <= now {
                h.judge(
                    &self.set,
                    true,
                    out,
                    &self.categories,
                    self.intel.as_deref(),
                );
                false
            } else {
                true
            }
        });
        self.next_deadline
            .set(held.iter().map(|h| h.deadline).min().unwrap_or(u64::MAX));
    }

    /// An exec of a container arrived with the metadata the held decisions of that container
    /// lacked: judges them again on it (fire or quiet).
    fn metadata_arrived(&self, container_id: &str, meta: &ContainerMeta, out: &mut Vec<Detection>) {
        let mut held = self.held.borrow_mut();
        if !held.iter().any(|h| h.container_id == container_id) {
            return;
        }
        held.retain_mut(|h| {
            if h.container_id != container_id {
                return true;
            }
            h.fill(meta);
            let peers = WithPeers {
                chain: &h.chain,
                stdin_writer: h.writer.as_ref(),
                stdout_reader: h.reader.as_ref(),
            };
            let view = Feeds {
                view: &peers,
                intel: self.intel.as_deref(),
            };
            // Still undecided (the metadata lacks what the rule asks): alert, as on expiry.
            match self.set.get(h.rule).verdict(&view) {
                Verdict::Quiet => {}
                Verdict::Fire => h.judge(
                    &self.set,
                    false,
                    out,
                    &self.categories,
                    self.intel.as_deref(),
                ),
                Verdict::Undecided => h.judge(
                    &self.set,
                    true,
                    out,
                    &self.categories,
                    self.intel.as_deref(),
                ),
            }
            false
        });
        self.next_deadline
            .set(held.iter().map(|h| h.deadline).min().unwrap_or(u64::MAX));
    }

    /// Holds rule `i`'s decision on `view` until the container's metadata arrives.
    fn hold(&self, i: u32, view: &dyn ExecView, exec: &ExecEvent, out: &mut Vec<Detection>) {
        let Some(cid) = exec.container_id.clone() else {
            // Only a container exec can lack metadata; judged now.
            out.push(detection(&self.set, &self.categories, i, view, exec));
            return;
        };
        let chain: Vec<ExecEvent> = (0..=MAX_ANCESTORS)
            .map_while(|d| view.at(d))
            .cloned()
            .collect();
        let deadline = exec.time.saturating_add(self.metadata_wait);
        let mut held = self.held.borrow_mut();
        while held.len() >= MAX_WAITING {
            if let Some(h) = held.pop_front() {
                h.judge(
                    &self.set,
                    true,
                    out,
                    &self.categories,
                    self.intel.as_deref(),
                );
            }
        }
        held.push_back(Held {
            rule: i,
            deadline,
            container_id: cid,
            chain,
            writer: view.stdin_writer(0).cloned(),
            reader: view.stdout_reader(0).cloned(),
        });
        self.next_deadline
            .set(self.next_deadline.get().min(deadline));
    }

    pub fn rule_set(&self) -> &RuleSet {
        &self.set
    }
}

/// A rule whose category cannot join the category table, with the rule's place.
#[derive(Debug, thiserror::Error)]
#[error("{place}: rule {rule}: {source}")]
pub struct RuleCategoryError {
    pub rule: String,
    pub place: ward_rules::Place,
    #[source]
    pub source: Box<CategoryError>,
}

/// The category-table row of a rule: its id is the API (module) name.
fn register(r: &Rule) -> Result<Category, RuleCategoryError> {
    Category::register(&RuleCategory {
        api_name: &r.id,
        display_name: &r.category,
        severity: r.severity,
        tactic: &r.tactic,
        techniques: &r.techniques,
        description: &r.description,
        next_steps: &r.next_steps,
        enabled_by_default: r.enabled,
    })
    .map_err(|source| RuleCategoryError {
        rule: r.id.clone(),
        place: r.place.clone(),
        source: Box::new(source),
    })
}

/// Registers the categories of `set` without building a detector (`ward serve`: filters and
/// `/v1/categories` know the rule categories of the configured rules).
pub fn register_categories(set: &RuleSet) -> Result<(), RuleCategoryError> {
    for r in set.rules() {
        register(r)?;
    }
    Ok(())
}

impl Detector for Rules {
    fn name(&self) -> &'static str {
        NAME
    }

    fn on_exec(&self, ctx: &Ctx<'_>, proc: &Proc, exec: &ExecEvent, out: &mut Vec<Detection>) {
        if self.next_deadline.get() != u64::MAX {
            if let (Some(cid), Some(meta)) = (exec.container_id.as_deref(), known_meta(exec)) {
                self.metadata_arrived(cid, meta, out);
            }
        }
        let table = TableView::new(ctx.table, proc, exec);
        let view = self.feeds(&table);
        let mut hits = self.hits.borrow_mut();
        let mut waiting = self.waiting.borrow_mut();
        hits.clear();
        waiting.clear();
        self.set.eval_waiting(&view, &mut hits, &mut waiting);
        for &i in hits.iter() {
            out.push(detection(&self.set, &self.categories, i, &view, exec));
        }
        for &i in waiting.iter() {
            self.hold(i, &view, exec, out);
        }
    }
}

/// The detection of rule `i` firing on `view` (whose depth 0 is `exec`).
fn detection(
    set: &RuleSet,
    categories: &[Category],
    i: u32,
    view: &dyn ExecView,
    exec: &ExecEvent,
) -> Detection {
    let rule = set.get(i);
    let evidence: Vec<Evidence> = set
        .evidence(i, view)
        .into_iter()
        .map(|e| Evidence {
            field: e.field,
            value: e.value,
        })
        .collect();
    let mut detail = format!("Rule {} matched", rule.id);
    for (n, e) in evidence.iter().enumerate() {
        detail.push_str(if n == 0 { ": " } else { ", " });
        detail.push_str(&e.field);
        detail.push_str(" = ");
        detail.push_str(&crate::report::truncate(&e.value, 200));
    }
    detail.push('.');
    let mut d = Detection::new(
        categories[i as usize],
        NAME,
        exec.time,
        exec.pid,
        rule.key_of(view),
    )
    .detail(detail)
    .property("Rule_Id", rule.id.as_str());
    d.evidence = evidence;
    d
}

#[cfg(test)]
mod tests;
