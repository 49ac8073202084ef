//! *Execution: Malicious Python executed* (CRITICAL): the classifier scores the Python code
//! being executed — a script file (`python3 x.py`), a shebang script, or a `python -c`
//! literal — as captured by the enrichment layer in `ExecEvent::script`.
//!
//! Without a classifier this detector reports nothing (there is no keyword fallback).

use crate::config::{image_allowed, MaliciousPythonConfig};
use crate::detectors::{command_line, image_of};
use crate::{Ctx, Detection, Detector};
use ward_event::script::Interpreter;
use ward_event::{Category, ExecEvent, ScriptKind};
use ward_proctable::Proc;

pub const NAME: &str = "malicious_python";

pub struct MaliciousPython {
    threshold: Option<f32>,
    allow_images: Vec<String>,
}

impl MaliciousPython {
    pub fn new(cfg: &MaliciousPythonConfig) -> Self {
        MaliciousPython {
            threshold: cfg.threshold,
            allow_images: cfg.allow_images.clone(),
        }
    }
}

impl Detector for MaliciousPython {
    fn name(&self) -> &'static str {
        NAME
    }

    fn on_exec(&self, ctx: &Ctx<'_>, proc: &Proc, exec: &ExecEvent, out: &mut Vec<Detection>) {
        let Some(model) = ctx.classifier else { return };
        if exec.interpreter() != Some(Interpreter::Python)
            || image_allowed(&self.allow_images, image_of(exec))
        {
            return;
        }
        let Some(script) = &exec.script else { return };
        let Some(contents) = &script.contents else {
            return;
        };
        // The whole script up to the enricher's scoring cap, not just what a finding displays.
        let verdict = model.classify(
            script
                .scoring_text
                .as_deref()
                .unwrap_or(contents.as_bytes()),
        );
        let threshold = self.threshold.unwrap_or(verdict.threshold);
        if verdict.score < threshold {
            return;
        }
        let key = script
            .sha256
            .map(|h| h.to_hex())
            .unwrap_or_else(|| ward_event::Sha256(sha256(contents.as_bytes())).to_hex());
        let what = match script.kind {
            ScriptKind::Inline => "`python -c` code".to_string(),
            ScriptKind::File => format!("script `{}`", script.path.as_deref().unwrap_or("?")),
            ScriptKind::Shebang => {
                format!("shebang script `{}`", script.path.as_deref().unwrap_or("?"))
            }
        };
        let mut d = Detection::new(
            Category::MaliciousPythonExecuted,
            NAME,
            exec.time,
            proc.pid,
            key,
        )
        .detail(format!(
            "The model scored the {what} run by `{}` (pid {}) at {:.3} (threshold {:.3}).",
            command_line(exec),
            proc.pid,
            verdict.score,
            threshold
        ))
        .property("Model_Id", model.model_id())
        .property("Model_Score", f64::from(verdict.score))
        .property("Model_Threshold", f64::from(threshold))
        .property("Model_Top_Reasons", verdict.reasons.clone())
        .property(
            "Script_Kind",
            match script.kind {
                ScriptKind::Inline => "inline",
                ScriptKind::File => "file",
                ScriptKind::Shebang => "shebang",
            },
        );
        if script.contents_truncated {
            d = d.property("Script_Contents_Truncated", true);
        }
        d.hashes.extend(script.sha256);
        d.script_contents = true;
        out.push(d);
    }
}

fn sha256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(data).into()
}

#[cfg(test)]
mod tests;
