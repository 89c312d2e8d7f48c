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
                let mut b = weights.scope(&format!("dit.blocks.{i}"), device);
                Block {
                    scale_shift_table: b.tensor("scale_shift_table"),
                    qkv: b.linear("attn.qkv"),
                    q_norm: b.tensor("attn.q_norm.weight"),
                    k_norm: b.tensor("attn.k_norm.weight"),
                    proj: b.linear("attn.proj"),
                    cross_norm_weight: b.tensor("cross_norm.weight"),
                    cross_norm_bias: b.tensor("cross_norm.bias"),
                    cross_q: b.linear("cross.q"),
                    cross_kv: b.linear("cross.kv"),
                    cross_proj: b.linear("cross.proj"),
                    fc1: b.linear("mlp.fc1"),
                    fc2: b.linear("mlp.fc2"),
                }
            })
            .collect();
        let mut w = weights.scope("dit", device);
        Self {
            config: config.clone(),
            patch_embed: w.linear("patch_embed"),
            t_embed: (w.linear("t_embed.0"), w.linear("t_embed.2")),
            d_embed: (w.linear("d_embed.0"), w.linear("d_embed.2")),
            pooled_proj: w.linear("pooled_proj"),
            adaln: w.linear("adaln.1"),
            text_proj: w.linear("text_proj"),
            blocks,
            final_table: w.tensor("final_scale_shift_table"),
            final_adaln: w.linear("final_adaln"),
            final_proj: w.linear("final_proj"),
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
        let mut out = self.velocities(x, t, d, &[Pass { text, cache }], f0);
        out.pop().expect("one pass, one velocity")
    }

    /// [`Dit::velocity`] of the same chunk under several prompts (with their own caches), in one
    /// pass over the weights: classifier-free guidance's conditional and unconditional halves.
    pub fn velocities(
        &self,
        x: Tensor<4>,
        t: &[f32],
        d: &[f32],
        passes: &[Pass<'_>],
        f0: usize,
    ) -> Vec<Tensor<4>> {
        self.run(x, t, d, passes, f0, false).0
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
        let mut out = self.cache_entries(clean, &[Pass { text, cache }], f0);
        out.pop().expect("one pass, one entry")
    }

    /// [`Dit::cache_entry`] under several prompts, one entry per pass, in one pass over the
    /// weights.
    pub fn cache_entries(&self, clean: Tensor<4>, passes: &[Pass<'_>], f0: usize) -> Vec<BlockKv> {
        let zeros = vec![0.0; clean.dims()[0]];
        let (_, recorded) = self.run(clean, &zeros, &zeros, passes, f0, true);
        recorded.expect("recording was asked for")
    }

    // One pass computes both the velocity and, when recording, the cache entry; the public
    // entry points above keep callers from mixing them up. Several passes share every
    // token-wise layer (one matmul over all their tokens: on a GPU a guided step is then not
    // twice the dispatches); only attention, which reads each pass's own cache and prompt, runs
    // per pass.
    fn run(
        &self,
        x: Tensor<4>,
        t: &[f32],
        d: &[f32],
        passes: &[Pass<'_>],
        f0: usize,
        record: bool,
    ) -> (Vec<Tensor<4>>, Option<Vec<BlockKv>>) {
        let cfg = &self.config;
        let device = x.device();
        let [frames, _, _, _] = x.dims();
        let n = cfg.tokens_per_frame();
        let dim = cfg.dim;
        let tokens = frames * n;
        let count = passes.len();
        let rows = count * frames;

        let t_emb = self.t_embed.1.forward(activation::silu(
            self.t_embed.0.forward(self.sincos(t, &device)),
        ));
        let d_emb = self.d_embed.1.forward(activation::silu(
            self.d_embed.0.forward(self.sincos(d, &device)),
        ));
        let td = t_emb + d_emb;
        let c = stack(
            passes
                .iter()
                .map(|p| td.clone() + p.text.pooled.clone())
                .collect(),
        );
        let c_act = activation::silu(c);
        let modulation = self.adaln.forward(c_act.clone()).reshape([rows, 6, dim]);
        let (cos, sin) = rope::tables(cfg, f0, frames, &device);

        let embedded = self.patch_embed.forward(self.patchify(x));
        let mut h = stack(vec![embedded; count]).reshape([rows, n, dim]);
        let mut recorded = record.then(|| vec![BlockKv::new(); count]);
        let heads = cfg.heads;
        let hd = cfg.head_dim();
        for (i, block) in self.blocks.iter().enumerate() {
            let m = modulation.clone() + block.scale_shift_table.clone().unsqueeze();
            let part = |k: usize| m.clone().slice([0..rows, k..k + 1, 0..dim]);
            let (shift_msa, scale_msa, gate_msa) = (part(0), part(1), part(2));
            let (shift_mlp, scale_mlp, gate_mlp) = (part(3), part(4), part(5));

            let a = layer_norm_plain(h.clone(), NORM_EPS) * (scale_msa + 1.0) + shift_msa;
            let qkv = block.qkv.forward(a.reshape([rows * n, dim]));
            let mut attended = Vec::with_capacity(count);
            for (p, pass) in passes.iter().enumerate() {
                let qkv = pass_rows(qkv.clone(), p, tokens, count)
                    .reshape([tokens, 3, heads, hd])
                    .permute([1, 2, 0, 3]);
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
                    rec[p].push((k.clone(), v.clone()));
                }
                let (k, v) = match pass.cache.block(i) {
                    Some((ck, cv)) => (
                        Tensor::cat(vec![ck.clone(), k], 2),
                        Tensor::cat(vec![cv.clone(), v], 2),
                    ),
                    None => (k, v),
                };
                attended.push(nn::merge_heads(nn::attention(q, k, v)));
            }
            let attn = block.proj.forward(stack(attended));
            h = h + gate_msa * attn.reshape([rows, n, dim]);

            let normed = layer_norm(
                h.clone().reshape([rows * n, dim]),
                &block.cross_norm_weight,
                &block.cross_norm_bias,
                NORM_EPS,
            );
            let q = block.cross_q.forward(normed);
            let crossed = passes
                .iter()
                .enumerate()
                .map(|(p, pass)| {
                    let q = nn::split_heads(pass_rows(q.clone(), p, tokens, count), heads);
                    let (ck, cv) = &pass.text.cross_kv[i];
                    nn::merge_heads(nn::attention(q, ck.clone(), cv.clone()))
                })
                .collect();
            h = h + block
                .cross_proj
                .forward(stack(crossed))
                .reshape([rows, n, dim]);

            let a = layer_norm_plain(h.clone(), NORM_EPS) * (scale_mlp + 1.0) + shift_mlp;
            let mlp = block.fc2.forward(gelu_tanh(block.fc1.forward(a)));
            h = h + gate_mlp * mlp;
        }

        let fm = self.final_adaln.forward(c_act).reshape([rows, 2, dim])
            + self.final_table.clone().unsqueeze();
        let shift = fm.clone().slice([0..rows, 0..1, 0..dim]);
        let scale = fm.slice([0..rows, 1..2, 0..dim]);
        let h = layer_norm_plain(h, NORM_EPS) * (scale + 1.0) + shift;
        let out = self.unpatchify(self.final_proj.forward(h));
        let velocities = if count == 1 {
            vec![out]
        } else {
            out.chunk(count, 0)
        };
        (velocities, recorded)
    }
}

/// One prompt's view of a chunk: the prompt and the self-attention cache built under it.
#[derive(Clone, Copy)]
pub struct Pass<'a> {
    pub text: &'a DitText,
    pub cache: &'a KvCache,
}

/// Rows of all passes, one after another (no copy for a single pass).
fn stack<const D: usize>(parts: Vec<Tensor<D>>) -> Tensor<D> {
    if parts.len() == 1 {
        parts.into_iter().next().expect("one part")
    } else {
        Tensor::cat(parts, 0)
    }
}

/// Pass `p`'s `len` rows of a 2-D tensor that holds all `count` passes' rows.
fn pass_rows(x: Tensor<2>, p: usize, len: usize, count: usize) -> Tensor<2> {
    if count == 1 {
        return x;
    }
    let cols = x.dims()[1];
    x.slice([p * len..(p + 1) * len, 0..cols])
}
