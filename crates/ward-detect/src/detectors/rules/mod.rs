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

use crate::{Ctx, Detection, Detector};
use std::cell::RefCell;
use std::sync::Arc;
use ward_event::category::{CategoryError, RuleCategory};
use ward_event::finding::Evidence;
use ward_event::{Category, ExecEvent};
use ward_proctable::{Proc, ProcessTable};
use ward_rules::{ExecView, Rule, RuleSet};

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
pub struct TableView<'a> {
    pub table: &'a ProcessTable,
    pub proc: &'a Proc,
    pub exec: &'a ExecEvent,
}

impl ExecView for TableView<'_> {
    fn at(&self, depth: usize) -> Option<&ExecEvent> {
        if depth == 0 {
            return Some(self.exec);
        }
        self.table
            .ancestors(self.proc.pid)
            .nth(depth - 1)
            .and_then(|p| p.exec.as_deref())
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
        })
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
        let view = TableView {
            table: ctx.table,
            proc,
            exec,
        };
        let mut hits = self.hits.borrow_mut();
        hits.clear();
        self.set.eval(&view, &mut hits);
        for &i in hits.iter() {
            let rule = self.set.get(i);
            let evidence: Vec<Evidence> = self
                .set
                .evidence(i, &view)
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
                self.categories[i as usize],
                NAME,
                exec.time,
                exec.pid,
                rule.key_of(&view),
            )
            .detail(detail)
            .property("Rule_Id", rule.id.as_str());
            d.evidence = evidence;
            out.push(d);
        }
    }
}

#[cfg(test)]
mod tests;
