#!/usr/bin/env bash
# The colour demonstration: VQ-VAE-2 on 3,786 Noto emoji at 64x64 (scripts/get-data.sh emoji), the
# `small` preset (two levels: 16x16 and 8x8 codes), small priors, then samples, an evaluation of the
# held-out images and the run's report pages. About an hour on 2 CPU cores; on a GPU pass
# `--device cuda`. Everything lands in runs/emoji; running it again continues (or re-samples).
# Extra arguments go to `vqvae2 pipeline` (e.g. --device cuda, --prior-epochs 40).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
VQVAE2_TARGET=vqvae2 "$root/scripts/build.sh"
vqvae2="${VQVAE2_BUILD_DIR:-$root/build}/vqvae2"
data="$root/data/emoji"
out="$root/runs/emoji"
"$root/scripts/get-data.sh" emoji "$data"

resume=()
[ -e "$out/vqvae/vqvae.ckpt" ] && resume=(--resume)
device=()
for arg in "$@"; do [ "${previous:-}" = "--device" ] && device=(--device "$arg"); previous=$arg; done

"$vqvae2" pipeline --data "$data" --preset small --prior-size small --vqvae-epochs 12 --prior-epochs 20 --samples 64 \
  --out "$out" "${resume[@]}" "$@"
"$vqvae2" evaluate --checkpoint "$out/vqvae" --json "$out/evaluation.json" --out-dir "$out/held-out" "${device[@]}"
"$vqvae2" reconstruct --checkpoint "$out/vqvae" --images 32 --out "$out/reconstructions.png" "${device[@]}"
for prior in "$out"/prior-level*; do
  "$vqvae2" evaluate --checkpoint "$prior" --json "$prior/evaluation.json" "${device[@]}"
done
echo "emoji demo: $out/samples.png, $out/reconstructions.png, $out/evaluation.json, $out/*/report.html"
