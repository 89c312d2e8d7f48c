//! Parity with the PyTorch mirror: `models/fixtures/tiny` (random f32 weights, tiny config) and
//! the cases `models/train/export.py` computed with it.
//!
//! Tolerances are absolute, on values of order 1: 1e-5 for the text encoder, 1e-4 for one DiT
//! pass and the decoder, 1e-3 for a whole generation (two chunks, Euler steps and the decoder
//! compound the f32 rounding differences between the two implementations).

#[path = "common/mod.rs"]
mod common;

use common::{Cases, assert_close, device, read, tiny_dir};
use kinema::decode::DecoderState;
use kinema::denoise::{KvCache, Pass};
use kinema::model::load_folder;
use kinema::pipeline::{CancelFlag, GenerateRequest, GenerationEvent, NoiseSource};
use kinema::weights::DitStage;

const TEXT_TOL: f32 = 1e-5;
const DIT_TOL: f32 = 1e-4;
const DECODE_TOL: f32 = 1e-4;
const GENERATE_TOL: f32 = 1e-3;

fn setup() -> (kinema::KinemaModel, Cases) {
    let model = load_folder(&tiny_dir(), &device()).expect("tiny fixture loads");
    let cases = Cases::read(tiny_dir().join("cases.safetensors"));
    (model, cases)
}

#[test]
fn text_matches_pytorch() {
    let (model, cases) = setup();
    for (k, prompt) in cases.json_list("prompts").iter().enumerate() {
        let ids = model.tokenizer.encode(prompt).unwrap();
        assert_eq!(
            ids,
            cases.ids(&format!("text.ids.{k}")),
            "token ids of {prompt:?}"
        );
        let emb = model.text.forward(&ids);
        let (shape, tokens) = read(emb.tokens);
        assert_eq!(shape, cases.get(&format!("text.tokens.{k}")).0);
        assert_close(
            &format!("text.tokens.{k}"),
            &tokens,
            &cases.values(&format!("text.tokens.{k}")),
            TEXT_TOL,
        );
        let (_, pooled) = read(emb.pooled);
        assert_close(
            &format!("text.pooled.{k}"),
            &pooled,
            &cases.values(&format!("text.pooled.{k}")),
            TEXT_TOL,
        );
    }
}

#[test]
fn dit_chunk0_and_chunk1_with_cache_match_pytorch() {
    let (model, cases) = setup();
    let dev = device();
    let prompt = &cases.json_list("prompts")[0];
    let text = model
        .dit
        .prepare_text(&model.encode_prompt(prompt).unwrap());
    let frames = model.dit.config().chunk_frames;
    let mut cache = KvCache::new(model.dit.config().window_chunks);

    let v = model.dit.velocity(
        cases.tensor("dit.x", &dev),
        &cases.values("dit.t"),
        &cases.values("dit.d"),
        &text,
        0,
        &cache,
    );
    assert_close(
        "dit.v (chunk 0)",
        &read(v).1,
        &cases.values("dit.v"),
        DIT_TOL,
    );

    let entry = model
        .dit
        .cache_entry(cases.tensor("dit.clean0", &dev), &text, 0, &cache);
    cache.push(entry);
    assert_eq!(cache.len_chunks(), 1);

    let v1 = model.dit.velocity(
        cases.tensor("dit.x1", &dev),
        &cases.values("dit.t1"),
        &cases.values("dit.d1"),
        &text,
        frames,
        &cache,
    );
    assert_close(
        "dit.v1 (chunk 1, cached)",
        &read(v1).1,
        &cases.values("dit.v1"),
        DIT_TOL,
    );
}

/// Guidance runs the prompt's and the empty caption's passes through the DiT together. Held
/// here to the one-pass path that the PyTorch cases above hold: two prompts of different
/// lengths, each with its own cache, must give what they give one at a time.
#[test]
fn passes_run_together_equal_passes_run_alone() {
    let (model, cases) = setup();
    let dev = device();
    let dit = &model.dit;
    let texts = [cases.json_list("prompts")[0].as_str(), ""]
        .map(|p| dit.prepare_text(&model.encode_prompt(p).unwrap()));
    let window = dit.config().window_chunks;
    let (mut alone, mut together) = (
        [0, 1].map(|_| KvCache::new(window)),
        [0, 1].map(|_| KvCache::new(window)),
    );
    let clean = cases.tensor::<4>("dit.clean0", &dev);
    let entries = dit.cache_entries(
        clean.clone(),
        &[0, 1].map(|p| Pass {
            text: &texts[p],
            cache: &together[p],
        }),
        0,
    );
    for (p, entry) in entries.into_iter().enumerate() {
        let single = dit.cache_entry(clean.clone(), &texts[p], 0, &alone[p]);
        for (b, ((k, v), (k1, v1))) in entry.iter().zip(&single).enumerate() {
            assert_close(
                &format!("pass {p} block {b} keys"),
                &read(k.clone()).1,
                &read(k1.clone()).1,
                1e-6,
            );
            assert_close(
                &format!("pass {p} block {b} values"),
                &read(v.clone()).1,
                &read(v1.clone()).1,
                1e-6,
            );
        }
        together[p].push(entry);
        alone[p].push(single);
    }
    let frames = dit.config().chunk_frames;
    let (x, t, d) = (
        cases.tensor::<4>("dit.x1", &dev),
        cases.values("dit.t1"),
        cases.values("dit.d1"),
    );
    let both = dit.velocities(
        x.clone(),
        &t,
        &d,
        &[0, 1].map(|p| Pass {
            text: &texts[p],
            cache: &together[p],
        }),
        frames,
    );
    assert_eq!(both.len(), 2);
    let mut single = Vec::new();
    for (p, v) in both.into_iter().enumerate() {
        single.push(read(dit.velocity(x.clone(), &t, &d, &texts[p], frames, &alone[p])).1);
        assert_close(&format!("pass {p} velocity"), &read(v).1, &single[p], 1e-5);
    }
    // The two prompts really steer the DiT apart, so a mix-up of passes would show above.
    let apart = single[0]
        .iter()
        .zip(&single[1])
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(
        apart > 1e-2,
        "the prompt and the empty caption differ by only {apart}"
    );
}

#[test]
fn decoder_stream_matches_pytorch() {
    let (model, cases) = setup();
    let dev = device();
    let latent: burn::tensor::Tensor<4> = cases.tensor("decode.latent", &dev);
    let [t, c, h, w] = latent.dims();
    assert!(t >= 2, "the fixture streams at least two pieces");
    // Two uneven pieces: the one-frame memory must carry across the boundary.
    let mut state = DecoderState::new();
    let first = model.decoder.decode_chunk(
        latent.clone().slice([0..t - 1, 0..c, 0..h, 0..w]),
        &mut state,
    );
    let second = model
        .decoder
        .decode_chunk(latent.slice([t - 1..t, 0..c, 0..h, 0..w]), &mut state);
    let mut frames = read(first).1;
    frames.extend(read(second).1);
    assert_close(
        "decode.frames",
        &frames,
        &cases.values("decode.frames"),
        DECODE_TOL,
    );
}

/// Runs the fixture's whole generation (its prompt, steps, chunks and noise) and returns the
/// frames, checking the events and timings on the way.
fn generate_fixture(model: &kinema::KinemaModel, cases: &Cases) -> Vec<f32> {
    let chunks: usize = cases.metadata["chunks"].parse().unwrap();
    let steps: usize = cases.metadata["steps"].parse().unwrap();
    let noise = (0..chunks)
        .map(|c| cases.values(&format!("generate.noise.{c}")))
        .collect();
    let request = GenerateRequest {
        prompt: cases.json_list("prompts")[0].clone(),
        chunks,
        steps,
        noise: NoiseSource::Fixed(noise),
    };
    let mut frames = Vec::new();
    let mut seen = Vec::new();
    let report = pollster::block_on(model.generate(&request, &CancelFlag::new(), &mut |event| {
        if let GenerationEvent::Chunk(chunk) = event {
            seen.push(chunk.index);
            frames.extend(chunk.rgb);
        }
    }))
    .unwrap();
    assert_eq!(seen, (0..chunks).collect::<Vec<_>>());
    assert_eq!(report.chunks.len(), chunks);
    assert_eq!(report.chunks[0].denoise_steps_ms.len(), steps);
    assert!(report.chunks[0].cache_fill_ms.is_some());
    assert!(report.chunks[chunks - 1].cache_fill_ms.is_none());
    frames
}

#[test]
fn whole_generation_matches_pytorch() {
    let (model, cases) = setup();
    assert_eq!(model.manifest.training.dit_from, None);
    assert_eq!(model.manifest.training.guidance(), None);
    let frames = generate_fixture(&model, &cases);
    assert_close(
        "generate.frames",
        &frames,
        &cases.values("generate.frames"),
        GENERATE_TOL,
    );
}

/// A flow DiT with classifier-free guidance, as its manifest would say: step-size input 0 and a
/// second pass against the empty caption, which PyTorch padded under a mask and Rust encodes alone.
#[test]
fn guided_flow_generation_matches_pytorch() {
    let (mut model, cases) = setup();
    let scale: f32 = cases.metadata["guided_scale"].parse().unwrap();
    model.manifest.training.dit_from = Some(DitStage::Flow);
    model.manifest.training.sampler_guidance = Some(scale);
    let frames = generate_fixture(&model, &cases);
    let expected = cases.values("generate_guided.frames");
    assert_close("generate_guided.frames", &frames, &expected, GENERATE_TOL);
    // The guided clip is another clip: a sampler that ignored the manifest would fail above.
    let unguided = cases.values("generate.frames");
    let apart = expected
        .iter()
        .zip(&unguided)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        apart > 100.0 * GENERATE_TOL,
        "guided and unguided differ by {apart}"
    );
}
