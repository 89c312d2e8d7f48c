//! Shared by the integration tests: fixture paths, reading `cases.safetensors`, comparing.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use burn::tensor::{Device, Tensor, TensorData};
use safetensors::{Dtype, SafeTensors};

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn tiny_dir() -> PathBuf {
    repo_root().join("models/fixtures/tiny")
}

/// The Flex CPU device, or wgpu's default adapter with `KINEMA_TEST_BACKEND=wgpu` (wgpu can be
/// set up once per process, so every test of a binary shares it).
pub fn device() -> Device {
    static DEVICE: OnceLock<Device> = OnceLock::new();
    DEVICE
        .get_or_init(|| match std::env::var("KINEMA_TEST_BACKEND").as_deref() {
            Ok("wgpu") => {
                let (device, info) = pollster::block_on(kinema::compute::init_gpu())
                    .expect("KINEMA_TEST_BACKEND=wgpu needs a GPU adapter");
                eprintln!("test device: {} ({})", info.adapter, info.backend);
                device
            }
            _ => kinema::compute::cpu_device(),
        })
        .clone()
}

/// A safetensors file's tensors (f32 or i32) with its metadata.
pub struct Cases {
    pub tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
    pub ints: HashMap<String, Vec<i32>>,
    pub metadata: HashMap<String, String>,
}

impl Cases {
    pub fn read(path: PathBuf) -> Self {
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
        let metadata = meta.metadata().clone().unwrap_or_default();
        let file = SafeTensors::deserialize(&bytes).unwrap();
        let mut tensors = HashMap::new();
        let mut ints = HashMap::new();
        for (name, view) in file.tensors() {
            let raw = view.data();
            match view.dtype() {
                Dtype::F32 => {
                    let v = raw
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .collect();
                    tensors.insert(name, (view.shape().to_vec(), v));
                }
                Dtype::I32 => {
                    let v = raw
                        .chunks_exact(4)
                        .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .collect();
                    ints.insert(name, v);
                }
                other => panic!("unexpected dtype {other:?} for {name}"),
            }
        }
        Self {
            tensors,
            ints,
            metadata,
        }
    }

    pub fn get(&self, name: &str) -> &(Vec<usize>, Vec<f32>) {
        self.tensors
            .get(name)
            .unwrap_or_else(|| panic!("fixture tensor {name} missing"))
    }

    pub fn values(&self, name: &str) -> Vec<f32> {
        self.get(name).1.clone()
    }

    pub fn tensor<const D: usize>(&self, name: &str, device: &Device) -> Tensor<D> {
        let (shape, data) = self.get(name).clone();
        Tensor::from_data(TensorData::new(data, shape), device)
    }

    pub fn ids(&self, name: &str) -> Vec<u32> {
        self.ints[name].iter().map(|&i| i as u32).collect()
    }

    pub fn json_list(&self, key: &str) -> Vec<String> {
        serde_json::from_str(&self.metadata[key]).unwrap()
    }
}

pub fn read<const D: usize>(t: Tensor<D>) -> (Vec<usize>, Vec<f32>) {
    let dims = t.dims().to_vec();
    let data = pollster::block_on(t.into_data_async()).unwrap();
    (dims, data.try_to_vec::<f32>().unwrap())
}

/// Largest absolute difference; panics on a shape mismatch or above `tol`.
pub fn assert_close(what: &str, actual: &[f32], expected: &[f32], tol: f32) -> f32 {
    assert_eq!(actual.len(), expected.len(), "{what}: length");
    let (mut worst, mut at) = (0.0f32, 0);
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        let diff = (a - e).abs();
        assert!(diff.is_finite(), "{what}: non-finite at {i}: {a} vs {e}");
        if diff > worst {
            worst = diff;
            at = i;
        }
    }
    eprintln!("{what}: max |diff| = {worst:.3e} (tolerance {tol:.0e})");
    assert!(
        worst <= tol,
        "{what}: max |diff| {worst} at {at} ({} vs {}) exceeds {tol}",
        actual[at],
        expected[at]
    );
    worst
}
