//! The engine: events in, finding updates out.

use crate::aggregate::{Aggregator, Outcome};
use crate::config::{DetectorsConfig, EngineConfig};
use crate::{build_detectors, report, Ctx, Detection, Detector, SharedClassifier, SharedIntel};
use ward_event::script::{script_target, ScriptTarget};
use ward_event::time::IdClock;
use ward_event::{Event, ExecEvent, Finding, ScriptInfo, ScriptKind, Sha256};
use ward_proctable::{ProcessTable, TableConfig, TableStats};

/// A `-c` literal is its own script, known from argv alone: when the exec record lacks it or
/// its hash (a trace written without it, or an enrichment that did not run), it is filled in
/// here, so a finding always carries `script.sha256` of the literal. Not when argv was cut
/// short: the literal may be incomplete, and a hash of part of it would mislead.
fn complete_inline_script(e: &mut ExecEvent, contents_max: usize) {
    if e.argv_truncated
        || e.script
            .as_ref()
            .is_some_and(|s| s.sha256.is_some() || s.kind != ScriptKind::Inline)
    {
        return;
    }
    let Some(ScriptTarget::Inline { code }) = script_target(&e.filename, &e.binary.path, &e.argv)
    else {
        return;
    };
    let sha256 = {
        use sha2::Digest;
        Sha256(sha2::Sha256::digest(code.as_bytes()).into())
    };
    match &mut e.script {
        Some(s) => s.sha256 = Some(sha256),
        None => {
            let contents = report::truncate(&code, contents_max);
            e.script = Some(ScriptInfo {
                kind: ScriptKind::Inline,
                path: None,
                size: code.len() as u64,
                sha256: Some(sha256),
                contents_truncated: contents.len() < code.len(),
                // The model scores the whole literal, not the display cap.
                scoring_text: (contents.len() < code.len())
                    .then(|| std::sync::Arc::from(code.as_bytes())),
                contents: Some(contents),
                layer: None,
            });
        }
    }
}

/// A finding to emit: new, or an existing finding updated by a repeat.
#[derive(Debug, Clone, PartialEq)]
pub struct FindingUpdate {
    pub finding: Finding,
    pub is_new: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    pub events: u64,
    pub execs: u64,
    pub detections: u64,
    pub findings_new: u64,
    pub findings_repeated: u64,
    pub open_findings: usize,
    pub aggregates_evicted: u64,
    pub table: TableStats,
}

pub struct Engine {
    cfg: EngineConfig,
    table: ProcessTable,
    detectors: Vec<Box<dyn Detector>>,
    intel: SharedIntel,
    classifier: Option<SharedClassifier>,
    agg: Aggregator,
    stats: EngineStats,
    scratch: Vec<Detection>,
    id_clock: Option<IdClock>,
    /// The rules detector, kept apart from `detectors` so that the engine can decide its
    /// decisions held for container metadata when they are due.
    rules: Option<Box<crate::detectors::rules::Rules>>,
    rules_metadata_wait: u64,
}

impl Engine {
    pub fn new(
        engine: &EngineConfig,
        detectors: &DetectorsConfig,
        intel: SharedIntel,
        classifier: Option<SharedClassifier>,
    ) -> Self {
        let table = ProcessTable::new(TableConfig {
            max_processes: engine.max_processes.max(16),
            relay_tools: detectors
                .remote_command_execution
                .relay_tools
                .iter()
                .cloned()
                .collect(),
            shells: detectors.reverse_shell.shells.iter().cloned().collect(),
            ..TableConfig::default()
        });
        Engine {
            cfg: engine.clone(),
            table,
            detectors: build_detectors(detectors),
            intel,
            classifier,
            agg: Aggregator::new(
                engine.aggregation_window.as_nanos().min(u64::MAX as u128) as u64,
                engine.max_open_findings,
                engine.max_commands,
            ),
            stats: EngineStats::default(),
            scratch: Vec::new(),
            id_clock: None,
            rules: None,
            rules_metadata_wait: detectors
                .rules
                .metadata_wait
                .as_nanos()
                .min(u64::MAX as u128) as u64,
        }
    }

    /// Names findings by the kernel's boot-time stamps on `clock`'s boot rather than by
    /// wall-clock times (see [`report::finding_id`]). The live agent sets it; a replay sets
    /// the one its recording's header names.
    pub fn set_id_clock(&mut self, clock: Option<IdClock>) {
        self.id_clock = clock;
    }

    /// Adds the detection rules (`[detectors.rules]`, loaded by the caller) as one more
    /// detector; their categories join the category table. Fails when a rule's category
    /// would redefine a built-in one.
    pub fn set_rules(
        &mut self,
        rules: std::sync::Arc<ward_rules::RuleSet>,
    ) -> Result<(), crate::detectors::rules::RuleCategoryError> {
        // The pipe index costs an update per exec, dup and exit on a pipe: only kept when a
        // rule asks about pipe neighbours.
        let pipes = rules.uses_pipe_neighbours();
        let rules_names = rules.pipe_neighbour_names();
        let detector = crate::detectors::rules::Rules::new(rules)?
            .with_metadata_wait(self.rules_metadata_wait)
            .with_url_feeds(self.intel.clone());
        self.table.set_pipe_index(pipes);
        // Only the execs the rules can ask about as neighbours (their basenames) are indexed.
        self.table.set_pipe_index_names(rules_names);
        self.rules = Some(Box::new(detector));
        Ok(())
    }

    /// Decides what still waits (rules holding their decision for container metadata: they
    /// alert): the end of a replay, the agent's shutdown.
    pub fn finish(&mut self, out: &mut Vec<FindingUpdate>) {
        let mut dets = std::mem::take(&mut self.scratch);
        if let Some(r) = &self.rules {
            r.expire(u64::MAX, &mut dets);
        }
        for d in dets.drain(..) {
            self.emit(d, out);
        }
        self.scratch = dets;
    }

    /// How many rule decisions wait for container metadata.
    pub fn rules_waiting(&self) -> usize {
        self.rules.as_ref().map_or(0, |r| r.waiting())
    }

    pub fn table(&self) -> &ProcessTable {
        &self.table
    }

    /// Seeds a process already running when the agent started.
    pub fn seed(&mut self, exec: ward_event::ExecEvent) {
        self.table.seed(exec);
    }

    pub fn stats(&self) -> EngineStats {
        EngineStats {
            open_findings: self.agg.open_count(),
            aggregates_evicted: self.agg.evicted,
            table: self.table.stats(),
            ..self.stats
        }
    }

    /// Applies one event and appends the findings it produced (new or updated) to `out`.
    pub fn process(&mut self, mut event: Event, out: &mut Vec<FindingUpdate>) {
        self.stats.events += 1;
        if let Event::Exec(e) = &mut event {
            complete_inline_script(e, self.cfg.script_contents_max);
        }
        let time = event.time();
        let exec_pid = match &event {
            Event::Exec(e) => Some(e.pid),
            _ => None,
        };
        let applied = self.table.apply(event);
        let mut dets = std::mem::take(&mut self.scratch);
        {
            let ctx = Ctx {
                table: &self.table,
                intel: &self.intel,
                classifier: self.classifier.as_deref(),
            };
            if let Some(pid) = exec_pid {
                self.stats.execs += 1;
                if let Some(proc) = self.table.get(pid) {
                    if let Some(exec) = proc.exec.as_deref() {
                        for d in &self.detectors {
                            d.on_exec(&ctx, proc, exec, &mut dets);
                        }
                        if let Some(r) = &self.rules {
                            r.on_exec(&ctx, proc, exec, &mut dets);
                        }
                    }
                }
            }
            // Held rule decisions whose metadata did not come in time (event time).
            if let Some(r) = &self.rules {
                if r.next_deadline() <= time {
                    r.expire(time, &mut dets);
                }
            }
            for pid in &applied.newly_bound {
                if Some(*pid) == exec_pid {
                    continue;
                }
                if let Some(proc) = self.table.get(*pid) {
                    for d in &self.detectors {
                        d.on_bound(&ctx, proc, time, &mut dets);
                    }
                }
            }
        }
        for d in dets.drain(..) {
            self.emit(d, out);
        }
        self.scratch = dets;
        if let Some(pid) = exec_pid {
            self.table.release_script_contents(pid);
        }
    }

    fn emit(&mut self, d: Detection, out: &mut Vec<FindingUpdate>) {
        self.stats.detections += 1;
        let proc = self.table.get(d.pid);
        let (exec, scope) = match d.judged.first() {
            // Built from the exec as judged (see `Detection::judged`).
            Some(e) => (
                Some(e),
                match &e.container_id {
                    Some(id) => format!("container:{id}"),
                    None => format!("node:{}", e.node),
                },
            ),
            None => {
                let exec = proc.and_then(|p| p.exec.as_deref());
                let node = exec.map(|e| e.node.as_str()).unwrap_or("");
                (exec, report::scope_of(proc, node))
            }
        };
        let command = exec.map(crate::detectors::command_line);
        let (table, cfg, clock) = (&self.table, &self.cfg, self.id_clock.as_ref());
        let build = |scope: &str| report::build(&d, scope, table, cfg, clock);
        match self
            .agg
            .record(d.category, scope, d.key.clone(), d.time, command, build)
        {
            Outcome::New(f) => {
                self.stats.findings_new += 1;
                out.push(FindingUpdate {
                    finding: f.clone(),
                    is_new: true,
                });
            }
            Outcome::Repeat(f) => {
                self.stats.findings_repeated += 1;
                out.push(FindingUpdate {
                    finding: f.clone(),
                    is_new: false,
                });
            }
        }
    }
}
