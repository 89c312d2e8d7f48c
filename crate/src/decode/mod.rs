//! The TAEHV-style causal decoder: latent frames → RGB frames, streamed chunk by chunk.

mod decoder;

pub use decoder::{Decoder, DecoderState};

use serde::Deserialize;

/// `architecture.decoder` of the manifest.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct DecoderConfig {
    /// Channel widths of the four stages.
    pub widths: [usize; 4],
    pub latent_channels: usize,
}

/// The layer indices (as in the tensor names) of the three stages: (first conv, memory blocks,
/// temporal growth, its stride).
pub(crate) const STAGES: [(usize, [usize; 3], usize, usize); 3] = [
    (1, [3, 4, 5], 7, 1),
    (8, [9, 10, 11], 13, 2),
    (14, [15, 16, 17], 19, 2),
];
pub(crate) const PENULTIMATE_CONV: usize = 20;
pub(crate) const OUTPUT_CONV: usize = 22;

impl DecoderConfig {
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.widths.contains(&0) || self.latent_channels == 0 {
            return Err("widths and latent_channels must be positive".into());
        }
        Ok(())
    }

    /// Video frames per latent frame (the product of the temporal strides).
    pub fn temporal_upscale(&self) -> usize {
        STAGES.iter().map(|s| s.3).product()
    }

    /// Every `decoder.*` tensor and its PyTorch shape.
    pub fn tensor_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let w = self.widths;
        let mut out = Vec::new();
        let mut inputs = self.latent_channels;
        for (stage, &(conv, mems, grow, stride)) in STAGES.iter().enumerate() {
            let n = w[stage];
            out.push((format!("decoder.{conv}.weight"), vec![n, inputs, 3, 3]));
            if stage == 0 {
                out.push((format!("decoder.{conv}.bias"), vec![n]));
            }
            for m in mems {
                out.push((format!("decoder.{m}.conv.0.weight"), vec![n, 2 * n, 3, 3]));
                out.push((format!("decoder.{m}.conv.0.bias"), vec![n]));
                for k in [2, 4] {
                    out.push((format!("decoder.{m}.conv.{k}.weight"), vec![n, n, 3, 3]));
                    out.push((format!("decoder.{m}.conv.{k}.bias"), vec![n]));
                }
            }
            out.push((
                format!("decoder.{grow}.conv.weight"),
                vec![n * stride, n, 1, 1],
            ));
            inputs = n;
        }
        out.push((
            format!("decoder.{PENULTIMATE_CONV}.weight"),
            vec![w[3], w[2], 3, 3],
        ));
        out.push((format!("decoder.{OUTPUT_CONV}.weight"), vec![3, w[3], 3, 3]));
        out.push((format!("decoder.{OUTPUT_CONV}.bias"), vec![3]));
        out
    }
}
