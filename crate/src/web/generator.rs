//! Generation from JavaScript: build the model from fetched bytes, generate a clip chunk by chunk,
//! cancel. The worker calls this; the page talks to the worker.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Array, Function, Object, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;

use crate::KinemaError;
use crate::model::KinemaModel;
use crate::pipeline::{CancelFlag, ChunkFrames, GenerateRequest, GenerationEvent, NoiseSource};
use crate::weights::{Manifest, WeightLoader};

/// The largest seed JavaScript numbers carry exactly (2^53 − 1).
const MAX_SEED: f64 = 9_007_199_254_740_991.0;

/// A model on the worker's GPU, ready to generate.
#[wasm_bindgen]
pub struct Generator {
    model: Rc<KinemaModel>,
    parameters: usize,
    /// The flag of the clip being generated; replaced for each clip so a late cancel of an old
    /// clip cannot stop a new one.
    cancel: RefCell<CancelFlag>,
}

#[wasm_bindgen]
impl Generator {
    /// Builds the model from `manifest.json`'s bytes and an object mapping every file path of the
    /// manifest to its bytes (`ArrayBuffer` or `Uint8Array`). Each file's size and sha256 and
    /// every tensor's name, dtype and shape are checked; errors name the file and tensor.
    pub fn load(manifest_json: &[u8], files: &Object) -> Result<Generator, JsError> {
        let device = super::gpu_device().ok_or_else(|| {
            JsError::new("the engine is not initialised: call initGpu or initCpu first")
        })?;
        let manifest = Manifest::parse(manifest_json).map_err(|err| to_js(err.into()))?;
        let mut loader = WeightLoader::new(manifest.clone());
        for file in manifest.files_in_fetch_order() {
            let value = Reflect::get(files, &JsValue::from_str(&file.path))
                .ok()
                .filter(|value| !value.is_undefined() && !value.is_null())
                .ok_or_else(|| {
                    JsError::new(&format!("model file {} was not provided", file.path))
                })?;
            let bytes = Uint8Array::new(&value).to_vec();
            loader
                .add_file(&file.path, &bytes)
                .map_err(|err| to_js(err.into()))?;
        }
        let weights = loader.finish().map_err(|err| to_js(err.into()))?;
        let parameters = weights.parameter_count();
        let model = KinemaModel::load(weights, &device).map_err(to_js)?;
        Ok(Generator {
            model: Rc::new(model),
            parameters,
            cancel: RefCell::new(CancelFlag::new()),
        })
    }

    /// The model's id from its manifest.
    #[wasm_bindgen(getter, js_name = modelId)]
    pub fn model_id(&self) -> String {
        self.model.manifest.id.clone()
    }

    /// Number of parameters the model folder holds.
    #[wasm_bindgen(getter)]
    pub fn parameters(&self) -> f64 {
        self.parameters as f64
    }

    /// Whether the folder holds trained weights (false: random init, the clip is noise).
    #[wasm_bindgen(getter)]
    pub fn trained(&self) -> bool {
        self.model.manifest.trained
    }

    /// Frames per second of generated clips.
    #[wasm_bindgen(getter)]
    pub fn fps(&self) -> f64 {
        self.model.manifest.architecture.video.fps as f64
    }

    /// Generates `seconds` of video with `steps` Euler steps per chunk. `onEvent` receives, in
    /// order, `{type:'text', ms, unread, tokenLimit}` (`unread`: the end of the prompt past
    /// the model's token limit, or null), `{type:'step', chunk, step, steps, ms}`, `{type:'cache',
    /// chunk, ms}` and `{type:'chunk', index, firstFrame, width, height, frames: Uint8Array[]
    /// (RGBA8, one per frame), denoiseStepsMs, decodeMs, cacheFillMs}`. Resolves to
    /// `{frames, totalMs, textMs}`; rejects with "generation cancelled" after `cancel()`.
    pub fn generate(
        &self,
        prompt: String,
        seed: f64,
        seconds: u32,
        steps: u32,
        on_event: Function,
    ) -> js_sys::Promise {
        let chunks = self.model.chunks_for_seconds(seconds as usize);
        let noise = if seed.fract() == 0.0 && (0.0..=MAX_SEED).contains(&seed) {
            Ok(NoiseSource::Seed(seed as u64))
        } else {
            Err(KinemaError::InvalidRequest(format!(
                "seed must be a whole number from 0 to {MAX_SEED}, not {seed}"
            )))
        };
        self.start(prompt, chunks, steps, noise, on_event)
    }

    /// Like `generate`, but each chunk starts from the given noise (`Float32Array`s of
    /// `[chunk_frames, C, h, w]` latents, one per chunk) instead of a seed: reproduces a clip
    /// made elsewhere, e.g. the PyTorch reference in the parity tests.
    #[wasm_bindgen(js_name = generateFromNoise)]
    pub fn generate_from_noise(
        &self,
        prompt: String,
        noise: Vec<js_sys::Float32Array>,
        steps: u32,
        on_event: Function,
    ) -> js_sys::Promise {
        let chunks = noise.len();
        let noise = Ok(NoiseSource::Fixed(
            noise.iter().map(js_sys::Float32Array::to_vec).collect(),
        ));
        self.start(prompt, chunks, steps, noise, on_event)
    }

    /// Stops the clip being generated at its next step boundary.
    pub fn cancel(&self) {
        self.cancel.borrow().cancel();
    }
}

impl Generator {
    /// Runs one clip; the promise settles when it is finished, cancelled or failed.
    fn start(
        &self,
        prompt: String,
        chunks: usize,
        steps: u32,
        noise: Result<NoiseSource, KinemaError>,
        on_event: Function,
    ) -> js_sys::Promise {
        let model = Rc::clone(&self.model);
        let cancel = CancelFlag::new();
        *self.cancel.borrow_mut() = cancel.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let request = GenerateRequest {
                prompt,
                chunks,
                steps: steps as usize,
                noise: noise.map_err(|err| JsValue::from(to_js(err)))?,
            };
            // A throwing callback must not unwind through Rust: remember it, stop forwarding and
            // report it once generation returns.
            let mut callback_error: Option<JsValue> = None;
            let mut forward = |event: GenerationEvent| {
                if callback_error.is_none()
                    && let Err(err) = on_event.call1(&JsValue::NULL, &event_to_js(&event))
                {
                    callback_error = Some(err);
                }
            };
            let report = model
                .generate(&request, &cancel, &mut forward)
                .await
                .map_err(|err| JsValue::from(to_js(err)))?;
            if let Some(err) = callback_error {
                return Err(err);
            }
            let out = Object::new();
            set(&out, "frames", report.frames as f64);
            set(&out, "totalMs", report.total_ms);
            set(&out, "textMs", report.text_ms);
            Ok(out.into())
        })
    }
}

fn set(target: &Object, key: &str, value: impl Into<JsValue>) {
    // Defining a property on a plain object this module just created cannot fail.
    let _ = Reflect::set(target, &JsValue::from_str(key), &value.into());
}

fn event_to_js(event: &GenerationEvent) -> JsValue {
    let out = Object::new();
    match event {
        GenerationEvent::TextEncoded {
            ms,
            unread,
            token_limit,
        } => {
            set(&out, "type", "text");
            set(&out, "ms", *ms);
            set(
                &out,
                "unread",
                unread.as_deref().map_or(JsValue::NULL, JsValue::from_str),
            );
            set(&out, "tokenLimit", *token_limit as f64);
        }
        GenerationEvent::Step {
            chunk,
            step,
            steps,
            ms,
        } => {
            set(&out, "type", "step");
            set(&out, "chunk", *chunk as f64);
            set(&out, "step", *step as f64);
            set(&out, "steps", *steps as f64);
            set(&out, "ms", *ms);
        }
        GenerationEvent::CacheFilled { chunk, ms } => {
            set(&out, "type", "cache");
            set(&out, "chunk", *chunk as f64);
            set(&out, "ms", *ms);
        }
        GenerationEvent::Chunk(chunk) => chunk_to_js(&out, chunk),
    }
    out.into()
}

fn chunk_to_js(out: &Object, chunk: &ChunkFrames) {
    set(out, "type", "chunk");
    set(out, "index", chunk.index as f64);
    set(out, "firstFrame", chunk.first_frame as f64);
    set(out, "width", chunk.width as f64);
    set(out, "height", chunk.height as f64);
    let frames = Array::new();
    for i in 0..chunk.count {
        frames.push(&Uint8Array::from(chunk.frame_rgba8(i).as_slice()));
    }
    set(out, "frames", frames);
    let steps = Array::new();
    for ms in &chunk.timings.denoise_steps_ms {
        steps.push(&JsValue::from_f64(*ms));
    }
    set(out, "denoiseStepsMs", steps);
    set(out, "decodeMs", chunk.timings.decode_ms);
    set(
        out,
        "cacheFillMs",
        chunk
            .timings
            .cache_fill_ms
            .map_or(JsValue::NULL, JsValue::from_f64),
    );
}

fn to_js(err: KinemaError) -> JsError {
    JsError::new(&err.to_string())
}
