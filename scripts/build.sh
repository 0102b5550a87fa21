#!/usr/bin/env bash
# Configures and builds vqvae2 (Release) into ./build (or $VQVAE2_BUILD_DIR). Extra arguments go to
# the CMake configure step; VQVAE2_TARGET builds one target (default: everything, tests included).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${VQVAE2_BUILD_DIR:-$root/build}
jobs=${VQVAE2_JOBS:-$(nproc)}
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build "$build" -j "$jobs" ${VQVAE2_TARGET:+--target "$VQVAE2_TARGET"}
