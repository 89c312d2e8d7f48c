use thiserror::Error;

/// Every failure a caller can meet, phrased for the person who will read it.
#[derive(Debug, Error)]
pub enum KinemaError {
    /// No usable GPU adapter, or the adapter refused to give us a device.
    #[error("no usable GPU: {0}")]
    NoGpu(String),
    /// A computation started but its result could not be read back.
    #[error("GPU computation failed: {0}")]
    Compute(String),
}
