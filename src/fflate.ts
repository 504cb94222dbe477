// The one place fflate is imported, so its version is pinned once.
// A full `npm:` specifier because a remote Deno importer has no import map;
// tests/run-node.mjs maps it to the package in node_modules for Node.
// deno-lint-ignore no-import-prefix
import { Inflate, inflateSync, zipSync } from "npm:fflate@0.8.3";

// inflateSync: for the tests only (the library inflates in slices, see src/data/zip.ts).
export { Inflate, inflateSync, zipSync };
