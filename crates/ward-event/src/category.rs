//! Finding categories: display name (the SCC `category`), API name, severity, MITRE ATT&CK
//! mapping and response guidance.

use crate::finding::{MitreAttack, Severity};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Category {
    MaliciousPythonExecuted,
    PossibleRemoteCommandExecutionDetected,
    ReverseShell,
    LaunchCodeCompilerToolInContainer,
    BuiltInMaliciousBinaryExecuted,
    AddedMaliciousBinaryExecuted,
    ModifiedMaliciousBinaryExecuted,
    AddedBinaryExecuted,
}

/// An ATT&CK technique: SCC's enum name and the ATT&CK id (for links).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Technique {
    pub scc_name: &'static str,
    pub id: &'static str,
}

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

/// The ATT&CK version the mapping was written against.
pub const MITRE_VERSION: &str = "18";

impl Category {
    pub const ALL: [Category; 8] = [
        Category::MaliciousPythonExecuted,
        Category::PossibleRemoteCommandExecutionDetected,
        Category::ReverseShell,
        Category::LaunchCodeCompilerToolInContainer,
        Category::BuiltInMaliciousBinaryExecuted,
        Category::AddedMaliciousBinaryExecuted,
        Category::ModifiedMaliciousBinaryExecuted,
        Category::AddedBinaryExecuted,
    ];

    /// The finding's `category` as SCC displays it.
    pub fn display_name(self) -> &'static str {
        match self {
            Category::MaliciousPythonExecuted => "Execution: Malicious Python executed",
            Category::PossibleRemoteCommandExecutionDetected => {
                "Execution: Possible Remote Command Execution Detected"
            }
            Category::ReverseShell => "Reverse Shell",
            Category::LaunchCodeCompilerToolInContainer => {
                "Defense Evasion: Launch Code Compiler Tool In Container"
            }
            Category::BuiltInMaliciousBinaryExecuted => {
                "Execution: Built in Malicious Binary Executed"
            }
            Category::AddedMaliciousBinaryExecuted => "Execution: Added Malicious Binary Executed",
            Category::ModifiedMaliciousBinaryExecuted => {
                "Execution: Modified Malicious Binary Executed"
            }
            Category::AddedBinaryExecuted => "Execution: Added Binary Executed",
        }
    }

    /// The API name (SCREAMING_SNAKE_CASE), stable for filters and config.
    pub fn api_name(self) -> &'static str {
        match self {
            Category::MaliciousPythonExecuted => "MALICIOUS_PYTHON_EXECUTED",
            Category::PossibleRemoteCommandExecutionDetected => {
                "POSSIBLE_REMOTE_COMMAND_EXECUTION_DETECTED"
            }
            Category::ReverseShell => "REVERSE_SHELL",
            Category::LaunchCodeCompilerToolInContainer => "LAUNCH_CODE_COMPILER_TOOL_IN_CONTAINER",
            Category::BuiltInMaliciousBinaryExecuted => "BUILT_IN_MALICIOUS_BINARY_EXECUTED",
            Category::AddedMaliciousBinaryExecuted => "ADDED_MALICIOUS_BINARY_EXECUTED",
            Category::ModifiedMaliciousBinaryExecuted => "MODIFIED_MALICIOUS_BINARY_EXECUTED",
            Category::AddedBinaryExecuted => "ADDED_BINARY_EXECUTED",
        }
    }

    /// Finds a category by display name or API name (case-insensitive).
    pub fn parse(s: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| {
            c.display_name().eq_ignore_ascii_case(s) || c.api_name().eq_ignore_ascii_case(s)
        })
    }

    pub fn severity(self) -> Severity {
        match self {
            Category::MaliciousPythonExecuted
            | Category::ReverseShell
            | Category::BuiltInMaliciousBinaryExecuted
            | Category::AddedMaliciousBinaryExecuted
            | Category::ModifiedMaliciousBinaryExecuted => Severity::Critical,
            Category::PossibleRemoteCommandExecutionDetected => Severity::Medium,
            Category::LaunchCodeCompilerToolInContainer | Category::AddedBinaryExecuted => {
                Severity::Low
            }
        }
    }

    /// (primary tactic, primary techniques, additional tactics, additional techniques)
    pub fn techniques(
        self,
    ) -> (
        &'static str,
        Vec<Technique>,
        Vec<&'static str>,
        Vec<Technique>,
    ) {
        match self {
            Category::MaliciousPythonExecuted => {
                ("EXECUTION", vec![T1059_006, T1059], vec![], vec![T1105])
            }
            Category::PossibleRemoteCommandExecutionDetected => {
                ("EXECUTION", vec![T1059_004, T1059], vec![], vec![])
            }
            Category::ReverseShell => (
                "EXECUTION",
                vec![T1059_004, T1059],
                vec!["COMMAND_AND_CONTROL"],
                vec![T1571],
            ),
            Category::LaunchCodeCompilerToolInContainer => {
                ("DEFENSE_EVASION", vec![T1027_004, T1027], vec![], vec![])
            }
            Category::BuiltInMaliciousBinaryExecuted
            | Category::AddedMaliciousBinaryExecuted
            | Category::ModifiedMaliciousBinaryExecuted
            | Category::AddedBinaryExecuted => (
                "EXECUTION",
                vec![T1106],
                vec!["COMMAND_AND_CONTROL"],
                vec![T1105],
            ),
        }
    }

    pub fn mitre_attack(self) -> MitreAttack {
        let (tactic, primary, add_tactics, additional) = self.techniques();
        MitreAttack {
            primary_tactic: tactic.into(),
            primary_techniques: primary.iter().map(|t| t.scc_name.to_string()).collect(),
            additional_tactics: add_tactics.iter().map(|t| t.to_string()).collect(),
            additional_techniques: additional.iter().map(|t| t.scc_name.to_string()).collect(),
            version: MITRE_VERSION.into(),
        }
    }

    /// ATT&CK ids (e.g. `T1059.004`) of every technique mapped, primary first.
    pub fn technique_ids(self) -> Vec<&'static str> {
        let (_, p, _, a) = self.techniques();
        p.iter().chain(a.iter()).map(|t| t.id).collect()
    }

    /// What the finding means, for the `description` field.
    pub fn description(self) -> &'static str {
        match self {
            Category::MaliciousPythonExecuted => "A machine learning model scored Python code being executed (a script file, a shebang script or a `python -c` literal) as malicious. The script, its SHA-256, the model score and the strongest signals behind it are in the finding.",
            Category::PossibleRemoteCommandExecutionDetected => "A standard UNIX command ran while the standard input or output of the process, or of an ancestor in the same container, was a network socket connected to a remote peer. This is how reverse shells and bind shells hand an attacker a command line.",
            Category::ReverseShell => "A shell started with its standard input bound to a network socket connected to a remote peer (directly, through dup2 after start, or through a relay such as socat, netcat or a pty-spawning script). Whoever is at the peer controls this shell.",
            Category::LaunchCodeCompilerToolInContainer => "A compiler, assembler or linker started inside a container. Production containers rarely build code; attackers compile exploits and tools in place to evade image scanning.",
            Category::BuiltInMaliciousBinaryExecuted => "A binary that was part of the original container image ran, and its SHA-256 matches threat intelligence. The image itself carries the malware.",
            Category::AddedMaliciousBinaryExecuted => "A binary that was not part of the container image (written after the container started, or from outside an image layer) ran, and its SHA-256 matches threat intelligence.",
            Category::ModifiedMaliciousBinaryExecuted => "A binary from the container image was modified after the container started and then ran; its SHA-256 matches threat intelligence.",
            Category::AddedBinaryExecuted => "A binary that was not part of the container image (written after the container started) ran. Immutable containers should only run what their image ships.",
        }
    }

    /// What a responder should do, for the `nextSteps` field.
    pub fn next_steps(self) -> &'static str {
        match self {
            Category::MaliciousPythonExecuted => "1. Read the script contents and top reasons in this finding; decide whether the code is yours. 2. If not: isolate the workload (remove it from load balancing, apply a deny-all network policy) and capture the container (checkpoint or `podman export`) before killing it. 3. Find how the script arrived: the parent process chain, recent deployments, the image, mounted volumes. 4. Rotate any credentials the container could read (service-account token, cloud metadata credentials, environment secrets). 5. Rebuild from a trusted image.",
            Category::PossibleRemoteCommandExecutionDetected => "1. Check the connection peer: is it an address you expect this workload to talk to? 2. Review the command and its parent chain; related findings from the same container show what else ran. 3. If unexpected: block the peer, isolate the pod or container (deny-all network policy), preserve it for forensics, and kill the remote session. 4. Find the entry point (vulnerable web endpoint, exposed debug port, stolen credentials) and rotate credentials the container holds.",
            Category::ReverseShell => "1. Treat as an active intrusion: someone at the peer address has an interactive shell. 2. Block the peer address at the network edge and isolate the container or pod (deny-all network policy); keep it running briefly to capture memory and filesystem if you can. 3. List the commands run under this shell (related findings, audit logs). 4. Find the initial access (the parent process chain points at the exploited service), patch it, rotate every credential the workload could reach, and redeploy from a trusted image.",
            Category::LaunchCodeCompilerToolInContainer => "1. Check whether this container is meant to build code (a CI runner or build image); if so, add its image to the compiler allowlist. 2. Otherwise review the compiler's arguments and the files it produced, and the parent chain that started it. 3. If unexpected: isolate the container, preserve the produced binaries for analysis, and look for findings of executed added binaries in the same container.",
            Category::BuiltInMaliciousBinaryExecuted => "1. The malicious binary ships in the image: stop deploying it, find every workload running the same image id, and quarantine the image in your registry. 2. Open the VirusTotal link to learn the malware family. 3. Isolate running containers of this image and review their network connections. 4. Find how the image was built or pulled (supply-chain compromise, typosquatted base image) and rebuild from trusted sources.",
            Category::AddedMaliciousBinaryExecuted => "1. Someone wrote known malware into the running container and ran it: treat the container as compromised. 2. Open the VirusTotal link to learn the malware family. 3. Isolate the container, preserve it for forensics, and find how the file arrived (the parent chain; a download tool, a web upload, a mounted volume). 4. Rotate credentials the container holds and redeploy from the image.",
            Category::ModifiedMaliciousBinaryExecuted => "1. An image file was overwritten with known malware inside the running container: treat the container as compromised. 2. Open the VirusTotal link to learn the malware family. 3. Isolate and preserve the container; find which process modified the file and how it got in. 4. Make the root filesystem read-only where possible, rotate credentials, and redeploy from the image.",
            Category::AddedBinaryExecuted => "1. Check whether the workload is expected to run binaries it installs at run time (package installs, self-updating agents); if so, allowlist it. 2. Otherwise inspect the binary (path, hash, VirusTotal) and the parent chain that wrote and ran it. 3. Prefer immutable containers with a read-only root filesystem.",
        }
    }
}

impl std::fmt::Display for Category {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.display_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for c in Category::ALL {
            assert_eq!(Category::parse(c.display_name()), Some(c));
            assert_eq!(Category::parse(&c.api_name().to_lowercase()), Some(c));
            assert!(seen.insert(c.api_name()));
            assert!(!c.technique_ids().is_empty());
            assert!(c.next_steps().starts_with("1. "));
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
    }
}
