#!/usr/bin/env bash
# The lineage on the MNIST digits embedded in the binary: a Gaussian VAE, VQ-VAE-1 (one level,
# codebook loss, gated PixelCNN prior) and VQ-VAE-2 (two levels, PixelSNAIL + conditional prior),
# trained with the same steps, then `vqvae2 compare`: runs/lineage/compare/{compare.md,compare.json,
# samples.png}. Running it again continues that run. Extra arguments go to `vqvae2 pipeline
# --lineage`; the README's table came from `scripts/lineage.sh --vqvae-steps 200 --prior-steps 100`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
VQVAE2_TARGET=vqvae2 "$root/scripts/build.sh"
out="$root/runs/lineage"
resume=()
[ -e "$out/vae/vae.ckpt" ] && resume=(--resume)
"${VQVAE2_BUILD_DIR:-$root/build}/vqvae2" pipeline --lineage --out "$out" "${resume[@]}" "$@"
