use std::collections::{BTreeMap, BTreeSet, HashMap};

use burn::tensor::{Device, Tensor, TensorData};
use safetensors::{Dtype, SafeTensors};
use sha2::{Digest, Sha256};

use super::{Manifest, Role, WeightsError};

/// One tensor read from a shard, converted to f32 on the host.
#[derive(Debug, Clone)]
pub struct LoadedTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
    /// The shard it came from, for error messages.
    pub file: String,
}

/// Takes the folder's files one at a time (in any order), checks each against the manifest
/// and the architecture, and keeps the tensors until [`WeightLoader::finish`].
///
/// Checking per file lets the page report a corrupted shard as soon as it arrives and drop the
/// raw bytes right away.
pub struct WeightLoader {
    manifest: Manifest,
    roles: Vec<Role>,
    expected: HashMap<String, Vec<usize>>,
    received: BTreeSet<String>,
    tensors: HashMap<String, LoadedTensor>,
    /// Row blocks of split tensors (`{name}.part{k}`), joined in [`WeightLoader::finish`].
    parts: HashMap<String, BTreeMap<usize, LoadedTensor>>,
    tokenizer: Option<Vec<u8>>,
}

impl WeightLoader {
    pub fn new(manifest: Manifest) -> Self {
        Self::for_roles(
            manifest,
            &[Role::Tokenizer, Role::Text, Role::Dit, Role::Decoder],
        )
    }

    /// A loader for part of the folder, e.g. tokenizer and text encoder only (to encode
    /// prompts while the rest still downloads, or to test the text encoder alone).
    pub fn for_roles(manifest: Manifest, roles: &[Role]) -> Self {
        let arch = &manifest.architecture;
        let mut expected: HashMap<String, Vec<usize>> = HashMap::new();
        if roles.contains(&Role::Text) {
            expected.extend(arch.text.tensor_shapes());
        }
        if roles.contains(&Role::Dit) {
            expected.extend(arch.dit.tensor_shapes(arch.text.hidden));
        }
        if roles.contains(&Role::Decoder) {
            expected.extend(arch.decoder.tensor_shapes());
        }
        Self {
            manifest,
            roles: roles.to_vec(),
            expected,
            received: BTreeSet::new(),
            tensors: HashMap::new(),
            parts: HashMap::new(),
            tokenizer: None,
        }
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The files this loader still waits for, in fetch order.
    pub fn pending_files(&self) -> Vec<&super::FileEntry> {
        self.manifest
            .files_in_fetch_order()
            .into_iter()
            .filter(|f| self.roles.contains(&f.role) && !self.received.contains(&f.path))
            .collect()
    }

    /// Verifies size and sha256 of one file of the folder, then reads and validates its tensors.
    pub fn add_file(&mut self, path: &str, bytes: &[u8]) -> Result<(), WeightsError> {
        let entry = self
            .manifest
            .files
            .iter()
            .find(|f| f.path == path)
            .filter(|f| self.roles.contains(&f.role))
            .ok_or_else(|| WeightsError::UnknownFile { path: path.into() })?
            .clone();
        if bytes.len() as u64 != entry.size {
            return Err(WeightsError::Size {
                path: path.into(),
                expected: entry.size,
                actual: bytes.len() as u64,
            });
        }
        let actual = hex(&Sha256::digest(bytes));
        if !actual.eq_ignore_ascii_case(&entry.sha256) {
            return Err(WeightsError::Checksum {
                path: path.into(),
                expected: entry.sha256.clone(),
                actual,
            });
        }
        match entry.role.tensor_prefix() {
            None => self.tokenizer = Some(bytes.to_vec()),
            Some(prefix) => {
                for (name, tensor) in read_shard(path, bytes, |name| {
                    if !name.starts_with(prefix) {
                        return None;
                    }
                    match split_part(name) {
                        Some((base, _)) => self
                            .expected
                            .get(base)
                            .map(|shape| Expect::Rows(shape[1..].to_vec())),
                        None => self.expected.get(name).cloned().map(Expect::Exact),
                    }
                })? {
                    if let Some((base, index)) = split_part(&name) {
                        let blocks = self.parts.entry(base.to_string()).or_default();
                        if blocks.insert(index, tensor).is_some() {
                            return Err(WeightsError::DuplicateTensor {
                                path: path.into(),
                                tensor: name,
                            });
                        }
                        continue;
                    }
                    if self.tensors.contains_key(&name) {
                        return Err(WeightsError::DuplicateTensor {
                            path: path.into(),
                            tensor: name,
                        });
                    }
                    self.tensors.insert(name, tensor);
                }
            }
        }
        self.received.insert(path.to_string());
        Ok(())
    }

    /// Checks that every file arrived and every tensor the architecture needs is present.
    pub fn finish(mut self) -> Result<Weights, WeightsError> {
        for (base, blocks) in std::mem::take(&mut self.parts) {
            let joined = join_parts(&base, blocks, &self.expected[&base])?;
            if self.tensors.insert(base.clone(), joined).is_some() {
                return Err(WeightsError::DuplicateTensor {
                    path: "(split parts)".into(),
                    tensor: base,
                });
            }
        }
        for file in &self.manifest.files {
            if self.roles.contains(&file.role) && !self.received.contains(&file.path) {
                return Err(WeightsError::MissingFile {
                    path: file.path.clone(),
                });
            }
        }
        let sorted: BTreeMap<_, _> = self.expected.iter().collect();
        for name in sorted.keys() {
            if !self.tensors.contains_key(name.as_str()) {
                let role = [Role::Text, Role::Dit, Role::Decoder]
                    .into_iter()
                    .find(|r| r.tensor_prefix().is_some_and(|p| name.starts_with(p)))
                    .unwrap_or(Role::Text);
                let files: Vec<&str> = self
                    .manifest
                    .files
                    .iter()
                    .filter(|f| f.role == role)
                    .map(|f| f.path.as_str())
                    .collect();
                return Err(WeightsError::MissingTensor {
                    tensor: name.to_string(),
                    role: role.name().into(),
                    files: files.join(", "),
                });
            }
        }
        Ok(Weights {
            manifest: self.manifest,
            tensors: self.tensors,
            tokenizer: self.tokenizer.unwrap_or_default(),
        })
    }
}

/// What shape a stored tensor must have.
enum Expect {
    Exact(Vec<usize>),
    /// A row block of a split tensor: any number of rows, these trailing dimensions.
    Rows(Vec<usize>),
}

/// `name.part3` → (`name`, 3).
fn split_part(name: &str) -> Option<(&str, usize)> {
    let (base, index) = name.rsplit_once(".part")?;
    if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((base, index.parse().ok()?))
}

/// Concatenates the row blocks of a split tensor (dim 0, part order), checking that the parts
/// are numbered 0..n without gaps and add up to the architecture's shape.
fn join_parts(
    base: &str,
    blocks: BTreeMap<usize, LoadedTensor>,
    expected: &[usize],
) -> Result<LoadedTensor, WeightsError> {
    let files: Vec<&str> = blocks.values().map(|b| b.file.as_str()).collect();
    let files = files.join(", ");
    if blocks.keys().copied().ne(0..blocks.len()) {
        let found: Vec<String> = blocks.keys().map(|k| format!("part{k}")).collect();
        let first_missing = (0..).find(|k| !blocks.contains_key(k)).unwrap_or(0);
        return Err(WeightsError::MissingTensor {
            tensor: format!("{base}.part{first_missing} (found {})", found.join(", ")),
            role: "split-tensor".into(),
            files,
        });
    }
    let rows: usize = blocks.values().map(|b| b.shape[0]).sum();
    let mut shape = blocks[&0].shape.clone();
    shape[0] = rows;
    if shape != expected {
        return Err(WeightsError::Shape {
            path: files,
            tensor: format!("{base} (joined from {} parts)", blocks.len()),
            expected: expected.to_vec(),
            actual: shape,
        });
    }
    let mut data = Vec::with_capacity(shape.iter().product());
    for block in blocks.into_values() {
        data.extend(block.data);
    }
    Ok(LoadedTensor {
        shape,
        data,
        file: files,
    })
}

/// Reads every tensor of a safetensors file as f32. `expect` gives the required shape of a
/// name, or `None` when the name does not belong in this file.
fn read_shard(
    path: &str,
    bytes: &[u8],
    expect: impl Fn(&str) -> Option<Expect>,
) -> Result<Vec<(String, LoadedTensor)>, WeightsError> {
    let file = SafeTensors::deserialize(bytes).map_err(|err| WeightsError::Safetensors {
        path: path.into(),
        message: err.to_string(),
    })?;
    let mut names = file.names();
    names.sort();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let view = file.tensor(name).map_err(|err| WeightsError::Safetensors {
            path: path.into(),
            message: err.to_string(),
        })?;
        let Some(expected) = expect(name) else {
            return Err(WeightsError::UnexpectedTensor {
                path: path.into(),
                tensor: name.into(),
            });
        };
        let actual = view.shape();
        let fits = match &expected {
            Expect::Exact(shape) => actual == shape.as_slice(),
            Expect::Rows(rest) => !actual.is_empty() && actual[1..] == rest[..],
        };
        let expected = match expected {
            Expect::Exact(shape) => shape,
            Expect::Rows(rest) => [vec![actual.first().copied().unwrap_or(0)], rest].concat(),
        };
        if !fits {
            return Err(WeightsError::Shape {
                path: path.into(),
                tensor: name.into(),
                expected,
                actual: actual.to_vec(),
            });
        }
        let data = to_f32(view.dtype(), view.data()).ok_or_else(|| WeightsError::DType {
            path: path.into(),
            tensor: name.into(),
            dtype: format!("{:?}", view.dtype()),
        })?;
        out.push((
            name.to_string(),
            LoadedTensor {
                shape: expected,
                data,
                file: path.into(),
            },
        ));
    }
    Ok(out)
}

/// Little-endian f16/f32 bytes to f32 values (safetensors is always little-endian).
fn to_f32(dtype: Dtype, bytes: &[u8]) -> Option<Vec<f32>> {
    match dtype {
        Dtype::F32 => Some(
            bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        ),
        Dtype::F16 => Some(
            bytes
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
        ),
        _ => None,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A complete, validated model folder, its tensors still on the host. Modules take their
/// tensors out as they are built, so host memory shrinks while the device fills.
pub struct Weights {
    pub manifest: Manifest,
    tensors: HashMap<String, LoadedTensor>,
    pub tokenizer: Vec<u8>,
}

impl Weights {
    /// Number of scalar parameters in the folder (what the page shows as the model's size).
    pub fn parameter_count(&self) -> usize {
        self.tensors
            .values()
            .map(|t| t.shape.iter().product::<usize>())
            .sum()
    }

    fn remove(&mut self, name: &str) -> LoadedTensor {
        // The loader checked every architecture tensor is present with its shape; a name missing
        // here is a bug in a module's `tensor_shapes`, not a bad folder.
        self.tensors
            .remove(name)
            .unwrap_or_else(|| panic!("tensor `{name}` not declared by the architecture"))
    }

    /// A tensor as stored, uploaded to `device`.
    pub fn tensor<const D: usize>(&mut self, name: &str, device: &Device) -> Tensor<D> {
        let t = self.remove(name);
        Tensor::from_data(TensorData::new(t.data, t.shape), device)
    }

    /// A PyTorch `Linear` weight `[out, in]`, transposed on the host to burn's `[in, out]` so
    /// the device holds it contiguous for matmul.
    pub fn linear_weight(&mut self, name: &str, device: &Device) -> Tensor<2> {
        let t = self.remove(name);
        let (rows, cols) = (t.shape[0], t.shape[1]);
        let mut transposed = vec![0.0f32; rows * cols];
        for r in 0..rows {
            for c in 0..cols {
                transposed[c * rows + r] = t.data[r * cols + c];
            }
        }
        Tensor::from_data(TensorData::new(transposed, [cols, rows]), device)
    }

    /// `{prefix}.weight` (transposed) and `{prefix}.bias`.
    pub fn linear(&mut self, prefix: &str, device: &Device) -> crate::nn::Linear {
        crate::nn::Linear {
            weight: self.linear_weight(&format!("{prefix}.weight"), device),
            bias: Some(self.tensor(&format!("{prefix}.bias"), device)),
        }
    }

    pub fn remaining(&self) -> usize {
        self.tensors.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(rows: usize, value: f32) -> LoadedTensor {
        LoadedTensor {
            shape: vec![rows, 2],
            data: vec![value; rows * 2],
            file: format!("text-0{rows}.safetensors"),
        }
    }

    #[test]
    fn part_names_are_recognised_strictly() {
        assert_eq!(split_part("text.w.part0"), Some(("text.w", 0)));
        assert_eq!(split_part("text.w.part12"), Some(("text.w", 12)));
        assert_eq!(split_part("text.w.part"), None);
        assert_eq!(split_part("text.w.partx"), None);
        assert_eq!(split_part("text.w"), None);
    }

    #[test]
    fn parts_join_in_order() {
        let blocks = BTreeMap::from([(1, block(2, 1.0)), (0, block(1, 0.0))]);
        let joined = join_parts("text.w", blocks, &[3, 2]).unwrap();
        assert_eq!(joined.shape, vec![3, 2]);
        assert_eq!(joined.data, vec![0.0, 0.0, 1.0, 1.0, 1.0, 1.0]);
    }

    #[test]
    fn a_missing_part_or_wrong_total_is_an_error() {
        let gap = BTreeMap::from([(0, block(1, 0.0)), (2, block(2, 1.0))]);
        let err = join_parts("text.w", gap, &[3, 2]).unwrap_err();
        assert!(
            err.to_string()
                .contains("text.w.part1 (found part0, part2)"),
            "{err}"
        );
        let short = BTreeMap::from([(0, block(1, 0.0))]);
        let err = join_parts("text.w", short, &[3, 2]).unwrap_err();
        assert!(matches!(err, WeightsError::Shape { ref actual, .. } if actual == &vec![1, 2]));
    }
}
