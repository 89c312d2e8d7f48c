use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::KinemaError;

/// MiniLM's WordPiece tokenizer from the folder's `tokenizer.json`, truncating to the model's
/// prompt length.
pub struct TextTokenizer {
    inner: Tokenizer,
}

impl TextTokenizer {
    pub fn from_bytes(json: &[u8], max_tokens: usize) -> Result<Self, KinemaError> {
        let mut inner =
            Tokenizer::from_bytes(json).map_err(|err| KinemaError::Tokenizer(err.to_string()))?;
        // The checkpoint's file pads to 128; one prompt at a time needs no padding, and padding
        // would change the mean-pooled embedding.
        inner.with_padding(None);
        inner
            .with_truncation(Some(TruncationParams {
                max_length: max_tokens,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|err| KinemaError::Tokenizer(err.to_string()))?;
        Ok(Self { inner })
    }

    /// `[CLS] … [SEP]` token ids, at most `max_text_tokens` long (the special tokens included).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, KinemaError> {
        let encoding = self
            .inner
            .encode(text, true)
            .map_err(|err| KinemaError::Tokenizer(err.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }
}
