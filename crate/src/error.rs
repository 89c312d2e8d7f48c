use thiserror::Error;

pub use crate::weights::WeightsError;

/// Every failure a caller can meet, phrased for the person who will read it.
#[derive(Debug, Error)]
pub enum KinemaError {
    /// No usable GPU adapter, or the adapter refused to give us a device.
    #[error("no usable GPU: {0}")]
    NoGpu(String),
    /// A computation started but its result could not be read back.
    #[error("GPU computation failed: {0}")]
    Compute(String),
    /// The model folder is incomplete, corrupted or does not match its architecture.
    #[error(transparent)]
    Weights(#[from] WeightsError),
    /// The tokenizer file could not be read or could not encode the prompt.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The caller asked for something the model cannot do (empty prompt, bad length, ...).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The caller set the cancel flag; generation stopped between two steps.
    #[error("generation cancelled")]
    Cancelled,
}
