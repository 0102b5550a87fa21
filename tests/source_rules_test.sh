#!/usr/bin/env bash
# Rules about our own sources that no compiler or unit test would catch.
#
# ATen's at::parallel_for and at::parallel_reduce are header-only templates: their threaded branch is
# compiled only under _OPENMP, and our code is built without OpenMP, so in our files they run the
# whole range on the calling thread, silently (the dropout mask did, unnoticed until profiled).
# Loops meant for LibTorch's intra-op threads go through TensorIterator::for_each, which is compiled
# into LibTorch (src/models/activation.cpp, src/models/dropout.cpp).
# Usage: tests/source_rules_test.sh path/to/source/root
set -euo pipefail

root=${1:?usage: source_rules_test.sh path/to/source/root}
if hits=$(grep -rnE 'parallel_(for|reduce)[[:space:]]*[<(]' "$root"/src "$root"/include "$root"/app "$root"/bench \
  "$root"/examples); then
  echo "FAIL: at::parallel_for / at::parallel_reduce run serially in our non-OpenMP build; use TensorIterator::for_each:" >&2
  echo "$hits" >&2
  exit 1
fi
echo "ok: no header-only ATen parallel loops in src, include, app, bench or examples"
