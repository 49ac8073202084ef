//! Finding categories as one table of data: display name (the SCC `category`), API (module)
//! name, severity, MITRE ATT&CK mapping, description, next steps and default on/off.
//!
//! A [`Category`] is a `Copy` handle to a `&'static` [`CategoryInfo`] row. The built-in
//! detectors' categories are the static rows of [`BUILT_IN`] (named by associated constants
//! such as [`Category::ReverseShell`]); the categories of detection rules (`ward-rules`) are
//! rows [registered](Category::register) once when the rules are loaded, leaked to `'static`
//! (a handful per rule file, idempotent: registering the same row again returns the first).
//! [`Category::parse`] and [`Category::all`] see both kinds. A category string that no
//! loaded rule or built-in knows (a finding stored by a rule since removed) parses to `None`;
//! the store and the API then treat it as plain text, so such findings still list and show.

use crate::finding::{MitreAttack, Severity};
use std::sync::RwLock;

/// An ATT&CK technique: SCC's enum name and the ATT&CK id (for links).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Technique {
    pub scc_name: &'static str,
    pub id: &'static str,
}

/// Where a category row comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// A detector written in code (`ward-detect`).
    BuiltIn,
    /// A detection rule (`rules/*.toml` or a user's rule directory).
    Rule,
}

/// One row of the category table.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CategoryInfo {
    /// SCREAMING_SNAKE_CASE, stable for filters and config: SCC's module name (for a rule,
    /// its id).
    pub api_name: &'static str,
    /// The finding's `category` as SCC displays it.
    pub display_name: &'static str,
    pub severity: Severity,
    /// Primary ATT&CK tactic, SCC enum form (`EXECUTION`).
    pub tactic: &'static str,
    /// Primary techniques.
    pub techniques: &'static [Technique],
    pub additional_tactics: &'static [&'static str],
    pub additional_techniques: &'static [Technique],
    /// What the finding means, for the `description` field.
    pub description: &'static str,
    /// What a responder should do, for the `nextSteps` field.
    pub next_steps: &'static str,
    /// Whether its detector (or rule) is on without configuration.
    pub enabled_by_default: bool,
    pub origin: Origin,
}

/// A finding category: a handle to its row of the table. Equality, hashing and order are by
/// API name.
#[derive(Clone, Copy)]
pub struct Category(&'static CategoryInfo);

const T1059: Technique = Technique {
    scc_name: "COMMAND_AND_SCRIPTING_INTERPRETER",
    id: "T1059",
};
const T1059_004: Technique = Technique {
    scc_name: "UNIX_SHELL",
    id: "T1059.004",
};
const T1059_006: Technique = Technique {
    scc_name: "PYTHON",
    id: "T1059.006",
};
const T1105: Technique = Technique {
    scc_name: "INGRESS_TOOL_TRANSFER",
    id: "T1105",
};
const T1106: Technique = Technique {
    scc_name: "NATIVE_API",
    id: "T1106",
};
const T1027: Technique = Technique {
    scc_name: "OBFUSCATED_FILES_OR_INFO",
    id: "T1027",
};
const T1027_004: Technique = Technique {
    scc_name: "COMPILE_AFTER_DELIVERY",
    id: "T1027.004",
};
const T1571: Technique = Technique {
    scc_name: "NON_STANDARD_PORT",
    id: "T1571",
};

/// SCC's technique enum names for the ATT&CK ids rules use (SCC `MitreAttack.Technique`).
/// An id not listed is reported under its id.
const TECHNIQUE_NAMES: &[(&str, &str)] = &[
    ("T1003", "OS_CREDENTIAL_DUMPING"),
    ("T1027", "OBFUSCATED_FILES_OR_INFO"),
    ("T1027.004", "COMPILE_AFTER_DELIVERY"),
    ("T1036", "MASQUERADING"),
    ("T1046", "NETWORK_SERVICE_DISCOVERY"),
    ("T1053", "SCHEDULED_TASK_JOB"),
    ("T1057", "PROCESS_DISCOVERY"),
    ("T1059", "COMMAND_AND_SCRIPTING_INTERPRETER"),
    ("T1059.004", "UNIX_SHELL"),
    ("T1059.006", "PYTHON"),
    ("T1068", "EXPLOITATION_FOR_PRIVILEGE_ESCALATION"),
    ("T1070", "INDICATOR_REMOVAL"),
    ("T1071", "APPLICATION_LAYER_PROTOCOL"),
    ("T1078", "VALID_ACCOUNTS"),
    ("T1083", "FILE_AND_DIRECTORY_DISCOVERY"),
    ("T1090", "PROXY"),
    ("T1095", "NON_APPLICATION_LAYER_PROTOCOL"),
    ("T1105", "INGRESS_TOOL_TRANSFER"),
    ("T1106", "NATIVE_API"),
    ("T1129", "SHARED_MODULES"),
    ("T1140", "DEOBFUSCATE_DECODE_FILES_OR_INFO"),
    ("T1190", "EXPLOIT_PUBLIC_FACING_APPLICATION"),
    ("T1204", "USER_EXECUTION"),
    ("T1496", "RESOURCE_HIJACKING"),
    ("T1548", "ABUSE_ELEVATION_CONTROL_MECHANISM"),
    ("T1548.003", "SUDO_AND_SUDO_CACHING"),
    ("T1552", "UNSECURED_CREDENTIALS"),
    ("T1552.001", "CREDENTIALS_IN_FILES"),
    ("T1562", "IMPAIR_DEFENSES"),
    ("T1571", "NON_STANDARD_PORT"),
    ("T1574", "HIJACK_EXECUTION_FLOW"),
    ("T1574.006", "DYNAMIC_LINKER_HIJACKING"),
    ("T1609", "CONTAINER_ADMINISTRATION_COMMAND"),
    ("T1610", "DEPLOY_CONTAINER"),
    ("T1611", "ESCAPE_TO_HOST"),
    ("T1613", "CONTAINER_AND_RESOURCE_DISCOVERY"),
    ("T1620", "REFLECTIVE_CODE_LOADING"),
];

/// The ATT&CK version the mapping was written against.
pub const MITRE_VERSION: &str = "18";

/// The built-in detectors' categories.
pub static BUILT_IN: [CategoryInfo; 8] = [
    CategoryInfo {
        api_name: "MALICIOUS_PYTHON_EXECUTED",
        display_name: "Execution: Malicious Python executed",
        severity: Severity::Critical,
        tactic: "EXECUTION",
        techniques: &[T1059_006, T1059],
        additional_tactics: &[],
        additional_techniques: &[T1105],
        description: "A machine learning model scored Python code being executed (a script file, a shebang script or a `python -c` literal) as malicious. The script, its SHA-256, the model score and the strongest signals behind it are in the finding.",
        next_steps: "1. Read the script contents and top reasons in this finding; decide whether the code is yours. 2. If not: isolate the workload (remove it from load balancing, apply a deny-all network policy) and capture the container (checkpoint or `podman export`) before killing it. 3. Find how the script arrived: the parent process chain, recent deployments, the image, mounted volumes. 4. Rotate any credentials the container could read (service-account token, cloud metadata credentials, environment secrets). 5. Rebuild from a trusted image.",
        enabled_by_default: true,
        origin: Origin::BuiltIn,
    },
    CategoryInfo {
        api_name: "POSSIBLE_REMOTE_COMMAND_EXECUTION_DETECTED",
        display_name: "Execution: Possible Remote Command Execution Detected",
        severity: Severity::Medium,
        tactic: "EXECUTION",
        techniques: &[T1059_004, T1059],
        additional_tactics: &[],
        additional_techniques: &[],
        description: "A standard UNIX command ran while the standard input or output of the process, or of an ancestor in the same container, was a network socket connected to a remote peer. This is how reverse shells and bind shells hand an attacker a command line.",
        next_steps: "1. Check the connection peer: is it an address you expect this workload to talk to? 2. Review the command and its parent chain; related findings from the same container show what else ran. 3. If unexpected: block the peer, isolate the pod or container (deny-all network policy), preserve it for forensics, and kill the remote session. 4. Find the entry point (vulnerable web endpoint, exposed debug port, stolen credentials) and rotate credentials the container holds.",
        enabled_by_default: true,
        origin: Origin::BuiltIn,
    },
    CategoryInfo {
        api_name: "REVERSE_SHELL",
        display_name: "Reverse Shell",
        severity: Severity::Critical,
        tactic: "EXECUTION",
        techniques: &[T1059_004, T1059],
        additional_tactics: &["COMMAND_AND_CONTROL"],
        additional_techniques: &[T1571],
        description: "A shell started with its standard input bound to a network socket connected to a remote peer (directly, through dup2 after start, or through a relay such as socat, netcat or a pty-spawning script). Whoever is at the peer controls this shell.",
        next_steps: "1. Treat as an active intrusion: someone at the peer address has an interactive shell. 2. Block the peer address at the network edge and isolate the container or pod (deny-all network policy); keep it running briefly to capture memory and filesystem if you can. 3. List the commands run under this shell (related findings, audit logs). 4. Find the initial access (the parent process chain points at the exploited service), patch it, rotate every credential the workload could reach, and redeploy from a trusted image.",
        enabled_by_default: true,
        origin: Origin::BuiltIn,
    },
    CategoryInfo {
        api_name: "LAUNCH_CODE_COMPILER_TOOL_IN_CONTAINER",
        display_name: "Defense Evasion: Launch Code Compiler Tool In Container",
        severity: Severity::Low,
        tactic: "DEFENSE_EVASION",
        techniques: &[T1027_004, T1027],
        additional_tactics: &[],
        additional_techniques: &[],
        description: "A compiler, assembler or linker started inside a container. Production containers rarely build code; attackers compile exploits and tools in place to evade image scanning.",
        next_steps: "1. Check whether this container is meant to build code (a CI runner or build image); if so, add its image to the compiler allowlist. 2. Otherwise review the compiler's arguments and the files it produced, and the parent chain that started it. 3. If unexpected: isolate the container, preserve the produced binaries for analysis, and look for findings of executed added binaries in the same container.",
        enabled_by_default: true,
        origin: Origin::BuiltIn,
    },
    CategoryInfo {
        api_name: "BUILT_IN_MALICIOUS_BINARY_EXECUTED",
        display_name: "Execution: Built in Malicious Binary Executed",
        severity: Severity::Critical,
        tactic: "EXECUTION",
        techniques: &[T1106],
        additional_tactics: &["COMMAND_AND_CONTROL"],
        additional_techniques: &[T1105],
        description: "A binary that was part of the original container image ran, and its SHA-256 matches threat intelligence. The image itself carries the malware.",
        next_steps: "1. The malicious binary ships in the image: stop deploying it, find every workload running the same image id, and quarantine the image in your registry. 2. Open the VirusTotal link to learn the malware family. 3. Isolate running containers of this image and review their network connections. 4. Find how the image was built or pulled (supply-chain compromise, typosquatted base image) and rebuild from trusted sources.",
        enabled_by_default: true,
        origin: Origin::BuiltIn,
    },
    CategoryInfo {
        api_name: "ADDED_MALICIOUS_BINARY_EXECUTED",
        display_name: "Execution: Added Malicious Binary Executed",
        severity: Severity::Critical,
        tactic: "EXECUTION",
        techniques: &[T1106],
        additional_tactics: &["COMMAND_AND_CONTROL"],
        additional_techniques: &[T1105],
        description: "A binary that was not part of the container image (written after the container started, or from outside an image layer) ran, and its SHA-256 matches threat intelligence.",
        next_steps: "1. Someone wrote known malware into the running container and ran it: treat the container as compromised. 2. Open the VirusTotal link to learn the malware family. 3. Isolate the container, preserve it for forensics, and find how the file arrived (the parent chain; a download tool, a web upload, a mounted volume). 4. Rotate credentials the container holds and redeploy from the image.",
        enabled_by_default: true,
        origin: Origin::BuiltIn,
    },
    CategoryInfo {
        api_name: "MODIFIED_MALICIOUS_BINARY_EXECUTED",
        display_name: "Execution: Modified Malicious Binary Executed",
        severity: Severity::Critical,
        tactic: "EXECUTION",
        techniques: &[T1106],
        additional_tactics: &["COMMAND_AND_CONTROL"],
        additional_techniques: &[T1105],
        description: "A binary from the container image was modified after the container started and then ran; its SHA-256 matches threat intelligence.",
        next_steps: "1. An image file was overwritten with known malware inside the running container: treat the container as compromised. 2. Open the VirusTotal link to learn the malware family. 3. Isolate and preserve the container; find which process modified the file and how it got in. 4. Make the root filesystem read-only where possible, rotate credentials, and redeploy from the image.",
        enabled_by_default: true,
        origin: Origin::BuiltIn,
    },
    CategoryInfo {
        api_name: "ADDED_BINARY_EXECUTED",
        display_name: "Execution: Added Binary Executed",
        severity: Severity::Low,
        tactic: "EXECUTION",
        techniques: &[T1106],
        additional_tactics: &["COMMAND_AND_CONTROL"],
        additional_techniques: &[T1105],
        description: "A binary that was not part of the container image (written after the container started) ran. Immutable containers should only run what their image ships.",
        next_steps: "1. Check whether the workload is expected to run binaries it installs at run time (package installs, self-updating agents); if so, allowlist it. 2. Otherwise inspect the binary (path, hash, VirusTotal) and the parent chain that wrote and ran it. 3. Prefer immutable containers with a read-only root filesystem.",
        enabled_by_default: false,
        origin: Origin::BuiltIn,
    },
];

/// Rule-defined rows, in registration order.
static REGISTERED: RwLock<Vec<&'static CategoryInfo>> = RwLock::new(Vec::new());

/// Why a rule's category could not join the table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CategoryError {
    #[error("category {api_name}: its name {display_name:?} is the built-in category {builtin}'s; a rule cannot redefine a built-in category (a rule takes one over only with the built-in's API name as its id and its exact category string)")]
    BuiltIn {
        api_name: String,
        display_name: String,
        builtin: &'static str,
    },
    #[error("category {api_name} is built in with {field} {builtin}; the rule says {rule}")]
    BuiltInMismatch {
        api_name: String,
        field: &'static str,
        builtin: String,
        rule: String,
    },
}

/// What a rule says about its category, for [`Category::register`].
#[derive(Debug, Clone)]
pub struct RuleCategory<'a> {
    pub api_name: &'a str,
    pub display_name: &'a str,
    pub severity: Severity,
    pub tactic: &'a str,
    /// ATT&CK ids (`T1059.004`).
    pub techniques: &'a [String],
    pub description: &'a str,
    pub next_steps: &'a str,
    pub enabled_by_default: bool,
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

/// SCC's technique for an ATT&CK id: from the table, else the id under its own name.
pub fn technique(id: &str) -> Technique {
    match TECHNIQUE_NAMES.iter().find(|(i, _)| *i == id) {
        Some((i, n)) => Technique { scc_name: n, id: i },
        None => {
            let id = leak(id);
            Technique { scc_name: id, id }
        }
    }
}

impl Category {
    #[allow(non_upper_case_globals)]
    pub const MaliciousPythonExecuted: Category = Category(&BUILT_IN[0]);
    #[allow(non_upper_case_globals)]
    pub const PossibleRemoteCommandExecutionDetected: Category = Category(&BUILT_IN[1]);
    #[allow(non_upper_case_globals)]
    pub const ReverseShell: Category = Category(&BUILT_IN[2]);
    #[allow(non_upper_case_globals)]
    pub const LaunchCodeCompilerToolInContainer: Category = Category(&BUILT_IN[3]);
    #[allow(non_upper_case_globals)]
    pub const BuiltInMaliciousBinaryExecuted: Category = Category(&BUILT_IN[4]);
    #[allow(non_upper_case_globals)]
    pub const AddedMaliciousBinaryExecuted: Category = Category(&BUILT_IN[5]);
    #[allow(non_upper_case_globals)]
    pub const ModifiedMaliciousBinaryExecuted: Category = Category(&BUILT_IN[6]);
    #[allow(non_upper_case_globals)]
    pub const AddedBinaryExecuted: Category = Category(&BUILT_IN[7]);

    /// The built-in categories, in table order.
    pub const BUILT_IN: [Category; 8] = [
        Category::MaliciousPythonExecuted,
        Category::PossibleRemoteCommandExecutionDetected,
        Category::ReverseShell,
        Category::LaunchCodeCompilerToolInContainer,
        Category::BuiltInMaliciousBinaryExecuted,
        Category::AddedMaliciousBinaryExecuted,
        Category::ModifiedMaliciousBinaryExecuted,
        Category::AddedBinaryExecuted,
    ];

    /// The row behind the handle.
    pub fn info(self) -> &'static CategoryInfo {
        self.0
    }

    /// Every known category: the built-in rows, then the registered rule rows.
    pub fn all() -> Vec<Category> {
        let reg = REGISTERED.read().unwrap_or_else(|e| e.into_inner());
        Category::BUILT_IN
            .into_iter()
            .chain(reg.iter().map(|i| Category(i)))
            .collect()
    }

    /// Adds a rule's category to the table (or returns the row already registered with the
    /// same contents). A changed row under a known API name (rules reloaded with new text)
    /// replaces it for [`parse`](Self::parse) and [`all`](Self::all); handles to the old row
    /// stay valid.
    pub fn register(c: &RuleCategory<'_>) -> Result<Category, CategoryError> {
        // A rule that takes over a built-in detector's category (issue 13: detectors migrated
        // to rules) names it exactly: its id is the API name, its category the display name.
        // Its findings then use the built-in row, which must agree on severity and tactic.
        if let Some(b) = BUILT_IN
            .iter()
            .find(|b| b.api_name == c.api_name && b.display_name == c.display_name)
        {
            let mismatch = |field, builtin: String, rule: String| CategoryError::BuiltInMismatch {
                api_name: c.api_name.to_string(),
                field,
                builtin,
                rule,
            };
            if b.severity != c.severity {
                return Err(mismatch(
                    "severity",
                    b.severity.as_str().into(),
                    c.severity.as_str().into(),
                ));
            }
            if b.tactic != c.tactic {
                return Err(mismatch("tactic", b.tactic.into(), c.tactic.into()));
            }
            return Ok(Category(b));
        }
        if let Some(b) = BUILT_IN.iter().find(|b| {
            b.display_name.eq_ignore_ascii_case(c.display_name)
                || b.api_name.eq_ignore_ascii_case(c.api_name)
        }) {
            return Err(CategoryError::BuiltIn {
                api_name: c.api_name.to_string(),
                display_name: c.display_name.to_string(),
                builtin: b.api_name,
            });
        }
        let same = |i: &CategoryInfo| {
            i.api_name == c.api_name
                && i.display_name == c.display_name
                && i.severity == c.severity
                && i.tactic == c.tactic
                && i.techniques.len() == c.techniques.len()
                && i.techniques
                    .iter()
                    .zip(c.techniques)
                    .all(|(t, id)| t.id == id)
                && i.description == c.description
                && i.next_steps == c.next_steps
                && i.enabled_by_default == c.enabled_by_default
        };
        let mut reg = REGISTERED.write().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = reg.iter().find(|i| same(i)) {
            return Ok(Category(i));
        }
        let techniques: Vec<Technique> = c.techniques.iter().map(|t| technique(t)).collect();
        let row: &'static CategoryInfo = Box::leak(Box::new(CategoryInfo {
            api_name: leak(c.api_name),
            display_name: leak(c.display_name),
            severity: c.severity,
            tactic: leak(c.tactic),
            techniques: Box::leak(techniques.into_boxed_slice()),
            additional_tactics: &[],
            additional_techniques: &[],
            description: leak(c.description),
            next_steps: leak(c.next_steps),
            enabled_by_default: c.enabled_by_default,
            origin: Origin::Rule,
        }));
        match reg.iter().position(|i| i.api_name == c.api_name) {
            Some(p) => reg[p] = row,
            None => reg.push(row),
        }
        Ok(Category(row))
    }

    /// The finding's `category` as SCC displays it.
    pub fn display_name(self) -> &'static str {
        self.0.display_name
    }

    /// The API name (SCREAMING_SNAKE_CASE), stable for filters and config.
    pub fn api_name(self) -> &'static str {
        self.0.api_name
    }

    /// Finds a category by display name or API name (case-insensitive), built-in or
    /// registered.
    pub fn parse(s: &str) -> Option<Category> {
        let hit = |i: &CategoryInfo| {
            i.display_name.eq_ignore_ascii_case(s) || i.api_name.eq_ignore_ascii_case(s)
        };
        if let Some(i) = BUILT_IN.iter().find(|i| hit(i)) {
            return Some(Category(i));
        }
        let reg = REGISTERED.read().unwrap_or_else(|e| e.into_inner());
        reg.iter().find(|i| hit(i)).map(|i| Category(i))
    }

    pub fn severity(self) -> Severity {
        self.0.severity
    }

    pub fn origin(self) -> Origin {
        self.0.origin
    }

    /// (primary tactic, primary techniques, additional tactics, additional techniques)
    pub fn techniques(
        self,
    ) -> (
        &'static str,
        &'static [Technique],
        &'static [&'static str],
        &'static [Technique],
    ) {
        let i = self.0;
        (
            i.tactic,
            i.techniques,
            i.additional_tactics,
            i.additional_techniques,
        )
    }

    pub fn mitre_attack(self) -> MitreAttack {
        let i = self.0;
        MitreAttack {
            primary_tactic: i.tactic.into(),
            primary_techniques: i
                .techniques
                .iter()
                .map(|t| t.scc_name.to_string())
                .collect(),
            additional_tactics: i.additional_tactics.iter().map(|t| t.to_string()).collect(),
            additional_techniques: i
                .additional_techniques
                .iter()
                .map(|t| t.scc_name.to_string())
                .collect(),
            version: MITRE_VERSION.into(),
        }
    }

    /// ATT&CK ids (e.g. `T1059.004`) of every technique mapped, primary first.
    pub fn technique_ids(self) -> Vec<&'static str> {
        let i = self.0;
        i.techniques
            .iter()
            .chain(i.additional_techniques)
            .map(|t| t.id)
            .collect()
    }

    /// What the finding means, for the `description` field.
    pub fn description(self) -> &'static str {
        self.0.description
    }

    /// What a responder should do, for the `nextSteps` field.
    pub fn next_steps(self) -> &'static str {
        self.0.next_steps
    }
}

impl PartialEq for Category {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.0, other.0) || self.0.api_name == other.0.api_name
    }
}

impl Eq for Category {}

impl std::hash::Hash for Category {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.api_name.hash(state)
    }
}

impl PartialOrd for Category {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Category {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.api_name.cmp(other.0.api_name)
    }
}

impl std::fmt::Debug for Category {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Category({})", self.0.api_name)
    }
}

impl std::fmt::Display for Category {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.display_name())
    }
}

/// As its API name.
impl serde::Serialize for Category {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.api_name())
    }
}

/// From a display or API name the table knows.
impl<'de> serde::Deserialize<'de> for Category {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Category::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown category {s:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for c in Category::BUILT_IN {
            assert_eq!(Category::parse(c.display_name()), Some(c));
            assert_eq!(Category::parse(&c.api_name().to_lowercase()), Some(c));
            assert!(seen.insert(c.api_name()));
            assert!(!c.technique_ids().is_empty());
            assert!(c.next_steps().starts_with("1. "));
            assert_eq!(c.origin(), Origin::BuiltIn);
        }
        assert_eq!(Category::parse("nope"), None);
    }

    #[test]
    fn severities_follow_the_design() {
        assert_eq!(
            Category::MaliciousPythonExecuted.severity(),
            Severity::Critical
        );
        assert_eq!(
            Category::PossibleRemoteCommandExecutionDetected.severity(),
            Severity::Medium
        );
        assert_eq!(
            Category::LaunchCodeCompilerToolInContainer.severity(),
            Severity::Low
        );
        assert_eq!(
            Category::BuiltInMaliciousBinaryExecuted.severity(),
            Severity::Critical
        );
        assert_eq!(
            Category::LaunchCodeCompilerToolInContainer
                .mitre_attack()
                .primary_techniques,
            vec!["COMPILE_AFTER_DELIVERY", "OBFUSCATED_FILES_OR_INFO"]
        );
        assert!(!Category::AddedBinaryExecuted.info().enabled_by_default);
    }

    fn rule(api: &'static str, display: &'static str, sev: Severity) -> RuleCategory<'static> {
        RuleCategory {
            api_name: api,
            display_name: display,
            severity: sev,
            tactic: "EXECUTION",
            techniques: &[],
            description: "d",
            next_steps: "n",
            enabled_by_default: true,
        }
    }

    #[test]
    fn rule_categories_join_the_table() {
        let techniques = ["T1059.004".to_string(), "T9999".to_string()];
        let r = RuleCategory {
            techniques: &techniques,
            ..rule(
                "TEST_ONLY_CHILD_SHELL",
                "Test Only: Child Shell",
                Severity::High,
            )
        };
        assert_eq!(Category::parse("TEST_ONLY_CHILD_SHELL"), None);
        let c = Category::register(&r).unwrap();
        assert_eq!(c.origin(), Origin::Rule);
        assert_eq!(Category::parse("test only: child shell"), Some(c));
        assert_eq!(Category::parse("TEST_ONLY_CHILD_SHELL"), Some(c));
        assert!(Category::all().contains(&c));
        assert_eq!(c.severity(), Severity::High);
        assert_eq!(
            c.mitre_attack().primary_techniques,
            vec!["UNIX_SHELL", "T9999"]
        );
        assert_eq!(c.technique_ids(), vec!["T1059.004", "T9999"]);
        // Idempotent: the same row again is the same handle.
        let again = Category::register(&r).unwrap();
        assert!(std::ptr::eq(c.info(), again.info()));
        // A changed row replaces it for lookups; the old handle still reads.
        let changed = Category::register(&RuleCategory {
            severity: Severity::Low,
            ..r.clone()
        })
        .unwrap();
        assert_eq!(
            Category::parse("TEST_ONLY_CHILD_SHELL").unwrap().severity(),
            Severity::Low
        );
        assert_eq!(c.severity(), Severity::High);
        assert_eq!(changed, c, "same API name, same category");
        assert_eq!(
            Category::all()
                .iter()
                .filter(|x| x.api_name() == "TEST_ONLY_CHILD_SHELL")
                .count(),
            1
        );
        // Serde goes by API name and back through the table.
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(json, "\"TEST_ONLY_CHILD_SHELL\"");
        let back: Category = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
        assert!(serde_json::from_str::<Category>("\"NO_SUCH_THING\"").is_err());
    }

    #[test]
    fn a_rule_cannot_take_a_built_in_name() {
        for r in [
            rule("MY_SHELL", "Reverse Shell", Severity::Low),
            rule("REVERSE_SHELL", "Something else", Severity::Low),
        ] {
            assert!(matches!(
                Category::register(&r),
                Err(CategoryError::BuiltIn {
                    builtin: "REVERSE_SHELL",
                    ..
                })
            ));
        }
        assert_eq!(Category::parse("MY_SHELL"), None);
    }

    #[test]
    fn a_rule_takes_over_a_built_in_category_by_its_exact_names() {
        let same = RuleCategory {
            tactic: "DEFENSE_EVASION",
            ..rule(
                "LAUNCH_CODE_COMPILER_TOOL_IN_CONTAINER",
                "Defense Evasion: Launch Code Compiler Tool In Container",
                Severity::Low,
            )
        };
        let c = Category::register(&same).unwrap();
        assert_eq!(c, Category::LaunchCodeCompilerToolInContainer);
        assert_eq!(c.origin(), Origin::BuiltIn);
        assert!(matches!(
            Category::register(&RuleCategory {
                severity: Severity::High,
                ..same.clone()
            }),
            Err(CategoryError::BuiltInMismatch {
                field: "severity",
                ..
            })
        ));
        assert!(matches!(
            Category::register(&RuleCategory {
                tactic: "EXECUTION",
                ..same
            }),
            Err(CategoryError::BuiltInMismatch {
                field: "tactic",
                ..
            })
        ));
    }
}
