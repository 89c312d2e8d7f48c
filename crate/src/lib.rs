//! Kinema: text-to-video that runs where the visitor is.
//!
//! The data flow is prompt → text → denoise → decode → present. Everything below [`web`] also
//! builds natively, so the browser, the native CLI, the tests and the GPU benchmarks share one
//! model definition.

pub mod compute;
pub mod decode;
pub mod denoise;
pub mod error;
pub mod model;
pub mod nn;
pub mod pipeline;
pub mod probe;
pub mod text;
pub mod video;
pub mod weights;

#[cfg(target_arch = "wasm32")]
pub mod web;

pub use error::KinemaError;
pub use model::KinemaModel;
