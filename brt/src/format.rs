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
use serde_json::value::RawValue;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Metadata key naming the format.
///
/// Every brt weight file says `format: brt`:
///
/// ```
/// use brt::format::{FORMAT_KEY, FORMAT_NAME};
/// # use brt_core::{Config, WeightDtype};
/// # let model = brt::bench::random_model(&Config::plain(10, 8, 2, 4, 16, 1, 4), WeightDtype::F32, 1)?;
/// let bytes = brt::format::to_bytes(&model)?;
/// let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)?;
/// let metadata = header.metadata().clone().unwrap_or_default();
/// assert_eq!(metadata[FORMAT_KEY], FORMAT_NAME);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub const FORMAT_KEY: &str = "format";
/// Value of [`FORMAT_KEY`].
///
/// A safetensors file without it is not read as brt weights:
///
/// ```
/// use brt::format::{FORMAT_KEY, FORMAT_NAME};
/// use safetensors::tensor::{Dtype, TensorView};
/// let data = [0u8; 4];
/// let tensor = TensorView::new(Dtype::F32, vec![1], &data)?;
/// let other = [(FORMAT_KEY.to_string(), "other".to_string())].into();
/// let bytes = safetensors::serialize([("x", tensor)], Some(other))?;
/// assert_eq!(FORMAT_NAME, "brt");
/// assert!(brt::format::from_bytes(&bytes).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub const FORMAT_NAME: &str = "brt";
/// Metadata key of the format version.
///
/// ```
/// use brt::format::{VERSION, VERSION_KEY};
/// # use brt_core::{Config, WeightDtype};
/// # let model = brt::bench::random_model(&Config::plain(10, 8, 2, 4, 16, 1, 4), WeightDtype::F32, 1)?;
/// let bytes = brt::format::to_bytes(&model)?;
/// let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)?;
/// let metadata = header.metadata().clone().unwrap_or_default();
/// assert_eq!(metadata[VERSION_KEY], VERSION);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub const VERSION_KEY: &str = "format_version";
/// The version this code writes and reads.
///
/// ```
/// assert_eq!(brt::format::VERSION, "1");
/// ```
pub const VERSION: &str = "1";
/// Metadata key of the configuration JSON.
///
/// The configuration is stored as [`ConfigFile`] JSON:
///
/// ```
/// use brt::config_file::ConfigFile;
/// use brt::format::CONFIG_KEY;
/// # use brt_core::{Config, WeightDtype};
/// # let model = brt::bench::random_model(&Config::plain(10, 8, 2, 4, 16, 1, 4), WeightDtype::F32, 1)?;
/// let bytes = brt::format::to_bytes(&model)?;
/// let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)?;
/// let metadata = header.metadata().clone().unwrap_or_default();
/// assert_eq!(ConfigFile::parse(&metadata[CONFIG_KEY])?, *model.config());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub const CONFIG_KEY: &str = "config";
/// Metadata key of the tokenizer the model was trained with (optional; see
/// [`crate::tokenizer::Tokenizer::identity`]).
///
/// It is written only for a model that records a tokenizer:
///
/// ```
/// use brt::format::TOKENIZER_KEY;
/// # use brt_core::{Config, WeightDtype};
/// # let model = brt::bench::random_model(&Config::plain(10, 8, 2, 4, 16, 1, 4), WeightDtype::F32, 1)?;
/// let bytes = brt::format::to_bytes(&model)?;
/// let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)?;
/// let metadata = header.metadata().clone().unwrap_or_default();
/// assert!(!metadata.contains_key(TOKENIZER_KEY));
/// let mut named = model.clone();
/// named.set_tokenizer(Some("ids".into()));
/// let bytes = brt::format::to_bytes(&named)?;
/// let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)?;
/// assert_eq!(header.metadata().as_ref().map(|m| m[TOKENIZER_KEY].as_str()), Some("ids"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub const TOKENIZER_KEY: &str = "tokenizer";

/// Whether `bytes` look like a safetensors file: a plausible header length
/// followed by a JSON object. A file cut short still looks like one, so that
/// reading it reports the truncation.
///
/// A brt file looks like one, even cut short; a GGUF file does not:
///
/// ```
/// use brt::format::looks_like_safetensors;
/// use brt_core::{Config, WeightDtype};
/// let model = brt::bench::random_model(&Config::plain(10, 8, 2, 4, 16, 1, 4), WeightDtype::F32, 1)?;
/// let bytes = brt::format::to_bytes(&model)?;
/// assert!(looks_like_safetensors(&bytes) && looks_like_safetensors(&bytes[..9]));
/// assert!(!looks_like_safetensors(&brt::gguf::to_bytes(&model, None, WeightDtype::F32)?));
/// assert!(!looks_like_safetensors(b"{}"));
/// # Ok::<(), brt::Error>(())
/// ```
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
///
/// The bytes read back to the same model, in its storage type:
///
/// ```
/// use brt_core::{Config, WeightDtype};
/// let model = brt::bench::random_model(&Config::plain(10, 8, 2, 4, 16, 1, 4), WeightDtype::Bf16, 1)?;
/// let bytes = brt::format::to_bytes(&model)?;
/// assert_eq!(brt::format::from_bytes(&bytes)?, model);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
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
    serialize_reproducibly(views, metadata)
}

/// `safetensors::serialize` with the header's entries in sorted order, so that
/// the same tensors and metadata always give the same bytes (a file can be
/// compared, hashed or cached by its bytes). The crate writes the metadata in
/// the iteration order of its `HashMap`, which differs from one map to the
/// next. So the header is parsed back, its metadata sorted, and its entries
/// written again in sorted order (each tensor's entry in the crate's own text);
/// it keeps its length (the same entries in another order), so the data that
/// follows stays where it is.
///
/// Two maps with the same entries give the same bytes:
///
/// ```
/// use safetensors::tensor::{Dtype, TensorView};
/// use std::collections::HashMap;
/// let data = [0u8; 4];
/// let files: Vec<Vec<u8>> = (0..8)
///     .map(|_| {
///         let metadata: HashMap<String, String> = (0..6).map(|i| (format!("key{i}"), i.to_string())).collect();
///         let tensor = TensorView::new(Dtype::F32, vec![1], &data).unwrap();
///         brt::format::serialize_reproducibly([("x", tensor)], metadata).unwrap()
///     })
///     .collect();
/// assert!(files.windows(2).all(|pair| pair[0] == pair[1]));
/// assert!(brt::format::looks_like_safetensors(&files[0]));
/// ```
pub fn serialize_reproducibly<S, V, I>(tensors: I, metadata: HashMap<String, String>) -> Result<Vec<u8>>
where
    S: AsRef<str> + Ord + std::fmt::Display,
    V: safetensors::View,
    I: IntoIterator<Item = (S, V)>,
{
    let invalid = |e: String| Error::Invalid(format!("writing a safetensors file: {e}"));
    let mut bytes = safetensors::serialize(tensors, Some(metadata)).map_err(|e| invalid(e.to_string()))?;
    let header_len = bytes.get(..8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes);
    let header = header_len.and_then(|n| bytes.get(8..(8usize).checked_add(usize::try_from(n).ok()?)?));
    let header = header.ok_or_else(|| invalid("the crate wrote no header".into()))?;
    let mut entries: BTreeMap<String, Box<RawValue>> =
        serde_json::from_slice(header).map_err(|e| invalid(e.to_string()))?;
    if let Some(metadata) = entries.get(METADATA_ENTRY) {
        let sorted: BTreeMap<String, String> =
            serde_json::from_str(metadata.get()).map_err(|e| invalid(e.to_string()))?;
        let text = serde_json::to_string(&sorted).map_err(|e| invalid(e.to_string()))?;
        entries.insert(METADATA_ENTRY.into(), RawValue::from_string(text).map_err(|e| invalid(e.to_string()))?);
    }
    let text = serde_json::to_string(&entries).map_err(|e| invalid(e.to_string()))?;
    if text.len() > header.len() {
        return Err(invalid(format!("the sorted header grew from {} to {} bytes", header.len(), text.len())));
    }
    // The crate pads its header with spaces to align the data; so does this.
    let padded = text.into_bytes().into_iter().chain(std::iter::repeat(b' ')).take(header.len());
    bytes.splice(8..8 + header.len(), padded);
    Ok(bytes)
}

/// The header entry holding a safetensors file's metadata.
const METADATA_ENTRY: &str = "__metadata__";

/// Writes `weights` to `path` atomically (a temporary file, then a rename).
///
/// A saved model loads back unchanged:
///
/// ```
/// use brt_core::{Config, WeightDtype};
/// let model = brt::bench::random_model(&Config::plain(10, 8, 2, 4, 16, 1, 4), WeightDtype::F16, 1)?;
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("model.safetensors");
/// brt::format::save(&model, &path)?;
/// assert_eq!(brt::format::load(&path)?, model);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
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
///
/// The built-in model is such a file; a file cut short is refused with a
/// message that says so:
///
/// ```
/// let model = brt::format::from_bytes(brt::default_model::DEFAULT_MODEL)?;
/// assert_eq!(model.config().vocab, 260);
/// let cut = &brt::default_model::DEFAULT_MODEL[..1000];
/// assert!(brt::format::from_bytes(cut).unwrap_err().contains("truncated"));
/// # Ok::<(), String>(())
/// ```
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
///
/// The error of a file that is not brt weights names the file:
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("notes.txt");
/// std::fs::write(&path, "not weights")?;
/// let error = brt::format::load(&path).unwrap_err();
/// assert!(error.to_string().contains("notes.txt"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn load(path: &Path) -> Result<ModelWeights> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    from_bytes(&bytes).map_err(|m| Error::format(path, m))
}
