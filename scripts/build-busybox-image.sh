#!/usr/bin/env bash
# Builds a busybox OCI image layout from Debian's busybox-static, offline and
# deterministically. Usage: build-busybox-image.sh OUT_DIR [TAG] [ARCH]
#   ARCH: amd64 (default, /bin/busybox of the host) or arm64 (needs
#   BUSYBOX_BIN pointing at an aarch64 busybox, e.g. from busybox-static:arm64)
# Result: OUT_DIR/{oci-layout,index.json,blobs/sha256/*}, one layer.
set -euo pipefail
out=${1:?usage: build-busybox-image.sh OUT_DIR [TAG] [ARCH]}
tag=${2:-latest}
arch=${3:-amd64}
bb=${BUSYBOX_BIN:-/bin/busybox}
[ -x "$bb" ] || { echo "build-busybox-image: $bb missing (apt-get install busybox-static)" >&2; exit 1; }
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
root=$work/rootfs
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,root,tmp,proc,sys,dev,var/tmp,home}
chmod 1777 "$root/tmp" "$root/var/tmp"
chmod 700 "$root/root"
cp "$bb" "$root/bin/busybox"
# One symlink per applet, at the path busybox reports for it.
"$bb" --list-full 2>/dev/null | while read -r p; do
  [ "$p" = bin/busybox ] && continue
  mkdir -p "$root/$(dirname "$p")"
  ln -sf /bin/busybox "$root/$p"
done
[ -e "$root/bin/sh" ] || ln -s busybox "$root/bin/sh"
printf 'root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\nnobody:x:65534:65534:nobody:/home:/bin/false\n' > "$root/etc/passwd"
printf 'root:x:0:\ndaemon:x:1:\nnogroup:x:65534:\n' > "$root/etc/group"
mkdir -p "$out/blobs/sha256"
tar --sort=name --mtime='2024-01-01 00:00:00Z' --owner=0 --group=0 --numeric-owner \
    -C "$root" -cf "$work/layer.tar" .
diffid=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
gzip -n -9 -c "$work/layer.tar" > "$work/layer.tar.gz"
ldig=$(sha256sum "$work/layer.tar.gz" | cut -d' ' -f1)
lsize=$(stat -c %s "$work/layer.tar.gz")
mv "$work/layer.tar.gz" "$out/blobs/sha256/$ldig"
printf '{"architecture":"%s","os":"linux","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["sh"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"created":"2024-01-01T00:00:00Z","history":[{"created":"2024-01-01T00:00:00Z","created_by":"build-busybox-image.sh"}]}' "$arch" "$diffid" > "$work/config.json"
cdig=$(sha256sum "$work/config.json" | cut -d' ' -f1); csize=$(stat -c %s "$work/config.json")
mv "$work/config.json" "$out/blobs/sha256/$cdig"
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' "$cdig" "$csize" "$ldig" "$lsize" > "$work/manifest.json"
mdig=$(sha256sum "$work/manifest.json" | cut -d' ' -f1); msize=$(stat -c %s "$work/manifest.json")
mv "$work/manifest.json" "$out/blobs/sha256/$mdig"
printf '{"imageLayoutVersion":"1.0.0"}' > "$out/oci-layout"
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"%s"},"platform":{"architecture":"%s","os":"linux"}}]}' "$mdig" "$msize" "$tag" "$arch" > "$out/index.json"
echo "sha256:$mdig"
