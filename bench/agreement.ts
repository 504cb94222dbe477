// How closely the deploy-form (W8A8) exports of the fixture models agree with
// q.run in onnxruntime-node and onnxruntime-web: the share of 300 test images
// whose every output lies within 1e-4·(1 + |y|) of q.run's, after 20
// iterations per block on 256 calibration images (as tests/export.test.ts
// quantizes them), one model per argument.
//
//   deno task bench:agreement [MODEL ...]   (default: the four fixture models)
import { init, loadModel, quantize, readNpz } from "../mod.ts";
import { imagesToInput, readFixture, rows } from "../tests/fixtures.ts";
import { ortNodeRun } from "../tests/ort.ts";
import { ortWebRun } from "../tests/ort-web.ts";
import { withinFloatRounding } from "../tests/helpers.ts";

const IMAGES = 300;
const models = Deno.args.length > 0
  ? Deno.args
  : ["tiny_cnn_fmnist", "resnet18_fmnist", "mobilenetv2_fmnist", "vit_fmnist"];

/** Share of samples whose every output agrees to float rounding. */
function exactShare(ours: Float32Array, theirs: Float32Array, samples: number): number {
  const per = ours.length / samples;
  let exact = 0;
  for (let r = 0; r < samples; r++) {
    let close = true;
    for (let c = r * per; c < (r + 1) * per && close; c++) {
      close = withinFloatRounding(theirs[c], ours[c]);
    }
    if (close) exact++;
  }
  return exact / samples;
}

await init();
const calibration = rows(imagesToInput(readNpz(readFixture("calib.npz")).x), 0, 256);
const test = rows(imagesToInput(readNpz(readFixture("test.npz")).x), 0, IMAGES);
console.log(`| model | onnxruntime-node | onnxruntime-web |\n| --- | ---: | ---: |`);
for (const name of models) {
  const model = loadModel(readFixture(`${name}.onnx`));
  const q = await quantize(model, calibration, {
    weightBits: 8,
    activationBits: 8,
    iterations: 20,
    holdout: 0,
  });
  const bytes = q.toOnnx(), input = model.graph.inputs[0].name;
  const ours = Object.values(q.run({ [input]: test }))[0].data as Float32Array;
  const shares: string[] = [];
  for (const run of [ortNodeRun, ortWebRun]) {
    const theirs = Object.values(await run(bytes, { [input]: test }))[0].data as Float32Array;
    shares.push(`${(100 * exactShare(ours, theirs, IMAGES)).toFixed(1)} %`);
  }
  console.log(`| ${name} | ${shares.join(" | ")} |`);
  q.dispose();
  model.dispose();
}
