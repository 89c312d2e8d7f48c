//! The JavaScript surface of the wasm package (`pkg/kinema.js` + `.d.ts`).
//!
//! It runs inside a Web Worker: the GPU work and its awaits never block the page. Every export
//! returns a `Result`, so failures arrive in JS as rejected promises with a readable message.

use std::cell::RefCell;

use burn::tensor::Device;
use wasm_bindgen::prelude::*;

use crate::compute::{self, GpuInfo};

mod generator;
use crate::probe;
pub use generator::Generator;

thread_local! {
    /// The engine's device: WebGPU (burn's wgpu runtime may be registered once per worker; later
    /// calls reuse it) or the CPU. Chosen once per worker by `initGpu` or `initCpu`.
    static GPU: RefCell<Option<(Device, GpuInfo)>> = const { RefCell::new(None) };
}

#[wasm_bindgen(start)]
fn start() {
    console_error_panic_hook::set_once();
}

/// The adapter the model runs on and the limits that decide what fits.
#[wasm_bindgen(getter_with_clone)]
pub struct GpuReport {
    /// Adapter name (browsers may leave it empty to limit fingerprinting).
    pub adapter: String,
    /// Graphics API under wgpu, "BrowserWebGpu" in a browser.
    pub backend: String,
    /// Whether the adapter offers `shader-f16`.
    #[wasm_bindgen(js_name = shaderF16)]
    pub shader_f16: bool,
    /// Largest buffer, in bytes.
    #[wasm_bindgen(js_name = maxBufferSize)]
    pub max_buffer_size: f64,
    /// Largest storage-buffer binding, in bytes.
    #[wasm_bindgen(js_name = maxStorageBufferBindingSize)]
    pub max_storage_buffer_binding_size: f64,
}

impl From<&GpuInfo> for GpuReport {
    fn from(info: &GpuInfo) -> Self {
        Self {
            adapter: info.adapter.clone(),
            backend: info.backend.clone(),
            shader_f16: info.shader_f16,
            // Limits fit f64 exactly (they are far below 2^53) and JS numbers are friendlier
            // than BigInt for display.
            max_buffer_size: info.max_buffer_size as f64,
            max_storage_buffer_binding_size: info.max_storage_buffer_binding_size as f64,
        }
    }
}

/// The outcome of the known-answer matmul probe.
#[wasm_bindgen]
pub struct ProbeReport {
    /// What the GPU computed (sum of a 256×256 product).
    pub value: f64,
    /// What the answer must be.
    pub expected: f64,
    /// Upload, compute and readback, in milliseconds.
    pub millis: f64,
    /// Whether `value` agrees with `expected`.
    pub correct: bool,
}

fn gpu_device() -> Option<Device> {
    GPU.with(|gpu| gpu.borrow().as_ref().map(|(device, _)| device.clone()))
}

/// Initialises burn's WebGPU backend (once; later calls return the same report).
#[wasm_bindgen(js_name = initGpu)]
pub async fn init_gpu() -> Result<GpuReport, JsError> {
    if let Some(report) = GPU.with(|gpu| gpu.borrow().as_ref().map(|(_, info)| info.into())) {
        return Ok(report);
    }
    let (device, info) = compute::init_gpu().await.map_err(to_js)?;
    let report = GpuReport::from(&info);
    GPU.with(|gpu| *gpu.borrow_mut() = Some((device, info)));
    Ok(report)
}

/// Chooses the CPU engine (burn's Flex backend in wasm) for this worker instead of WebGPU: for
/// browsers without WebGPU or with only a software adapter. Once chosen, the worker keeps it.
#[wasm_bindgen(js_name = initCpu)]
pub fn init_cpu() -> GpuReport {
    GPU.with(|gpu| {
        let mut gpu = gpu.borrow_mut();
        let (_, info) = gpu.get_or_insert_with(|| (compute::cpu_device(), compute::cpu_info()));
        GpuReport::from(&*info)
    })
}

/// Multiplies two known matrices on the engine's device and checks the answer.
#[wasm_bindgen(js_name = runProbe)]
pub async fn run_probe() -> Result<ProbeReport, JsError> {
    let device = gpu_device().ok_or_else(|| {
        JsError::new("the engine is not initialised: call initGpu or initCpu first")
    })?;
    let result = probe::run_probe(&device).await.map_err(to_js)?;
    Ok(ProbeReport {
        value: result.value,
        expected: result.expected,
        millis: result.millis,
        correct: result.is_correct(),
    })
}

fn to_js(err: crate::KinemaError) -> JsError {
    JsError::new(&err.to_string())
}
