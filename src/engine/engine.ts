// Runs a graph. The first run at a given set of input shapes is the planning
// run: it executes every node with fresh allocations, folds every node whose
// inputs are all known at plan time (initializers, Constant, Shape, and
// anything computed only from those), and records each remaining node's
// allocations with their lifetimes. Those are then packed into one arena, so
// later runs at the same shapes replay the steps with no allocation per op.
import { AttnroundError } from "../errors.ts";
import { type Graph, isOnnxDomain, isOnnxOp, type Node, topologicalOrder } from "../graph/ir.ts";
import { arrayOfDtype, type DType, Tensor, type TensorData } from "../tensor.ts";
import { alloc, f32, free } from "../wasm.ts";
import { fuseConvActivations, fuseQuantizePairs } from "./fuse.ts";
import { kernelFor, type OpContext, type OpRun, unsupportedVariant } from "./registry.ts";
import { sizeOf, type Value, WasmValue } from "./value.ts";
import "./ops/index.ts";

const ALIGN = 16;
const alignUp = (n: number) => Math.ceil(n / ALIGN) * ALIGN;

interface Step {
  node: Node;
  run: OpRun;
  /** Arena offsets of this step's allocations, in the order it makes them. */
  outputOffsets: number[];
  outputBytes: number[];
  scratchOffset: number;
  scratchBytes: number;
}

interface Plan {
  steps: Step[];
  /** Values known at plan time: folded nodes' outputs. Owned by the plan. */
  constants: Map<string, Value>;
  inputOffsets: Map<string, number>;
  /** The arena, while this is the plan that last ran (0 otherwise): one arena per engine at a time. */
  arena: number;
  arenaBytes: number;
  /** Plan-time allocations to release with the plan. */
  owned: number[];
}

interface Buffer {
  ptr: number;
  bytes: number;
  born: number;
  died: number;
  refs: number;
}

/** Told the milliseconds of every replayed step when set (bench/profile.ts); unset, steps are not timed. */
let stepObserver: ((graph: Graph, node: Node, ms: number) => void) | undefined;

/** Sets (or with no argument clears) the observer of replayed steps, for profiling. */
export function observeSteps(observer?: (graph: Graph, node: Node, ms: number) => void): void {
  stepObserver = observer;
}

export class Engine {
  readonly order: Node[];
  private readonly runs: OpRun[];
  /** Initializers, float32 ones copied into wasm memory once. */
  private readonly initializers = new Map<string, Value>();
  private readonly plans = new Map<string, Plan>();
  /** The plan holding the arena. */
  private active?: Plan;
  /** Index of the last node that reads each value (graph outputs: never freed). */
  private readonly lastUse = new Map<string, number>();

  constructor(readonly graph: Graph) {
    this.order = fuseConvActivations(fuseQuantizePairs(topologicalOrder(graph), graph), graph);
    // Every op type and node the engine cannot run, named at once.
    const unsupported = this.order.filter((n) => !kernelFor(n));
    if (unsupported.length > 0) {
      const byType = new Map<string, Node[]>();
      for (const n of unsupported) {
        const type = (isOnnxDomain(n) ? "" : `${n.domain}.`) + n.opType;
        byType.set(type, [...byType.get(type) ?? [], n]);
      }
      throw new AttnroundError(
        "UNSUPPORTED_MODEL",
        `unsupported op type${byType.size > 1 ? "s" : ""} ${[...byType.keys()].join(", ")} at ${
          [...byType].map(([type, nodes]) =>
            `node${nodes.length > 1 ? "s" : ""} ${nodes.map((n) => `"${n.name}"`).join(", ")} (${type})`
          ).join("; ")
        }`,
      );
    }
    const variants = this.order.flatMap((node) => {
      const why = unsupportedVariant(node, graph.opset);
      return why ? [`node "${node.name}" (${node.opType}): ${why}`] : [];
    });
    if (variants.length > 0) throw new AttnroundError("UNSUPPORTED_MODEL", variants.join("; "));
    this.runs = this.order.map((n) => kernelFor(n)!);
    for (const [name, t] of graph.initializers) this.initializers.set(name, toEngineValue(t));
    this.order.forEach((node, i) => node.inputs.forEach((name) => name && this.lastUse.set(name, i)));
    for (const out of graph.outputs) this.lastUse.set(out.name, Infinity);
  }

  /** Runs the graph on named inputs and returns the graph outputs as plain Tensors. */
  run(feeds: Record<string, Value>): Record<string, Tensor> {
    const plan = this.plans.get(this.planKey(feeds));
    if (plan) return copyOut(this.replay(plan, feeds));
    const { outputs, plan: made } = this.planAndRun(feeds, true);
    this.plans.set(this.planKey(feeds), made);
    return outputs!;
  }

  /**
   * Runs the graph and returns the outputs where they lie: float32 ones stay in
   * wasm memory, valid until the next run. Inputs may be wasm values too, read
   * where they lie (or copied into the arena if they overlap it) and left
   * unchanged. A new input shape costs one extra (planning) run.
   */
  runInPlace(feeds: Record<string, Value>): Record<string, Value> {
    const key = this.planKey(feeds);
    if (!this.plans.has(key)) this.plans.set(key, this.planAndRun(feeds, false).plan);
    return this.replay(this.plans.get(key)!, feeds);
  }

  /**
   * The memory a run at these inputs' shapes takes (planning it if it is new):
   * the arena's bytes, and the bytes of each non-constant tensor it computes.
   */
  plannedMemory(feeds: Record<string, Value>): { arenaBytes: number; tensorBytes: Map<string, number> } {
    const key = this.planKey(feeds);
    if (!this.plans.has(key)) this.plans.set(key, this.planAndRun(feeds, false).plan);
    const plan = this.plans.get(key)!;
    const tensorBytes = new Map<string, number>();
    for (const step of plan.steps) {
      step.node.outputs.forEach((name, i) =>
        name && i < step.outputBytes.length && tensorBytes.set(name, step.outputBytes[i])
      );
    }
    return { arenaBytes: plan.arenaBytes, tensorBytes };
  }

  private planKey(feeds: Record<string, Value>): string {
    return this.graph.inputs
      .filter((i) => !this.graph.initializers.has(i.name))
      .map((i) => `${i.name}:${feeds[i.name]?.dtype}[${feeds[i.name]?.shape}]`)
      .join(";");
  }

  /** Releases the wasm memory held by cached plans and initializers. */
  dispose(): void {
    for (const plan of this.plans.values()) releasePlan(plan);
    this.plans.clear();
    this.active = undefined;
    for (const v of this.initializers.values()) if (v instanceof WasmValue) free(v.ptr);
    this.initializers.clear();
  }

  /** The planning run; its outputs (with `copy`) are host copies, since its buffers are freed when it ends. */
  private planAndRun(
    feeds: Record<string, Value>,
    copy: boolean,
  ): { outputs?: Record<string, Tensor>; plan: Plan } {
    const env = new Map<string, Value>(this.initializers);
    const known = new Set<string>(["", ...this.initializers.keys()]);
    const buffers: Buffer[] = [];
    const bufferOf = new Map<number, Buffer>();
    const steps: Step[] = [];
    const constants = new Map<string, Value>();
    const owned: number[] = [];
    const inputBuffers = new Map<string, Buffer>();

    const newBuffer = (bytes: number, born: number): Buffer => {
      const b: Buffer = {
        ptr: alloc(Math.max(bytes, ALIGN)),
        bytes: alignUp(bytes),
        born,
        died: Infinity,
        refs: 0,
      };
      buffers.push(b);
      bufferOf.set(b.ptr, b);
      return b;
    };
    const bind = (name: string, v: Value) => {
      env.set(name, v);
      const b = v instanceof WasmValue ? bufferOf.get(v.ptr) : undefined;
      if (b) b.refs++;
    };
    const release = (name: string, step: number) => {
      const v = env.get(name);
      if (!(v instanceof WasmValue)) return;
      const b = bufferOf.get(v.ptr);
      if (b && --b.refs === 0) {
        b.died = step;
        free(b.ptr);
        bufferOf.delete(b.ptr);
      }
    };

    for (const input of this.graph.inputs) {
      if (this.initializers.has(input.name)) continue;
      const feed = checkFeed(input.name, feeds);
      if (feed.dtype === "float32") {
        const b = newBuffer(sizeOf(feed.shape) * 4, -1);
        inputBuffers.set(input.name, b);
        f32(b.ptr, sizeOf(feed.shape)).set(feed.data as Float32Array);
        bind(input.name, new WasmValue(b.ptr, feed.shape));
      } else {
        env.set(input.name, feed);
      }
    }

    try {
      this.order.forEach((node, i) => {
        const foldable = isOnnxOp(node, "Shape", "Size") ||
          node.inputs.every((name) => known.has(name));
        const made: Buffer[] = [];
        let scratch: Buffer | undefined;
        const ctx = contextFor(node, this.graph.opset, (bytes) => {
          const b = newBuffer(bytes, i);
          made.push(b);
          return b.ptr;
        }, (bytes) => {
          if (!scratch || scratch.bytes < bytes) {
            if (scratch) free(scratch.ptr);
            scratch = {
              ptr: alloc(Math.max(bytes, ALIGN)),
              bytes: alignUp(bytes),
              born: i,
              died: i,
              refs: 0,
            };
          }
          return scratch.ptr;
        });
        const outs = runStep(this.runs[i], ctx, node.inputs.map((name) => name ? env.get(name) : undefined));
        if (scratch) free(scratch.ptr);
        node.outputs.forEach((name, k) => name && outs[k] && bind(name, outs[k]));
        if (foldable) {
          // Folded: its buffers belong to the plan, outside the arena.
          for (const b of made) {
            bufferOf.delete(b.ptr);
            buffers.splice(buffers.indexOf(b), 1);
            owned.push(b.ptr);
          }
          node.outputs.forEach((name) => {
            if (!name) return;
            known.add(name);
            constants.set(name, env.get(name)!);
          });
        } else {
          steps.push({
            node,
            run: this.runs[i],
            outputOffsets: [],
            outputBytes: made.map((b) => b.bytes),
            scratchOffset: 0,
            scratchBytes: scratch?.bytes ?? 0,
          });
          for (const b of made) b.born = steps.length - 1;
          if (scratch) buffers.push({ ...scratch, born: steps.length - 1, died: steps.length - 1 });
        }
        // A value nobody reads is dead at once; inputs die at their last reader.
        for (const name of node.outputs) if (name && !this.lastUse.has(name)) release(name, steps.length - 1);
        for (const name of new Set(node.inputs)) {
          if (name && this.lastUse.get(name) === i && !known.has(name)) release(name, steps.length - 1);
        }
      });
      const outputs = copy ? copyOut(this.collectOutputs(env)) : undefined;
      const plan = layoutArena(steps, buffers, inputBuffers, constants, owned);
      return { outputs, plan };
    } finally {
      for (const b of bufferOf.values()) if (!owned.includes(b.ptr)) free(b.ptr);
    }
  }

  private replay(plan: Plan, feeds: Record<string, Value>): Record<string, Value> {
    if (plan !== this.active) {
      // Outputs are valid until the next run, so the last plan's arena can go before this one's is made.
      if (this.active?.arena) free(this.active.arena);
      if (this.active) this.active.arena = 0;
      if (plan.arenaBytes > 0) plan.arena = alloc(plan.arenaBytes);
      this.active = plan;
    }
    const env = new Map<string, Value>(this.initializers);
    for (const [name, v] of plan.constants) env.set(name, v);
    for (const input of this.graph.inputs) {
      if (this.initializers.has(input.name)) continue;
      const feed = checkFeed(input.name, feeds);
      const offset = plan.inputOffsets.get(input.name);
      if (offset === undefined || outsideArena(plan, feed)) {
        // A wasm value outside the arena is read where it lies: no step writes to its inputs.
        env.set(input.name, feed);
      } else {
        f32(plan.arena + offset, sizeOf(feed.shape)).set(feed.data as Float32Array);
        env.set(input.name, new WasmValue(plan.arena + offset, feed.shape));
      }
    }
    for (const step of plan.steps) {
      let k = 0;
      const ctx = contextFor(step.node, this.graph.opset, (bytes) => {
        if (k >= step.outputOffsets.length || alignUp(bytes) > step.outputBytes[k]) {
          throw new AttnroundError(
            "UNSUPPORTED_MODEL",
            `node "${step.node.name}" (${step.node.opType}) changed its output size between runs at the same input shapes: data-dependent shapes are not supported`,
          );
        }
        return plan.arena + step.outputOffsets[k++];
      }, (bytes) => {
        // Scratch shares the arena too: more than the planning run asked for would overwrite live values.
        if (alignUp(bytes) > step.scratchBytes) {
          throw new AttnroundError(
            "UNSUPPORTED_MODEL",
            `node "${step.node.name}" (${step.node.opType}) needs more scratch memory than when it was planned at the same input shapes: data-dependent shapes are not supported`,
          );
        }
        return plan.arena + step.scratchOffset;
      });
      const inputs = step.node.inputs.map((name) => name ? env.get(name) : undefined);
      let outs: Value[];
      if (stepObserver) {
        const t0 = performance.now();
        outs = runStep(step.run, ctx, inputs);
        stepObserver(this.graph, step.node, performance.now() - t0);
      } else {
        outs = runStep(step.run, ctx, inputs);
      }
      step.node.outputs.forEach((name, i) => name && outs[i] && env.set(name, outs[i]));
    }
    return this.collectOutputs(env);
  }

  private collectOutputs(env: Map<string, Value>): Record<string, Value> {
    const result: Record<string, Value> = {};
    for (const out of this.graph.outputs) {
      const v = env.get(out.name);
      if (!v) throw new AttnroundError("INVALID_MODEL", `graph output "${out.name}" is never computed`);
      result[out.name] = v;
    }
    return result;
  }
}

// Runs one op; a float32 result it made on the host (Constant, say) moves into
// wasm memory through the step's own allocator, so replays allocate alike.
// Whatever fails inside names the node.
function runStep(run: OpRun, ctx: OpContext, inputs: (Value | undefined)[]): Value[] {
  try {
    return run(ctx, inputs).map((v) => {
      if (!v || v.dtype !== "float32" || v instanceof WasmValue) return v;
      const moved = ctx.outputF32(v.shape);
      moved.data.set(v.data as Float32Array);
      return moved;
    });
  } catch (e) {
    throw inNode(ctx.node, e);
  }
}

/** An error raised while running `node`, with the node named (a kernel's argument check becomes the model's fault). */
function inNode(node: Node, e: unknown): AttnroundError {
  const where = `node "${node.name}" (${node.opType})`;
  if (e instanceof AttnroundError) {
    if (e.message.startsWith("node ")) return e;
    const code = e.code === "INVALID_ARGUMENT" || e.code === "SHAPE_MISMATCH" ? "INVALID_MODEL" : e.code;
    return new AttnroundError(code, `${where}: ${e.message}`, { cause: e });
  }
  return new AttnroundError("INTERNAL", `${where}: ${(e as Error)?.name}: ${(e as Error)?.message ?? e}`, {
    cause: e,
  });
}

/** Bytes one allocation may take: wasm32 addresses 4 GiB in all, and sizes past it would wrap. */
const MAX_ALLOCATION = 2 ** 32 - 2 ** 16;

function checkSize(node: Node, shape: readonly number[], bytesPerElement: number, what = "its output"): void {
  if (!shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new AttnroundError(
      "INVALID_MODEL",
      `node "${node.name}" (${node.opType}): ${what} has shape [${shape}]`,
    );
  }
  const bytes = sizeOf(shape) * bytesPerElement;
  if (bytes <= MAX_ALLOCATION) return;
  throw new AttnroundError(
    "TOO_LARGE",
    `node "${node.name}" (${node.opType}): ${what} [${shape}] needs ${
      (bytes / 2 ** 30).toFixed(1)
    } GiB, more than wasm memory (4 GiB) can hold`,
  );
}

function contextFor(
  node: Node,
  opset: number,
  allocate: (bytes: number) => number,
  scratch: (bytes: number) => number,
): OpContext {
  const outputF32 = (shape: readonly number[]) => {
    checkSize(node, shape, 4);
    return new WasmValue(allocate(sizeOf(shape) * 4), shape);
  };
  return {
    node,
    opset,
    outputF32,
    output: (shape, dtype) => {
      if (dtype === "float32") return outputF32(shape);
      checkSize(node, shape, arrayOfDtype[dtype].BYTES_PER_ELEMENT);
      return newHostTensor(shape, dtype);
    },
    scratch: (bytes) => {
      checkSize(node, [bytes], 1, "its scratch memory");
      return scratch(bytes);
    },
  };
}

export function newHostTensor(shape: readonly number[], dtype: DType): Tensor {
  return new Tensor(new arrayOfDtype[dtype](sizeOf(shape)), shape, dtype);
}

/** float32 tensors move into wasm memory; others stay as they are. */
function toEngineValue(t: Tensor): Value {
  if (t.dtype !== "float32") return t;
  const v = new WasmValue(alloc(Math.max(t.size * 4, ALIGN)), t.shape);
  v.data.set(t.data as Float32Array);
  return v;
}

/** Host copies of values (wasm views become plain Tensors). */
function copyOut(values: Record<string, Value>): Record<string, Tensor> {
  const result: Record<string, Tensor> = {};
  for (const [name, v] of Object.entries(values)) {
    result[name] = new Tensor(v.data.slice() as TensorData, v.shape, v.dtype);
  }
  return result;
}

function checkFeed(name: string, feeds: Record<string, Value>): Value {
  const feed = feeds[name];
  if (!(feed instanceof Tensor) && !(feed instanceof WasmValue)) {
    throw new AttnroundError(
      "INVALID_ARGUMENT",
      `missing input "${name}": pass { ${name}: new Tensor(data, shape) } (given: ${
        Object.keys(feeds).join(", ") || "nothing"
      })`,
    );
  }
  return feed;
}

// Packs the recorded buffers into one arena: two buffers may share bytes
// when their lifetimes [born, died] do not overlap. Greedy, largest first.
function layoutArena(
  steps: Step[],
  buffers: Buffer[],
  inputBuffers: Map<string, Buffer>,
  constants: Map<string, Value>,
  owned: number[],
): Plan {
  const placed: { offset: number; b: Buffer }[] = [];
  const offsetOf = new Map<Buffer, number>();
  for (const b of [...buffers].sort((x, y) => y.bytes - x.bytes || x.born - y.born)) {
    const clashes = placed.filter((p) => p.b.born <= b.died && b.born <= p.b.died).sort((x, y) =>
      x.offset - y.offset
    );
    let offset = 0;
    for (const p of clashes) {
      if (offset + b.bytes <= p.offset) break;
      offset = Math.max(offset, p.offset + p.b.bytes);
    }
    placed.push({ offset, b });
    offsetOf.set(b, offset);
  }
  const arenaBytes = placed.reduce((m, p) => Math.max(m, p.offset + p.b.bytes), 0);
  // Buffers were recorded per step in allocation order; hand the offsets back.
  const byStep = new Map<number, Buffer[]>();
  for (const b of buffers) {
    if (b.born < 0) continue;
    if (!byStep.has(b.born)) byStep.set(b.born, []);
    byStep.get(b.born)!.push(b);
  }
  steps.forEach((step, s) => {
    const mine = byStep.get(s) ?? [];
    const scratch = step.scratchBytes > 0 ? mine.pop() : undefined;
    step.outputOffsets = mine.map((b) => offsetOf.get(b)!);
    if (scratch) step.scratchOffset = offsetOf.get(scratch)!;
  });
  const inputOffsets = new Map([...inputBuffers].map(([name, b]) => [name, offsetOf.get(b)!]));
  return {
    steps,
    constants,
    inputOffsets,
    arena: 0,
    arenaBytes,
    owned,
  };
}

/** A wasm value whose bytes the arena does not overlap, so that no step of a replay overwrites it. */
function outsideArena(plan: Plan, v: Value): boolean {
  if (!(v instanceof WasmValue)) return false;
  const end = v.ptr + sizeOf(v.shape) * 4;
  return end <= plan.arena || v.ptr >= plan.arena + plan.arenaBytes;
}

function releasePlan(plan: Plan): void {
  if (plan.arena) free(plan.arena);
  for (const ptr of plan.owned) free(ptr);
}
