// The message protocol between the page (web/kinema-api.js) and the GPU worker (web/worker.js).
// This file is the contract with the wasm side: the typedefs below are what both ends send. It has
// no runtime dependencies, so both the page and the module worker can import it.

/**
 * Kinds of error the worker (or the page) reports. The page maps each to a message and a way on.
 * @typedef {'no-webgpu'|'model'|'device-lost'|'out-of-memory'|'input'|'internal'} ErrorKind
 */

// ---------------------------------------------------------------- page → worker

/**
 * Hand the verified model files to the worker. The page fetched, checked (sha256) and cached them;
 * the ArrayBuffers are transferred, so the page no longer holds them.
 * @typedef {object} LoadRequest
 * @property {'load'} type
 * @property {Record<string, ArrayBuffer>} files  path (as in the manifest) → bytes
 * @property {object} manifest  the parsed manifest.json (format kinema-model/1)
 */

/**
 * Generate one clip. `id` is chosen by the page and echoed in every answer about this clip.
 * `prompt` is the full prompt (the style words already appended).
 * @typedef {object} GenerateRequest
 * @property {'generate'} type
 * @property {number} id
 * @property {string} prompt
 * @property {number} seed     0 … 2³²−1
 * @property {number} seconds  1 … 15 (one chunk = 1 s)
 * @property {number} steps    denoising steps per chunk
 */

/**
 * Stop generating clip `id` as soon as possible; the worker answers {type:'cancelled', id}.
 * @typedef {object} CancelRequest
 * @property {'cancel'} type
 * @property {number} id
 */

/** @typedef {LoadRequest|GenerateRequest|CancelRequest} PageMessage */

// ---------------------------------------------------------------- worker → page

/**
 * @typedef {object} LoadedMessage
 * @property {'loaded'} type
 * @property {string} modelId
 * @property {number} parameters  number of model parameters
 * @property {boolean} trained  false while the video networks are random init (clips are noise)
 */

/**
 * One chunk of finished frames. `frames` are RGBA8, width×height×4 bytes each, transferred.
 * @typedef {object} ChunkMessage
 * @property {'chunk'} type
 * @property {number} id
 * @property {number} index       chunk index, 0-based
 * @property {number} firstFrame  index of frames[0] in the clip
 * @property {number} width
 * @property {number} height
 * @property {number} fps
 * @property {ArrayBuffer[]} frames
 * @property {{denoiseStepsMs: number[], decodeMs: number, cacheFillMs: number}} timings
 */

/**
 * @typedef {object} StepMessage
 * @property {'step'} type
 * @property {number} id
 * @property {number} chunk  chunk index
 * @property {number} step   step just finished, 1-based
 * @property {number} steps
 * @property {number} ms
 */

/**
 * The prompt was encoded (text encoder done).
 * @typedef {object} TextMessage
 * @property {'text'} type
 * @property {number} id
 * @property {number} ms
 * @property {string | null} unread  the end of the prompt past the model's token limit, which it
 *   did not read; null when it read the whole prompt
 * @property {number} tokenLimit  tokens of a prompt the model reads
 */

/**
 * @typedef {object} DoneMessage
 * @property {'done'} type
 * @property {number} id
 * @property {number} frames  frames sent in total
 * @property {number} totalMs
 */

/**
 * @typedef {object} CancelledMessage
 * @property {'cancelled'} type
 * @property {number} id
 */

/**
 * `id` is set when the error ends the generation of that clip.
 * @typedef {object} ErrorMessage
 * @property {'error'} type
 * @property {number} [id]
 * @property {ErrorKind} kind
 * @property {string} message
 */

/**
 * Probe messages (sent once at start, before any request): status text, no WebGPU, the GPU's facts,
 * and the result of the known-answer computation. After a correct `probe` the worker takes requests.
 * @typedef {{type:'status', text:string}
 *   | {type:'no-webgpu', reason:string}
 *   | {type:'gpu', adapter:string, backend:string, shaderF16:boolean, maxBufferSize:number, maxStorageBufferBindingSize:number}
 *   | {type:'probe', correct:boolean, value:number, expected:number, firstMillis:number, millis:number}} ProbeMessage
 */

/** @typedef {LoadedMessage|ChunkMessage|StepMessage|TextMessage|DoneMessage|CancelledMessage|ErrorMessage|ProbeMessage} WorkerMessage */

/** @type {readonly ErrorKind[]} */
export const ERROR_KINDS = Object.freeze(['no-webgpu', 'model', 'device-lost', 'out-of-memory', 'input', 'internal']);

