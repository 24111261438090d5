#!/usr/bin/env bash
# Runs every check CI runs: formatting, clippy, then the whole test suite
# (unit tests and end-to-end tests with real QEMU VMs and a real registry).
# Prerequisites come from scripts/setup.sh (run it once as root).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
export PATH="$HOME/.cargo/bin:$PATH"
step() { printf '\n== %s (%s)\n' "$*" "$(date +%T)" >&2; }

# No incremental caches: CI builds once from a clean tree and they only take disk.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}

step "prerequisites"
./scripts/build-kernel.sh >/dev/null
./scripts/build-initfs.sh >/dev/null
export CONTAINER_KERNEL=${CONTAINER_KERNEL:-/var/cache/container-kernel/vmlinux-current}
export CONTAINER_INITFS=${CONTAINER_INITFS:-$top/build/initfs.cpio.lz4}

step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
step "cargo test"
# Two test threads: every VM test boots a TCG guest and the machine has 2 cores.
cargo test --workspace -- --test-threads=2
step "all tests passed"
