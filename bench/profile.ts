// Where one reconstruction iteration spends its time, per block and summed
// over all blocks of resnet18_fmnist and mobilenetv2_fmnist (batch 32,
// attention rounding, W4A4, the library's defaults otherwise).
//
// Each block gets a BlockTrainer as quantize() makes it (2,000 iterations), on
// the float model's activations of the first calibration images, running its
// shards on this thread (one thread: the hooks see only this thread's work).
// After a planning run and a few warm-up iterations, --iterations iterations
// spread evenly over the schedule (σ decays, and with it the rounding's work)
// are timed: the engine's steps (observeSteps) and the wasm kernel calls
// (timeKernelCalls), and around them the rest of each iteration's wall time
// (gathers from the activation cache, the rounding, Adam, the engine's and the
// trainer's TypeScript, the copies of the shards' inputs and outputs). Each is run again without the hooks, and those ms/iteration
// printed beside the profiled ones, to show what the timing costs.
// With --against DIR (another checkout of the library, with its npm packages
// installed), that checkout's trainer runs the same iterations in turn with
// this one's, unprofiled, in the same process: a before and after that sees
// one machine load.
//   deno task bench:profile [--iterations 20] [--models resnet18_fmnist,mobilenetv2_fmnist] [--blocks]
//     [--kernels] [--against ../other-checkout]
import { readNpz } from "../mod.ts";
import { observeSteps } from "../src/engine/engine.ts";
import { GRAD_DOMAIN } from "../src/engine/registry.ts";
import type { Graph, Node } from "../src/graph/ir.ts";
import type { BlockTrainer } from "../src/quant/reconstruct.ts";
import { timeKernelCalls } from "../src/wasm.ts";
import { option, readFixture, toInput } from "./fmnist.ts";

/** The parts of the library the profile uses: this checkout's, or with --against DIR another's. */
interface Library {
  init: typeof import("../mod.ts").init;
  loadModel: typeof import("../mod.ts").loadModel;
  Engine: typeof import("../src/engine/engine.ts").Engine;
  partitionBlocks: typeof import("../src/graph/partition.ts").partitionBlocks;
  blockGraph: typeof import("../src/graph/subgraph.ts").blockGraph;
  WasmBuffer: typeof import("../src/kernels/memory.ts").WasmBuffer;
  searchActivationScale: typeof import("../src/kernels/quant.ts").searchActivationScale;
  ActivationCache: typeof import("../src/quant/cache.ts").ActivationCache;
  planWeightQuantizers: typeof import("../src/quant/layers.ts").planWeightQuantizers;
  planActivationQuantizers: typeof import("../src/quant/layers.ts").planActivationQuantizers;
  resolveOptions: typeof import("../src/quant/options.ts").resolveOptions;
  BlockTrainer: typeof import("../src/quant/reconstruct.ts").BlockTrainer;
  Tensor: typeof import("../src/tensor.ts").Tensor;
  /** Advances a trainer `count` iterations on this thread, whichever trainer API the checkout has. */
  advance(trainer: BlockTrainer, count: number): Promise<void>;
}

type Runner = import("../src/engine/parallel/pool.ts").GraphRunner;
/** A checkout's trainer before the worker pool: advance(count), synchronous. */
type OlderTrainer = { advance(count: number): void };

async function library(root: URL): Promise<Library> {
  const at = (path: string) => import(new URL(path, root).href);
  const [mod, engine, partition, subgraph, memory, quant, cache, layers, options, reconstruct, tensor] =
    await Promise.all([
      "mod.ts",
      "src/engine/engine.ts",
      "src/graph/partition.ts",
      "src/graph/subgraph.ts",
      "src/kernels/memory.ts",
      "src/kernels/quant.ts",
      "src/quant/cache.ts",
      "src/quant/layers.ts",
      "src/quant/options.ts",
      "src/quant/reconstruct.ts",
      "src/tensor.ts",
    ].map(at));
  await at("src/quant/ops.ts");
  await mod.init();
  // One runner on this thread, kept for the whole profile (its use never settles); a checkout without the
  // pool advances synchronously.
  const pool = await at("src/engine/parallel/pool.ts").catch(() => undefined);
  const runner: Runner | undefined = pool &&
    await new Promise<Runner>((resolve) =>
      pool.withRunner(1, (r: Runner) => {
        resolve(r);
        return new Promise<never>(() => {});
      })
    );
  return {
    init: mod.init,
    loadModel: mod.loadModel,
    Engine: engine.Engine,
    partitionBlocks: partition.partitionBlocks,
    blockGraph: subgraph.blockGraph,
    WasmBuffer: memory.WasmBuffer,
    searchActivationScale: quant.searchActivationScale,
    ActivationCache: cache.ActivationCache,
    planWeightQuantizers: layers.planWeightQuantizers,
    planActivationQuantizers: layers.planActivationQuantizers,
    resolveOptions: options.resolveOptions,
    BlockTrainer: reconstruct.BlockTrainer,
    Tensor: tensor.Tensor,
    async advance(trainer, count) {
      if (runner) await trainer.advance(runner, count);
      else (trainer as unknown as OlderTrainer).advance(count);
    },
  };
}

const here = await library(new URL("../", import.meta.url));
const againstDir = option("against", "");
const against = againstDir ? await library(new URL(`file://${Deno.realPathSync(againstDir)}/`)) : undefined;
const iterations = Number(option("iterations", "20"));
const warmup = 3;
const models = option("models", "resnet18_fmnist,mobilenetv2_fmnist").split(",");
const perBlock = Deno.args.includes("--blocks");
/** With --kernels: milliseconds per iteration of every block, by wasm export and by op (TypeScript inside ops). */
const perKernel = Deno.args.includes("--kernels");
const byKernel = new Map<string, number>();
const addKernel = (key: string, ms: number) => byKernel.set(key, (byKernel.get(key) ?? 0) + ms);
const images = 256;

/** The shares reported, in this order. */
const CATEGORIES = [
  "conv forward",
  "conv forward, depthwise",
  "conv input gradient",
  "conv input gradient, depthwise",
  "conv weight gradient",
  "conv weight gradient, depthwise",
  "Gemm/MatMul forward and gradients",
  "pooling forward and gradients",
  "rounding and its gradient",
  "activation quantizers (LSQ, QDrop)",
  "elementwise and other ops",
  "TypeScript inside ops",
  "Adam",
  "gather from the activation cache",
  "engine and trainer TypeScript, copies",
] as const;
type Category = typeof CATEGORIES[number];

const WEIGHT_GRAD = new Set(["conv2dBackwardWeights", "conv2dDepthwiseBackwardWeights"]);
/** The rounding's kernels, called by the trainer once per iteration outside the training graph. */
const ROUNDING = new Set([
  "attentionExpected",
  "attentionStochastic",
  "adaroundForward",
  "adaroundRegularizer",
  "roundingBackward",
]);

/** The category of one kernel call made by a step of the training graph. */
function categoryOf(node: Node, kernel: string, depthwise: boolean): Category {
  const grad = node.domain === GRAD_DOMAIN;
  switch (node.opType) {
    case "Conv":
      if (!grad) return depthwise ? "conv forward, depthwise" : "conv forward";
      if (WEIGHT_GRAD.has(kernel)) {
        return depthwise ? "conv weight gradient, depthwise" : "conv weight gradient";
      }
      if (kernel === "reduceToShape") return "elementwise and other ops";
      return depthwise ? "conv input gradient, depthwise" : "conv input gradient";
    case "Gemm":
    case "MatMul":
      return "Gemm/MatMul forward and gradients";
    case "MaxPool":
    case "AveragePool":
    case "GlobalAveragePool":
      return "pooling forward and gradients";
    case "AttentionRound":
    case "AdaRound":
      return "rounding and its gradient";
    case "FakeQuantActivation":
      return "activation quantizers (LSQ, QDrop)";
  }
  return "elementwise and other ops";
}

interface Profile {
  ms: Map<Category, number>;
  iterations: number;
  wall: number;
}

const newProfile = (): Profile => ({ ms: new Map(CATEGORIES.map((c) => [c, 0])), iterations: 0, wall: 0 });

function addTo(p: Profile, c: Category, ms: number): void {
  p.ms.set(c, p.ms.get(c)! + ms);
}

/**
 * Runs `iterations` iterations of the trainer with the hooks on, adding their times
 * to `p`; the per-kernel table divides by `perBlock` iterations.
 */
async function profiled(
  lib: Library,
  trainer: BlockTrainer,
  training: Graph,
  iterations: number,
  p: Profile,
  gathers: { ms: number },
  perBlock: number,
) {
  const scale = perBlock;
  // The kernel calls since the last step, in preallocated arrays: the
  // recorder itself allocates nothing, so it adds no garbage to collect.
  const names: string[] = new Array(4096), times = new Float64Array(4096);
  let count = 0;
  timeKernelCalls((name, ms) => {
    names[count] = name;
    times[count++] = ms;
  });
  observeSteps((graph, node, ms) => {
    if (graph !== training) return;
    let depthwise = false;
    for (let i = 0; i < count; i++) depthwise ||= names[i].startsWith("conv2dDepthwise");
    let inKernels = 0;
    const op = `${node.domain === GRAD_DOMAIN ? "grad " : ""}${node.opType}`;
    for (let i = 0; i < count; i++) {
      const name = names[i], t = times[i];
      // The rounding runs before the graph's first step, so its calls arrive with that step's.
      addTo(p, ROUNDING.has(name) ? "rounding and its gradient" : categoryOf(node, name, depthwise), t);
      if (perKernel) addKernel(`${op}: ${name}`, t / scale);
      inKernels += t;
    }
    addTo(p, "TypeScript inside ops", Math.max(0, ms - inKernels));
    if (perKernel) addKernel(`${op}: TypeScript`, Math.max(0, ms - inKernels) / scale);
    count = 0;
  });
  try {
    for (let it = 0; it < iterations; it++) {
      count = 0;
      gathers.ms = 0;
      const before = [...p.ms.values()].reduce((a, b) => a + b, 0);
      const t0 = performance.now();
      await lib.advance(trainer, 1);
      const wall = performance.now() - t0;
      // Kernel calls left over were made outside the engine's steps: the rounding's and Adam's.
      for (let i = 0; i < count; i++) {
        const name = names[i], t = times[i];
        if (name === "adamStep") addTo(p, "Adam", t);
        else if (ROUNDING.has(name)) addTo(p, "rounding and its gradient", t);
        else addTo(p, "engine and trainer TypeScript, copies", t);
      }
      count = 0;
      addTo(p, "gather from the activation cache", gathers.ms);
      const engine = [...p.ms.values()].reduce((a, b) => a + b, 0) - before;
      addTo(p, "engine and trainer TypeScript, copies", Math.max(0, wall - engine));
      p.wall += wall;
      p.iterations++;
    }
  } finally {
    timeKernelCalls();
    observeSteps();
  }
}

/** The trainingGraph a BlockTrainer runs is private; its engine is the only one replaying during advance. */
async function trainingGraphOf(lib: Library, trainer: BlockTrainer): Promise<Graph> {
  let seen: Graph | undefined;
  observeSteps((graph) => seen = graph);
  try {
    await lib.advance(trainer, 1);
  } finally {
    observeSteps();
  }
  return seen!;
}

function share(p: Profile, c: Category): string {
  return `${(100 * p.ms.get(c)! / p.wall).toFixed(1)}%`;
}

const calib = toInput(readNpz(readFixture("calib.npz")).x);
const calibData = (calib.data as Float32Array).subarray(0, images * 784);
const totals = new Map<string, { p: Profile; plain: number; before?: number }>();

interface BlockRun {
  index: number;
  layers: number;
  trainer: BlockTrainer;
  /** Milliseconds in the activation caches' gathers since last reset. */
  gathers: { ms: number };
  dispose(): void;
}

/**
 * One trainer per block of the model, as quantize() makes them (W4A4,
 * attention rounding, batch 32, 2,000 iterations), on the float model's
 * activations of `images` calibration images, made with `lib`.
 */
async function* blockRuns(lib: Library, name: string): AsyncGenerator<BlockRun> {
  const model = await lib.loadModel(readFixture(`${name}.onnx`));
  const graph = model.graph;
  const o = lib.resolveOptions({
    weightBits: 4,
    activationBits: 4,
    rounding: "attention",
    batchSize: 32,
    iterations: 2000,
  });
  const weights = lib.planWeightQuantizers(graph, o);
  const acts = lib.planActivationQuantizers(weights, o);
  const blocks = lib.partitionBlocks(graph);
  // Float activations of every block input and output and every quantized tensor.
  const wanted = [
    ...new Set([...blocks.flatMap((b) => [...b.inputs, ...b.outputs]), ...acts.map((a) => a.tensor)]),
  ];
  const engine = new lib.Engine({ ...graph, outputs: wanted.map((n) => ({ name: n })) });
  const values = new Map<string, Float32Array[]>(wanted.map((n) => [n, []]));
  const shapes = new Map<string, number[]>();
  for (let start = 0; start < images; start += 64) {
    const data = calibData.subarray(start * 784, (start + 64) * 784);
    const out = engine.run({ [graph.inputs[0].name]: new lib.Tensor(data, [64, 1, 28, 28]) });
    for (const n of wanted) {
      values.get(n)!.push(out[n].data as Float32Array);
      shapes.set(n, out[n].shape.slice(1));
    }
  }
  engine.dispose();
  const joined = (n: string) => {
    const parts = values.get(n)!, all = new Float32Array(parts.reduce((s, x) => s + x.length, 0));
    let at = 0;
    for (const x of parts) all.set(x, at), at += x.length;
    return all;
  };
  for (const a of acts) {
    const samples = lib.WasmBuffer.from(joined(a.tensor));
    const q = lib.searchActivationScale(samples.ptr, samples.length, a.bits);
    Object.assign(a, { step: q.scale, zero: q.zero, qmin: q.qmin, qmax: q.qmax });
    samples.dispose();
  }
  for (const block of blocks) {
    const layers = weights.filter((q) => block.nodes.includes(q.layer.node));
    const layerNodes = new Set(layers.map((l) => l.layer.node));
    const blockActs = acts.filter((a) =>
      block.nodes.some((n) => layerNodes.has(n) && n.inputs[0] === a.tensor)
    );
    if (layers.length === 0 && blockActs.length === 0) continue;
    const cache = (tensor: string) => {
      const c = new lib.ActivationCache(shapes.get(tensor)!, images);
      c.write(0, joined(tensor));
      return c;
    };
    const inputs = cache(block.inputs[0]), targets = cache(block.outputs[0]);
    const gathers = { ms: 0 };
    for (const c of [inputs, targets]) {
      const gather = c.gather.bind(c);
      c.gather = (i, d) => {
        const t0 = performance.now();
        gather(i, d);
        gathers.ms += performance.now() - t0;
      };
    }
    const trainer = new lib.BlockTrainer(
      lib.blockGraph(graph, block),
      block.index,
      blocks.length,
      layers,
      blockActs,
      inputs,
      targets,
      o,
    );
    yield {
      index: block.index,
      layers: layers.length,
      trainer,
      gathers,
      dispose() {
        trainer.dispose();
        inputs.dispose(), targets.dispose();
      },
    };
  }
}

for (const name of models) {
  const total = newProfile();
  let plainTotal = 0, beforeTotal = 0;
  console.log(
    `\n## ${name}: ${iterations} iterations of each block (batch 32, attention, W4A4)${
      against ? `, beside ${againstDir}'s` : ""
    }\n`,
  );
  if (perBlock) {
    console.log(
      `| block | layers | ms/iteration (profiled) | ms/iteration (plain) | ${CATEGORIES.join(" | ")} |`,
    );
    console.log(`|---|---:|---:|---:|${CATEGORIES.map(() => "---:").join("|")}|`);
  }
  const others = against ? blockRuns(against, name) : undefined;
  for await (const run of blockRuns(here, name)) {
    const other = others ? (await others.next()).value as BlockRun : undefined;
    const trainer = run.trainer;
    const training = await trainingGraphOf(here, trainer);
    await here.advance(trainer, warmup);
    if (other) await against!.advance(other.trainer, warmup + 1);
    // Iterations spread over the whole schedule (σ decays, so the rounding's
    // work does), each run profiled, then plain, then plain with the other
    // checkout's trainer: all three see the same load.
    const p = newProfile();
    let plain = 0, before = 0;
    for (let i = 0; i < iterations; i++) {
      const at = Math.floor(((i + 0.5) * 2000) / iterations);
      trainer.iteration = at;
      await profiled(here, trainer, training, 1, p, run.gathers, iterations);
      trainer.iteration = at;
      let t0 = performance.now();
      await here.advance(trainer, 1);
      plain += performance.now() - t0;
      if (other) {
        other.trainer.iteration = at;
        t0 = performance.now();
        await against!.advance(other.trainer, 1);
        before += performance.now() - t0;
      }
    }
    plain /= iterations;
    before /= iterations;
    run.dispose();
    other?.dispose();
    for (const c of CATEGORIES) addTo(total, c, p.ms.get(c)! / p.iterations);
    total.wall += p.wall / p.iterations;
    total.iterations++;
    plainTotal += plain;
    beforeTotal += before;
    if (perBlock) {
      console.log(
        `| ${run.index + 1} | ${run.layers} | ${(p.wall / p.iterations).toFixed(2)} | ${plain.toFixed(2)} | ${
          CATEGORIES.map((c) => share(p, c)).join(" | ")
        } |`,
      );
    }
  }
  console.log(perBlock ? "\nAll blocks, one iteration each:\n" : "One iteration of every block:\n");
  console.log(`| share of the time | ${name} |`);
  console.log("|---|---:|");
  for (const c of CATEGORIES) console.log(`| ${c} | ${share(total, c)} |`);
  console.log(`| **ms per iteration of every block, profiled** | ${total.wall.toFixed(1)} |`);
  console.log(`| **the same without the profiling hooks** | ${plainTotal.toFixed(1)} |`);
  if (against) console.log(`| **the same with ${againstDir}** | ${beforeTotal.toFixed(1)} |`);
  totals.set(name, { p: total, plain: plainTotal, before: against ? beforeTotal : undefined });
  if (perKernel) {
    console.log("\n| op: wasm export (or TypeScript) | ms per iteration of every block |\n|---|---:|");
    for (const [key, ms] of [...byKernel].sort((a, b) => b[1] - a[1])) {
      if (ms >= 0.05) console.log(`| ${key} | ${ms.toFixed(2)} |`);
    }
    byKernel.clear();
  }
}

if (totals.size > 1) {
  console.log("\nSide by side:\n");
  console.log(`| share of the time | ${[...totals.keys()].join(" | ")} |`);
  console.log(`|---|${[...totals.keys()].map(() => "---:").join("|")}|`);
  for (const c of CATEGORIES) {
    console.log(`| ${c} | ${[...totals.values()].map((t) => share(t.p, c)).join(" | ")} |`);
  }
  console.log(
    `| ms per iteration of every block (profiled / plain) | ${
      [...totals.values()].map((t) => `${t.p.wall.toFixed(1)} / ${t.plain.toFixed(1)}`).join(" | ")
    } |`,
  );
  if (against) {
    console.log(
      `| ms per iteration of every block with ${againstDir} (plain) | ${
        [...totals.values()].map((t) => t.before!.toFixed(1)).join(" | ")
      } |`,
    );
  }
}
