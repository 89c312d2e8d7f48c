use burn::tensor::{Device, Int, Tensor, TensorData, activation, module};

use super::TextConfig;
use crate::nn::{self, Linear, layer_norm};
use crate::weights::{Scope, Weights};

/// A prompt's encoding: what the DiT is conditioned on.
#[derive(Debug, Clone)]
pub struct TextEmbedding {
    /// Last hidden state, `[L, hidden]`.
    pub tokens: Tensor<2>,
    /// Mean over tokens, L2-normalised, `[hidden]`.
    pub pooled: Tensor<1>,
}

struct Norm {
    weight: Tensor<1>,
    bias: Tensor<1>,
}

struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attn_out: Linear,
    attn_norm: Norm,
    intermediate: Linear,
    output: Linear,
    out_norm: Norm,
}

/// BERT encoder (post-LayerNorm, GELU with erf), token type 0 only.
pub struct TextEncoder {
    config: TextConfig,
    word: Tensor<2>,
    position: Tensor<2>,
    token_type0: Tensor<1>,
    embed_norm: Norm,
    layers: Vec<Layer>,
}

impl Norm {
    fn load(scope: &mut Scope) -> Self {
        Self {
            weight: scope.tensor("weight"),
            bias: scope.tensor("bias"),
        }
    }
}

impl TextEncoder {
    pub fn load(config: &TextConfig, weights: &mut Weights, device: &Device) -> Self {
        let hidden = config.hidden;
        let layers = (0..config.layers)
            .map(|i| {
                let mut l = weights.scope(&format!("text.encoder.layer.{i}"), device);
                Layer {
                    query: l.linear("attention.self.query"),
                    key: l.linear("attention.self.key"),
                    value: l.linear("attention.self.value"),
                    attn_out: l.linear("attention.output.dense"),
                    attn_norm: Norm::load(&mut l.scope("attention.output.LayerNorm")),
                    intermediate: l.linear("intermediate.dense"),
                    output: l.linear("output.dense"),
                    out_norm: Norm::load(&mut l.scope("output.LayerNorm")),
                }
            })
            .collect();
        let mut e = weights.scope("text.embeddings", device);
        let token_types: Tensor<2> = e.tensor("token_type_embeddings.weight");
        Self {
            config: config.clone(),
            word: e.tensor("word_embeddings.weight"),
            position: e.tensor("position_embeddings.weight"),
            token_type0: token_types.slice([0..1, 0..hidden]).reshape([hidden]),
            embed_norm: Norm::load(&mut e.scope("LayerNorm")),
            layers,
        }
    }

    /// Encodes token ids (from [`super::TextTokenizer`]); the sequence is attended in full.
    pub fn forward(&self, ids: &[u32]) -> TextEmbedding {
        let device = self.word.device();
        let len = ids.len();
        let eps = self.config.layer_norm_eps;
        let ids: Vec<i32> = ids.iter().map(|&id| id as i32).collect();
        let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [1, len]), &device);
        let words = module::embedding(self.word.clone(), ids).reshape([len, self.config.hidden]);
        let positions = self.position.clone().slice([0..len, 0..self.config.hidden]);
        let mut x = words + positions + self.token_type0.clone().unsqueeze();
        x = layer_norm(x, &self.embed_norm.weight, &self.embed_norm.bias, eps);

        for layer in &self.layers {
            let heads = self.config.heads;
            let q = nn::split_heads(layer.query.forward(x.clone()), heads);
            let k = nn::split_heads(layer.key.forward(x.clone()), heads);
            let v = nn::split_heads(layer.value.forward(x.clone()), heads);
            let attn = nn::merge_heads(nn::attention(q, k, v));
            let h = layer.attn_out.forward(attn) + x;
            x = layer_norm(h, &layer.attn_norm.weight, &layer.attn_norm.bias, eps);
            let h = activation::gelu(layer.intermediate.forward(x.clone()));
            let h = layer.output.forward(h) + x;
            x = layer_norm(h, &layer.out_norm.weight, &layer.out_norm.bias, eps);
        }

        let mean: Tensor<1> = x.clone().mean_dim(0).reshape([self.config.hidden]);
        // sentence-transformers' Normalize: x / max(‖x‖, 1e-12).
        let norm = mean.clone().square().sum().sqrt().clamp_min(1e-12);
        TextEmbedding {
            tokens: x,
            pooled: mean / norm,
        }
    }
}
