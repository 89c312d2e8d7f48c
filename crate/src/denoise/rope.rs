//! 3-D rotary positions: head-dim sections for (frame, row, col), "rotate half" in each.

use burn::tensor::{Device, Tensor, TensorData};

use super::DitConfig;

/// cos and sin tables `[T, head_dim]` for the tokens of one chunk.
pub fn tables(
    config: &DitConfig,
    f0: usize,
    frames: usize,
    device: &Device,
) -> (Tensor<2>, Tensor<2>) {
    let hd = config.head_dim();
    let rows = config.latent_height / config.patch;
    let cols = config.latent_width / config.patch;
    let tokens = frames * rows * cols;
    let mut cos = Vec::with_capacity(tokens * hd);
    let mut sin = Vec::with_capacity(tokens * hd);
    let mut angles = vec![0.0f64; hd];
    for f in 0..frames {
        for r in 0..rows {
            for c in 0..cols {
                let positions = [(f0 + f) as f64, r as f64, c as f64];
                let mut offset = 0;
                for (&n, &p) in config.rope_split.iter().zip(&positions) {
                    let half = n / 2;
                    for j in 0..half {
                        let freq = config.rope_theta.powf(-2.0 * j as f64 / n as f64);
                        angles[offset + j] = p * freq;
                        angles[offset + j + half] = p * freq;
                    }
                    offset += n;
                }
                cos.extend(angles.iter().map(|a| a.cos() as f32));
                sin.extend(angles.iter().map(|a| a.sin() as f32));
            }
        }
    }
    (
        Tensor::from_data(TensorData::new(cos, [tokens, hd]), device),
        Tensor::from_data(TensorData::new(sin, [tokens, hd]), device),
    )
}

/// The signed permutation `R` with `x·R = rotate_half(x)` section by section: for a section
/// `[a, b]` of halves, `rotate_half = [−b, a]`. A matmul keeps it to one op on every backend.
pub fn rotate_half_matrix(config: &DitConfig, device: &Device) -> Tensor<2> {
    let hd = config.head_dim();
    let mut m = vec![0.0f32; hd * hd];
    let mut offset = 0;
    for &n in &config.rope_split {
        let half = n / 2;
        for j in 0..half {
            // out[o+j] = −in[o+j+half]; out[o+j+half] = in[o+j]; m is [in, out].
            m[(offset + j + half) * hd + offset + j] = -1.0;
            m[(offset + j) * hd + offset + j + half] = 1.0;
        }
        offset += n;
    }
    Tensor::from_data(TensorData::new(m, [hd, hd]), device)
}

/// Applies the rotation to `[1, heads, T, hd]` with tables `[T, hd]`.
pub fn apply(x: Tensor<4>, cos: &Tensor<2>, sin: &Tensor<2>, rotate: &Tensor<2>) -> Tensor<4> {
    let rotated = x.clone().matmul(rotate.clone().unsqueeze());
    x * cos.clone().unsqueeze() + rotated * sin.clone().unsqueeze()
}
