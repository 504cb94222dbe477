// The system packages some suites check against: ONNX's backend test vectors
// (libonnx-testdata), numpy (python3-numpy) and Chromium. On a machine without
// one, its tests are skipped (`ignore`), and one line says which and what to
// install; .ci/run sets ATTNROUND_REQUIRE_SYSTEM=1 (CI installs all three), and
// then the tests run anyway and fail where the package is missing. The paths can be pointed elsewhere
// (ATTNROUND_ONNX_TESTDATA, ATTNROUND_PYTHON, ATTNROUND_CHROMIUM), which is also
// how a fresh machine is tried on one that has them all.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import process from "node:process";

export const ONNX_TESTDATA = process.env.ATTNROUND_ONNX_TESTDATA ?? "/usr/share/libonnx-testdata/data";
export const PYTHON = process.env.ATTNROUND_PYTHON ?? "python3";
export const CHROMIUM = process.env.ATTNROUND_CHROMIUM ?? "/usr/bin/chromium";

/** Whether a missing system package fails (CI) instead of skipping its tests. */
export const requireSystem = process.env.ATTNROUND_REQUIRE_SYSTEM === "1";

/**
 * `missing` is "" when the package is there, else why not. Returns whether the
 * tests of `suite` are to run; prints one line when they are skipped, or when
 * they run although the package they need is missing (and so will fail).
 */
function available(suite: string, missing: string, install: string): boolean {
  if (missing === "") return true;
  if (requireSystem) {
    console.log(`${suite}: ${missing}, and ATTNROUND_REQUIRE_SYSTEM=1 runs them anyway; \`${install}\``);
    return true;
  }
  console.log(`skipping ${suite}: ${missing}; install it with \`${install}\``);
  return false;
}

export function haveOnnxTestdata(suite: string): boolean {
  return available(
    suite,
    existsSync(ONNX_TESTDATA) ? "" : `${ONNX_TESTDATA} is missing`,
    "apt-get install -y libonnx-testdata",
  );
}

/** Why `python3 -c 'import numpy'` cannot run (no python3, no numpy, in Deno no --allow-run), or "". */
function numpyMissing(): string {
  try {
    const result = spawnSync(PYTHON, ["-c", "import numpy"]);
    if (result.error) return `${PYTHON} cannot be run (${result.error.message})`;
    // Deno without --allow-run hands back an empty result rather than throwing.
    if (result.status === undefined || result.status === null) return `${PYTHON} could not be run`;
    if (result.status !== 0) return `${PYTHON} has no numpy`;
    return "";
  } catch (e) {
    return `${PYTHON} cannot be run (${String((e as Error).message ?? e).split("\n")[0]})`;
  }
}

export function haveNumpy(suite: string): boolean {
  return available(suite, numpyMissing(), "apt-get install -y python3-numpy");
}

export function haveChromium(suite: string): boolean {
  return available(
    suite,
    existsSync(CHROMIUM) ? "" : `${CHROMIUM} is missing`,
    "apt-get install -y chromium",
  );
}
