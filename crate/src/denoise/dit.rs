use burn::tensor::{Device, Tensor, TensorData, activation};

use super::cache::BlockKv;
use super::{DitConfig, KvCache, rope};
use crate::nn::{self, Linear, gelu_tanh, layer_norm, layer_norm_plain, rms_norm};
use crate::text::TextEmbedding;
use crate::weights::Weights;

const NORM_EPS: f64 = 1e-6;

struct Block {
    scale_shift_table: Tensor<2>,
    qkv: Linear,
    q_norm: Tensor<1>,
    k_norm: Tensor<1>,
    proj: Linear,
    cross_norm_weight: Tensor<1>,
    cross_norm_bias: Tensor<1>,
    cross_q: Linear,
    cross_kv: Linear,
    cross_proj: Linear,
    fc1: Linear,
    fc2: Linear,
}

/// The prompt as the DiT uses it, computed once per prompt: each block's cross-attention keys
/// and values, and the pooled-text part of the conditioning.
#[derive(Debug, Clone)]
pub struct DitText {
    cross_kv: Vec<(Tensor<4>, Tensor<4>)>,
    pooled: Tensor<2>,
}

impl DitText {
    /// The first block's cross-attention keys and values (something to wait on).
    pub fn first_cross_kv(&self) -> Option<(Tensor<4>, Tensor<4>)> {
        self.cross_kv.first().cloned()
    }
}

/// The block-causal video DiT (see ARCHITECTURE.md, "denoise").
pub struct Dit {
    config: DitConfig,
    patch_embed: Linear,
    t_embed: (Linear, Linear),
    d_embed: (Linear, Linear),
    pooled_proj: Linear,
    adaln: Linear,
    text_proj: Linear,
    blocks: Vec<Block>,
    final_table: Tensor<2>,
    final_adaln: Linear,
    final_proj: Linear,
    rotate: Tensor<2>,
}

impl Dit {
    pub fn load(config: &DitConfig, weights: &mut Weights, device: &Device) -> Self {
        let blocks = (0..config.depth)
            .map(|i| {
                let b = format!("dit.blocks.{i}");
                Block {
                    scale_shift_table: weights.tensor(&format!("{b}.scale_shift_table"), device),
                    qkv: weights.linear(&format!("{b}.attn.qkv"), device),
                    q_norm: weights.tensor(&format!("{b}.attn.q_norm.weight"), device),
                    k_norm: weights.tensor(&format!("{b}.attn.k_norm.weight"), device),
                    proj: weights.linear(&format!("{b}.attn.proj"), device),
                    cross_norm_weight: weights.tensor(&format!("{b}.cross_norm.weight"), device),
                    cross_norm_bias: weights.tensor(&format!("{b}.cross_norm.bias"), device),
                    cross_q: weights.linear(&format!("{b}.cross.q"), device),
                    cross_kv: weights.linear(&format!("{b}.cross.kv"), device),
                    cross_proj: weights.linear(&format!("{b}.cross.proj"), device),
                    fc1: weights.linear(&format!("{b}.mlp.fc1"), device),
                    fc2: weights.linear(&format!("{b}.mlp.fc2"), device),
                }
            })
            .collect();
        Self {
            config: config.clone(),
            patch_embed: weights.linear("dit.patch_embed", device),
            t_embed: (
                weights.linear("dit.t_embed.0", device),
                weights.linear("dit.t_embed.2", device),
            ),
            d_embed: (
                weights.linear("dit.d_embed.0", device),
                weights.linear("dit.d_embed.2", device),
            ),
            pooled_proj: weights.linear("dit.pooled_proj", device),
            adaln: weights.linear("dit.adaln.1", device),
            text_proj: weights.linear("dit.text_proj", device),
            blocks,
            final_table: weights.tensor("dit.final_scale_shift_table", device),
            final_adaln: weights.linear("dit.final_adaln", device),
            final_proj: weights.linear("dit.final_proj", device),
            rotate: rope::rotate_half_matrix(config, device),
        }
    }

    pub fn config(&self) -> &DitConfig {
        &self.config
    }

    /// Projects a prompt's encoding into what every step of every chunk reuses.
    pub fn prepare_text(&self, text: &TextEmbedding) -> DitText {
        let ctx = self.text_proj.forward(text.tokens.clone());
        let d = self.config.dim;
        let cross_kv = self
            .blocks
            .iter()
            .map(|block| {
                let kv = block.cross_kv.forward(ctx.clone());
                let len = kv.dims()[0];
                let k = kv.clone().slice([0..len, 0..d]);
                let v = kv.slice([0..len, d..2 * d]);
                (
                    nn::split_heads(k, self.config.heads),
                    nn::split_heads(v, self.config.heads),
                )
            })
            .collect();
        DitText {
            cross_kv,
            pooled: self.pooled_proj.forward(text.pooled.clone().unsqueeze()),
        }
    }

    /// `sincos(s·1000)` rows `[F, freq_dim]`, cos half first, computed in f32 as the PyTorch
    /// mirror does.
    fn sincos(&self, values: &[f32], device: &Device) -> Tensor<2> {
        let half = self.config.freq_dim / 2;
        let ln_theta = 10000f32.ln();
        let mut out = Vec::with_capacity(values.len() * half * 2);
        for &s in values {
            let args: Vec<f32> = (0..half)
                .map(|i| s * 1000.0 * (-ln_theta * i as f32 / half as f32).exp())
                .collect();
            out.extend(args.iter().map(|a| a.cos()));
            out.extend(args.iter().map(|a| a.sin()));
        }
        Tensor::from_data(TensorData::new(out, [values.len(), half * 2]), device)
    }

    fn patchify(&self, x: Tensor<4>) -> Tensor<2> {
        let c = &self.config;
        let [f, ch, h, w] = x.dims();
        let p = c.patch;
        x.reshape([f, ch, h / p, p, w / p, p])
            .permute([0, 2, 4, 1, 3, 5])
            .reshape([f * (h / p) * (w / p), ch * p * p])
    }

    fn unpatchify(&self, x: Tensor<3>) -> Tensor<4> {
        let c = &self.config;
        let [f, _, _] = x.dims();
        let p = c.patch;
        let (hp, wp) = (c.latent_height / p, c.latent_width / p);
        x.reshape([f, hp, wp, c.latent_channels, p, p])
            .permute([0, 3, 1, 4, 2, 5])
            .reshape([f, c.latent_channels, hp * p, wp * p])
    }

    /// The velocity `v = ε − x0` for one chunk `x` `[F, C, h, w]` at per-frame times `t` and
    /// step sizes `d`, its first latent frame being `f0`, attending to `cache`.
    pub fn velocity(
        &self,
        x: Tensor<4>,
        t: &[f32],
        d: &[f32],
        text: &DitText,
        f0: usize,
        cache: &KvCache,
    ) -> Tensor<4> {
        self.run(x, t, d, text, f0, cache, false).0
    }

    /// The KV-cache entry of a finished chunk: every block's keys and values from one pass
    /// over the clean latents at `t = d = 0`.
    pub fn cache_entry(
        &self,
        clean: Tensor<4>,
        text: &DitText,
        f0: usize,
        cache: &KvCache,
    ) -> BlockKv {
        let zeros = vec![0.0; clean.dims()[0]];
        let (_, recorded) = self.run(clean, &zeros, &zeros, text, f0, cache, true);
        recorded.expect("recording was asked for")
    }

    // One pass computes both the velocity and, when recording, the cache entry; the two public
    // entry points above keep callers from mixing them up.
    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        x: Tensor<4>,
        t: &[f32],
        d: &[f32],
        text: &DitText,
        f0: usize,
        cache: &KvCache,
        record: bool,
    ) -> (Tensor<4>, Option<BlockKv>) {
        let cfg = &self.config;
        let device = x.device();
        let [frames, _, _, _] = x.dims();
        let n = cfg.tokens_per_frame();
        let dim = cfg.dim;
        let tokens = frames * n;

        let t_emb = self.t_embed.1.forward(activation::silu(
            self.t_embed.0.forward(self.sincos(t, &device)),
        ));
        let d_emb = self.d_embed.1.forward(activation::silu(
            self.d_embed.0.forward(self.sincos(d, &device)),
        ));
        let c = t_emb + d_emb + text.pooled.clone();
        let c_act = activation::silu(c);
        let modulation = self.adaln.forward(c_act.clone()).reshape([frames, 6, dim]);
        let (cos, sin) = rope::tables(cfg, f0, frames, &device);

        let mut h = self
            .patch_embed
            .forward(self.patchify(x))
            .reshape([frames, n, dim]);
        let mut recorded = record.then(Vec::new);
        for (i, block) in self.blocks.iter().enumerate() {
            let m = modulation.clone() + block.scale_shift_table.clone().unsqueeze();
            let part = |k: usize| m.clone().slice([0..frames, k..k + 1, 0..dim]);
            let (shift_msa, scale_msa, gate_msa) = (part(0), part(1), part(2));
            let (shift_mlp, scale_mlp, gate_mlp) = (part(3), part(4), part(5));

            let a = layer_norm_plain(h.clone(), NORM_EPS) * (scale_msa + 1.0) + shift_msa;
            let qkv = block.qkv.forward(a.reshape([tokens, dim]));
            let heads = cfg.heads;
            let hd = cfg.head_dim();
            let qkv = qkv.reshape([tokens, 3, heads, hd]).permute([1, 2, 0, 3]);
            let q = qkv.clone().slice([0..1, 0..heads, 0..tokens, 0..hd]);
            let k = qkv.clone().slice([1..2, 0..heads, 0..tokens, 0..hd]);
            let v = qkv.slice([2..3, 0..heads, 0..tokens, 0..hd]);
            let q = rope::apply(
                rms_norm(q, &block.q_norm, NORM_EPS),
                &cos,
                &sin,
                &self.rotate,
            );
            let k = rope::apply(
                rms_norm(k, &block.k_norm, NORM_EPS),
                &cos,
                &sin,
                &self.rotate,
            );
            if let Some(rec) = recorded.as_mut() {
                rec.push((k.clone(), v.clone()));
            }
            let (k, v) = match cache.block(i) {
                Some((ck, cv)) => (
                    Tensor::cat(vec![ck.clone(), k], 2),
                    Tensor::cat(vec![cv.clone(), v], 2),
                ),
                None => (k, v),
            };
            let attn = block.proj.forward(nn::merge_heads(nn::attention(q, k, v)));
            h = h + gate_msa * attn.reshape([frames, n, dim]);

            let normed = layer_norm(
                h.clone().reshape([tokens, dim]),
                &block.cross_norm_weight,
                &block.cross_norm_bias,
                NORM_EPS,
            );
            let q = nn::split_heads(block.cross_q.forward(normed), heads);
            let (ck, cv) = &text.cross_kv[i];
            let cross = nn::merge_heads(nn::attention(q, ck.clone(), cv.clone()));
            h = h + block.cross_proj.forward(cross).reshape([frames, n, dim]);

            let a = layer_norm_plain(h.clone(), NORM_EPS) * (scale_mlp + 1.0) + shift_mlp;
            let mlp = block.fc2.forward(gelu_tanh(block.fc1.forward(a)));
            h = h + gate_mlp * mlp;
        }

        let fm = self.final_adaln.forward(c_act).reshape([frames, 2, dim])
            + self.final_table.clone().unsqueeze();
        let shift = fm.clone().slice([0..frames, 0..1, 0..dim]);
        let scale = fm.slice([0..frames, 1..2, 0..dim]);
        let h = layer_norm_plain(h, NORM_EPS) * (scale + 1.0) + shift;
        let out = self.final_proj.forward(h);
        (self.unpatchify(out), recorded)
    }
}
