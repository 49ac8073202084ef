//! Configuration of the engine and of each detector. Every field has a default; the
//! documented defaults are in `config/ward.toml` at the repository root (a test checks that
//! file against these types). Unknown keys are rejected.

use serde::{Deserialize, Serialize};
use std::time::Duration;

fn yes() -> bool {
    true
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// `[engine]`: process table, aggregation and finding construction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// The `parent` of every finding (`<parent>/findings/<id>`).
    pub finding_parent: String,
    /// Repeats of the same (category, container, key) within this window of the last
    /// occurrence fold into one finding with a count and a last-seen time.
    #[serde(with = "humantime_serde")]
    pub aggregation_window: Duration,
    /// Open aggregates kept in memory; the oldest are closed beyond it.
    pub max_open_findings: usize,
    /// Process table size cap.
    pub max_processes: usize,
    /// Ancestors listed after the triggering process in `processes[]`.
    pub max_ancestors: usize,
    /// Bytes of script text kept in a finding's `processes[].script.contents`.
    pub script_contents_max: usize,
    /// Distinct command lines kept in `sourceProperties.Commands` of an aggregated finding.
    pub max_commands: usize,
    /// Fill `processes[].envVariables` (and `envVariablesTruncated`) from the environment the
    /// sensor captured at exec. Not an `[engine]` key: it is `[agent]
    /// report_environment_variables` (Google's REPORT_ENVIRONMENT_VARIABLES, off by default),
    /// set by `ward agent` and `ward replay` from it.
    #[serde(skip)]
    pub report_environment_variables: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            finding_parent: "projects/local/sources/ward/locations/global".into(),
            aggregation_window: Duration::from_secs(3600),
            max_open_findings: 10_000,
            max_processes: 65_536,
            max_ancestors: 10,
            script_contents_max: 64 * 1024,
            max_commands: 20,
            report_environment_variables: false,
        }
    }
}

/// `[detectors.*]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectorsConfig {
    pub remote_command_execution: RemoteCommandConfig,
    pub reverse_shell: ReverseShellConfig,
    pub compiler: CompilerConfig,
    pub malicious_binary: MaliciousBinaryConfig,
    pub added_binary: AddedBinaryConfig,
    pub malicious_python: MaliciousPythonConfig,
    pub rules: RulesConfig,
}

/// `[detectors.rules]`: the detection rules as data (`ward-rules`, docs/rules.md), the rules
/// shipped in the binary plus the user's rule directories.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RulesConfig {
    pub enabled: bool,
    /// The user's rule directories (`*.toml`), layered over the shipped rules in order. A
    /// listed directory that does not exist is an error, except the default
    /// [`DEFAULT_RULES_DIR`] (absent on most hosts).
    pub dirs: Vec<std::path::PathBuf>,
    /// Per-rule switches by rule id (`UNEXPECTED_CHILD_SHELL = false`), over each rule's own
    /// `enabled`. An id no loaded rule has is an error.
    pub rules: std::collections::BTreeMap<String, bool>,
    /// How long a rule with `on_missing_metadata = "wait"` holds its decision on an exec whose
    /// container metadata is missing (event time, after the enricher's own `metadata_wait`):
    /// the next exec of the same container that carries the metadata decides it; when none
    /// comes in time, the rule alerts (as `alert` would). Bounded: at most 1024 decisions are
    /// held; beyond that the oldest alerts at once.
    #[serde(with = "humantime_serde")]
    pub metadata_wait: Duration,
}

/// The user rule directory looked at by default.
pub const DEFAULT_RULES_DIR: &str = "/etc/ward/rules.d";

impl Default for RulesConfig {
    fn default() -> Self {
        RulesConfig {
            enabled: true,
            dirs: vec![DEFAULT_RULES_DIR.into()],
            rules: Default::default(),
            metadata_wait: Duration::from_secs(2),
        }
    }
}

/// `[detectors.remote_command_execution]`: standard UNIX commands run with stdin/stdout bound
/// to a remote socket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RemoteCommandConfig {
    pub enabled: bool,
    /// Program names that count as standard UNIX commands (shells included).
    pub commands: Vec<String>,
    /// Network relay tools: their connected socket binds their descendants and the processes
    /// that read their output through pipes and FIFOs.
    pub relay_tools: Vec<String>,
    /// Services whose stdio is a socket by design (inetd style, `sshd -i`): program names or
    /// binary paths of the process holding the socket.
    pub service_allowlist: Vec<String>,
    /// Container images (exact image reference, or a prefix ending in `*`) never reported.
    pub allow_images: Vec<String>,
}

impl Default for RemoteCommandConfig {
    fn default() -> Self {
        RemoteCommandConfig {
            enabled: true,
            commands: strings(DEFAULT_COMMANDS),
            relay_tools: strings(ward_proctable::DEFAULT_RELAY_TOOLS),
            service_allowlist: strings(&["sshd", "/usr/sbin/sshd", "inetd", "xinetd"]),
            allow_images: vec![],
        }
    }
}

pub const DEFAULT_SHELLS: &[&str] = ward_proctable::DEFAULT_SHELLS;

pub const DEFAULT_COMMANDS: &[&str] = &[
    // shells
    "sh",
    "bash",
    "dash",
    "zsh",
    "ksh",
    "mksh",
    "ash",
    "rbash",
    "fish",
    "tcsh",
    "csh",
    "yash",
    // identity and discovery
    "id",
    "whoami",
    "who",
    "w",
    "groups",
    "users",
    "last",
    "lastlog",
    "uname",
    "hostname",
    "hostnamectl",
    "uptime",
    "env",
    "printenv",
    "pwd",
    "ps",
    "top",
    "pstree",
    "lsof",
    "df",
    "du",
    "free",
    "mount",
    "findmnt",
    "getent",
    "arch",
    "nproc",
    "lscpu",
    "dmesg",
    // network discovery
    "ifconfig",
    "ip",
    "netstat",
    "ss",
    "route",
    "arp",
    "ping",
    "traceroute",
    "nslookup",
    "dig",
    "host",
    // files
    "ls",
    "cat",
    "head",
    "tail",
    "more",
    "less",
    "find",
    "grep",
    "egrep",
    "fgrep",
    "awk",
    "gawk",
    "mawk",
    "sed",
    "cut",
    "sort",
    "uniq",
    "wc",
    "tr",
    "xargs",
    "tee",
    "stat",
    "file",
    "strings",
    "od",
    "xxd",
    "hexdump",
    "base64",
    "base32",
    "cp",
    "mv",
    "rm",
    "mkdir",
    "rmdir",
    "touch",
    "ln",
    "chmod",
    "chown",
    "chgrp",
    "chattr",
    "dd",
    "tar",
    "gzip",
    "gunzip",
    "zcat",
    "unzip",
    "which",
    "whereis",
    "echo",
    "printf",
    "sleep",
    "kill",
    "pkill",
    "killall",
    "nohup",
    "timeout",
    "crontab",
    "at",
    // transfer
    "wget",
    "curl",
    "tftp",
    "ftp",
    "scp",
    "rsync",
    // privilege and accounts
    "sudo",
    "su",
    "passwd",
    "useradd",
    "usermod",
    "adduser",
    "chpasswd",
    "visudo",
    // packages and services
    "apt",
    "apt-get",
    "dpkg",
    "yum",
    "dnf",
    "rpm",
    "apk",
    "systemctl",
    "service",
    "busybox",
];

/// `[detectors.reverse_shell]`: a shell whose standard input is bound to a remote socket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReverseShellConfig {
    pub enabled: bool,
    /// Program names of shells (the process table also binds an interactive one whose stdin
    /// pipe is written by a process holding a remote connection).
    pub shells: Vec<String>,
}

impl Default for ReverseShellConfig {
    fn default() -> Self {
        ReverseShellConfig {
            enabled: true,
            shells: strings(DEFAULT_SHELLS),
        }
    }
}

/// `[detectors.compiler]`: compilers, assemblers and linkers started in a container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompilerConfig {
    pub enabled: bool,
    /// Tool names. Versioned (`gcc-12`) and target-triplet (`x86_64-linux-gnu-gcc-12`) forms
    /// of each match too.
    pub tools: Vec<String>,
    /// Programs that compile only with a subcommand: `go build`, `go run`, ...
    pub subcommand_tools: Vec<SubcommandTool>,
    /// Build images where compilers are expected (exact reference, or prefix ending in `*`).
    pub allow_images: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubcommandTool {
    pub program: String,
    pub subcommands: Vec<String>,
}

impl Default for CompilerConfig {
    fn default() -> Self {
        CompilerConfig {
            enabled: true,
            tools: strings(&[
                "gcc", "g++", "cc", "c++", "c89", "c99", "clang", "clang++", "cc1", "cc1plus",
                "cc1obj", "collect2", "lto1", "as", "ld", "ld.bfd", "ld.gold", "ld.lld", "lld",
                "gold", "tcc", "pcc", "musl-gcc", "rustc", "javac", "gfortran", "gccgo", "nasm",
                "yasm", "fasm", "gnat", "gnatmake", "ghc", "fpc", "ldc2", "dmd", "gdc", "swiftc",
                "kotlinc", "scalac", "mcs", "csc",
            ]),
            subcommand_tools: vec![
                SubcommandTool {
                    program: "go".into(),
                    subcommands: strings(&["build", "run", "install", "test"]),
                },
                SubcommandTool {
                    program: "zig".into(),
                    subcommands: strings(&["cc", "c++", "build-exe", "build", "run"]),
                },
                SubcommandTool {
                    program: "cargo".into(),
                    subcommands: strings(&["build", "run", "install"]),
                },
            ],
            allow_images: vec![],
        }
    }
}

/// `[detectors.malicious_binary]`: executed binaries (and scripts) whose SHA-256 is in a
/// threat-intel feed; the category follows the file's layer (image, added, modified).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MaliciousBinaryConfig {
    pub enabled: bool,
    /// Check the script an interpreter runs (file or shebang) against the feeds too.
    pub check_scripts: bool,
}

impl Default for MaliciousBinaryConfig {
    fn default() -> Self {
        MaliciousBinaryConfig {
            enabled: true,
            check_scripts: true,
        }
    }
}

/// `[detectors.added_binary]`: drift — a binary not from the image ran in a container.
/// Off by default: containers that install packages at run time make it noisy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AddedBinaryConfig {
    pub enabled: bool,
    pub allow_images: Vec<String>,
}

/// `[detectors.malicious_python]`: the ML model scores the Python code being executed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MaliciousPythonConfig {
    pub enabled: bool,
    /// Overrides the model's shipped threshold when set (0..1).
    pub threshold: Option<f32>,
    pub allow_images: Vec<String>,
}

impl Default for MaliciousPythonConfig {
    fn default() -> Self {
        MaliciousPythonConfig {
            enabled: yes(),
            threshold: None,
            allow_images: vec![],
        }
    }
}

/// Matches an image reference against an allowlist of exact references or `prefix*`.
pub(crate) fn image_allowed(list: &[String], image: Option<&str>) -> bool {
    let Some(image) = image else { return false };
    list.iter().any(|pat| match pat.strip_suffix('*') {
        Some(prefix) => image.starts_with(prefix),
        None => image == pat,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_patterns() {
        let l = vec!["docker.io/library/golang*".to_string(), "ci:1".to_string()];
        assert!(image_allowed(&l, Some("docker.io/library/golang:1.23")));
        assert!(image_allowed(&l, Some("ci:1")));
        assert!(!image_allowed(&l, Some("ci:2")));
        assert!(!image_allowed(&l, None));
    }
}
