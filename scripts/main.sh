#!/usr/bin/env bash
# The main job: sets up a fresh Debian bookworm machine, builds, and runs the whole VQ-VAE-2 pipeline
# on the MNIST digits embedded in the binary (train the VQ-VAE, extract codes, train the PixelSNAIL
# top prior and the conditional bottom prior, sample). Everything lands in runs/main; running it
# again continues (or re-samples from) that run. Extra arguments go to `vqvae2 pipeline`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
VQVAE2_TARGET=vqvae2 "$root/scripts/build.sh"
out="$root/runs/main"
resume=()
[ -e "$out/vqvae/vqvae.ckpt" ] && resume=(--resume)
"${VQVAE2_BUILD_DIR:-$root/build}/vqvae2" pipeline --out "$out" "${resume[@]}" "$@"
