// Compiled (never run) by tests/browser/types.test.mjs: uses the JS API the way a page would, so
// web/kinema-api.d.ts must be complete and consistent. A type error fails the test.
import { Kinema, KinemaError } from '../../web/kinema-api.js';
import type { Clip, FrameBatch, GenerationStats, LoadProgress, ModelInfo } from '../../web/kinema-api.js';

export async function demo(canvas: HTMLCanvasElement): Promise<Clip | null> {
  const kinema: Kinema = await Kinema.create({ backend: 'auto', onStatus: (text: string) => console.log(text), onGpu: (gpu) => console.log(gpu.adapter, gpu.shaderF16, gpu.engine === 'cpu' ? gpu.engineReason : '') });
  const engine: 'webgpu' | 'cpu' = kinema.engine;
  console.log(engine);
  const abort = new AbortController();
  const model: ModelInfo = await kinema.loadModel('https://cdn.example/models/kinema-tiny/', {
    signal: abort.signal,
    onProgress: (p: LoadProgress) => console.log(p.phase, p.file ?? '', p.bytes / p.total, p.bytesPerSecond, p.message),
  });
  console.log(model.modelId, model.parameters, model.cacheUsed, model.notes.join(' '), model.notice ?? 'no notice', `${model.steps} steps as trained`);
  const ctx = canvas.getContext('2d')!;
  const gen = kinema.generate({
    prompt: 'a red fox in snow',
    seed: 42,
    seconds: 4,
    steps: 3,
    style: 'pixel',
    onFrames: (b: FrameBatch) => b.frames.forEach((f) => ctx.putImageData(new ImageData(f, b.width, b.height), 0, 0)),
    onProgress: (s: GenerationStats) => {
      console.log(s.framesDone, s.framesTotal, s.etaMs ?? 'estimating', s.timeToFirstFrameMs);
      if (s.unreadPrompt !== null) console.warn(`not read past ${s.promptTokenLimit ?? '?'} tokens: ${s.unreadPrompt}`);
    },
  });
  for await (const batch of gen.frames()) console.log(batch.index, batch.firstFrame, batch.timings.decodeMs);
  try {
    const clip = await gen.result;
    const url: string = URL.createObjectURL(clip.blob);
    console.log(url, clip.filename, clip.extension === 'mp4', clip.seed, clip.durationSeconds);
    return clip;
  } catch (err) {
    if (err instanceof KinemaError && (err.kind === 'out-of-memory' || err.kind === 'device-lost')) console.log('retry shorter', err.framesDone);
    gen.cancel();
    kinema.terminate();
    return null;
  }
}
