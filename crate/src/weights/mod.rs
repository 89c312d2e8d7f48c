//! The model folder: its manifest, integrity checks and the safetensors shards behind it.
//!
//! The loader takes bytes, never paths: the browser fetches files and the CLI reads them, and both
//! hand the same bytes to [`WeightLoader`].

mod error;
mod loader;
mod manifest;
mod scope;

pub use error::WeightsError;
pub use loader::{LoadedTensor, WeightLoader, Weights};
pub use manifest::{
    Architecture, DitStage, FileEntry, MAX_GUIDANCE, Manifest, Role, Training, VideoConfig,
};
pub use scope::Scope;
