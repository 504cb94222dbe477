// Runs the ONNX project's backend test vectors (Debian package libonnx-testdata)
// through the engine: every case whose ops are all supported must match the
// expected outputs within ONNX's usual tolerances (rtol 1e-3, atol 1e-7).
//   deno task test:onnx [substring]
// Prints one line per failure, the skipped op types, and "N passed, N failed".
import { AttnroundError } from "../src/errors.ts";
import { init, loadModel, Tensor } from "../mod.ts";
import { decodeTensorProto } from "../src/onnx/codec.ts";
import { tensorFromProto } from "../src/onnx/tensor-proto.ts";

const root = "/usr/share/libonnx-testdata/data";
const suites = ["node", "pytorch-converted", "pytorch-operator", "simple"];
const filter = Deno.args.find((a) => !a.startsWith("--")) ?? "";
const verbose = Deno.args.includes("--verbose");

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

if (!exists(root)) {
  console.error(`${root} is missing: install it with \`apt-get install libonnx-testdata\``);
  console.log("0 passed, 1 failed");
  Deno.exit(1);
}

await init();

function readTensor(path: string): Tensor {
  return tensorFromProto(decodeTensorProto(Deno.readFileSync(path)));
}

function compare(actual: Tensor, expected: Tensor): string | undefined {
  if (actual.dtype !== expected.dtype) return `dtype ${actual.dtype}, expected ${expected.dtype}`;
  if (actual.shape.join() !== expected.shape.join()) {
    return `shape [${actual.shape}], expected [${expected.shape}]`;
  }
  const float = expected.dtype === "float32" || expected.dtype === "float64";
  for (let i = 0; i < expected.size; i++) {
    const a = Number(actual.data[i]), e = Number(expected.data[i]);
    if (float) {
      if (Number.isNaN(e) ? !Number.isNaN(a) : !(Math.abs(a - e) <= 1e-7 + 1e-3 * Math.abs(e))) {
        return `element ${i} is ${a}, expected ${e}`;
      }
    } else if (a !== e) {
      return `element ${i} is ${a}, expected ${e}`;
    }
  }
  return undefined;
}

let passed = 0, failed = 0, skipped = 0;
const skippedBy = new Map<string, number>();
const failures: string[] = [];

for (const suite of suites) {
  const dir = `${root}/${suite}`;
  if (!exists(dir)) continue;
  const cases = [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => n.includes(filter)).sort();
  for (const name of cases) {
    const caseDir = `${dir}/${name}`;
    if (!exists(`${caseDir}/model.onnx`)) continue;
    let model;
    try {
      model = loadModel(Deno.readFileSync(`${caseDir}/model.onnx`));
    } catch (e) {
      if (e instanceof AttnroundError && e.code === "UNSUPPORTED_MODEL") {
        skipped++;
        const why = e.message.match(/unsupported op types? ([^ ]+(?:, [^ ]+)*) at/)?.[1] ??
          e.message.slice(0, 60);
        for (const op of why.split(", ")) skippedBy.set(op, (skippedBy.get(op) ?? 0) + 1);
        if (verbose) console.log(`skip ${suite}/${name}: ${e.message}`);
        continue;
      }
      failed++;
      failures.push(`${suite}/${name}: load: ${e instanceof Error ? e.message : e}`);
      continue;
    }
    const sets = [...Deno.readDirSync(caseDir)].map((e) => e.name).filter((n) =>
      n.startsWith("test_data_set")
    ).sort();
    let problem: string | undefined;
    try {
      for (const set of sets) {
        const files = [...Deno.readDirSync(`${caseDir}/${set}`)].map((e) => e.name);
        const count = (prefix: string) => files.filter((f) => f.startsWith(prefix)).length;
        const feeds: Record<string, Tensor> = {};
        for (let i = 0; i < count("input_"); i++) {
          feeds[model.inputs[i].name] = readTensor(`${caseDir}/${set}/input_${i}.pb`);
        }
        const out = model.run(feeds);
        for (let i = 0; i < count("output_"); i++) {
          const expected = readTensor(`${caseDir}/${set}/output_${i}.pb`);
          const name = model.outputs[i].name;
          const why = compare(out[name], expected);
          if (why) throw new Error(`${set} output ${name}: ${why}`);
        }
      }
    } catch (e) {
      problem = e instanceof Error ? e.message : String(e);
      if (e instanceof AttnroundError && e.code === "UNSUPPORTED_MODEL") {
        model.dispose();
        skipped++;
        const why = `(${e.message.slice(0, 50)})`;
        skippedBy.set(why, (skippedBy.get(why) ?? 0) + 1);
        if (verbose) console.log(`skip ${suite}/${name}: at run time: ${e.message}`);
        continue;
      }
    }
    model.dispose();
    if (problem) {
      failed++;
      failures.push(`${suite}/${name}: ${problem}`);
    } else {
      passed++;
      if (verbose) console.log(`ok ${suite}/${name}`);
    }
  }
}

for (const f of failures) console.log(`FAILED ${f}`);
const bySkips = [...skippedBy].sort((a, b) => b[1] - a[1]).map(([op, n]) => `${op} ${n}`);
console.log(`\nskipped ${skipped} cases for unsupported ops: ${bySkips.join(", ")}`);
console.log(`onnx backend tests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
if (failed > 0) Deno.exit(1);
