// Clip encoding with WebCodecs, muxed by Mediabunny: H.264 in MP4 where the browser can really
// encode it, VP9 in WebM otherwise. Frames are encoded as each chunk arrives, so the file is ready
// moments after the last frame. The file carries prompt, seed, steps and model id as metadata.

import * as MB from './vendor/mediabunny.js';

/** What we try, in order. H.264 Constrained Baseline 3.1 is what every player (and OpenH264) does. */
export const CODECS = Object.freeze([
  { container: 'mp4', codec: 'avc', codecString: 'avc1.42001f', extension: 'mp4', mimeType: 'video/mp4' },
  { container: 'webm', codec: 'vp9', codecString: 'vp09.00.10.08', extension: 'webm', mimeType: 'video/webm' },
]);

const probed = new Map();

/**
 * Can this browser encode `c` at this size? isConfigSupported alone is not enough (some browsers
 * claim H.264 and then fail on the first frame), so a real frame is encoded and must come out.
 */
async function canReallyEncode(c, width, height, fps) {
  if (typeof VideoEncoder === 'undefined') return false;
  const config = { codec: c.codecString, width, height, bitrate: 1_000_000, framerate: fps };
  if (c.codec === 'avc') config.avc = { format: 'avc' };
  try {
    if (!(await VideoEncoder.isConfigSupported(config)).supported) return false;
    let chunks = 0;
    let failed = null;
    const encoder = new VideoEncoder({ output: (chunk) => (chunks += chunk.byteLength > 0 ? 1 : 0), error: (e) => (failed = e) });
    encoder.configure(config);
    const frame = new VideoFrame(new Uint8Array(width * height * 4).fill(128), { format: 'RGBA', codedWidth: width, codedHeight: height, timestamp: 0 });
    encoder.encode(frame, { keyFrame: true });
    frame.close();
    // A broken encoder may never answer: give it a few seconds.
    const timeout = new Promise((resolve) => setTimeout(() => resolve('timeout'), 5000));
    const result = await Promise.race([encoder.flush().then(() => 'ok', () => 'failed'), timeout]);
    if (encoder.state !== 'closed') encoder.close();
    return result === 'ok' && !failed && chunks > 0;
  } catch {
    return false;
  }
}

/**
 * The first codec of CODECS that really encodes at this size, or null (no WebCodecs).
 * @returns {Promise<typeof CODECS[number] | null>}
 */
export async function chooseCodec(width, height, fps) {
  const key = `${width}x${height}@${fps}`;
  if (!probed.has(key)) {
    probed.set(key, (async () => {
      for (const c of CODECS) if (await canReallyEncode(c, width, height, fps)) return c;
      return null;
    })());
  }
  return probed.get(key);
}

/**
 * @typedef {object} ClipMetadata
 * @property {string} prompt      the visitor's prompt
 * @property {string} fullPrompt  with the style words
 * @property {number} seed
 * @property {number} steps
 * @property {number} seconds
 * @property {string} style
 * @property {string} modelId
 */

/** Encodes RGBA8 frames of one clip into an MP4 (or WebM) in memory. */
export class ClipEncoder {
  /**
   * @param {{width: number, height: number, fps: number, metadata: ClipMetadata, codec?: typeof CODECS[number]}} options
   */
  static async create({ width, height, fps, metadata, codec }) {
    const chosen = codec ?? (await chooseCodec(width, height, fps));
    if (!chosen) throw new Error('this browser cannot encode video (no WebCodecs H.264 or VP9 encoder)');
    return new ClipEncoder(width, height, fps, metadata, chosen);
  }

  constructor(width, height, fps, metadata, codec) {
    Object.assign(this, { width, height, fps, metadata, codec, frames: 0, encodeMs: 0 });
    this.target = new MB.BufferTarget();
    const format = codec.container === 'mp4' ? new MB.Mp4OutputFormat({ fastStart: 'in-memory' }) : new MB.WebMOutputFormat();
    this.output = new MB.Output({ format, target: this.target });
    this.source = new MB.VideoSampleSource({
      codec: codec.codec,
      fullCodecString: codec.codecString,
      bitrate: MB.QUALITY_HIGH,
      keyFrameInterval: 1, // a key frame every second: the player seeks instantly
      latencyMode: 'quality',
    });
    this.output.addVideoTrack(this.source, { frameRate: fps });
    this.output.setMetadataTags(clipTags(metadata));
    this.started = this.output.start();
  }

  /** Encodes frames (RGBA8, width×height×4 bytes each), in order; resolves when they are taken. */
  async addFrames(frames) {
    await this.started;
    const t0 = performance.now();
    for (const buf of frames) {
      const data = buf instanceof Uint8Array ? buf : new Uint8Array(buf);
      if (data.byteLength !== this.width * this.height * 4) {
        throw new Error(`frame ${this.frames} has ${data.byteLength} bytes, expected ${this.width}×${this.height}×4`);
      }
      const sample = new MB.VideoSample(data, {
        format: 'RGBA',
        codedWidth: this.width,
        codedHeight: this.height,
        timestamp: this.frames / this.fps,
        duration: 1 / this.fps,
      });
      try {
        await this.source.add(sample);
      } finally {
        sample.close();
      }
      this.frames += 1;
    }
    this.encodeMs += performance.now() - t0;
  }

  /** Finishes the file. @returns {Promise<{blob: Blob, mimeType: string, extension: string, codec: string, frames: number, encodeMs: number}>} */
  async finish() {
    await this.started;
    const t0 = performance.now();
    this.source.close();
    await this.output.finalize();
    this.encodeMs += performance.now() - t0;
    const mimeType = `${this.codec.mimeType}; codecs="${this.codec.codecString}"`;
    return { blob: new Blob([this.target.buffer], { type: this.codec.mimeType }), mimeType, extension: this.codec.extension, codec: this.codec.codecString, frames: this.frames, encodeMs: this.encodeMs };
  }

  /** Drops the file (cancelled clip); never throws. */
  async cancel() {
    try {
      await this.output.cancel();
    } catch {
      /* already finished or failed: nothing to release */
    }
  }
}

/** The metadata tags of a clip: readable fields plus everything as JSON in the comment. */
export function clipTags(m) {
  return {
    title: m.prompt,
    description: m.fullPrompt,
    artist: `Kinema (${m.modelId})`,
    comment: JSON.stringify({ generator: 'kinema', prompt: m.prompt, fullPrompt: m.fullPrompt, seed: m.seed, steps: m.steps, seconds: m.seconds, style: m.style, model: m.modelId }),
    date: new Date(),
  };
}

/**
 * Reads a clip back (used by the tests and to check a stored file): container, codec, size,
 * duration, decoded frame count and the metadata written by ClipEncoder.
 * @param {Blob} blob
 * @param {{decode?: boolean}} [options]  decode every frame with WebCodecs (default true)
 */
export async function inspectClip(blob, { decode = true } = {}) {
  const input = new MB.Input({ formats: MB.ALL_FORMATS, source: new MB.BlobSource(blob) });
  try {
    const track = await input.getPrimaryVideoTrack();
    if (!track) throw new Error('the file has no video track');
    const tags = await input.getMetadataTags();
    let metadata = null;
    try {
      metadata = JSON.parse(tags.comment ?? 'null');
    } catch {
      /* not ours */
    }
    let frames = 0;
    let packets = 0;
    for await (const packet of new MB.EncodedPacketSink(track).packets()) packets += packet ? 1 : 0;
    if (decode) {
      for await (const sample of new MB.VideoSampleSink(track).samples()) {
        frames += 1;
        sample.close();
      }
    }
    return {
      mimeType: await input.getMimeType(),
      codec: await track.getCodec(),
      codecString: await track.getCodecParameterString(),
      width: await track.getDisplayWidth(),
      height: await track.getDisplayHeight(),
      duration: await input.computeDuration(),
      packets,
      frames: decode ? frames : null,
      title: tags.title ?? null,
      metadata,
    };
  } finally {
    input.dispose?.();
  }
}
