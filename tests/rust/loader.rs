//! The model-folder loader rejects broken folders with messages that name the culprit.

#[path = "common/mod.rs"]
mod common;

use std::collections::{BTreeMap, HashMap};

use common::tiny_dir;
use kinema::weights::{DitStage, Manifest, WeightLoader, WeightsError};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use sha2::{Digest, Sha256};

/// The tiny fixture folder in memory: manifest JSON and every file's bytes.
fn folder() -> (serde_json::Value, HashMap<String, Vec<u8>>) {
    let dir = tiny_dir();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let files = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let path = f["path"].as_str().unwrap().to_string();
            let bytes = std::fs::read(dir.join(&path)).unwrap();
            (path, bytes)
        })
        .collect();
    (manifest, files)
}

fn load(
    manifest: &serde_json::Value,
    files: &HashMap<String, Vec<u8>>,
) -> Result<(), WeightsError> {
    let manifest = Manifest::parse(manifest.to_string().as_bytes())?;
    let mut loader = WeightLoader::new(manifest.clone());
    for file in manifest.files_in_fetch_order() {
        if let Some(bytes) = files.get(&file.path) {
            loader.add_file(&file.path, bytes)?;
        }
    }
    loader.finish().map(|_| ())
}

/// Rewrites a shard with `edit` applied to its tensor list, and fixes size and sha256 in the
/// manifest so only the content is wrong.
fn rewrite_shard(
    manifest: &mut serde_json::Value,
    files: &mut HashMap<String, Vec<u8>>,
    path: &str,
    edit: impl FnOnce(&mut BTreeMap<String, (Vec<usize>, Vec<u8>)>),
) {
    let mut tensors = BTreeMap::new();
    {
        let file = SafeTensors::deserialize(&files[path]).unwrap();
        for (name, view) in file.tensors() {
            tensors.insert(name, (view.shape().to_vec(), view.data().to_vec()));
        }
    }
    edit(&mut tensors);
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(n, (shape, data))| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, shape.clone(), data).unwrap(),
            )
        })
        .collect();
    let bytes = safetensors::serialize(views, None).unwrap();
    for entry in manifest["files"].as_array_mut().unwrap() {
        if entry["path"] == path {
            entry["size"] = bytes.len().into();
            entry["sha256"] = format!("{:x}", Sha256::digest(&bytes)).into();
        }
    }
    files.insert(path.to_string(), bytes);
}

#[test]
fn the_fixture_folder_loads() {
    let (manifest, files) = folder();
    load(&manifest, &files).unwrap();
}

#[test]
fn a_corrupted_shard_fails_its_checksum() {
    let (manifest, mut files) = folder();
    let bytes = files.get_mut("dit-00.safetensors").unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x5a;
    let err = load(&manifest, &files).unwrap_err();
    assert!(matches!(err, WeightsError::Checksum { ref path, .. } if path == "dit-00.safetensors"));
    let msg = err.to_string();
    assert!(
        msg.contains("dit-00.safetensors") && msg.contains("corrupted"),
        "{msg}"
    );
}

#[test]
fn a_truncated_shard_fails_its_size() {
    let (manifest, mut files) = folder();
    files
        .get_mut("decoder-00.safetensors")
        .unwrap()
        .truncate(100);
    let err = load(&manifest, &files).unwrap_err();
    assert!(
        err.to_string()
            .contains("decoder-00.safetensors has 100 bytes")
            || matches!(err, WeightsError::Size { actual: 100, .. }),
        "{err}"
    );
}

#[test]
fn a_missing_tensor_is_named() {
    let (mut manifest, mut files) = folder();
    let victim = "dit.blocks.1.attn.k_norm.weight";
    rewrite_shard(&mut manifest, &mut files, "dit-00.safetensors", |t| {
        assert!(t.remove(victim).is_some());
    });
    let err = load(&manifest, &files).unwrap_err();
    assert!(
        matches!(err, WeightsError::MissingTensor { ref tensor, .. } if tensor == victim),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains(victim) && msg.contains("dit-00.safetensors"),
        "{msg}"
    );
}

#[test]
fn a_wrong_shape_is_named_with_both_shapes() {
    let (mut manifest, mut files) = folder();
    let victim = "decoder.22.bias";
    rewrite_shard(&mut manifest, &mut files, "decoder-00.safetensors", |t| {
        t.insert(victim.into(), (vec![4], vec![0u8; 16]));
    });
    let err = load(&manifest, &files).unwrap_err();
    assert_eq!(
        err,
        WeightsError::Shape {
            path: "decoder-00.safetensors".into(),
            tensor: victim.into(),
            expected: vec![3],
            actual: vec![4],
        }
    );
    assert!(err.to_string().contains("[4]") && err.to_string().contains("[3]"));
}

#[test]
fn an_extra_tensor_is_rejected() {
    let (mut manifest, mut files) = folder();
    rewrite_shard(&mut manifest, &mut files, "text-00.safetensors", |t| {
        t.insert("text.pooler.dense.bias".into(), (vec![2], vec![0u8; 8]));
    });
    let err = load(&manifest, &files).unwrap_err();
    assert!(
        matches!(err, WeightsError::UnexpectedTensor { ref tensor, .. } if tensor == "text.pooler.dense.bias"),
        "{err}"
    );
}

#[test]
fn a_missing_file_is_named() {
    let (manifest, mut files) = folder();
    files.remove("decoder-00.safetensors");
    let err = load(&manifest, &files).unwrap_err();
    assert_eq!(
        err,
        WeightsError::MissingFile {
            path: "decoder-00.safetensors".into()
        }
    );
}

#[test]
fn a_manifest_with_the_wrong_format_is_refused() {
    let (mut manifest, files) = folder();
    manifest["format"] = "kinema-model/9".into();
    let err = load(&manifest, &files).unwrap_err();
    assert!(err.to_string().contains("kinema-model/9"), "{err}");
}

#[test]
fn the_training_sampler_steps_are_read_and_checked() {
    let (mut manifest, files) = folder();
    assert_eq!(
        Manifest::parse(manifest.to_string().as_bytes())
            .unwrap()
            .training
            .sampler_steps,
        None
    );
    manifest["training"] = serde_json::json!({"dit_from": "shortcut", "sampler_steps": 4});
    let parsed = Manifest::parse(manifest.to_string().as_bytes()).unwrap();
    assert_eq!(parsed.training.sampler_steps, Some(4));
    manifest["training"]["sampler_steps"] = 0.into();
    let err = load(&manifest, &files).unwrap_err();
    assert!(
        err.to_string().contains("training.sampler_steps is 0"),
        "{err}"
    );
}

#[test]
fn the_dit_stage_and_guidance_are_read_and_checked() {
    let (mut manifest, files) = folder();
    manifest["training"] = serde_json::json!({"dit_from": "shortcut", "guidance_baked": 3.0});
    let training = Manifest::parse(manifest.to_string().as_bytes())
        .unwrap()
        .training;
    assert_eq!(training.dit_from, Some(DitStage::Shortcut));
    assert_eq!(
        training.guidance(),
        None,
        "a shortcut DiT's guidance is baked in"
    );
    assert_eq!(training.step_size_input(0.25), 0.25);

    manifest["training"] = serde_json::json!({"dit_from": "flow", "sampler_guidance": 3.0});
    let training = Manifest::parse(manifest.to_string().as_bytes())
        .unwrap()
        .training;
    assert_eq!(training.guidance(), Some(3.0));
    assert_eq!(
        training.step_size_input(0.25),
        0.0,
        "flow trained at d = 0 only"
    );

    manifest["training"]["sampler_guidance"] = 1.0.into();
    let training = Manifest::parse(manifest.to_string().as_bytes())
        .unwrap()
        .training;
    assert_eq!(training.guidance(), None, "guidance 1 needs no second pass");

    manifest["training"]["sampler_guidance"] = (-2.0).into();
    let err = load(&manifest, &files).unwrap_err();
    assert!(
        err.to_string().contains("training.sampler_guidance is -2"),
        "{err}"
    );
    manifest["training"] = serde_json::json!({"dit_from": "meanflow"});
    let err = load(&manifest, &files).unwrap_err();
    assert!(err.to_string().contains("meanflow"), "{err}");
}
