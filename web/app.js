// The page. It talks to the engine only through web/kinema-api.js; everything here is the visitor's
// side: the form and its URL mirror, progress for every wait, the streaming preview, the player,
// the download and the gallery, and a message with a way on for every failure.
import { Gallery } from './gallery.js';
import { Kinema } from './kinema-api.js';
import { DEFAULT_MODEL, MAX_PROMPT_CHARS, MAX_SEED, PRESETS, STYLES, checkModelUrl, checkPrompt, parseParams, randomSeed, toSearch } from './params.js';

const $ = (id) => document.getElementById(id);

// ------------------------------------------------------------------ formatting

const mib = (bytes) => `${(bytes / 1048576).toFixed(0)} MiB`;
const mb = (bytes) => `${(bytes / 1e6).toFixed(1)} MB`;
const secs = (ms) => (ms < 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 1000)} s`);
const duration = (ms) => (ms >= 60_000 ? `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s` : secs(ms));

// ------------------------------------------------------------------ page states

function setState(state, statusText) {
  document.body.dataset.state = state;
  if (statusText) $('status').textContent = statusText;
}

/** What the clip area is doing; tests and styles read body[data-run]. */
function setRun(run) {
  document.body.dataset.run = run;
  const busy = run === 'loading' || run === 'generating' || run === 'encoding';
  $('generate').disabled = busy;
  $('cancel').hidden = !busy;
}

function showNoWebGpu(reason) {
  $('no-webgpu-reason').textContent = reason;
  $('no-webgpu').hidden = false;
  $('gpu').hidden = true;
  $('create').hidden = true;
  setState('no-webgpu', 'WebGPU is not available.');
}

function showError(message) {
  $('error-message').textContent = message;
  $('error').hidden = false;
  $('create').hidden = true;
  setState('failed', 'Stopped by an error (see above).');
}

/** A failure of one load or clip: the page stays usable, the visitor gets a message and a button. */
function showRunError(title, message, { retry = true, shorter = null } = {}) {
  $('run-error-title').textContent = title;
  $('run-error-message').textContent = message;
  $('run-retry').hidden = !retry;
  $('run-shorter').hidden = !shorter;
  if (shorter) {
    $('run-shorter').textContent = `Try a ${shorter} s clip`;
    $('run-shorter').dataset.seconds = String(shorter);
  }
  $('run-error').hidden = false;
}
const hideRunError = () => ($('run-error').hidden = true);

// ------------------------------------------------------------------ the form and the URL

const MODEL_STEPS_LABEL = 'As trained';

function fillSelects() {
  // '' is the model's own number (settings.steps null); its label names it once a model is loaded
  $('steps').append(new Option(MODEL_STEPS_LABEL, ''));
  for (const p of PRESETS) $('steps').append(new Option(p.label, String(p.steps)));
  for (const s of STYLES) $('style').append(new Option(s.label, s.id));
}

function applySettings(s) {
  $('prompt').value = s.prompt;
  $('seconds').value = String(s.seconds);
  $('steps').value = s.steps === null ? '' : String(s.steps);
  $('style').value = s.style;
  $('model').value = s.model;
  $('seed-random').checked = s.seed === null;
  $('seed').value = s.seed === null ? '' : String(s.seed);
  updateFormHints();
}

/** The form's settings and the problems with them (sentences). */
/** The engine the page's link asked for (?backend=…); no form control, but links keep it. */
let linkBackend = 'auto';

function readForm() {
  const problems = [];
  const prompt = $('prompt').value;
  const seedText = $('seed').value.trim();
  let seed = null;
  if (!$('seed-random').checked) {
    if (/^\d+$/.test(seedText) && Number(seedText) <= MAX_SEED) seed = Number(seedText);
    else problems.push(`The seed must be a whole number from 0 to ${MAX_SEED} (or tick "random seed").`);
  }
  const model = $('model').value.trim() || DEFAULT_MODEL;
  const checked = checkModelUrl(model);
  if (!checked.ok) problems.push(checked.problem.replace(/; the default model is used\.$/, '.'));
  return {
    settings: { prompt, seed, seconds: Number($('seconds').value), steps: $('steps').value === '' ? null : Number($('steps').value), style: $('style').value, model: checked.ok ? checked.url : model, backend: linkBackend, autostart: false },
    problems,
  };
}

function updateFormHints() {
  const n = $('prompt').value.trim().length;
  $('prompt-count').textContent = `${n} / ${MAX_PROMPT_CHARS}`;
  $('prompt-count').classList.toggle('over', n > MAX_PROMPT_CHARS);
  $('seconds-out').textContent = `${$('seconds').value} s`;
  $('seed').disabled = $('seed-random').checked;
  const model = $('model').value.trim() || DEFAULT_MODEL;
  $('model-summary').textContent = model === DEFAULT_MODEL ? 'kinema-tiny (this site)' : model;
}

/** Mirrors the form into the address bar, so the URL always reproduces what is on screen. */
function mirrorToUrl() {
  const { settings } = readForm();
  const search = toSearch(settings);
  history.replaceState(null, '', `${location.pathname}${search}`);
  $('share').href = `${location.pathname}${search}`;
}

function showFormMessage(problems) {
  $('form-message').hidden = problems.length === 0;
  $('form-message').textContent = problems.join(' ');
}

// ------------------------------------------------------------------ model loading

let kinema = null;
let loadedFrom = null; // the model address the loaded model came from
let abortLoad = null;
let generation = null;

function showLoadProgress(p) {
  $('model-load').hidden = false;
  if (p.total) {
    $('load-overall').max = p.total;
    $('load-overall').value = p.bytes;
    const speed = p.bytesPerSecond ? `, ${(p.bytesPerSecond / 1e6).toFixed(1)} MB/s` : '';
    $('load-overall-text').textContent = `${mb(p.bytes)} of ${mb(p.total)}${speed}`;
  }
  if (p.file) {
    $('load-file').max = p.fileSize || 1;
    $('load-file').value = p.fileBytes;
    $('load-file-text').textContent = `${p.file} (${p.fileIndex + 1} of ${p.fileCount}): ${mb(p.fileBytes)} of ${mb(p.fileSize)}`;
  }
  const text = {
    manifest: 'Reading the model index…',
    download: 'Downloading the model (once; later visits load it from this device)…',
    cached: 'Loading the model from this device…',
    verify: 'Checking the files…',
    done: 'Files ready.',
    gpu: 'Handing the model to the GPU…',
  }[p.phase];
  if (p.phase === 'retry') $('load-text').textContent = p.message;
  else if (text) $('load-text').textContent = text;
  if (p.message && /saved|cache|storage|device/i.test(p.message) && p.phase !== 'done') {
    $('load-note').hidden = false;
    $('load-note').textContent = p.message;
  }
}

async function ensureModel(modelUrl) {
  if (kinema.model && loadedFrom === modelUrl) return kinema.model;
  setRun('loading');
  $('load-note').hidden = true;
  $('model-notice').hidden = true;
  abortLoad = new AbortController();
  try {
    const model = await kinema.loadModel(modelUrl, { onProgress: showLoadProgress, signal: abortLoad.signal });
    loadedFrom = modelUrl;
    $('load-text').textContent = `${model.modelId} is ready${model.bytesFetched ? ` (downloaded ${mb(model.bytesFetched)})` : ' (from this device, nothing downloaded)'}.` +
      (model.trained ? '' : ' Its video networks are not trained yet, so clips show noise.');
    // the publisher's word on what its clips look like (an early checkpoint, say), so a blurry
    // clip reads as the model's state, not as a broken page
    $('model-notice').hidden = !model.notice;
    $('model-notice').textContent = model.notice ?? '';
    $('steps').options[0].textContent = `${MODEL_STEPS_LABEL} (${model.steps} steps)`;
    if (model.notes.length) {
      $('load-note').hidden = false;
      $('load-note').textContent = model.notes.join(' ');
    }
    return model;
  } finally {
    abortLoad = null;
  }
}

// ------------------------------------------------------------------ the streaming preview

/** Plays frames on the canvas at the clip's frame rate as they arrive. */
class Preview {
  constructor(canvas) {
    this.canvas = canvas;
    this.ctx = canvas.getContext('2d');
    this.queue = [];
    this.shown = 0;
    this.raf = 0;
  }

  reset() {
    cancelAnimationFrame(this.raf);
    this.raf = 0;
    this.queue = [];
    this.shown = 0;
    this.ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
  }

  push(batch) {
    if (this.canvas.width !== batch.width || this.canvas.height !== batch.height) {
      this.canvas.width = batch.width;
      this.canvas.height = batch.height;
    }
    this.fps = batch.fps;
    for (const f of batch.frames) this.queue.push(new ImageData(f, batch.width, batch.height));
    if (!this.raf) this.#tick(performance.now());
  }

  #tick(now) {
    this.nextAt ??= now;
    if (this.queue.length && now >= this.nextAt) {
      this.ctx.putImageData(this.queue.shift(), 0, 0);
      this.shown += 1;
      this.canvas.dataset.framesShown = String(this.shown);
      // When generation is faster than playback the preview still plays at the clip's speed.
      this.nextAt = Math.max(this.nextAt + 1000 / this.fps, now - 1000 / this.fps);
    }
    this.raf = this.queue.length ? requestAnimationFrame((t) => this.#tick(t)) : 0;
    if (!this.raf) this.nextAt = null;
  }
}

let preview;
let playerUrl = null;

function showClip(clip) {
  if (playerUrl) URL.revokeObjectURL(playerUrl);
  playerUrl = URL.createObjectURL(clip.blob);
  const player = $('player');
  player.src = playerUrl;
  player.hidden = false;
  $('preview').hidden = true;
  player.play().catch(() => {}); // autoplay may be refused; the controls are there
  const dl = $('download');
  dl.href = playerUrl;
  dl.download = clip.filename;
  dl.textContent = `Download ${clip.extension.toUpperCase()}`;
  dl.hidden = false;
  $('clip-info').textContent = `${clip.filename} · ${clip.width}×${clip.height}, ${clip.frames} frames at ${clip.fps} fps · seed ${clip.seed} · ${(clip.blob.size / 1024).toFixed(0)} KiB`;
}

function showStats(s) {
  $('stat-ttff').textContent = s.timeToFirstFrameMs === null ? '—' : secs(s.timeToFirstFrameMs);
  $('stat-frames').textContent = s.framesTotal ? `${s.framesDone} of ${s.framesTotal}` : String(s.framesDone);
  $('stat-fps').textContent = s.framesDone ? `${s.framesPerSecond.toFixed(1)} frames/s` : '—';
  $('stat-eta').textContent = s.stage === 'done' ? 'done' : s.etaMs === null ? 'estimating…' : `about ${duration(s.etaMs)}`;
  const progress = $('gen-progress');
  progress.max = s.chunksTotal * s.steps;
  progress.value = Math.min(progress.max, s.chunksDone * s.steps + (s.chunksDone === s.chunk ? s.step : 0));
  const status = {
    text: 'Reading the prompt…',
    denoise: `Second ${Math.min(s.chunksDone + 1, s.chunksTotal)} of ${s.chunksTotal}: step ${s.step || 1} of ${s.steps}…`,
    encode: 'Finishing the video file…',
  }[s.stage];
  if (status) $('gen-status').textContent = status;
  showUnreadPrompt(s);
}

/** A prompt longer than the model reads loses its end; say which words, or they vanish unseen. */
function showUnreadPrompt(s) {
  const note = $('prompt-unread');
  note.hidden = !s.unreadPrompt;
  if (s.unreadPrompt) {
    note.textContent = `The model reads the first ${s.promptTokenLimit} tokens of a prompt (about as many words), so it did not read “…${s.unreadPrompt}”. Put what matters most first.`;
  }
}

// ------------------------------------------------------------------ generating

let lastRequest = null;

async function run(settings) {
  hideRunError();
  lastRequest = settings;
  const promptProblems = checkPrompt(settings.prompt);
  if (promptProblems.length) {
    showFormMessage(promptProblems);
    $('prompt').focus();
    return;
  }
  try {
    await ensureModel(settings.model);
  } catch (err) {
    setRun('failed');
    if (err?.name === 'AbortError') {
      setRun('cancelled');
      $('load-text').textContent = 'Loading cancelled. Press Generate to continue; files already downloaded are kept.';
      return;
    }
    showRunError('The model could not be loaded', err.message ?? String(err));
    return;
  }

  const seed = settings.seed ?? randomSeed();
  // A random seed is shown, so a clip the visitor likes can be made again.
  $('seed-last').hidden = settings.seed !== null;
  $('seed-last').textContent = `this clip: seed ${seed}`;
  $('output').hidden = false;
  $('player').hidden = true;
  $('player').removeAttribute('src');
  $('preview').hidden = false;
  $('download').hidden = true;
  $('prompt-unread').hidden = true;
  $('clip-info').textContent = `seed ${seed}`;
  $('output').dataset.seed = String(seed);
  preview.reset();
  setRun('generating');
  $('gen-status').textContent = 'Starting…';
  try {
    generation = kinema.generate({
      prompt: settings.prompt, seed, seconds: settings.seconds, steps: settings.steps, style: settings.style,
      onFrames: (batch) => preview.push(batch),
      onProgress: (s) => {
        if (s.stage === 'encode') setRun('encoding');
        showStats(s);
      },
    });
  } catch (err) {
    setRun('failed');
    showRunError('The clip could not be started', err.message);
    return;
  }
  const gen = generation;
  // The ETA ticks down between worker messages too.
  const ticker = setInterval(() => showStats(gen.stats()), 500);
  try {
    const clip = await gen.result;
    showStats(gen.stats());
    $('gen-status').textContent = `Done in ${secs(clip.totalMs)} (video encoded in ${secs(clip.encodeMs)}).`;
    showClip(clip);
    setRun('done');
    await saveToGallery(clip);
  } catch (err) {
    $('stat-eta').textContent = '—';
    if (err?.name === 'AbortError') {
      setRun('cancelled');
      $('gen-status').textContent = 'Cancelled.';
      return;
    }
    setRun('failed');
    $('gen-status').textContent = 'Stopped by an error.';
    onGenerationError(err, settings);
  } finally {
    clearInterval(ticker);
    if (generation === gen) generation = null;
  }
}

function onGenerationError(err, settings) {
  const shorter = settings.seconds > 1 ? Math.max(1, Math.floor(settings.seconds / 2)) : null;
  switch (err.kind) {
    case 'out-of-memory':
      showRunError('Your GPU ran out of memory', `${err.message} A shorter clip needs less memory; closing other tabs that use the GPU also helps.`, { shorter });
      break;
    case 'device-lost':
      showRunError('The GPU stopped responding', `${err.message} This happens when the graphics driver resets or the GPU is needed elsewhere. The model reloads from this device; a shorter clip is less likely to hit it again.`, { shorter });
      break;
    case 'input':
      showRunError('Please check the settings', err.message, { retry: false });
      break;
    case 'model':
      showRunError('The model failed', err.message);
      break;
    default:
      showRunError('The clip failed', err.message ?? String(err));
  }
}

// ------------------------------------------------------------------ the gallery

let gallery = null;
const galleryUrls = [];

async function saveToGallery(clip) {
  if (!gallery) return;
  try {
    await gallery.add({
      prompt: clip.prompt, fullPrompt: clip.fullPrompt, seed: clip.seed, seconds: clip.seconds, steps: clip.steps, style: clip.style,
      modelId: clip.modelId, width: clip.width, height: clip.height, fps: clip.fps, frames: clip.frames,
      mimeType: clip.mimeType, filename: clip.filename, blob: clip.blob, poster: clip.poster,
    });
    await renderGallery();
  } catch (err) {
    $('gallery-message').hidden = false;
    $('gallery-message').textContent = `This clip was not kept in the gallery: ${err.message}. Download it to keep it.`;
  }
}

async function renderGallery() {
  if (!gallery) return;
  const clips = await gallery.list();
  galleryUrls.splice(0).forEach((u) => URL.revokeObjectURL(u));
  const list = $('gallery');
  list.replaceChildren();
  $('gallery-empty').hidden = clips.length > 0;
  for (const c of clips) {
    const li = document.createElement('li');
    li.className = 'clip';
    li.dataset.id = c.id;
    if (c.poster) {
      const img = document.createElement('img');
      const u = URL.createObjectURL(c.poster);
      galleryUrls.push(u);
      img.src = u;
      img.alt = c.prompt;
      img.width = c.width;
      img.height = c.height;
      li.append(img);
    }
    const caption = document.createElement('p');
    caption.className = 'caption';
    caption.textContent = c.prompt;
    const meta = document.createElement('p');
    meta.className = 'hint';
    meta.textContent = `seed ${c.seed} · ${c.seconds} s · ${c.steps} steps${c.style !== 'none' ? ` · ${c.style}` : ''} · ${new Date(c.createdAt).toLocaleString()}`;
    const play = button('Play', 'play', () => {
      showClip({ ...c, extension: c.filename.split('.').pop(), totalMs: 0 });
      $('output').hidden = false;
      $('gen-status').textContent = `Replaying: ${c.prompt}`;
    });
    const url = URL.createObjectURL(c.blob);
    galleryUrls.push(url);
    const dl = document.createElement('a');
    dl.className = 'button download';
    dl.href = url;
    dl.download = c.filename;
    dl.textContent = 'Download';
    const again = document.createElement('a');
    again.className = 'button';
    again.textContent = 'Settings';
    again.href = toSearch({ prompt: c.prompt, seed: c.seed, seconds: c.seconds, steps: c.steps, style: c.style, model: loadedFrom ?? DEFAULT_MODEL }) || './';
    const del = button('Delete', 'delete', async () => {
      await gallery.delete(c.id);
      await renderGallery();
    });
    const actions = document.createElement('p');
    actions.className = 'actions';
    actions.append(play, dl, again, del);
    li.append(caption, meta, actions);
    list.append(li);
  }
}

function button(label, cls, onClick) {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = cls;
  b.textContent = label;
  b.addEventListener('click', () => Promise.resolve(onClick()).catch((err) => {
    $('gallery-message').hidden = false;
    $('gallery-message').textContent = err.message;
  }));
  return b;
}

// ------------------------------------------------------------------ start

function wireForm() {
  for (const id of ['prompt', 'seconds', 'steps', 'style', 'seed', 'seed-random', 'model']) {
    $(id).addEventListener('input', () => {
      updateFormHints();
      mirrorToUrl();
      if (!$('form-message').hidden) showFormMessage(readForm().problems.concat(checkPrompt($('prompt').value)));
    });
  }
  $('seed-random').addEventListener('change', () => {
    if (!$('seed-random').checked && !$('seed').value) $('seed').value = String(randomSeed());
    updateFormHints();
    mirrorToUrl();
  });
  $('form').addEventListener('submit', (event) => {
    event.preventDefault();
    const { settings, problems } = readForm();
    const all = [...problems, ...checkPrompt(settings.prompt)];
    showFormMessage(all);
    if (all.length) return;
    mirrorToUrl();
    run(settings);
  });
  $('cancel').addEventListener('click', () => {
    abortLoad?.abort();
    generation?.cancel();
  });
  $('run-retry').addEventListener('click', () => lastRequest && run(lastRequest));
  $('run-shorter').addEventListener('click', () => {
    $('seconds').value = $('run-shorter').dataset.seconds;
    updateFormHints();
    mirrorToUrl();
    run({ ...lastRequest, seconds: Number($('run-shorter').dataset.seconds) });
  });
}

/** The service worker (sw.js at the site root) keeps the page for offline visits; optional. */
function registerServiceWorker() {
  if (!('serviceWorker' in navigator)) return;
  navigator.serviceWorker.register(new URL('../sw.js', import.meta.url)).catch((err) => {
    // Not fatal: only offline visits need it (blocked in some private modes and test browsers).
    console.info('[kinema] no offline copy of the page:', err.message);
  });
}

async function main() {
  $('reload').addEventListener('click', () => location.reload());
  registerServiceWorker();
  preview = new Preview($('preview'));
  fillSelects();
  const { settings, problems } = parseParams(location.search);
  applySettings(settings);
  linkBackend = settings.backend;
  if (problems.length) {
    $('params-problems').replaceChildren(...problems.map((p) => Object.assign(document.createElement('li'), { textContent: p })));
    $('params-message').hidden = false;
  }
  wireForm();
  $('share').href = `${location.pathname}${toSearch({ ...settings, autostart: false })}`;

  // The gallery does not need the GPU: show it even while the engine starts (or without WebGPU).
  Gallery.open()
    .then(async (g) => {
      gallery = g;
      await renderGallery();
    })
    .catch((err) => {
      $('gallery-message').hidden = false;
      $('gallery-message').textContent = `Clips cannot be kept on this device: ${err.message}.`;
    });

  try {
    kinema = await Kinema.create({
      backend: settings.backend,
      onStatus: (text) => setState('working', text),
      onGpu: (gpu) => {
        $('gpu-adapter').textContent = gpu.adapter || '(name hidden by the browser)';
        $('gpu-backend').textContent = gpu.engine === 'cpu' ? 'CPU (WebAssembly)' : gpu.backend === 'BrowserWebGpu' ? 'WebGPU (browser)' : gpu.backend;
        $('gpu-f16').textContent = gpu.shaderF16 ? 'yes (f16 compute possible)' : 'no (f32 compute)';
        $('gpu-max-buffer').textContent = gpu.engine === 'cpu' ? '—' : mib(gpu.maxBufferSize);
        $('gpu-max-storage').textContent = gpu.engine === 'cpu' ? '—' : mib(gpu.maxStorageBufferBindingSize);
        if (gpu.engine === 'cpu') {
          $('cpu-engine-reason').textContent = gpu.engineReason;
          $('cpu-engine').hidden = false;
        } else if (/swiftshader|llvmpipe|lavapipe|software|basic render/i.test(gpu.adapter)) {
          // WebGPU was forced (?backend=webgpu) on an adapter that emulates a GPU on the processor:
          // the kinema-tiny bench measured minutes per second of video there, so say so.
          $('software-gpu-name').textContent = gpu.adapter;
          $('software-gpu').hidden = false;
        }
      },
    });
  } catch (err) {
    if (err.kind === 'no-webgpu') showNoWebGpu(err.message);
    else {
      if (kinema === null && err.message.includes('wrong result')) $('probe').dataset.correct = 'false';
      showError(err.message ?? String(err));
    }
    return;
  }
  const p = kinema.probe;
  $('probe').textContent = `256×256 matmul ${p.millis.toFixed(1)} ms (first run, with shader compilation, ${p.firstMillis.toFixed(0)} ms): correct`;
  $('probe').dataset.correct = 'true';
  setState('ready', kinema.engine === 'cpu' ? 'Ready: the model runs on the processor.' : 'Ready: WebGPU works on this device.');
  $('create').hidden = false;
  setRun('idle');

  // ?autostart=1 runs the link's settings at once (how a headless browser drives the page), but
  // only when every setting in the link was understood.
  if (settings.autostart) {
    if (problems.length) return;
    const promptProblems = checkPrompt(settings.prompt);
    if (promptProblems.length) {
      showFormMessage(promptProblems);
      return;
    }
    run(settings);
  }
}

main().catch((err) => showError(err?.message ?? String(err)));
