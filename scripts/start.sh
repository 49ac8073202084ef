#!/usr/bin/env bash
# Installs what is missing (as root on Debian), builds Ward, and starts its main job on the
# embedded defaults.
#
# Until the live agent lands, the main job replays the bundled example traces (reverse shells,
# compilers, malicious binaries, benign controls) through the detectors into the findings store
# and lists the findings.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo >/dev/null; then
  echo "start: cargo (Rust 1.95) is required and not on PATH" >&2
  exit 1
fi
scripts/install-deps.sh
cargo build --release --locked -p ward
WARD=target/release/ward
DB="${WARD_DB:-/var/lib/ward/ward.db}"
mkdir -p "$(dirname "$DB")"
for trace in testdata/traces/*.jsonl; do
  case "$trace" in *.expected.jsonl) continue ;; esac
  "$WARD" replay --quiet --intel testdata/intel/example-feed.txt --db "$DB" "$trace"
done
"$WARD" findings list --db "$DB"
