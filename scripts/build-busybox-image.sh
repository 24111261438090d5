#!/usr/bin/env bash
# Builds a busybox OCI image layout from Debian's busybox-static, offline and
# deterministically. Usage: build-busybox-image.sh OUT_DIR [TAG] [ARCH]
#   ARCH: amd64 (default): one manifest, /bin/busybox of the host
#         (BUSYBOX_BIN overrides);
#         arm64: one manifest, the aarch64 busybox of busybox-static:arm64
#         (BUSYBOX_ARM64_BIN, default: what scripts/fetch-busybox-arm64.sh
#         fetched);
#         multi: an image index with both, linux/amd64 and linux/arm64/v8.
# Result: OUT_DIR/{oci-layout,index.json,blobs/sha256/*}, one layer per
# manifest. Prints the digest index.json names (the manifest, or the index).
set -euo pipefail
out=${1:?usage: build-busybox-image.sh OUT_DIR [TAG] [amd64|arm64|multi]}
tag=${2:-latest}
arch=${3:-amd64}
host_bb=${BUSYBOX_BIN:-/bin/busybox}
arm64_bb=${BUSYBOX_ARM64_BIN:-/var/cache/container-busybox/arm64/busybox}
[ -x "$host_bb" ] || { echo "build-busybox-image: $host_bb missing (apt-get install busybox-static)" >&2; exit 1; }
case $arch in
  amd64) ;;
  arm64|multi)
    [ -x "$arm64_bb" ] || { echo "build-busybox-image: $arm64_bb missing (run scripts/fetch-busybox-arm64.sh; scripts/setup.sh does)" >&2; exit 1; } ;;
  *) echo "build-busybox-image: unknown ARCH '$arch' (amd64, arm64 or multi)" >&2; exit 1 ;;
esac
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
mkdir -p "$out/blobs/sha256"

# Moves $1 into the blob store; sets blob_digest and blob_size.
put_blob() {
  blob_digest=$(sha256sum "$1" | cut -d' ' -f1)
  blob_size=$(stat -c %s "$1")
  mv "$1" "$out/blobs/sha256/$blob_digest"
}

# Builds the image of one architecture ($1) around busybox binary $2;
# the manifest's digest and size are left in blob_digest and blob_size.
build_manifest() {
  local a=$1 bb=$2 root=$work/rootfs-$1
  mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,root,tmp,proc,sys,dev,var/tmp,home}
  chmod 1777 "$root/tmp" "$root/var/tmp"
  chmod 700 "$root/root"
  cp "$bb" "$root/bin/busybox"
  # One symlink per applet, at the path busybox reports for it. The host's
  # busybox lists them (busybox-static is the same version on every
  # architecture, and a foreign binary may not run here).
  "$host_bb" --list-full 2>/dev/null | while read -r p; do
    [ "$p" = bin/busybox ] && continue
    mkdir -p "$root/$(dirname "$p")"
    ln -sf /bin/busybox "$root/$p"
  done
  [ -e "$root/bin/sh" ] || ln -s busybox "$root/bin/sh"
  printf 'root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\nnobody:x:65534:65534:nobody:/home:/bin/false\n' > "$root/etc/passwd"
  printf 'root:x:0:\ndaemon:x:1:\nnogroup:x:65534:\n' > "$root/etc/group"
  tar --sort=name --mtime='2024-01-01 00:00:00Z' --owner=0 --group=0 --numeric-owner \
      -C "$root" -cf "$work/layer.tar" .
  local diffid ldig lsize cdig csize
  diffid=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
  gzip -n -9 -c "$work/layer.tar" > "$work/layer.tar.gz"
  put_blob "$work/layer.tar.gz"; ldig=$blob_digest lsize=$blob_size
  printf '{"architecture":"%s","os":"linux","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["sh"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"created":"2024-01-01T00:00:00Z","history":[{"created":"2024-01-01T00:00:00Z","created_by":"build-busybox-image.sh"}]}' "$a" "$diffid" > "$work/config.json"
  put_blob "$work/config.json"; cdig=$blob_digest csize=$blob_size
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' "$cdig" "$csize" "$ldig" "$lsize" > "$work/manifest.json"
  put_blob "$work/manifest.json"
}

printf '{"imageLayoutVersion":"1.0.0"}' > "$out/oci-layout"
ref='"annotations":{"org.opencontainers.image.ref.name":"'"$tag"'"}'
case $arch in
  amd64|arm64)
    bb=$host_bb; [ "$arch" = arm64 ] && bb=$arm64_bb
    build_manifest "$arch" "$bb"; mdig=$blob_digest msize=$blob_size
    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,%s,"platform":{"architecture":"%s","os":"linux"}}]}' "$mdig" "$msize" "$ref" "$arch" > "$out/index.json"
    echo "sha256:$mdig" ;;
  multi)
    build_manifest amd64 "$host_bb"; adig=$blob_digest asize=$blob_size
    build_manifest arm64 "$arm64_bb"; rdig=$blob_digest rsize=$blob_size
    m='{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":%s}'
    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":['"$m,$m"']}' \
      "$adig" "$asize" '{"architecture":"amd64","os":"linux"}' \
      "$rdig" "$rsize" '{"architecture":"arm64","os":"linux","variant":"v8"}' > "$work/index.json"
    put_blob "$work/index.json"; idig=$blob_digest isize=$blob_size
    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"sha256:%s","size":%s,%s}]}' "$idig" "$isize" "$ref" > "$out/index.json"
    echo "sha256:$idig" ;;
esac
