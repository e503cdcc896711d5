//! Making hostile inputs: official checkpoints written array by array (so any
//! array can be given a wrong shape, dtype or value), brt weight and session files
//! rewritten with edited tensors and metadata, and folder snapshots to prove that
//! a failed command changed nothing.
#![allow(dead_code)]

use brt::meliad::official_path;
use brt::{ModelWeights, WeightBuffer};
use brt_core::half::{bf16, f16};
use brt_core::{Config, WeightDtype};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Official-style random weights of `config`, stored as `dtype`.
pub fn random_weights(config: Config, seed: u64, dtype: WeightDtype) -> ModelWeights {
    let layout = brt_core::WeightLayout::new(&config).unwrap();
    let mut flat = vec![0f32; layout.len()];
    brt_core::init::initialize(&config, seed, &mut flat).unwrap();
    ModelWeights::new(config, WeightBuffer::F32(flat)).unwrap().with_dtype(dtype).unwrap()
}

/// One stored numpy array: shape, dtype name, little-endian bytes.
#[derive(Clone, Debug)]
pub struct Array {
    pub shape: Vec<usize>,
    pub dtype: String,
    pub data: Vec<u8>,
}

/// The arrays of a checkpoint by `/`-joined path.
pub type Arrays = BTreeMap<String, Array>;

/// The path prefix of parameters in official checkpoints.
pub const PARAMS: &str = "optimizer/target/decoder/";

/// `weights` as the arrays of an official checkpoint: parameters under
/// `optimizer/target/decoder/`, a step counter, and (if `cache`) cached keys and
/// values `(1, W, H, dh)` of every layer under `state/state/decoder/`.
pub fn official_arrays(weights: &ModelWeights, cache: bool) -> Arrays {
    let mut arrays = Arrays::new();
    let (dtype, size) = match weights.dtype() {
        WeightDtype::F32 | WeightDtype::Q8_0 => ("float32", 4),
        WeightDtype::F16 => ("float16", 2),
        WeightDtype::Bf16 => ("bfloat16", 2),
    };
    for spec in weights.layout().params() {
        let shape = if spec.param.is_vector() { vec![spec.span.cols] } else { vec![spec.span.rows, spec.span.cols] };
        let values = weights.param_f32(spec.param).unwrap();
        let mut data = Vec::with_capacity(values.len() * size);
        for v in values {
            match weights.dtype() {
                WeightDtype::F32 | WeightDtype::Q8_0 => data.extend(v.to_le_bytes()),
                WeightDtype::F16 => data.extend(f16::from_f32(v).to_le_bytes()),
                WeightDtype::Bf16 => data.extend(bf16::from_f32(v).to_le_bytes()),
            }
        }
        let path = format!("{PARAMS}{}", official_path(spec.param));
        arrays.insert(path, Array { shape, dtype: dtype.into(), data });
    }
    arrays.insert(
        "optimizer/state/step".into(),
        Array { shape: vec![], dtype: "int32".into(), data: 7i32.to_le_bytes().to_vec() },
    );
    let c = weights.config();
    if cache {
        let shape = vec![1, c.window, c.heads, c.head_dim];
        let data = vec![0u8; c.window * c.heads * c.head_dim * 4];
        for l in 0..c.layers {
            for kind in ["keys", "values"] {
                let path = format!("state/state/decoder/transformer{l}/previous_{kind}_test");
                arrays.insert(path, Array { shape: shape.clone(), dtype: "float32".into(), data: data.clone() });
            }
        }
    }
    arrays
}

/// A minimal msgpack writer: what flax's `msgpack_serialize` produces (nested
/// maps with string keys, arrays as ext type 1 holding `[shape, dtype, bytes]`).
mod msgpack {
    use super::Array;
    use std::collections::BTreeMap;

    pub enum Node<'a> {
        Map(BTreeMap<&'a str, Node<'a>>),
        Leaf(&'a Array),
    }

    fn uint(out: &mut Vec<u8>, v: usize) {
        match v {
            0..=0x7f => out.push(v as u8),
            0x80..=0xff => out.extend([0xcc, v as u8]),
            0x100..=0xffff => {
                out.push(0xcd);
                out.extend((v as u16).to_be_bytes());
            }
            0x1_0000..=0xffff_ffff => {
                out.push(0xce);
                out.extend((v as u32).to_be_bytes());
            }
            _ => {
                out.push(0xcf);
                out.extend((v as u64).to_be_bytes());
            }
        }
    }

    fn string(out: &mut Vec<u8>, s: &str) {
        if s.len() < 32 {
            out.push(0xa0 | s.len() as u8);
        } else {
            out.push(0xd9);
            out.push(u8::try_from(s.len()).unwrap());
        }
        out.extend(s.as_bytes());
    }

    fn array(out: &mut Vec<u8>, a: &Array) {
        let mut payload = vec![0x93, 0x90 | u8::try_from(a.shape.len()).unwrap()];
        for &d in &a.shape {
            uint(&mut payload, d);
        }
        string(&mut payload, &a.dtype);
        payload.push(0xc6);
        payload.extend((a.data.len() as u32).to_be_bytes());
        payload.extend(&a.data);
        out.push(0xc9);
        out.extend((payload.len() as u32).to_be_bytes());
        out.push(1);
        out.extend(payload);
    }

    pub fn insert<'a>(root: &mut BTreeMap<&'a str, Node<'a>>, path: &'a str, leaf: &'a Array) {
        match path.split_once('/') {
            None => {
                root.insert(path, Node::Leaf(leaf));
            }
            Some((head, rest)) => match root.entry(head).or_insert_with(|| Node::Map(BTreeMap::new())) {
                Node::Map(m) => insert(m, rest, leaf),
                Node::Leaf(_) => panic!("`{path}` is below an array"),
            },
        }
    }

    pub fn write(out: &mut Vec<u8>, map: &BTreeMap<&str, Node<'_>>) {
        if map.len() < 16 {
            out.push(0x80 | map.len() as u8);
        } else {
            out.push(0xde);
            out.extend(u16::try_from(map.len()).unwrap().to_be_bytes());
        }
        for (k, v) in map {
            string(out, k);
            match v {
                Node::Map(m) => write(out, m),
                Node::Leaf(a) => array(out, a),
            }
        }
    }
}

/// The bytes of an official checkpoint holding `arrays`.
pub fn checkpoint_bytes(arrays: &Arrays) -> Vec<u8> {
    let mut root = BTreeMap::new();
    for (path, array) in arrays {
        msgpack::insert(&mut root, path, array);
    }
    let mut out = Vec::new();
    msgpack::write(&mut out, &root);
    out
}

/// A safetensors file taken apart: tensors `(name, dtype, shape, bytes)` in file
/// order, and the metadata.
pub struct Parts {
    pub tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)>,
    pub metadata: HashMap<String, String>,
}

impl Parts {
    /// Takes a safetensors file apart.
    pub fn of(bytes: &[u8]) -> Parts {
        let st = SafeTensors::deserialize(bytes).unwrap();
        let (_, meta) = SafeTensors::read_metadata(bytes).unwrap();
        let metadata = meta.metadata().clone().unwrap_or_default();
        let mut tensors: Vec<_> =
            st.iter().map(|(n, v)| (n.to_string(), v.dtype(), v.shape().to_vec(), v.data().to_vec())).collect();
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        Parts { tensors, metadata }
    }

    /// The tensor called `name`.
    pub fn tensor(&mut self, name: &str) -> &mut (String, Dtype, Vec<usize>, Vec<u8>) {
        self.tensors.iter_mut().find(|t| t.0 == name).unwrap_or_else(|| panic!("no tensor `{name}`"))
    }

    /// Replaces `from` by `to` in the value of metadata `key` (which must contain it).
    pub fn edit_meta(&mut self, key: &str, from: &str, to: &str) {
        let value = self.metadata.get_mut(key).unwrap_or_else(|| panic!("no metadata `{key}`"));
        assert!(value.contains(from), "metadata `{key}` = {value} has no `{from}`");
        *value = value.replace(from, to);
    }

    /// The file again (tensor shapes and bytes must agree: the writer checks them).
    pub fn bytes(&self) -> Vec<u8> {
        let views: Vec<_> =
            self.tensors.iter().map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap())).collect();
        safetensors::serialize(views, Some(self.metadata.clone())).unwrap()
    }
}

/// A safetensors file written by hand: `header` JSON (tensors' `data_offsets`
/// and shapes may claim anything) followed by `data`.
pub fn raw_safetensors(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend(header.as_bytes());
    out.extend(data);
    out
}

/// Every file below `dir` with its content.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.insert(path.clone(), b"<dir>".to_vec());
                stack.push(path);
            } else {
                out.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

/// The differences between two snapshots, for messages.
pub fn changes(before: &BTreeMap<PathBuf, Vec<u8>>, after: &BTreeMap<PathBuf, Vec<u8>>) -> Vec<String> {
    let mut out = Vec::new();
    for (path, content) in after {
        match before.get(path) {
            None => out.push(format!("new: {}", path.display())),
            Some(old) if old != content => out.push(format!("changed: {}", path.display())),
            _ => {}
        }
    }
    for path in before.keys().filter(|p| !after.contains_key(*p)) {
        out.push(format!("removed: {}", path.display()));
    }
    out
}
