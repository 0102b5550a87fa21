#!/usr/bin/env bash
# Synthesises a spoken-word corpus for the audio VQ-VAE and its WaveNet priors:
#   scripts/make-speech-corpus.sh [output folder, default ./speech-corpus]
#
# What: 30 words — the digits "zero" … "nine" and twenty short command words in the style of the
# Speech Commands data set — spoken by 12 espeak-ng voices (English with the variants m1 … m7 and
# f1 … f5) at 3 speeds (140, 170, 200 words a minute) and 3 pitches (35, 50, 65 of espeak's 0–99):
# 30 × 12 × 3 × 3 = 3,240 clips, each a 16 kHz mono 16-bit WAV of about 0.5–1 s, named
# <word>_<voice>_s<speed>_p<pitch>.wav (voice with '+' written '-'), about 80 MB in all.
#
# Deterministic: the lists are fixed and nothing is random. espeak-ng's output depends only on the
# text, voice, speed and pitch, and sox resamples its 22,050 Hz output to 16,000 Hz with dither off,
# so the same package versions give the same bytes every time. Files already present are kept,
# so an interrupted run can be restarted.
#
# Needs espeak-ng and sox; installs them with apt when missing (root or sudo).
set -euo pipefail

out=${1:-speech-corpus}

missing=()
command -v espeak-ng >/dev/null || missing+=(espeak-ng)
command -v sox >/dev/null || missing+=(sox)
if ((${#missing[@]})); then
  echo "make-speech-corpus: installing ${missing[*]}"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "make-speech-corpus: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
  fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

words=(zero one two three four five six seven eight nine
       yes no up down left right on off stop go
       hello house bird cat dog tree happy bed learn follow)
voices=(en+m1 en+m2 en+m3 en+m4 en+m5 en+m6 en+m7 en+f1 en+f2 en+f3 en+f4 en+f5)
speeds=(140 170 200)
pitches=(35 50 65)

mkdir -p "$out"
out=$(cd "$out" && pwd)

# One clip: espeak-ng writes 22,050 Hz to a temporary file, sox converts it (no dither: -D).
speak() {
  local word=$1 voice=$2 speed=$3 pitch=$4
  local file="$out/${word}_${voice/+/-}_s${speed}_p${pitch}.wav"
  [ -s "$file" ] && return 0
  local raw="$file.22k.tmp"
  espeak-ng -v "$voice" -s "$speed" -p "$pitch" -w "$raw" "$word"
  sox -D "$raw" -r 16000 -c 1 -b 16 "$file.tmp.wav"
  rm -f "$raw"
  mv "$file.tmp.wav" "$file"
}
export -f speak
export out

for word in "${words[@]}"; do
  for voice in "${voices[@]}"; do
    for speed in "${speeds[@]}"; do
      for pitch in "${pitches[@]}"; do
        echo "$word $voice $speed $pitch"
      done
    done
  done
done | xargs -P "$(nproc)" -n 4 bash -c 'speak "$@"' _

count=$(find "$out" -maxdepth 1 -name '*.wav' | wc -l)
echo "make-speech-corpus: $count clips (16 kHz mono WAV) in $out"
