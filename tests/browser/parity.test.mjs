// The browser path is the model's real home, so its numbers are held to the PyTorch reference too:
// the wasm package on WebGPU regenerates the tiny parity model's 2-chunk clip from the fixture's
// noise (models/fixtures/tiny/cases.safetensors, written by models/train/export.py).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { open, useServerAndBrowser } from './harness.mjs';

let url;
let browser;
useServerAndBrowser({ webgpu: true }, (env) => ({ url, browser } = env));

test('WebGPU reproduces the PyTorch generation of the tiny model within one 8-bit level', async () => {
  const { page, problems } = await open(browser, url);
  const r = await page.evaluate(async () => {
    const base = '/models/fixtures/tiny/';
    const buf = await (await fetch(`${base}cases.safetensors`)).arrayBuffer();
    const headerLength = Number(new DataView(buf).getBigUint64(0, true));
    const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 8, headerLength)));
    const tensor = (name) => {
      const [begin, end] = header[name].data_offsets;
      return { shape: header[name].shape, data: new Float32Array(buf.slice(8 + headerLength + begin, 8 + headerLength + end)) };
    };
    const meta = header.__metadata__;
    const chunks = Number(meta.chunks);
    const noise = Array.from({ length: chunks }, (_, c) => tensor(`generate.noise.${c}`).data);
    const expected = tensor('generate.frames'); // [frames, 3, h, w] in [0, 1]

    const manifest = await (await fetch(`${base}manifest.json`)).arrayBuffer();
    const files = {};
    for (const f of JSON.parse(new TextDecoder().decode(manifest)).files) {
      files[f.path] = new Uint8Array(await (await fetch(base + f.path)).arrayBuffer());
    }
    const wasm = await import('/pkg/kinema.js');
    await wasm.default();
    await wasm.initGpu();
    const generator = wasm.Generator.load(new Uint8Array(manifest), files);
    const frames = [];
    await generator.generateFromNoise(JSON.parse(meta.prompts)[0], noise, Number(meta.steps), (event) => {
      if (event.type === 'chunk') frames.push(...event.frames);
    });

    const [count, , h, w] = expected.shape;
    let worst = 0;
    let total = 0;
    for (let f = 0; f < count; f += 1) {
      for (let c = 0; c < 3; c += 1) {
        for (let p = 0; p < h * w; p += 1) {
          const want = Math.round(Math.min(1, Math.max(0, expected.data[(f * 3 + c) * h * w + p])) * 255);
          const diff = Math.abs(frames[f][p * 4 + c] - want);
          worst = Math.max(worst, diff);
          total += diff;
        }
      }
    }
    return { count, got: frames.length, worst, mean: total / (count * 3 * h * w) };
  });
  assert.equal(r.got, r.count, 'every frame of the reference came back');
  // f32 on WebGPU vs f32 in PyTorch differ by ~1e-5 (see tests/rust/parity.rs), which can only
  // tip a value across an 8-bit rounding boundary.
  assert.ok(r.worst <= 1, `largest difference ${r.worst} levels`);
  assert.ok(r.mean < 0.05, `mean difference ${r.mean} levels`);
  assert.deepEqual(problems, []);
  await page.close();
});
