//! The compute device: which GPU (or CPU) the model runs on, and what it can do.
//!
//! The wgpu runtime can be registered only once per process, so [`init_gpu`] is meant to be
//! called once and its [`Device`] cloned from then on.

use burn::tensor::Device;

use crate::KinemaError;

/// What the page and the CLI show about the device the model will run on.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuInfo {
    /// The adapter's name as the driver reports it (empty on some browsers, which hide it).
    pub adapter: String,
    /// The graphics API under wgpu: WebGPU in a browser, Vulkan/Metal/DX12 natively.
    pub backend: String,
    /// Whether f16 arithmetic is available in shaders (`shader-f16`); f32 always works.
    pub shader_f16: bool,
    /// The largest single buffer the device allows, in bytes.
    pub max_buffer_size: u64,
    /// The largest storage buffer one shader binding may see, in bytes.
    pub max_storage_buffer_binding_size: u64,
}

/// Brings up burn's wgpu runtime on the default adapter (high-performance preferred).
///
/// Async because a browser hands out adapters only asynchronously; natively, block on it.
pub async fn init_gpu() -> Result<(Device, GpuInfo), KinemaError> {
    let (device, setup) = Device::wgpu_options()
        .init_with_setup_async()
        .await
        .map_err(|err| KinemaError::NoGpu(err.to_string()))?;
    let adapter_info = setup.adapter.get_info();
    let limits = setup.adapter.limits();
    let info = GpuInfo {
        adapter: adapter_info.name,
        backend: format!("{:?}", setup.backend),
        shader_f16: setup
            .adapter
            .features()
            .contains(burn::tensor::wgpu::wgpu::Features::SHADER_F16),
        max_buffer_size: limits.max_buffer_size,
        max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size,
    };
    Ok((device, info))
}

/// The pure-Rust CPU device (burn's Flex backend): always available, natively and in wasm.
///
/// Natively it serves the tests and `--backend cpu`. In a browser it is the engine when there is
/// no WebGPU or only a software adapter: Flex's gemm with simd128 on one thread beats SwiftShader's
/// shader emulation by a wide margin (see the README's figures).
pub fn cpu_device() -> Device {
    Device::flex()
}

/// What the page shows about the CPU engine, in the shape of [`GpuInfo`].
pub fn cpu_info() -> GpuInfo {
    GpuInfo {
        adapter: "CPU (burn Flex)".to_owned(),
        backend: "Cpu".to_owned(),
        shader_f16: false,
        max_buffer_size: 0,
        max_storage_buffer_binding_size: 0,
    }
}

/// Lets the host's event loop run once.
///
/// In a browser worker, a clip on the CPU engine would otherwise hold the thread from its first
/// step to its last: its readbacks complete at once, so no await ever yields, and a Cancel message
/// would wait for the whole clip. Natively there is no event loop to serve.
#[cfg(target_arch = "wasm32")]
pub async fn yield_to_host() {
    use wasm_bindgen::{JsCast, JsValue};

    let promise = js_sys::Promise::new(&mut |resolve, _reject| {
        let global = js_sys::global();
        let set_timeout = js_sys::Reflect::get(&global, &JsValue::from_str("setTimeout"))
            .ok()
            .and_then(|f| f.dyn_into::<js_sys::Function>().ok());
        let scheduled = set_timeout
            .map(|f| f.call2(&global, &resolve, &JsValue::from(0)).is_ok())
            .unwrap_or(false);
        if !scheduled {
            let _ = resolve.call0(&JsValue::UNDEFINED);
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}

/// Lets the host's event loop run once (nothing to do natively).
#[cfg(not(target_arch = "wasm32"))]
pub async fn yield_to_host() {}
