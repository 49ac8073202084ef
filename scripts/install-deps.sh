#!/usr/bin/env bash
# Installs what Ward's build, tests and agent need on a fresh Debian machine (run as root).
# Idempotent: packages already present are skipped quickly. Sections are owned by the
# component that needs them; keep each list minimal.
set -euo pipefail

APT_PACKAGES=(
  # build: sqlite is bundled by rusqlite; pkg-config for -sys crates
  pkg-config
  # containers for e2e tests / ward selftest (scripts/containers/setup.sh; crun avoided: fails here)
  podman runc conmon netavark aardvark-dns slirp4netns uidmap fuse-overlayfs catatonit iptables
  busybox-static debootstrap
  # ward-sensor: build.rs compiles bpf/ward.bpf.c with clang + libbpf headers; live tests run python3
  clang libbpf-dev python3
  # ward-api: console end-to-end tests drive Debian's headless chromium through chromedriver
  chromium chromium-driver
  # ward-bench-agent: bpftrace's execsnoop.bt as the reference tracer, bpftool for BPF run-time stats
  bpftrace bpftool
  # ward-enrich (feature cri): cri_live test talks to a real containerd on a private socket
  containerd
  # ward-api: schemathesis (from PyPI, below) runs in a venv
  python3-venv
  # ward-output: the syslog e2e test runs a private rsyslogd (UDP, TCP, unix socket)
  rsyslog
  # ward-store: the PostgreSQL store's tests start a private server (initdb + postgres from
  # /usr/lib/postgresql/*/bin) in a temp dir (ward_testkit::postgres::TempPostgres)
  postgresql
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# ward-api: the bounded schemathesis pass of scripts/schemathesis.sh, pinned, in its own venv.
SCHEMATHESIS_VERSION=4.32.5
SCHEMATHESIS_VENV=/opt/ward-schemathesis
if ! "$SCHEMATHESIS_VENV/bin/schemathesis" --version 2>/dev/null | grep -q "version $SCHEMATHESIS_VERSION\$"; then
  echo "install-deps: installing schemathesis $SCHEMATHESIS_VERSION in $SCHEMATHESIS_VENV" >&2
  python3 -m venv "$SCHEMATHESIS_VENV"
  "$SCHEMATHESIS_VENV/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
