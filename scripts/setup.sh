#!/usr/bin/env bash
# Installs everything vqvae2 needs to build, test and run on Debian bookworm. Idempotent: packages
# that are already installed are not fetched again, so this is cheap to run before every build.
set -euo pipefail

packages=(
  cmake g++ make pkg-config
  libtorch-dev          # LibTorch 1.13.1, CPU (brings oneDNN, Gloo, OpenMP)
  libgloo-dev           # headers c10d's ProcessGroupGloo.hpp includes: data-parallel training (training/distributed.h)
  libopenblas0-pthread  # optimised BLAS; without it LibTorch falls back to reference BLAS (~15x slower)
  libjemalloc-dev       # the programs' malloc: keeps freed pages, huge pages (core/memory.h)
  libgtest-dev          # GoogleTest
  libcli11-dev          # command-line parsing
  nlohmann-json3-dev    # configs, checkpoint headers, metrics
  libpng-dev            # PNG decoding (libpng)
  libjpeg62-turbo-dev   # JPEG decoding (libjpeg-turbo)
  libstb-dev            # BMP/GIF/TGA decoding, resizing, PNG encoding
  libfmt-dev            # formatting
  zlib1g-dev            # CRC-32 for checkpoint and code-store integrity
  libpugixml-dev        # tests only: report_test parses the SVG and HTML reports with a real XML parser
  libsndfile1-dev       # audio files: WAV, FLAC, OGG/Vorbis/Opus, MP3 in and WAV out
  espeak-ng             # speech synthesis: the audio tests' data and scripts/make-speech-corpus.sh
  sox                   # scripts/make-speech-corpus.sh: resamples espeak-ng's 22,050 Hz output to 16 kHz
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "setup: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
  fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# LibTorch links libblas.so.3; make sure the alternative points at OpenBLAS (pthread flavour).
blas=/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3
if [ -e "$blas" ] && command -v update-alternatives >/dev/null; then
  current=$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 || true)
  if [ "$current" != "$(readlink -f "$blas")" ]; then
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo update-alternatives --set libblas.so.3-x86_64-linux-gnu "$blas"
  fi
fi
