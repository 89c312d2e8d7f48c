// The page: shows what the GPU worker reports. All GPU and model work happens in web/worker.js.
const $ = (id) => document.getElementById(id);

function setState(state, statusText) {
  document.body.dataset.state = state;
  if (statusText) $('status').textContent = statusText;
}

function showNoWebGpu(reason) {
  $('no-webgpu-reason').textContent = reason;
  $('no-webgpu').hidden = false;
  $('gpu').hidden = true;
  setState('no-webgpu', 'WebGPU is not available.');
}

function showError(message) {
  $('error-message').textContent = message;
  $('error').hidden = false;
  setState('failed', 'Stopped by an error (see above).');
}

const mib = (bytes) => `${(bytes / 1048576).toFixed(0)} MiB`;

function onWorkerMessage({ data }) {
  switch (data.type) {
    case 'status':
      setState('working', data.text);
      break;
    case 'no-webgpu':
      showNoWebGpu(data.reason);
      break;
    case 'gpu':
      $('gpu-adapter').textContent = data.adapter || '(name hidden by the browser)';
      $('gpu-backend').textContent = data.backend === 'BrowserWebGpu' ? 'WebGPU (browser)' : data.backend;
      $('gpu-f16').textContent = data.shaderF16 ? 'yes (f16 compute possible)' : 'no (f32 compute)';
      $('gpu-max-buffer').textContent = mib(data.maxBufferSize);
      $('gpu-max-storage').textContent = mib(data.maxStorageBufferBindingSize);
      break;
    case 'probe': {
      const verdict = data.correct ? 'correct' : `WRONG (got ${data.value}, expected ${data.expected})`;
      $('probe').textContent =
        `256×256 matmul ${data.millis.toFixed(1)} ms (first run, with shader compilation, ` +
        `${data.firstMillis.toFixed(0)} ms): ${verdict}`;
      $('probe').dataset.correct = String(data.correct);
      if (data.correct) setState('ready', 'Ready: WebGPU works on this device.');
      else showError('Your GPU returned a wrong result for a test computation, so generated clips would be garbage. Try another browser or update the graphics driver.');
      break;
    }
    case 'error':
      showError(data.message);
      break;
    default:
      console.warn('unknown message from the worker', data);
  }
}

async function main() {
  $('reload').addEventListener('click', () => location.reload());
  // Ask on the page first: it answers at once, before any wasm is fetched.
  if (!('gpu' in navigator) || !navigator.gpu) {
    showNoWebGpu('this browser has no WebGPU (navigator.gpu is missing).');
    return;
  }
  let adapter = null;
  try {
    adapter = await navigator.gpu.requestAdapter();
  } catch (err) {
    showNoWebGpu(`asking for a GPU failed (${err.message}).`);
    return;
  }
  if (!adapter) {
    showNoWebGpu('the browser has WebGPU but found no usable GPU adapter (it may be blocked for this graphics driver).');
    return;
  }
  const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
  worker.addEventListener('message', onWorkerMessage);
  worker.addEventListener('error', (event) => {
    event.preventDefault();
    showError(`The GPU worker failed to start: ${event.message || 'its script could not be loaded (is pkg/ built? run web/tools/build.sh)'}`);
  });
}

main().catch((err) => showError(err?.message ?? String(err)));
