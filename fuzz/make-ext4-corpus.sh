#!/usr/bin/env bash
# Builds the ext4_reader seed corpus from the layer seeds with cctl (the
# images are built, not committed). Run from anywhere; needs cargo.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$here/corpus/ext4_reader
layers=$here/corpus/layer_unpack
mkdir -p "$out"
cctl() { (cd "$here/.." && cargo run -q -p cctl -- "$@"); }
cctl rootfs create --layer "$layers/basic.tar" --size 128K "$out/basic.ext4"
cctl rootfs create --layer "$layers/many.tar" --size 256K "$out/many.ext4"
cctl rootfs create --layer "$layers/basic.tar" --layer "$layers/many.tar" --size 256K "$out/stacked.ext4"
echo "seed corpus in $out"
