//! Prompt → chunks of frames. Each chunk is handed to the caller as soon as it is decoded, with
//! the time every stage took, and the caller may cancel between any two steps.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use burn::tensor::{Tensor, TensorData};
use web_time::Instant;

use crate::KinemaError;
use crate::decode::DecoderState;
use crate::denoise::{DitText, KvCache, Pass, chunk_noise};
use crate::model::KinemaModel;

/// The longest clip the model was designed for, in seconds (the training length).
pub const MAX_SECONDS: usize = 15;
/// More Euler steps than this gains nothing for a few-step model and only costs time.
pub const MAX_STEPS: usize = 64;

/// Where each chunk's starting noise comes from.
#[derive(Debug, Clone)]
pub enum NoiseSource {
    /// The portable seeded generator ([`chunk_noise`]): same seed, same clip, on every platform.
    Seed(u64),
    /// Given noise per chunk, `[F, C, h, w]` flattened (the parity fixtures use this).
    Fixed(Vec<Vec<f32>>),
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenerateRequest {
    pub prompt: String,
    /// Number of chunks (one chunk is `chunk_frames` latent frames; 1 s for kinema-tiny).
    pub chunks: usize,
    /// Euler steps per chunk.
    pub steps: usize,
    pub noise: NoiseSource,
}

/// A flag the caller keeps a clone of and sets to stop generation at the next step boundary.
#[derive(Debug, Clone, Default)]
pub struct CancelFlag(Arc<AtomicBool>);

impl CancelFlag {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Milliseconds spent per stage of one chunk (each measured to a device sync).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChunkTimings {
    pub denoise_steps_ms: Vec<f64>,
    pub decode_ms: f64,
    /// The extra DiT pass that writes this chunk into the KV cache (none after the last chunk).
    pub cache_fill_ms: Option<f64>,
}

impl ChunkTimings {
    pub fn total_ms(&self) -> f64 {
        self.denoise_steps_ms.iter().sum::<f64>()
            + self.decode_ms
            + self.cache_fill_ms.unwrap_or(0.0)
    }
}

/// One decoded chunk of video.
#[derive(Debug, Clone)]
pub struct ChunkFrames {
    pub index: usize,
    /// Index of this chunk's first frame in the whole clip.
    pub first_frame: usize,
    pub count: usize,
    pub width: usize,
    pub height: usize,
    /// `[count, 3, height, width]` in [0, 1].
    pub rgb: Vec<f32>,
    pub timings: ChunkTimings,
}

impl ChunkFrames {
    /// Frame `i` as interleaved 8-bit RGB, rows top to bottom.
    pub fn frame_rgb8(&self, i: usize) -> Vec<u8> {
        self.interleaved(i, None)
    }

    /// Frame `i` as 8-bit RGBA with opaque alpha: the layout of a canvas `ImageData`.
    pub fn frame_rgba8(&self, i: usize) -> Vec<u8> {
        self.interleaved(i, Some(255))
    }

    fn interleaved(&self, i: usize, alpha: Option<u8>) -> Vec<u8> {
        let plane = self.width * self.height;
        let base = i * 3 * plane;
        let mut out = Vec::with_capacity(plane * 4);
        for p in 0..plane {
            for c in 0..3 {
                let v = self.rgb[base + c * plane + p];
                out.push((v.clamp(0.0, 1.0) * 255.0).round() as u8);
            }
            out.extend(alpha);
        }
        out
    }
}

/// What the caller hears while a clip is made.
#[derive(Debug)]
pub enum GenerationEvent {
    /// The prompt is encoded. `unread` is the end of the prompt past the model's `token_limit`,
    /// which the model did not read (`None`: it read the whole prompt).
    TextEncoded {
        ms: f64,
        unread: Option<String>,
        token_limit: usize,
    },
    /// One Euler step of a chunk finished.
    Step {
        chunk: usize,
        step: usize,
        steps: usize,
        ms: f64,
    },
    /// A chunk is decoded; its frames can be shown now.
    Chunk(ChunkFrames),
    /// A finished chunk was written into the KV cache for the chunks after it.
    CacheFilled { chunk: usize, ms: f64 },
}

/// Timings of a whole generation.
#[derive(Debug, Clone, Default)]
pub struct GenerationReport {
    pub text_ms: f64,
    pub chunks: Vec<ChunkTimings>,
    pub total_ms: f64,
    pub frames: usize,
}

impl GenerationReport {
    pub fn frames_per_second(&self) -> f64 {
        self.frames as f64 / (self.total_ms / 1000.0)
    }
}

/// Waits until `t` is computed. Reading one reduced value is the portable way to wait for a
/// lazy, asynchronous device (and the only one allowed on wasm).
async fn sync<const D: usize>(t: &Tensor<D>) -> Result<(), KinemaError> {
    t.clone()
        .sum()
        .into_data_async()
        .await
        .map_err(|err| KinemaError::Compute(format!("{err:?}")))?;
    // Every step ends here: the moment for a browser worker to read a Cancel message.
    crate::compute::yield_to_host().await;
    Ok(())
}

fn millis_since(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1000.0
}

impl KinemaModel {
    /// Checks a request against what this model can do.
    pub fn validate(&self, request: &GenerateRequest) -> Result<(), KinemaError> {
        let max_chunks = self.max_chunks();
        if request.prompt.trim().is_empty() {
            return Err(KinemaError::InvalidRequest("the prompt is empty".into()));
        }
        if request.chunks == 0 || request.chunks > max_chunks {
            return Err(KinemaError::InvalidRequest(format!(
                "{} chunks asked; this model makes 1 to {max_chunks}",
                request.chunks
            )));
        }
        if request.steps == 0 || request.steps > MAX_STEPS {
            return Err(KinemaError::InvalidRequest(format!(
                "{} steps asked; use 1 to {MAX_STEPS}",
                request.steps
            )));
        }
        if let NoiseSource::Fixed(noise) = &request.noise {
            let len = self.chunk_latent_len();
            if noise.len() < request.chunks || noise.iter().any(|n| n.len() != len) {
                return Err(KinemaError::InvalidRequest(format!(
                    "fixed noise needs {} chunks of {len} values",
                    request.chunks
                )));
            }
        }
        Ok(())
    }

    /// Chunks in the longest clip ([`MAX_SECONDS`]).
    pub fn max_chunks(&self) -> usize {
        let fps = self.manifest.architecture.video.fps;
        (MAX_SECONDS * fps).div_ceil(self.frames_per_chunk()).max(1)
    }

    /// Chunks needed for `seconds` of video.
    pub fn chunks_for_seconds(&self, seconds: usize) -> usize {
        let fps = self.manifest.architecture.video.fps;
        (seconds * fps).div_ceil(self.frames_per_chunk())
    }

    fn chunk_latent_len(&self) -> usize {
        let d = &self.manifest.architecture.dit;
        d.chunk_frames * d.latent_channels * d.latent_height * d.latent_width
    }

    /// Generates a clip chunk by chunk, handing each decoded chunk to `on_event` at once.
    pub async fn generate(
        &self,
        request: &GenerateRequest,
        cancel: &CancelFlag,
        on_event: &mut dyn FnMut(GenerationEvent),
    ) -> Result<GenerationReport, KinemaError> {
        self.validate(request)?;
        let started = Instant::now();
        let cfg = &self.manifest.architecture.dit;
        let video = &self.manifest.architecture.video;
        let frames_per_chunk = self.frames_per_chunk();
        let shape = [
            cfg.chunk_frames,
            cfg.latent_channels,
            cfg.latent_height,
            cfg.latent_width,
        ];

        let stage = Instant::now();
        let unread = self.tokenizer.unread_tail(&request.prompt)?;
        let text = self.encode_prompt(&request.prompt)?;
        let text = self.dit.prepare_text(&text);
        // Classifier-free guidance: the empty caption's own text and cache (its keys and values
        // depend on the text), run as a second pass of every step and cache fill.
        let mut unconditional = match self.manifest.training.guidance() {
            Some(scale) => Some(Unconditional {
                scale,
                text: self.dit.prepare_text(&self.encode_prompt("")?),
                cache: KvCache::new(cfg.window_chunks),
            }),
            None => None,
        };
        if let Some((k, _)) = text_sync_handle(&text) {
            sync(&k).await?;
        }
        let text_ms = millis_since(stage);
        on_event(GenerationEvent::TextEncoded {
            ms: text_ms,
            unread,
            token_limit: self.tokenizer.max_tokens(),
        });

        let mut report = GenerationReport {
            text_ms,
            ..Default::default()
        };
        let mut cache = KvCache::new(cfg.window_chunks);
        let mut decoder_state = DecoderState::new();
        let steps = request.steps;
        let dt = 1.0 / steps as f32;
        for chunk in 0..request.chunks {
            let mut timings = ChunkTimings::default();
            let noise = match &request.noise {
                NoiseSource::Seed(seed) => {
                    chunk_noise(*seed, chunk as u64, self.chunk_latent_len())
                }
                NoiseSource::Fixed(all) => all[chunk].clone(),
            };
            let mut x = Tensor::<4>::from_data(TensorData::new(noise, shape), &self.device);
            let f0 = chunk * cfg.chunk_frames;
            for step in 0..steps {
                if cancel.is_cancelled() {
                    return Err(KinemaError::Cancelled);
                }
                let stage = Instant::now();
                let t = vec![1.0 - step as f32 * dt; cfg.chunk_frames];
                let d = vec![self.manifest.training.step_size_input(dt); cfg.chunk_frames];
                let conditional = Pass {
                    text: &text,
                    cache: &cache,
                };
                let v = match &unconditional {
                    None => self.dit.velocity(x.clone(), &t, &d, &text, f0, &cache),
                    Some(u) => {
                        let mut vs =
                            self.dit
                                .velocities(x.clone(), &t, &d, &[conditional, u.pass()], f0);
                        let v_u = vs.pop().expect("two passes");
                        let v_c = vs.pop().expect("two passes");
                        v_u.clone() + (v_c - v_u) * u.scale
                    }
                };
                x = x - v * dt;
                sync(&x).await?;
                let ms = millis_since(stage);
                timings.denoise_steps_ms.push(ms);
                on_event(GenerationEvent::Step {
                    chunk,
                    step,
                    steps,
                    ms,
                });
            }

            let stage = Instant::now();
            let frames = self.decoder.decode_chunk(x.clone(), &mut decoder_state);
            let rgb = frames
                .into_data_async()
                .await
                .map_err(|err| KinemaError::Compute(format!("{err:?}")))?
                .try_to_vec::<f32>()
                .map_err(|err| KinemaError::Compute(format!("{err:?}")))?;
            timings.decode_ms = millis_since(stage);

            report.frames += frames_per_chunk;
            on_event(GenerationEvent::Chunk(ChunkFrames {
                index: chunk,
                first_frame: chunk * frames_per_chunk,
                count: frames_per_chunk,
                width: video.width,
                height: video.height,
                rgb,
                timings: timings.clone(),
            }));

            let last = chunk + 1 == request.chunks;
            if !last && cache.is_used() {
                if cancel.is_cancelled() {
                    return Err(KinemaError::Cancelled);
                }
                let stage = Instant::now();
                let conditional = Pass {
                    text: &text,
                    cache: &cache,
                };
                let recorded = match &mut unconditional {
                    None => self.dit.cache_entry(x, &text, f0, &cache),
                    Some(u) => {
                        let mut entries = self.dit.cache_entries(x, &[conditional, u.pass()], f0);
                        u.cache.push(entries.pop().expect("two passes"));
                        entries.pop().expect("two passes")
                    }
                };
                if let Some((_, v)) = recorded.last() {
                    sync(v).await?;
                }
                cache.push(recorded);
                let ms = millis_since(stage);
                timings.cache_fill_ms = Some(ms);
                on_event(GenerationEvent::CacheFilled { chunk, ms });
            }
            report.chunks.push(timings);
        }
        report.total_ms = millis_since(started);
        Ok(report)
    }
}

/// The unconditional half of classifier-free guidance.
struct Unconditional {
    scale: f32,
    text: DitText,
    cache: KvCache,
}

impl Unconditional {
    fn pass(&self) -> Pass<'_> {
        Pass {
            text: &self.text,
            cache: &self.cache,
        }
    }
}

fn text_sync_handle(text: &DitText) -> Option<(Tensor<4>, Tensor<4>)> {
    text.first_cross_kv()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_interleave_from_planes() {
        // One 2×1 frame: R plane [0, 1], G plane [0.5, 0], B plane [1, 2 (clamped)].
        let chunk = ChunkFrames {
            index: 0,
            first_frame: 0,
            count: 1,
            width: 2,
            height: 1,
            rgb: vec![0.0, 1.0, 0.5, 0.0, 1.0, 2.0],
            timings: ChunkTimings::default(),
        };
        assert_eq!(chunk.frame_rgb8(0), vec![0, 128, 255, 255, 0, 255]);
        assert_eq!(
            chunk.frame_rgba8(0),
            vec![0, 128, 255, 255, 255, 0, 255, 255]
        );
    }
}
