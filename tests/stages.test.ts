// The one-way house: data flows onnx → graph → engine → quant → export → cli,
// with kernels, data and the files directly under src/ (wasm, tensor, errors,
// layout, …) below them all. The worker pool (parallel) runs graphs beside
// the engine; the workers' script (worker.ts) is an entry point, at the top
// with the command line. Every relative import in src/ must go to the same
// stage or an earlier one, and no files may import each other in a cycle.
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const src = fileURLToPath(new URL("../src", import.meta.url));

/** Stages from the bottom up; a folder (or file) of src/ not listed is a base file, below everything. */
const STAGES = [["kernels", "data", "onnx"], ["graph"], ["engine", "parallel"], ["model"], ["quant"], [
  "export",
  "report",
], [
  "cli",
  "worker",
]];

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sources(path) : path.endsWith(".ts") ? [path] : [];
  });
}

function stageOf(path: string): number {
  const parts = relative(src, path).split("/");
  const head = parts.length > 1 ? parts[0] : parts[0].replace(/\.ts$/, "");
  return STAGES.findIndex((names) => names.includes(head));
}

/** The files a source imports or re-exports from, by relative specifier. */
function importsOf(path: string): string[] {
  const text = readFileSync(path, "utf8");
  const specifiers = [...text.matchAll(/(?:import|export)[^'";]*?from\s*["'](\.[^"']+)["']/g)];
  const bare = [...text.matchAll(/^import\s*["'](\.[^"']+)["']/gm)];
  return [...specifiers, ...bare].map((m) => resolve(dirname(path), m[1]));
}

function graph(): Map<string, string[]> {
  const files = sources(src);
  return new Map(files.map((f) => [f, importsOf(f).filter((d) => files.includes(d))]));
}

function upwardImports(edges: Map<string, string[]>): string[] {
  const bad: string[] = [];
  for (const [file, deps] of edges) {
    for (const dep of deps) {
      if (stageOf(dep) > stageOf(file)) bad.push(`${relative(src, file)} -> ${relative(src, dep)}`);
    }
  }
  return bad;
}

/** Strongly connected components of more than one file (Tarjan). */
function cycles(edges: Map<string, string[]>): string[][] {
  let counter = 0;
  const index = new Map<string, number>(), low = new Map<string, number>();
  const stack: string[] = [], onStack = new Set<string>(), found: string[][] = [];
  const visit = (v: string) => {
    index.set(v, counter), low.set(v, counter), counter++;
    stack.push(v), onStack.add(v);
    for (const w of edges.get(v)!) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(relative(src, w));
      } while (w !== v);
      if (component.length > 1) found.push(component);
    }
  };
  for (const v of edges.keys()) if (!index.has(v)) visit(v);
  return found;
}

Deno.test("stages: every import in src/ goes to the same or an earlier stage", () => {
  assert.deepEqual(upwardImports(graph()), []);
});

Deno.test("stages: no import cycle in src/", () => {
  assert.deepEqual(cycles(graph()), []);
});

Deno.test("stages: the check sees an upward import and a cycle when there is one", () => {
  const file = (p: string) => join(src, p);
  const edges = new Map([
    [file("quant/a.ts"), [file("export/b.ts")]],
    [file("export/b.ts"), [file("quant/a.ts")]],
    [file("engine/c.ts"), [file("tensor.ts")]],
    [file("tensor.ts"), []],
  ]);
  assert.deepEqual(upwardImports(edges), ["quant/a.ts -> export/b.ts"]);
  assert.deepEqual(cycles(edges).map((c) => c.sort()), [["export/b.ts", "quant/a.ts"]]);
});
