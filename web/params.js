// Generation settings: their limits, the quality presets and styles, and their round trip through the
// page URL (?prompt=…&seed=…&seconds=…&steps=…&style=…&model=…&backend=…&autostart=1), so that a link
// reproduces a clip and a headless browser can drive the page. Pure functions, no DOM.

export const MAX_PROMPT_CHARS = 300;
export const MIN_SECONDS = 1;
export const MAX_SECONDS = 15;
export const MAX_SEED = 0xffffffff; // the model's RNG takes a u32 seed
export const MAX_STEPS = 8;
export const DEFAULT_MODEL = 'models/kinema-tiny/';

/** Quality presets: denoising steps per chunk (the few-step model is trained for 2–4). */
export const PRESETS = Object.freeze([
  { id: 'fast', label: 'Fast (2 steps)', steps: 2 },
  { id: 'balanced', label: 'Balanced (3 steps)', steps: 3 },
  { id: 'best', label: 'Best (4 steps)', steps: 4 },
]);
/** Steps for a model whose manifest names none (training.sampler_steps). */
export const FALLBACK_STEPS = 3;

/**
 * The steps a model was trained for (its manifest's training.sampler_steps), which generate() uses
 * when no steps are asked for, as the CLI does, so a link without steps makes the clip the model
 * card measured; FALLBACK_STEPS when the manifest names none or a number the sampler cannot take.
 */
export function modelSteps(manifest) {
  const n = manifest?.training?.sampler_steps;
  return Number.isInteger(n) && n >= 1 && n <= MAX_STEPS ? n : FALLBACK_STEPS;
}

/**
 * Styles: the words lead the prompt ("pixel art: a cat …"), a shape the model's training captions
 * use, in the captions' own words, and a prompt longer than the model reads loses its end, not
 * the style the visitor picked.
 */
export const STYLES = Object.freeze([
  { id: 'none', label: 'None', words: '' },
  { id: 'flat', label: 'Flat', words: 'flat cartoon style' },
  { id: 'manga', label: 'Manga ink', words: 'black and white manga' },
  { id: 'vangogh', label: 'Van Gogh', words: 'in the style of Van Gogh' },
  { id: 'pixel', label: 'Pixel art', words: 'pixel art' },
  { id: 'neon', label: 'Neon', words: 'glowing neon lines' },
]);

/**
 * Where the model runs. 'auto': WebGPU on a real graphics card; the CPU engine (burn's Flex in
 * wasm) when the browser has no WebGPU or only a software adapter, which emulates a GPU on the
 * processor far more slowly than the CPU engine computes. 'webgpu' and 'cpu' force one.
 */
export const BACKENDS = Object.freeze(['auto', 'webgpu', 'cpu']);

// steps null: the model's own (modelSteps), as seed null is a random seed
export const DEFAULTS = Object.freeze({ prompt: '', seed: null, seconds: 4, steps: null, style: 'none', model: DEFAULT_MODEL, backend: 'auto', autostart: false });

/** A random u32 seed (crypto, so two visitors do not share a sequence). */
export function randomSeed() {
  return crypto.getRandomValues(new Uint32Array(1))[0];
}

/** The prompt the model sees: the style's words, then the visitor's. */
export function fullPrompt(prompt, styleId) {
  const style = STYLES.find((s) => s.id === styleId);
  const text = prompt.trim();
  return style && style.words ? `${style.words}: ${text}` : text;
}

/** Problems with a prompt, as sentences for the visitor; empty when it is fine. */
export function checkPrompt(prompt) {
  const text = (prompt ?? '').trim();
  if (!text) return ['Type a prompt: describe the clip you want, e.g. "a red fox running through snow".'];
  if (text.length > MAX_PROMPT_CHARS) {
    return [`The prompt is ${text.length} characters long; the limit is ${MAX_PROMPT_CHARS}. Shorten it (the model reads only the first few dozen words anyway).`];
  }
  return [];
}

const isWhole = (s) => /^\d+$/.test(s);

/**
 * Reads settings from a query string. Returns the settings (defaults where a value is missing or
 * wrong) and the problems found, one sentence each. A bad value never throws.
 * @param {string|URLSearchParams} search
 */
export function parseParams(search) {
  const q = typeof search === 'string' ? new URLSearchParams(search) : search;
  const settings = { ...DEFAULTS };
  const problems = [];

  if (q.has('prompt')) {
    const prompt = q.get('prompt');
    settings.prompt = prompt;
    if (prompt.trim().length > MAX_PROMPT_CHARS) problems.push(...checkPrompt(prompt));
  }

  if (q.has('seed') && q.get('seed') !== '' && q.get('seed') !== 'random') {
    const s = q.get('seed').trim();
    if (isWhole(s) && Number(s) <= MAX_SEED) settings.seed = Number(s);
    else problems.push(`seed=${s} is not a whole number from 0 to ${MAX_SEED} (or "random"); a random seed is used.`);
  }

  if (q.has('seconds')) {
    const s = q.get('seconds').trim();
    if (isWhole(s) && Number(s) >= MIN_SECONDS && Number(s) <= MAX_SECONDS) settings.seconds = Number(s);
    else problems.push(`seconds=${s} is out of range: the length is a whole number of seconds from ${MIN_SECONDS} to ${MAX_SECONDS}; ${DEFAULTS.seconds} s is used.`);
  }

  if (q.has('steps')) {
    const s = q.get('steps').trim();
    const preset = PRESETS.find((p) => String(p.steps) === s || p.id === s);
    if (preset) settings.steps = preset.steps;
    else problems.push(`steps=${s} is not one of ${PRESETS.map((p) => p.steps).join(', ')} (fast, balanced, best); the model's own number is used.`);
  }

  if (q.has('style')) {
    const s = q.get('style').trim().toLowerCase();
    if (STYLES.some((st) => st.id === s)) settings.style = s;
    else problems.push(`style=${q.get('style')} is not a known style (${STYLES.map((st) => st.id).join(', ')}); no style is used.`);
  }

  if (q.has('model') && q.get('model').trim() !== '') {
    const m = q.get('model').trim();
    const checked = checkModelUrl(m);
    if (checked.ok) settings.model = checked.url;
    else problems.push(checked.problem);
  }

  if (q.has('backend')) {
    const b = q.get('backend').trim().toLowerCase();
    if (BACKENDS.includes(b)) settings.backend = b;
    else problems.push(`backend=${q.get('backend')} is not one of ${BACKENDS.join(', ')}; auto is used.`);
  }

  if (q.has('autostart')) {
    const a = q.get('autostart');
    if (a === '1' || a === 'true') settings.autostart = true;
    else if (a !== '0' && a !== 'false') problems.push(`autostart=${a} must be 1 or 0.`);
  }
  return { settings, problems };
}

/**
 * A model base URL must be http(s) (absolute or relative to the page) and names a folder.
 * @returns {{ok: true, url: string} | {ok: false, problem: string}}
 */
export function checkModelUrl(value, base = globalThis.location?.href ?? 'http://localhost/') {
  let url;
  try {
    url = new URL(value, base);
  } catch {
    return { ok: false, problem: `model=${value} is not a valid address; the default model is used.` };
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return { ok: false, problem: `model=${value} must be an http(s) address; the default model is used.` };
  }
  // Keep what the visitor wrote (relative stays relative, so links work on any host), as a folder.
  return { ok: true, url: value.endsWith('/') ? value : `${value}/` };
}

/**
 * The query string for settings, for links and for history.replaceState. The seed is included only
 * when fixed; defaults are left out so links stay short.
 */
export function toSearch(settings) {
  const q = new URLSearchParams();
  if (settings.prompt) q.set('prompt', settings.prompt);
  if (settings.seed !== null && settings.seed !== undefined) q.set('seed', String(settings.seed));
  if (settings.seconds !== DEFAULTS.seconds) q.set('seconds', String(settings.seconds));
  if (settings.steps !== null && settings.steps !== undefined) q.set('steps', String(settings.steps));
  if (settings.style && settings.style !== 'none') q.set('style', settings.style);
  if (settings.model && settings.model !== DEFAULT_MODEL) q.set('model', settings.model);
  if (settings.backend && settings.backend !== DEFAULTS.backend) q.set('backend', settings.backend);
  if (settings.autostart) q.set('autostart', '1');
  const s = q.toString();
  return s ? `?${s}` : '';
}

/** A download file name from prompt and seed: "a-red-fox-in-snow-seed-42.mp4". */
export function clipFilename(prompt, seed, extension) {
  const slug = prompt
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 60)
    .replace(/-+$/, '');
  return `${slug || 'kinema'}-seed-${seed}.${extension.replace(/^\./, '')}`;
}
