//! *Execution: Added Binary Executed* (LOW, off by default): drift — a binary that is not part
//! of the container image ran (overlay upper layer only, copied-up modification, or memfd).
//!
//! Not a rule: it keys on the binary's SHA-256 and carries it as the finding's hash (VirusTotal
//! link), which a rule cannot (docs/rules.md, "Why the compiler and added-binary detectors stay
//! code").

use crate::config::{image_allowed, AddedBinaryConfig};
use crate::detectors::{command_line, image_of};
use crate::{Ctx, Detection, Detector};
use ward_event::{Category, ExecEvent, Layer};
use ward_proctable::Proc;

pub const NAME: &str = "added_binary";

pub struct AddedBinary {
    allow_images: Vec<String>,
}

impl AddedBinary {
    pub fn new(cfg: &AddedBinaryConfig) -> Self {
        AddedBinary {
            allow_images: cfg.allow_images.clone(),
        }
    }
}

impl Detector for AddedBinary {
    fn name(&self) -> &'static str {
        NAME
    }

    fn on_exec(&self, _ctx: &Ctx<'_>, proc: &Proc, exec: &ExecEvent, out: &mut Vec<Detection>) {
        if exec.container_id.is_none()
            || !matches!(
                exec.binary.layer,
                Layer::Added | Layer::Modified | Layer::Memfd
            )
            || image_allowed(&self.allow_images, image_of(exec))
        {
            return;
        }
        let key = exec
            .binary
            .sha256
            .map(|h| h.to_hex())
            .unwrap_or_else(|| exec.binary.path.clone());
        let mut d = Detection::new(
            Category::AddedBinaryExecuted,
            NAME,
            exec.time,
            proc.pid,
            key,
        )
        .detail(format!(
            "`{}` ran from the {} layer: `{}`.",
            command_line(exec),
            exec.binary.layer.as_str(),
            exec.binary.path
        ))
        .property("File_Layer", exec.binary.layer.as_str());
        d.hashes.extend(exec.binary.sha256);
        out.push(d);
    }
}

#[cfg(test)]
mod tests;
