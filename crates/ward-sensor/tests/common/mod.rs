//! Shared helpers of the live (root, real BPF) tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ward_sensor::{RawEvent, Sensor, SensorConfig};

/// Loads the sensor, or returns None (after printing why) when not root.
pub fn sensor() -> Option<Sensor> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: live BPF tests need root (CI runs them as root)");
        return None;
    }
    Some(Sensor::load(&SensorConfig::default()).expect("loading the sensor"))
}

/// Collects events (all of them, the caller filters by pid) until `pred`
/// holds for the collected set or `timeout` passes.
pub struct Collector {
    pub sensor: Sensor,
    pub events: Vec<RawEvent>,
    /// Processes of interest: the pids passed to `until` and, transitively,
    /// the children they fork.
    tracked: std::collections::HashSet<u32>,
}

impl Collector {
    pub fn new(sensor: Sensor) -> Self {
        Collector {
            sensor,
            events: Vec::new(),
            tracked: Default::default(),
        }
    }

    /// Polls until `pred(events)` or 10 s; panics on timeout with a dump of
    /// the events of `pids`.
    pub fn until(&mut self, what: &str, pids: &[u32], pred: impl Fn(&[RawEvent]) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut batch = Vec::new();
            self.sensor
                .poll(&mut batch, Duration::from_millis(10))
                .expect("poll");
            // Keep only events of interest so that busy machines do not
            // grow the buffer without bound.
            self.tracked.extend(pids.iter().copied());
            for e in batch {
                if let RawEvent::Fork(f) = &e {
                    if self.tracked.contains(&f.parent_tgid) {
                        self.tracked.insert(f.tgid);
                    }
                }
                if self.tracked.contains(&e.tgid()) {
                    self.events.push(e);
                }
            }
            if pred(&self.events) {
                return;
            }
            if Instant::now() > deadline {
                let mine: Vec<&RawEvent> = self
                    .events
                    .iter()
                    .filter(|e| pids.contains(&e.tgid()))
                    .collect();
                panic!("timed out waiting for {what}; events of {pids:?}: {mine:#?}");
            }
        }
    }

    pub fn of(&self, pid: u32) -> impl Iterator<Item = &RawEvent> {
        self.events.iter().filter(move |e| e.tgid() == pid)
    }

    pub fn exec_of(&self, pid: u32) -> Option<&ward_sensor::ExecEvent> {
        self.of(pid).find_map(|e| match e {
            RawEvent::Exec(x) => Some(&**x),
            _ => None,
        })
    }
}

pub fn has_exec(pid: u32) -> impl Fn(&[RawEvent]) -> bool {
    move |evs| {
        evs.iter()
            .any(|e| matches!(e, RawEvent::Exec(x) if x.tgid == pid))
    }
}

/// A python3 interpreter binary (not a pyenv shim script).
pub fn python3() -> PathBuf {
    for p in ["/usr/bin/python3", "/usr/local/bin/python3"] {
        if std::path::Path::new(p).exists() {
            return p.into();
        }
    }
    let out = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 is needed by the live tests");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}
