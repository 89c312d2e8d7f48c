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

#[test]
fn the_unread_tail_is_exactly_what_truncation_drops() {
    let json = std::fs::read(common::tiny_dir().join("tokenizer.json")).unwrap();
    let tokenizer = TextTokenizer::from_bytes(&json, 32).unwrap();
    assert_eq!(tokenizer.max_tokens(), 32);
    let short = "a red ball bounces on a beach at night";
    assert_eq!(tokenizer.unread_tail(short).unwrap(), None);
    let long = "a skier in a red outfit jumps off a ramp on a snowy mountain at sunset while \
                snow falls and the camera follows her down the slope past the pine trees, \
                painted in the style of van gogh";
    let tail = tokenizer
        .unread_tail(long)
        .unwrap()
        .expect("a long prompt is cut");
    assert!(long.ends_with(&tail) && !tail.is_empty(), "{tail:?}");
    let read = long[..long.len() - tail.len()].trim_end();
    // What is left once the tail is removed is read whole, and it is all the model reads.
    assert_eq!(tokenizer.unread_tail(read).unwrap(), None);
    assert_eq!(
        tokenizer.encode(read).unwrap(),
        tokenizer.encode(long).unwrap()
    );
    assert_eq!(tokenizer.encode(long).unwrap().len(), 32);
}
