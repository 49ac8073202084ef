#!/usr/bin/env bash
# Makes real (rootful) podman containers work offline on a Debian 12 machine, for Ward's
# end-to-end tests and `ward selftest`. Run as root. Idempotent: a second run takes ~1 s.
#
# What it does (see docs/containers-for-tests.md for why):
#   1. installs podman + runc (+ conmon, netavark, slirp4netns, busybox-static, debootstrap, ...)
#   2. writes /etc/containers/containers.conf.d/50-ward-test.conf: runc, cgroupfs, file events,
#      default ulimits that fit under this VM's hard limits (root lacks CAP_SYS_RESOURCE here)
#   3. mounts what the containers (cgroups) and Ward's sensor (tracefs, bpffs) need
#   4. clears podman's runtime state left in /run by a previous boot (/run is not a tmpfs here)
#   5. verifies that `podman run` and `podman exec` work, and prints how long a run takes
#
# Environment: WARD_SETUP_SKIP_APT=1 skips step 1 (packages already installed by other means).
set -euo pipefail

log() { printf '[containers/setup %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (rootful podman is what Ward's sensor tests watch)"

PACKAGES=(podman runc conmon netavark aardvark-dns slirp4netns uidmap fuse-overlayfs
  catatonit iptables busybox-static debootstrap)

# --- 1. packages ----------------------------------------------------------------------------
if [ "${WARD_SETUP_SKIP_APT:-0}" != 1 ]; then
  missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]}"
    t0=$SECONDS
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    # --no-install-recommends: podman recommends buildah, dbus-user-session, ... none needed.
    # crun is avoided on purpose: it fails in this VM; runc satisfies podman's dependency.
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    log "packages installed in $((SECONDS - t0)) s"
  fi
fi
command -v podman >/dev/null || die "podman not installed"
command -v runc >/dev/null || die "runc not installed"

# --- 2. containers.conf drop-in -------------------------------------------------------------
# runc, not crun: crun fails in this VM. cgroupfs: there is no systemd (PID 1 is not systemd).
# events_logger=file: journald is absent. default_ulimits: podman's defaults (nofile 1048576)
# exceed the hard limit and root cannot raise it here (CAP_SYS_RESOURCE is not in the bounding
# set), so runc fails with "error setting rlimit type 7: operation not permitted".
CONF_DIR=/etc/containers/containers.conf.d
CONF_FILE=$CONF_DIR/50-ward-test.conf
read -r -d '' CONF <<'EOF' || true
# Written by Ward's scripts/containers/setup.sh; see docs/containers-for-tests.md.
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
mkdir -p "$CONF_DIR"
if [ "$(cat "$CONF_FILE" 2>/dev/null)" != "$CONF" ]; then
  printf '%s\n' "$CONF" >"$CONF_FILE"
  log "wrote $CONF_FILE"
fi
# A containers.conf written by an earlier version of this script (or by hand) that names crun
# would be overridden by the drop-in anyway; say so if we see one.
if grep -qs '^[[:space:]]*runtime[[:space:]]*=[[:space:]]*"crun"' /etc/containers/containers.conf; then
  log "note: /etc/containers/containers.conf names crun; $CONF_FILE overrides it with runc"
fi

# --- 3. mounts ------------------------------------------------------------------------------
is_mounted() { awk -v m="$1" '$5 == m { found = 1 } END { exit !found }' /proc/self/mountinfo; }
if ! is_mounted /sys/fs/cgroup; then
  log "mounting cgroup2 on /sys/fs/cgroup"
  mount -t cgroup2 cgroup2 /sys/fs/cgroup
fi
# Not needed by podman, but by Ward's sensor in the same tests (tracepoints, pinned maps).
if [ -d /sys/kernel/tracing ] && ! is_mounted /sys/kernel/tracing; then
  mount -t tracefs tracefs /sys/kernel/tracing && log "mounted tracefs on /sys/kernel/tracing"
fi
if [ -d /sys/fs/bpf ] && ! is_mounted /sys/fs/bpf; then
  mount -t bpf bpf /sys/fs/bpf && log "mounted bpffs on /sys/fs/bpf"
fi
# Rootful overlay storage needs a backing filesystem that supports overlay upper dirs.
mkdir -p /var/lib/containers/storage
fstype=$(stat -f -c %T /var/lib/containers/storage)
case "$fstype" in
  overlayfs | overlay) die "/var/lib/containers/storage is on $fstype: give it a real filesystem (or configure fuse-overlayfs as mount_program in /etc/containers/storage.conf)" ;;
esac

# --- 4. stale runtime state from an earlier boot ----------------------------------------------
# Podman keeps runtime state in /run/libpod and /run/containers and expects /run to be a tmpfs
# that a reboot empties. Here /run is on the root disk, so after a reboot podman would believe
# old containers still run and their overlays are still mounted. Podman's own "alive" file
# tells: if it predates this boot, remove the runtime state so podman refreshes it.
alive=/run/libpod/alive
if [ -e "$alive" ]; then
  btime=$(awk '/^btime/ { print $2 }' /proc/stat)
  if [ "$(stat -c %Y "$alive")" -lt "$btime" ]; then
    log "podman runtime state in /run predates this boot: removing it"
    rm -rf /run/libpod /run/containers /run/runc
  fi
fi

# --- 5. verify ------------------------------------------------------------------------------
[ "$(podman info --format '{{.Host.OCIRuntime.Name}}')" = runc ] || die "podman does not use runc"
probe_image=localhost/ward-setup-probe:latest
if ! podman image exists "$probe_image"; then
  [ -x /bin/busybox ] || die "/bin/busybox missing (busybox-static)"
  tmp=$(mktemp -d)
  mkdir -p "$tmp/bin"
  cp /bin/busybox "$tmp/bin/busybox"
  ln -s busybox "$tmp/bin/sh"
  tar -C "$tmp" --numeric-owner --owner=0 --group=0 -cf "$tmp.tar" .
  podman import -q "$tmp.tar" "$probe_image" >/dev/null
  rm -rf "$tmp" "$tmp.tar"
fi
t0=$(date +%s%N)
out=$(podman run --rm --network host "$probe_image" /bin/busybox id 2>&1) ||
  die "podman run failed: $out"
t1=$(date +%s%N)
[[ "$out" == uid=0* ]] || die "unexpected output from podman run: $out"
name=ward-setup-probe-$$
podman run -d --name "$name" --network none "$probe_image" /bin/busybox sleep 60 >/dev/null ||
  die "podman run -d failed"
trap 'podman rm -f -t 0 "$name" >/dev/null 2>&1 || true' EXIT
out=$(podman exec "$name" /bin/busybox cat /proc/1/cgroup 2>&1) || die "podman exec failed: $out"
podman rm -f -t 0 "$name" >/dev/null
trap - EXIT
# The tests use host or slirp4netns networking; podman's default bridge (netavark + iptables)
# is only checked, not required.
if ! out=$(podman run --rm "$probe_image" /bin/busybox true 2>&1); then
  log "warning: podman's default bridge network does not work here (tests do not need it): $out"
fi
log "podman ok: $(podman --version), runtime runc, cgroup $(podman info --format '{{.Host.CgroupsVersion}}'), run --rm took $(((t1 - t0) / 1000000)) ms"
