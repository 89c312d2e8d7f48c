//! The real all-MiniLM-L6-v2 as shipped in `models/kinema-tiny` (f16 weights, computed in f32)
//! against sentence-transformers' outputs for the same stored weights
//! (`models/fixtures/minilm.safetensors`). Tolerance 1e-4 absolute on tokens and pooled: both
//! sides compute in f32 from identical weights, so only summation order differs.

#[path = "common/mod.rs"]
mod common;

use common::{Cases, assert_close, device, read, repo_root};
use kinema::text::{TextEncoder, TextTokenizer};
use kinema::weights::{Manifest, Role, WeightLoader};

const TOL: f32 = 1e-4;

#[test]
fn real_minilm_matches_sentence_transformers() {
    let dir = repo_root().join("models/kinema-tiny");
    let manifest = Manifest::parse(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let mut loader = WeightLoader::for_roles(manifest.clone(), &[Role::Tokenizer, Role::Text]);
    for file in loader
        .pending_files()
        .into_iter()
        .cloned()
        .collect::<Vec<_>>()
    {
        loader
            .add_file(&file.path, &std::fs::read(dir.join(&file.path)).unwrap())
            .unwrap();
    }
    let mut weights = loader.finish().unwrap();
    let config = &manifest.architecture.text;
    let tokenizer = TextTokenizer::from_bytes(&weights.tokenizer, config.max_text_tokens).unwrap();
    let encoder = TextEncoder::load(config, &mut weights, &device());

    let cases = Cases::read(repo_root().join("models/fixtures/minilm.safetensors"));
    for (k, sentence) in cases.json_list("sentences").iter().enumerate() {
        let ids = tokenizer.encode(sentence).unwrap();
        assert_eq!(
            ids,
            cases.ids(&format!("ids.{k}")),
            "token ids of {sentence:?}"
        );
        let emb = encoder.forward(&ids);
        assert_close(
            &format!("tokens.{k}"),
            &read(emb.tokens).1,
            &cases.values(&format!("tokens.{k}")),
            TOL,
        );
        assert_close(
            &format!("pooled.{k}"),
            &read(emb.pooled).1,
            &cases.values(&format!("pooled.{k}")),
            TOL,
        );
    }
}
