#!/usr/bin/env bash
# Builds the guest kernel from Debian's linux-source-6.1 and caches it keyed
# by the hash of the config fragment and this script.
# Output: $CONTAINER_KERNEL_CACHE/<hash>/vmlinux (PVH ELF) and a stable
# symlink $CONTAINER_KERNEL_CACHE/vmlinux-current. Prints the vmlinux path.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
frag="$here/kernel/config-x86_64.fragment"
cache=${CONTAINER_KERNEL_CACHE:-/var/cache/container-kernel}
src_tar=${LINUX_SOURCE_TAR:-/usr/src/linux-source-6.1.tar.xz}
key=$(cat "$frag" "$0" | sha256sum | cut -c1-16)
out="$cache/$key"
if [ -f "$out/vmlinux" ]; then
  ln -sfn "$out/vmlinux" "$cache/vmlinux-current"
  echo "$out/vmlinux"; exit 0
fi
[ -f "$src_tar" ] || { echo "build-kernel: $src_tar missing (apt-get install linux-source-6.1)" >&2; exit 1; }
mkdir -p "$cache"
work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "build-kernel: extracting $src_tar" >&2
tar -C "$work" -xf "$src_tar"
cd "$work"/linux-source-6.1
make -s tinyconfig >&2
./scripts/kconfig/merge_config.sh -m .config "$frag" >&2
make -s olddefconfig >&2
# Every option of the fragment must have stuck: a silently dropped option
# is a guest that cannot boot or mount.
missing=0
while IFS= read -r line; do
  case "$line" in ''|'#'*) continue;; esac
  opt=${line%%=*}; val=${line#*=}
  if [ "$val" = n ]; then
    grep -q "^$opt=" .config && { echo "build-kernel: $opt should be unset" >&2; missing=1; }
  else
    grep -qx "$opt=$val" .config || { echo "build-kernel: $opt=$val did not stick" >&2; missing=1; }
  fi
done < "$frag"
[ $missing = 0 ] || { echo "build-kernel: config check failed" >&2; exit 1; }
echo "build-kernel: building (several minutes)" >&2
nice make -s -j"$(nproc)" vmlinux bzImage >&2
mkdir -p "$out.tmp"
cp vmlinux "$out.tmp/vmlinux"
strip --strip-debug "$out.tmp/vmlinux" 2>/dev/null || true
cp arch/x86/boot/bzImage "$out.tmp/bzImage"
cp .config "$out.tmp/config"
sync
rm -rf "$out"; mv "$out.tmp" "$out"
ln -sfn "$out/vmlinux" "$cache/vmlinux-current"
echo "$out/vmlinux"
