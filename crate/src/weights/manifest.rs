use serde::Deserialize;

use super::WeightsError;
use crate::decode::DecoderConfig;
use crate::denoise::DitConfig;
use crate::text::TextConfig;

/// The only manifest format this loader understands.
pub const MANIFEST_FORMAT: &str = "kinema-model/1";

/// `manifest.json`: what a model folder holds and how its networks are shaped.
#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub id: String,
    pub version: String,
    #[serde(default)]
    pub license: String,
    /// False for a folder whose DiT and decoder are still random (it runs, but shows noise).
    #[serde(default)]
    pub trained: bool,
    pub architecture: Architecture,
    pub files: Vec<FileEntry>,
    /// How the weights were made (absent in untrained folders).
    #[serde(default)]
    pub training: Training,
    /// What the model's publisher wants its users told about its clips, in a sentence or two
    /// (an early checkpoint, say); shown by the CLI and the page beside the model's name.
    #[serde(default)]
    pub notice: Option<String>,
}

/// The `training` object the exporter writes; only what a runtime acts on is read.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Training {
    /// Euler steps per chunk the DiT was trained to sample with: the default where the user
    /// names none.
    #[serde(default)]
    pub sampler_steps: Option<usize>,
    /// The training stage the DiT's weights come from (absent: `shortcut`).
    #[serde(default)]
    pub dit_from: Option<DitStage>,
    /// Classifier-free guidance the sampler applies at every step, `v_u + g (v_c − v_u)` against
    /// the empty caption that caption dropout trained, at twice the cost of a step. Absent (or 1):
    /// none, as for a shortcut DiT, whose guidance is baked into its weights.
    #[serde(default)]
    pub sampler_guidance: Option<f32>,
}

/// The most guidance a manifest may ask for: beyond a few units CFG only oversaturates.
pub const MAX_GUIDANCE: f32 = 20.0;

/// Which objective trained the DiT, and so what its step-size input means.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DitStage {
    /// Rectified flow: trained only at step-size input 0, the instantaneous velocity.
    Flow,
    /// The few-step objective: reads the size of the step it is asked to take.
    Shortcut,
}

impl Training {
    /// The DiT's step-size input for Euler steps of size `dt`. A flow DiT never saw any but 0,
    /// and fed `dt` its estimates were 6–24 % worse (models/train/README.md, session 30).
    pub fn step_size_input(&self, dt: f32) -> f32 {
        match self.dit_from {
            Some(DitStage::Flow) => 0.0,
            Some(DitStage::Shortcut) | None => dt,
        }
    }

    /// The guidance scale when the sampler must run the extra unconditional pass.
    pub fn guidance(&self) -> Option<f32> {
        self.sampler_guidance.filter(|&g| g != 1.0)
    }
}

/// The `architecture` object: every size the networks are built from.
#[derive(Debug, Clone, Deserialize)]
pub struct Architecture {
    pub video: VideoConfig,
    pub text: TextConfig,
    pub dit: DitConfig,
    pub decoder: DecoderConfig,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct VideoConfig {
    pub width: usize,
    pub height: usize,
    pub fps: usize,
}

/// One file of the folder, as listed in the manifest.
#[derive(Debug, Clone, Deserialize)]
pub struct FileEntry {
    pub path: String,
    pub role: Role,
    pub size: u64,
    pub sha256: String,
}

/// What a file is for; the page fetches them in this order.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Tokenizer,
    Text,
    Dit,
    Decoder,
}

impl Role {
    /// The tensor-name prefix every tensor of a weight file with this role carries.
    pub fn tensor_prefix(self) -> Option<&'static str> {
        match self {
            Role::Tokenizer => None,
            Role::Text => Some("text."),
            Role::Dit => Some("dit."),
            Role::Decoder => Some("decoder."),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Role::Tokenizer => "tokenizer",
            Role::Text => "text",
            Role::Dit => "dit",
            Role::Decoder => "decoder",
        }
    }
}

impl Manifest {
    /// Parses and checks the manifest's internal consistency (not the files themselves).
    pub fn parse(json: &[u8]) -> Result<Self, WeightsError> {
        let manifest: Manifest =
            serde_json::from_slice(json).map_err(|err| WeightsError::Manifest(err.to_string()))?;
        manifest.validate()?;
        Ok(manifest)
    }

    fn validate(&self) -> Result<(), WeightsError> {
        let bad = |msg: String| Err(WeightsError::Manifest(msg));
        if self.format != MANIFEST_FORMAT {
            return bad(format!(
                "format is `{}`, this build reads `{MANIFEST_FORMAT}`",
                self.format
            ));
        }
        if let Some(steps) = self.training.sampler_steps
            && !(1..=crate::pipeline::MAX_STEPS).contains(&steps)
        {
            return bad(format!(
                "training.sampler_steps is {steps}; a sampler takes 1 to {}",
                crate::pipeline::MAX_STEPS
            ));
        }
        if let Some(g) = self.training.sampler_guidance
            && !(0.0..=MAX_GUIDANCE).contains(&g)
        {
            return bad(format!(
                "training.sampler_guidance is {g}; guidance runs from 0 to {MAX_GUIDANCE}"
            ));
        }
        let arch = &self.architecture;
        let (dit, video) = (&arch.dit, &arch.video);
        if video.width != dit.latent_width * 8 || video.height != dit.latent_height * 8 {
            return bad(format!(
                "video {}×{} is not 8× the latent {}×{}",
                video.width, video.height, dit.latent_width, dit.latent_height
            ));
        }
        if arch.decoder.latent_channels != dit.latent_channels {
            return bad("decoder and DiT disagree on latent_channels".into());
        }
        if let Err(msg) = arch.text.check() {
            return bad(format!("architecture.text: {msg}"));
        }
        if let Err(msg) = dit.check() {
            return bad(format!("architecture.dit: {msg}"));
        }
        if let Err(msg) = arch.decoder.check() {
            return bad(format!("architecture.decoder: {msg}"));
        }
        for role in [Role::Tokenizer, Role::Text, Role::Dit, Role::Decoder] {
            if !self.files.iter().any(|f| f.role == role) {
                return bad(format!("no file with role `{}`", role.name()));
            }
        }
        if self
            .files
            .iter()
            .filter(|f| f.role == Role::Tokenizer)
            .count()
            != 1
        {
            return bad("exactly one tokenizer file is expected".into());
        }
        for file in &self.files {
            let hex_ok =
                file.sha256.len() == 64 && file.sha256.bytes().all(|b| b.is_ascii_hexdigit());
            if !hex_ok {
                return bad(format!("file `{}` has no valid sha256", file.path));
            }
            if file.path.contains("..") || file.path.starts_with('/') {
                return bad(format!("file path `{}` leaves the model folder", file.path));
            }
        }
        Ok(())
    }

    /// The files in the order the page should fetch them (tokenizer, text, dit, decoder).
    pub fn files_in_fetch_order(&self) -> Vec<&FileEntry> {
        let mut files: Vec<&FileEntry> = self.files.iter().collect();
        files.sort_by_key(|f| f.role);
        files
    }

    pub fn tokenizer_file(&self) -> &FileEntry {
        self.files
            .iter()
            .find(|f| f.role == Role::Tokenizer)
            .expect("validated: one tokenizer file")
    }

    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}
