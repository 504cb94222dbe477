// Quantizes resnet18_fmnist with the full 1,024-image calibration set and a
// few iterations per block, and prints one JSON line with the process's peak
// resident set size and what the run reports about its own memory.
// tests/memory.test.ts runs it in a fresh Node process:
//   node tests/run-node.mjs --main tests/memory.ts ITERATIONS THREADS
import { readFileSync } from "node:fs";
import process from "node:process";
import { init, loadModel, quantize } from "../mod.ts";
import { readNpz } from "../src/data/npy.ts";
import { imagesToInput, readFixture } from "./fixtures.ts";

/** Peak resident set size of this process in bytes: VmHWM where /proc exists, else getrusage's maxrss. */
function peakRss(): number {
  try {
    const hwm = readFileSync("/proc/self/status", "utf8").match(/^VmHWM:\s+(\d+) kB/m);
    if (hwm) return Number(hwm[1]) * 1024;
  } catch {
    // not Linux
  }
  return process.resourceUsage().maxRSS * 1024;
}

const [iterations, threads] = process.argv.slice(-2).map(Number);
await init();
const model = loadModel(readFixture("resnet18_fmnist.onnx"));
const calibration = imagesToInput(readNpz(readFixture("calib.npz")).x);
const rssBeforeBytes = peakRss();
const start = performance.now();
const q = await quantize(model, calibration, {
  weightBits: 4,
  activationBits: 4,
  iterations,
  seed: 1,
  threads,
});
const seconds = (performance.now() - start) / 1000;
console.log(JSON.stringify({
  peakRssBytes: peakRss(),
  rssBeforeBytes,
  seconds,
  calibrationImages: calibration.shape[0],
  floatBytes: q.report.totals.floatBytes,
  ...q.report.memory,
  blocks: q.report.blocks.length,
}));
q.dispose();
model.dispose();
