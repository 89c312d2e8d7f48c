use burn::tensor::{Device, Int, Tensor, TensorData, activation, module};

use super::TextConfig;
use crate::nn::{self, Linear, layer_norm};
use crate::weights::Weights;

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

fn norm(weights: &mut Weights, prefix: &str, device: &Device) -> Norm {
    Norm {
        weight: weights.tensor(&format!("{prefix}.weight"), device),
        bias: weights.tensor(&format!("{prefix}.bias"), device),
    }
}

impl TextEncoder {
    pub fn load(config: &TextConfig, weights: &mut Weights, device: &Device) -> Self {
        let e = "text.embeddings";
        let token_types: Tensor<2> =
            weights.tensor(&format!("{e}.token_type_embeddings.weight"), device);
        let hidden = config.hidden;
        let layers = (0..config.layers)
            .map(|i| {
                let l = format!("text.encoder.layer.{i}");
                Layer {
                    query: weights.linear(&format!("{l}.attention.self.query"), device),
                    key: weights.linear(&format!("{l}.attention.self.key"), device),
                    value: weights.linear(&format!("{l}.attention.self.value"), device),
                    attn_out: weights.linear(&format!("{l}.attention.output.dense"), device),
                    attn_norm: norm(weights, &format!("{l}.attention.output.LayerNorm"), device),
                    intermediate: weights.linear(&format!("{l}.intermediate.dense"), device),
                    output: weights.linear(&format!("{l}.output.dense"), device),
                    out_norm: norm(weights, &format!("{l}.output.LayerNorm"), device),
                }
            })
            .collect();
        Self {
            config: config.clone(),
            word: weights.tensor(&format!("{e}.word_embeddings.weight"), device),
            position: weights.tensor(&format!("{e}.position_embeddings.weight"), device),
            token_type0: token_types.slice([0..1, 0..hidden]).reshape([hidden]),
            embed_norm: norm(weights, &format!("{e}.LayerNorm"), device),
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
