//! A small computation with a result known in advance, to prove a device really computes.
//!
//! A GPU that initialises but produces garbage (a broken driver, a shader miscompiled by a
//! software adapter) must be caught before a visitor waits for a clip, so the probe checks the
//! value and not only that something came back.

use burn::tensor::{Device, Tensor, TensorData};
use web_time::Instant;

use crate::KinemaError;

/// Side of the square matrices the probe multiplies: big enough to need real shader work.
pub const PROBE_SIZE: usize = 256;

/// What the probe measured.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeResult {
    /// Sum of all entries of A·B as the device computed it.
    pub value: f64,
    /// The same sum computed on the CPU in f64.
    pub expected: f64,
    /// Wall time from upload to readback, in milliseconds (includes shader compilation on the
    /// first call).
    pub millis: f64,
}

impl ProbeResult {
    /// Whether the device's answer agrees with the reference within f32 accumulation error.
    pub fn is_correct(&self) -> bool {
        (self.value - self.expected).abs() <= 1e-3 * self.expected.abs().max(1.0)
    }
}

/// Deterministic entries in [-0.5, 0.5] with no structure a broken kernel could get right by luck.
fn probe_matrix(seed: usize) -> Vec<f32> {
    (0..PROBE_SIZE * PROBE_SIZE)
        .map(|i| ((i * 7 + seed * 13) % 17) as f32 / 16.0 - 0.5)
        .collect()
}

/// Σᵢⱼ (A·B)ᵢⱼ = Σₖ (Σᵢ Aᵢₖ)(Σⱼ Bₖⱼ): the reference without an O(n³) loop.
fn reference_sum(a: &[f32], b: &[f32]) -> f64 {
    let n = PROBE_SIZE;
    (0..n)
        .map(|k| {
            let col_a: f64 = (0..n).map(|i| f64::from(a[i * n + k])).sum();
            let row_b: f64 = (0..n).map(|j| f64::from(b[k * n + j])).sum();
            col_a * row_b
        })
        .sum()
}

/// Multiplies two known 256×256 matrices on `device` and checks the sum of the product.
pub async fn run_probe(device: &Device) -> Result<ProbeResult, KinemaError> {
    let a = probe_matrix(1);
    let b = probe_matrix(2);
    let expected = reference_sum(&a, &b);
    let shape = [PROBE_SIZE, PROBE_SIZE];

    let started = Instant::now();
    let ta = Tensor::<2>::from_data(TensorData::new(a, shape), device);
    let tb = Tensor::<2>::from_data(TensorData::new(b, shape), device);
    let product = ta.matmul(tb);
    let data = product
        .into_data_async()
        .await
        .map_err(|err| KinemaError::Compute(format!("{err:?}")))?;
    let millis = started.elapsed().as_secs_f64() * 1000.0;

    let values = data
        .try_to_vec::<f32>()
        .map_err(|err| KinemaError::Compute(format!("{err:?}")))?;
    let value = values.iter().map(|&v| f64::from(v)).sum();
    Ok(ProbeResult {
        value,
        expected,
        millis,
    })
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    #[test]
    fn reference_sum_matches_naive_product() {
        let a = probe_matrix(1);
        let b = probe_matrix(2);
        let n = PROBE_SIZE;
        let mut naive = 0.0f64;
        for i in 0..n {
            for k in 0..n {
                let aik = f64::from(a[i * n + k]);
                for j in 0..n {
                    naive += aik * f64::from(b[k * n + j]);
                }
            }
        }
        assert!((naive - reference_sum(&a, &b)).abs() < 1e-6);
    }

    #[test]
    fn cpu_probe_is_correct() {
        let result = pollster::block_on(run_probe(&crate::compute::cpu_device())).unwrap();
        assert!(result.is_correct(), "{result:?}");
    }

    #[test]
    fn a_wrong_value_is_reported_wrong() {
        let result = ProbeResult {
            value: 1.0,
            expected: 2.0,
            millis: 0.0,
        };
        assert!(!result.is_correct());
    }
}
