// Starting a worker in each runtime, behind one small interface. Deno,
// browsers and Bun have the Web Worker global. Node has worker_threads
// instead, reached through process.getBuiltinModule (Node 20.16 and later):
// a feature test, not an import, so that nothing reachable from mod.ts
// imports node:* and bundles for browsers and edge runtimes stay free of
// Node. Where neither exists (edge runtimes) there are no workers.

export interface WorkerHandle {
  post(message: unknown, transfer?: Transferable[]): void;
  terminate(): void;
}

export interface WorkerEvents {
  message(data: unknown): void;
  /** The worker failed outside a request: its script did not load, or it crashed. */
  error(message: string): void;
}

interface NodeWorker {
  on(event: "message" | "error" | "exit", listener: (value: never) => void): void;
  postMessage(message: unknown, transfer?: Transferable[]): void;
  terminate(): Promise<number>;
}

/** A Node built-in module, where the runtime is Node (or offers its built-ins the same way). */
function nodeBuiltin<T>(id: string): T | undefined {
  const process = (globalThis as { process?: { getBuiltinModule?(id: string): unknown } }).process;
  try {
    return process?.getBuiltinModule?.(id) as T | undefined;
  } catch {
    return undefined;
  }
}

/** The cores the runtime reports (navigator.hardwareConcurrency, or Node's os.availableParallelism()); else 1. */
export function reportedCores(): number {
  const navigator = (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator;
  const n = navigator?.hardwareConcurrency ??
    nodeBuiltin<{ availableParallelism?(): number }>("node:os")?.availableParallelism?.();
  return Number.isInteger(n) && n! >= 1 ? n! : 1;
}

// Node's workers have neither onmessage nor postMessage: this gives the worker
// module both, holding back messages that arrive before the module has loaded.
const NODE_SHIM = `
const { parentPort, workerData } = require("node:worker_threads");
const early = [];
parentPort.on("message", (data) => globalThis.onmessage ? globalThis.onmessage({ data }) : early.push(data));
globalThis.postMessage = (message, transfer) => parentPort.postMessage(message, transfer);
import(workerData).then(() => { for (const data of early.splice(0)) globalThis.onmessage({ data }); });
`;

// The runtime's own Web Worker, kept as this module loads: onnxruntime-web,
// where it finds Node's globals (in Node, and in Deno), replaces the global
// Worker with worker_threads' when it starts, whose events never reach onmessage.
const LOADED_WORKER = (globalThis as { Worker?: typeof Worker }).Worker;

/** Starts the module worker at `url`; undefined where the runtime has no workers. */
export function spawnWorker(url: URL, events: WorkerEvents): WorkerHandle | undefined {
  const threads = nodeBuiltin<{ Worker: new (code: string, options: object) => NodeWorker }>(
    "node:worker_threads",
  );
  const nodeWorker = threads?.Worker as unknown;
  const current = (globalThis as { Worker?: typeof Worker }).Worker;
  const web = current !== undefined && current === nodeWorker ? LOADED_WORKER : current;
  const Web = web === nodeWorker ? undefined : web;
  if (Web) {
    const worker = new Web(url, { type: "module" });
    worker.onmessage = (e) => events.message(e.data);
    worker.onerror = (e) => {
      e.preventDefault(); // else Deno ends the whole process
      events.error(e.message || "the worker failed to start or crashed");
    };
    worker.onmessageerror = () => events.error("a message from the worker could not be read");
    return {
      post: (m, transfer) => worker.postMessage(m, transfer ?? []),
      terminate: () => worker.terminate(),
    };
  }
  if (!threads) return undefined;
  let ended = false;
  const worker = new threads.Worker(NODE_SHIM, { eval: true, workerData: url.href });
  worker.on("message", (data: unknown) => events.message(data));
  worker.on("error", (e: Error) => events.error(e?.message ?? String(e)));
  worker.on("exit", (code: number) => ended || events.error(`the worker exited with code ${code}`));
  return {
    post: (m, transfer) => worker.postMessage(m, transfer),
    terminate: () => {
      ended = true;
      void worker.terminate();
    },
  };
}
