// The gallery store: clips (file, poster, settings) kept in IndexedDB survive a reload, list newest
// first, come back byte for byte, and are deleted on request.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { openBlank, useServerAndBrowser } from './harness.mjs';

let url;
let browser;
useServerAndBrowser({ webgpu: false }, (env) => ({ url, browser } = env));

test('clips survive a reload, list newest first, round-trip their bytes, and delete', async () => {
  const { page, problems } = await openBlank(browser, url);
  const ids = await page.evaluate(async () => {
    const { Gallery, posterFromRgba } = await import('/web/gallery.js');
    const g = await Gallery.open();
    const rgba = new Uint8ClampedArray(8 * 4 * 4).fill(200);
    const poster = await posterFromRgba(rgba, 8, 4);
    const clip = (prompt, seed, createdAt) => ({ prompt, fullPrompt: prompt, seed, seconds: 1, steps: 2, style: 'none', modelId: 'm', width: 8, height: 4, fps: 8, frames: 8, mimeType: 'video/mp4', filename: `${prompt}-seed-${seed}.mp4`, blob: new Blob([new Uint8Array([1, 2, 3, seed])], { type: 'video/mp4' }), poster, createdAt });
    const a = await g.add(clip('first', 1, 1000));
    const b = await g.add(clip('second', 2, 2000));
    g.close();
    return [a, b];
  });
  const reloaded = await page.context().newPage();
  await reloaded.goto(page.url());
  await page.close();
  const after = await reloaded.evaluate(async (ids) => {
    const { Gallery } = await import('/web/gallery.js');
    const g = await Gallery.open();
    const list = await g.list();
    const one = await g.get(ids[1]);
    const bytes = Array.from(new Uint8Array(await one.blob.arrayBuffer()));
    const posterType = one.poster?.type;
    await g.delete(ids[0]);
    const left = (await g.list()).map((c) => c.prompt);
    return { prompts: list.map((c) => c.prompt), seeds: list.map((c) => c.seed), bytes, posterType, left };
  }, ids);
  assert.deepEqual(after.prompts, ['second', 'first']);
  assert.deepEqual(after.seeds, [2, 1]);
  assert.deepEqual(after.bytes, [1, 2, 3, 2]);
  assert.equal(after.posterType, 'image/webp');
  assert.deepEqual(after.left, ['second']);
  assert.deepEqual(problems, []);
  await reloaded.close();
});
