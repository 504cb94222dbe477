import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { quantizationDigest } from "./determinism.ts";

// The same seed must give bit-identical results in Deno and in Node: compute
// the digest here, and in the other runtime as a child process.
Deno.test("quantization is bit-identical in Deno and Node", async () => {
  const here = await quantizationDigest();
  const inDeno = typeof (globalThis as { Deno?: { version?: unknown } }).Deno?.version === "object";
  const [command, args] = inDeno
    ? ["node", ["tests/run-node.mjs", "--main", "tests/determinism.ts"]]
    : ["deno", ["run", "-A", "tests/determinism.ts"]];
  const child = spawnSync(command, args, { encoding: "utf8", cwd: new URL("..", import.meta.url).pathname });
  assert.equal(child.status, 0, `${command} failed: ${child.stderr}`);
  const there = child.stdout.match(/digest ([0-9a-f]{8})/)?.[1];
  assert.ok(there, `no digest in: ${child.stdout}`);
  assert.equal(
    there,
    here,
    `${inDeno ? "Node" : "Deno"} gives ${there}, ${inDeno ? "Deno" : "Node"} ${here}`,
  );
});
