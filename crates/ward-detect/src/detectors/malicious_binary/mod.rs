//! *Execution: Built in / Added / Modified Malicious Binary Executed* (CRITICAL): the executed
//! binary's SHA-256 (or the script's, for a script file run by an interpreter or through a
//! shebang) is in a loaded threat-intel feed. The category follows the file's layer:
//! image (overlay lower) → Built in; upper over lower (copied up) → Modified; anything else
//! (upper only, memfd, deleted, not on an overlay, host) → Added, since it is not proven to
//! come from the image.

use crate::config::MaliciousBinaryConfig;
use crate::detectors::command_line;
use crate::{Ctx, Detection, Detector};
use ward_event::{Category, ExecEvent, Layer, ScriptKind, Sha256};
use ward_proctable::Proc;

pub const NAME: &str = "malicious_binary";

pub struct MaliciousBinary {
    check_scripts: bool,
}

impl MaliciousBinary {
    pub fn new(cfg: &MaliciousBinaryConfig) -> Self {
        MaliciousBinary {
            check_scripts: cfg.check_scripts,
        }
    }
}

pub fn category_for(layer: Layer) -> Category {
    match layer {
        Layer::Image => Category::BuiltInMaliciousBinaryExecuted,
        Layer::Modified => Category::ModifiedMaliciousBinaryExecuted,
        _ => Category::AddedMaliciousBinaryExecuted,
    }
}

impl Detector for MaliciousBinary {
    fn name(&self) -> &'static str {
        NAME
    }

    fn on_exec(&self, ctx: &Ctx<'_>, proc: &Proc, exec: &ExecEvent, out: &mut Vec<Detection>) {
        if ctx.intel.is_empty() {
            return;
        }
        let mut check = |sha: Sha256, layer: Layer, what: &str, path: &str| {
            let Some(m) = ctx.intel.lookup(&sha.0) else {
                return;
            };
            let mut d = Detection::new(category_for(layer), NAME, exec.time, proc.pid, sha.to_hex())
                .detail(format!(
                    "The {what} `{path}` (sha256 {sha}, layer {}) matches threat-intel feed `{}`{}; command `{}`.",
                    layer.as_str(),
                    m.feed,
                    m.comment.map(|c| format!(" ({c})")).unwrap_or_default(),
                    command_line(exec)
                ))
                .property("Intel_Feed", m.feed)
                .property("Matched_File", what)
                .property("Matched_Sha256", sha.to_hex())
                .property("File_Layer", layer.as_str());
            if let Some(c) = m.comment {
                d = d.property("Intel_Comment", c);
            }
            d.hashes.push(sha);
            d.script_contents = what == "script";
            out.push(d);
        };
        if let Some(sha) = exec.binary.sha256 {
            check(sha, exec.binary.layer, "binary", &exec.binary.path);
        }
        if self.check_scripts {
            if let Some(s) = &exec.script {
                if let (Some(sha), ScriptKind::File | ScriptKind::Shebang) = (s.sha256, s.kind) {
                    let layer = s.layer.unwrap_or(Layer::Unknown);
                    check(sha, layer, "script", s.path.as_deref().unwrap_or(""));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
