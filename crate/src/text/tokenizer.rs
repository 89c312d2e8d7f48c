use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::KinemaError;

/// MiniLM's WordPiece tokenizer from the folder's `tokenizer.json`, truncating to the model's
/// prompt length.
pub struct TextTokenizer {
    inner: Tokenizer,
    /// The same tokenizer without truncation: it finds where a long prompt was cut.
    whole: Tokenizer,
    max_tokens: usize,
}

impl TextTokenizer {
    pub fn from_bytes(json: &[u8], max_tokens: usize) -> Result<Self, KinemaError> {
        let mut inner =
            Tokenizer::from_bytes(json).map_err(|err| KinemaError::Tokenizer(err.to_string()))?;
        // The checkpoint's file pads to 128; one prompt at a time needs no padding, and padding
        // would change the mean-pooled embedding.
        inner.with_padding(None);
        let mut whole = inner.clone();
        whole
            .with_truncation(None)
            .map_err(|err| KinemaError::Tokenizer(err.to_string()))?;
        inner
            .with_truncation(Some(TruncationParams {
                max_length: max_tokens,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|err| KinemaError::Tokenizer(err.to_string()))?;
        Ok(Self {
            inner,
            whole,
            max_tokens,
        })
    }

    /// How many tokens of a prompt the model reads, `[CLS]` and `[SEP]` included.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// `[CLS] … [SEP]` token ids, at most `max_text_tokens` long (the special tokens included).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, KinemaError> {
        let encoding = self
            .inner
            .encode(text, true)
            .map_err(|err| KinemaError::Tokenizer(err.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// The end of `text` that `encode` leaves out (from the first token past the limit, which
    /// may be the rest of a word), or `None` when the whole prompt is read. Truncation is
    /// silent otherwise, and the words it drops are the ones a user added last.
    pub fn unread_tail(&self, text: &str) -> Result<Option<String>, KinemaError> {
        let encoding = self
            .whole
            .encode(text, true)
            .map_err(|err| KinemaError::Tokenizer(err.to_string()))?;
        if encoding.len() <= self.max_tokens {
            return Ok(None);
        }
        // Read: [CLS], tokens 1 ..= max − 2, then [SEP]; so token max − 1 is the first one lost.
        let (start, _) = encoding.get_offsets()[self.max_tokens - 1];
        Ok(Some(text.get(start..).unwrap_or(text).trim().to_string()))
    }
}
