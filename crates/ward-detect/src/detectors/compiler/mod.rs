//! *Defense Evasion: Launch Code Compiler Tool In Container* (LOW): a compiler, assembler or
//! linker starts inside a container (host processes are not reported). Names match with a
//! version suffix (`gcc-12`, `clang-16`) and a target-triplet prefix
//! (`x86_64-linux-gnu-gcc-12`). `go build`-style tools match on their subcommand. Images in
//! `allow_images` (build containers) are not reported.
//!
//! The driver's helpers (`cc1`, `as`, `collect2`, `ld` under `gcc`) fold into the driver's
//! finding: the aggregation key is the outermost compiler tool in the process chain.
//!
//! Not a rule: its key (the outermost compiler's canonical name), its properties and its
//! `[detectors.compiler]` keys have no rule form (docs/rules.md, "Why the compiler and
//! added-binary detectors stay code"); `benches/compiler-rule/compiler.toml` is the decision
//! alone as a rule, for the replay benchmark.

use crate::config::{image_allowed, CompilerConfig};
use crate::detectors::{command_line, image_of};
use crate::{Ctx, Detection, Detector};
use rustc_hash::{FxHashMap, FxHashSet};
use ward_event::{Category, ExecEvent};
use ward_proctable::Proc;

pub const NAME: &str = "compiler";

pub struct Compiler {
    tools: FxHashSet<String>,
    subcommands: FxHashMap<String, Vec<String>>,
    allow_images: Vec<String>,
}

impl Compiler {
    pub fn new(cfg: &CompilerConfig) -> Self {
        Compiler {
            tools: cfg.tools.iter().cloned().collect(),
            subcommands: cfg
                .subcommand_tools
                .iter()
                .map(|t| (t.program.clone(), t.subcommands.clone()))
                .collect(),
            allow_images: cfg.allow_images.clone(),
        }
    }

    /// The canonical tool name when `exec` runs a compiler tool.
    pub fn tool_of(&self, exec: &ExecEvent) -> Option<String> {
        let program = exec.program();
        if let Some(subs) = self.subcommands.get(program) {
            let sub = exec.program_args().iter().find(|a| !a.starts_with('-'))?;
            return subs.contains(sub).then(|| format!("{program} {sub}"));
        }
        canonical_tool(program, &self.tools).map(str::to_string)
    }
}

/// Strips a version suffix and a target-triplet prefix until a known tool name remains.
pub fn canonical_tool<'a>(name: &'a str, tools: &FxHashSet<String>) -> Option<&'a str> {
    let mut n = name;
    // `gcc-12`, `clang-16`, `ld.lld-15`, `gcc-12.2`: drop `-<digits/dots>`.
    if let Some((stem, ver)) = n.rsplit_once('-') {
        if !ver.is_empty() && ver.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            n = stem;
        }
    }
    if tools.contains(n) {
        return Some(n);
    }
    // `x86_64-linux-gnu-gcc`, `aarch64-linux-musl-ld.bfd`: the tool is after a triplet of
    // two or three dash-separated parts.
    let parts: Vec<&str> = n.split('-').collect();
    for k in [3usize, 2] {
        if parts.len() > k {
            let rest_start: usize = parts[..k].iter().map(|p| p.len() + 1).sum();
            let rest = &n[rest_start..];
            if tools.contains(rest) && looks_like_arch(parts[0]) {
                return Some(rest);
            }
        }
    }
    None
}

fn looks_like_arch(p: &str) -> bool {
    const ARCHES: &[&str] = &[
        "x86_64",
        "i386",
        "i486",
        "i586",
        "i686",
        "aarch64",
        "arm",
        "armv7",
        "armhf",
        "arm64",
        "mips",
        "mipsel",
        "mips64",
        "mips64el",
        "powerpc",
        "powerpc64",
        "powerpc64le",
        "ppc64le",
        "riscv64",
        "s390x",
        "sparc64",
        "loongarch64",
        "amd64",
    ];
    ARCHES.contains(&p)
}

impl Detector for Compiler {
    fn name(&self) -> &'static str {
        NAME
    }

    fn on_exec(&self, ctx: &Ctx<'_>, proc: &Proc, exec: &ExecEvent, out: &mut Vec<Detection>) {
        if exec.container_id.is_none() || image_allowed(&self.allow_images, image_of(exec)) {
            return;
        }
        let Some(tool) = self.tool_of(exec) else {
            return;
        };
        // Fold helpers into the outermost compiler driver of the chain (same container).
        let mut key_tool = tool.clone();
        let mut driver_pid = proc.pid;
        for a in ctx.table.ancestors(proc.pid).take(4) {
            let Some(ae) = a.exec.as_deref() else { break };
            if ae.container_id != exec.container_id {
                break;
            }
            match self.tool_of(ae) {
                Some(t) => {
                    key_tool = t;
                    driver_pid = a.pid;
                }
                None => break,
            }
        }
        let mut d = Detection::new(
            Category::LaunchCodeCompilerToolInContainer,
            NAME,
            exec.time,
            proc.pid,
            key_tool.clone(),
        )
        .detail(format!(
            "`{}` (pid {}) started `{}`.",
            command_line(exec),
            proc.pid,
            exec.binary.path
        ))
        .property("Compiler_Tool", tool)
        .property("Binary_Layer", exec.binary.layer.as_str());
        if driver_pid != proc.pid {
            d = d
                .property("Compiler_Driver", key_tool)
                .property("Compiler_Driver_Pid", driver_pid);
        }
        out.push(d);
    }
}

#[cfg(test)]
mod tests;
