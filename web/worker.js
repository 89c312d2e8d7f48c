// The worker that owns the GPU: it loads the wasm package, brings up burn's WebGPU backend once,
// and does all model work, so the page stays responsive. Messages in and out are specified in
// web/protocol.js; web/kinema-api.js is the page's side.
import init, { initGpu, runProbe } from '../pkg/kinema.js';

import { NOT_WIRED } from './protocol.js';

const post = (type, fields = {}, transfer = []) => self.postMessage({ type, ...fields }, transfer);

// Requests that arrive while the GPU is still being started wait for it (the API only sends them
// after the probe, but a page may not).
let started;
const ready = new Promise((resolve) => (started = resolve));

// Browsers often hand wgpu an empty adapter name; their own GPUAdapterInfo may still say what it is.
async function browserAdapterName() {
  try {
    const info = (await navigator.gpu.requestAdapter())?.info;
    return info ? [info.description, info.vendor, info.architecture].filter(Boolean).join(' / ') : '';
  } catch {
    return '';
  }
}

async function start() {
  if (!('gpu' in navigator) || !navigator.gpu) {
    post('no-webgpu', { reason: 'WebGPU is not available inside a worker in this browser (navigator.gpu is missing).' });
    return false;
  }
  post('status', { text: 'Loading the engine…' });
  await init();

  post('status', { text: 'Starting WebGPU…' });
  let gpu;
  try {
    gpu = await initGpu();
  } catch (err) {
    // Adapter missing or refused: the visitor's browser or machine, not a bug, so the friendly path.
    post('no-webgpu', { reason: `the GPU could not be started (${err.message ?? err}).` });
    return false;
  }
  post('gpu', {
    adapter: gpu.adapter || (await browserAdapterName()),
    backend: gpu.backend,
    shaderF16: gpu.shaderF16,
    maxBufferSize: gpu.maxBufferSize,
    maxStorageBufferBindingSize: gpu.maxStorageBufferBindingSize,
  });
  gpu.free();

  post('status', { text: 'Running a test computation (the first one compiles shaders)…' });
  const first = await runProbe();
  const second = await runProbe();
  const correct = first.correct && second.correct;
  post('probe', {
    correct,
    value: second.value,
    expected: second.expected,
    firstMillis: first.millis,
    millis: second.millis,
  });
  first.free();
  second.free();
  return correct;
}

// ---- Model requests (web/protocol.js). The wasm side plugs in here. ----------------------------

/** {type:'load', files: {path: ArrayBuffer}, manifest} → {type:'loaded', modelId, parameters} */
async function load(_msg) {
  // TODO(wasm): build the model from msg.manifest and msg.files, then
  // post('loaded', { modelId: msg.manifest.id, parameters });
  post('error', { kind: 'internal', message: NOT_WIRED });
}

/**
 * {type:'generate', id, prompt, seed, seconds, steps} → text, step…, chunk… (frames transferred:
 * post('chunk', {...}, frames)), then done; or cancelled / error with the id.
 * Cancellation: `cancelled.has(id)` turns true when the page asks; check it between steps.
 */
async function generate(msg) {
  post('error', { id: msg.id, kind: 'internal', message: NOT_WIRED });
}

const cancelled = new Set();
let running = null; // id of the clip being generated, if any

async function onRequest(msg) {
  const ok = await ready;
  if (!ok) {
    if (msg.type !== 'cancel') post('error', { id: msg.id, kind: 'no-webgpu', message: 'The GPU could not be started, so the model cannot run.' });
    return;
  }
  switch (msg.type) {
    case 'load':
      return load(msg);
    case 'generate':
      cancelled.delete(msg.id);
      running = msg.id;
      try {
        return await generate(msg);
      } finally {
        running = null;
      }
    case 'cancel':
      // The running generation sees this between steps and answers 'cancelled' itself; a clip
      // that is not running (finished, or queued behind a busy worker) is answered at once.
      cancelled.add(msg.id);
      if (running !== msg.id) post('cancelled', { id: msg.id });
      return undefined;
    default:
      post('error', { id: msg.id, kind: 'internal', message: `unknown request ${JSON.stringify(msg.type)}` });
      return undefined;
  }
}

self.addEventListener('message', ({ data }) => {
  onRequest(data).catch((err) => post('error', { id: data?.id, kind: 'internal', message: err?.message ?? String(err) }));
});

start()
  .then(started, (err) => {
    started(false);
    post('error', { message: err?.message ?? String(err), kind: 'internal' });
  });
