// URL parameters, prompt rules and file names: pure functions, tested in Node directly.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { DEFAULTS, FALLBACK_STEPS, MAX_SEED, clipFilename, checkPrompt, fullPrompt, modelSteps, parseParams, toSearch } from '../../web/params.js';
import { checkManifest, orderFiles } from '../../web/model-loader.js';

describe('URL parameters', () => {
  test('a full link is read exactly and written back the same', () => {
    const search = '?prompt=a+red+fox+in+snow&seed=42&seconds=7&steps=4&style=vangogh&model=https%3A%2F%2Fcdn.example%2Fm%2F&backend=cpu&autostart=1';
    const { settings, problems } = parseParams(search);
    assert.deepEqual(problems, []);
    assert.deepEqual(settings, { prompt: 'a red fox in snow', seed: 42, seconds: 7, steps: 4, style: 'vangogh', model: 'https://cdn.example/m/', backend: 'cpu', autostart: true });
    assert.deepEqual(parseParams(toSearch(settings)).settings, settings);
  });

  test('no parameters → defaults, random seed, no problems', () => {
    const { settings, problems } = parseParams('');
    assert.deepEqual(settings, { ...DEFAULTS });
    assert.equal(settings.seed, null);
    assert.deepEqual(problems, []);
    assert.equal(toSearch(settings), '');
  });

  test("no steps in a link means the model's own number; any chosen number stays in the link", () => {
    assert.equal(parseParams('?prompt=a+cat').settings.steps, null);
    assert.equal(toSearch({ ...DEFAULTS, prompt: 'a cat' }), '?prompt=a+cat');
    for (const steps of [2, 3, 4]) {
      const search = toSearch({ ...DEFAULTS, prompt: 'a cat', steps });
      assert.equal(search, `?prompt=a+cat&steps=${steps}`);
      assert.equal(parseParams(search).settings.steps, steps);
    }
  });

  test("a model's own steps come from its manifest's training.sampler_steps, else the fallback", () => {
    assert.equal(modelSteps({ training: { sampler_steps: 4 } }), 4);
    assert.equal(modelSteps({ training: { sampler_steps: 1 } }), 1);
    assert.equal(FALLBACK_STEPS, 3);
    for (const manifest of [{}, { training: {} }, { training: { sampler_steps: 0 } }, { training: { sampler_steps: 9 } }, { training: { sampler_steps: 2.5 } }, { training: { sampler_steps: '4' } }, null, undefined]) {
      assert.equal(modelSteps(manifest), FALLBACK_STEPS, JSON.stringify(manifest));
    }
  });

  test('bad values each give one clear sentence and fall back to the default; nothing throws', () => {
    const { settings, problems } = parseParams('?seconds=99&steps=7&style=cubism&seed=-3&autostart=maybe&model=ftp://x/&backend=cuda');
    assert.equal(problems.length, 7, problems.join('\n'));
    assert.match(problems.join('\n'), /backend=cuda is not one of auto, webgpu, cpu; auto is used/);
    assert.match(problems.join('\n'), /seed=-3 is not a whole number from 0 to 4294967295/);
    assert.match(problems.join('\n'), /seconds=99 is out of range: .* from 1 to 15; 4 s is used/);
    assert.match(problems.join('\n'), /steps=7 is not one of 2, 3, 4 .*; the model's own number is used/);
    assert.match(problems.join('\n'), /style=cubism is not a known style/);
    assert.match(problems.join('\n'), /autostart=maybe must be 1 or 0/);
    assert.match(problems.join('\n'), /model=ftp:\/\/x\/ must be an http\(s\) address/);
    assert.equal(settings.seconds, DEFAULTS.seconds);
    assert.equal(settings.steps, DEFAULTS.steps);
    assert.equal(settings.style, 'none');
    assert.equal(settings.seed, null);
    assert.equal(settings.model, DEFAULTS.model);
    assert.equal(settings.backend, 'auto');
    for (const s of ['?seconds=0', '?seconds=1.5', '?seconds=abc', `?seed=${MAX_SEED + 1}`, '?seed=1e3', '?prompt=' + 'x'.repeat(301)]) {
      assert.equal(parseParams(s).problems.length, 1, s);
    }
    assert.equal(parseParams('?seconds=15&seed=4294967295&steps=fast&seed=random').problems.length, 0);
  });

  test('prompts: empty and over-long are refused with a reason; a style leads the prompt with its words', () => {
    assert.match(checkPrompt('   ')[0], /Type a prompt/);
    assert.match(checkPrompt('x'.repeat(301))[0], /301 characters long; the limit is 300/);
    assert.deepEqual(checkPrompt('x'.repeat(300)), []);
    assert.equal(fullPrompt(' a cat ', 'none'), 'a cat');
    assert.equal(fullPrompt('a cat', 'pixel'), 'pixel art: a cat');
    assert.equal(fullPrompt('a cat', 'vangogh'), 'in the style of Van Gogh: a cat');
  });

  test('download names come from prompt and seed', () => {
    assert.equal(clipFilename('A red fox, in SNOW!', 42, 'mp4'), 'a-red-fox-in-snow-seed-42.mp4');
    assert.equal(clipFilename('Café über naïve', 7, '.webm'), 'cafe-uber-naive-seed-7.webm');
    assert.equal(clipFilename('???', 1, 'mp4'), 'kinema-seed-1.mp4');
    assert.ok(clipFilename('word '.repeat(50), 3, 'mp4').length <= 60 + '-seed-3.mp4'.length);
  });
});

describe('manifest checks', () => {
  const good = { format: 'kinema-model/1', id: 'm', files: [{ path: 'dit-00.safetensors', role: 'dit', size: 3, sha256: 'a'.repeat(64) }, { path: 'tokenizer.json', role: 'tokenizer', size: 1, sha256: 'b'.repeat(64) }] };
  test('a good manifest passes and is ordered by role', () => {
    assert.deepEqual(checkManifest(good), []);
    assert.deepEqual(orderFiles(good.files).map((f) => f.path), ['tokenizer.json', 'dit-00.safetensors']);
  });
  test('a notice is a sentence or two of text', () => {
    assert.deepEqual(checkManifest({ ...good, notice: 'An early checkpoint: clips are blurry.' }), []);
    for (const notice of [42, '', '   ', 'x'.repeat(501), ['a']]) {
      assert.deepEqual(checkManifest({ ...good, notice }), ['its notice is not a sentence or two of text (at most 500 characters)'], String(notice));
    }
  });
  test('paths that leave the folder, unknown roles and bad sizes are refused', () => {
    const bad = { ...good, files: [{ path: '../secret', role: 'dit', size: 1, sha256: 'a'.repeat(64) }, { path: 'https://evil/x', role: 'x', size: -1, sha256: 'a'.repeat(64) }] };
    const problems = checkManifest(bad);
    assert.equal(problems.length, 4, problems.join('\n'));
  });
});
