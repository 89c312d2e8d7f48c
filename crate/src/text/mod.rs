//! The prompt encoder: MiniLM's tokenizer and the BERT encoder (all-MiniLM-L6-v2).

mod bert;
mod tokenizer;

pub use bert::{TextEmbedding, TextEncoder};
pub use tokenizer::TextTokenizer;

use serde::Deserialize;

use crate::nn::linear_shapes;

/// `architecture.text` of the manifest.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct TextConfig {
    pub vocab_size: usize,
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub intermediate: usize,
    pub max_positions: usize,
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    pub max_text_tokens: usize,
}

fn default_type_vocab() -> usize {
    2
}

fn default_eps() -> f64 {
    1e-12
}

impl TextConfig {
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.heads == 0 || !self.hidden.is_multiple_of(self.heads) {
            return Err(format!(
                "hidden {} not divisible by heads {}",
                self.hidden, self.heads
            ));
        }
        if self.max_text_tokens < 2 || self.max_text_tokens > self.max_positions {
            return Err(format!(
                "max_text_tokens {} must be in 2..={}",
                self.max_text_tokens, self.max_positions
            ));
        }
        Ok(())
    }

    /// Every `text.*` tensor and its PyTorch shape.
    pub fn tensor_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let h = self.hidden;
        let e = "text.embeddings";
        let mut out = vec![
            (
                format!("{e}.word_embeddings.weight"),
                vec![self.vocab_size, h],
            ),
            (
                format!("{e}.position_embeddings.weight"),
                vec![self.max_positions, h],
            ),
            (
                format!("{e}.token_type_embeddings.weight"),
                vec![self.type_vocab_size, h],
            ),
            (format!("{e}.LayerNorm.weight"), vec![h]),
            (format!("{e}.LayerNorm.bias"), vec![h]),
        ];
        for i in 0..self.layers {
            let l = format!("text.encoder.layer.{i}");
            for name in ["query", "key", "value"] {
                out.extend(linear_shapes(&format!("{l}.attention.self.{name}"), h, h));
            }
            out.extend(linear_shapes(&format!("{l}.attention.output.dense"), h, h));
            out.push((format!("{l}.attention.output.LayerNorm.weight"), vec![h]));
            out.push((format!("{l}.attention.output.LayerNorm.bias"), vec![h]));
            out.extend(linear_shapes(
                &format!("{l}.intermediate.dense"),
                self.intermediate,
                h,
            ));
            out.extend(linear_shapes(
                &format!("{l}.output.dense"),
                h,
                self.intermediate,
            ));
            out.push((format!("{l}.output.LayerNorm.weight"), vec![h]));
            out.push((format!("{l}.output.LayerNorm.bias"), vec![h]));
        }
        out
    }
}
