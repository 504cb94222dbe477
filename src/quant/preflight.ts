// Before the first iteration (SPEC §12), in seconds, everything that can be
// known to fail is tried: the graph quantization will run (a fixed batch of 1
// freed where that gives the same outputs, else sample by sample), one
// calibration sample through the whole model, every block's partition and its
// backward, and the memory the run needs against its budget. What fails here
// fails as an AttnroundError naming the node, tensor or option, not after
// minutes of reconstruction.
import { addGradients } from "../engine/autodiff.ts";
import { Engine } from "../engine/engine.ts";
import { AttnroundError } from "../errors.ts";
import { freeBatch, hasFixedBatch } from "../graph/batch.ts";
import type { Graph } from "../graph/ir.ts";
import { type Block, partitionBlocks } from "../graph/partition.ts";
import { blockGraph } from "../graph/subgraph.ts";
import { inputShapeError } from "../model.ts";
import { Tensor } from "../tensor.ts";
import type { CalibrationSet } from "./calibration.ts";
import type { ActivationQuantizer, WeightQuantizer } from "./layers.ts";
import type { QuantizeOptions } from "./options.ts";
import { localizeShapes } from "./shapes.ts";
import { LOSS, quantizersRead, roundedInput, stepName, trainingGraph } from "./qgraph.ts";

/** Samples one forward run holds at most (more gains no speed). */
const MOST_PER_RUN = 64;
/** Training keeps a block's activations for the backward pass, with their gradients: bytes per forward byte. */
const TRAINING_FACTOR = 4;
/** Share of the budget one engine run's arena may take. */
const RUN_SHARE = 1 / 8;
/** Bytes of one run's arena beyond which more samples per run gain no speed, only memory. */
const RUN_MOST = 256 * 2 ** 20;
/** The largest block the wasm allocator hands out (TLSF's 1 GiB, less its overhead): one run's arena must fit. */
const ARENA_MOST = 2 ** 30 - 2 ** 16;
/**
 * The engines' memory in arenas' worth: two engines run at once at most (the
 * float and quantized models in the fidelity check), with plans and slack.
 */
const ENGINE_RUNS = 3;
/** Copies of the model's weights in wasm memory at once (the same two engines). */
const WEIGHT_COPIES = 2;
/** float16 caches of one block boundary alive at once: float input, quantized input, targets, next input. */
const CACHES_ALIVE = 4;

export interface RunPlan {
  /** The graph the run quantizes: the model's own, or with its fixed batch freed. */
  graph: Graph;
  blocks: Block[];
  /** Whether the model's batch is fixed to 1 and could not be freed: every engine run holds one sample. */
  sampleBySample: boolean;
  /** Most samples in one forward run of the float or quantized model. */
  forwardSamples: number;
  /** Most samples in one training run of a block; a larger mini-batch is split into shards. */
  trainingSamples: number;
  /** Whether the activation caches go to the spill store, not fitting the budget. */
  spill: boolean;
  /** Bytes one engine run's arena may take. */
  runBytes: number;
  /**
   * Estimates in bytes: engine memory per sample forward and training, the
   * caches' peak, what the run holds beside the caches (engines and the
   * calibration set), and the model's weights.
   */
  memory: {
    forwardPerSample: number;
    trainingPerSample: number;
    cachePeak: number;
    fixedBytes: number;
    weightBytes: number;
  };
}

/**
 * Threads a run may use: as many as asked, but no more than the budget holds,
 * since each worker keeps engines of its own (their arenas, as large as its
 * largest forward or training run of `shardSamples`, and the weights): the
 * first takes the place of the calling thread's engines (counted in the
 * plan), the others take what the calibration set, those engines and the
 * caches held in memory leave. Results do not depend on it.
 */
export function threadsFitting(plan: RunPlan, asked: number, shardSamples: number, budget: number): number {
  const m = plan.memory;
  const arena = Math.max(plan.forwardSamples * m.forwardPerSample, shardSamples * m.trainingPerSample);
  const perWorker = Math.max(ENGINE_RUNS * arena + WEIGHT_COPIES * m.weightBytes, 1);
  const left = budget - m.fixedBytes - (plan.spill ? 0 : m.cachePeak);
  return Math.max(1, Math.min(asked, 1 + Math.floor(Math.max(0, left) / perWorker)));
}

/** How many samples one engine run may hold when each takes `perSample` bytes of its arena. */
export function samplesFitting(
  plan: Pick<RunPlan, "sampleBySample" | "runBytes">,
  perSample: number,
): number {
  if (plan.sampleBySample) return 1;
  return Math.max(1, Math.min(MOST_PER_RUN, Math.floor(plan.runBytes / Math.max(perSample, 1))));
}

function samples(calib: CalibrationSet, first: number, count: number): Tensor {
  const size = calib.data.length / calib.count;
  return new Tensor(calib.data.subarray(first * size, (first + count) * size), [count, ...calib.sampleShape]);
}

/**
 * The model's graph if its batch is free; else, if freeBatch's rewrite gives
 * a few real samples run together exactly the outputs each gives alone, the
 * rewritten graph; else undefined (the model runs sample by sample).
 */
function batchableGraph(model: Graph, calib: CalibrationSet): Graph | undefined {
  if (!hasFixedBatch(model)) return model;
  const freed = freeBatch(model)!;
  const count = Math.min(3, calib.count);
  if (count < 2) return freed;
  const one = new Engine(model), many = new Engine(freed);
  const input = model.inputs[0].name;
  try {
    const together = many.run({ [input]: samples(calib, 0, count) });
    for (let s = 0; s < count; s++) {
      const alone = one.run({ [input]: samples(calib, s, 1) });
      for (const [name, t] of Object.entries(alone)) {
        const a = t.data as Float32Array, b = together[name].data as Float32Array;
        for (let i = 0; i < a.length; i++) {
          const d = Math.abs(a[i] - b[s * a.length + i]);
          if (!(d <= 1e-5 * Math.max(1, Math.abs(a[i])))) return undefined;
        }
      }
    }
    return freed;
  } catch {
    return undefined;
  } finally {
    one.dispose(), many.dispose();
  }
}

/** Every block reconstruction will train: one input, one output, and a backward for every op in it. */
function checkBlocks(
  graph: Graph,
  blocks: Block[],
  weights: WeightQuantizer[],
  acts: ActivationQuantizer[],
  o: QuantizeOptions,
): void {
  for (const block of blocks) {
    if (block.inputs.length !== 1) {
      throw new AttnroundError(
        "UNSUPPORTED_MODEL",
        `block ${block.index + 1} of ${blocks.length} reads ${
          block.inputs.map((x) => `"${x}"`).join(", ")
        }; reconstruction caches one tensor per block boundary`,
      );
    }
    if (o.rounding === "nearest" || o.iterations === 0) continue;
    const nodes = new Set(block.nodes);
    const layers = weights.filter((q) => nodes.has(q.layer.node));
    const deploy = o.exportForm === "deploy";
    const steps = quantizersRead(block.nodes, layers, acts, deploy);
    if (layers.length === 0 && steps.length === 0) continue;
    const training = trainingGraph(blockGraph(graph, block), layers, steps, o.activationDrop, deploy);
    const wrt = [...layers.map(roundedInput), ...steps.map((a) => stepName(a.tensor))];
    // addGradients names the node whose op has no backward; the engine, any op it cannot run.
    new Engine(addGradients(training, LOSS, wrt).graph).dispose();
  }
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(bytes < 2 ** 24 ? 1 : 0)} MiB`;
}

/** Plans the run and raises, before any long work, every failure that can be known now. */
export function preflight(
  model: Graph,
  calib: CalibrationSet,
  weights: WeightQuantizer[],
  acts: ActivationQuantizer[],
  o: QuantizeOptions,
): RunPlan {
  const freed = batchableGraph(model, calib);
  const input = model.inputs[0].name;
  let graph = freed ?? model, forwardPerSample: number, tensorBytes: Map<string, number>;
  // Samples through the model, named as the calibration set in errors: shape values, ops, memory per sample.
  try {
    if (freed && calib.count >= 2) graph = localizeShapes(freed, samples(calib, 0, 2));
    const engine = new Engine(graph);
    try {
      ({ arenaBytes: forwardPerSample, tensorBytes } = engine.plannedMemory({
        [input]: samples(calib, 0, 1),
      }));
    } finally {
      engine.dispose();
    }
  } catch (e) {
    throw inputShapeError(model.inputs, { [input]: { shape: [calib.count, ...calib.sampleShape] } }, e);
  }
  const blocks = partitionBlocks(graph);
  checkBlocks(graph, blocks, weights, acts, o);

  const runBytes = Math.min(o.memoryBudget * RUN_SHARE, RUN_MOST);
  const trainingPerSample = TRAINING_FACTOR * Math.max(
    0,
    ...blocks.map((b) => b.nodes.reduce((n, node) => n + (tensorBytes.get(node.outputs[0]) ?? 0), 0)),
  );
  const boundary = Math.max(
    calib.data.length / calib.count,
    ...blocks.map((b) => (tensorBytes.get(b.outputs[0]) ?? 0) / 4),
  );
  const cachePeak = CACHES_ALIVE * 2 * boundary * calib.count;
  const weightBytes = [...graph.initializers.values()].reduce((n, t) => n + t.size * 4, 0);
  const engineBytes = ENGINE_RUNS * runBytes + WEIGHT_COPIES * weightBytes;
  const fixedBytes = engineBytes + calib.data.byteLength;
  const budget = `the budget of ${mib(o.memoryBudget)}`;
  const perRun = Math.max(forwardPerSample, trainingPerSample);
  const perSample = `one sample needs about ${mib(perRun)} of working memory (${
    mib(forwardPerSample)
  } forward, ${mib(trainingPerSample)} to train the largest block)`;
  if (perRun > ARENA_MOST) {
    throw new AttnroundError(
      "TOO_LARGE",
      `${perSample}, more than the ${mib(ARENA_MOST)} one wasm allocation holds: use smaller inputs`,
    );
  }
  if (perRun > runBytes) {
    throw new AttnroundError(
      "MEMORY_BUDGET",
      `${perSample}, more than the ${
        mib(runBytes)
      } one run may take under ${budget}: raise the budget (memoryBudget, --memory)`,
    );
  }
  if (fixedBytes > o.memoryBudget) {
    throw new AttnroundError(
      "MEMORY_BUDGET",
      `the calibration set (${mib(calib.data.byteLength)}) and the engines (about ${
        mib(engineBytes)
      }) need more than ${budget}: raise the budget (memoryBudget, --memory), or use fewer calibration samples`,
    );
  }
  const spill = cachePeak > o.memoryBudget - fixedBytes;
  if (spill && !o.spill) {
    throw new AttnroundError(
      "MEMORY_BUDGET",
      `the cached block inputs and targets of ${calib.count} calibration samples need about ${
        mib(cachePeak)
      }, more than the ${
        mib(o.memoryBudget - fixedBytes)
      } ${budget} leaves beside the calibration set and the engines: raise the budget (memoryBudget, --memory), or use fewer calibration samples`,
    );
  }
  const fitting = { sampleBySample: !freed, runBytes };
  return {
    graph,
    blocks,
    spill,
    ...fitting,
    forwardSamples: samplesFitting(fitting, forwardPerSample),
    trainingSamples: samplesFitting(fitting, trainingPerSample),
    memory: { forwardPerSample, trainingPerSample, cachePeak, fixedBytes, weightBytes },
  };
}
