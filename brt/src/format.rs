//! The project's own weight format: a safetensors file with one tensor per
//! parameter (named as [`crate::weights::param_name`] says) and the configuration
//! as JSON in its metadata. f32, f16 and bf16 storage.

use crate::config_file::ConfigFile;
use crate::error::{Error, Result};
use crate::files::write_atomically;
use crate::weights::{param_from_name, param_name, ModelWeights, WeightBuffer};
use brt_core::half::{bf16, f16};
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use std::collections::HashMap;
use std::path::Path;

/// Metadata key naming the format.
pub const FORMAT_KEY: &str = "format";
/// Value of [`FORMAT_KEY`].
pub const FORMAT_NAME: &str = "brt";
/// Metadata key of the format version.
pub const VERSION_KEY: &str = "format_version";
/// The version this code writes and reads.
pub const VERSION: &str = "1";
/// Metadata key of the configuration JSON.
pub const CONFIG_KEY: &str = "config";
/// Metadata key of the tokenizer the model was trained with (optional; see
/// [`crate::tokenizer::Tokenizer::identity`]).
pub const TOKENIZER_KEY: &str = "tokenizer";

/// Whether `bytes` look like a safetensors file: a plausible header length
/// followed by a JSON object. A file cut short still looks like one, so that
/// reading it reports the truncation.
pub fn looks_like_safetensors(bytes: &[u8]) -> bool {
    match bytes.get(..8).and_then(|b| b.try_into().ok()) {
        Some(len) => {
            let n = u64::from_le_bytes(len);
            (2..=MAX_HEADER).contains(&n) && bytes.get(8) == Some(&b'{')
        }
        None => false,
    }
}

/// The file's bytes for `weights`.
pub fn to_bytes(weights: &ModelWeights) -> Result<Vec<u8>> {
    let (dtype, elem) = match weights.buffer() {
        WeightBuffer::F32(_) => (Dtype::F32, 4),
        WeightBuffer::F16(_) => (Dtype::F16, 2),
        WeightBuffer::Bf16(_) => (Dtype::BF16, 2),
    };
    let raw: &[u8] = match weights.buffer() {
        WeightBuffer::F32(v) => bytemuck::cast_slice(v),
        WeightBuffer::F16(v) => bytemuck::cast_slice(v),
        WeightBuffer::Bf16(v) => bytemuck::cast_slice(v),
    };
    let mut views = Vec::new();
    for spec in weights.layout().params() {
        let shape = if spec.param.is_vector() { vec![spec.span.cols] } else { vec![spec.span.rows, spec.span.cols] };
        let data = &raw[spec.offset * elem..(spec.offset + spec.span.len()) * elem];
        let view = TensorView::new(dtype, shape, data).map_err(|e| Error::Invalid(format!("weights: {e}")))?;
        views.push((param_name(spec.param), view));
    }
    let mut metadata: HashMap<String, String> = [
        (FORMAT_KEY.to_string(), FORMAT_NAME.to_string()),
        (VERSION_KEY.to_string(), VERSION.to_string()),
        (CONFIG_KEY.to_string(), ConfigFile::to_json(weights.config())),
    ]
    .into();
    if let Some(tokenizer) = weights.tokenizer() {
        metadata.insert(TOKENIZER_KEY.to_string(), tokenizer.to_string());
    }
    safetensors::serialize(views, Some(metadata)).map_err(|e| Error::Invalid(format!("weights: {e}")))
}

/// Writes `weights` to `path` atomically (a temporary file, then a rename).
pub fn save(weights: &ModelWeights, path: &Path) -> Result<()> {
    write_atomically(path, &to_bytes(weights)?)
}

/// Parses a safetensors file held in memory and returns it with its metadata.
///
/// The `safetensors` crate checks offsets, shapes and sizes, but adds the claimed
/// end of the data to the header length unchecked, which overflows (a panic in
/// builds with overflow checks) for a hostile header whose tensors claim almost
/// 2^64 bytes. So every tensor's claimed end is first compared with the bytes
/// that are really there; the header is parsed as generic JSON for that, which
/// costs memory in proportion to the header, itself bounded by the file.
pub(crate) fn parse_safetensors(bytes: &[u8]) -> Result<(SafeTensors<'_>, HashMap<String, String>), String> {
    check_claims(bytes)?;
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| format!("not a valid safetensors file: {e}"))?;
    let meta = header.metadata().clone().unwrap_or_default();
    let tensors = SafeTensors::deserialize(bytes).map_err(|e| format!("not a valid safetensors file: {e}"))?;
    Ok((tensors, meta))
}

/// Largest header the `safetensors` crate reads (its own limit).
const MAX_HEADER: u64 = 100_000_000;

/// Reports a truncated file, and rejects a header whose tensors claim data
/// beyond the end of the file. Headers that are malformed in any other way are
/// left to the `safetensors` crate, which reports them.
fn check_claims(bytes: &[u8]) -> Result<(), String> {
    let Some(len) = bytes.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()) else {
        return Err(format!("truncated: {} bytes, not even the 8-byte header length", bytes.len()));
    };
    let claimed = u64::from_le_bytes(len);
    let after = (bytes.len() - 8) as u64;
    if claimed > after {
        return Err(if claimed <= MAX_HEADER {
            format!("truncated: the header is {claimed} bytes long, only {after} bytes follow its length")
        } else {
            format!("not a valid safetensors file: the header length {claimed} is implausible")
        });
    }
    // `claimed <= after < usize::MAX`, so the header is inside the file.
    let header = &bytes[8..8 + claimed as usize];
    let Ok(serde_json::Value::Object(entries)) = serde_json::from_slice::<serde_json::Value>(header) else {
        return Ok(());
    };
    let data_len = after - claimed;
    for (name, entry) in &entries {
        let end = entry.get("data_offsets").and_then(|o| o.get(1)).and_then(serde_json::Value::as_u64);
        if let Some(end) = end.filter(|&end| end > data_len) {
            return Err(format!(
                "truncated or corrupt: tensor `{name}` claims data up to byte {end}, the file holds {data_len}"
            ));
        }
    }
    Ok(())
}

/// Reads a brt weight file from its bytes.
///
/// Every tensor is checked (name, dtype, shape) before the parameter buffer is
/// allocated, so the memory used is bounded by the file's size whatever its
/// configuration claims.
pub fn from_bytes(bytes: &[u8]) -> Result<ModelWeights, String> {
    let (tensors, meta) = parse_safetensors(bytes)?;
    if meta.get(FORMAT_KEY).map(String::as_str) != Some(FORMAT_NAME) {
        return Err("a safetensors file, but not brt weights (no `format: brt` metadata); \
                    convert official checkpoints with `brt convert`"
            .into());
    }
    match meta.get(VERSION_KEY).map(String::as_str) {
        Some(VERSION) => {}
        Some(v) => return Err(format!("brt weights format version {v}; this brt reads version {VERSION}")),
        None => return Err("brt weights without a format version".into()),
    }
    let config_json = meta.get(CONFIG_KEY).ok_or("brt weights without a configuration")?;
    let config = ConfigFile::parse(config_json).map_err(|e| format!("configuration in metadata: {e}"))?;
    let layout = brt_core::WeightLayout::new(&config).map_err(|e| e.to_string())?;

    let mut dtype = None;
    for (name, view) in tensors.iter() {
        if param_from_name(name).and_then(|p| layout.span(p)).is_none() {
            return Err(format!("tensor `{name}` is not a parameter of the configuration in the metadata"));
        }
        let d = view.dtype();
        if !matches!(d, Dtype::F32 | Dtype::F16 | Dtype::BF16) {
            return Err(format!("tensor `{name}` has dtype {d:?}; weights must be F32, F16 or BF16"));
        }
        match dtype {
            Some(first) if first != d => return Err(format!("tensor `{name}` is {d:?} while others are {first:?}")),
            _ => dtype = Some(d),
        }
    }
    // Every parameter is present with its shape before anything is allocated:
    // then the buffer is no larger than the tensors the file really holds.
    let mut parts = Vec::with_capacity(tensors.len());
    for spec in layout.params() {
        let name = param_name(spec.param);
        let view = tensors.tensor(&name).map_err(|_| format!("missing tensor `{name}`"))?;
        let want = if spec.param.is_vector() { vec![spec.span.cols] } else { vec![spec.span.rows, spec.span.cols] };
        if view.shape() != want.as_slice() {
            return Err(format!("tensor `{name}` has shape {:?}, expected {want:?}", view.shape()));
        }
        parts.push((spec.offset..spec.offset + spec.span.len(), view.data()));
    }
    let dtype = dtype.unwrap_or(Dtype::F32);
    let mut buffer = match dtype {
        Dtype::F16 => WeightBuffer::F16(vec![f16::ZERO; layout.len()]),
        Dtype::BF16 => WeightBuffer::Bf16(vec![bf16::ZERO; layout.len()]),
        _ => WeightBuffer::F32(vec![0.0; layout.len()]),
    };
    for (range, data) in parts {
        // Little-endian element bytes; `chunks_exact` never reads past the data,
        // whose length safetensors checked against the shape.
        match &mut buffer {
            WeightBuffer::F32(v) => {
                for (o, c) in v[range].iter_mut().zip(data.chunks_exact(4)) {
                    *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                }
            }
            WeightBuffer::F16(v) => {
                for (o, c) in v[range].iter_mut().zip(data.chunks_exact(2)) {
                    *o = f16::from_le_bytes([c[0], c[1]]);
                }
            }
            WeightBuffer::Bf16(v) => {
                for (o, c) in v[range].iter_mut().zip(data.chunks_exact(2)) {
                    *o = bf16::from_le_bytes([c[0], c[1]]);
                }
            }
        }
    }
    let mut weights = ModelWeights::new(config, buffer).map_err(|e| e.to_string())?;
    weights.set_tokenizer(meta.get(TOKENIZER_KEY).cloned());
    Ok(weights)
}

/// Reads a brt weight file.
pub fn load(path: &Path) -> Result<ModelWeights> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    from_bytes(&bytes).map_err(|m| Error::format(path, m))
}
