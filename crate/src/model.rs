//! The whole model: tokenizer, text encoder, DiT and decoder, built from a model folder.

use burn::tensor::Device;

use crate::KinemaError;
use crate::decode::Decoder;
use crate::denoise::Dit;
use crate::text::{TextEmbedding, TextEncoder, TextTokenizer};
use crate::weights::{Manifest, Weights};

/// A loaded model, ready to generate on its device.
pub struct KinemaModel {
    pub manifest: Manifest,
    pub tokenizer: TextTokenizer,
    pub text: TextEncoder,
    pub dit: Dit,
    pub decoder: Decoder,
    pub device: Device,
}

impl KinemaModel {
    /// Builds the networks from validated weights, uploading each tensor to `device`.
    pub fn load(mut weights: Weights, device: &Device) -> Result<Self, KinemaError> {
        let manifest = weights.manifest.clone();
        let arch = &manifest.architecture;
        let tokenizer = TextTokenizer::from_bytes(&weights.tokenizer, arch.text.max_text_tokens)?;
        let text = TextEncoder::load(&arch.text, &mut weights, device);
        let dit = Dit::load(&arch.dit, &mut weights, device);
        let decoder = Decoder::load(&arch.decoder, &mut weights, device);
        debug_assert_eq!(weights.remaining(), 0, "every validated tensor is used");
        Ok(Self {
            manifest,
            tokenizer,
            text,
            dit,
            decoder,
            device: device.clone(),
        })
    }

    /// Tokenises and encodes a prompt.
    pub fn encode_prompt(&self, prompt: &str) -> Result<TextEmbedding, KinemaError> {
        let ids = self.tokenizer.encode(prompt)?;
        Ok(self.text.forward(&ids))
    }

    /// Video frames one chunk decodes to.
    pub fn frames_per_chunk(&self) -> usize {
        self.manifest.architecture.dit.chunk_frames
            * self.manifest.architecture.decoder.temporal_upscale()
    }
}

/// Reads a model folder from disk and loads it (native only: the page fetches instead).
#[cfg(not(target_arch = "wasm32"))]
pub fn load_folder(dir: &std::path::Path, device: &Device) -> Result<KinemaModel, KinemaError> {
    use crate::weights::{WeightLoader, WeightsError};
    let read = |name: &str| {
        std::fs::read(dir.join(name)).map_err(|err| {
            KinemaError::Weights(WeightsError::Manifest(format!(
                "cannot read {}: {err}",
                dir.join(name).display()
            )))
        })
    };
    if !dir.is_dir() {
        return Err(KinemaError::InvalidRequest(format!(
            "model folder {} does not exist",
            dir.display()
        )));
    }
    let manifest = Manifest::parse(&read("manifest.json")?)?;
    let mut loader = WeightLoader::new(manifest.clone());
    for file in manifest.files_in_fetch_order() {
        let bytes = std::fs::read(dir.join(&file.path)).map_err(|_| WeightsError::MissingFile {
            path: file.path.clone(),
        })?;
        loader.add_file(&file.path, &bytes)?;
    }
    KinemaModel::load(loader.finish()?, device)
}
