// Fetches a model folder from any CORS-enabled static host (the same origin by default, or a CDN):
// manifest.json first, then the files in role order, each streamed with progress, checked against
// its sha256 and kept in Cache Storage, so a reload downloads no weights and the page works offline.
// A dropped connection resumes with a Range request (or starts the file again where the host
// ignores ranges); a full disk or a browser without Cache Storage only costs the cache, and says so.

import { KinemaError, abortError, isAbort } from './errors.js';

export const MANIFEST_FORMAT = 'kinema-model/1';
export const ROLE_ORDER = Object.freeze(['tokenizer', 'text', 'dit', 'decoder']);
export const CACHE_NAME = 'kinema-models-v1';

/**
 * @typedef {object} LoadProgress
 * @property {'manifest'|'download'|'cached'|'verify'|'retry'|'done'} phase
 * @property {string} [file]        path of the file this is about
 * @property {string} [role]
 * @property {number} fileIndex     0-based, of fileCount
 * @property {number} fileCount
 * @property {number} fileBytes     bytes of this file so far
 * @property {number} fileSize
 * @property {number} bytes         bytes of all files so far (downloaded or from the cache)
 * @property {number} total         bytes of all files
 * @property {number} bytesPerSecond  download speed over this load (0 before any network byte)
 * @property {number} bytesFetched  bytes that came over the network in this load
 * @property {string} [message]     a sentence for the visitor (retries, cache notes)
 */

const MIB = 1048576;
const fmtMiB = (n) => `${(n / MIB).toFixed(1)} MB`;

/** Lower-case hex sha256 of the bytes. */
export async function sha256Hex(bytes) {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** The longest manifest `notice` (what visitors are told about the model's clips) shown. */
const MAX_NOTICE = 500;

/** Problems with a parsed manifest.json, one sentence each (empty when it is usable). */
export function checkManifest(m) {
  const problems = [];
  if (!m || typeof m !== 'object') return ['manifest.json is not a JSON object'];
  if (m.format !== MANIFEST_FORMAT) problems.push(`its format is ${JSON.stringify(m.format)}, this page reads ${MANIFEST_FORMAT}`);
  if (typeof m.id !== 'string' || !m.id) problems.push('it has no model id');
  if (m.notice !== undefined && (typeof m.notice !== 'string' || !m.notice.trim() || m.notice.length > MAX_NOTICE)) {
    problems.push(`its notice is not a sentence or two of text (at most ${MAX_NOTICE} characters)`);
  }
  if (!Array.isArray(m.files) || m.files.length === 0) {
    problems.push('it lists no files');
    return problems;
  }
  const seen = new Set();
  m.files.forEach((f, i) => {
    const where = `file ${i + 1} (${f?.path ?? 'no path'})`;
    // Paths stay inside the model folder: no absolute URLs, no climbing out.
    if (typeof f?.path !== 'string' || !f.path || /^\/|:\/\/|(^|\/)\.\.(\/|$)/.test(f.path)) problems.push(`${where} has a bad path`);
    else if (seen.has(f.path)) problems.push(`${where} is listed twice`);
    else seen.add(f.path);
    if (!ROLE_ORDER.includes(f?.role)) problems.push(`${where} has an unknown role ${JSON.stringify(f?.role)}`);
    if (!Number.isSafeInteger(f?.size) || f.size < 0) problems.push(`${where} has a bad size`);
    if (typeof f?.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(f.sha256)) problems.push(`${where} has a bad sha256`);
  });
  return problems;
}

/** Files in fetch order: by role (tokenizer, text, dit, decoder), manifest order within a role. */
export function orderFiles(files) {
  return files
    .map((f, i) => ({ f, i }))
    .sort((a, b) => ROLE_ORDER.indexOf(a.f.role) - ROLE_ORDER.indexOf(b.f.role) || a.i - b.i)
    .map(({ f }) => f);
}

// Cache keys carry the sha256, so a new version of a file never matches an old entry.
const fileKey = (url, sha) => `${url}${url.includes('?') ? '&' : '?'}kinema-sha256=${sha}`;
const manifestKey = (url) => `${url}${url.includes('?') ? '&' : '?'}kinema-manifest`;

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortError());
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      reject(abortError());
    }, { once: true });
  });
}

const isQuota = (err) => err?.name === 'QuotaExceededError' || /quota/i.test(err?.message ?? '');

/**
 * Loads a model folder.
 * @param {string|URL} base  the folder's URL (relative to the page or absolute); a trailing / is added
 * @param {object} [options]
 * @param {(p: LoadProgress) => void} [options.onProgress]
 * @param {AbortSignal} [options.signal]
 * @param {boolean} [options.cache=true]   use Cache Storage
 * @param {number} [options.retries=4]    tries after the first, per file, for network failures
 * @param {number} [options.retryDelayMs=500]  first pause between tries (doubles each time)
 * @returns {Promise<{manifest: object, modelId: string, baseUrl: string, files: Record<string, ArrayBuffer>,
 *   bytesFetched: number, bytesFromCache: number, cacheUsed: boolean, notes: string[]}>}
 */
export async function loadModel(base, { onProgress = () => {}, signal, cache: useCache = true, retries = 4, retryDelayMs = 500 } = {}) {
  let baseUrl;
  try {
    baseUrl = new URL(String(base).endsWith('/') ? String(base) : `${base}/`, globalThis.location?.href);
  } catch {
    throw new KinemaError('model', `"${base}" is not a valid model address.`);
  }
  const notes = [];
  const note = (text) => {
    notes.push(text);
    return text;
  };

  // 1. The cache, where the browser has one (not on plain-http pages other than localhost).
  let cache = null;
  if (useCache) {
    if (!globalThis.caches) {
      note('This browser gives the page no Cache Storage here (it needs https), so the model is downloaded again on every visit.');
    } else {
      try {
        cache = await caches.open(CACHE_NAME);
      } catch (err) {
        note(`The browser refused the page a cache (${err.message}), so the model is downloaded again on every visit.`);
      }
    }
  }

  // 2. manifest.json. Always asked of the host (it is tiny and says whether the model changed);
  //    the saved copy is used only when the host cannot be reached, which is how offline works.
  const manifestUrl = new URL('manifest.json', baseUrl).href;
  const state = { fileIndex: 0, fileCount: 0, fileBytes: 0, fileSize: 0, bytes: 0, total: 0, bytesFetched: 0, bytesPerSecond: 0 };
  const report = (fields) => onProgress({ ...state, ...fields });
  report({ phase: 'manifest', message: `Reading ${manifestUrl}…` });

  let manifestText = null;
  let response;
  try {
    response = await fetch(manifestUrl, { signal, cache: 'no-cache' });
  } catch (err) {
    if (isAbort(err)) throw err;
    const saved = cache && (await cache.match(manifestKey(manifestUrl)));
    if (!saved) {
      throw new KinemaError('model', `Could not reach the model host (${manifestUrl}): ${err.message}. Check your internet connection, or that the host allows cross-origin requests (CORS), then try again.`, { cause: err, retryable: true });
    }
    manifestText = await saved.text();
    report({ phase: 'manifest', message: note('The model host cannot be reached; using the copy of the model saved on this device.') });
  }
  if (manifestText === null) {
    if (!response.ok) {
      const what = response.status === 404 ? 'not found' : response.statusText || 'error';
      throw new KinemaError('model', `No model at ${baseUrl.href}: ${manifestUrl} answered HTTP ${response.status} (${what}). Check the model address (the model= parameter) and try again.`, { retryable: response.status >= 500 });
    }
    manifestText = await response.text();
  }
  let manifest;
  try {
    manifest = JSON.parse(manifestText);
  } catch (err) {
    throw new KinemaError('model', `${manifestUrl} is not valid JSON (${err.message}); the model host serves a broken manifest.`, { cause: err });
  }
  const problems = checkManifest(manifest);
  if (problems.length) throw new KinemaError('model', `${manifestUrl} is not a Kinema model manifest: ${problems.join('; ')}.`);

  const files = orderFiles(manifest.files);
  state.fileCount = files.length;
  state.total = files.reduce((sum, f) => sum + f.size, 0);

  // 3. Room for the cache? If the browser says it cannot hold the model, skip caching up front
  //    rather than failing half-way; a put that still hits the quota switches the cache off too.
  if (cache && navigator.storage?.estimate) {
    try {
      const { quota, usage } = await navigator.storage.estimate();
      if (Number.isFinite(quota) && quota - usage < state.total) {
        cache = null;
        note(`Not enough browser storage to keep the model (${fmtMiB(state.total)} needed, ${fmtMiB(Math.max(0, quota - usage))} free), so it runs without the cache: the next visit downloads it again.`);
      }
    } catch {
      /* no estimate: just try */
    }
  }

  const out = {};
  let bytesFromCache = 0;
  let netMs = 0; // time spent receiving bytes, for the speed figure
  for (const [i, file] of files.entries()) {
    if (signal?.aborted) throw abortError();
    const url = new URL(file.path, baseUrl).href;
    const key = fileKey(url, file.sha256);
    Object.assign(state, { fileIndex: i, fileBytes: 0, fileSize: file.size });
    const info = { file: file.path, role: file.role };

    // 3a. From the cache: entries were verified before they were stored, so the size is checked.
    let bytes = null;
    if (cache) {
      try {
        const hit = await cache.match(key);
        if (hit) {
          const buf = await hit.arrayBuffer();
          if (buf.byteLength === file.size) bytes = new Uint8Array(buf);
          else await cache.delete(key);
        }
      } catch {
        /* a broken entry is fetched again */
      }
    }
    if (bytes) {
      bytesFromCache += file.size;
      state.bytes += file.size;
      state.fileBytes = file.size;
      report({ phase: 'cached', ...info });
      out[file.path] = bytes.buffer;
      continue;
    }

    // 3b. From the host, checked; a mismatch is fetched once more from scratch (a flaky proxy),
    //     then reported as a corrupted file.
    const fileStart = state.bytes;
    for (let verifyTry = 1; ; verifyTry += 1) {
      bytes = await download(url, file, {
        signal, retries, retryDelayMs, info,
        onBytes(fileBytes, dBytes, dMs) {
          state.fileBytes = fileBytes;
          state.bytes = fileStart + fileBytes;
          state.bytesFetched += dBytes;
          netMs += dMs;
          state.bytesPerSecond = netMs > 0 ? (state.bytesFetched * 1000) / netMs : 0;
          report({ phase: 'download', ...info });
        },
        onRetry(message) {
          report({ phase: 'retry', ...info, message });
        },
      });
      report({ phase: 'verify', ...info, message: `Checking ${file.path} (sha256)…` });
      const got = await sha256Hex(bytes);
      if (got === file.sha256) break;
      if (verifyTry >= 2) {
        throw new KinemaError('model', `${file.path} is corrupted: its sha256 is ${got.slice(0, 12)}…, the manifest says ${file.sha256.slice(0, 12)}…. The model host serves a damaged or different file; try again later or use another model address.`, { retryable: true });
      }
      report({ phase: 'retry', ...info, message: `${file.path} arrived damaged (sha256 mismatch); downloading it again…` });
      state.bytes = fileStart;
    }

    // 3c. Into the cache. Out of room → carry on without it, and say so once.
    if (cache) {
      try {
        await cache.put(key, new Response(bytes, { headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(file.size) } }));
      } catch (err) {
        cache = null;
        const why = isQuota(err) ? 'browser storage is full (quota exceeded)' : `the cache refused it (${err.message})`;
        report({ phase: 'download', ...info, message: note(`The model could not be saved on this device: ${why}. It runs without the cache, so the next visit downloads it again.`) });
      }
    }
    out[file.path] = bytes.buffer;
  }

  // 4. Save the manifest last, so an offline visit only ever finds a complete set; then drop
  //    entries of older versions of this model folder.
  if (cache) {
    try {
      await cache.put(manifestKey(manifestUrl), new Response(manifestText, { headers: { 'Content-Type': 'application/json' } }));
      const keep = new Set(files.map((f) => fileKey(new URL(f.path, baseUrl).href, f.sha256)));
      keep.add(manifestKey(manifestUrl));
      for (const req of await cache.keys()) {
        if (req.url.startsWith(baseUrl.href) && !keep.has(req.url)) await cache.delete(req);
      }
    } catch {
      /* the files are cached; a missing manifest copy only costs offline use */
    }
  }
  report({ phase: 'done', fileIndex: files.length - 1, message: state.bytesFetched ? `Downloaded ${fmtMiB(state.bytesFetched)}.` : 'Loaded from this device, nothing downloaded.' });
  return { manifest, modelId: manifest.id, baseUrl: baseUrl.href, files: out, bytesFetched: state.bytesFetched, bytesFromCache, cacheUsed: !!cache, notes };
}

/**
 * Downloads one file into a buffer of its manifest size, streaming, resuming after a dropped
 * connection with `Range: bytes=N-` (or from the start if the host answers 200 to that).
 */
async function download(url, file, { signal, retries, retryDelayMs, onBytes, onRetry }) {
  const bytes = new Uint8Array(file.size);
  let got = 0;
  for (let attempt = 0; ; attempt += 1) {
    try {
      const headers = got > 0 ? { Range: `bytes=${got}-` } : {};
      // no-store: the Cache Storage copy is the cache; the HTTP cache would hold a second copy.
      const res = await fetch(url, { signal, headers, cache: 'no-store' });
      if (res.status === 206 && got > 0) {
        const start = Number(/bytes (\d+)-/.exec(res.headers.get('Content-Range') ?? '')?.[1]);
        if (start !== got) got = 0; // a range we did not ask for: start over
      } else if (res.ok) {
        got = 0; // the host ignored the range (or this is the first try)
      } else {
        const fatal = res.status === 404 || res.status === 403 || res.status === 410 || res.status === 401;
        const msg = `${url} answered HTTP ${res.status}${res.status === 404 ? ' (not found)' : ''}`;
        if (fatal) throw new KinemaError('model', `The model is incomplete on its host: ${msg}. Check the model address, or try again later.`);
        throw new Error(msg);
      }
      if (!res.body) throw new Error('the response has no body');
      const reader = res.body.getReader();
      let t = performance.now();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (got + value.byteLength > file.size) {
          await reader.cancel();
          throw new KinemaError('model', `${file.path} is larger on the host than the manifest says (${file.size} bytes): the model folder is inconsistent.`);
        }
        bytes.set(value, got);
        got += value.byteLength;
        const now = performance.now();
        onBytes(got, value.byteLength, now - t);
        t = now;
      }
      if (got < file.size) throw new Error(`the connection closed after ${fmtMiB(got)} of ${fmtMiB(file.size)}`);
      return bytes;
    } catch (err) {
      if (isAbort(err) || err instanceof KinemaError) throw err;
      if (attempt >= retries) {
        throw new KinemaError('model', `Downloading ${file.path} failed ${attempt + 1} times (${err.message}). Check your internet connection and try again; the files already downloaded are kept.`, { cause: err, retryable: true });
      }
      const delay = retryDelayMs * 2 ** attempt;
      onRetry(`Download of ${file.path} interrupted (${err.message}); ${got > 0 ? `resuming at ${fmtMiB(got)}` : 'trying again'} in ${(delay / 1000).toFixed(1)} s (try ${attempt + 2} of ${retries + 1})…`);
      await sleep(delay, signal);
    }
  }
}
