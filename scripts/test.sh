#!/usr/bin/env bash
# Runs Ward's whole test suite (as root on Debian). This is what `.ci/run` calls.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy -p ward-enrich --features cri --all-targets -- -D warnings
cargo clippy -p ward --features train --all-targets -- -D warnings   # `ward model train|eval` (off by default)
cargo test --workspace --no-fail-fast
cargo run -q -p ward -- rules test --no-shipped rules   # every shipped rule's own tests (docs/rules.md)
cargo test -p ward-enrich --features cri --no-fail-fast   # CRI client + live containerd pod (cri_live), off by default
scripts/schemathesis.sh   # bounded schemathesis pass (all checks) against a real ward serve on 127.0.0.1
