#!/usr/bin/env bash
# Installs the container binaries to /usr/local/bin and the guest kernel and
# initfs to /usr/local/share/container/ (the library's first lookup after the
# CONTAINER_KERNEL / CONTAINER_INITFS variables).
# Usage: install.sh [PREFIX]   (default /usr/local; run as root)
# Env: CARGO_TARGET_DIR (default target/), KERNEL (default
#   /var/cache/container-kernel/vmlinux-current), INITFS (default build/initfs.cpio.lz4).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
prefix=${1:-/usr/local}
target_dir=${CARGO_TARGET_DIR:-$repo/target}
kernel=${KERNEL:-/var/cache/container-kernel/vmlinux-current}
initfs=${INITFS:-$repo/build/initfs.cpio.lz4}

[ -e "$kernel" ] || { echo "install: $kernel missing (run scripts/build-kernel.sh)" >&2; exit 1; }
[ -e "$initfs" ] || { echo "install: $initfs missing (run scripts/build-initfs.sh)" >&2; exit 1; }
command -v vhost-device-vsock >/dev/null || \
  echo "install: warning: vhost-device-vsock not in PATH (scripts/install-vhost-device-vsock.sh)" >&2

(cd "$repo" && CARGO_TARGET_DIR="$target_dir" cargo build --release \
  -p cctl -p container -p container-apiserver -p container-runtime-linux 2>&1 | tail -1) || true
install -d "$prefix/bin" "$prefix/share/container"
for bin in cctl container container-apiserver container-runtime-linux; do
  if [ -x "$target_dir/release/$bin" ]; then
    install -m 0755 "$target_dir/release/$bin" "$prefix/bin/$bin"
    echo "install: $prefix/bin/$bin"
  else
    echo "install: warning: $bin was not built, skipped" >&2
  fi
done
# The VMM finds vhost-device-vsock on PATH; a daemon started from a shell
# without ~/.cargo/bin on PATH must still find it.
if vsock=$(command -v vhost-device-vsock) && [ "$vsock" != "$prefix/bin/vhost-device-vsock" ]; then
  install -m 0755 "$vsock" "$prefix/bin/vhost-device-vsock"
  echo "install: $prefix/bin/vhost-device-vsock"
fi
command -v virtiofsd >/dev/null || \
  echo "install: warning: virtiofsd not in PATH (cargo install virtiofsd --locked): bind mounts will fail" >&2
if fsd=$(command -v virtiofsd) && [ "$fsd" != "$prefix/bin/virtiofsd" ]; then
  install -m 0755 "$fsd" "$prefix/bin/virtiofsd"
  echo "install: $prefix/bin/virtiofsd"
fi
# Copy through a temp name so a running VM never sees a half-written kernel.
for pair in "$(readlink -f "$kernel"):vmlinux" "$(readlink -f "$initfs"):initfs.cpio.lz4"; do
  src=${pair%%:*}; name=${pair##*:}
  install -m 0644 "$src" "$prefix/share/container/.$name.tmp"
  mv "$prefix/share/container/.$name.tmp" "$prefix/share/container/$name"
  echo "install: $prefix/share/container/$name"
done
# The initfs was a gzip'd cpio under another name before it became LZ4.
rm -f "$prefix/share/container/initfs.cpio.gz"
