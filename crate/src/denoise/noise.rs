use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

/// Standard-normal noise for chunk `chunk` of the clip seeded by `seed`.
///
/// Drawn on the CPU so wasm and native give the same clip for a seed: ChaCha is specified bit
/// for bit, and Box–Muller uses `libm`'s pure-Rust log/cos/sin rather than the platform's maths
/// library. Each chunk has its own ChaCha stream, so a chunk's noise does not depend on how
/// many chunks come before it were drawn.
pub fn chunk_noise(seed: u64, chunk: u64, len: usize) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(chunk);
    let mut out = Vec::with_capacity(len + 1);
    while out.len() < len {
        // u1 in (0, 1] so the log is finite; 53 random bits each.
        let u1 = ((rng.next_u64() >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64);
        let u2 = (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
        let r = (-2.0 * libm::log(u1)).sqrt();
        let angle = 2.0 * core::f64::consts::PI * u2;
        out.push((r * libm::cos(angle)) as f32);
        out.push((r * libm::sin(angle)) as f32);
    }
    out.truncate(len);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_noise_and_chunks_differ() {
        assert_eq!(chunk_noise(7, 0, 100), chunk_noise(7, 0, 100));
        assert_ne!(chunk_noise(7, 0, 100), chunk_noise(7, 1, 100));
        assert_ne!(chunk_noise(7, 0, 100), chunk_noise(8, 0, 100));
    }

    #[test]
    fn looks_standard_normal() {
        let n = 200_000;
        let x = chunk_noise(1, 0, n);
        let mean = x.iter().map(|&v| f64::from(v)).sum::<f64>() / n as f64;
        let var = x
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / n as f64;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "var {var}");
    }
}
