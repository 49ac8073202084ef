use super::canonical_tool;
use crate::config::CompilerConfig;
use crate::testing::{run, run_with, CID};
use rustc_hash::FxHashSet;
use ward_event::build::*;
use ward_event::Category;

fn tools() -> FxHashSet<String> {
    CompilerConfig::default().tools.into_iter().collect()
}

#[test]
fn names_with_versions_and_triplets() {
    let t = tools();
    for (name, tool) in [
        ("gcc", "gcc"),
        ("gcc-12", "gcc"),
        ("g++-12", "g++"),
        ("x86_64-linux-gnu-gcc-12", "gcc"),
        ("x86_64-linux-gnu-g++", "g++"),
        ("aarch64-linux-musl-ld.bfd", "ld.bfd"),
        ("clang-16", "clang"),
        ("clang++", "clang++"),
        ("cc1plus", "cc1plus"),
        ("ld.gold", "ld.gold"),
        ("x86_64-w64-mingw32-as", "as"),
        ("tcc", "tcc"),
        ("nasm", "nasm"),
        ("rustc", "rustc"),
    ] {
        assert_eq!(canonical_tool(name, &t), Some(tool), "{name}");
    }
    for name in [
        "gcc-ar",
        "python3",
        "ldd",
        "ldconfig",
        "ascii",
        "bash",
        "foo-bar-gcc",
        "cc-wrapper",
    ] {
        assert_eq!(canonical_tool(name, &t), None, "{name}");
    }
}

fn in_c(b: ExecBuilder) -> ExecBuilder {
    b.container(CID, "app", "registry.example/app:2")
}

#[test]
fn gcc_pipeline_in_container_is_one_finding() {
    let ev = vec![
        in_c(ExecBuilder::new(1, 10, 1, "/bin/sh")).event(),
        fork(2, 11, 10),
        in_c(
            ExecBuilder::new(3, 11, 10, "/usr/bin/gcc")
                .binary_path("/usr/bin/x86_64-linux-gnu-gcc-12")
                .args(&["gcc", "-o", "/tmp/x", "/tmp/x.c"]),
        )
        .event(),
        fork(4, 12, 11),
        in_c(
            ExecBuilder::new(5, 12, 11, "/usr/libexec/gcc/x86_64-linux-gnu/12/cc1")
                .args(&["cc1", "-quiet", "/tmp/x.c"]),
        )
        .event(),
        fork(6, 13, 11),
        in_c(
            ExecBuilder::new(7, 13, 11, "/usr/bin/x86_64-linux-gnu-as")
                .args(&["as", "-o", "/tmp/x.o"]),
        )
        .event(),
        fork(8, 14, 11),
        in_c(
            ExecBuilder::new(9, 14, 11, "/usr/libexec/gcc/x86_64-linux-gnu/12/collect2")
                .args(&["collect2", "-o", "/tmp/x"]),
        )
        .event(),
        fork(10, 15, 14),
        in_c(ExecBuilder::new(11, 15, 14, "/usr/bin/ld").args(&["ld", "-o", "/tmp/x"])).event(),
    ];
    let r = run(ev);
    let f = r.only(Category::LaunchCodeCompilerToolInContainer);
    assert_eq!(f.severity, ward_event::finding::Severity::Low);
    assert_eq!(f.count(), 5, "driver and its helpers fold together");
    assert_eq!(f.processes[0].name, "gcc");
    assert_eq!(
        f.processes[0].binary.as_ref().unwrap().path.as_deref(),
        Some("/usr/bin/x86_64-linux-gnu-gcc-12")
    );
    assert_eq!(f.source_str("Compiler_Tool"), Some("gcc"));
    assert_eq!(
        f.source_str("Container_Image_Uri"),
        Some("registry.example/app:2")
    );
    assert_eq!(f.mitre_attack.primary_tactic, "DEFENSE_EVASION");
}

#[test]
fn go_build_tcc_and_host_and_allowlist() {
    let ev = vec![
        in_c(ExecBuilder::new(1, 10, 1, "/usr/local/go/bin/go").args(&["go", "version"])).event(),
        in_c(ExecBuilder::new(2, 11, 1, "/usr/local/go/bin/go").args(&["go", "build", "./..."]))
            .event(),
        in_c(ExecBuilder::new(3, 12, 1, "/usr/bin/tcc").args(&["tcc", "-run", "x.c"])).event(),
        // On the host: never reported.
        ExecBuilder::new(4, 13, 1, "/usr/bin/gcc").event(),
    ];
    let r = run(ev.clone());
    let tools: Vec<_> = r
        .findings
        .iter()
        .map(|f| f.source_str("Compiler_Tool").unwrap().to_string())
        .collect();
    assert_eq!(tools, vec!["go build", "tcc"]);
    let mut cfg = crate::DetectorsConfig::default();
    cfg.compiler.allow_images = vec!["registry.example/app:2".into()];
    assert!(run_with(&cfg, Default::default(), None, ev)
        .findings
        .is_empty());
}

/// Issue 11, section 4: compiler internals and the `cc`/`c++` alternatives started directly
/// (by full path, as a build system or an attacker may) are each reported, like `gcc`.
#[test]
fn internals_and_alternatives_started_directly_are_each_reported() {
    let cases = [
        ("/usr/lib/gcc/x86_64-linux-gnu/12/cc1", "", "cc1"),
        (
            "/usr/libexec/gcc/x86_64-linux-gnu/12/cc1plus",
            "",
            "cc1plus",
        ),
        ("/usr/lib/gcc/x86_64-linux-gnu/12/lto1", "", "lto1"),
        ("/usr/lib/gcc/x86_64-linux-gnu/12/collect2", "", "collect2"),
        ("/usr/bin/ld", "/usr/bin/x86_64-linux-gnu-ld.bfd", "ld"),
        ("/usr/bin/as", "/usr/bin/x86_64-linux-gnu-as", "as"),
        // Debian's alternatives: /usr/bin/cc -> /etc/alternatives/cc -> gcc-12 -> triplet.
        ("/usr/bin/cc", "/usr/bin/x86_64-linux-gnu-gcc-12", "cc"),
        ("/usr/bin/c++", "/usr/bin/x86_64-linux-gnu-g++-12", "c++"),
        // Relative, as `execvp` of a bare name in the cwd would pass it: folds into the
        // first `cc1` finding (same tool, same container).
        ("./cc1", "/tmp/build/cc1", "cc1"),
    ];
    let ev: Vec<_> = cases
        .iter()
        .enumerate()
        .map(|(i, (filename, binary, _))| {
            let pid = 20 + i as u32;
            let mut b = ExecBuilder::new(i as u64 + 1, pid, 1, filename).args(&[filename, "-v"]);
            if !binary.is_empty() {
                b = b.binary_path(binary);
            }
            in_c(b).event()
        })
        .collect();
    let r = run(ev);
    let tools: Vec<_> = r
        .findings
        .iter()
        .map(|f| f.source_str("Compiler_Tool").unwrap().to_string())
        .collect();
    let want: Vec<_> = cases[..8].iter().map(|c| c.2.to_string()).collect();
    assert_eq!(tools, want);
    for (f, (filename, _, _)) in r.findings.iter().zip(&cases) {
        assert_eq!(f.processes[0].args[0], *filename);
    }
    let counts: Vec<_> = r.findings.iter().map(|f| f.count()).collect();
    assert_eq!(counts, [2, 1, 1, 1, 1, 1, 1, 1]);
}
