// Encoding: synthetic frames made in the test go through ClipEncoder (WebCodecs + Mediabunny) and
// the file is read back with Mediabunny's demuxer and WebCodecs' decoder: codec, size, frame count,
// duration and metadata must all be right, and encoding must be faster than real time.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { openBlank, useServerAndBrowser } from './harness.mjs';

let url;
let browser;
useServerAndBrowser({ webgpu: true }, (env) => ({ url, browser } = env));

// Runs in the page: encodes `count` frames of a moving gradient, returns the inspection.
async function encodeSynthetic({ width, height, fps, count, codec }) {
  const { ClipEncoder, CODECS, chooseCodec, inspectClip } = await import('/web/encoder.js');
  const chosen = codec ? CODECS.find((c) => c.codec === codec) : await chooseCodec(width, height, fps);
  const metadata = { prompt: 'a red fox in snow', fullPrompt: 'a red fox in snow, pixel art', seed: 42, steps: 3, seconds: count / fps, style: 'pixel', modelId: 'kinema-test' };
  const enc = await ClipEncoder.create({ width, height, fps, metadata, codec: chosen });
  const t0 = performance.now();
  for (let chunk = 0; chunk < count / fps; chunk += 1) {
    const frames = [];
    for (let f = 0; f < fps; f += 1) {
      const n = chunk * fps + f;
      const px = new Uint8Array(width * height * 4);
      for (let y = 0; y < height; y += 1) for (let x = 0; x < width; x += 1) {
        const i = (y * width + x) * 4;
        px[i] = (x + n * 4) & 255; px[i + 1] = (y * 2) & 255; px[i + 2] = (n * 8) & 255; px[i + 3] = 255;
      }
      frames.push(px.buffer);
    }
    await enc.addFrames(frames);
  }
  const file = await enc.finish();
  const ms = performance.now() - t0;
  const info = await inspectClip(file.blob);
  return { chosen: chosen.codec, extension: file.extension, blobType: file.blob.type, size: file.blob.size, frames: file.frames, ms, info };
}

describe('ClipEncoder', () => {
  test('H.264 in MP4 is chosen, decodes back with the right frames, size, duration and metadata, faster than real time', async () => {
    const { page, problems } = await openBlank(browser, url);
    const r = await page.evaluate(encodeSynthetic, { width: 256, height: 144, fps: 16, count: 48 });
    assert.equal(r.chosen, 'avc', 'SwiftShader Chromium encodes H.264 (OpenH264)');
    assert.equal(r.extension, 'mp4');
    assert.equal(r.blobType, 'video/mp4');
    assert.equal(r.frames, 48);
    assert.equal(r.info.codec, 'avc');
    assert.equal(r.info.width, 256);
    assert.equal(r.info.height, 144);
    assert.equal(r.info.packets, 48);
    assert.equal(r.info.frames, 48, 'every frame decodes');
    assert.ok(Math.abs(r.info.duration - 3) < 0.01, `duration ${r.info.duration} s`);
    assert.equal(r.info.title, 'a red fox in snow');
    assert.deepEqual(
      { prompt: r.info.metadata.prompt, seed: r.info.metadata.seed, steps: r.info.metadata.steps, model: r.info.metadata.model, style: r.info.metadata.style },
      { prompt: 'a red fox in snow', seed: 42, steps: 3, model: 'kinema-test', style: 'pixel' },
    );
    assert.ok(r.ms < 3000, `encoding 3 s of video took ${r.ms.toFixed(0)} ms (must be faster than real time)`);
    assert.deepEqual(problems, []);
    await page.close();
  });

  test('the VP9-in-WebM fallback decodes back the same way', async () => {
    const { page, problems } = await openBlank(browser, url);
    const r = await page.evaluate(encodeSynthetic, { width: 256, height: 144, fps: 16, count: 16, codec: 'vp9' });
    assert.equal(r.extension, 'webm');
    assert.equal(r.info.codec, 'vp9');
    assert.equal(r.info.frames, 16);
    assert.equal(r.info.width, 256);
    assert.ok(Math.abs(r.info.duration - 1) < 0.01, `duration ${r.info.duration} s`);
    assert.equal(r.info.metadata?.seed, 42);
    assert.deepEqual(problems, []);
    await page.close();
  });

  test('a browser whose H.264 encoder fails on a real frame falls back to VP9', async () => {
    const { page } = await openBlank(browser, url);
    const chosen = await page.evaluate(async () => {
      // An encoder that claims H.264 but errors on the first frame, the case the real-frame probe is for.
      const Real = VideoEncoder;
      globalThis.VideoEncoder = class extends Real {
        constructor(init) {
          super(init);
          this.init = init;
        }
        configure(config) {
          this.avc = config.codec.startsWith('avc1');
          super.configure(config);
        }
        encode(frame, opts) {
          if (this.avc) return this.init.error(new DOMException('encoder broke', 'EncodingError'));
          return super.encode(frame, opts);
        }
      };
      globalThis.VideoEncoder.isConfigSupported = Real.isConfigSupported.bind(Real);
      const { chooseCodec } = await import('/web/encoder.js');
      return (await chooseCodec(128, 72, 16))?.codec;
    });
    assert.equal(chosen, 'vp9');
    await page.close();
  });
});
