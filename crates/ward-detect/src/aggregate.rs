//! Folds repeats of the same (category, scope, key) within a time window into one finding
//! with a count, a last-seen time and the distinct command lines seen.

use rustc_hash::FxHashMap;
use ward_event::time::format_rfc3339;
use ward_event::{Category, Finding};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    category: Category,
    scope: String,
    key: String,
}

struct Open {
    finding: Finding,
    last: u64,
    count: u64,
}

/// What happened to a detection.
pub enum Outcome<'a> {
    /// A new finding.
    New(&'a Finding),
    /// A repeat folded into an existing finding, now updated.
    Repeat(&'a Finding),
}

pub struct Aggregator {
    window_ns: u64,
    max_open: usize,
    max_commands: usize,
    open: FxHashMap<Key, Open>,
    since_sweep: u32,
    /// Aggregates closed because the cap was reached before their window ended.
    pub evicted: u64,
}

impl Aggregator {
    pub fn new(window_ns: u64, max_open: usize, max_commands: usize) -> Self {
        Aggregator {
            window_ns,
            max_open: max_open.max(1),
            max_commands,
            open: FxHashMap::default(),
            since_sweep: 0,
            evicted: 0,
        }
    }

    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    /// Records one detection at `time`; `build(scope)` makes the finding when it is new.
    pub fn record(
        &mut self,
        category: Category,
        scope: String,
        key: String,
        time: u64,
        command: Option<String>,
        build: impl FnOnce(&str) -> Finding,
    ) -> Outcome<'_> {
        self.since_sweep += 1;
        if self.since_sweep >= 1024 || self.open.len() >= self.max_open {
            self.sweep(time);
        }
        let k = Key {
            category,
            scope,
            key,
        };
        let within = self
            .open
            .get(&k)
            .is_some_and(|o| time.saturating_sub(o.last) <= self.window_ns);
        if within {
            let max_commands = self.max_commands;
            let o = self.open.get_mut(&k).expect("present");
            o.count += 1;
            o.last = o.last.max(time);
            let f = &mut o.finding;
            let last = format_rfc3339(o.last);
            f.event_time = last.clone();
            f.source_properties.insert("Count".into(), o.count.into());
            f.source_properties
                .insert("Last_Seen_Time".into(), last.into());
            if let Some(cmd) = command {
                if let Some(serde_json::Value::Array(list)) =
                    f.source_properties.get_mut("Commands")
                {
                    if list.len() < max_commands && !list.iter().any(|c| c.as_str() == Some(&cmd)) {
                        list.push(cmd.into());
                    }
                }
            }
            return Outcome::Repeat(&self.open.get(&k).expect("present").finding);
        }
        let finding = build(&k.scope);
        self.open.insert(
            k.clone(),
            Open {
                finding,
                last: time,
                count: 1,
            },
        );
        Outcome::New(&self.open.get(&k).expect("present").finding)
    }

    /// Closes aggregates whose window has passed; beyond the cap, the least recently seen.
    fn sweep(&mut self, now: u64) {
        self.since_sweep = 0;
        let window = self.window_ns;
        self.open
            .retain(|_, o| now.saturating_sub(o.last) <= window);
        if self.open.len() >= self.max_open {
            let mut lasts: Vec<u64> = self.open.values().map(|o| o.last).collect();
            lasts.sort_unstable();
            // Close the older half so sweeps stay rare.
            let cutoff = lasts[lasts.len() / 2];
            let before = self.open.len();
            self.open.retain(|_, o| o.last > cutoff);
            self.evicted += (before - self.open.len()) as u64;
        }
    }
}
