// Types of web/kinema-api.js, Kinema's JavaScript API.
//
//   import { Kinema } from './web/kinema-api.js';
//   const kinema = await Kinema.create({ onStatus: console.log });
//   await kinema.loadModel('https://cdn.example/models/kinema-tiny/', { onProgress: (p) => … });
//   const gen = kinema.generate({ prompt: 'a red fox in snow', seconds: 4, steps: 3, onFrames: (b) => … });
//   const clip = await gen.result;   // clip.blob is the MP4 (or WebM); gen.cancel() stops it

export type ErrorKind = 'no-webgpu' | 'model' | 'device-lost' | 'out-of-memory' | 'input' | 'internal';

/** Every failure of the API. `message` is written for the visitor. */
export declare class KinemaError extends Error {
  readonly name: 'KinemaError';
  readonly kind: ErrorKind;
  /** Trying the same thing again may work (network, host, GPU hiccup). */
  readonly retryable: boolean;
  /** For errors that end a generation: frames that had arrived. */
  framesDone?: number;
  constructor(kind: ErrorKind, message: string, options?: { cause?: unknown; retryable?: boolean });
}

/** Where the model runs: 'auto' picks WebGPU on a real graphics card, else the CPU engine. */
export type Backend = 'auto' | 'webgpu' | 'cpu';

export interface GpuInfo {
  /** The engine chosen: WebGPU, or burn's CPU backend in wasm. */
  engine: 'webgpu' | 'cpu';
  /** Why the CPU engine was chosen (no WebGPU, a software adapter, or asked for); null on WebGPU. */
  engineReason: string | null;
  /** The adapter's name ("CPU (burn Flex)" on the CPU engine). */
  adapter: string;
  /** "BrowserWebGpu" on WebGPU, "Cpu" on the CPU engine. */
  backend: string;
  shaderF16: boolean;
  maxBufferSize: number;
  maxStorageBufferBindingSize: number;
}

export interface ProbeResult {
  correct: boolean;
  value: number;
  expected: number;
  firstMillis: number;
  millis: number;
}

export interface CreateOptions {
  /** The worker script; default web/worker.js next to this module. */
  workerUrl?: string | URL;
  /** Where the model runs; default 'auto'. A forced 'webgpu' that is unavailable rejects with 'no-webgpu'. */
  backend?: Backend;
  /** Start-up progress sentences ("Loading the engine…"). */
  onStatus?: (text: string) => void;
  /** The GPU's facts, as soon as the worker knows them. */
  onGpu?: (gpu: GpuInfo) => void;
}

export interface LoadProgress {
  /** manifest: reading manifest.json; download/cached/verify/retry: per file; done: all files here; gpu: handing them to the worker. */
  phase: 'manifest' | 'download' | 'cached' | 'verify' | 'retry' | 'done' | 'gpu';
  file?: string;
  role?: 'tokenizer' | 'text' | 'dit' | 'decoder';
  fileIndex: number;
  fileCount: number;
  fileBytes: number;
  fileSize: number;
  bytes: number;
  total: number;
  /** Download speed over this load (bytes per second of receiving). */
  bytesPerSecond: number;
  /** Bytes that came over the network in this load (0 on a cached reload). */
  bytesFetched: number;
  /** A sentence for the visitor: retries, cache notes. */
  message?: string;
}

export interface LoadOptions {
  onProgress?: (progress: LoadProgress) => void;
  signal?: AbortSignal;
  /** Keep the files in Cache Storage (default true). */
  cache?: boolean;
}

export interface ModelInfo {
  modelId: string;
  parameters: number;
  /** False while the model's video networks are random (not trained yet): clips are noise. */
  trained: boolean;
  /** What the model's publisher wants visitors told about its clips (the manifest's `notice`),
   * such as that it is an early checkpoint; absent when it says nothing. */
  notice?: string;
  /** Denoising steps per chunk the model was trained for (the manifest's training.sampler_steps,
   * else 3): what generate() uses when given no steps. */
  steps: number;
  manifest: any;
  baseUrl: string;
  bytesFetched: number;
  bytesFromCache: number;
  /** False when the files could not be cached (no Cache Storage, quota); see notes. */
  cacheUsed: boolean;
  notes: string[];
}

export type StyleId = 'none' | 'flat' | 'manga' | 'vangogh' | 'pixel' | 'neon';

export interface FrameBatch {
  /** Chunk index (one chunk = one second). */
  index: number;
  /** Index of frames[0] in the clip. */
  firstFrame: number;
  width: number;
  height: number;
  fps: number;
  /** RGBA8 pixels, width × height × 4 bytes per frame (ready for `new ImageData(frame, width, height)`). */
  frames: Uint8ClampedArray<ArrayBuffer>[];
  timings: { denoiseStepsMs: number[]; decodeMs: number; cacheFillMs: number };
}

export interface GenerationStats {
  stage: 'text' | 'denoise' | 'encode' | 'done' | 'cancelled' | 'failed';
  framesDone: number;
  framesTotal: number;
  chunksDone: number;
  chunksTotal: number;
  elapsedMs: number;
  timeToFirstFrameMs: number | null;
  /** Frames generated per second of wall time so far. */
  framesPerSecond: number;
  /** Estimated time left (null until the first step is timed). */
  etaMs: number | null;
  chunk: number;
  step: number;
  steps: number;
  /**
   * The end of the prompt the model did not read: it reads `promptTokenLimit` tokens (about as
   * many words), and a longer prompt loses its last words. null when it read the whole prompt or
   * before the prompt is read.
   */
  unreadPrompt: string | null;
  /** Tokens of a prompt the model reads (null before the prompt is read). */
  promptTokenLimit: number | null;
}

export interface GenerateOptions {
  /** 1–300 characters. */
  prompt: string;
  /** 0 … 4294967295; random when left out. */
  seed?: number | null;
  /** 1–15, default 4. */
  seconds?: number;
  /** Denoising steps per chunk, 1–8 (2 fast, 3 balanced, 4 best); default: the model's own, ModelInfo.steps. */
  steps?: number;
  /** Style words appended to the prompt; default 'none'. */
  style?: StyleId;
  onFrames?: (batch: FrameBatch) => void;
  onProgress?: (stats: GenerationStats) => void;
  signal?: AbortSignal;
}

export interface Clip {
  prompt: string;
  /** The prompt the model saw (style words appended). */
  fullPrompt: string;
  seed: number;
  seconds: number;
  steps: number;
  style: StyleId;
  modelId: string;
  width: number;
  height: number;
  fps: number;
  frames: number;
  durationSeconds: number;
  /** The encoded file: H.264 in MP4, or VP9 in WebM where H.264 cannot be encoded. */
  blob: Blob;
  mimeType: string;
  extension: 'mp4' | 'webm';
  codec: string;
  /** "a-red-fox-in-snow-seed-42.mp4" */
  filename: string;
  /** First frame as an image (null where OffscreenCanvas is missing). */
  poster: Blob | null;
  totalMs: number;
  timeToFirstFrameMs: number | null;
  framesPerSecond: number;
  encodeMs: number;
}

export declare class Generation {
  readonly id: number;
  readonly settings: { prompt: string; fullPrompt: string; seed: number; seconds: number; steps: number; style: StyleId; modelId: string };
  /** Resolves with the finished clip; rejects with a KinemaError, or a DOMException named AbortError when cancelled. */
  readonly result: Promise<Clip>;
  stats(): GenerationStats;
  /** Frames as they arrive; call right after generate() to see every chunk. */
  frames(): AsyncGenerator<FrameBatch, void, unknown>;
  /** Stops the clip at once (result rejects with AbortError); the worker is told to stop too. */
  cancel(): void;
}

export declare class Kinema {
  /** Checks WebGPU, starts the GPU worker and waits for its known-answer probe. Rejects with KinemaError ('no-webgpu' or 'internal'). */
  static create(options?: CreateOptions): Promise<Kinema>;
  /** The engine this instance runs on. */
  readonly engine: 'webgpu' | 'cpu';
  readonly gpu: GpuInfo | null;
  readonly probe: ProbeResult | null;
  /** The loaded model, or null (none yet, or the worker was restarted after a lost GPU). */
  readonly model: ModelInfo | null;
  /** Fetches (or reads from the cache), verifies and hands a model to the GPU. Default base: models/kinema-tiny/. */
  loadModel(base?: string | URL, options?: LoadOptions): Promise<ModelInfo>;
  /** Starts a clip; throws KinemaError ('input' or 'model') at once for bad options. */
  generate(options: GenerateOptions): Generation;
  /** Stops the worker for good. */
  terminate(): void;
}
