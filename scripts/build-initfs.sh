#!/usr/bin/env bash
# Builds the guest initfs: an LZ4 (legacy frame) newc cpio whose only program is the
# static agent /sbin/vminitd (PID 1, booted with rdinit=/sbin/vminitd).
# Usage: build-initfs.sh [OUT]   (default build/initfs.cpio.lz4)
# Env: CARGO_TARGET_DIR (default target/), VMINITD_BIN to package a prebuilt binary.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$repo/build/initfs.cpio.lz4}
command -v cpio >/dev/null || { echo "build-initfs: cpio missing (apt-get install cpio)" >&2; exit 1; }
# LZ4, not gzip: the guest kernel unpacks it at every boot, and under TCG
# inflating the 2.3 MB gzip took ~100 ms more guest time than LZ4 (boot bench).
command -v lz4 >/dev/null || { echo "build-initfs: lz4 missing (apt-get install lz4)" >&2; exit 1; }

if [ -z "${VMINITD_BIN:-}" ]; then
  # Static and not position-independent: a static-pie relocates itself at
  # every start, and the agent re-executes itself for each container
  # process; under TCG that self-relocation was most of an exec's time.
  target_dir=${CARGO_TARGET_DIR:-$repo/target}
  (cd "$repo" && RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static" CARGO_TARGET_DIR="$target_dir" \
    cargo build -p vminitd --profile agent --target x86_64-unknown-linux-gnu)
  VMINITD_BIN=$target_dir/x86_64-unknown-linux-gnu/agent/vminitd
fi
if ! file "$VMINITD_BIN" | grep -Eq 'statically linked|static-pie linked'; then
  echo "build-initfs: $VMINITD_BIN is not statically linked" >&2
  exit 1
fi

work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$root"/{sbin,bin,dev,proc,sys,run,tmp,mnt,etc,var}
chmod 1777 "$root/tmp"
install -m 0755 "$VMINITD_BIN" "$root/sbin/vminitd"
ln -s /sbin/vminitd "$root/init"
# The kernel opens /dev/console for PID 1's stdio before devtmpfs is mounted.
mknod -m 600 "$root/dev/console" c 5 1
mknod -m 666 "$root/dev/null" c 1 3

mkdir -p "$(dirname "$out")"
tmp_out=$(mktemp "$(dirname "$out")/.initfs.XXXXXX")
# Sorted names and fixed mtimes keep the archive reproducible.
(cd "$root" && find . -mindepth 1 | LC_ALL=C sort | \
  cpio --quiet -o -H newc -R 0:0 --reproducible | lz4 -l -9 -q) > "$tmp_out"
chmod 0644 "$tmp_out"
mv "$tmp_out" "$out"
echo "build-initfs: wrote $out ($(stat -c %s "$out") bytes)"
