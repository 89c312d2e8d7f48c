// The worker that owns the GPU: it loads the wasm package, brings up burn's WebGPU backend once,
// and does all model work, so the page stays responsive. Messages in and out are specified in
// web/protocol.js; web/kinema-api.js is the page's side.
import init, { Generator, initCpu, initGpu, runProbe } from '../pkg/kinema.js';

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

// The engine the page chose (web/kinema-api.js decides; see Kinema.create's `backend`): 'webgpu',
// or 'cpu' for browsers without WebGPU or with only a software adapter.
const ENGINE = new URL(self.location.href).searchParams.get('engine') === 'cpu' ? 'cpu' : 'webgpu';

/** Brings up the CPU engine and reports it like a GPU, so the page has one shape to show. */
function startCpu() {
  const cpu = initCpu();
  post('gpu', {
    adapter: cpu.adapter,
    backend: cpu.backend,
    shaderF16: false,
    maxBufferSize: 0,
    maxStorageBufferBindingSize: 0,
  });
  cpu.free();
}

async function start() {
  if (ENGINE === 'cpu') {
    post('status', { text: 'Loading the engine…' });
    await init();
    startCpu();
    return probe();
  }
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
  return probe();
}

/** The known-answer computation, twice (the first run includes shader compilation on a GPU). */
async function probe() {
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

// ---- Model requests (web/protocol.js) ---------------------------------------------------------

/** The loaded model; replaced by the next `load`. */
let generator = null;

/** Which protocol error kind a message from the engine belongs to, so the page offers the right way on. */
function errorKind(message, fallback) {
  if (/out of memory|outofmemory|allocation failed/i.test(message)) return 'out-of-memory';
  // A wasm trap (a panic under panic=abort) or a lost device leaves this engine unusable: the page
  // answers with a fresh worker.
  if (/device (was )?lost|unreachable|RuntimeError/i.test(message)) return 'device-lost';
  if (/^invalid request/i.test(message)) return 'input';
  return fallback;
}

/** {type:'load', files: {path: ArrayBuffer}, manifest} → {type:'loaded', modelId, parameters} */
async function load(msg) {
  generator?.free();
  generator = null;
  try {
    const manifestBytes = new TextEncoder().encode(JSON.stringify(msg.manifest));
    generator = Generator.load(manifestBytes, msg.files);
  } catch (err) {
    const message = err?.message ?? String(err);
    post('error', { kind: errorKind(message, 'model'), message: `The model could not be loaded: ${message}` });
    return;
  }
  post('loaded', { modelId: generator.modelId, parameters: generator.parameters, trained: generator.trained });
}

/**
 * {type:'generate', id, prompt, seed, seconds, steps} → text, step…, chunk… (frames transferred),
 * then done; or cancelled / error with the id. A cancel request calls generator.cancel(), which
 * stops the clip at its next step boundary.
 */
async function generate(msg) {
  const { id } = msg;
  if (!generator) {
    post('error', { id, kind: 'model', message: 'No model is loaded yet.' });
    return;
  }
  const fps = generator.fps;
  const onEvent = (event) => {
    switch (event.type) {
      case 'text':
        post('text', { id, ms: event.ms, unread: event.unread ?? null, tokenLimit: event.tokenLimit });
        break;
      case 'step':
        post('step', { id, chunk: event.chunk, step: event.step, steps: event.steps, ms: event.ms });
        break;
      case 'chunk': {
        const frames = event.frames.map((frame) => frame.buffer);
        const timings = { denoiseStepsMs: event.denoiseStepsMs, decodeMs: event.decodeMs, cacheFillMs: event.cacheFillMs };
        post('chunk', { id, index: event.index, firstFrame: event.firstFrame, width: event.width, height: event.height, fps, frames, timings }, frames);
        break;
      }
      default:
        break; // cache-fill timings also arrive with the chunk's timings
    }
  };
  try {
    const report = await generator.generate(msg.prompt, msg.seed, msg.seconds, msg.steps, onEvent);
    post('done', { id, frames: report.frames, totalMs: report.totalMs });
  } catch (err) {
    const message = err?.message ?? String(err);
    if (cancelled.has(id) && /cancelled/i.test(message)) {
      post('cancelled', { id });
      return;
    }
    const kind = errorKind(message, 'internal');
    if (kind === 'device-lost') generator = null;
    post('error', { id, kind, message });
  }
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
      if (running === msg.id) generator?.cancel();
      else post('cancelled', { id: msg.id });
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
