//! Compiles `bpf/ward.bpf.c` (CO-RE) with clang into `$OUT_DIR/ward.bpf.o`.
//!
//! Needs `clang` (override with `WARD_CLANG`) and libbpf's headers
//! (`/usr/include/bpf/bpf_helpers.h`, Debian package `libbpf-dev`).

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let bpf_dir = manifest.join("../../bpf");
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR")).join("ward.bpf.o");
    for f in ["ward.bpf.c", "ward_abi.h", "vmlinux.h"] {
        println!("cargo:rerun-if-changed={}", bpf_dir.join(f).display());
    }
    println!("cargo:rerun-if-env-changed=WARD_CLANG");
    let clang = env::var("WARD_CLANG").unwrap_or_else(|_| "clang".to_string());

    let output = Command::new(&clang)
        .args([
            "-O2",
            "-g",
            "-target",
            "bpf",
            "-D__TARGET_ARCH_x86",
            "-Wall",
            "-Werror",
        ])
        .arg("-I")
        .arg(&bpf_dir)
        .arg("-c")
        .arg(bpf_dir.join("ward.bpf.c"))
        .arg("-o")
        .arg(&out)
        .output();
    match output {
        Err(e) => panic!(
            "ward-sensor: cannot run `{clang}` ({e}). The eBPF programs are compiled with clang: \
             install the Debian packages `clang llvm libbpf-dev` (see scripts/install-deps.sh) \
             or set WARD_CLANG to a clang binary."
        ),
        Ok(o) if !o.status.success() => {
            let stderr = String::from_utf8_lossy(&o.stderr);
            let hint = if stderr.contains("bpf/bpf_helpers.h") {
                "\nhint: libbpf headers are missing: install the Debian package `libbpf-dev`"
            } else {
                ""
            };
            panic!("ward-sensor: clang failed to compile bpf/ward.bpf.c:\n{stderr}{hint}");
        }
        Ok(_) => {}
    }
}
