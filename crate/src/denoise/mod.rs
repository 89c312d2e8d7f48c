//! The video DiT and the few-step flow sampler that runs it chunk by chunk.

mod cache;
mod dit;
mod noise;
mod rope;

pub use cache::{BlockKv, KvCache};
pub use dit::{Dit, DitText, Pass};
pub use noise::chunk_noise;

use serde::Deserialize;

use crate::nn::linear_shapes;

/// `architecture.dit` of the manifest.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct DitConfig {
    pub dim: usize,
    pub depth: usize,
    pub heads: usize,
    pub patch: usize,
    pub latent_channels: usize,
    pub latent_height: usize,
    pub latent_width: usize,
    pub mlp_ratio: usize,
    pub freq_dim: usize,
    /// Latent frames per chunk (one chunk is what one sampling run produces).
    pub chunk_frames: usize,
    /// Chunks self-attention sees, the current one included.
    pub window_chunks: usize,
    /// Head-dim channels given to the t, y and x rotary positions.
    pub rope_split: [usize; 3],
    #[serde(default = "default_theta")]
    pub rope_theta: f64,
}

fn default_theta() -> f64 {
    10000.0
}

impl DitConfig {
    pub fn head_dim(&self) -> usize {
        self.dim / self.heads
    }

    /// Values per patch token: channels × patch².
    pub fn patch_values(&self) -> usize {
        self.latent_channels * self.patch * self.patch
    }

    /// Tokens of one latent frame.
    pub fn tokens_per_frame(&self) -> usize {
        (self.latent_height / self.patch) * (self.latent_width / self.patch)
    }

    pub(crate) fn check(&self) -> Result<(), String> {
        if self.heads == 0 || !self.dim.is_multiple_of(self.heads) {
            return Err(format!(
                "dim {} not divisible by heads {}",
                self.dim, self.heads
            ));
        }
        if self.rope_split.iter().sum::<usize>() != self.head_dim()
            || self.rope_split.iter().any(|n| n % 2 != 0)
        {
            return Err(format!(
                "rope_split {:?} must be even and sum to the head dim {}",
                self.rope_split,
                self.head_dim()
            ));
        }
        if self.patch == 0
            || !self.latent_height.is_multiple_of(self.patch)
            || !self.latent_width.is_multiple_of(self.patch)
        {
            return Err("latent size not divisible by patch".into());
        }
        if !self.freq_dim.is_multiple_of(2) || self.chunk_frames == 0 || self.window_chunks == 0 {
            return Err("freq_dim must be even, chunk_frames and window_chunks positive".into());
        }
        Ok(())
    }

    /// Every `dit.*` tensor and its PyTorch shape; `text_dim` is the text encoder's width.
    pub fn tensor_shapes(&self, text_dim: usize) -> Vec<(String, Vec<usize>)> {
        let d = self.dim;
        let hd = self.head_dim();
        let mut out = Vec::new();
        out.extend(linear_shapes("dit.patch_embed", d, self.patch_values()));
        out.extend(linear_shapes("dit.t_embed.0", d, self.freq_dim));
        out.extend(linear_shapes("dit.t_embed.2", d, d));
        out.extend(linear_shapes("dit.d_embed.0", d, self.freq_dim));
        out.extend(linear_shapes("dit.d_embed.2", d, d));
        out.extend(linear_shapes("dit.pooled_proj", d, text_dim));
        out.extend(linear_shapes("dit.adaln.1", 6 * d, d));
        out.extend(linear_shapes("dit.text_proj", d, text_dim));
        for i in 0..self.depth {
            let b = format!("dit.blocks.{i}");
            out.push((format!("{b}.scale_shift_table"), vec![6, d]));
            out.extend(linear_shapes(&format!("{b}.attn.qkv"), 3 * d, d));
            out.push((format!("{b}.attn.q_norm.weight"), vec![hd]));
            out.push((format!("{b}.attn.k_norm.weight"), vec![hd]));
            out.extend(linear_shapes(&format!("{b}.attn.proj"), d, d));
            out.push((format!("{b}.cross_norm.weight"), vec![d]));
            out.push((format!("{b}.cross_norm.bias"), vec![d]));
            out.extend(linear_shapes(&format!("{b}.cross.q"), d, d));
            out.extend(linear_shapes(&format!("{b}.cross.kv"), 2 * d, d));
            out.extend(linear_shapes(&format!("{b}.cross.proj"), d, d));
            out.extend(linear_shapes(
                &format!("{b}.mlp.fc1"),
                d * self.mlp_ratio,
                d,
            ));
            out.extend(linear_shapes(
                &format!("{b}.mlp.fc2"),
                d,
                d * self.mlp_ratio,
            ));
        }
        out.push(("dit.final_scale_shift_table".into(), vec![2, d]));
        out.extend(linear_shapes("dit.final_adaln", 2 * d, d));
        out.extend(linear_shapes("dit.final_proj", self.patch_values(), d));
        out
    }
}
