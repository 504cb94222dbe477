// Data-parallel graph runs (SPEC §13). A GraphRunner loads graphs and runs
// jobs on them: a pool of workers, each with its own wasm instance and its own
// copy of every graph loaded, or this thread when there is one thread (or no
// Workers in the runtime). Both run the jobs through a GraphServer, so the
// results do not depend on the runner: the callers fix how work is split
// (shards, chunks) whatever the number of workers, and combine results in job
// order. Nothing needs SharedArrayBuffer: inputs are copied to the workers,
// outputs transferred back.
import { AttnroundError } from "../../errors.ts";
import type { Graph } from "../../graph/ir.ts";
import { Tensor } from "../../tensor.ts";
import { wasmModule } from "../../wasm.ts";
import {
  type Feeds,
  GraphServer,
  graphToSend,
  receivedFeeds,
  type Reply,
  type Request,
  type RequestBody,
} from "./server.ts";
import { reportedCores, spawnWorker, type WorkerHandle } from "./spawn.ts";

export type { Feeds } from "./server.ts";

export interface GraphRunner {
  /** Threads the jobs run on: the workers, or 1 for this thread. */
  readonly threads: number;
  /** Makes `graph` runnable on every thread; the handle names it to run() and unload(). */
  load(graph: Graph): Promise<number>;
  /**
   * Runs a loaded graph once per job, with the shared feeds and the job's own,
   * and returns the outputs named `outputs` of each job, in job order. The
   * jobs are split into contiguous runs, one per thread. The jobs' buffers
   * may move to the workers (left detached here): give each job buffers of its own.
   */
  run(handle: number, shared: Feeds, jobs: Feeds[], outputs: string[]): Promise<Feeds>[];
  unload(handle: number): void;
  /** Ends the workers and frees the graphs; a run still waiting fails. */
  close(): void;
}

/** Threads at most: far past any machine's cores, a bound on the workers one call may start. */
export const MAX_THREADS = 1024;

/** The number of threads quantize() and runBatched() use unless told: the cores the runtime reports. */
export function defaultThreads(): number {
  return reportedCores();
}

/** `promise`, marked as handled so that a rejection nobody awaits is not reported as unhandled. */
function quiet<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => {});
  return promise;
}

let nextHandle = 1;

/** Runs every job here, in the main thread's wasm instance. */
class LocalRunner implements GraphRunner {
  readonly threads = 1;
  private readonly server = new GraphServer();

  load(graph: Graph): Promise<number> {
    const handle = nextHandle++;
    this.server.load(handle, graph);
    return Promise.resolve(handle);
  }

  run(handle: number, shared: Feeds, jobs: Feeds[], outputs: string[]): Promise<Feeds>[] {
    try {
      return this.server.run(handle, shared, jobs, outputs).map((o) => Promise.resolve(o));
    } catch (e) {
      const failed = quiet(Promise.reject(e));
      return jobs.map(() => failed);
    }
  }

  unload(handle: number): void {
    this.server.unload(handle);
  }

  close(): void {
    this.server.dispose();
  }
}

/** The worker script. Bundles rewrite this name to their own worker bundle's (build/esbuild-common.mjs). */
function workerScript(): URL {
  return new URL("../../worker.ts", import.meta.url);
}

/** Counts the workers started, for the tests that check none outlives its run. */
export const workerCounts = { started: 0, ended: 0 };

class WorkerPool implements GraphRunner {
  private readonly workers: WorkerHandle[] = [];
  private readonly pending = new Map<number, { resolve(r: Reply): void; reject(e: unknown): void }>();
  private nextId = 1;
  private failure?: AttnroundError;

  get threads(): number {
    return this.workers.length;
  }

  /** Starts `count` workers; undefined if the runtime has none or they cannot start. */
  static async open(count: number): Promise<WorkerPool | undefined> {
    const pool = new WorkerPool();
    try {
      const url = workerScript();
      for (let i = 0; i < count; i++) {
        const worker = spawnWorker(url, {
          message: (data) => pool.answer(data as Reply),
          error: (message) => pool.fail(message),
        });
        if (!worker) {
          pool.close();
          return undefined;
        }
        pool.workers.push(worker);
        workerCounts.started++;
      }
      const module = wasmModule();
      await Promise.all(pool.workers.map((w) => pool.request(w, { kind: "init", module })));
      return pool;
    } catch {
      pool.close();
      return undefined;
    }
  }

  private request(worker: WorkerHandle, body: RequestBody, transfer: ArrayBuffer[] = []): Promise<Reply> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise<Reply>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.post({ ...body, id } as Request, transfer);
    });
  }

  private answer(reply: Reply): void {
    const waiting = this.pending.get(reply.id);
    if (!waiting) return;
    this.pending.delete(reply.id);
    if (reply.error) waiting.reject(new AttnroundError(reply.error.code, reply.error.message));
    else waiting.resolve(reply);
  }

  /** A worker failed outside a request: everything waiting fails, and so does all later work. */
  private fail(message: string): void {
    this.stop(new AttnroundError("INTERNAL", `a worker failed: ${message}`));
  }

  private stop(failure: AttnroundError): void {
    this.failure ??= failure;
    for (const waiting of this.pending.values()) waiting.reject(this.failure);
    this.pending.clear();
  }

  async load(graph: Graph): Promise<number> {
    const handle = nextHandle++;
    const sent = graphToSend(graph);
    await Promise.all(this.workers.map((w) => this.request(w, { kind: "load", handle, graph: sent })));
    return handle;
  }

  run(handle: number, shared: Feeds, jobs: Feeds[], outputs: string[]): Promise<Feeds>[] {
    const parts = Math.min(this.workers.length, jobs.length);
    const results: Promise<Feeds>[] = [];
    for (let p = 0; p < parts; p++) {
      const from = Math.floor((p * jobs.length) / parts), to = Math.floor(((p + 1) * jobs.length) / parts);
      // Buffers move to the worker, where cloning would copy them several times: each worker's own
      // copy of the shared feeds, and the jobs' buffers themselves (copied only when they are views).
      const transfer = new Set<ArrayBuffer>();
      const moved = (feeds: Feeds, copy: boolean): Feeds => {
        const out: Feeds = {};
        for (const [name, t] of Object.entries(feeds)) {
          const whole = t.data.byteOffset === 0 && t.data.byteLength === t.data.buffer.byteLength;
          out[name] = copy || !whole ? new Tensor(t.data.slice(), t.shape, t.dtype) : t;
          transfer.add(out[name].data.buffer as ArrayBuffer);
        }
        return out;
      };
      const reply = this.request(this.workers[p], {
        kind: "run",
        handle,
        shared: moved(shared, true),
        jobs: jobs.slice(from, to).map((job) => moved(job, false)),
        outputs,
      }, [...transfer]);
      for (let j = from; j < to; j++) {
        results.push(quiet(reply.then((r) => receivedFeeds(r.outputs![j - from]))));
      }
    }
    return results;
  }

  unload(handle: number): void {
    for (const w of this.workers) quiet(this.request(w, { kind: "unload", handle }));
  }

  close(): void {
    this.stop(new AttnroundError("INTERNAL", "the worker pool was closed while work was waiting"));
    for (const w of this.workers) {
      w.terminate();
      workerCounts.ended++;
    }
    this.workers.length = 0;
  }
}

/**
 * Runs `use` with a runner of `threads` threads (workers when there are more
 * than one and the runtime has them; else this thread), and ends the workers
 * when it settles, however it settles.
 */
export async function withRunner<T>(threads: number, use: (runner: GraphRunner) => Promise<T>): Promise<T> {
  const runner: GraphRunner = (threads > 1 ? await WorkerPool.open(threads) : undefined) ?? new LocalRunner();
  try {
    return await use(runner);
  } finally {
    runner.close();
  }
}

/**
 * Runs a loaded graph on `count` jobs, `job(i)` making the feeds of job i, as
 * many at once as the runner has threads, and hands each job's outputs to
 * `use` in job order. Checks `signal` between rounds.
 */
export async function runJobs(
  runner: GraphRunner,
  handle: number,
  count: number,
  job: (index: number) => Feeds,
  outputs: string[],
  use: (index: number, outputs: Feeds) => void,
  signal?: AbortSignal,
): Promise<void> {
  for (let first = 0; first < count; first += runner.threads) {
    if (signal?.aborted) throw new AttnroundError("ABORTED", "the run was aborted");
    const jobs = Array.from({ length: Math.min(runner.threads, count - first) }, (_, i) => job(first + i));
    const results = runner.run(handle, {}, jobs, outputs);
    for (const [i, result] of results.entries()) use(first + i, await result);
  }
}
