#!/usr/bin/env node
// Benchmark from the browser: loads a model in the real page (Chromium, WebGPU) through the JS API
// and prints model load time, time to first frame, total time and per-stage figures for one clip.
//
//   node tests/bench/browser.mjs [--model models/kinema-tiny/] [--seconds 2] [--steps 2]
//                                [--adapter swiftshader|hardware] [--backend auto|webgpu|cpu]
//                                [--timeout 600]
// Needs `web/tools/setup.sh --test` and `web/tools/build.sh` first. `--adapter hardware` asks
// Chromium for the machine's real GPU (Vulkan) instead of SwiftShader's CPU adapter. `--backend`
// is the page's engine choice (Kinema.create's `backend`): auto takes the CPU engine on a software
// adapter, webgpu forces WebGPU, cpu forces the CPU engine.
import { launch, serve } from '../browser/harness.mjs';

function parseArgs(argv) {
  const o = { model: 'models/kinema-tiny/', seconds: 2, steps: 2, adapter: 'swiftshader', backend: 'auto', timeout: 600 };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    const key = flag?.replace(/^--/, '');
    if (!(key in o) || value === undefined) throw new Error(`unknown or incomplete argument ${flag}`);
    o[key] = typeof o[key] === 'number' ? Number(value) : value;
  }
  if (!Number.isInteger(o.seconds) || o.seconds < 1 || o.seconds > 15) throw new Error('--seconds must be 1 to 15');
  if (!Number.isInteger(o.steps) || o.steps < 1 || o.steps > 8) throw new Error('--steps must be 1 to 8');
  if (!['swiftshader', 'hardware'].includes(o.adapter)) throw new Error('--adapter must be swiftshader or hardware');
  if (!['auto', 'webgpu', 'cpu'].includes(o.backend)) throw new Error('--backend must be auto, webgpu or cpu');
  return o;
}

const fmt = (ms) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(1)} ms`);
const mean = (xs) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const { server, url } = await serve();
  const browser = await launch({ webgpu: true, adapter: o.adapter });
  try {
    const page = await browser.newPage();
    await page.goto(url);
    await page.waitForSelector('body[data-state="ready"], body[data-state="no-webgpu"], body[data-state="failed"]', { timeout: 120_000 });
    const result = await page.evaluate(async ({ model, seconds, steps, backend }) => {
      const { Kinema } = await import('/web/kinema-api.js');
      const kinema = await Kinema.create({ backend });
      const t0 = performance.now();
      const info = await kinema.loadModel(model);
      const loadMs = performance.now() - t0;
      const chunks = [];
      const generation = kinema.generate({ prompt: 'a red ball bouncing on a beach', seed: 1, seconds, steps, onFrames: (b) => chunks.push(b.timings) });
      const clip = await generation.result;
      kinema.terminate();
      return { gpu: kinema.gpu, modelId: info.modelId, parameters: info.parameters, loadMs, bytes: info.bytesFetched + info.bytesFromCache, chunks, clip: { frames: clip.frames, width: clip.width, height: clip.height, fps: clip.fps, totalMs: clip.totalMs, ttff: clip.timeToFirstFrameMs, encodeMs: clip.encodeMs, codec: clip.codec } };
    }, o);
    const { clip, chunks } = result;
    const steps = chunks.flatMap((c) => c.denoiseStepsMs);
    const fills = chunks.map((c) => c.cacheFillMs).filter((x) => x != null);
    console.log(`engine: ${result.gpu?.engine} (--backend ${o.backend}${result.gpu?.engineReason ? `: ${result.gpu.engineReason}` : ''})`);
    console.log(`adapter: ${result.gpu?.adapter || '(hidden)'} (${o.adapter}), shader-f16: ${result.gpu?.shaderF16}`);
    console.log(`model: ${result.modelId}, ${(result.parameters / 1e6).toFixed(1)} M parameters, ${(result.bytes / 1048576).toFixed(1)} MiB, loaded in ${fmt(result.loadMs)}`);
    console.log(`clip: ${o.seconds} s, ${o.steps} steps/chunk → ${clip.frames} frames ${clip.width}×${clip.height} @ ${clip.fps} fps (${clip.codec})`);
    console.log(`time to first frame: ${fmt(clip.ttff)}`);
    console.log(`total: ${fmt(clip.totalMs)} (${(clip.frames / (clip.totalMs / 1000)).toFixed(2)} frames/s; real time is ${clip.fps})`);
    // A chunk's frames are handed over before its KV-cache fill runs, so fills are only in the total.
    const fill = fills.length ? `cache fill ${fmt(mean(fills))} (n=${fills.length})` : 'cache fill in the total only';
    console.log(`per stage: denoise step ${fmt(mean(steps))} (n=${steps.length}) | ${fill} | decode ${fmt(mean(chunks.map((c) => c.decodeMs)))}/chunk (n=${chunks.length}) | encode ${fmt(clip.encodeMs)}`);
  } finally {
    await browser.close();
    server.close();
  }
}

const timer = setTimeout(() => {
  console.error('bench: gave up after --timeout seconds');
  process.exit(2);
}, (Number(process.argv[process.argv.indexOf('--timeout') + 1]) || 600) * 1000);
timer.unref();
main().catch((err) => {
  console.error(`bench: ${err.message}`);
  process.exit(1);
});
