#!/usr/bin/env bash
# The main job: start the container system, build a busybox image locally
# (no internet), load it, and run a container from it in its own VM.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
export PATH="/usr/local/bin:$PATH"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT

container system start
"$top/scripts/build-busybox-image.sh" "$work/oci" busybox:latest >/dev/null
tar -C "$work/oci" -cf "$work/busybox.tar" .
container image load -i "$work/busybox.tar"
container image list
container run --rm busybox:latest sh -c 'echo "hello from $(uname -r) in a VM: $(cat /proc/cpuinfo | grep -c ^processor) vCPU"'
