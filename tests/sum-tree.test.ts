// The jobs' weighted sum (src/engine/parallel/sum-tree.ts): the same bits
// however the jobs are split into contiguous runs, and the sum a plain
// float64 loop gives, to float32 rounding.
import assert from "node:assert/strict";
import { Tensor } from "../mod.ts";
import { coveringSubtrees, subtreeSums, treeSum, weighted } from "../src/engine/parallel/sum-tree.ts";
import type { Feeds } from "../src/engine/parallel/server.ts";

/** Seeded values spread over several orders of magnitude, so that the order of the additions shows in the bits. */
function jobOutputs(jobs: number, size: number): Feeds[] {
  let state = 12345;
  const next = () => (state = (Math.imul(state, 1103515245) + 12345) >>> 0) / 2 ** 32 - 0.5;
  return Array.from({ length: jobs }, () => ({
    g: new Tensor(Float32Array.from({ length: size }, () => next() * 10 ** Math.floor(next() * 8)), [size]),
    loss: new Tensor(new Float32Array([next()]), [1]),
  }));
}

/** Every split of `total` jobs into contiguous runs, as the runs' first jobs after 0 (subsets of 1..total-1). */
function splits(total: number): number[][] {
  const out: number[][] = [];
  for (let mask = 0; mask < 1 << (total - 1); mask++) {
    out.push(Array.from({ length: total - 1 }, (_, i) => i + 1).filter((_, i) => mask & (1 << i)));
  }
  return out;
}

Deno.test("sum tree: the subtrees cover each run exactly once, in order", () => {
  for (const total of [1, 2, 3, 5, 8, 11]) {
    for (let from = 0; from < total; from++) {
      for (let to = from + 1; to <= total; to++) {
        const covered = coveringSubtrees(from, to, total).flatMap(([a, b]) =>
          Array.from({ length: b - a }, (_, i) => a + i)
        );
        assert.deepEqual(
          covered,
          Array.from({ length: to - from }, (_, i) => from + i),
          `${from}..${to}/${total}`,
        );
      }
    }
  }
});

Deno.test("sum tree: every split of the jobs gives the same bits, and the float64 sum to float32 rounding", () => {
  for (const total of [1, 3, 8, 9]) {
    const outputs = jobOutputs(total, 257);
    const weights = Array.from({ length: total }, (_, j) => (j + 1) / (total * (total + 1) / 2));
    const leaves = outputs.map((o, j) => weighted(o, weights[j]));
    const whole = treeSum(subtreeSums(leaves, 0, total), total);
    for (const firsts of splits(total)) {
      const bounds = [0, ...firsts, total];
      const parts = bounds.slice(1).flatMap((to, p) =>
        subtreeSums(leaves.slice(bounds[p], to), bounds[p], total)
      );
      const sum = treeSum(parts, total);
      for (const name of ["g", "loss"]) {
        assert.deepEqual(sum[name].data, whole[name].data, `${total} jobs split at ${firsts}: ${name}`);
      }
    }
    const g = whole.g.data as Float32Array;
    for (let i = 0; i < g.length; i++) {
      let exact = 0, magnitude = 0;
      for (let j = 0; j < total; j++) {
        const v = weights[j] * (outputs[j].g.data as Float32Array)[i];
        exact += v, magnitude += Math.abs(v);
      }
      assert.ok(Math.abs(g[i] - exact) <= 2 ** -22 * total * magnitude, `element ${i}: ${g[i]} vs ${exact}`);
    }
  }
});

Deno.test("sum tree: a job left uncovered is an internal error, not a wrong sum", () => {
  const leaves = jobOutputs(4, 3).map((o) => weighted(o, 1));
  assert.throws(() => treeSum(subtreeSums(leaves.slice(0, 2), 0, 4), 4), /no sum covers job 2/);
});
