use thiserror::Error;

/// What can be wrong with a model folder. Every message names the file and, where there is
/// one, the tensor, so a broken deployment can be fixed without a debugger.
#[derive(Debug, Error, PartialEq)]
pub enum WeightsError {
    #[error("manifest.json is not a valid kinema model manifest: {0}")]
    Manifest(String),
    #[error("model folder: file `{path}` is listed in manifest.json but was not provided")]
    MissingFile { path: String },
    #[error(
        "model folder: file `{path}` is not listed in manifest.json (for the roles being loaded)"
    )]
    UnknownFile { path: String },
    #[error("model folder: file `{path}` has {actual} bytes, manifest.json says {expected}")]
    Size {
        path: String,
        expected: u64,
        actual: u64,
    },
    #[error(
        "model folder: file `{path}` is corrupted: sha256 {actual}, manifest.json says {expected}"
    )]
    Checksum {
        path: String,
        expected: String,
        actual: String,
    },
    #[error("model folder: `{path}` is not a readable safetensors file: {message}")]
    Safetensors { path: String, message: String },
    #[error(
        "model folder: tensor `{tensor}` in `{path}` is stored as {dtype}; only F16 and F32 are supported"
    )]
    DType {
        path: String,
        tensor: String,
        dtype: String,
    },
    #[error(
        "model folder: tensor `{tensor}` in `{path}` has shape {actual:?}, the architecture needs {expected:?}"
    )]
    Shape {
        path: String,
        tensor: String,
        expected: Vec<usize>,
        actual: Vec<usize>,
    },
    #[error(
        "model folder: tensor `{tensor}` in `{path}` is not part of the architecture (or belongs to another role)"
    )]
    UnexpectedTensor { path: String, tensor: String },
    #[error("model folder: tensor `{tensor}` appears twice (again in `{path}`)")]
    DuplicateTensor { path: String, tensor: String },
    #[error("model folder: tensor `{tensor}` is missing from the {role} files ({files})")]
    MissingTensor {
        tensor: String,
        role: String,
        files: String,
    },
}
