// The foundation as a visitor meets it: the page loads the engine in a worker, reaches WebGPU and
// proves the GPU computes; without WebGPU it explains what to do instead of showing a blank page.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { launch, open, serve } from './harness.mjs';

let server;
let url;
before(async () => ({ server, url } = await serve()));
after(() => server?.close());

describe('with WebGPU (SwiftShader adapter)', () => {
  let browser;
  before(async () => (browser = await launch({ webgpu: true })));
  after(() => browser?.close());

  test('the worker reaches WebGPU and computes the known matmul result', async () => {
    const { page, problems } = await open(browser, url);
    await page.waitForSelector('body:is([data-state="ready"], [data-state="failed"], [data-state="no-webgpu"])', { timeout: 120_000 });
    const state = await page.getAttribute('body', 'data-state');
    assert.equal(state, 'ready', `page state; status: ${await page.textContent('#status')}; problems: ${problems.join(' | ')}`);

    assert.equal(await page.getAttribute('#probe', 'data-correct'), 'true');
    const probe = await page.textContent('#probe');
    assert.match(probe, /^256×256 matmul \d+\.\d ms .*: correct$/);
    assert.match(await page.textContent('#gpu-backend'), /WebGpu/i);
    assert.notEqual((await page.textContent('#gpu-adapter')).trim(), '—');
    // SwiftShader has no shader-f16: the page must say f32 compute.
    assert.match(await page.textContent('#gpu-f16'), /^no \(f32 compute\)$/);
    assert.match(await page.textContent('#gpu-max-buffer'), /^\d+ MiB$/);
    assert.match(await page.textContent('#gpu-max-storage'), /^\d+ MiB$/);
    assert.equal(await page.isVisible('#no-webgpu'), false);
    // SwiftShader is a software adapter: the visitor is told clips will be slow.
    assert.equal(await page.isVisible('#software-gpu'), true);
    assert.match(await page.textContent('#software-gpu-name'), /swiftshader/i);
    assert.deepEqual(problems, []);
    await page.close();
  });
});

describe('without WebGPU', () => {
  let browser;
  before(async () => (browser = await launch({ webgpu: false })));
  after(() => browser?.close());

  test('a browser with no navigator.gpu gets the friendly message', async () => {
    const page = await browser.newPage();
    await page.addInitScript(() => {
      Object.defineProperty(Navigator.prototype, 'gpu', { get: () => undefined, configurable: true });
    });
    await page.goto(url);
    await page.waitForSelector('#no-webgpu:not([hidden])', { timeout: 30_000 });
    assert.match(await page.textContent('#no-webgpu-reason'), /no WebGPU/);
    assert.match(await page.textContent('#no-webgpu'), /Chrome or Edge 113\+/);
    assert.equal(await page.getAttribute('body', 'data-state'), 'no-webgpu');
    assert.equal(await page.isVisible('#gpu'), false);
    await page.close();
  });

  test('a browser whose WebGPU finds no adapter gets the friendly message', async () => {
    // Headless Chromium without the SwiftShader flags has navigator.gpu but no adapter, the state
    // of a blocklisted graphics driver.
    const { page } = await open(browser, url);
    await page.waitForSelector('#no-webgpu:not([hidden])', { timeout: 30_000 });
    assert.match(await page.textContent('#no-webgpu-reason'), /no usable GPU adapter|no WebGPU/);
    await page.close();
  });
});
