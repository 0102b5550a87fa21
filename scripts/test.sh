#!/usr/bin/env bash
# The test command: sets up a fresh Debian bookworm machine, builds, and runs the whole test suite.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
"$root/scripts/build.sh"
cd "${VQVAE2_BUILD_DIR:-$root/build}"
ctest --output-on-failure -j "${VQVAE2_TEST_JOBS:-1}" "$@"
