// The worker that owns the GPU: it loads the wasm package, brings up burn's WebGPU backend once,
// and does all model work, so the page stays responsive. Messages out: {type, ...}; see app.js.
import init, { initGpu, runProbe } from '../pkg/kinema.js';

const post = (type, fields = {}) => self.postMessage({ type, ...fields });

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
    return;
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
    return;
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
  post('probe', {
    correct: first.correct && second.correct,
    value: second.value,
    expected: second.expected,
    firstMillis: first.millis,
    millis: second.millis,
  });
  first.free();
  second.free();
}

start().catch((err) => post('error', { message: err?.message ?? String(err) }));
