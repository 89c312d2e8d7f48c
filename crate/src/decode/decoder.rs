use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor, activation::relu, module};

use super::{DecoderConfig, OUTPUT_CONV, PENULTIMATE_CONV, STAGES};
use crate::weights::{Scope, Weights};

struct Conv {
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
}

impl Conv {
    fn load(mut scope: Scope, bias: bool) -> Self {
        Self {
            weight: scope.tensor("weight"),
            bias: bias.then(|| scope.tensor("bias")),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, _, kh, _] = self.weight.dims();
        let pad = kh / 2;
        let options = ConvOptions::new([1, 1], [pad, pad], [1, 1], 1);
        module::conv2d(x, self.weight.clone(), self.bias.clone(), options)
    }
}

struct MemBlock {
    convs: [Conv; 3],
}

struct Stage {
    conv: Conv,
    mems: Vec<MemBlock>,
    grow: Conv,
    stride: usize,
}

/// The memory a stream carries between chunks: each memory block's input at the last frame.
#[derive(Debug, Clone, Default)]
pub struct DecoderState {
    past: Vec<Option<Tensor<4>>>,
}

impl DecoderState {
    pub fn new() -> Self {
        Self::default()
    }
}

/// Latent `[T, C, h, w]` → RGB `[4T, 3, 8h, 8w]` in [0, 1], causal in time.
pub struct Decoder {
    stages: Vec<Stage>,
    penultimate: Conv,
    output: Conv,
}

impl Decoder {
    pub fn load(_config: &DecoderConfig, weights: &mut Weights, device: &Device) -> Self {
        let mut d = weights.scope("decoder", device);
        let stages = STAGES
            .iter()
            .enumerate()
            .map(|(i, &(conv, mems, grow, stride))| Stage {
                conv: Conv::load(d.scope(conv), i == 0),
                mems: mems
                    .iter()
                    .map(|m| MemBlock {
                        convs: [0, 2, 4]
                            .map(|k| Conv::load(d.scope(format_args!("{m}.conv.{k}")), true)),
                    })
                    .collect(),
                grow: Conv::load(d.scope(format_args!("{grow}.conv")), false),
                stride,
            })
            .collect();
        Self {
            stages,
            penultimate: Conv::load(d.scope(PENULTIMATE_CONV), false),
            output: Conv::load(d.scope(OUTPUT_CONV), true),
        }
    }

    /// Decodes the next chunk of a stream; `state` carries the one-frame memory across calls.
    pub fn decode_chunk(&self, latent: Tensor<4>, state: &mut DecoderState) -> Tensor<4> {
        let mut x = (latent / 3.0).tanh() * 3.0;
        let mut mem_index = 0;
        for (i, stage) in self.stages.iter().enumerate() {
            x = stage.conv.forward(x);
            if i == 0 {
                x = relu(x);
            }
            for block in &stage.mems {
                if state.past.len() <= mem_index {
                    state.past.push(None);
                }
                x = block.forward(x, &mut state.past[mem_index]);
                mem_index += 1;
            }
            x = upsample2(x);
            x = temporal_grow(stage.grow.forward(x), stage.stride);
        }
        let x = relu(self.penultimate.forward(x));
        self.output.forward(x).clamp(0.0, 1.0)
    }
}

impl MemBlock {
    fn forward(&self, x: Tensor<4>, past: &mut Option<Tensor<4>>) -> Tensor<4> {
        let [t, c, h, w] = x.dims();
        let previous = past
            .take()
            .unwrap_or_else(|| Tensor::zeros([1, c, h, w], &x.device()));
        // Frame k sees frame k−1 of this block's input; frame 0 sees the previous chunk's last.
        let shifted = if t > 1 {
            Tensor::cat(
                vec![previous, x.clone().slice([0..t - 1, 0..c, 0..h, 0..w])],
                0,
            )
        } else {
            previous
        };
        *past = Some(x.clone().slice([t - 1..t, 0..c, 0..h, 0..w]));
        let y = relu(self.convs[0].forward(Tensor::cat(vec![x.clone(), shifted], 1)));
        let y = relu(self.convs[1].forward(y));
        relu(self.convs[2].forward(y) + x)
    }
}

/// Nearest-neighbour ×2 in height and width.
fn upsample2(x: Tensor<4>) -> Tensor<4> {
    let [t, c, h, w] = x.dims();
    x.reshape([t, c, h, 1, w, 1])
        .expand([t, c, h, 2, w, 2])
        .reshape([t, c, h * 2, w * 2])
}

/// `[T, s·n, h, w]` → `[s·T, n, h, w]`: channel block k becomes frame k of each group.
fn temporal_grow(x: Tensor<4>, stride: usize) -> Tensor<4> {
    let [t, sn, h, w] = x.dims();
    x.reshape([t * stride, sn / stride, h, w])
}
