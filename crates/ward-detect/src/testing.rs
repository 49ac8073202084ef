//! Test harness: run events through a real engine and collect the final findings.

use crate::{DetectorsConfig, Engine, EngineConfig};
use std::sync::Arc;
use ward_event::{Event, Finding, ScriptClassifier};
use ward_intel::{Feed, IntelSet};

pub const CID: &str = "5d8e7f0a1b2c3d4e5f60718293a4b5c6d7e8f90112233445566778899aabbcc0";

pub struct Run {
    /// Final state of each finding, in order of creation.
    pub findings: Vec<Finding>,
    pub updates: usize,
}

impl Run {
    pub fn categories(&self) -> Vec<&str> {
        self.findings.iter().map(|f| f.category.as_str()).collect()
    }

    pub fn only(&self, category: ward_event::Category) -> &Finding {
        let matching: Vec<&Finding> = self
            .findings
            .iter()
            .filter(|f| f.category == category.display_name())
            .collect();
        assert_eq!(
            matching.len(),
            1,
            "expected one {category} finding, got {:?}",
            self.categories()
        );
        matching[0]
    }
}

pub fn intel(text: &str) -> Arc<IntelSet> {
    let feed = Feed::parse("test-feed", text.as_bytes(), None).expect("test feed parses");
    Arc::new(IntelSet::from_iter([feed]))
}

pub fn run_with(
    detectors: &DetectorsConfig,
    intel: Arc<IntelSet>,
    classifier: Option<Arc<dyn ScriptClassifier>>,
    events: Vec<Event>,
) -> Run {
    let mut engine = Engine::new(&EngineConfig::default(), detectors, intel, classifier);
    let mut out = Vec::new();
    for e in events {
        engine.process(e, &mut out);
    }
    let mut findings: Vec<Finding> = Vec::new();
    for u in &out {
        match findings.iter_mut().find(|f| f.name == u.finding.name) {
            Some(f) => {
                assert!(!u.is_new, "a repeat must not be flagged new");
                *f = u.finding.clone();
            }
            None => {
                assert!(u.is_new, "the first update of a finding is new");
                findings.push(u.finding.clone());
            }
        }
    }
    Run {
        findings,
        updates: out.len(),
    }
}

pub fn run(events: Vec<Event>) -> Run {
    run_with(
        &DetectorsConfig::default(),
        Arc::new(IntelSet::new()),
        None,
        events,
    )
}
