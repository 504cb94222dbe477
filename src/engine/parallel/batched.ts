// Inference over many samples at once: the feeds are cut along their first
// axis into runs of `batchSize` samples, the runs spread over the threads,
// and the outputs joined again in order. The runs are the same whatever the
// number of threads, so the outputs are too.
import { AttnroundError, isOptions } from "../../errors.ts";
import type { Graph } from "../../graph/ir.ts";
import { arrayOfDtype, Tensor } from "../../tensor.ts";
import { defaultThreads, type Feeds, MAX_THREADS, runJobs, withRunner } from "./pool.ts";

export interface BatchedRunOptions {
  /** Samples per run (default 64). */
  batchSize?: number;
  /** Threads to spread the runs over (default: the cores the runtime reports). */
  threads?: number;
  /** Stops between runs with an ABORTED error. */
  signal?: AbortSignal;
}

const DEFAULT_BATCH = 64;

function invalid(message: string): never {
  throw new AttnroundError("INVALID_ARGUMENT", message);
}

/** The samples [first, first + count) of a tensor whose first axis holds the samples. */
function samples(t: Tensor, first: number, count: number): Tensor {
  const per = t.size / t.shape[0];
  return new Tensor(t.data.slice(first * per, (first + count) * per), [count, ...t.shape.slice(1)], t.dtype);
}

/**
 * Runs `graph` over every sample of `feeds` (each split along its first axis)
 * and returns its outputs with the runs' results joined along the first axis.
 * `check` sees the first run's feeds before anything runs.
 */
export async function runBatched(
  graph: Graph,
  feeds: Feeds,
  options: BatchedRunOptions,
  check: (feeds: Feeds) => void,
): Promise<Record<string, Tensor>> {
  if (!isOptions(options)) invalid("runBatched's options must be an object such as { batchSize: 64 }");
  for (const key of Object.keys(options ?? {})) {
    if (!["batchSize", "threads", "signal"].includes(key)) {
      invalid(`runBatched has no option "${key}" (its options: batchSize, threads, signal)`);
    }
  }
  const { batchSize = DEFAULT_BATCH, threads = defaultThreads(), signal } = options ?? {};
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    invalid(`batchSize must be an integer ≥ 1, got ${batchSize}`);
  }
  if (!Number.isInteger(threads) || threads < 1 || threads > MAX_THREADS) {
    invalid(`threads must be an integer from 1 to ${MAX_THREADS}, got ${threads}`);
  }
  const sizes = new Set(
    Object.values(feeds ?? {}).map((t) => (t instanceof Tensor ? t.shape[0] : undefined)),
  );
  const n = [...sizes][0];
  if (sizes.size !== 1 || n === undefined || n < 1) {
    invalid(
      "runBatched takes Tensors by input name, all with the same number (≥ 1) of samples along the first axis",
    );
  }
  const runs = Math.ceil(n / batchSize);
  const job = (j: number): Feeds => {
    const first = j * batchSize, count = Math.min(batchSize, n - first);
    return Object.fromEntries(Object.entries(feeds).map(([name, t]) => [name, samples(t, first, count)]));
  };
  check(job(0));
  const names = graph.outputs.map((o) => o.name);
  const joined: Record<string, Tensor> = {};
  await withRunner(threads, async (runner) => {
    const handle = await runner.load(graph);
    await runJobs(runner, handle, runs, job, names, (j, out) => {
      const first = j * batchSize, count = Math.min(batchSize, n - first);
      for (const name of names) {
        const t = out[name];
        if (t.shape[0] !== count) {
          throw new AttnroundError(
            "INVALID_ARGUMENT",
            `output "${name}" has shape [${t.shape}] for a run of ${count} samples: its first axis is not the samples', so runBatched cannot join it (use run)`,
          );
        }
        joined[name] ??= new Tensor(
          new arrayOfDtype[t.dtype](n * (t.size / count)),
          [n, ...t.shape.slice(1)],
          t.dtype,
        );
        joined[name].data.set(t.data as never, first * (t.size / count));
      }
    }, signal);
  });
  return joined;
}
