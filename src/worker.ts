// A worker of the pool (parallel/pool.ts): its own wasm instance, from the
// module the main thread compiled, and a GraphServer answering the main
// thread's requests in order. An entry point, like mod.ts and the command
// line, so at the top of the stages: it registers every op the graphs it is
// sent may hold, the quantizers' included. Web-standard only (onmessage,
// postMessage); under Node, parallel/spawn.ts gives it those two.
import "./quant/ops.ts";
import { AttnroundError } from "./errors.ts";
import { initKernels } from "./wasm.ts";
import {
  errorToSend,
  type Feeds,
  GraphServer,
  receivedFeeds,
  receivedGraph,
  type Reply,
  type Request,
} from "./engine/parallel/server.ts";

interface WorkerScope {
  onmessage: ((event: { data: Request }) => void) | null;
  postMessage(message: Reply, transfer?: Transferable[]): void;
}

const scope = globalThis as unknown as WorkerScope;
const server = new GraphServer();

async function handle(request: Request): Promise<Reply> {
  switch (request.kind) {
    case "init":
      await initKernels({ module: request.module }, () => {
        throw new AttnroundError("WASM_INIT_FAILED", "a worker was started without the wasm module");
      });
      return { id: request.id };
    case "load":
      server.load(request.handle, receivedGraph(request.graph));
      return { id: request.id };
    case "run": {
      const jobs = request.jobs.map(receivedFeeds);
      return {
        id: request.id,
        outputs: server.run(request.handle, receivedFeeds(request.shared), jobs, request.outputs),
      };
    }
    case "unload":
      server.unload(request.handle);
      return { id: request.id };
  }
}

// Requests are served one after another: each waits for the one before (init is the only asynchronous one).
let queue: Promise<void> = Promise.resolve();
scope.onmessage = ({ data }) => {
  queue = queue.then(async () => {
    let reply: Reply;
    try {
      reply = await handle(data);
    } catch (e) {
      reply = { id: data.id, error: errorToSend(e) };
    }
    // The outputs' buffers move to the main thread instead of being copied.
    const transfer = (reply.outputs ?? []).flatMap((o: Feeds) => Object.values(o).map((t) => t.data.buffer));
    scope.postMessage(reply, transfer as ArrayBuffer[]);
  });
};
