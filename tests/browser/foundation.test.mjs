// The foundation as a visitor meets it: the page loads the engine in a worker, reaches WebGPU and
// proves the GPU computes; with only a software adapter or no WebGPU it runs on the CPU engine and
// says why; with WebGPU forced but missing it explains what to do instead of showing a blank page.
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

  test('forced onto WebGPU (?backend=webgpu), the worker computes the known matmul result there', async () => {
    const { page, problems } = await open(browser, `${url}?backend=webgpu`);
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
    assert.equal(await page.isVisible('#cpu-engine'), false);
    assert.deepEqual(problems, []);
    await page.close();
  });

  test('by default a software adapter is passed over for the CPU engine, and the page says why', async () => {
    const { page, problems } = await open(browser, url);
    await page.waitForSelector('body:is([data-state="ready"], [data-state="failed"], [data-state="no-webgpu"])', { timeout: 120_000 });
    assert.equal(await page.getAttribute('body', 'data-state'), 'ready', `status: ${await page.textContent('#status')}; problems: ${problems.join(' | ')}`);
    assert.match(await page.textContent('#status'), /runs on the processor/);
    assert.equal(await page.textContent('#gpu-backend'), 'CPU (WebAssembly)');
    assert.equal(await page.getAttribute('#probe', 'data-correct'), 'true');
    assert.equal(await page.isVisible('#cpu-engine'), true);
    assert.match(await page.textContent('#cpu-engine-reason'), /software renderer \(.*swiftshader.*\)/i);
    assert.equal(await page.isVisible('#software-gpu'), false);
    assert.deepEqual(problems, []);
    await page.close();
  });
  test('?backend=cpu takes the CPU engine even beside a WebGPU adapter', async () => {
    const { page, problems } = await open(browser, `${url}?backend=cpu`);
    await page.waitForSelector('body:is([data-state="ready"], [data-state="failed"])', { timeout: 120_000 });
    assert.equal(await page.getAttribute('body', 'data-state'), 'ready');
    assert.equal(await page.textContent('#gpu-backend'), 'CPU (WebAssembly)');
    assert.match(await page.textContent('#cpu-engine-reason'), /asked for \(backend 'cpu'\)/);
    assert.match(await page.getAttribute('#share', 'href'), /backend=cpu/);
    assert.deepEqual(problems, []);
    await page.close();
  });
});

describe('without WebGPU', () => {
  let browser;
  before(async () => (browser = await launch({ webgpu: false })));
  after(() => browser?.close());

  const hideWebGpu = () => Object.defineProperty(Navigator.prototype, 'gpu', { get: () => undefined, configurable: true });

  test('a browser with no navigator.gpu runs on the CPU engine and says so', async () => {
    const page = await browser.newPage();
    await page.addInitScript(hideWebGpu);
    await page.goto(url);
    await page.waitForSelector('body:is([data-state="ready"], [data-state="failed"], [data-state="no-webgpu"])', { timeout: 120_000 });
    assert.equal(await page.getAttribute('body', 'data-state'), 'ready');
    assert.equal(await page.getAttribute('#probe', 'data-correct'), 'true');
    assert.match(await page.textContent('#cpu-engine-reason'), /no WebGPU/);
    assert.equal(await page.isVisible('#no-webgpu'), false);
    await page.close();
  });

  test('forced onto WebGPU, a browser with no navigator.gpu gets the friendly message', async () => {
    const page = await browser.newPage();
    await page.addInitScript(hideWebGpu);
    await page.goto(`${url}?backend=webgpu`);
    await page.waitForSelector('#no-webgpu:not([hidden])', { timeout: 30_000 });
    assert.match(await page.textContent('#no-webgpu-reason'), /no WebGPU/);
    assert.match(await page.textContent('#no-webgpu'), /Chrome or Edge 113\+/);
    assert.equal(await page.getAttribute('body', 'data-state'), 'no-webgpu');
    assert.equal(await page.isVisible('#gpu'), false);
    await page.close();
  });

  test('forced onto WebGPU, a browser whose WebGPU finds no adapter gets the friendly message', async () => {
    // Headless Chromium without the SwiftShader flags has navigator.gpu but no adapter, the state
    // of a blocklisted graphics driver.
    const { page } = await open(browser, `${url}?backend=webgpu`);
    await page.waitForSelector('#no-webgpu:not([hidden])', { timeout: 30_000 });
    assert.match(await page.textContent('#no-webgpu-reason'), /no usable GPU adapter|no WebGPU/);
    await page.close();
  });
});
