//! Generation as a caller sees it: seeds, validation, cancelling.

#[path = "common/mod.rs"]
mod common;

use common::{device, tiny_dir};
use kinema::KinemaError;
use kinema::model::load_folder;
use kinema::pipeline::{CancelFlag, GenerateRequest, GenerationEvent, NoiseSource};

fn frames(model: &kinema::KinemaModel, seed: u64) -> Vec<f32> {
    let request = GenerateRequest {
        prompt: "a skier jumps off a ramp".into(),
        chunks: 3,
        steps: 2,
        noise: NoiseSource::Seed(seed),
    };
    let mut out = Vec::new();
    pollster::block_on(model.generate(&request, &CancelFlag::new(), &mut |e| {
        if let GenerationEvent::Chunk(c) = e {
            out.extend(c.rgb);
        }
    }))
    .unwrap();
    out
}

#[test]
fn same_seed_gives_identical_frames() {
    let model = load_folder(&tiny_dir(), &device()).unwrap();
    let a = frames(&model, 42);
    assert_eq!(a.len(), 3 * model.frames_per_chunk() * 3 * 32 * 48);
    assert_eq!(a, frames(&model, 42), "bit-identical for one seed");
    assert_ne!(a, frames(&model, 43));
}

#[test]
fn bad_requests_are_refused() {
    let model = load_folder(&tiny_dir(), &device()).unwrap();
    let max = model.max_chunks();
    let mut request = GenerateRequest {
        prompt: "   ".into(),
        chunks: 1,
        steps: 2,
        noise: NoiseSource::Seed(0),
    };
    let run = |r: &GenerateRequest| {
        pollster::block_on(model.generate(r, &CancelFlag::new(), &mut |_| {})).map(|_| ())
    };
    assert!(matches!(run(&request), Err(KinemaError::InvalidRequest(m)) if m.contains("empty")));
    request.prompt = "a cat".into();
    request.chunks = 0;
    assert!(matches!(run(&request), Err(KinemaError::InvalidRequest(_))));
    request.chunks = max + 1;
    assert!(matches!(run(&request), Err(KinemaError::InvalidRequest(_))));
    request.chunks = 1;
    request.steps = 0;
    assert!(matches!(run(&request), Err(KinemaError::InvalidRequest(_))));
}

#[test]
fn cancelling_stops_between_steps() {
    let model = load_folder(&tiny_dir(), &device()).unwrap();
    let request = GenerateRequest {
        prompt: "a cat".into(),
        chunks: 3,
        steps: 2,
        noise: NoiseSource::Seed(1),
    };
    let cancel = CancelFlag::new();
    let mut chunks = 0;
    let result = pollster::block_on(model.generate(&request, &cancel, &mut |e| {
        if let GenerationEvent::Chunk(_) = e {
            chunks += 1;
            cancel.cancel();
        }
    }));
    assert!(matches!(result, Err(KinemaError::Cancelled)));
    assert_eq!(chunks, 1, "no chunk after the cancel");
}
