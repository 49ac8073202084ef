#!/usr/bin/env bash
# Installs what is missing (as root on Debian), builds Ward, and starts its main job on the
# embedded defaults: the live eBPF agent, storing findings in /var/lib/ward/ward.db, printing
# them as JSON Lines, with the findings API and web console on http://127.0.0.1:8080 (the URL
# with its one-off write token is printed at start) and Prometheus metrics on 127.0.0.1:9464.
#
# Extra arguments go to `ward agent` (e.g. `--intel feed.csv`). Stop with Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo >/dev/null; then
  echo "start: cargo (Rust 1.95) is required and not on PATH" >&2
  exit 1
fi
scripts/install-deps.sh
cargo build --release -p ward
exec target/release/ward agent --serve "$@"
