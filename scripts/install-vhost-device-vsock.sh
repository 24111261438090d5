#!/usr/bin/env bash
# Installs vhost-device-vsock (the vhost-user vsock backend used where the
# host has no /dev/vhost-vsock) from its crates.io source with the fix in
# patches/vhost-device-vsock-0.3.0-paused-vm.patch: in 0.3.0 (the newest
# release) any host-side socket event while the VM is paused (QMP `stop`
# stops the queues) ends the backend's only worker thread, and after `cont`
# nothing on vsock is processed again. Idempotent: a stamp next to the
# binary records which patch it was built with.
# Usage: install-vhost-device-vsock.sh   (installs to $CARGO_HOME/bin)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
version=0.3.0
# sha256 of the .crate, as the crates.io index lists it ("cksum").
sum=52ce95d81af89ad693d067c650e42df0f217addfbc96cc4820f7c62eb4a28b13
patch=$repo/patches/vhost-device-vsock-$version-paused-vm.patch
bin=${CARGO_HOME:-$HOME/.cargo}/bin
stamp_file=$bin/.vhost-device-vsock.patch
stamp=$(sha256sum "$patch" | cut -c1-16)
if [ -x "$bin/vhost-device-vsock" ] && [ "$(cat "$stamp_file" 2>/dev/null)" = "$stamp" ]; then
  exit 0
fi
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
curl -sfL --retry 3 -o "$work/src.crate" \
  "https://static.crates.io/crates/vhost-device-vsock/vhost-device-vsock-$version.crate"
echo "$sum  $work/src.crate" | sha256sum -c --quiet
tar -xzf "$work/src.crate" -C "$work"
src=$work/vhost-device-vsock-$version
patch -d "$src" -p1 --quiet --forward < "$patch"
cargo install -q --locked --force --path "$src"
echo "$stamp" > "$stamp_file"
echo "install-vhost-device-vsock: $bin/vhost-device-vsock $version with $(basename "$patch")"
