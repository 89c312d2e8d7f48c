use std::collections::VecDeque;

use burn::tensor::Tensor;

/// Keys and values of one DiT pass, per block: `[1, heads, T, head_dim]` each.
pub type BlockKv = Vec<(Tensor<4>, Tensor<4>)>;

/// The self-attention KV cache: the last `window_chunks − 1` finished chunks, per block.
///
/// Everything in the cache is visible to the current chunk (the window bounds the cache), so
/// attention needs no mask at inference. The concatenation over chunks is kept ready because
/// every denoising step of a chunk reads the same cache.
#[derive(Debug, Clone)]
pub struct KvCache {
    capacity: usize,
    chunks: VecDeque<BlockKv>,
    joined: Option<BlockKv>,
}

impl KvCache {
    /// A cache for a model whose attention window is `window_chunks` chunks.
    pub fn new(window_chunks: usize) -> Self {
        Self {
            capacity: window_chunks.saturating_sub(1),
            chunks: VecDeque::new(),
            joined: None,
        }
    }

    /// Whether finished chunks need to be written at all (a window of one chunk sees none).
    pub fn is_used(&self) -> bool {
        self.capacity > 0
    }

    pub fn len_chunks(&self) -> usize {
        self.chunks.len()
    }

    /// Adds a finished chunk's keys and values, dropping the oldest beyond the window.
    pub fn push(&mut self, chunk: BlockKv) {
        if self.capacity == 0 {
            return;
        }
        self.chunks.push_back(chunk);
        while self.chunks.len() > self.capacity {
            self.chunks.pop_front();
        }
        let blocks = self.chunks[0].len();
        self.joined = Some(
            (0..blocks)
                .map(|b| {
                    let ks = self.chunks.iter().map(|c| c[b].0.clone()).collect();
                    let vs = self.chunks.iter().map(|c| c[b].1.clone()).collect();
                    (Tensor::cat(ks, 2), Tensor::cat(vs, 2))
                })
                .collect(),
        );
    }

    /// Block `b`'s cached keys and values (all cached chunks, oldest first), if any.
    pub fn block(&self, b: usize) -> Option<&(Tensor<4>, Tensor<4>)> {
        self.joined.as_ref().map(|j| &j[b])
    }
}
