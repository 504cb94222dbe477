// Peak memory of quantize() on resnet18_fmnist with the full 1,024-image
// calibration set (5 iterations per block: allocations do not grow with the iteration count,
// so a short run peaks as a long one does), measured in a fresh Node process (tests/memory.ts) as
// its peak resident set size (VmHWM).
//
// Measured on x86-64 Linux, Node 20, on one thread: peaks of 254–307 MiB, made of
//   ~60 MiB  Node itself and the loaded code
//   ~17 MiB  the model (2.8 MB of float weights, graph, engine plans) and the calibration input
//    92 MiB  activation caches at their largest (float16, outside the wasm heap): block inputs (float
//            and quantized), float targets and the quantized outputs at a block boundary, 98 KiB per
//            image of the 960 that train (64 are held back for the fidelity check)
//    44 MiB  the wasm heap: the engine's arenas for a forward or backward pass, the block's latent
//            weights and Adam moments; wasm memory never shrinks, so this is its peak
//   the rest transient JS garbage, whose amount at the peak varies with GC timing (the spread above).
// On two threads, 402–411 MiB: each worker adds its own Node isolate and wasm heap (its engines and a
// copy of the graph it runs), about 60 MiB each, and the calling thread's heap shrinks to 22 MiB.
// The bounds leave a quarter on top of the highest peak seen, for other Node versions and GC timing. The
// caches grow linearly with the number of calibration images, the rest does not.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const inDeno = typeof (globalThis as { Deno?: { version?: unknown } }).Deno?.version === "object";

const MiB = 1 << 20;
/** Peak RSS bounds by threads. */
export const PEAK_RSS_BOUND: Record<number, number> = { 1: 384 * MiB, 2: 512 * MiB };

for (const [threads, bound] of Object.entries(PEAK_RSS_BOUND)) {
  Deno.test({
    name: `memory: quantize resnet18_fmnist with 1,024 calibration images on ${threads} thread${
      threads === "1" ? "" : "s"
    } in Node peaks under ${bound / MiB} MiB RSS`,
    // The child is Node in both runs; the Deno run measures it, the Node run would repeat the same measurement.
    ignore: !inDeno,
    fn() {
      const root = fileURLToPath(new URL("..", import.meta.url));
      const child = spawnSync("node", ["tests/run-node.mjs", "--main", "tests/memory.ts", "5", threads], {
        cwd: root,
        encoding: "utf8",
        timeout: 240_000,
      });
      assert.equal(
        child.status,
        0,
        `the measurement failed (${child.status}, ${child.signal}): ${child.stderr}`,
      );
      const m = JSON.parse(child.stdout.trim().split("\n").at(-1)!);
      const mib = (bytes: number) => `${(bytes / MiB).toFixed(0)} MiB`;
      console.log(
        `peak RSS ${mib(m.peakRssBytes)} (before quantize ${mib(m.rssBeforeBytes)}, caches ${
          mib(m.peakCacheBytes)
        }, wasm heap ${mib(m.wasmHeapBytes)}, ${m.seconds.toFixed(0)} s)`,
      );
      assert.equal(m.calibrationImages, 1024);
      assert.equal(m.blocks, 10, "resnet18_fmnist reconstructs in 10 blocks");
      // The control: the peak must at least hold what the run itself says it had in memory at once.
      assert.ok(
        m.peakRssBytes > m.rssBeforeBytes + m.peakCacheBytes,
        `peak RSS ${mib(m.peakRssBytes)} cannot hold the caches ${mib(m.peakCacheBytes)} beside ${
          mib(m.rssBeforeBytes)
        } already in use`,
      );
      assert.ok(
        m.peakRssBytes < bound,
        `peak RSS ${mib(m.peakRssBytes)} exceeds the documented bound of ${mib(bound)}`,
      );
    },
  });
}
