#!/usr/bin/env node
// Measures the delta generator on the synthetic 1.4 MB pair (and on any image pair given as two paths):
// generation time, peak RSS of this process, and deflated full image vs deflated patch.
// Run after `npm run build`: node scripts/measure-delta.js [--worker] [base.bin new.bin]
'use strict';
const fs = require('fs');
const path = require('path');
const zlib = require('zlib');

const dist = path.join(__dirname, '..', 'dist', 'lib');
const { buildSyntheticPair } = require(path.join(dist, 'bench', 'images'));
const { makeDeltaTransfer, makeDeltaTransferInWorker, chooseEncoding } = require(path.join(dist, 'delta'));

// --worker: generate in a worker thread (as a gateway would); its CPU time counts in this process's.
const inWorker = process.argv.includes('--worker');

async function measure(name, base, image) {
  const started = process.hrtime.bigint();
  const cpuBefore = process.cpuUsage();
  const delta = inWorker ? await makeDeltaTransferInWorker(base, image) : makeDeltaTransfer(base, image);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const cpu = process.cpuUsage(cpuBefore);
  const deflated = zlib.deflateSync(image, { level: 9 }).length;
  const row = {
    name,
    imageBytes: image.length,
    deflatedFull: deflated,
    patchBytes: delta.patch.length,
    deflatedPatch: delta.transfer.length,
    ratio: Math.round((deflated / delta.transfer.length) * 10) / 10,
    encoding: chooseEncoding({ deflatedSize: deflated, patchSize: delta.transfer.length }),
    // Wall time depends on what else runs on the machine; CPU time (user + system) less so.
    seconds: Math.round(seconds * 1000) / 1000,
    cpuSeconds: Math.round((cpu.user + cpu.system) / 1000) / 1000,
  };
  console.log(JSON.stringify(row));
}

async function main() {
  const args = process.argv.slice(2).filter((a) => a !== '--worker');
  if (args.length === 2) {
    await measure(`${path.basename(args[0])} -> ${path.basename(args[1])}`, fs.readFileSync(args[0]), fs.readFileSync(args[1]));
  } else {
    const pair = buildSyntheticPair();
    await measure(pair.name, pair.base, pair.image);
  }
  // Peak resident set size of this whole process (building the pair included), as the kernel counts it.
  console.log(JSON.stringify({ peakRssMB: Math.round((process.resourceUsage().maxRSS / 1024) * 10) / 10, worker: inWorker }));
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
