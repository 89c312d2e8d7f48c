// Test fixtures: a tiny synthetic model folder (manifest + files with their sha256) served from a
// pretend CDN through Playwright's page.route(), with switches for the failures a visitor can meet:
// 404s, bit-flipped files, connections cut off mid-file, hosts that ignore Range, no network.
import { createHash } from 'node:crypto';

export const CDN = 'https://cdn.kinema.test/models/tiny/';

function bytes(n, seed) {
  const b = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i += 1) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; // xorshift: reproducible noise
    b[i] = x & 255;
  }
  return b;
}

/** A model folder: files listed out of role order on purpose (the page must fetch in role order). */
export function syntheticModel() {
  const files = new Map([
    ['dit-00.safetensors', { role: 'dit', data: bytes(300_000, 1) }],
    ['decoder-00.safetensors', { role: 'decoder', data: bytes(120_000, 2) }],
    ['tokenizer.json', { role: 'tokenizer', data: Buffer.from(JSON.stringify({ model: { type: 'WordPiece', vocab: { '[CLS]': 101 } } })) }],
    ['text-00.safetensors', { role: 'text', data: bytes(200_000, 3) }],
    ['dit-01.safetensors', { role: 'dit', data: bytes(250_000, 4) }],
  ]);
  const manifest = {
    format: 'kinema-model/1',
    id: 'kinema-test',
    version: '0.0.1',
    architecture: { video: { width: 64, height: 36, fps: 8 } },
    files: [...files].map(([path, f]) => ({ path, role: f.role, size: f.data.length, sha256: createHash('sha256').update(f.data).digest('hex') })),
  };
  return { manifest, files };
}

export const ROLE_ORDER_PATHS = ['tokenizer.json', 'text-00.safetensors', 'dit-00.safetensors', 'dit-01.safetensors', 'decoder-00.safetensors'];

/**
 * Serves `model` at `base` for `page` (or a browser context). Returns the request log and a
 * `faults` object the test changes to break things:
 *   faults.missing     Set of paths answered 404 ('manifest.json' too)
 *   faults.flip        Set of paths served with one bit flipped (every time)
 *   faults.flipOnce    Set of paths served flipped once, then correct
 *   faults.cutOnce     Map path → bytes after which the first response ends (Content-Length says more)
 *   faults.abortOnce   Set of paths whose first request fails at the network level
 *   faults.noRange     ignore Range headers (answer 200 with the whole file)
 *   faults.offline     every request fails as if the network were down
 *   faults.delayMs     answer every file request this late (a slow host)
 */
export async function serveModel(target, { base = CDN, model = syntheticModel() } = {}) {
  const log = [];
  const faults = { missing: new Set(), flip: new Set(), flipOnce: new Set(), cutOnce: new Map(), abortOnce: new Set(), noRange: false, offline: false, delayMs: 0 };
  const cors = { 'Access-Control-Allow-Origin': '*', 'Access-Control-Allow-Headers': 'Range', 'Access-Control-Expose-Headers': 'Content-Length, Content-Range, Accept-Ranges' };
  await target.route(`${base}**`, async (route) => {
    const req = route.request();
    const path = new URL(req.url()).pathname.slice(new URL(base).pathname.length);
    if (req.method() === 'OPTIONS') {
      await route.fulfill({ status: 204, headers: { ...cors, 'Access-Control-Allow-Methods': 'GET, HEAD, OPTIONS' } });
      return;
    }
    const range = (await req.allHeaders()).range ?? null;
    log.push({ path, range });
    if (faults.offline) return route.abort('internetdisconnected');
    if (faults.delayMs && path !== 'manifest.json') await new Promise((r) => setTimeout(r, faults.delayMs));
    if (faults.abortOnce.has(path)) {
      faults.abortOnce.delete(path);
      return route.abort('connectionreset');
    }
    if (faults.missing.has(path)) return route.fulfill({ status: 404, headers: cors, body: 'not found' });
    let body;
    if (path === 'manifest.json') body = Buffer.from(JSON.stringify(model.manifest));
    else if (model.files.has(path)) body = Buffer.from(model.files.get(path).data);
    else return route.fulfill({ status: 404, headers: cors, body: 'not found' });
    if (faults.flip.has(path) || faults.flipOnce.has(path)) {
      faults.flipOnce.delete(path);
      body[Math.floor(body.length / 2)] ^= 0x10;
    }
    const type = path.endsWith('.json') ? 'application/json' : 'application/octet-stream';
    const m = /^bytes=(\d+)-$/.exec(range ?? '');
    if (m && !faults.noRange) {
      const start = Number(m[1]);
      return route.fulfill({ status: 206, headers: { ...cors, 'Content-Type': type, 'Accept-Ranges': 'bytes', 'Content-Range': `bytes ${start}-${body.length - 1}/${body.length}` }, body: body.subarray(start) });
    }
    if (faults.cutOnce.has(path)) {
      // The connection drops: fewer bytes than the Content-Length announced.
      const at = faults.cutOnce.get(path);
      faults.cutOnce.delete(path);
      return route.fulfill({ status: 200, headers: { ...cors, 'Content-Type': type, 'Accept-Ranges': 'bytes', 'Content-Length': String(body.length) }, body: body.subarray(0, at) });
    }
    return route.fulfill({ status: 200, headers: { ...cors, 'Content-Type': type, 'Accept-Ranges': 'bytes' }, body });
  });
  return { log, faults, model };
}

/**
 * A stand-in for web/worker.js that speaks the worker protocol (web/protocol.js) with synthetic
 * frames, so the page's streaming, encoding, download and gallery path is tested without the model.
 * Test code only: the product's worker is never changed. Behaviour by prompt words:
 *   "slow" 150 ms per step (else 5 ms); "oom" out of memory at chunk 1 when seconds > 2;
 *   "lost" device lost at chunk 1 when seconds > 2. Every request is logged to BroadcastChannel
 *   'kinema-test' (see recordWorkerLog).
 */
export const SYNTHETIC_WORKER = `
const log = new BroadcastChannel('kinema-test');
const send = (m, t = []) => self.postMessage(m, t);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
log.postMessage({ type: 'worker-start' });
send({ type: 'status', text: 'Loading the engine…' });
send({ type: 'gpu', adapter: 'Synthetic test GPU', backend: 'BrowserWebGpu', shaderF16: false, maxBufferSize: 268435456, maxStorageBufferBindingSize: 134217728 });
send({ type: 'probe', correct: true, value: 1, expected: 1, firstMillis: 5, millis: 1 });
let model = null;
const cancelled = new Set();
self.onmessage = async ({ data: m }) => {
  const files = m.files ? Object.fromEntries(Object.entries(m.files).map(([k, v]) => [k, v.byteLength])) : undefined;
  log.postMessage({ type: m.type, id: m.id, prompt: m.prompt, seed: m.seed, seconds: m.seconds, steps: m.steps, files, manifestId: m.manifest && m.manifest.id });
  if (m.type === 'load') { model = m.manifest; send({ type: 'loaded', modelId: m.manifest.id, parameters: 1234 }); return; }
  if (m.type === 'cancel') { cancelled.add(m.id); return; }
  if (m.type !== 'generate') return;
  const { width, height, fps } = model.architecture.video;
  const stepMs = m.prompt.includes('slow') ? 150 : 5;
  const t0 = performance.now();
  await sleep(stepMs);
  send({ type: 'text', id: m.id, ms: stepMs });
  for (let chunk = 0; chunk < m.seconds; chunk += 1) {
    for (let step = 1; step <= m.steps; step += 1) {
      if (cancelled.has(m.id)) { send({ type: 'cancelled', id: m.id }); return; }
      await sleep(stepMs);
      send({ type: 'step', id: m.id, chunk, step, steps: m.steps, ms: stepMs });
    }
    if (chunk === 1 && m.seconds > 2 && m.prompt.includes('oom')) { send({ type: 'error', id: m.id, kind: 'out-of-memory', message: 'The GPU ran out of memory at second 2.' }); return; }
    if (chunk === 1 && m.seconds > 2 && m.prompt.includes('lost')) { send({ type: 'error', id: m.id, kind: 'device-lost', message: 'The GPU device was lost at second 2.' }); return; }
    const frames = [];
    for (let f = 0; f < fps; f += 1) {
      const n = chunk * fps + f;
      const px = new Uint8Array(width * height * 4);
      for (let i = 0; i < px.length; i += 4) { px[i] = (n * 16) & 255; px[i + 1] = 128; px[i + 2] = (255 - n * 8) & 255; px[i + 3] = 255; }
      frames.push(px.buffer);
    }
    send({ type: 'chunk', id: m.id, index: chunk, firstFrame: chunk * fps, width, height, fps, frames, timings: { denoiseStepsMs: Array(m.steps).fill(stepMs), decodeMs: 1, cacheFillMs: 1 } }, frames);
  }
  send({ type: 'done', id: m.id, frames: m.seconds * fps, totalMs: performance.now() - t0 });
};
`;

/** Serves SYNTHETIC_WORKER in place of web/worker.js for every page of `context`. */
export async function useSyntheticWorker(context, url) {
  // Any query: the page names its engine in the worker's URL (?engine=…).
  const worker = new URL('web/worker.js', url);
  await context.route((u) => u.origin === worker.origin && u.pathname === worker.pathname, (route) => route.fulfill({ contentType: 'text/javascript', body: SYNTHETIC_WORKER }));
}

/** Collects the worker's request log in window.__workerLog of every page of `context`. */
export async function recordWorkerLog(context) {
  await context.addInitScript(() => {
    window.__workerLog = [];
    new BroadcastChannel('kinema-test').onmessage = ({ data }) => window.__workerLog.push(data);
  });
}
