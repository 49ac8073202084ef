//! Ward's data model, shared by every other crate. No IO happens here.
//!
//! * [`event`]: what the sensor observes (exec, fork, exit, fd replaced on 0-2, connect/accept),
//!   already enriched with file identity, hashes, layer provenance, script and container metadata.
//! * [`trace`]: the versioned JSON Lines trace format (`ward record` writes it, `ward replay`
//!   reads it). Documented in `docs/trace-format.md`.
//! * [`finding`]: the Security Command Center v2 finding record Ward emits.
//! * [`category`]: the finding categories with severity, MITRE ATT&CK mapping and next steps.
//! * [`classify`]: the script-classifier trait the ML model implements.
//! * [`script`]: pure decisions about which script an interpreter runs (`python x.py`,
//!   `python -c CODE`, shebang scripts).

pub mod build;
pub mod category;
pub mod classify;
pub mod event;
pub mod finding;
pub mod script;
pub mod sha;
pub mod strlist;
pub mod time;
pub mod trace;

pub use category::Category;
pub use classify::{ScriptClassifier, Verdict};
pub use event::*;
pub use finding::Finding;
pub use sha::Sha256;
pub use strlist::StrList;
pub use trace::{TraceError, TraceHeader, TraceReader, TRACE_VERSION};
