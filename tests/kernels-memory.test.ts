import assert from "node:assert/strict";
import { init } from "../mod.ts";
import { WasmBuffer, wasmHeapBytes } from "../src/kernels/memory.ts";

await init();

Deno.test("WasmBuffer: zeroed, copied in and out, disposed once however often asked", () => {
  const zeros = new WasmBuffer(5);
  assert.deepEqual(zeros.read(), new Float32Array(5));
  const data = Float32Array.from([1.5, -2, 3.25]);
  const copy = WasmBuffer.from(data);
  assert.equal(copy.length, 3);
  assert.notEqual(copy.ptr, zeros.ptr);
  assert.deepEqual(copy.read(), data);
  copy.write(Float32Array.from([7]));
  assert.deepEqual(copy.read(), Float32Array.from([7, -2, 3.25]));
  copy.f32()[2] = 9;
  assert.deepEqual(copy.read(), Float32Array.from([7, -2, 9]));
  copy.dispose();
  copy.dispose();
  zeros.dispose();
  // Freed once: later blocks are distinct (a block freed twice can be handed out twice).
  const again = [new WasmBuffer(3), new WasmBuffer(5)];
  assert.notEqual(again[0].ptr, again[1].ptr);
  again.forEach((b) => b.dispose());
  assert.ok(wasmHeapBytes() >= 65536);
});
