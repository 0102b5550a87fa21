#!/usr/bin/env bash
# Times vqvae2 and the reference PyTorch implementation (rosinality/vq-vae-2-pytorch, commit ef5f67c)
# on the same work, one after the other, in one run on one machine: the only kind of speed
# comparison README.md quotes.
#
#   scripts/bench-side-by-side.sh REF_DIR [THREADS] [ITERATIONS] [PRECISIONS]
#
# PRECISIONS: comma-separated, fp32 (default) and/or bf16; each runs on both sides (bf16: the forward
# passes under autocast; worth it on CPUs with AVX-512-BF16 or AMX, see README's "Mixed precision").
#
# REF_DIR holds the reference's vqvae.py, pixelsnail.py and distributed/ (vqvae.py imports it):
#   git clone https://github.com/rosinality/vq-vae-2-pytorch && cd vq-vae-2-pytorch &&
#   git checkout ef5f67c && git archive HEAD vqvae.py pixelsnail.py distributed | tar -x -C REF_DIR
# The reference runs under Debian's python3-torch (installed here if missing), with the same number of
# LibTorch threads and one OpenBLAS thread, as vqvae2 does (bench/pytorch_reference_bench.py).
# Both sides time a VQ-VAE training step (64x64 batch 16, 256x256 batch 4) and a top (32x32, batch 8)
# and bottom (64x64, batch 4) prior training step at the reference widths; medians of ITERATIONS.
# Both run the same OpenBLAS kernels: vqvae2 restarts itself with better ones when OpenBLAS picks
# older kernels than the CPU runs (src/core/device.cpp), and the reference is given the same set
# through OPENBLAS_CORETYPE, so the columns compare implementations, not kernel choices.
# vqvae2 runs on jemalloc (core/memory.h); the reference on Python's allocator (glibc malloc), as its
# users run it. When Debian's libjemalloc2 is installed, the reference's fp32 steps are timed once more
# under LD_PRELOAD with vqvae2's jemalloc settings, so that the allocator's share of the difference
# shows (REF_JEMALLOC=0 skips that run); that run comes right after vqvae2's own fp32 steps, so that
# the machine's drift (README.md, "Speed") moves those two columns least apart.
# Run it on a quiet machine: anything else running changes both columns.
#
# On a GPU: DEVICE=cuda, with a vqvae2 built against the CUDA LibTorch inside the machine's PyTorch and
# that PyTorch running the reference (its python3 in PYTHON):
#   cmake -S . -B build-cuda -DCMAKE_PREFIX_PATH="$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')" \
#     -DCMAKE_BUILD_TYPE=Release && cmake --build build-cuda -j"$(nproc)" --target vqvae2
#   DEVICE=cuda PYTHON=python3 VQVAE2_BUILD_DIR=build-cuda scripts/bench-side-by-side.sh REF_DIR 1 10 fp32,bf16
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
ref=${1:?usage: scripts/bench-side-by-side.sh REF_DIR [THREADS] [ITERATIONS] [PRECISIONS]}
threads=${2:-$(nproc)}
iterations=${3:-3}
precisions=${4:-fp32}
device=${DEVICE:-cpu}
python=${PYTHON:-/usr/bin/python3}
[ -f "$ref/vqvae.py" ] && [ -f "$ref/pixelsnail.py" ] && [ -d "$ref/distributed" ] || { echo "bench: $ref lacks vqvae.py, pixelsnail.py or distributed/" >&2; exit 1; }
if [ "$python" = /usr/bin/python3 ] && ! /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends python3-torch >/dev/null
fi
vqvae2="${VQVAE2_BUILD_DIR:-$root/build}/vqvae2"
[ -x "$vqvae2" ] || VQVAE2_TARGET=vqvae2 "$root/scripts/build.sh"

echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
[ "$device" = cpu ] || echo "# device $device: $("$python" -c 'import torch; print(torch.cuda.get_device_name(0), "- PyTorch", torch.__version__)')"
echo "# bf16/AMX: $(grep -o 'amx[a-z_0-9]*\|avx512_bf16' /proc/cpuinfo | sort -u | tr '\n' ' ')"
kernels=$(OPENBLAS_VERBOSE=2 "$vqvae2" --version 2>&1 | sed -n 's/^Core: //p' | tail -1)
echo "# OpenBLAS kernels, both sides: ${kernels:-none (the BLAS is not OpenBLAS)}"
same_kernels=()
[ -n "${OPENBLAS_CORETYPE:-$kernels}" ] && same_kernels=("OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-$kernels}")
echo "# allocators: vqvae2 as its bench headers say; the reference glibc malloc (Python's default)"
jemalloc=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2
jemalloc_conf=thp:always,dirty_decay_ms:-1,muzzy_decay_ms:-1  # vqvae2's own: src/core/malloc_conf.cpp
reference() {  # reference [ENV...] -- PRECISION
  local settings=()
  while [ "$1" != -- ]; do settings+=("$1"); shift; done
  env OPENBLAS_NUM_THREADS=1 "${same_kernels[@]}" "${settings[@]}" "$python" "$root/bench/pytorch_reference_bench.py" \
    "$ref" --threads "$threads" --iters "$iterations" --what vqvae,prior --precision "$2" --device "$device"
}
for precision in ${precisions//,/ }; do
  echo "## vqvae2 --threads $threads --blas-threads 1 --iterations $iterations --precision $precision --device $device"
  for what in vqvae prior; do
    "$vqvae2" bench "$what" --threads "$threads" --blas-threads 1 --iterations "$iterations" --precision "$precision" \
      --device "$device" --quiet
  done
  # Right after vqvae2's own steps: the two columns on the same allocator drift least apart.
  if [ "$device" = cpu ] && [ "$precision" = fp32 ] && [ "${REF_JEMALLOC:-1}" != 0 ] && [ -e "$jemalloc" ]; then
    echo "## reference under jemalloc: LD_PRELOAD=$jemalloc MALLOC_CONF=$jemalloc_conf (fp32)"
    reference LD_PRELOAD="$jemalloc" MALLOC_CONF="$jemalloc_conf" -- fp32
  fi
  echo "## reference: bench/pytorch_reference_bench.py --threads $threads --iters $iterations --precision $precision --device $device (OPENBLAS_NUM_THREADS=1)"
  reference -- "$precision"
done
