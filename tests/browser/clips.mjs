// Helpers for tests that look at real clips: what the page's download holds, and digests of the
// frames a fresh engine makes (run in the page through page.evaluate).

/** The page's #download clip, decoded back by web/encoder.js: codec, frames, size, duration, metadata. */
export function downloadedClip(page) {
  return page.evaluate(async () => {
    const { inspectClip } = await import('/web/encoder.js');
    return inspectClip(await (await fetch(document.querySelector('#download').href)).blob());
  });
}

/**
 * For page.evaluate: one fresh engine (`backend`) loads `model` (undefined: the default) and makes a
 * clip per seed; each clip's RGBA frames are summed up as a SHA-256, a byte count and the number of
 * distinct red values (a flat colour has one).
 */
export async function frameDigests({ model, backend = 'auto', prompt, seeds, seconds, steps }) {
  const { Kinema } = await import('/web/kinema-api.js');
  const kinema = await Kinema.create({ backend });
  await kinema.loadModel(model);
  const digests = [];
  for (const seed of seeds) {
    const parts = [];
    await kinema.generate({ prompt, seed, seconds, steps, onFrames: (batch) => parts.push(...batch.frames) }).result;
    const all = new Uint8Array(parts.reduce((n, f) => n + f.length, 0));
    let at = 0;
    for (const f of parts) {
      all.set(f, at);
      at += f.length;
    }
    const hash = new Uint8Array(await crypto.subtle.digest('SHA-256', all));
    const distinct = new Set(all.filter((_, i) => i % 4 === 0)).size;
    digests.push({ frames: parts.length, bytes: all.length, distinct, hash: Array.from(hash, (b) => b.toString(16).padStart(2, '0')).join('') });
  }
  kinema.terminate();
  return digests;
}
