// The window kernels' geometry struct is declared on both sides of the wasm
// boundary: assembly/geometry.ts reads the fields src/kernels/geometry.ts
// writes, so the two lists must agree field for field (the kernel tests
// against the references catch most mismatches, this one catches them all).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { GEOMETRY_FIELDS } from "../src/kernels/geometry.ts";

Deno.test("geometry: assembly/geometry.ts declares GEOMETRY_FIELDS, in order, each an i32", () => {
  const source = readFileSync(new URL("../assembly/geometry.ts", import.meta.url), "utf8");
  const body = source.slice(source.indexOf("export class Geometry {"));
  const fields = [...body.matchAll(/^ {2}(\w+): (\w+);$/gm)].map(([, name, type]) => `${name}: ${type}`);
  assert.deepEqual(fields, GEOMETRY_FIELDS.map((name) => `${name}: i32`));
});
