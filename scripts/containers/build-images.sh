#!/usr/bin/env bash
# Builds the container images Ward's end-to-end tests run, offline, from Debian packages only.
# Run as root after scripts/containers/setup.sh. Idempotent: an image whose `ward.recipe` label
# matches the recipe below is kept; a cached rootfs tarball is re-imported without rebuilding.
#
#   localhost/ward-test-busybox:latest  busybox-static + applet symlinks (~2.5 MB)
#   localhost/ward-test-debian:latest   debootstrap minbase bookworm + python3, perl, tcc,
#                                       netcat-traditional (nc -e), netcat-openbsd, socat,
#                                       bash, procps (~200 MB)
# Both carry /usr/local/bin/ward-test-payload: a 231-byte static ELF that prints a marker and
# exits 0, whose sha256 is a constant (see make-payload.py) -- the "built-in malicious binary".
#
# Outputs in $WARD_IMAGE_CACHE (default /var/cache/ward-images):
#   images.env                  KEY=VALUE facts for the testkit (image names/ids, payload hashes)
#   ward-test-payload{,-added}  host copies of the payloads; *.sha256 in `sha256sum` format
#   test-intel.txt              a `HASH;COMMENT` intel feed naming both payloads
#   debian-<recipe>.tar         the prepared Debian rootfs (reused when the image is missing)
#   debs/                       debootstrap's .deb cache
#
# Usage: build-images.sh [--force] [busybox] [debian]     (no name = both)
# Environment: WARD_IMAGE_CACHE, WARD_DEBIAN_MIRROR (default: the host's apt mirror).
set -euo pipefail

log() { printf '[containers/build-images %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root"

CACHE=${WARD_IMAGE_CACHE:-/var/cache/ward-images}
SUITE=bookworm
BUSYBOX_IMAGE=localhost/ward-test-busybox:latest
DEBIAN_IMAGE=localhost/ward-test-debian:latest
PAYLOAD_PATH=/usr/local/bin/ward-test-payload
# Debian packages on top of minbase. tcc needs libc6-dev for headers and crt files; python3
# (not only python3-minimal, which lacks json, base64's friends, urllib...) so that realistic
# Python scripts run.
DEBIAN_PACKAGES=(python3 perl tcc libc6-dev netcat-traditional netcat-openbsd socat bash procps)

FORCE=0
want_busybox=0
want_debian=0
for a in "$@"; do
  case "$a" in
    --force) FORCE=1 ;;
    busybox) want_busybox=1 ;;
    debian) want_debian=1 ;;
    *) die "unknown argument: $a (usage: build-images.sh [--force] [busybox] [debian])" ;;
  esac
done
if [ "$want_busybox$want_debian" = 00 ]; then want_busybox=1; want_debian=1; fi

mkdir -p "$CACHE"
# One build at a time: several test binaries may call this concurrently.
exec 9>"$CACHE/.lock"
flock 9

command -v podman >/dev/null || die "podman missing: run scripts/containers/setup.sh first"
[ -x /bin/busybox ] || die "/bin/busybox missing: run scripts/containers/setup.sh first"

# --- payloads --------------------------------------------------------------------------------
# Hand-assembled static x86-64 ELFs (write marker, exit 0), byte-identical on every machine.
# Regenerate with make-payload.py; the sha256 below is checked after decoding.
PAYLOAD_B64='f0VMRgIBAQAAAAAAAAAAAAIAPgABAAAAeABAAAAAAABAAAAAAAAAAAAAAAAAAAAAAAAAAEAAOAABAAAAAAAAAAEAAAAFAAAAAAAAAAAAAAAAAEAAAAAAAAAAQAAAAAAA5wAAAAAAAADnAAAAAAAAAAAQAAAAAAAAuAEAAAC/AQAAAEiNNRAAAAC6TgAAAA8FuDwAAAAx/w8FV0FSRC1URVNULVBBWUxPQUQ6IGhhcm1sZXNzIHN0YW5kLWluIGZvciBhIG1hbGljaW91cyBiaW5hcnkgKFdhcmQgdGVzdCBzdWl0ZSkK'
PAYLOAD_SHA256=26b71b8f85c149749dc22da94f9ffe6f310a2ceba0dcf87917fba47e1a75134d
ADDED_B64='f0VMRgIBAQAAAAAAAAAAAAIAPgABAAAAeABAAAAAAABAAAAAAAAAAAAAAAAAAAAAAAAAAEAAOAABAAAAAAAAAAEAAAAFAAAAAAAAAAAAAAAAAEAAAAAAAAAAQAAAAAAA6wAAAAAAAADrAAAAAAAAAAAQAAAAAAAAuAEAAAC/AQAAAEiNNRAAAAC6UgAAAA8FuDwAAAAx/w8FV0FSRC1URVNULVBBWUxPQUQtQURERUQ6IGhhcm1sZXNzIHN0YW5kLWluIGZvciBhIGRyb3BwZWQgYmluYXJ5IChXYXJkIHRlc3Qgc3VpdGUpCg=='
ADDED_SHA256=be6626ee701f13be2388eb74851e945e7071ed77ca6e2a8d7af498572b333bf2

[ "$(uname -m)" = x86_64 ] || die "the test payloads are x86-64 ELFs; this machine is $(uname -m)"
write_payload() { # name base64 sha256
  local f=$CACHE/$1
  printf '%s' "$2" | base64 -d >"$f.tmp"
  chmod 0755 "$f.tmp"
  [ "$(sha256sum <"$f.tmp" | cut -d' ' -f1)" = "$3" ] || die "payload $1 does not hash to $3"
  mv "$f.tmp" "$f"
  printf '%s  %s\n' "$3" "$1" >"$f.sha256"
}
write_payload ward-test-payload "$PAYLOAD_B64" "$PAYLOAD_SHA256"
write_payload ward-test-payload-added "$ADDED_B64" "$ADDED_SHA256"
cat >"$CACHE/test-intel.txt" <<EOF
$PAYLOAD_SHA256;ward-test-payload (harmless test binary baked into Ward's test images)
$ADDED_SHA256;ward-test-payload-added (harmless test binary for added-binary tests)
EOF

# --- helpers ---------------------------------------------------------------------------------
SCRIPT_SHA=$(sha256sum "$0" | cut -d' ' -f1)
recipe_of() { printf '%s\n' "$@" | sha256sum | cut -c1-16; }
image_recipe() { podman image inspect --format '{{index .Labels "ward.recipe"}}' "$1" 2>/dev/null || true; }
# Deterministic tar of a rootfs directory, numeric owners kept.
tar_rootfs() { tar -C "$1" --sort=name --numeric-owner --xattrs -cf "$2" .; }
import_image() { # tarball image recipe cmd
  local old new
  old=$(podman image inspect --format '{{.Id}}' "$2" 2>/dev/null || true)
  new=$(podman import -q --change "LABEL ward.recipe=$3" --change "LABEL org.opencontainers.image.title=$2" \
    --change "CMD [\"$4\"]" "$1" "$2")
  # Drop the superseded image unless a container still uses it.
  if [ -n "$old" ] && [ "sha256:$old" != "$new" ] && [ "$old" != "${new#sha256:}" ]; then
    podman rmi "$old" >/dev/null 2>&1 || true
  fi
}

# --- busybox image ---------------------------------------------------------------------------
build_busybox() {
  local recipe
  recipe=$(recipe_of "$SCRIPT_SHA" "$(sha256sum /bin/busybox)")
  if [ "$FORCE" = 0 ] && [ "$(image_recipe "$BUSYBOX_IMAGE")" = "$recipe" ]; then
    log "$BUSYBOX_IMAGE up to date (recipe $recipe)"
    return
  fi
  local t0=$SECONDS root
  root=$(mktemp -d "$CACHE/busybox-root.XXXXXX")
  mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,etc,root,tmp,var/tmp,proc,sys,dev}
  chmod 1777 "$root/tmp" "$root/var/tmp"
  chmod 0700 "$root/root"
  cp /bin/busybox "$root/bin/busybox"
  # Every applet at its usual path (bin/sh, usr/bin/nc, ...), as a symlink to /bin/busybox.
  local applet
  while read -r applet; do
    [ "$applet" = bin/busybox ] && continue
    ln -s /bin/busybox "$root/$applet"
  done < <(/bin/busybox --list-full)
  cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
  cat >"$root/etc/group" <<'EOF'
root:x:0:
nogroup:x:65534:
EOF
  cp "$CACHE/ward-test-payload" "$root$PAYLOAD_PATH"
  tar_rootfs "$root" "$CACHE/busybox.tar"
  rm -rf "$root"
  import_image "$CACHE/busybox.tar" "$BUSYBOX_IMAGE" "$recipe" /bin/sh
  log "built $BUSYBOX_IMAGE (recipe $recipe) in $((SECONDS - t0)) s"
}

# --- debian image ----------------------------------------------------------------------------
debian_mirror() {
  if [ -n "${WARD_DEBIAN_MIRROR:-}" ]; then echo "$WARD_DEBIAN_MIRROR"; return; fi
  local m
  # First main-archive URI of an active (uncommented) `deb` line or deb822 `URIs:` field.
  m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list \
    2>/dev/null | awk '/^[[:space:]]*(deb|URIs:)[[:space:]]/ { for (i = 2; i <= NF; i++)
      if ($i ~ /^https?:\/\/.*\/debian\/?$/) { print $i; exit } }' || true)
  echo "${m:-http://deb.debian.org/debian}"
}

build_debian() {
  local recipe tarball
  recipe=$(recipe_of "$SCRIPT_SHA" "$SUITE" "${DEBIAN_PACKAGES[*]}")
  tarball=$CACHE/debian-$recipe.tar
  if [ "$FORCE" = 0 ] && [ "$(image_recipe "$DEBIAN_IMAGE")" = "$recipe" ]; then
    log "$DEBIAN_IMAGE up to date (recipe $recipe)"
    return
  fi
  local t0=$SECONDS
  if [ "$FORCE" = 1 ] || [ ! -s "$tarball" ]; then
    command -v debootstrap >/dev/null || die "debootstrap missing: run scripts/containers/setup.sh first"
    local mirror root include
    mirror=$(debian_mirror)
    root=$(mktemp -d "$CACHE/debian-root.XXXXXX")
    mkdir -p "$CACHE/debs"
    include=$(IFS=,; echo "${DEBIAN_PACKAGES[*]}")
    log "debootstrap $SUITE minbase + $include from $mirror (about a minute)..."
    # debootstrap mounts proc/sys inside the target; make sure they go even if it fails.
    trap 'umount -R "'"$root"'/proc" "'"$root"'/sys" 2>/dev/null || true; rm -rf "'"$root"'"' EXIT
    # Two stages so that the second (dpkg configuring ~130 packages in the chroot) can run with
    # dpkg's force-unsafe-io: no fsync per file, 16 s instead of ~30 s here.
    if ! debootstrap --foreign --variant=minbase --include="$include" --cache-dir="$CACHE/debs" \
      "$SUITE" "$root" "$mirror" >"$CACHE/debootstrap.log" 2>&1; then
      tail -n 30 "$CACHE/debootstrap.log" >&2
      die "debootstrap (first stage) failed (log: $CACHE/debootstrap.log)"
    fi
    log "debootstrap first stage (download + unpack) done after $((SECONDS - t0)) s"
    echo force-unsafe-io >"$root/etc/dpkg/dpkg.cfg.d/ward-unsafe-io"
    if ! chroot "$root" /debootstrap/debootstrap --second-stage >>"$CACHE/debootstrap.log" 2>&1; then
      tail -n 30 "$CACHE/debootstrap.log" >&2
      die "debootstrap (second stage) failed (log: $CACHE/debootstrap.log)"
    fi
    rm -f "$root/etc/dpkg/dpkg.cfg.d/ward-unsafe-io"
    log "debootstrap done after $((SECONDS - t0)) s; preparing rootfs"
    # `nc` = netcat-traditional, which has -e (nc.openbsd stays available as nc.openbsd).
    chroot "$root" update-alternatives --quiet --set nc /bin/nc.traditional
    # Trim what a test never needs (~150 MB): apt lists and .debs, docs, man pages, locales.
    rm -rf "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
      "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/* \
      "$root"/var/log/*.log "$root"/var/log/apt/* "$root"/debootstrap
    : >"$root/etc/resolv.conf"
    echo ward-test-debian >"$root/etc/hostname"
    install -m 0755 "$CACHE/ward-test-payload" "$root$PAYLOAD_PATH"
    tar_rootfs "$root" "$tarball.tmp"
    mv "$tarball.tmp" "$tarball"
    rm -rf "$root"
    trap - EXIT
    # Older recipes' tarballs are dead weight.
    find "$CACHE" -maxdepth 1 -name 'debian-*.tar' ! -name "debian-$recipe.tar" -delete
  else
    log "reusing cached rootfs $tarball"
  fi
  log "importing $DEBIAN_IMAGE ($(du -h "$tarball" | cut -f1))"
  import_image "$tarball" "$DEBIAN_IMAGE" "$recipe" /bin/bash
  log "built $DEBIAN_IMAGE (recipe $recipe) in $((SECONDS - t0)) s"
}

[ "$want_busybox" = 1 ] && build_busybox
[ "$want_debian" = 1 ] && build_debian

# --- facts for the testkit -------------------------------------------------------------------
image_id() { podman image inspect --format '{{.Id}}' "$1" 2>/dev/null || true; }
cat >"$CACHE/images.env.tmp" <<EOF
# Written by scripts/containers/build-images.sh; read by crates/ward-testkit.
WARD_TEST_BUSYBOX_IMAGE=$BUSYBOX_IMAGE
WARD_TEST_BUSYBOX_IMAGE_ID=$(image_id "$BUSYBOX_IMAGE")
WARD_TEST_DEBIAN_IMAGE=$DEBIAN_IMAGE
WARD_TEST_DEBIAN_IMAGE_ID=$(image_id "$DEBIAN_IMAGE")
WARD_TEST_PAYLOAD_PATH=$PAYLOAD_PATH
WARD_TEST_PAYLOAD_SHA256=$PAYLOAD_SHA256
WARD_TEST_PAYLOAD_HOST_COPY=$CACHE/ward-test-payload
WARD_TEST_ADDED_PAYLOAD_SHA256=$ADDED_SHA256
WARD_TEST_ADDED_PAYLOAD_HOST_COPY=$CACHE/ward-test-payload-added
WARD_TEST_INTEL_FEED=$CACHE/test-intel.txt
EOF
mv "$CACHE/images.env.tmp" "$CACHE/images.env"
log "images ready; facts in $CACHE/images.env"
