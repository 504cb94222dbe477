// Test fixtures live in tests/fixtures/ (see its README). Read through node:fs
// so the same test files run in Deno and in Node (tests/run-node.mjs keeps
// import.meta.url pointing at this file after bundling).
import { readFileSync } from "node:fs";

/** The bytes of tests/fixtures/NAME. */
export function readFixture(name: string): Uint8Array {
  return new Uint8Array(readFileSync(new URL(`./fixtures/${name}`, import.meta.url)));
}
