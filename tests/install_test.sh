#!/usr/bin/env bash
# The library as a dependency: install the build into a fresh prefix, build examples/ against the
# installed package (CMake's find_package and pkg-config), and run both programs.
#   install_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1
source=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
test -f "$tmp/prefix/include/vqvae2/stages/trained.h"
test -x "$tmp/prefix/bin/vqvae2"

# find_package(vqvae2)
cmake -S "$source/examples" -B "$tmp/examples" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/examples" -j "${VQVAE2_JOBS:-2}" >/dev/null
"$tmp/examples/train_and_reconstruct" "$tmp/run"
test -f "$tmp/run/reconstructions.png"

# A trained hierarchy from the installed program, then sampled by the example.
"$tmp/prefix/bin/vqvae2" pipeline --out "$tmp/pipeline" --limit 300 --vqvae-steps 10 --prior-steps 3 --samples 2 --quiet >/dev/null
"$tmp/examples/sample_from_checkpoints" "$tmp/pipeline/vqvae" "$tmp/pipeline/prior-level0" "$tmp/pipeline/prior-level1" \
  "$tmp/samples.png"
test -f "$tmp/samples.png"

# pkg-config: the same program built from the .pc alone.
PKG_CONFIG_PATH=$(find "$tmp/prefix" -name vqvae2.pc -printf '%h')
export PKG_CONFIG_PATH
# shellcheck disable=SC2046
g++ -O1 $(pkg-config --cflags vqvae2) "$source/examples/sample_from_checkpoints.cpp" -o "$tmp/sample_pc" \
  $(pkg-config --libs vqvae2)
"$tmp/sample_pc" "$tmp/pipeline/vqvae" "$tmp/pipeline/prior-level1" "$tmp/pipeline/prior-level0" "$tmp/samples-pc.png"
cmp "$tmp/samples.png" "$tmp/samples-pc.png"
echo "install test: examples built against the installed package (CMake and pkg-config) and ran"
