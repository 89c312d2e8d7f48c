// The model loader against a pretend CDN (page.route): role order, streaming progress, sha256,
// Cache Storage (a reload fetches no weight bytes, offline works), resume after a cut-off, retries,
// and a clear message for a missing model, a missing file and a corrupted file.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, test } from 'node:test';

import { CDN, ROLE_ORDER_PATHS, serveModel } from './fixtures.mjs';
import { openBlank, useServerAndBrowser } from './harness.mjs';

let url;
let browser;
useServerAndBrowser({ webgpu: false }, (env) => ({ url, browser } = env));

/** Runs loadModel in the page; returns a plain summary (or the error). */
function load(page, base = CDN, options = {}) {
  return page.evaluate(async ({ base, options }) => {
    const { loadModel, sha256Hex } = await import('/web/model-loader.js');
    const progress = [];
    try {
      const r = await loadModel(base, { retryDelayMs: 10, ...options, onProgress: (p) => progress.push(p) });
      const files = {};
      for (const [path, buf] of Object.entries(r.files)) files[path] = await sha256Hex(buf);
      return { ok: true, files, order: Object.keys(r.files), modelId: r.modelId, bytesFetched: r.bytesFetched, bytesFromCache: r.bytesFromCache, cacheUsed: r.cacheUsed, notes: r.notes, progress };
    } catch (err) {
      return { ok: false, kind: err.kind, name: err.name, message: err.message, progress };
    }
  }, { base, options });
}

const fileRequests = (log) => log.filter((r) => r.path !== 'manifest.json');
const shaOf = (model) => Object.fromEntries(model.manifest.files.map((f) => [f.path, f.sha256]));

describe('model loader', () => {
  test('first load: files in role order, verified, with per-file and overall progress; a reload downloads nothing; offline works', async () => {
    const { page, problems } = await openBlank(browser, url);
    const { log, faults, model } = await serveModel(page.context());
    const r = await load(page);
    assert.ok(r.ok, r.message);
    assert.equal(r.modelId, 'kinema-test');
    assert.deepEqual(fileRequests(log).map((x) => x.path), ROLE_ORDER_PATHS, 'fetched in role order');
    assert.deepEqual(r.order, ROLE_ORDER_PATHS);
    assert.deepEqual(r.files, shaOf(model), 'the bytes handed on are the manifest\'s');
    const total = model.manifest.files.reduce((s, f) => s + f.size, 0);
    assert.equal(r.bytesFetched, total);
    assert.equal(r.cacheUsed, true);

    const downloads = r.progress.filter((p) => p.phase === 'download');
    assert.ok(downloads.length >= ROLE_ORDER_PATHS.length, 'progress while downloading');
    for (let i = 1; i < downloads.length; i += 1) assert.ok(downloads[i].bytes >= downloads[i - 1].bytes, 'overall bytes only grow');
    assert.ok(downloads.every((p) => p.total === total && p.fileBytes <= p.fileSize));
    assert.ok(downloads.some((p) => p.bytesPerSecond > 0), 'a speed is reported');
    const last = r.progress.at(-1);
    assert.equal(last.phase, 'done');
    assert.equal(last.bytes, total);
    // Each file's last download event shows it complete.
    for (const f of model.manifest.files) {
      const mine = downloads.filter((p) => p.file === f.path);
      assert.equal(mine.at(-1).fileBytes, f.size, `${f.path} reaches 100 %`);
    }

    // A reload (new page, same browser profile): manifest only, zero weight bytes.
    const again = await page.context().newPage();
    await again.goto(page.url());
    log.length = 0;
    const r2 = await load(again);
    assert.ok(r2.ok, r2.message);
    assert.deepEqual(fileRequests(log), [], 'no file requested on reload');
    assert.equal(r2.bytesFetched, 0);
    assert.equal(r2.bytesFromCache, total);
    assert.deepEqual(r2.files, shaOf(model));

    // Offline: the host cannot be reached at all; the saved manifest and files are used.
    faults.offline = true;
    const r3 = await load(again);
    assert.ok(r3.ok, r3.message);
    assert.deepEqual(r3.files, shaOf(model));
    assert.match(r3.notes.join(' '), /cannot be reached; using the copy of the model saved on this device/);
    assert.deepEqual(problems.filter((p) => !p.includes('ERR_INTERNET_DISCONNECTED')), []);
    await page.close();
  });

  test('a cut-off download resumes with a Range request and ends up correct', async () => {
    const { page } = await openBlank(browser, url);
    const { log, faults, model } = await serveModel(page.context());
    faults.cutOnce.set('dit-00.safetensors', 123_456);
    const r = await load(page);
    assert.ok(r.ok, r.message);
    assert.deepEqual(r.files, shaOf(model));
    const dit = log.filter((x) => x.path === 'dit-00.safetensors');
    assert.equal(dit.length, 2, 'one retry');
    assert.equal(dit[0].range, null);
    assert.match(dit[1].range, /^bytes=\d+-$/, 'the retry asks for the rest only');
    const resumedAt = Number(/\d+/.exec(dit[1].range)[0]);
    assert.ok(resumedAt > 0 && resumedAt <= 123_456, `resumed at ${resumedAt}`);
    assert.ok(r.progress.some((p) => p.phase === 'retry' && /interrupted.*resuming at/.test(p.message)), 'the visitor is told');
    await page.close();
  });

  test('a host that ignores Range after a cut-off: the file starts over and is still correct', async () => {
    const { page } = await openBlank(browser, url);
    const { faults, model } = await serveModel(page.context());
    faults.cutOnce.set('text-00.safetensors', 50_000);
    faults.noRange = true;
    const r = await load(page);
    assert.ok(r.ok, r.message);
    assert.deepEqual(r.files, shaOf(model));
    await page.close();
  });

  test('a failed connection is retried with a message; a dead host ends with a clear error', async () => {
    const { page } = await openBlank(browser, url);
    const { faults, model } = await serveModel(page.context());
    faults.abortOnce.add('decoder-00.safetensors');
    const r = await load(page);
    assert.ok(r.ok, r.message);
    assert.deepEqual(r.files, shaOf(model));
    assert.ok(r.progress.some((p) => p.phase === 'retry' && p.file === 'decoder-00.safetensors'));

    await page.close();

    // A host that cannot be reached, with nothing saved: a clear error, not a hang.
    const { page: fresh } = await openBlank(browser, url);
    const dead = await serveModel(fresh);
    dead.faults.offline = true;
    const r2 = await load(fresh);
    assert.equal(r2.ok, false);
    assert.equal(r2.kind, 'model');
    assert.match(r2.message, /Could not reach the model host .*Check your internet connection/);
    await fresh.close();
  });

  test('model not found (404) → a model error naming the address', async () => {
    const { page } = await openBlank(browser, url);
    const { faults } = await serveModel(page.context());
    faults.missing.add('manifest.json');
    const r = await load(page);
    assert.equal(r.ok, false);
    assert.equal(r.kind, 'model');
    assert.match(r.message, /No model at https:\/\/cdn\.kinema\.test\/models\/tiny\/: .*HTTP 404 \(not found\)\. Check the model address/);
    await page.close();
  });

  test('a missing file (404) → a model error naming the file, no endless retries', async () => {
    const { page } = await openBlank(browser, url);
    const { log, faults } = await serveModel(page.context());
    faults.missing.add('dit-01.safetensors');
    const r = await load(page);
    assert.equal(r.ok, false);
    assert.equal(r.kind, 'model');
    assert.match(r.message, /incomplete on its host: .*dit-01\.safetensors answered HTTP 404/);
    assert.equal(log.filter((x) => x.path === 'dit-01.safetensors').length, 1);
    await page.close();
  });

  test('a bit-flipped file → fetched once more, then "corrupted" with both hashes; nothing bad is cached', async () => {
    const { page } = await openBlank(browser, url);
    const { log, faults, model } = await serveModel(page.context());
    faults.flip.add('text-00.safetensors');
    const r = await load(page);
    assert.equal(r.ok, false);
    assert.equal(r.kind, 'model');
    const want = model.manifest.files.find((f) => f.path === 'text-00.safetensors').sha256;
    assert.match(r.message, new RegExp(`text-00\\.safetensors is corrupted: its sha256 is [0-9a-f]{12}…, the manifest says ${want.slice(0, 12)}…`));
    assert.equal(log.filter((x) => x.path === 'text-00.safetensors').length, 2);
    assert.ok(!log.some((x) => x.path.startsWith('dit')), 'stops at the bad file');

    // Once the host is fixed, only the missing files are fetched (the tokenizer came from the cache).
    faults.flip.clear();
    log.length = 0;
    const r2 = await load(page);
    assert.ok(r2.ok, r2.message);
    assert.deepEqual(r2.files, shaOf(model));
    assert.ok(!fileRequests(log).some((x) => x.path === 'tokenizer.json'));
    await page.close();
  });

  test('a flip in transit only once is healed by the second download', async () => {
    const { page } = await openBlank(browser, url);
    const { faults, model } = await serveModel(page.context());
    faults.flipOnce.add('dit-00.safetensors');
    const r = await load(page);
    assert.ok(r.ok, r.message);
    assert.deepEqual(r.files, shaOf(model));
    assert.ok(r.progress.some((p) => p.phase === 'retry' && /damaged/.test(p.message)));
    await page.close();
  });

  test('quota exceeded → the model still loads, without the cache, and says so', async () => {
    const { page } = await openBlank(browser, url);
    await page.evaluate(() => {
      Cache.prototype.put = () => Promise.reject(new DOMException('The quota has been exceeded.', 'QuotaExceededError'));
    });
    const { log, model } = await serveModel(page.context());
    const r = await load(page);
    assert.ok(r.ok, r.message);
    assert.deepEqual(r.files, shaOf(model));
    assert.equal(r.cacheUsed, false);
    assert.match(r.notes.join(' '), /storage is full \(quota exceeded\)\. It runs without the cache/);
    log.length = 0;
    const r2 = await load(page);
    assert.ok(r2.ok);
    assert.equal(fileRequests(log).length, ROLE_ORDER_PATHS.length, 'nothing was cached, so it downloads again');
    await page.close();
  });

  test('a manifest that is not a Kinema manifest → a clear model error', async () => {
    const { page } = await openBlank(browser, url);
    const { model } = await serveModel(page.context());
    model.manifest.format = 'something-else';
    model.manifest.files[0].sha256 = 'xyz';
    const r = await load(page);
    assert.equal(r.ok, false);
    assert.equal(r.kind, 'model');
    assert.match(r.message, /not a Kinema model manifest: its format is "something-else".*bad sha256/);
    await page.close();
  });

  test('the default model folder this site serves loads in role order and matches its committed manifest', async () => {
    const manifest = JSON.parse(await readFile(new URL('../../models/kinema-tiny/manifest.json', import.meta.url)));
    const { page } = await openBlank(browser, url);
    const r = await load(page, 'models/kinema-tiny/', { cache: false });
    assert.equal(r.ok, true, r.message);
    assert.equal(r.modelId, 'kinema-tiny');
    assert.equal(r.order[0], 'tokenizer.json');
    assert.ok(r.order.indexOf('text-00.safetensors') < r.order.indexOf('dit-00.safetensors'), 'the text encoder comes before the denoiser');
    assert.deepEqual(r.files, Object.fromEntries(manifest.files.map((f) => [f.path, f.sha256])));
    await page.close();
  });
});
