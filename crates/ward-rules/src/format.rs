//! The rule file format (TOML), as read. See `docs/rules.md` for the reference.
//!
//! ```toml
//! [[rule]]
//! id = "UNEXPECTED_CHILD_SHELL"            # the SCC module name
//! category = "Unexpected Child Shell"      # the exact SCC category string
//! severity = "CRITICAL"
//! tactic = "EXECUTION"
//! techniques = ["T1059.004"]
//! description = "A shell was started by a process that normally never starts one."
//! next_steps = "Find what made the server start a shell: a web shell, an injection."
//! key = "parent_exe"                       # aggregation key within (category, container)
//! sources = ["Google CTD docs", "Falco: Run shell untrusted"]
//! on_missing_metadata = "alert"            # alert | quiet | wait (docs/rules.md)
//!
//! [rule.when]                              # every condition given must hold
//! scope = "container"
//! basename = ["sh", "bash", "dash"]
//! parent = { basename = ["nginx", "httpd", "php-fpm"] }
//!
//! [[rule.exception]]                       # scoped, with a reason
//! reason = "the image's entrypoint script"
//! when = { image = { prefix = ["registry.example/shop/web:"] } }
//!
//! [[rule.test]]                            # the rule's own tests
//! expect = "fire"
//! exec = { exe = "/bin/sh", argv = ["sh"], parent = { exe = "/usr/sbin/nginx" } }
//! ```
//!
//! Every table rejects unknown fields, so a misspelt condition is an error, not a condition
//! that silently never holds.

use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;
use ward_event::finding::Severity;
use ward_event::{FdKind, Layer};

/// One file under `rules/`: rules, and exceptions to rules defined elsewhere.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    #[serde(default)]
    pub rule: Vec<Spanned<RawRule>>,
    /// Exceptions for rules of other files (a user's own directory).
    #[serde(default)]
    pub exception: Vec<Spanned<RawFileException>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    /// The detector module name, `A-Z0-9_` (Google's module names, e.g. `UNEXPECTED_CHILD_SHELL`).
    pub id: Spanned<String>,
    /// The exact SCC `category` string of findings this rule makes.
    pub category: String,
    pub severity: Severity,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// ATT&CK tactic in SCC's enum form (`EXECUTION`, `DEFENSE_EVASION`, ...).
    pub tactic: String,
    /// ATT&CK technique ids (`T1059.004`).
    #[serde(default)]
    pub techniques: Vec<String>,
    pub description: String,
    pub next_steps: String,
    /// What repeats aggregate on within (category, container).
    #[serde(default)]
    pub key: KeyField,
    /// Replaces a rule with the same id from an earlier directory (shipped rules) on purpose;
    /// without it a second rule with a known id is an error.
    #[serde(default, rename = "override")]
    pub override_: bool,
    /// Where the tool lists and patterns come from (public sources), for reviewers.
    #[serde(default)]
    pub sources: Vec<String>,
    /// What the rule does when its decision depends on container metadata (image, namespace,
    /// labels, in its conditions or its exceptions) that the exec lacks.
    #[serde(default)]
    pub on_missing_metadata: OnMissingMetadata,
    pub when: Spanned<Cond>,
    #[serde(default)]
    pub exception: Vec<Spanned<RawException>>,
    #[serde(default)]
    pub test: Vec<Spanned<RawTest>>,
}

fn yes() -> bool {
    true
}

/// A rule's choice for an exec whose container metadata is missing (the runtime was slow,
/// gone, or unreachable), when the rule's decision depends on it. Conditions that do not
/// depend on metadata decide as usual either way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnMissingMetadata {
    /// Fire (default): fail closed, so an exception keyed on an image or namespace never
    /// hides an attack because the image was unknown.
    #[default]
    Alert,
    /// Stay quiet: for rules whose condition *is* the metadata (a rule scoped to one image),
    /// where an unknown image is more likely anything else.
    Quiet,
    /// Ask the engine to hold the decision until the metadata arrives, and alert if it does
    /// not come in time ([`crate::RuleSet::eval_waiting`]); engines that cannot wait alert.
    Wait,
}

/// The aggregation key of a rule's findings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyField {
    /// The executable's path (default).
    #[default]
    Exe,
    /// The parent's executable path.
    ParentExe,
    /// The whole command line.
    Cmdline,
    /// The rule alone: one finding per container and window.
    Rule,
}

/// Conditions: every field given must hold (AND); values listed inside a field are
/// alternatives (OR). `any` is an OR of sub-conditions, `not` a negation.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cond {
    /// `container` or `host`.
    pub scope: Option<Scope>,
    /// The resolved path of what runs (`binary.path`, inside the container).
    pub exe: Option<StrSpec>,
    /// The last component of the path as exec'd (`filename`) or of the resolved binary: a
    /// `/bin/nc` link to busybox matches both `nc` and `busybox`.
    pub basename: Option<StrSpec>,
    /// Provenance of the executable: `image`, `added`, `modified`, `memfd`, `deleted`, ...
    pub layer: Option<Vec<Layer>>,
    pub argv: Option<ArgvCond>,
    pub uid: Option<Vec<u32>>,
    /// Kind of fd 0 / fd 1 at exec: `pipe`, `inetSocket`, `tty`, `file`, ...
    pub stdin: Option<Vec<FdKind>>,
    pub stdout: Option<Vec<FdKind>>,
    /// fd 0 / fd 1 at exec is an AF_INET/AF_INET6 socket connected to a remote peer that
    /// satisfies this (`{}`: any connected peer).
    pub stdin_peer: Option<PeerCond>,
    pub stdout_peer: Option<PeerCond>,
    /// The container's image reference.
    pub image: Option<StrSpec>,
    /// The pod's namespace.
    pub namespace: Option<StrSpec>,
    /// Container or pod labels: each named label must exist and match.
    pub labels: Option<BTreeMap<String, StrSpec>>,
    /// The environment at exec: some `NAME=value` entry whose name matches `name` and, when
    /// `value` is given, whose value matches it.
    pub env: Option<EnvCond>,
    /// The direct parent's exec must satisfy this.
    pub parent: Option<Box<Spanned<Cond>>>,
    /// Some ancestor (parent, grandparent, ... up to 16) must satisfy this.
    pub ancestor: Option<Box<Spanned<Cond>>>,
    /// Pipe neighbour: the exec of the process that writes into this exec's stdin pipe
    /// (`curl` for the `base64 -d` of `curl ... | base64 -d`) must satisfy this. Conditions on
    /// the neighbour's own exec only: `parent`, `ancestor`, `stdin_writer` and `stdout_reader`
    /// inside it are load errors.
    pub stdin_writer: Option<Box<Spanned<Cond>>>,
    /// Pipe neighbour: the exec of the process that reads this exec's stdout pipe (`sh` for
    /// the `base64 -d` of `base64 -d | sh`) must satisfy this.
    pub stdout_reader: Option<Box<Spanned<Cond>>>,
    pub any: Option<Vec<Spanned<Cond>>>,
    pub not: Option<Box<Spanned<Cond>>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Container,
    Host,
}

/// Conditions on the remote end of a socket on stdin or stdout.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerCond {
    /// The remote port is one of these.
    pub port: Option<Vec<u16>>,
    /// String condition on the remote address in its text form (`203.0.113.9`, `::1`).
    pub ip: Option<StrSpec>,
    /// `true`: the peer is a loopback address; `false`: it is not.
    pub loopback: Option<bool>,
    /// `tcp` or `udp` (default: either).
    pub protocol: Option<Vec<ward_event::Protocol>>,
}

/// A condition on the environment at exec (`envp`). Only a table: a list (`env = ["A", "B"]`,
/// which serde would take as `name` and `value` in order) is an error.
#[derive(Debug)]
pub struct EnvCond {
    /// The variable's name (the text before the first `=`).
    pub name: StrSpec,
    /// Its value (the text after the first `=`); left out: any value, empty included.
    pub value: Option<StrSpec>,
}

impl<'de> Deserialize<'de> for EnvCond {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Table {
            name: StrSpec,
            value: Option<StrSpec>,
        }
        struct OnlyTable;
        impl<'de> serde::de::Visitor<'de> for OnlyTable {
            type Value = EnvCond;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(
                    "an env table: { name = <string condition>, value = <string condition> }",
                )
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<EnvCond, A::Error> {
                let t = Table::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(EnvCond {
                    name: t.name,
                    value: t.value,
                })
            }
        }
        d.deserialize_map(OnlyTable)
    }
}

/// Conditions on the arguments.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArgvCond {
    /// Some argument after argv[0] matches.
    pub any: Option<StrSpec>,
    /// No argument after argv[0] matches.
    pub none: Option<StrSpec>,
    /// The command line (argv joined with single spaces) matches.
    pub cmdline: Option<StrSpec>,
    /// Some argument, or a base64 run inside one (at least 16 characters), decodes to bytes
    /// containing one of these strings (`echo Y3VybC... | base64 -d`, `bash -c "$(echo ...)"`).
    pub base64_contains: Option<Vec<String>>,
    /// At least this many arguments after argv[0].
    pub min_args: Option<usize>,
    /// At most this many entries in argv *including* argv[0]: `max_argc = 0` is an exec with
    /// an empty argv (`execve(path, {NULL}, envp)`, the CVE-2021-4034 pkexec form).
    pub max_argc: Option<usize>,
    /// `true`: some URL in the arguments (`http://`, `https://`, `ftp://`, also inside a
    /// longer argument such as `sh -c "curl ... | sh"`) is on a URL feed the engine loaded
    /// (`ExecView::url_listed`).
    pub url_listed: Option<bool>,
}

/// A string condition. A list (or one string) means `equals`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum StrSpec {
    One(String),
    List(Vec<String>),
    Detailed(StrDetailed),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StrDetailed {
    #[serde(default)]
    pub equals: Vec<String>,
    #[serde(default)]
    pub prefix: Vec<String>,
    #[serde(default)]
    pub suffix: Vec<String>,
    #[serde(default)]
    pub contains: Vec<String>,
    /// Regular expressions (Rust `regex` syntax, unanchored unless written with `^`/`$`).
    #[serde(default)]
    pub regex: Vec<String>,
    /// Compare ASCII case-insensitively (equals, prefix, suffix, contains; write `(?i)` in a
    /// regex).
    #[serde(default)]
    pub ignore_case: bool,
}

/// An exception inside its rule: when `when` holds, the rule does not fire.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawException {
    /// Why this is not an attack; shown by `ward rules check` and kept with the rule.
    pub reason: String,
    pub when: Spanned<Cond>,
}

/// An exception in a file of its own: names the rule it applies to.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFileException {
    pub rule: Spanned<String>,
    pub reason: String,
    pub when: Spanned<Cond>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expect {
    Fire,
    Quiet,
    /// Undecided until container metadata arrives (a rule with `on_missing_metadata = "wait"`
    /// on an exec with `metadata = false`).
    Wait,
}

/// One of a rule's own tests: an exec (with its ancestry) and whether the rule fires on it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTest {
    pub expect: Expect,
    /// What the test shows, printed when it fails.
    #[serde(default)]
    pub name: String,
    pub exec: TestExec,
    /// The URL feed the test runs with (`url_listed` conditions): these URLs, exactly.
    #[serde(default)]
    pub listed_urls: Vec<String>,
}

/// A compact exec for tests; what is left out takes an ordinary value (uid 0, image layer,
/// stdio on a tty, in a container of image `registry.example/app:1`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestExec {
    /// The resolved binary path.
    pub exe: String,
    /// The path as exec'd (default: `exe`).
    pub filename: Option<String>,
    /// Default: `[basename of filename]`.
    pub argv: Option<Vec<String>>,
    #[serde(default)]
    pub uid: u32,
    pub layer: Option<Layer>,
    /// Default true.
    pub container: Option<bool>,
    /// `false`: in a container whose metadata is missing (no image, pod, labels). Default true.
    pub metadata: Option<bool>,
    pub image: Option<String>,
    pub namespace: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub stdin: Option<FdKind>,
    pub stdout: Option<FdKind>,
    /// A TCP peer on stdin / stdout, `"203.0.113.9:4444"` (`[::1]:80` for IPv6); the fd's
    /// kind becomes `inetSocket`.
    pub stdin_peer: Option<String>,
    pub stdout_peer: Option<String>,
    /// The environment, `"NAME=value"` entries (default: none).
    #[serde(default)]
    pub env: Vec<String>,
    pub parent: Option<Box<TestExec>>,
    /// The pipe neighbour writing into this exec's stdin: its stdout and this exec's stdin
    /// become the two ends of one pipe (stdin kind `pipe` unless `stdin` says otherwise).
    pub stdin_writer: Option<Box<TestExec>>,
    /// The pipe neighbour reading this exec's stdout.
    pub stdout_reader: Option<Box<TestExec>>,
}
