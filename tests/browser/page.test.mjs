// The whole page as a visitor (or a headless browser following a link) meets it: URL settings,
// model download with progress, the streaming preview and its figures, the finished MP4 (decoded
// back), download, gallery across reloads, Cancel, and the error paths with their ways on.
// The model itself is not needed: web/worker.js is replaced by a stand-in that speaks the worker
// protocol with synthetic frames (tests/browser/fixtures.mjs). The last tests use the real worker.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, test } from 'node:test';

import { CDN, recordWorkerLog, serveModel, syntheticModel, useSyntheticWorker } from './fixtures.mjs';
import { downloadedClip, frameDigests } from './clips.mjs';
import { useServerAndBrowser } from './harness.mjs';

let url;
let browser;
useServerAndBrowser({ webgpu: true }, (env) => ({ url, browser } = env));

/** A fresh profile with the pretend CDN and (unless real) the stand-in worker; records problems. */
async function newVisitor({ realWorker = false, serviceWorkers = 'block', model = undefined } = {}) {
  // Service workers off unless a test is about them: page.route() cannot see what one answers.
  const context = await browser.newContext({ acceptDownloads: true, serviceWorkers });
  const cdn = await serveModel(context, { model });
  if (!realWorker) await useSyntheticWorker(context, url);
  await recordWorkerLog(context);
  const problems = [];
  context.on('page', (page) => {
    page.on('pageerror', (err) => problems.push(`uncaught: ${err.message}`));
    page.on('console', (msg) => msg.type() === 'error' && problems.push(`console: ${msg.text()}`));
  });
  return { context, cdn, problems };
}

const link = (params) => `${url}?${new URLSearchParams({ model: CDN, ...params })}`;
const waitRun = (page, run, timeout = 60_000) => page.waitForSelector(`body[data-run="${run}"]`, { timeout });
const workerLog = (page) => page.evaluate(() => window.__workerLog);

describe('the page with a stand-in worker', () => {
  test("the model folder's notice is shown beside its name, and a link without steps gets the model's own", async () => {
    const model = syntheticModel();
    model.manifest.notice = 'An early checkpoint: clips are blurry and show no subject yet.';
    model.manifest.training = { sampler_steps: 4 };
    const { context, problems } = await newVisitor({ model });
    const page = await context.newPage();
    await page.goto(link({ prompt: 'a red fox', seed: '1', seconds: '1', autostart: '1' }));
    await waitRun(page, 'done');
    assert.match(await page.textContent('#load-text'), /kinema-test is ready/);
    assert.ok(await page.isVisible('#model-notice'));
    assert.equal(await page.textContent('#model-notice'), model.manifest.notice);

    // The steps the manifest names (as the CLI and the model card use them), said in the form;
    // the address keeps meaning "the model's own", the gallery's link names the number made.
    const gen = (await workerLog(page)).find((m) => m.type === 'generate');
    assert.equal(gen.steps, 4);
    assert.equal(await page.inputValue('#steps'), '');
    assert.equal(await page.textContent('#steps option:checked'), 'As trained (4 steps)');
    assert.equal(new URL(page.url()).searchParams.has('steps'), false);
    await page.waitForSelector('#gallery li.clip');
    assert.match(await page.textContent('#gallery li.clip'), /seed 1 · 1 s · 4 steps/);
    assert.equal(new URL(await page.getAttribute('#gallery li.clip a.button:not(.download)', 'href'), url).searchParams.get('steps'), '4');
    assert.deepEqual(problems, []);
    await context.close();
  });

  test('a link with autostart=1 loads the model, streams frames, and ends with a playable, downloadable MP4 in the gallery', async () => {
    const { context, problems } = await newVisitor();
    const page = await context.newPage();
    await page.goto(link({ prompt: 'a red fox', seed: '42', seconds: '2', steps: '2', style: 'pixel', autostart: '1' }));
    await waitRun(page, 'done');

    // The form shows the link's settings.
    assert.equal(await page.inputValue('#prompt'), 'a red fox');
    assert.equal(await page.inputValue('#seed'), '42');
    assert.equal(await page.inputValue('#seconds'), '2');
    assert.equal(await page.inputValue('#steps'), '2');
    assert.equal(await page.inputValue('#style'), 'pixel');

    // The worker got the verified files and the request as the link says.
    const log = await workerLog(page);
    const load = log.find((m) => m.type === 'load');
    assert.equal(load.manifestId, 'kinema-test');
    assert.equal(Object.keys(load.files).length, 5);
    const gen = log.find((m) => m.type === 'generate');
    assert.deepEqual({ prompt: gen.prompt, seed: gen.seed, seconds: gen.seconds, steps: gen.steps }, { prompt: 'pixel art: a red fox', seed: 42, seconds: 2, steps: 2 });

    // Progress and figures.
    assert.match(await page.textContent('#load-text'), /kinema-test is ready \(downloaded 0\.9 MB\)/);
    assert.equal(await page.isVisible('#model-notice'), false, 'a model without a notice gets none');
    assert.match(await page.textContent('#load-overall-text'), /^0\.9 MB of 0\.9 MB, [\d.]+ MB\/s$/);
    assert.match(await page.textContent('#stat-ttff'), /^\d+\.\d s$/);
    assert.equal(await page.textContent('#stat-frames'), '16 of 16');
    assert.match(await page.textContent('#stat-fps'), /^[\d.]+ frames\/s$/);
    assert.equal(await page.textContent('#stat-eta'), 'done');
    assert.ok(Number(await page.getAttribute('#preview', 'data-frames-shown')) >= 1, 'the preview drew frames as they arrived');

    // The player plays the encoded clip.
    await page.waitForFunction(() => document.querySelector('#player').readyState >= 2, null, { timeout: 10_000 });
    const player = await page.evaluate(() => ({ w: player.videoWidth, h: player.videoHeight, d: player.duration, hidden: player.hidden }));
    assert.deepEqual({ w: player.w, h: player.h, hidden: player.hidden }, { w: 64, h: 36, hidden: false });
    assert.ok(Math.abs(player.d - 2) < 0.1, `player duration ${player.d}`);

    // The file: right name, and it decodes back to 16 frames of 64×36 over 2 s with its metadata.
    assert.equal(await page.getAttribute('#download', 'download'), 'a-red-fox-seed-42.mp4');
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
    assert.equal(download.suggestedFilename(), 'a-red-fox-seed-42.mp4');
    const saved = await readFile(await download.path());
    assert.equal(saved.subarray(4, 8).toString('latin1'), 'ftyp', 'an MP4 file');
    const info = await downloadedClip(page);
    assert.equal(info.codec, 'avc');
    assert.equal(info.frames, 16);
    assert.deepEqual([info.width, info.height], [64, 36]);
    assert.ok(Math.abs(info.duration - 2) < 0.01);
    assert.deepEqual({ prompt: info.metadata.prompt, seed: info.metadata.seed, steps: info.metadata.steps, model: info.metadata.model }, { prompt: 'a red fox', seed: 42, steps: 2, model: 'kinema-test' });

    // The gallery keeps it across a reload (and a reload downloads no weights); delete removes it.
    await page.waitForSelector('#gallery li.clip');
    assert.match(await page.textContent('#gallery li.clip'), /a red fox.*seed 42 · 2 s · 2 steps · pixel/s);
    const reload = await context.newPage();
    await reload.goto(url);
    await reload.waitForSelector('body[data-state="ready"]');
    await reload.waitForSelector('#gallery li.clip');
    assert.equal(await reload.locator('#gallery li.clip').count(), 1);
    await reload.click('#gallery li.clip button.play');
    await reload.waitForFunction(() => document.querySelector('#player').readyState >= 2 && !document.querySelector('#player').hidden);
    assert.equal(await reload.getAttribute('#download', 'download'), 'a-red-fox-seed-42.mp4');
    await reload.click('#gallery li.clip button.delete');
    await reload.waitForSelector('#gallery li.clip', { state: 'detached' });
    assert.equal(await reload.isVisible('#gallery-empty'), true);
    assert.deepEqual(problems, []);
    await context.close();
  });

  test('a second clip reuses the cached model: zero weight bytes on a new visit', async () => {
    const { context, cdn, problems } = await newVisitor();
    const page = await context.newPage();
    await page.goto(link({ prompt: 'first visit', seconds: '1', autostart: '1' }));
    await waitRun(page, 'done');
    cdn.log.length = 0;
    const again = await context.newPage();
    await again.goto(link({ prompt: 'second visit', seconds: '1', autostart: '1' }));
    await waitRun(again, 'done');
    assert.deepEqual(cdn.log.map((r) => r.path), ['manifest.json'], 'only the manifest is asked for');
    assert.match(await again.textContent('#load-text'), /from this device, nothing downloaded/);
    assert.deepEqual(problems, []);
    await context.close();
  });

  test('Cancel stops a running clip at once, the page stays responsive, and the next clip works', async () => {
    const { context, problems } = await newVisitor();
    const page = await context.newPage();
    await page.goto(link({ prompt: 'a slow walk', seconds: '6', steps: '3', autostart: '1' }));
    await waitRun(page, 'generating');
    await page.waitForFunction(() => Number(document.querySelector('#preview').dataset.framesShown ?? 0) > 0, null, { timeout: 30_000 });
    // The main thread keeps up while frames stream in (timer lag over half a second).
    const lag = await page.evaluate(() => new Promise((resolve) => {
      let worst = 0;
      let last = performance.now();
      const t = setInterval(() => {
        const now = performance.now();
        worst = Math.max(worst, now - last - 10);
        last = now;
      }, 10);
      setTimeout(() => { clearInterval(t); resolve(worst); }, 500);
    }));
    assert.ok(lag < 200, `main thread blocked for ${lag.toFixed(0)} ms`);
    assert.match(await page.textContent('#stat-eta'), /^about \d/);
    const t0 = Date.now();
    await page.click('#cancel');
    await waitRun(page, 'cancelled', 2000);
    assert.ok(Date.now() - t0 < 2000);
    assert.equal(await page.textContent('#gen-status'), 'Cancelled.');
    assert.equal(await page.isVisible('#download'), false);
    const log = await workerLog(page);
    const gen = log.find((m) => m.type === 'generate');
    assert.ok(log.some((m) => m.type === 'cancel' && m.id === gen.id), 'the worker was told');
    assert.equal(await page.locator('#gallery li.clip').count(), 0, 'a cancelled clip is not kept');

    await page.fill('#prompt', 'a quick one');
    await page.fill('#seconds', '1');
    await page.click('#generate');
    await waitRun(page, 'done');
    assert.equal(await page.locator('#gallery li.clip').count(), 1);
    assert.deepEqual(problems, []);
    await context.close();
  });

  test('Cancel during the model download stops it; Generate again resumes with the files already here', async () => {
    const { context, cdn, problems } = await newVisitor();
    const page = await context.newPage();
    cdn.faults.delayMs = 400;
    await page.goto(link({ prompt: 'a cat', seconds: '1', autostart: '1' }));
    await waitRun(page, 'loading');
    await page.waitForFunction(() => /\((2|3) of 5\)/.test(document.querySelector('#load-file-text').textContent), null, { timeout: 30_000 });
    await page.click('#cancel');
    await waitRun(page, 'cancelled', 2000);
    assert.match(await page.textContent('#load-text'), /Loading cancelled\. Press Generate to continue; files already downloaded are kept\./);
    assert.equal(await page.isVisible('#run-error'), false, 'cancelling is not an error');
    const before = cdn.log.filter((r) => r.path !== 'manifest.json').map((r) => r.path);
    cdn.faults.delayMs = 0;
    cdn.log.length = 0;
    await page.click('#generate');
    await waitRun(page, 'done');
    const after = cdn.log.filter((r) => r.path !== 'manifest.json').map((r) => r.path);
    assert.ok(before.length >= 1 && !after.includes(before[0]), `fetched before: ${before}, after: ${after}`);
    assert.deepEqual(problems, []);
    await context.close();
  });

  test('out of GPU memory mid-clip → a clear message and "Try a 2 s clip", which works', async () => {
    const { context, problems } = await newVisitor();
    const page = await context.newPage();
    await page.goto(link({ prompt: 'oom please', seconds: '4', autostart: '1' }));
    await waitRun(page, 'failed');
    assert.equal(await page.isVisible('#run-error'), true);
    assert.equal(await page.textContent('#run-error-title'), 'Your GPU ran out of memory');
    assert.match(await page.textContent('#run-error-message'), /ran out of memory at second 2\. A shorter clip needs less memory/);
    assert.equal(await page.textContent('#run-shorter'), 'Try a 2 s clip');
    await page.click('#run-shorter');
    await waitRun(page, 'done');
    assert.equal(await page.isVisible('#run-error'), false);
    assert.equal(await page.inputValue('#seconds'), '2');
    assert.match(await page.evaluate(() => location.search), /seconds=2/);
    assert.deepEqual(problems, []);
    await context.close();
  });

  test('device lost mid-clip → a fresh worker, the model back from the cache, and a shorter retry works', async () => {
    const { context, cdn, problems } = await newVisitor();
    const page = await context.newPage();
    await page.goto(link({ prompt: 'lost device', seconds: '4', autostart: '1' }));
    await waitRun(page, 'failed');
    assert.equal(await page.textContent('#run-error-title'), 'The GPU stopped responding');
    cdn.log.length = 0;
    await page.click('#run-shorter');
    await waitRun(page, 'done');
    const log = await workerLog(page);
    assert.equal(log.filter((m) => m.type === 'worker-start').length, 2, 'the worker was restarted');
    assert.equal(log.filter((m) => m.type === 'load').length, 2, 'the model was handed to the new worker');
    assert.deepEqual(cdn.log.map((r) => r.path), ['manifest.json'], 'from the cache');
    assert.deepEqual(problems, []);
    await context.close();
  });

  test('bad link parameters → one clear list, defaults used, no autostart, the page works', async () => {
    const { context, problems } = await newVisitor();
    const page = await context.newPage();
    await page.goto(`${url}?prompt=hello&seconds=99&style=cubism&steps=9&autostart=1`);
    await page.waitForSelector('body[data-state="ready"]');
    assert.equal(await page.isVisible('#params-message'), true);
    const items = await page.locator('#params-problems li').allTextContents();
    assert.equal(items.length, 3);
    assert.match(items.join('\n'), /seconds=99 is out of range/);
    assert.match(items.join('\n'), /style=cubism is not a known style/);
    assert.match(items.join('\n'), /steps=9 is not one of/);
    assert.equal(await page.getAttribute('body', 'data-run'), 'idle', 'no autostart with a bad link');
    assert.equal(await page.inputValue('#seconds'), '4');
    assert.deepEqual(problems, []);
    await context.close();
  });

  test('empty and over-long prompts are refused with a message; nothing is sent; the URL mirrors the form', async () => {
    const { context, problems } = await newVisitor();
    const page = await context.newPage();
    await page.goto(url);
    await page.waitForSelector('body[data-state="ready"]');
    await page.click('#generate');
    assert.match(await page.textContent('#form-message'), /Type a prompt/);
    await page.fill('#prompt', 'x'.repeat(301));
    await page.click('#generate');
    assert.match(await page.textContent('#form-message'), /301 characters long; the limit is 300/);
    assert.equal(await page.textContent('#prompt-count'), '301 / 300');
    assert.deepEqual((await workerLog(page)).filter((m) => m.type !== 'worker-start'), [], 'nothing reached the worker');

    await page.fill('#prompt', 'a boat at dawn');
    await page.selectOption('#style', 'neon');
    await page.uncheck('#seed-random');
    await page.fill('#seed', '7');
    const q = new URLSearchParams(await page.evaluate(() => location.search));
    assert.deepEqual([q.get('prompt'), q.get('style'), q.get('seed')], ['a boat at dawn', 'neon', '7']);
    assert.equal(await page.isVisible('#form-message'), false, 'the message goes once the prompt is fine');
    await page.fill('#seed', '-5');
    await page.click('#generate');
    assert.match(await page.textContent('#form-message'), /The seed must be a whole number/);
    assert.deepEqual(problems, []);
    await context.close();
  });

  test('a corrupted shard on the CDN → a clear message; "Try again" after the host is fixed works', async () => {
    const { context, cdn, problems } = await newVisitor();
    const page = await context.newPage();
    cdn.faults.flip.add('dit-01.safetensors');
    await page.goto(link({ prompt: 'a cat', seconds: '1', autostart: '1' }));
    await waitRun(page, 'failed');
    assert.equal(await page.textContent('#run-error-title'), 'The model could not be loaded');
    assert.match(await page.textContent('#run-error-message'), /dit-01\.safetensors is corrupted: its sha256 is/);
    cdn.faults.flip.clear();
    await page.click('#run-retry');
    await waitRun(page, 'done');
    assert.deepEqual(problems, []);
    await context.close();
  });
});

describe('the page with the real worker and a real model', () => {
  // The tiny parity model (models/fixtures/tiny/, 48×32 video, random weights) runs the same wasm
  // and WebGPU code as kinema-tiny, fast enough on SwiftShader for every test run.
  const TINY = 'models/fixtures/tiny/';
  const real = (params) => `${url}?${new URLSearchParams({ model: TINY, ...params })}`;
  const framesShown = (page) => page.evaluate(() => Number(document.querySelector('#preview').dataset.framesShown ?? 0));

  test('a model folder that is not there → "No model at …", the page keeps working', async () => {
    const { context } = await newVisitor({ realWorker: true });
    const page = await context.newPage();
    await page.goto(`${url}?${new URLSearchParams({ model: 'models/not-there/', prompt: 'a cat', autostart: '1' })}`);
    await waitRun(page, 'failed', 120_000);
    assert.match(await page.textContent('#run-error-message'), /No model at .*models\/not-there\/.*HTTP 404/);
    assert.equal(await page.getAttribute('body', 'data-state'), 'ready');
    await context.close();
  });

  test('a link makes a real clip: frames stream in before it ends, and the MP4 decodes back right', async () => {
    const { context, problems } = await newVisitor({ realWorker: true });
    const page = await context.newPage();
    await page.goto(real({ prompt: 'a red ball bouncing', seed: '7', seconds: '2', steps: '2', backend: 'webgpu', autostart: '1' }));
    // Frames on the canvas while the model is still generating later chunks.
    await page.waitForFunction(
      () => document.body.dataset.run === 'generating' && Number(document.querySelector('#preview').dataset.framesShown ?? 0) > 0,
      null,
      { timeout: 180_000, polling: 50 },
    );
    const shownWhileGenerating = await framesShown(page);
    await waitRun(page, 'done', 180_000);
    assert.ok(shownWhileGenerating < 32, `only ${shownWhileGenerating} of 32 frames were drawn before the end`);
    assert.match(await page.textContent('#load-text'), /kinema-parity-tiny is ready .*not trained yet, so clips show noise/);
    assert.equal(await page.textContent('#stat-frames'), '32 of 32');
    assert.equal(await page.isVisible('#prompt-unread'), false, 'a short prompt is read whole');

    const info = await downloadedClip(page);
    assert.equal(info.codec, 'avc');
    assert.equal(info.frames, 32);
    assert.deepEqual([info.width, info.height], [48, 32]);
    assert.ok(Math.abs(info.duration - 2) < 0.01, `duration ${info.duration}`);
    assert.deepEqual({ prompt: info.metadata.prompt, seed: info.metadata.seed, model: info.metadata.model }, { prompt: 'a red ball bouncing', seed: 7, model: 'kinema-parity-tiny' });
    assert.equal(await page.getAttribute('#download', 'download'), 'a-red-ball-bouncing-seed-7.mp4');
    assert.deepEqual(problems, []);
    await context.close();
  });

  test('the same seed gives identical frames on WebGPU; another seed gives other frames', async () => {
    const { context, problems } = await newVisitor({ realWorker: true });
    const page = await context.newPage();
    await page.goto(url);
    await page.waitForSelector('body[data-state="ready"]', { timeout: 120_000 });
    const digests = await page.evaluate(frameDigests, { model: TINY, backend: 'webgpu', prompt: 'a cat walking', seeds: [11, 11, 12], seconds: 1, steps: 2 });
    assert.equal(digests[0].frames, 16);
    assert.ok(digests[0].distinct > 20, 'the frames are not a flat colour');
    assert.equal(digests[0].hash, digests[1].hash, 'same seed, same frames');
    assert.notEqual(digests[0].hash, digests[2].hash, 'another seed, other frames');
    assert.deepEqual(problems, []);
    await context.close();
  });

  test('Cancel stops a real clip between steps, and the next clip works', async () => {
    const { context, problems } = await newVisitor({ realWorker: true });
    const page = await context.newPage();
    // On WebGPU (SwiftShader) the tiny model's steps take long enough to click between them.
    await page.goto(real({ prompt: 'a long ride', seconds: '8', steps: '4', backend: 'webgpu', autostart: '1' }));
    await page.waitForFunction(() => Number(document.querySelector('#preview').dataset.framesShown ?? 0) > 0, null, { timeout: 180_000 });
    await page.click('#cancel');
    await waitRun(page, 'cancelled', 5_000);
    assert.ok((await framesShown(page)) < 128, 'the clip stopped before its end');
    await page.fill('#seconds', '1');
    // A prompt longer than the tiny model's 32 tokens: the page names the words it did not read.
    await page.fill('#prompt', 'a skier in a red outfit jumps off a ramp on a snowy mountain at sunset while snow falls and the camera follows her down the slope past the pine trees, painted in the style of van gogh');
    await page.click('#generate');
    await waitRun(page, 'done', 180_000);
    assert.equal(await page.textContent('#stat-frames'), '16 of 16');
    assert.match(await page.textContent('#prompt-unread'), /reads the first 32 tokens .* did not read “…trees, painted in the style of van gogh”/);
    assert.deepEqual(problems, []);
    await context.close();
  });

  test('after a first visit the page opens offline and generates with the model saved on this device', async () => {
    const { context } = await newVisitor({ realWorker: true, serviceWorkers: 'allow' });
    const page = await context.newPage();
    const address = real({ prompt: 'a cat', seconds: '1', autostart: '1' });
    await page.goto(address);
    await waitRun(page, 'done', 180_000);
    await page.evaluate(() => navigator.serviceWorker.ready);
    // One more online visit under the service worker, so it keeps the page, its worker and the wasm.
    await page.reload();
    await waitRun(page, 'done', 180_000);
    assert.ok(await page.evaluate(() => !!navigator.serviceWorker.controller));

    await context.setOffline(true);
    const offline = await context.newPage();
    await offline.goto(address);
    await waitRun(offline, 'done', 180_000);
    assert.equal(await offline.getAttribute('body', 'data-state'), 'ready', 'the engine started offline');
    assert.match(await offline.textContent('#load-note'), /cannot be reached; using the copy of the model saved on this device/);
    assert.equal(await offline.textContent('#stat-frames'), '16 of 16');
    await context.close();
  });
});
