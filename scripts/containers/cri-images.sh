#!/usr/bin/env bash
# Prepares, offline, the images a Kubernetes CRI pod needs, for Ward's live CRI test
# (crates/ward-enrich/tests/cri_live.rs), as one docker-archive that
# `ctr -n k8s.io images import` loads into containerd:
#
#   localhost/ward-test-pause:latest    the pod sandbox ("pause") image: /bin/busybox from
#                                       busybox-static, `/bin/sleep inf` as its command (~1 MB)
#   localhost/ward-test-busybox:latest  the workload image (scripts/containers/build-images.sh)
#
# containerd's CRI plugin only needs its `sandbox_image` to be present in the k8s.io namespace
# (it pulls only a missing one), so no registry is involved.
#
# Run as root. Idempotent: the pause image is rebuilt only when this script or /bin/busybox
# changed (`ward.recipe` label), the archive only when an image id changed (~0.3 s when all is
# current). If the busybox image is missing, setup.sh and build-images.sh run first.
#
# Prints KEY=VALUE facts on stdout (progress goes to stderr):
#   WARD_CRI_PAUSE_IMAGE, WARD_CRI_WORKLOAD_IMAGE, WARD_CRI_WORKLOAD_IMAGE_ID (64 hex),
#   WARD_CRI_ARCHIVE (the docker-archive holding both)
# Environment: WARD_IMAGE_CACHE (default /var/cache/ward-images).
set -euo pipefail

log() { printf '[containers/cri-images %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root"

HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${WARD_IMAGE_CACHE:-/var/cache/ward-images}
PAUSE_IMAGE=localhost/ward-test-pause:latest
WORKLOAD_IMAGE=localhost/ward-test-busybox:latest
mkdir -p "$CACHE"
exec 9>"$CACHE/.cri-images.lock"
flock 9

command -v podman >/dev/null || die "podman missing: run scripts/containers/setup.sh first"
if ! podman image exists "$WORKLOAD_IMAGE"; then
  log "$WORKLOAD_IMAGE missing: running setup.sh and build-images.sh"
  bash "$HERE/setup.sh" >&2
  bash "$HERE/build-images.sh" >&2
fi
[ -x /bin/busybox ] || die "/bin/busybox missing (package busybox-static)"

# --- pause image -----------------------------------------------------------------------------
recipe=$( (sha256sum "$0"; sha256sum /bin/busybox) | sha256sum | cut -c1-16)
current=$(podman image inspect --format '{{index .Labels "ward.recipe"}}' "$PAUSE_IMAGE" 2>/dev/null || true)
if [ "$current" != "$recipe" ]; then
  root=$(mktemp -d "$CACHE/pause-root.XXXXXX")
  trap 'rm -rf "$root"' EXIT
  mkdir -p "$root/bin" "$root/dev" "$root/proc" "$root/sys" "$root/etc"
  cp /bin/busybox "$root/bin/busybox"
  ln -s busybox "$root/bin/sleep"
  tar -C "$root" --sort=name --numeric-owner -cf "$root.tar" .
  old=$(podman image inspect --format '{{.Id}}' "$PAUSE_IMAGE" 2>/dev/null || true)
  podman import -q --change "LABEL ward.recipe=$recipe" \
    --change "LABEL org.opencontainers.image.title=$PAUSE_IMAGE" \
    --change 'CMD ["/bin/sleep", "inf"]' "$root.tar" "$PAUSE_IMAGE" >/dev/null
  rm -f "$root.tar"
  [ -n "$old" ] && podman rmi "$old" >/dev/null 2>&1 || true
  log "built $PAUSE_IMAGE (recipe $recipe)"
fi

# --- archive ---------------------------------------------------------------------------------
image_id() { podman image inspect --format '{{.Id}}' "$1"; }
pause_id=$(image_id "$PAUSE_IMAGE")
workload_id=$(image_id "$WORKLOAD_IMAGE")
archive=$CACHE/cri-images-${pause_id:0:12}-${workload_id:0:12}.tar
if [ ! -s "$archive" ]; then
  podman save -q -m --format docker-archive -o "$archive.tmp" "$PAUSE_IMAGE" "$WORKLOAD_IMAGE"
  mv "$archive.tmp" "$archive"
  find "$CACHE" -maxdepth 1 -name 'cri-images-*.tar' ! -name "${archive##*/}" -delete
  log "saved $PAUSE_IMAGE and $WORKLOAD_IMAGE to $archive"
fi

cat <<EOF
WARD_CRI_PAUSE_IMAGE=$PAUSE_IMAGE
WARD_CRI_WORKLOAD_IMAGE=$WORKLOAD_IMAGE
WARD_CRI_WORKLOAD_IMAGE_ID=$workload_id
WARD_CRI_ARCHIVE=$archive
EOF
