//! Detection rules as data.
//!
//! Rules are TOML files (`rules/*.toml`, format in [`format`] and `docs/rules.md`): each names
//! its SCC category, severity, ATT&CK mapping, guidance and aggregation key, a condition tree
//! over the typed fields of an exec and its ancestry, scoped exceptions with reasons, and its
//! own tests. [`RuleSet::load`] reads one or more directories (shipped rules, then the user's),
//! compiles every pattern once, and reports *every* problem with its file and line; nothing is
//! ignored silently (unknown fields, bad patterns, empty conditions, a second rule with a known
//! id, an exception for an unknown rule, a rule without tests, a rule an exception or another
//! rule of its category covers entirely).
//!
//! Conditions see the exec, its ancestry and its pipe neighbours through an [`ExecView`];
//! conditions on container metadata are three-valued ([`Truth`]) and each rule's
//! [`OnMissingMetadata`] settles a decision that depends on metadata the exec lacks.
//!
//! [`RuleSet::eval`] judges one exec: rules whose top-level `basename` is a plain list are
//! looked up by the exec's basenames, the rest are tried in order, those whose argv
//! conditions are `contains` strings only when one of their strings occurs (one search for all
//! of them per exec); before a rule is tried, what it needs of the exec's cheap fields (scope,
//! layer, an environment, a base64 run) is checked as bits. A check allocates nothing until a
//! rule fires (the `cmdline` and `base64_contains` conditions build their text only for rules
//! that got that far). [`RuleSet::evidence`] then says which conditions held.
//!
//! This crate does no IO beyond reading rule files in [`RuleSet::load`]; it depends on
//! `ward-event` only. The engine side (a detector that turns firings into findings) lives in
//! `ward-detect`.

pub mod compile;
pub mod format;
mod testing;

/// The rules shipped with Ward, embedded at build time from `rules/` (see `build.rs`).
pub mod shipped {
    include!(concat!(env!("OUT_DIR"), "/shipped.rs"));
}

pub use compile::{Evidence, PatternError, Truth, MAX_ANCESTORS, MISSING};
pub use format::{Expect, KeyField, OnMissingMetadata};
pub use testing::{TestFailure, TestReport};

use compile::Matcher;
use format::{RawRule, RuleFile};
use rustc_hash::FxHashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use ward_event::finding::Severity;
use ward_event::ExecEvent;

/// The exec being judged, its ancestry and its pipe neighbours.
pub trait ExecView {
    /// 0 = the exec itself, 1 = its parent's (last) exec, 2 = the grandparent's, ...
    fn at(&self, depth: usize) -> Option<&ExecEvent>;

    /// The (last) exec of the process writing into the stdin pipe of the exec at `depth`: the
    /// other end of `curl ... | base64 -d` for the `base64`. The engine finds it by pipe inode
    /// (a live process whose `stdio[1]` is the pipe this exec's `stdio[0]` reads).
    ///
    /// The default uses what the exec itself carries: [`ExecEvent::stdin_writer`] (set by the
    /// enricher for interactive shells whose parent holds the write end, the relay case),
    /// looked up among the exec's ancestors.
    fn stdin_writer(&self, depth: usize) -> Option<&ExecEvent> {
        let e = self.at(depth)?;
        let w = e.stdin_writer.filter(|w| *w != e.pid)?;
        (depth + 1..=depth + MAX_ANCESTORS)
            .map_while(|d| self.at(d))
            .find(|a| a.pid == w)
    }

    /// The (last) exec of the process reading the stdout pipe of the exec at `depth`: the
    /// `sh` of `base64 -d | sh` for the `base64`. Nothing in an [`ExecEvent`] names it, so
    /// only an engine view that indexes live processes by pipe inode can answer; the default
    /// is `None`.
    fn stdout_reader(&self, _depth: usize) -> Option<&ExecEvent> {
        None
    }

    /// Whether `url` (as written in an argument) is on a URL feed, for `argv.url_listed`.
    /// The engine answers from the feeds it loaded and decides how a feed entry matches (a
    /// whole URL, a host); without a feed nothing is listed (the default).
    fn url_listed(&self, _url: &str) -> bool {
        false
    }

    /// Whether `host` (an argument that is a host name or address alone, as written: `nc
    /// evil.example 4444`, `ssh root@evil.example`, `wget evil.example/x`) is on a URL feed as
    /// a host or under a domain, for `argv.url_listed`. Without a feed nothing is listed.
    fn host_listed(&self, _host: &str) -> bool {
        false
    }

    /// What the feed says about a listed URL (`host = false`) or host (`host = true`), for the
    /// evidence (`url_feed`): the feed, the entry that matched and its comment. Asked only for
    /// a rule that fired; `None` when the view has nothing to add (the default).
    fn listed_entry(&self, _text: &str, _host: bool) -> Option<String> {
        None
    }

    /// Values worked out once per exec for every rule that judges it (the exec at depth 0):
    /// [`RuleSet`]'s evaluation wraps the caller's view to give them; other views give none
    /// (the default) and each condition works its values out itself.
    fn facts(&self) -> Option<&compile::Facts> {
        None
    }
}

/// A view with the per-exec [`compile::Facts`] of its exec at depth 0.
struct WithFacts<'a> {
    inner: &'a dyn ExecView,
    /// `inner.at(0)`, asked by every rule.
    exec: &'a ExecEvent,
    facts: compile::Facts,
}

impl ExecView for WithFacts<'_> {
    fn at(&self, depth: usize) -> Option<&ExecEvent> {
        if depth == 0 {
            return Some(self.exec);
        }
        self.inner.at(depth)
    }
    fn stdin_writer(&self, depth: usize) -> Option<&ExecEvent> {
        self.inner.stdin_writer(depth)
    }
    fn stdout_reader(&self, depth: usize) -> Option<&ExecEvent> {
        self.inner.stdout_reader(depth)
    }
    fn url_listed(&self, url: &str) -> bool {
        self.inner.url_listed(url)
    }
    fn host_listed(&self, host: &str) -> bool {
        self.inner.host_listed(host)
    }
    fn listed_entry(&self, text: &str, host: bool) -> Option<String> {
        self.inner.listed_entry(text, host)
    }
    fn facts(&self) -> Option<&compile::Facts> {
        Some(&self.facts)
    }
}

/// A view with the exec's pipe neighbours filled in by the caller (the engine looks them up
/// by pipe inode), over any chain view.
///
/// Order matters in a pipeline: `curl | base64 -d` starts both processes at once, so when the
/// first of the two execs is judged its neighbour has usually not exec'd yet. A rule on a
/// pipe pair therefore states both directions (`base64` with a `curl` stdin writer, or `curl`
/// with a `base64` stdout reader) and fires on whichever exec comes second; see
/// `rules/piped.toml`.
pub struct WithPeers<'a> {
    pub chain: &'a dyn ExecView,
    /// The exec writing into the stdin pipe of the exec at depth 0.
    pub stdin_writer: Option<&'a ExecEvent>,
    /// The exec reading the stdout pipe of the exec at depth 0.
    pub stdout_reader: Option<&'a ExecEvent>,
}

impl ExecView for WithPeers<'_> {
    fn at(&self, depth: usize) -> Option<&ExecEvent> {
        self.chain.at(depth)
    }
    fn stdin_writer(&self, depth: usize) -> Option<&ExecEvent> {
        match depth {
            0 => self.stdin_writer.or_else(|| self.chain.stdin_writer(0)),
            d => self.chain.stdin_writer(d),
        }
    }
    fn stdout_reader(&self, depth: usize) -> Option<&ExecEvent> {
        match depth {
            0 => self.stdout_reader.or_else(|| self.chain.stdout_reader(0)),
            d => self.chain.stdout_reader(d),
        }
    }
    fn url_listed(&self, url: &str) -> bool {
        self.chain.url_listed(url)
    }
    fn host_listed(&self, host: &str) -> bool {
        self.chain.host_listed(host)
    }
    fn listed_entry(&self, text: &str, host: bool) -> Option<String> {
        self.chain.listed_entry(text, host)
    }
}

/// The pipe neighbours of `exec` among `others` (the live processes' own last execs), by pipe
/// inode: the writer holds as stdout the pipe `exec` reads as stdin, the reader reads as stdin
/// the pipe `exec` writes as stdout. Only processes in the same container (or both on the
/// host) are neighbours, and never `exec`'s own process. This is the reference for what an
/// engine's [`ExecView::stdin_writer`] / [`ExecView::stdout_reader`] answer; an engine with
/// a process table keeps an index by inode instead of scanning.
pub fn pipe_neighbours<'a>(
    exec: &ExecEvent,
    others: impl IntoIterator<Item = &'a ExecEvent>,
) -> (Option<&'a ExecEvent>, Option<&'a ExecEvent>) {
    let (input, output) = (exec.stdio[0].pipe_inode(), exec.stdio[1].pipe_inode());
    let (mut writer, mut reader) = (None, None);
    if input.is_none() && output.is_none() {
        return (None, None);
    }
    for o in others {
        if o.pid == exec.pid || o.container_id != exec.container_id {
            continue;
        }
        if writer.is_none() && input.is_some() && o.stdio[1].pipe_inode() == input {
            writer = Some(o);
        }
        if reader.is_none() && output.is_some() && o.stdio[0].pipe_inode() == output {
            reader = Some(o);
        }
    }
    (writer, reader)
}

/// A chain `[exec, parent, grandparent, ...]`.
impl ExecView for Vec<ExecEvent> {
    fn at(&self, depth: usize) -> Option<&ExecEvent> {
        self.get(depth)
    }
}

impl ExecView for Vec<&ExecEvent> {
    fn at(&self, depth: usize) -> Option<&ExecEvent> {
        self.get(depth).copied()
    }
}

/// Where something was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub file: PathBuf,
    pub line: usize,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// One problem in the rule files.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{place}: {message}")]
    Syntax { place: Place, message: String },
    #[error("{place}: rule {rule}: {message}")]
    Invalid {
        place: Place,
        rule: String,
        message: String,
    },
    #[error("{place}: rule {rule} is already defined at {first}; set `override = true` in a later directory to replace it on purpose")]
    Shadowed {
        place: Place,
        rule: String,
        first: Place,
    },
    #[error("{place}: exception for unknown rule {rule}")]
    UnknownRule { place: Place, rule: String },
    /// A rule that can never add a finding: an exception covers every exec it fires on, or
    /// another rule of the same category fires on all of them.
    #[error("{place}: rule {rule} can never fire: {message}")]
    Unreachable {
        place: Place,
        rule: String,
        message: String,
    },
}

/// Every problem found while loading, in file order.
#[derive(Debug, thiserror::Error)]
pub struct RuleErrors(pub Vec<RuleError>);

impl fmt::Display for RuleErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// An exception with its reason and place.
#[derive(Debug)]
pub struct Exception {
    pub reason: String,
    pub place: Place,
    when: Matcher,
}

/// One of a rule's tests.
#[derive(Debug)]
pub struct RuleTest {
    pub expect: Expect,
    pub name: String,
    pub place: Place,
    pub(crate) chain: Vec<ExecEvent>,
    /// Per depth of `chain`: the pipe neighbours the test gives (`stdin_writer`,
    /// `stdout_reader`).
    pub(crate) writers: Vec<Option<ExecEvent>>,
    pub(crate) readers: Vec<Option<ExecEvent>>,
    /// The test's URL feed.
    pub(crate) listed_urls: Vec<String>,
}

impl RuleTest {
    /// The exec and its ancestry the test describes.
    pub fn chain(&self) -> &Vec<ExecEvent> {
        &self.chain
    }

    /// The exec, its ancestry and its pipe neighbours, as the rules see them.
    pub fn view(&self) -> &dyn ExecView {
        self
    }
}

impl ExecView for RuleTest {
    fn at(&self, depth: usize) -> Option<&ExecEvent> {
        self.chain.get(depth)
    }
    fn stdin_writer(&self, depth: usize) -> Option<&ExecEvent> {
        match self.writers.get(depth) {
            Some(Some(w)) => Some(w),
            _ => self.chain.stdin_writer(depth),
        }
    }
    fn stdout_reader(&self, depth: usize) -> Option<&ExecEvent> {
        self.readers.get(depth).and_then(Option::as_ref)
    }
    /// Exact entries: the test's feed matches a URL or host as written.
    fn url_listed(&self, url: &str) -> bool {
        self.listed_urls.iter().any(|u| u == url)
    }
    fn host_listed(&self, host: &str) -> bool {
        self.listed_urls.iter().any(|u| u == host)
    }
}

/// A compiled rule.
#[derive(Debug)]
pub struct Rule {
    pub id: String,
    pub category: String,
    pub severity: Severity,
    pub enabled: bool,
    pub tactic: String,
    pub techniques: Vec<String>,
    pub description: String,
    pub next_steps: String,
    pub key: KeyField,
    pub sources: Vec<String>,
    pub place: Place,
    pub exceptions: Vec<Exception>,
    pub tests: Vec<RuleTest>,
    /// Replaces a rule of an earlier directory (`override = true`).
    pub overrides: bool,
    /// What happens when the decision depends on container metadata the exec lacks.
    pub on_missing_metadata: OnMissingMetadata,
    when: Matcher,
}

/// A rule's decision on one exec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Fire,
    Quiet,
    /// Depends on container metadata the exec lacks, and the rule asks to wait for it.
    Undecided,
}

impl Rule {
    /// Whether the conditions hold and no exception does, three-valued: `Unknown` when that
    /// depends on container metadata the exec lacks.
    pub fn truth(&self, view: &dyn ExecView) -> Truth {
        self.truth_of(view, false)
    }

    /// [`truth`](Self::truth) as the rule set's evaluation asks it: with the exec's
    /// [`compile::Facts`] in `view` (then the exec's own cheap fields are looked at first:
    /// most rules are ruled out by one comparison), and `named` when the rule was found by the
    /// exec's basename in the set's index of plain top-level `basename` lists. Without facts
    /// (a rule judged alone, [`Rule::verdict`]) every condition is evaluated in full, so the
    /// two paths can be compared.
    fn truth_of(&self, view: &dyn ExecView, named: bool) -> Truth {
        if let (Some(e), Some(facts)) = (view.at(0), view.facts()) {
            if self.when.rejects(e, Some(facts)) {
                return Truth::False;
            }
        }
        let when = self.when.truth_of(view, 0, &mut None, "", named);
        if when == Truth::False {
            return Truth::False;
        }
        let mut excepted = Truth::False;
        for x in &self.exceptions {
            match x.when.truth(view, 0, &mut None, "") {
                Truth::True => return Truth::False,
                Truth::Unknown => excepted = Truth::Unknown,
                Truth::False => {}
            }
        }
        if when == Truth::Unknown || excepted == Truth::Unknown {
            Truth::Unknown
        } else {
            Truth::True
        }
    }

    /// The rule's decision on `view`, its `on_missing_metadata` applied.
    pub fn verdict(&self, view: &dyn ExecView) -> Verdict {
        self.verdict_of(view, false)
    }

    fn verdict_of(&self, view: &dyn ExecView, named: bool) -> Verdict {
        match (self.truth_of(view, named), self.on_missing_metadata) {
            (Truth::True, _) | (Truth::Unknown, OnMissingMetadata::Alert) => Verdict::Fire,
            (Truth::False, _) | (Truth::Unknown, OnMissingMetadata::Quiet) => Verdict::Quiet,
            (Truth::Unknown, OnMissingMetadata::Wait) => Verdict::Undecided,
        }
    }

    /// Whether the rule fires on `view` (conditions hold, no exception does). A rule that
    /// would wait for container metadata fires: a caller that cannot wait alerts, as the
    /// wait would once it expired.
    pub fn fires(&self, view: &dyn ExecView) -> bool {
        self.verdict(view) != Verdict::Quiet
    }

    /// Whether the rule's conditions or exceptions ask about pipe neighbours.
    /// Whether the rule's own conditions ask the URL feed (`argv.url_listed`): without a
    /// URL feed such a rule can never fire.
    pub fn uses_url_feed(&self) -> bool {
        self.when.uses_url_feed()
    }

    /// Adds the basenames a pipe neighbour must bear for this rule's conditions or
    /// exceptions to ask about it; false when some neighbour condition names none.
    pub fn neighbour_names<'a>(&'a self, out: &mut Vec<&'a str>) -> bool {
        self.when.neighbour_names(out)
            && self.exceptions.iter().all(|x| x.when.neighbour_names(out))
    }

    pub fn uses_pipe_neighbours(&self) -> bool {
        self.when.uses_pipe_neighbours()
            || self
                .exceptions
                .iter()
                .any(|x| x.when.uses_pipe_neighbours())
    }

    /// The aggregation key of a firing on `view`.
    pub fn key_of(&self, view: &dyn ExecView) -> String {
        let e = view.at(0);
        match self.key {
            KeyField::Exe => e.map(|e| e.binary.path.clone()).unwrap_or_default(),
            KeyField::ParentExe => view
                .at(1)
                .map(|p| p.binary.path.clone())
                .unwrap_or_default(),
            KeyField::Cmdline => e.map(|e| e.argv.join(" ")).unwrap_or_default(),
            KeyField::Rule => self.id.clone(),
        }
    }
}

/// Rules loaded and compiled.
#[derive(Debug, Default)]
pub struct RuleSet {
    rules: Vec<Rule>,
    /// Enabled rules gated by basename (a plain top-level `basename` list, or one in every
    /// branch of a top-level `any`), by name.
    by_name: FxHashMap<Box<str>, Vec<u32>>,
    /// Enabled rules not gated by basename, with the bit of [`Literals`] that must be set
    /// for the rule to be tried (`None`: tried on every exec).
    ungated: Vec<(u32, Option<u8>)>,
    /// The strings that gate some of `ungated`, searched for once per exec.
    literals: Option<Literals>,
    /// By rule index: indexed by its own top-level plain `basename` list (not by its
    /// branches'), so that an exec found under one of the names satisfies it.
    named: Vec<bool>,
    /// By rule index: what the rule needs of an exec's cheap fields.
    needs: Vec<compile::Needs>,
}

/// One search over an exec's argv for the strings some of the rules not gated by basename
/// need ([`compile::Matcher::required_literals`]): a rule none of whose strings occurs is not
/// tried. Lower-cased strings in one automaton over the lower-cased argv, so the gate holds
/// whenever the rule's own (case-sensitive or not) condition can.
#[derive(Debug)]
struct Literals {
    /// Whether any of the strings occurs: a SIMD search (Teddy) where the CPU has it.
    any: Option<aho_corasick::packed::Searcher>,
    /// All occurrences (overlapping), for the bits, searched only when one occurs.
    ac: aho_corasick::AhoCorasick,
    /// The gate bit of each pattern.
    bit: Vec<u8>,
}

/// At most this many rules are gated by [`Literals`] (bits of a `u128`); further ones are
/// tried on every exec.
const MAX_LITERAL_GATES: usize = 128;

impl Literals {
    /// The gate bits whose strings occur in `e`'s argv.
    fn hits(&self, e: &ExecEvent) -> u128 {
        compile::Facts::with_lower_joined_all(e, |hay| {
            // Most execs hold none of the strings: one search says so.
            let any = match &self.any {
                Some(teddy) => teddy.find(hay).is_some(),
                None => self.ac.is_match(hay),
            };
            if !any {
                return 0;
            }
            let mut bits = 0u128;
            for m in self.ac.find_overlapping_iter(hay) {
                bits |= 1 << self.bit[m.pattern().as_usize()];
            }
            bits
        })
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

impl RuleSet {
    /// Loads every `*.toml` under each directory (not recursive), directories in order (the
    /// shipped rules first, then the user's), files by name.
    pub fn load(dirs: &[PathBuf]) -> Result<RuleSet, RuleErrors> {
        Self::with_dirs(Vec::new(), dirs, 0)
    }

    /// The shipped rules (embedded), then every `*.toml` of each of `user_dirs`.
    pub fn shipped_and(user_dirs: &[PathBuf]) -> Result<RuleSet, RuleErrors> {
        let shipped = shipped::SHIPPED
            .iter()
            .map(|(name, text)| (0, PathBuf::from(name), text.to_string()))
            .collect();
        Self::with_dirs(shipped, user_dirs, 1)
    }

    /// `files`, then the files of `dirs` numbered from `first`; every problem of both kinds.
    fn with_dirs(
        mut files: Vec<(usize, PathBuf, String)>,
        dirs: &[PathBuf],
        first: usize,
    ) -> Result<RuleSet, RuleErrors> {
        let mut errors = Vec::new();
        for (d, dir) in dirs.iter().enumerate() {
            match read_dir_texts(dir) {
                Ok(mut v) => files.extend(v.drain(..).map(|(p, t)| (first + d, p, t))),
                Err(mut e) => errors.append(&mut e),
            }
        }
        match Self::from_texts(&files) {
            Ok(set) if errors.is_empty() => Ok(set),
            Ok(_) => Err(RuleErrors(errors)),
            Err(mut e) => {
                errors.append(&mut e.0);
                Err(RuleErrors(errors))
            }
        }
    }

    /// Builds a set from `(directory index, path, text)` triples; a rule may replace one of
    /// an earlier directory only with `override = true`.
    pub fn from_texts(files: &[(usize, PathBuf, String)]) -> Result<RuleSet, RuleErrors> {
        let mut errors = Vec::new();
        let mut rules: Vec<(usize, Rule)> = Vec::new();
        let mut file_exceptions = Vec::new();
        for (dir, path, text) in files {
            let place = |offset: usize| Place {
                file: path.clone(),
                line: line_of(text, offset),
            };
            let parsed: RuleFile = match toml::from_str(text) {
                Ok(p) => p,
                Err(e) => {
                    errors.push(RuleError::Syntax {
                        place: place(e.span().map_or(0, |s| s.start)),
                        message: e.message().to_string(),
                    });
                    continue;
                }
            };
            for raw in parsed.rule {
                let at = place(raw.span().start);
                let raw = raw.into_inner();
                match compile_rule(raw, at.clone(), &place) {
                    Ok(rule) => {
                        if let Some(pos) = rules.iter().position(|(_, r)| r.id == rule.id) {
                            let (first_dir, first) = &rules[pos];
                            if rule.overrides && *first_dir < *dir {
                                rules[pos] = (*dir, rule);
                            } else {
                                errors.push(RuleError::Shadowed {
                                    place: rule.place.clone(),
                                    rule: rule.id.clone(),
                                    first: first.place.clone(),
                                });
                            }
                        } else {
                            rules.push((*dir, rule));
                        }
                    }
                    Err(mut e) => errors.append(&mut e),
                }
            }
            for x in parsed.exception {
                let at = place(x.span().start);
                let x = x.into_inner();
                match Matcher::compile(x.when.get_ref()) {
                    Ok(m) => file_exceptions.push((
                        x.rule.into_inner(),
                        Exception {
                            reason: x.reason,
                            place: at,
                            when: m,
                        },
                    )),
                    Err(e) => errors.push(RuleError::Invalid {
                        place: place(e.offset().unwrap_or(x.when.span().start)),
                        rule: x.rule.into_inner(),
                        message: format!("exception: {e}"),
                    }),
                }
            }
        }
        let mut rules: Vec<Rule> = rules.into_iter().map(|(_, r)| r).collect();
        for (id, x) in file_exceptions {
            match rules.iter_mut().find(|r| r.id == id) {
                Some(r) => r.exceptions.push(x),
                None => errors.push(RuleError::UnknownRule {
                    place: x.place,
                    rule: id,
                }),
            }
        }
        errors.extend(unreachable(&rules));
        if !errors.is_empty() {
            return Err(RuleErrors(errors));
        }
        Ok(Self::index(rules))
    }

    fn index(rules: Vec<Rule>) -> RuleSet {
        let mut by_name: FxHashMap<Box<str>, Vec<u32>> = FxHashMap::default();
        let mut ungated = Vec::new();
        let mut patterns: Vec<String> = Vec::new();
        let mut bits: Vec<u8> = Vec::new();
        let mut gates = 0usize;
        for (i, r) in rules.iter().enumerate() {
            if !r.enabled {
                continue;
            }
            match r.when.gate_names() {
                Some(names) => {
                    for n in names {
                        by_name.entry(n.into()).or_default().push(i as u32);
                    }
                }
                None => match r.when.required_literals() {
                    Some(lits) if gates < MAX_LITERAL_GATES => {
                        let bit = gates as u8;
                        gates += 1;
                        let lits: Vec<String> =
                            lits.iter().map(|l| l.to_ascii_lowercase()).collect();
                        // A string holding another of the same gate adds nothing to it
                        // (`stratum+tcp://` occurs only where `stratum` does).
                        for (k, l) in lits.iter().enumerate() {
                            let covered = lits.iter().enumerate().any(|(j, o)| {
                                j != k && l.contains(o.as_str()) && (o != l || j < k)
                            });
                            if !covered {
                                patterns.push(l.clone());
                                bits.push(bit);
                            }
                        }
                        ungated.push((i as u32, Some(bit)));
                    }
                    _ => ungated.push((i as u32, None)),
                },
            }
        }
        let literals = if patterns.is_empty() {
            None
        } else {
            match aho_corasick::AhoCorasickBuilder::new()
                .match_kind(aho_corasick::MatchKind::Standard)
                .build(&patterns)
            {
                Ok(ac) => Some(Literals {
                    any: aho_corasick::packed::Searcher::new(&patterns),
                    ac,
                    bit: bits,
                }),
                // Strings that compiled one by one do not fail together; if they did, the
                // rules are simply tried on every exec.
                Err(_) => {
                    for (_, gate) in &mut ungated {
                        *gate = None;
                    }
                    None
                }
            }
        };
        let named = rules
            .iter()
            .map(|r| r.enabled && r.when.basename_is_gate())
            .collect();
        let needs = rules.iter().map(|r| r.when.needs()).collect();
        RuleSet {
            rules,
            by_name,
            ungated,
            literals,
            named,
            needs,
        }
    }

    /// How the enabled rules are indexed: (tried only for execs with one of their basenames,
    /// tried on every exec).
    pub fn index_stats(&self) -> (usize, usize) {
        let mut gated: Vec<u32> = self.by_name.values().flatten().copied().collect();
        gated.sort_unstable();
        gated.dedup();
        (gated.len(), self.ungated.len())
    }

    /// How many of the rules not gated by basename are gated by the strings their argv
    /// conditions need (one search per exec for all of them).
    pub fn literal_gated(&self) -> usize {
        self.ungated.iter().filter(|(_, g)| g.is_some()).count()
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn get(&self, index: u32) -> &Rule {
        &self.rules[index as usize]
    }

    /// Turns rules on or off by id (configuration); unknown ids are returned.
    pub fn set_enabled<'a>(
        &mut self,
        switches: impl IntoIterator<Item = (&'a str, bool)>,
    ) -> Vec<String> {
        let mut unknown = Vec::new();
        for (id, on) in switches {
            match self.rules.iter_mut().find(|r| r.id == id) {
                Some(r) => r.enabled = on,
                None => unknown.push(id.to_string()),
            }
        }
        let rules = std::mem::take(&mut self.rules);
        *self = Self::index(rules);
        unknown
    }

    /// Appends the indices of the enabled rules that fire on `view` to `out`. Rules with
    /// `on_missing_metadata = "wait"` that cannot decide yet fire here (see
    /// [`eval_waiting`](Self::eval_waiting) for an engine that can hold them).
    pub fn eval(&self, view: &dyn ExecView, out: &mut Vec<u32>) {
        self.each_candidate(view, &mut |i, view, named| {
            if self.rules[i as usize].verdict_of(view, named) != Verdict::Quiet {
                out.push(i);
            }
        });
    }

    /// [`eval`](Self::eval) for an engine that can wait for container metadata: rules that
    /// fire go to `fired`; rules with `on_missing_metadata = "wait"` whose decision depends on
    /// metadata the exec lacks go to `waiting`. The engine holds those, judges the exec again
    /// with [`Rule::verdict`] once the enricher has the metadata, and alerts when it does not
    /// arrive within its wait (the enricher's metadata timeout).
    pub fn eval_waiting(&self, view: &dyn ExecView, fired: &mut Vec<u32>, waiting: &mut Vec<u32>) {
        self.each_candidate(view, &mut |i, view, named| match self.rules[i as usize]
            .verdict_of(view, named)
        {
            Verdict::Fire => fired.push(i),
            Verdict::Undecided => waiting.push(i),
            Verdict::Quiet => {}
        });
    }

    /// Calls `f` with every enabled rule the index says may fire on `view`, once each, and
    /// `view` with the exec's [`compile::Facts`] shared by the rules.
    /// `named`: the rule was found in the index by its top-level `basename` list, which then
    /// holds.
    fn each_candidate(
        &self,
        view: &dyn ExecView,
        try_rule: &mut dyn FnMut(u32, &dyn ExecView, bool),
    ) {
        let Some(e) = view.at(0) else { return };
        let view = &WithFacts {
            inner: view,
            exec: e,
            facts: compile::Facts::of(e),
        };
        // A rule whose needs of the exec's cheap fields are not met is not tried.
        let (bits, layer) = compile::Needs::of(e);
        let args = e.argv.get(1..).unwrap_or(&[]);
        let mut try_rule = |i: u32, named| {
            if self.needs[i as usize].met(bits, layer, || view.facts.base64_runs(args)) {
                try_rule(i, view, named)
            }
        };
        let (f, r) = view.facts.basenames(e);
        let by_f = self.by_name.get(f);
        if let Some(list) = by_f {
            for &i in list {
                try_rule(i, self.named[i as usize]);
            }
        }
        if r != f {
            if let Some(list) = self.by_name.get(r) {
                for &i in list {
                    // Listed under both names: already tried.
                    if by_f.is_some_and(|l| l.contains(&i)) {
                        continue;
                    }
                    try_rule(i, self.named[i as usize]);
                }
            }
        }
        // The literal gates, searched for at the first rule that has one.
        let mut hits: Option<u128> = None;
        for &(i, gate) in &self.ungated {
            if let (Some(bit), Some(lits)) = (gate, &self.literals) {
                let bits = *hits.get_or_insert_with(|| lits.hits(e));
                if bits & (1 << bit) == 0 {
                    continue;
                }
            }
            try_rule(i, false);
        }
    }

    /// The conditions of rule `index` that held on `view` (after [`eval`](Self::eval) fired).
    pub fn evidence(&self, index: u32, view: &dyn ExecView) -> Vec<Evidence> {
        let mut v = Vec::new();
        // Three-valued, so that a condition decided on missing metadata shows as `<missing>`.
        self.rules[index as usize]
            .when
            .truth(view, 0, &mut Some(&mut v), "");
        v
    }

    /// Whether an enabled rule asks the URL feed (`argv.url_listed`): an engine only needs to
    /// answer [`ExecView::url_listed`] when this is true.
    pub fn uses_url_feed(&self) -> bool {
        self.rules
            .iter()
            .filter(|r| r.enabled)
            .any(|r| r.when.uses_url_feed() || r.exceptions.iter().any(|x| x.when.uses_url_feed()))
    }

    /// Whether an enabled rule asks about pipe neighbours (`stdin_writer`, `stdout_reader`):
    /// an engine only needs to look them up (by pipe inode) when this is true.
    /// The basenames of the only execs that can matter as pipe neighbours to the enabled
    /// rules (an engine indexes pipes of those alone: a neighbour condition of a rule is
    /// gated by basename in every shipped rule); `None` when a rule asks about neighbours
    /// of any name.
    pub fn pipe_neighbour_names(&self) -> Option<Vec<String>> {
        let mut names = Vec::new();
        for r in self.rules.iter().filter(|r| r.enabled) {
            if !r.neighbour_names(&mut names) {
                return None;
            }
        }
        names.sort_unstable();
        names.dedup();
        Some(names.into_iter().map(str::to_string).collect())
    }

    pub fn uses_pipe_neighbours(&self) -> bool {
        self.rules
            .iter()
            .filter(|r| r.enabled)
            .any(|r| r.uses_pipe_neighbours())
    }

    /// Runs every rule's own tests.
    pub fn run_tests(&self) -> TestReport {
        testing::run(self)
    }
}

/// Rules that can never add a finding (shadowed): an exception, the rule's own or from a
/// user's file, that holds on every exec the rule's conditions hold on; or a rule whose
/// conditions imply those of another enabled rule of the same category without exceptions
/// (every finding it would make, the other makes). The check is sound, not complete: it
/// compares conditions field by field (exact names against the other's patterns, prefixes,
/// lists, nested tables), so what it reports is certainly shadowed.
fn unreachable(rules: &[Rule]) -> Vec<RuleError> {
    let mut errors = Vec::new();
    for r in rules {
        // A metadata policy on a rule that never looks at metadata is a setting that does
        // nothing: say so rather than let its author believe it does.
        if r.on_missing_metadata != OnMissingMetadata::Alert
            && !r.when.uses_metadata()
            && !r.exceptions.iter().any(|x| x.when.uses_metadata())
        {
            errors.push(RuleError::Invalid {
                place: r.place.clone(),
                rule: r.id.clone(),
                message: "on_missing_metadata has no effect: neither the conditions nor the \
                          exceptions look at image, namespace or labels"
                    .into(),
            });
        }
        for x in &r.exceptions {
            if r.when.implies(&x.when) {
                errors.push(RuleError::Unreachable {
                    place: x.place.clone(),
                    rule: r.id.clone(),
                    message: format!(
                        "this exception ({:?}) holds on every exec the rule's conditions ({}) \
                         hold on; turn the rule off with `enabled = false` instead",
                        x.reason, r.place
                    ),
                });
            }
        }
    }
    for (i, a) in rules.iter().enumerate() {
        for b in &rules[i + 1..] {
            if a.category != b.category || !a.enabled || !b.enabled {
                continue;
            }
            // The later rule covered by the earlier, or else the earlier by the later.
            let (covered, by) = if a.exceptions.is_empty() && b.when.implies(&a.when) {
                (b, a)
            } else if b.exceptions.is_empty() && a.when.implies(&b.when) {
                (a, b)
            } else {
                continue;
            };
            errors.push(RuleError::Unreachable {
                place: covered.place.clone(),
                rule: covered.id.clone(),
                message: format!(
                    "rule {} ({}) has the same category and fires on every exec this one fires \
                     on; merge them, or give this one its own category",
                    by.id, by.place
                ),
            });
        }
    }
    errors
}

/// The `*.toml` files of `dir`, by name.
fn read_dir_texts(dir: &Path) -> Result<Vec<(PathBuf, String)>, Vec<RuleError>> {
    let entries = std::fs::read_dir(dir).map_err(|source| {
        vec![RuleError::Io {
            path: dir.to_path_buf(),
            source,
        }]
    })?;
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for p in paths {
        match std::fs::read_to_string(&p) {
            Ok(text) => out.push((p, text)),
            Err(source) => errors.push(RuleError::Io { path: p, source }),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

fn valid_id(id: &str) -> bool {
    id.starts_with(|c: char| c.is_ascii_uppercase())
        && id
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

fn valid_technique(t: &str) -> bool {
    let b = t.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    (b.len() == 5 && b[0] == b'T' && digits(1..5))
        || (b.len() == 9 && b[0] == b'T' && digits(1..5) && b[5] == b'.' && digits(6..9))
}

fn compile_rule(
    raw: RawRule,
    at: Place,
    place: &dyn Fn(usize) -> Place,
) -> Result<Rule, Vec<RuleError>> {
    let mut errors = Vec::new();
    let id = raw.id.get_ref().clone();
    let invalid = |place: Place, message: String| RuleError::Invalid {
        place,
        rule: id.clone(),
        message,
    };
    if !valid_id(&id) {
        errors.push(invalid(
            place(raw.id.span().start),
            "id must be A-Z, 0-9 and _ (an SCC module name like UNEXPECTED_CHILD_SHELL)".into(),
        ));
    }
    for (what, v) in [
        ("category", &raw.category),
        ("tactic", &raw.tactic),
        ("description", &raw.description),
        ("next_steps", &raw.next_steps),
    ] {
        if v.trim().is_empty() {
            errors.push(invalid(at.clone(), format!("{what} is empty")));
        }
    }
    if !raw
        .tactic
        .chars()
        .all(|c| c.is_ascii_uppercase() || c == '_')
    {
        errors.push(invalid(
            at.clone(),
            format!(
                "tactic {:?}: use SCC's enum form, e.g. EXECUTION",
                raw.tactic
            ),
        ));
    }
    for t in &raw.techniques {
        if !valid_technique(t) {
            errors.push(invalid(
                at.clone(),
                format!("technique {t:?} is not an ATT&CK id like T1059 or T1059.004"),
            ));
        }
    }
    let when = match Matcher::compile(raw.when.get_ref()) {
        Ok(m) => Some(m),
        Err(e) => {
            errors.push(invalid(
                place(e.offset().unwrap_or(raw.when.span().start)),
                format!("when: {e}"),
            ));
            None
        }
    };
    let mut exceptions = Vec::new();
    for x in raw.exception {
        let xat = place(x.span().start);
        let x = x.into_inner();
        if x.reason.trim().is_empty() {
            errors.push(invalid(xat.clone(), "exception without a reason".into()));
        }
        match Matcher::compile(x.when.get_ref()) {
            Ok(m) => exceptions.push(Exception {
                reason: x.reason,
                place: xat,
                when: m,
            }),
            Err(e) => errors.push(invalid(
                place(e.offset().unwrap_or(x.when.span().start)),
                format!("exception: {e}"),
            )),
        }
    }
    let mut tests = Vec::new();
    for t in raw.test {
        let tat = place(t.span().start);
        let t = t.into_inner();
        if let Some(p) = testing::bad_peer(&t.exec) {
            errors.push(invalid(
                tat.clone(),
                format!("test exec: peer {p:?} is not an address like \"203.0.113.9:4444\""),
            ));
        }
        if !peers_stand_alone(&t.exec) {
            errors.push(invalid(
                tat.clone(),
                "test exec: a stdin_writer or stdout_reader is one exec of its own; parent, \
                 stdin_writer and stdout_reader are not available inside it"
                    .into(),
            ));
        }
        let (chain, writers, readers) = testing::chain_of(&t.exec);
        tests.push(RuleTest {
            expect: t.expect,
            name: t.name,
            place: tat,
            chain,
            writers,
            readers,
            listed_urls: t.listed_urls,
        });
    }
    for (expect, word) in [(Expect::Fire, "fire"), (Expect::Quiet, "quiet")] {
        if !tests.iter().any(|t| t.expect == expect) {
            errors.push(invalid(
                at.clone(),
                format!("no test with expect = \"{word}\": every rule carries at least one exec it fires on and one it stays quiet on"),
            ));
        }
    }
    match when {
        Some(when) if errors.is_empty() => Ok(Rule {
            id,
            category: raw.category,
            severity: raw.severity,
            enabled: raw.enabled,
            tactic: raw.tactic,
            techniques: raw.techniques,
            description: raw.description,
            next_steps: raw.next_steps,
            key: raw.key,
            sources: raw.sources,
            place: at,
            exceptions,
            tests,
            when,
            overrides: raw.override_,
            on_missing_metadata: raw.on_missing_metadata,
        }),
        _ => Err(errors),
    }
}

/// A test's pipe neighbours carry no ancestry or neighbours of their own (the rules could
/// not look at them: see [`ExecView::stdin_writer`]).
fn peers_stand_alone(t: &format::TestExec) -> bool {
    let alone = |p: &format::TestExec| {
        p.parent.is_none() && p.stdin_writer.is_none() && p.stdout_reader.is_none()
    };
    t.stdin_writer.as_deref().is_none_or(alone)
        && t.stdout_reader.as_deref().is_none_or(alone)
        && t.parent.as_deref().is_none_or(peers_stand_alone)
}

impl Rule {
    /// Where the rule file is.
    pub fn file(&self) -> &Path {
        &self.place.file
    }
}
