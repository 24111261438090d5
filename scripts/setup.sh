#!/usr/bin/env bash
# Installs everything the project needs on a fresh Debian 12 machine (run as
# root): apt packages, tools from crates.io, the guest kernel (cached), the
# initfs and the release binaries. Idempotent; a second run is quick.
# --deps-only: stop after the packages, tools and kernel (what tests need).
set -euo pipefail
deps_only=0
[ "${1:-}" = --deps-only ] && deps_only=1
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
log() { printf 'setup: %s\n' "$*" >&2; }

pkgs=(qemu-system-x86 qemu-utils/bookworm linux-source-6.1 busybox-static
      docker-registry skopeo umoci e2fsprogs libseccomp-dev libcap-ng-dev
      flex bison bc libelf-dev libssl-dev lz4 cpio xz-utils nftables iproute2
      pkg-config apache2-utils curl file build-essential patch
      containerd runc qemu-user-static)
# Debian's cloud kernel: the library's fallback guest kernel when none of our
# own is built (vminitd loads its modules), and what tests/cloud_kernel.rs
# boots. On a host with a boot loader, installing a kernel package would add
# a boot entry (maybe the default): there it is left out unless asked for.
if [ ! -d /boot/grub ] || [ "${CONTAINER_CLOUD_KERNEL:-}" = 1 ]; then
  pkgs+=(linux-image-cloud-amd64)
else
  log "not installing linux-image-cloud-amd64 on a host with /boot/grub (CONTAINER_CLOUD_KERNEL=1 to force)"
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "${p%%/*}" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# Installing qemu-system-x86 removes a backported qemu-utils (and qemu-img
# with it): whenever either is missing, ask for both in one transaction.
if ! command -v qemu-img >/dev/null || ! command -v qemu-system-x86_64 >/dev/null; then
  missing+=(qemu-system-x86 qemu-utils/bookworm)
fi
if [ ${#missing[@]} -gt 0 ]; then
  log "apt-get install ${missing[*]}"
  apt-get update -qq
  # qemu-system-x86 would otherwise replace the backported qemu-utils by a
  # downgrade it cannot resolve: install both in one transaction.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --allow-downgrades "${missing[@]}" >/dev/null
fi

for tool in qemu-img qemu-system-x86_64 skopeo docker-registry mkfs.ext4 e2fsck nft containerd ctr; do
  command -v "$tool" >/dev/null || { log "$tool is still missing after apt-get"; exit 1; }
done

export PATH="$HOME/.cargo/bin:$PATH"
# vhost-device-vsock, patched (see the script); rebuilt when the patch changes.
log "vhost-device-vsock"
./scripts/install-vhost-device-vsock.sh
# virtio-fs daemon for bind mounts (-v /host/dir:/path); builds against
# libseccomp-dev and libcap-ng-dev.
if ! command -v virtiofsd >/dev/null; then
  log "cargo install virtiofsd"
  cargo install -q --locked virtiofsd
fi

# busybox-static:arm64, the binary of the arm64 test image (dpkg learns the
# arm64 architecture for it; apt downloads the package, nothing is installed).
log "arm64 busybox (test image)"
./scripts/fetch-busybox-arm64.sh >/dev/null

log "guest kernel"
./scripts/build-kernel.sh >/dev/null
if [ $deps_only = 1 ]; then log "done (deps only)"; exit 0; fi
log "initfs"
./scripts/build-initfs.sh >/dev/null
log "release binaries (install.sh)"
./scripts/install.sh >/dev/null
log "done"
