// loadModel: ONNX bytes → decoded model → graph IR with BatchNorm folded →
// an engine that runs it. Unsupported ops fail here, not mid-run.
import { Engine } from "./engine/engine.ts";
import { AttnroundError } from "./errors.ts";
import { graphFromModel } from "./graph/from-onnx.ts";
import type { Graph, ValueInfo } from "./graph/ir.ts";
import { prepareGraph } from "./graph/passes.ts";
import { decodeModel } from "./onnx/codec.ts";
import type { ModelProto } from "./onnx/types.ts";
import { requireKernels } from "./kernels/memory.ts";
import { type BatchedRunOptions, runBatched } from "./engine/parallel/batched.ts";
import { Tensor } from "./tensor.ts";

export class Model {
  /** @internal The decoded ONNX model, kept for export. */
  readonly proto: ModelProto;
  /** @internal The graph the engine runs (BatchNorm folded). */
  readonly graph: Graph;
  private readonly engine: Engine;
  private disposed = false;

  constructor(proto: ModelProto) {
    requireKernels(); // fail early, with advice, if init() has not run
    this.proto = proto;
    this.graph = graphFromModel(proto);
    prepareGraph(this.graph);
    this.engine = new Engine(this.graph);
  }

  get inputs(): readonly ValueInfo[] {
    return this.graph.inputs;
  }

  get outputs(): readonly ValueInfo[] {
    return this.graph.outputs;
  }

  /** Runs the float model. Inputs by name; returns every graph output by name. */
  run(feeds: Record<string, Tensor>): Record<string, Tensor> {
    if (this.disposed) throw new AttnroundError("INVALID_ARGUMENT", "the model was disposed: load it again");
    checkFeeds(this.graph.inputs, feeds);
    try {
      return this.engine.run(feeds);
    } catch (e) {
      throw inputShapeError(this.graph.inputs, feeds, e);
    }
  }

  /**
   * Runs the float model over many samples: every feed is cut along its
   * first axis into runs of `batchSize`, spread over `threads` workers; the
   * outputs are joined along the first axis. The same outputs for any number
   * of threads.
   */
  runBatched(
    feeds: Record<string, Tensor>,
    options: BatchedRunOptions = {},
  ): Promise<Record<string, Tensor>> {
    return runBatchedChecked(
      this.graph,
      this.disposed,
      "the model was disposed: load it again",
      feeds,
      options,
    );
  }

  /** Frees the wasm memory this model holds. */
  dispose(): void {
    this.disposed = true;
    this.engine.dispose();
  }
}

/** runBatched of a Model or a QuantizedModel: refused once disposed, feeds checked as run() checks them. */
export async function runBatchedChecked(
  graph: Graph,
  disposed: boolean,
  whenDisposed: string,
  feeds: Record<string, Tensor>,
  options: BatchedRunOptions,
): Promise<Record<string, Tensor>> {
  if (disposed) throw new AttnroundError("INVALID_ARGUMENT", whenDisposed);
  let first: Record<string, Tensor> = {};
  try {
    return await runBatched(graph, feeds, options, (f) => {
      first = f;
      checkFeeds(graph.inputs, f);
    });
  } catch (e) {
    throw inputShapeError(graph.inputs, first, e);
  }
}

/** Checks feeds against the declared inputs: every input present, of its dtype and (known) shape, no others. */
export function checkFeeds(inputs: readonly ValueInfo[], feeds: Record<string, Tensor>): void {
  if (feeds === null || typeof feeds !== "object") {
    throw new AttnroundError(
      "INVALID_ARGUMENT",
      `run takes the inputs by name, e.g. { ${inputs[0]?.name ?? "input"}: new Tensor(data, shape) }`,
    );
  }
  for (const input of inputs) checkFeed(input, feeds[input.name]);
  for (const name of Object.keys(feeds)) {
    if (!inputs.some((i) => i.name === name)) {
      throw new AttnroundError(
        "INVALID_ARGUMENT",
        `the model has no input "${name}" (its inputs: ${inputs.map((i) => i.name).join(", ")})`,
      );
    }
  }
}

/**
 * An op that cannot take its inputs fails with INVALID_MODEL. When the model
 * leaves a dimension other than the batch open (or its input's shape), the
 * shape fed chose it, so such errors become SHAPE_MISMATCH naming the shapes
 * fed. A shape that fits every declared dimension but the batch is the
 * model's fault: its nodes disagree among themselves.
 */
export function inputShapeError(
  inputs: readonly ValueInfo[],
  fed: Record<string, { shape: readonly number[] }>,
  error: unknown,
): unknown {
  const dynamic = inputs.some((i) => !i.shape || i.shape.some((d, k) => k > 0 && typeof d !== "number"));
  if (!(error instanceof AttnroundError) || error.code !== "INVALID_MODEL" || !dynamic) return error;
  if (!error.message.startsWith("node ")) return error;
  const given = Object.entries(fed).map(([name, t]) => `"${name}" of shape [${t.shape}]`).join(", ");
  const declared = inputs.map((i) =>
    i.shape ? `"${i.name}" as [${i.shape.map((d) => d ?? "?")}]` : `no shape for "${i.name}"`
  ).join(", ");
  return new AttnroundError(
    "SHAPE_MISMATCH",
    `the model cannot take input ${given} (it declares ${declared}, so only its ops check the shape): ` +
      error.message,
    { cause: error },
  );
}

function checkFeed(input: ValueInfo, feed: Tensor | undefined): void {
  if (!(feed instanceof Tensor)) {
    throw new AttnroundError(
      "INVALID_ARGUMENT",
      `missing input "${input.name}"${input.shape ? ` of shape [${input.shape.map((d) => d ?? "?")}]` : ""}`,
    );
  }
  if (input.dtype && feed.dtype !== input.dtype) {
    throw new AttnroundError(
      "INVALID_ARGUMENT",
      `input "${input.name}" must be ${input.dtype}, got ${feed.dtype}`,
    );
  }
  const shape = input.shape;
  if (!shape) return;
  const fits = shape.length === feed.shape.length &&
    shape.every((d, i) => typeof d !== "number" || d === feed.shape[i]);
  if (!fits) {
    throw new AttnroundError(
      "SHAPE_MISMATCH",
      `input "${input.name}" must have shape [${shape.map((d) => d ?? "?")}], got [${feed.shape}]`,
    );
  }
}

/** Decodes ONNX bytes and prepares the model to run. Requires `await init()` first. */
export function loadModel(bytes: Uint8Array): Model {
  if (!(bytes instanceof Uint8Array)) {
    throw new AttnroundError("INVALID_ARGUMENT", "loadModel takes the ONNX file's bytes as a Uint8Array");
  }
  return new Model(decodeModel(bytes));
}
