#!/usr/bin/env bash
# A bounded schemathesis pass against a real `ward serve` on 127.0.0.1 (issue 16, item 6):
# every check (tuned in scripts/schemathesis.toml, which says why), the examples, coverage,
# fuzzing and stateful phases, over a store filled from the example traces. Bounded: a fixed
# number of examples per operation (WARD_SCHEMATHESIS_EXAMPLES, 50) and a wall-clock cap
# (WARD_SCHEMATHESIS_SECONDS, 600). The seed is fixed (WARD_SCHEMATHESIS_SEED) so CI is
# repeatable; set another to explore. Fails on any check failure.
set -euo pipefail
cd "$(dirname "$0")/.."
ST=${SCHEMATHESIS:-/opt/ward-schemathesis/bin/schemathesis}
EXAMPLES=${WARD_SCHEMATHESIS_EXAMPLES:-50}
SECONDS_CAP=${WARD_SCHEMATHESIS_SECONDS:-600}
SEED=${WARD_SCHEMATHESIS_SEED:-1}
READ=read-token-schemathesis-0123456789
WRITE=write-token-schemathesis-0123456789

cargo build -q -p ward
WARD=target/debug/ward
dir=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT

for t in testdata/traces/*.jsonl; do
  case "$t" in *.expected.jsonl) continue ;; esac
  "$WARD" replay -q --final --intel testdata/intel/example-feed.txt --db "$dir/w.db" "$t" 2>>"$dir/replay.log"
done

WARD_API_READ_TOKEN=$READ WARD_API_WRITE_TOKEN=$WRITE \
  "$WARD" serve --listen 127.0.0.1:0 --db "$dir/w.db" 2>"$dir/serve.log" &
pid=$!
addr=
for _ in $(seq 100); do
  addr=$(sed -n 's/^ward: serving findings from .* on \(127\.0\.0\.1:[0-9]*\)$/\1/p' "$dir/serve.log")
  [ -n "$addr" ] && break
  sleep 0.1
done
[ -n "$addr" ] || { cat "$dir/serve.log" >&2; echo "schemathesis.sh: ward serve did not start" >&2; exit 1; }
base="http://$addr"

# From the temp dir: schemathesis keeps a cache (.schemathesis/) in its working directory.
config=$PWD/scripts/schemathesis.toml
cd "$dir"
timeout "$SECONDS_CAP" "$ST" --no-color --config-file "$config" run \
  "$base/v1/openapi.json" --url "$base" -H "Authorization: Bearer $WRITE" \
  --max-examples "$EXAMPLES" --seed "$SEED" --request-timeout 15
