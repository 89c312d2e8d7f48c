//! The few layers the three networks share, as plain tensors and burn's functional ops.
//!
//! Weights arrive from the model folder already validated, so the layers hold tensors directly
//! instead of going through burn's `Module` records.

use burn::tensor::{Tensor, module};

/// A dense layer; `weight` is `[in, out]` (burn's layout, transposed from PyTorch on load).
#[derive(Debug, Clone)]
pub struct Linear {
    pub weight: Tensor<2>,
    pub bias: Option<Tensor<1>>,
}

impl Linear {
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        module::linear(x, self.weight.clone(), self.bias.clone())
    }
}

/// The names and PyTorch shapes of a `Linear(in → out)` with bias.
pub fn linear_shapes(prefix: &str, out: usize, inp: usize) -> [(String, Vec<usize>); 2] {
    [
        (format!("{prefix}.weight"), vec![out, inp]),
        (format!("{prefix}.bias"), vec![out]),
    ]
}

/// LayerNorm over the last axis without affine parameters (biased variance, as PyTorch).
pub fn layer_norm_plain<const D: usize>(x: Tensor<D>, eps: f64) -> Tensor<D> {
    let mean = x.clone().mean_dim(D - 1);
    let centered = x - mean;
    let var = centered.clone().square().mean_dim(D - 1);
    centered / (var + eps).sqrt()
}

/// LayerNorm over the last axis with weight and bias.
pub fn layer_norm<const D: usize>(
    x: Tensor<D>,
    weight: &Tensor<1>,
    bias: &Tensor<1>,
    eps: f64,
) -> Tensor<D> {
    layer_norm_plain(x, eps) * weight.clone().unsqueeze() + bias.clone().unsqueeze()
}

/// RMSNorm over the last axis with a weight.
pub fn rms_norm<const D: usize>(x: Tensor<D>, weight: &Tensor<1>, eps: f64) -> Tensor<D> {
    let ms = x.clone().square().mean_dim(D - 1);
    x / (ms + eps).sqrt() * weight.clone().unsqueeze()
}

/// GELU, tanh approximation. Written out with `x·x·x` because a `powf` of a negative base is
/// undefined in WGSL.
pub fn gelu_tanh<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
    let cube = x.clone() * x.clone() * x.clone();
    let inner = (x.clone() + cube * 0.044715) * SQRT_2_OVER_PI;
    x * (inner.tanh() + 1.0) * 0.5
}

/// Splits the last axis `[.., heads·hd]` of `[T, heads·hd]` into `[1, heads, T, hd]`.
pub fn split_heads(x: Tensor<2>, heads: usize) -> Tensor<4> {
    let [t, c] = x.dims();
    x.reshape([1, t, heads, c / heads]).swap_dims(1, 2)
}

/// Inverse of [`split_heads`].
pub fn merge_heads(x: Tensor<4>) -> Tensor<2> {
    let [_, heads, t, hd] = x.dims();
    x.swap_dims(1, 2).reshape([t, heads * hd])
}

/// softmax(q·kᵀ/√hd)·v for `[1, heads, T, hd]` tensors, every key visible.
pub fn attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>) -> Tensor<4> {
    module::attention(q, k, v, None, None, Default::default())
}
