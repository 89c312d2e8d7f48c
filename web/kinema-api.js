// Kinema's JavaScript API: the one way the page (or any other page) talks to the engine. It owns
// the GPU worker (web/worker.js), loads a model folder (web/model-loader.js), runs generations with
// frames streamed as they arrive, encodes the clip (web/encoder.js) and hands back the file.
// Types: web/kinema-api.d.ts. Worker messages: web/protocol.js.

import { ClipEncoder, chooseCodec } from './encoder.js';
import { KinemaError, abortError } from './errors.js';
import { loadModel } from './model-loader.js';
import { BACKENDS, DEFAULT_MODEL, FALLBACK_STEPS, MAX_SECONDS, MAX_SEED, MAX_STEPS, MIN_SECONDS, STYLES, checkPrompt, clipFilename, fullPrompt, modelSteps, randomSeed } from './params.js';
import { posterFromRgba } from './gallery.js';

export { KinemaError } from './errors.js';

const DEFAULT_WORKER = new URL('./worker.js', import.meta.url);

/** Turns a worker {type:'error'} message into the API's error. */
const workerError = (m) => new KinemaError(m.kind ?? 'internal', m.message ?? 'the worker reported an error without a message');

/** Adapters that emulate a GPU on the processor (SwiftShader, Mesa's llvmpipe/lavapipe, WARP). */
const SOFTWARE_ADAPTER = /swiftshader|llvmpipe|lavapipe|software|basic render/i;

/**
 * Which engine runs the model for `backend` ('auto' | 'webgpu' | 'cpu'), and why the CPU when it
 * is the CPU. Asked on the page: it answers before any wasm is fetched. A forced 'webgpu' that
 * cannot be had is a 'no-webgpu' error; 'auto' falls back to the CPU engine instead.
 * @returns {Promise<{engine: 'webgpu'|'cpu', reason: string|null}>}
 */
async function chooseEngine(backend) {
  if (backend === 'cpu') return { engine: 'cpu', reason: "the CPU engine was asked for (backend 'cpu')." };
  const forced = backend === 'webgpu';
  let why = null;
  let adapter = null;
  if (!('gpu' in navigator) || !navigator.gpu) why = 'this browser has no WebGPU (navigator.gpu is missing).';
  else {
    try {
      adapter = await navigator.gpu.requestAdapter();
      if (!adapter) why = 'the browser has WebGPU but found no usable GPU adapter (it may be blocked for this graphics driver).';
    } catch (err) {
      why = `asking for a GPU failed (${err.message}).`;
    }
  }
  if (why) {
    if (forced) throw new KinemaError('no-webgpu', why);
    return { engine: 'cpu', reason: why };
  }
  const info = adapter.info ?? {};
  const name = [info.description, info.vendor, info.architecture, info.device].filter(Boolean).join(' / ');
  if (!forced && (info.isFallbackAdapter || SOFTWARE_ADAPTER.test(name))) {
    return { engine: 'cpu', reason: `the browser's WebGPU adapter is a software renderer (${name || 'fallback adapter'}), which is far slower than computing on the processor directly.` };
  }
  return { engine: 'webgpu', reason: null };
}

export class Kinema {
  /**
   * Chooses the engine (WebGPU, or the CPU where WebGPU is missing or only emulated), starts the
   * worker and waits for its known-answer probe.
   * @param {import('./kinema-api.d.ts').CreateOptions} [options]
   * @returns {Promise<Kinema>}
   */
  static async create({ workerUrl = DEFAULT_WORKER, backend = 'auto', onStatus = () => {}, onGpu = () => {} } = {}) {
    if (!BACKENDS.includes(backend)) throw new KinemaError('input', `backend must be one of ${BACKENDS.join(', ')} (got ${JSON.stringify(backend)}).`);
    const { engine, reason } = await chooseEngine(backend);
    const kinema = new Kinema(workerUrl, engine, reason, onStatus, onGpu);
    await kinema.#startWorker();
    return kinema;
  }

  /** @private use Kinema.create */
  constructor(workerUrl, engine, engineReason, onStatus, onGpu) {
    this.workerUrl = workerUrl;
    /** @type {'webgpu'|'cpu'} */
    this.engine = engine;
    this.engineReason = engineReason;
    this.onStatus = onStatus;
    this.onGpu = onGpu;
    /** @type {import('./kinema-api.d.ts').GpuInfo | null} */
    this.gpu = null;
    /** @type {import('./kinema-api.d.ts').ProbeResult | null} */
    this.probe = null;
    /** @type {import('./kinema-api.d.ts').ModelInfo | null} */
    this.model = null;
    this.worker = null;
    this.nextId = 1;
    /** @type {Map<number, Generation>} */
    this.generations = new Map();
    this.pendingLoad = null;
    this.restarting = null;
  }

  /** Starts (or restarts) the worker and resolves after its probe. */
  #startWorker() {
    this.worker?.terminate();
    this.model = null;
    const workerUrl = new URL(this.workerUrl, location.href);
    workerUrl.searchParams.set('engine', this.engine);
    const worker = new Worker(workerUrl, { type: 'module' });
    this.worker = worker;
    return new Promise((resolve, reject) => {
      let ready = false;
      worker.addEventListener('error', (event) => {
        event.preventDefault();
        const err = new KinemaError('internal', `The GPU worker ${ready ? 'crashed' : 'failed to start'}: ${event.message || 'its script could not be loaded (is pkg/ built? run web/tools/build.sh)'}`);
        if (!ready) reject(err);
        else this.#failAll(err);
      });
      worker.addEventListener('message', ({ data: m }) => {
        if (!ready) {
          switch (m.type) {
            case 'status': this.onStatus(m.text); return;
            case 'no-webgpu': reject(new KinemaError('no-webgpu', m.reason)); return;
            case 'gpu': {
              const { type, ...reported } = m;
              const gpu = { ...reported, engine: this.engine, engineReason: this.engineReason };
              this.gpu = gpu;
              this.onGpu(gpu);
              return;
            }
            case 'probe': {
              const { type, ...probe } = m;
              this.probe = probe;
              if (!m.correct) {
                reject(new KinemaError('internal', `Your GPU returned a wrong result for a test computation (got ${m.value}, expected ${m.expected}), so generated clips would be garbage. Try another browser or update the graphics driver.`));
                return;
              }
              ready = true;
              resolve();
              return;
            }
            case 'error': reject(workerError(m)); return;
            default: console.warn('[kinema] message before the probe finished', m);
          }
          return;
        }
        this.#onMessage(m);
      });
    });
  }

  #onMessage(m) {
    if (m.id !== undefined && m.id !== null) {
      const gen = this.generations.get(m.id);
      if (gen) gen._onMessage(m);
      // Messages of a generation that was cancelled on the page side are dropped on purpose.
      return;
    }
    if (m.type === 'loaded' || m.type === 'error') {
      const pending = this.pendingLoad;
      this.pendingLoad = null;
      if (pending) {
        if (m.type === 'loaded') pending.resolve(m);
        else pending.reject(workerError(m));
      } else if (m.type === 'error') {
        // An error outside any request: the engine is in trouble; fail what is running.
        this.#failAll(workerError(m));
      }
      return;
    }
    if (m.type === 'status') this.onStatus(m.text);
  }

  #failAll(err) {
    this.pendingLoad?.reject(err);
    this.pendingLoad = null;
    for (const gen of this.generations.values()) gen._fail(err);
  }

  /**
   * Fetches (or takes from the cache), verifies and hands a model to the GPU.
   * @param {string|URL} [base]
   * @param {import('./kinema-api.d.ts').LoadOptions} [options]
   * @returns {Promise<import('./kinema-api.d.ts').ModelInfo>}
   */
  async loadModel(base = DEFAULT_MODEL, { onProgress = () => {}, signal, cache = true } = {}) {
    if (this.pendingLoad) throw new KinemaError('input', 'A model is already being loaded.');
    if (this.generations.size) throw new KinemaError('input', 'A clip is being generated; cancel it before loading another model.');
    if (this.restarting) {
      // After a lost device the worker is being restarted; a failed restart is this load's error.
      // (Once: a worker that then could not start answers requests with a 'no-webgpu' error.)
      const restart = this.restarting;
      this.restarting = null;
      await restart;
    }
    const loaded = await loadModel(base, { onProgress, signal, cache });
    onProgress({ phase: 'gpu', fileIndex: loaded.manifest.files.length - 1, fileCount: loaded.manifest.files.length, fileBytes: 0, fileSize: 0, bytes: 0, total: 0, bytesPerSecond: 0, bytesFetched: loaded.bytesFetched, message: 'Handing the model to the GPU…' });
    const answer = new Promise((resolve, reject) => (this.pendingLoad = { resolve, reject }));
    const buffers = [...new Set(Object.values(loaded.files))];
    this.worker.postMessage({ type: 'load', files: loaded.files, manifest: loaded.manifest }, buffers);
    const m = await answer;
    this.model = {
      modelId: m.modelId ?? loaded.modelId,
      parameters: m.parameters ?? 0,
      trained: m.trained ?? loaded.manifest.trained === true,
      notice: loaded.manifest.notice,
      steps: modelSteps(loaded.manifest),
      manifest: loaded.manifest,
      baseUrl: loaded.baseUrl,
      bytesFetched: loaded.bytesFetched,
      bytesFromCache: loaded.bytesFromCache,
      cacheUsed: loaded.cacheUsed,
      notes: loaded.notes,
    };
    return this.model;
  }

  /**
   * Starts generating a clip. Throws a KinemaError (kind 'input' or 'model') at once for bad options.
   * @param {import('./kinema-api.d.ts').GenerateOptions} options
   * @returns {Generation}
   */
  generate(options) {
    const o = { seconds: 4, style: 'none', ...options };
    o.steps ??= this.model?.steps ?? FALLBACK_STEPS;
    const problems = checkPrompt(o.prompt);
    if (!Number.isInteger(o.seconds) || o.seconds < MIN_SECONDS || o.seconds > MAX_SECONDS) problems.push(`The length must be a whole number of seconds from ${MIN_SECONDS} to ${MAX_SECONDS}, not ${o.seconds}.`);
    if (!Number.isInteger(o.steps) || o.steps < 1 || o.steps > MAX_STEPS) problems.push(`Steps must be a whole number from 1 to ${MAX_STEPS}, not ${o.steps}.`);
    if (o.seed !== undefined && o.seed !== null && (!Number.isInteger(o.seed) || o.seed < 0 || o.seed > MAX_SEED)) problems.push(`The seed must be a whole number from 0 to ${MAX_SEED}, not ${o.seed}.`);
    if (!STYLES.some((s) => s.id === o.style)) problems.push(`Unknown style "${o.style}".`);
    if (problems.length) throw new KinemaError('input', problems.join(' '));
    if (!this.model) throw new KinemaError('model', 'No model is loaded: call loadModel() first.');
    if (this.generations.size) throw new KinemaError('input', 'A clip is already being generated; cancel it or wait for it to finish.');

    const settings = {
      prompt: o.prompt.trim(),
      fullPrompt: fullPrompt(o.prompt, o.style),
      seed: o.seed ?? randomSeed(),
      seconds: o.seconds,
      steps: o.steps,
      style: o.style,
      modelId: this.model.modelId,
    };
    const id = this.nextId++;
    const video = this.model.manifest.architecture?.video ?? {};
    const gen = new Generation(this, id, settings, video, o);
    this.generations.set(id, gen);
    this.worker.postMessage({ type: 'generate', id, prompt: settings.fullPrompt, seed: settings.seed, seconds: settings.seconds, steps: settings.steps });
    // Start probing the codec now (a real test encode), so the first chunk does not wait for it.
    if (video.width && video.height && video.fps) chooseCodec(video.width, video.height, video.fps);
    return gen;
  }

  /** @internal */
  _finished(id, { deviceLost = false } = {}) {
    this.generations.delete(id);
    // After a lost device the worker's GPU state is gone: start a fresh worker; the next
    // loadModel() comes from the cache, so a retry costs seconds, not a download.
    if (deviceLost) {
      this.restarting = this.#startWorker();
      // Kept (not thrown here): the next loadModel() reports it, with its own message.
      this.restarting.catch(() => {});
    }
  }

  /** Stops the worker; this instance cannot be used afterwards. */
  terminate() {
    this.#failAll(new KinemaError('internal', 'Kinema was shut down.'));
    this.worker?.terminate();
    this.worker = null;
  }
}

/** One clip being generated: stream its frames, watch its progress, cancel it, await the file. */
export class Generation {
  constructor(kinema, id, settings, video, { onFrames, onProgress, signal }) {
    this.kinema = kinema;
    this.id = id;
    this.settings = settings;
    this.onFrames = onFrames ?? (() => {});
    this.onProgress = onProgress ?? (() => {});
    this.width = video.width ?? 0;
    this.height = video.height ?? 0;
    this.fps = video.fps ?? 0;
    this.framesTotal = this.fps ? this.fps * settings.seconds : 0;
    this.framesDone = 0;
    this.chunksDone = 0;
    this.startedAt = performance.now();
    this.textDoneAt = null;
    this.firstFrameAt = null;
    this.stepMs = [];
    this.stage = 'text';
    this.unreadPrompt = null;
    this.promptTokenLimit = null;
    this.finished = false;
    this.encoder = null;
    this.encoding = Promise.resolve();
    this.poster = null;
    this.queue = []; // kept only while frames() is being iterated, so frames are not held twice
    this.iterators = 0;
    this.waiters = [];
    this.result = new Promise((resolve, reject) => {
      this._resolve = resolve;
      this._reject = reject;
    });
    // Nobody awaiting the result must not turn a cancelled clip into an "unhandled rejection".
    this.result.catch(() => {});
    if (signal) {
      if (signal.aborted) queueMicrotask(() => this.cancel());
      else signal.addEventListener('abort', () => this.cancel(), { once: true });
    }
  }

  /** Progress figures for the page: time to first frame, frames/s and ETA. */
  stats() {
    const now = performance.now();
    const elapsedMs = now - this.startedAt;
    let etaMs = null;
    const chunksTotal = this.settings.seconds;
    if (this.chunksDone > 0 && this.textDoneAt !== null) {
      const perChunk = (now - this.textDoneAt) / this.chunksDone;
      etaMs = Math.max(0, perChunk * (chunksTotal - this.chunksDone) - (now - this.lastChunkAt));
    } else if (this.stepMs.length) {
      const avg = this.stepMs.reduce((a, b) => a + b, 0) / this.stepMs.length;
      const stepsLeft = chunksTotal * this.settings.steps - this.stepMs.length;
      etaMs = avg * stepsLeft;
    }
    return {
      stage: this.stage,
      framesDone: this.framesDone,
      framesTotal: this.framesTotal,
      chunksDone: this.chunksDone,
      chunksTotal,
      elapsedMs,
      timeToFirstFrameMs: this.firstFrameAt === null ? null : this.firstFrameAt - this.startedAt,
      framesPerSecond: this.framesDone ? (this.framesDone * 1000) / (now - this.startedAt) : 0,
      etaMs,
      chunk: this.currentChunk ?? 0,
      step: this.currentStep ?? 0,
      steps: this.settings.steps,
      unreadPrompt: this.unreadPrompt,
      promptTokenLimit: this.promptTokenLimit,
    };
  }

  /** @internal a worker message about this clip */
  _onMessage(m) {
    if (this.finished) return;
    switch (m.type) {
      case 'text':
        this.textDoneAt = performance.now();
        this.unreadPrompt = m.unread ?? null;
        this.promptTokenLimit = m.tokenLimit ?? null;
        this.stage = 'denoise';
        this.onProgress(this.stats());
        break;
      case 'step':
        this.textDoneAt ??= performance.now();
        this.stage = 'denoise';
        this.stepMs.push(m.ms);
        this.currentChunk = m.chunk;
        this.currentStep = m.step;
        this.onProgress(this.stats());
        break;
      case 'chunk':
        this.#onChunk(m);
        break;
      case 'done':
        this.#onDone(m);
        break;
      case 'cancelled':
        this._fail(abortError());
        break;
      case 'error':
        this._fail(workerError(m), { deviceLost: m.kind === 'device-lost' });
        break;
      default:
        console.warn('[kinema] unknown message for a generation', m);
    }
  }

  #onChunk(m) {
    const now = performance.now();
    this.textDoneAt ??= now;
    this.firstFrameAt ??= now;
    this.lastChunkAt = now;
    this.width = m.width;
    this.height = m.height;
    this.fps = m.fps;
    this.framesTotal = m.fps * this.settings.seconds;
    this.chunksDone += 1;
    this.framesDone = m.firstFrame + m.frames.length;
    const frames = m.frames.map((b) => new Uint8ClampedArray(b));
    if (!this.poster && frames.length) this.poster = posterFromRgba(frames[0], m.width, m.height).catch(() => null);
    const batch = { index: m.index, firstFrame: m.firstFrame, width: m.width, height: m.height, fps: m.fps, frames, timings: m.timings };
    if (this.iterators > 0) {
      this.queue.push(batch);
      this.waiters.splice(0).forEach((w) => w());
    }
    try {
      this.onFrames(batch);
    } catch (err) {
      console.error('[kinema] onFrames threw', err);
    }
    this.onProgress(this.stats());
    // Encode as frames arrive; the chain keeps chunks in order.
    this.encoding = this.encoding.then(async () => {
      if (this.finished) return;
      this.encoder ??= await ClipEncoder.create({ width: m.width, height: m.height, fps: m.fps, metadata: this.settings });
      await this.encoder.addFrames(frames);
    });
    this.encoding.catch((err) => this._fail(new KinemaError('internal', `Encoding the video failed: ${err.message}`, { cause: err })));
  }

  async #onDone(m) {
    this.stage = 'encode';
    this.onProgress(this.stats());
    try {
      await this.encoding;
      if (this.finished) return;
      if (!this.encoder) throw new KinemaError('internal', 'The worker finished without sending any frame.');
      if (this.framesDone !== m.frames) throw new KinemaError('internal', `The worker says it sent ${m.frames} frames, ${this.framesDone} arrived.`);
      const file = await this.encoder.finish();
      if (file.frames !== m.frames) throw new KinemaError('internal', `${file.frames} of ${m.frames} frames were encoded.`);
      const stats = this.stats();
      const clip = {
        ...this.settings,
        width: this.width,
        height: this.height,
        fps: this.fps,
        frames: file.frames,
        durationSeconds: file.frames / this.fps,
        blob: file.blob,
        mimeType: file.mimeType,
        extension: file.extension,
        codec: file.codec,
        filename: clipFilename(this.settings.prompt, this.settings.seed, file.extension),
        poster: (await this.poster) ?? null,
        totalMs: m.totalMs,
        timeToFirstFrameMs: stats.timeToFirstFrameMs,
        framesPerSecond: stats.framesPerSecond,
        encodeMs: file.encodeMs,
      };
      this.stage = 'done';
      this.finished = true;
      this.kinema._finished(this.id);
      this.waiters.splice(0).forEach((w) => w());
      this._resolve(clip);
    } catch (err) {
      this._fail(err instanceof KinemaError ? err : new KinemaError('internal', `Finishing the video failed: ${err.message}`, { cause: err }));
    }
  }

  /** @internal ends this generation with an error (or an AbortError when cancelled) */
  _fail(err, { deviceLost = false } = {}) {
    if (this.finished) return;
    this.finished = true;
    this.stage = err?.name === 'AbortError' ? 'cancelled' : 'failed';
    if (err instanceof KinemaError) err.framesDone = this.framesDone;
    this.encoder?.cancel();
    this.kinema._finished(this.id, { deviceLost });
    this.waiters.splice(0).forEach((w) => w());
    this._reject(err);
  }

  /** Cancels at once on the page side (the result rejects with an AbortError) and tells the worker. */
  cancel() {
    if (this.finished) return;
    this.kinema.worker?.postMessage({ type: 'cancel', id: this.id });
    this._fail(abortError());
  }

  /**
   * The frames as they arrive, chunk by chunk; ends when the clip is done, cancelled or failed.
   * Call it right after generate() to see every chunk (chunks are kept only while iterated).
   */
  async *frames() {
    this.iterators += 1;
    try {
      for (;;) {
        if (this.queue.length) yield this.queue.shift();
        else if (this.finished) return;
        else await new Promise((resolve) => this.waiters.push(resolve));
      }
    } finally {
      this.iterators -= 1;
    }
  }
}
