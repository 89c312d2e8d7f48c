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

/// The pure-Rust CPU device: always available natively, used by the tests and `--backend cpu`.
#[cfg(not(target_arch = "wasm32"))]
pub fn cpu_device() -> Device {
    Device::flex()
}
