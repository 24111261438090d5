#!/usr/bin/env bash
# Fetches Debian's busybox-static for arm64 (the binary of the arm64 test
# image, scripts/build-busybox-image.sh ... multi) and prints the path of its
# busybox. Needs root the first time: it adds arm64 to dpkg's architectures
# and updates apt's lists. Cached in /var/cache/container-busybox/arm64/
# (BUSYBOX_ARM64_CACHE overrides); a second run only prints the path.
set -euo pipefail
cache=${BUSYBOX_ARM64_CACHE:-/var/cache/container-busybox/arm64}
out=$cache/busybox
if [ -x "$out" ]; then
  echo "$out"
  exit 0
fi
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  dpkg --add-architecture arm64
  apt-get update -qq
elif ! apt-cache show busybox-static:arm64 >/dev/null 2>&1; then
  apt-get update -qq
fi
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
# apt's _apt user cannot write into a root-only temp dir: download as root.
(cd "$work" && apt-get download -qq -o APT::Sandbox::User=root busybox-static:arm64)
dpkg-deb -x "$work"/busybox-static_*_arm64.deb "$work/x"
mkdir -p "$cache"
install -m 0755 "$work/x/bin/busybox" "$out.tmp"
mv "$out.tmp" "$out"
echo "$out"
