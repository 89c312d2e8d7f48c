// Shared set-up of the headless-browser suite: the project's own static server on a free port and
// Debian's Chromium driven by Playwright, with or without a WebGPU adapter.
import { after, before } from 'node:test';

import { chromium } from 'playwright-core';

import { startServer } from '../../web/tools/serve.mjs';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

// Without a network the browser's background services only produce noise and refused connections.
const QUIET = ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];
// SwiftShader gives headless Chromium a (CPU-backed) WebGPU adapter on machines without a GPU.
const WEBGPU = ['--enable-unsafe-webgpu', '--use-webgpu-adapter=swiftshader', '--enable-features=Vulkan'];

export async function serve() {
  return startServer({ port: 0, log: false });
}

// The machine's own GPU through Vulkan, for benchmarks on a machine that has one.
const HARDWARE_WEBGPU = ['--enable-unsafe-webgpu', '--enable-features=Vulkan', '--ignore-gpu-blocklist'];

export async function launch({ webgpu, adapter = 'swiftshader' }) {
  const gpuArgs = adapter === 'hardware' ? HARDWARE_WEBGPU : WEBGPU;
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: webgpu ? [...QUIET, ...gpuArgs] : QUIET,
  });
}

/** Opens `url` in a fresh page that records console errors and uncaught exceptions. */
export async function open(browser, url) {
  const page = await browser.newPage();
  const problems = [];
  page.on('pageerror', (err) => problems.push(`uncaught: ${err.message}`));
  page.on('console', (msg) => msg.type() === 'error' && problems.push(`console: ${msg.text()}`));
  page.on('response', (res) => res.status() >= 400 && problems.push(`HTTP ${res.status()}: ${res.url()}`));
  await page.goto(url);
  return { page, problems };
}

/**
 * A blank page on the server's origin, for unit tests of the page's modules through
 * `page.evaluate(() => import('/web/…'))`: same origin (Cache Storage, IndexedDB, module imports)
 * without starting the app. The document is answered by the test, not the server.
 */
export async function openBlank(browser, url) {
  // A context of its own: fresh Cache Storage and IndexedDB, and room for a second page (a reload).
  const context = await browser.newContext();
  const page = await context.newPage();
  // The context goes with its last page.
  context.on('page', (p) => p.on('close', () => context.pages().length === 0 && context.close().catch(() => {})));
  page.on('close', () => context.pages().length === 0 && context.close().catch(() => {}));
  const problems = [];
  page.on('pageerror', (err) => problems.push(`uncaught: ${err.message}`));
  page.on('console', (msg) => msg.type() === 'error' && problems.push(`console: ${msg.text()}`));
  const blank = new URL('__blank__.html', url).href;
  await context.route(blank, (route) => route.fulfill({ contentType: 'text/html', body: '<!doctype html><meta charset="utf-8"><title>test</title><body></body>' }));
  await page.goto(blank);
  return { page, problems };
}

/**
 * For a test file: starts the server and one browser before its tests and stops both after them;
 * `onReady({ url, browser })` hands them to the file.
 */
export function useServerAndBrowser({ webgpu }, onReady) {
  let server;
  let browser;
  before(async () => {
    let url;
    ({ server, url } = await serve());
    browser = await launch({ webgpu });
    onReady({ url, browser });
  });
  after(async () => {
    await browser?.close();
    server?.close();
  });
}
