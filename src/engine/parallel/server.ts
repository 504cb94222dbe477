// The side of the worker pool that runs graphs: a GraphServer holds engines by
// handle and runs jobs on them. A worker (worker.ts) serves the main thread's
// requests with one; with a single thread the main thread calls one directly,
// so both paths run the same code. Also what crosses between the two: graphs
// and tensors as structured clones, whose class instances arrive as plain
// objects and are made Tensors again here.
import { Engine } from "../engine.ts";
import { AttnroundError, type ErrorCode } from "../../errors.ts";
import type { AttributeValue, Graph } from "../../graph/ir.ts";
import { Tensor, type TensorData } from "../../tensor.ts";

/** Named input tensors of one run. */
export type Feeds = Record<string, Tensor>;

/** What the main thread asks of a worker. */
export type RequestBody =
  | { kind: "init"; module: WebAssembly.Module }
  | { kind: "load"; handle: number; graph: Graph }
  | { kind: "run"; handle: number; shared: Feeds; jobs: Feeds[]; outputs: string[] }
  | { kind: "unload"; handle: number };

/** A request as sent; every one is answered by a Reply with its id. */
export type Request = RequestBody & { id: number };

export interface Reply {
  id: number;
  outputs?: Feeds[];
  /** What the worker threw, to be thrown again on the main thread as the same AttnroundError. */
  error?: { code: ErrorCode; message: string };
}

export class GraphServer {
  private readonly engines = new Map<number, Engine>();

  load(handle: number, graph: Graph): void {
    this.unload(handle);
    this.engines.set(handle, new Engine(graph));
  }

  /** Runs the graph once per job (the shared feeds with the job's own) and copies out the outputs asked for. */
  run(handle: number, shared: Feeds, jobs: Feeds[], outputs: string[]): Feeds[] {
    const engine = this.engines.get(handle);
    if (!engine) throw new AttnroundError("INTERNAL", `no graph loaded as handle ${handle}`);
    return jobs.map((job) => {
      const out = engine.runInPlace({ ...shared, ...job });
      const copied: Feeds = {};
      for (const name of outputs) {
        const v = out[name];
        if (v) copied[name] = new Tensor(v.data.slice() as TensorData, v.shape, v.dtype);
      }
      return copied;
    });
  }

  unload(handle: number): void {
    this.engines.get(handle)?.dispose();
    this.engines.delete(handle);
  }

  dispose(): void {
    for (const handle of [...this.engines.keys()]) this.unload(handle);
  }
}

/** A typed array that is all of its buffer: cloning a view would copy the whole buffer it looks into. */
function compact<T extends TensorData>(data: T): T {
  return data.byteOffset === 0 && data.byteLength === data.buffer.byteLength ? data : data.slice() as T;
}

function isTensorLike(v: unknown): v is Tensor {
  return typeof v === "object" && v !== null && ArrayBuffer.isView((v as Tensor).data) &&
    "dtype" in v && "shape" in v;
}

function isGraphLike(v: unknown): v is Graph {
  return typeof v === "object" && v !== null && Array.isArray((v as Graph).nodes) &&
    (v as Graph).initializers instanceof Map;
}

/** `graph` with every tensor in it passed through `tensor` (initializers, attribute values, subgraphs). */
function mapTensors(graph: Graph, tensor: (t: Tensor) => Tensor): Graph {
  const value = (v: AttributeValue): AttributeValue => {
    if (Array.isArray(v)) return (v as unknown[]).map((x) => value(x as AttributeValue)) as AttributeValue;
    if (isTensorLike(v)) return tensor(v);
    if (isGraphLike(v)) return mapTensors(v, tensor);
    return v;
  };
  return {
    ...graph,
    nodes: graph.nodes.map((n) => ({
      ...n,
      attributes: new Map([...n.attributes].map(([k, v]) => [k, value(v)])),
    })),
    initializers: new Map([...graph.initializers].map(([k, t]) => [k, tensor(t)])),
  };
}

/** The graph as a worker should receive it: tensors that hold only their own bytes. */
export function graphToSend(graph: Graph): Graph {
  return mapTensors(graph, (t) => new Tensor(compact(t.data), t.shape, t.dtype));
}

/** A received tensor (a plain object after cloning) as a Tensor. */
export function receivedTensor(t: Tensor): Tensor {
  return new Tensor(t.data, t.shape, t.dtype);
}

/** Received feeds or outputs as Tensors. */
export function receivedFeeds(feeds: Feeds): Feeds {
  const out: Feeds = {};
  for (const [name, t] of Object.entries(feeds)) out[name] = receivedTensor(t);
  return out;
}

/** A received graph with its tensors made Tensors again. */
export function receivedGraph(graph: Graph): Graph {
  return mapTensors(graph, receivedTensor);
}

/** An error as a Reply carries it: AttnroundErrors keep their code, anything else is INTERNAL. */
export function errorToSend(e: unknown): Reply["error"] {
  if (e instanceof AttnroundError) return { code: e.code, message: e.message };
  const error = e as Error;
  return { code: "INTERNAL", message: `${error?.name ?? "Error"}: ${error?.message ?? String(e)}` };
}
