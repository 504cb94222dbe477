// Weighted sums of the jobs' outputs in one fixed binary tree over the job
// indices, so that the result does not depend on how the jobs are split over
// the threads: each thread sums the largest subtrees that lie wholly in its
// contiguous run of jobs (weight × output at the leaves, left + right above),
// and the calling thread adds those up the same tree. Every addition is the
// same float32 addition of the same two operands whatever the split, and a
// thread with 4 of 8 jobs sends one sum instead of 4 outputs.
import { AttnroundError } from "../../errors.ts";
import { Tensor } from "../../tensor.ts";
import type { Value } from "../value.ts";
import type { Feeds } from "./server.ts";

/** A subtree's sum: the jobs [from, to) it covers, and the weighted sum of their outputs. */
export interface SubtreeSum {
  from: number;
  to: number;
  sum: Feeds;
}

function middle(from: number, to: number): number {
  return (from + to) >>> 1;
}

/** Subtrees of the tree over [0, total) that cover [from, to) exactly, each as large as it can be, in order. */
export function coveringSubtrees(from: number, to: number, total: number): [number, number][] {
  const out: [number, number][] = [];
  const visit = (a: number, b: number) => {
    if (b <= from || a >= to) return;
    if (a >= from && b <= to) out.push([a, b]);
    else visit(a, middle(a, b)), visit(middle(a, b), b);
  };
  visit(0, total);
  return out;
}

function added(x: Feeds, y: Feeds): Feeds {
  const out: Feeds = {};
  for (const [name, a] of Object.entries(x)) {
    const b = y[name];
    if (!b || b.data.length !== a.data.length) {
      throw new AttnroundError("INTERNAL", `summed output "${name}" differs in shape between jobs`);
    }
    const p = a.data as Float32Array, q = b.data as Float32Array, s = new Float32Array(p.length);
    for (let i = 0; i < s.length; i++) s[i] = p[i] + q[i];
    out[name] = new Tensor(s, a.shape);
  }
  return out;
}

/** A leaf of the tree: `weight` × the outputs (any float32 views, wasm memory's included), copied. */
export function weighted(outputs: Record<string, Value>, weight: number): Feeds {
  const out: Feeds = {};
  for (const [name, t] of Object.entries(outputs)) {
    if (t.dtype !== "float32") throw new AttnroundError("INTERNAL", `summed output "${name}" is ${t.dtype}`);
    const v = t.data as Float32Array, w = new Float32Array(v.length);
    for (let i = 0; i < w.length; i++) w[i] = weight * v[i];
    out[name] = new Tensor(w, [...t.shape]);
  }
  return out;
}

/**
 * The sums of the subtrees covering jobs [first, first + leaves.length) of
 * `total`, from the jobs' weighted outputs (`leaves[i]` job first + i's).
 */
export function subtreeSums(leaves: Feeds[], first: number, total: number): SubtreeSum[] {
  const sum = (a: number, b: number): Feeds =>
    b - a === 1 ? leaves[a - first] : added(sum(a, middle(a, b)), sum(middle(a, b), b));
  return coveringSubtrees(first, first + leaves.length, total).map(([from, to]) => ({
    from,
    to,
    sum: sum(from, to),
  }));
}

/** The whole tree's sum over `total` jobs, from subtree sums that cover them all. */
export function treeSum(parts: SubtreeSum[], total: number): Feeds {
  const known = new Map(parts.map((p) => [`${p.from}:${p.to}`, p.sum]));
  const sum = (a: number, b: number): Feeds => {
    const part = known.get(`${a}:${b}`);
    if (part) return part;
    if (b - a === 1) throw new AttnroundError("INTERNAL", `no sum covers job ${a}`);
    return added(sum(a, middle(a, b)), sum(middle(a, b), b));
  };
  return sum(0, total);
}
