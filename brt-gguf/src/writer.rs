//! The writer: a model in the canonical layout to the bytes of a model file.

use crate::error::GgufError;
use crate::file::{align_up, dims_of, tensor_type_of};
use crate::keys;
use crate::reader::value_type;
use crate::{DEFAULT_ALIGNMENT, FORMAT_VERSION, GGUF_VERSION, MAGIC};
use alloc::vec::Vec;
use brt_core::{ByteLayout, Config, GateKind, LayerSet, StateLayout, WeightData, WeightDtype};

/// The bytes of a model file for `config` and its parameters `weights` in the
/// canonical layout ([`brt_core::WeightLayout::new`]), stored in the type of `weights`.
///
/// Tensors follow in canonical order, each at the next multiple of 32 bytes, so
/// the reader can use the data where it lies.
///
/// ```
/// use brt_core::{Config, WeightData, WeightDtype, WeightLayout};
/// let config = Config::plain(16, 32, 1, 32, 32, 1, 4);
/// let values = vec![0.5f32; WeightLayout::new(&config)?.len()];
/// let bytes = brt_gguf::write(&config, Some("demo"), WeightData::F32(&values))?;
/// assert_eq!(&bytes[..4], b"GGUF");
/// # Ok::<(), brt_gguf::GgufError>(())
/// ```
pub fn write(config: &Config, name: Option<&str>, weights: WeightData<'_>) -> Result<Vec<u8>, GgufError> {
    let dtype = match weights {
        WeightData::F32(_) => WeightDtype::F32,
        WeightData::F16(_) => WeightDtype::F16,
        WeightData::Bf16(_) => WeightDtype::Bf16,
    };
    write_as(config, name, weights, dtype)
}

/// [`write`], storing the parameters as `dtype`: rounded to nearest for f16 and
/// bf16, quantized into blocks for Q8_0 (see [`brt_core::encoding`]).
///
/// ```
/// use brt_core::{Config, WeightData, WeightDtype, WeightLayout};
/// let config = Config::plain(16, 32, 1, 32, 32, 1, 4);
/// let values = vec![0.5f32; WeightLayout::new(&config)?.len()];
/// let f32s = brt_gguf::write(&config, None, WeightData::F32(&values))?;
/// let q8 = brt_gguf::write_as(&config, None, WeightData::F32(&values), WeightDtype::Q8_0)?;
/// // Every matrix here is whole blocks of 32: about 34/32 bytes a value, not 4.
/// assert!(q8.len() * 3 < f32s.len());
/// # Ok::<(), brt_gguf::GgufError>(())
/// ```
pub fn write_as(
    config: &Config,
    name: Option<&str>,
    weights: WeightData<'_>,
    dtype: WeightDtype,
) -> Result<Vec<u8>, GgufError> {
    write_tagged(config, name, None, weights, dtype)
}

/// [`write_as`], also recording the tokenizer the model was trained with
/// ([`keys::TOKENIZER`]).
///
/// ```
/// use brt_core::{Config, WeightData, WeightDtype, WeightLayout};
/// let config = Config::plain(16, 32, 1, 32, 32, 1, 4);
/// let values = vec![0.5f32; WeightLayout::new(&config)?.len()];
/// let bytes = brt_gguf::write_tagged(&config, None, Some("bytes"), WeightData::F32(&values), WeightDtype::F16)?;
/// let mut aligned = vec![0u64; bytes.len().div_ceil(8)];
/// bytemuck::cast_slice_mut::<u64, u8>(&mut aligned)[..bytes.len()].copy_from_slice(&bytes);
/// let file = brt_gguf::ModelFile::parse(&bytemuck::cast_slice(&aligned)[..bytes.len()])?;
/// assert_eq!((file.tokenizer(), file.dtype()), (Some("bytes"), WeightDtype::F16));
/// # Ok::<(), brt_gguf::GgufError>(())
/// ```
pub fn write_tagged(
    config: &Config,
    name: Option<&str>,
    tokenizer: Option<&str>,
    weights: WeightData<'_>,
    dtype: WeightDtype,
) -> Result<Vec<u8>, GgufError> {
    config.validate()?;
    let alignment = DEFAULT_ALIGNMENT;
    let placed = ByteLayout::new(config, dtype, alignment)?;
    let mut data = alloc::vec![0u8; placed.len()];
    placed.encode(weights, &mut data)?;

    let mut kv = Kv::default();
    kv.string(keys::ARCHITECTURE, "brt");
    if let Some(name) = name {
        kv.string(keys::NAME, name);
    }
    if let Some(tokenizer) = tokenizer {
        kv.string(keys::TOKENIZER, tokenizer);
    }
    kv.u32(keys::ALIGNMENT, alignment as u32);
    kv.u32(keys::FORMAT_VERSION, FORMAT_VERSION);
    kv.u32(keys::DATA_CRC32, crc32fast::hash(&data));
    kv.u64(keys::VOCAB, config.vocab as u64);
    kv.u64(keys::D_MODEL, config.d_model as u64);
    kv.u64(keys::HEADS, config.heads as u64);
    kv.u64(keys::HEAD_DIM, config.head_dim as u64);
    kv.u64(keys::MLP_HIDDEN, config.mlp_hidden as u64);
    kv.u64(keys::LAYERS, config.layers as u64);
    kv.u64(keys::WINDOW, config.window as u64);
    kv.u64(keys::STATES, config.states as u64);
    kv.layers(keys::RECURRENT, config.recurrent);
    kv.layers(keys::LINEAR, config.linear);
    kv.string(keys::GATE, if config.gate == GateKind::Fixed { "fixed" } else { "lstm" });
    let layout = match config.layout {
        StateLayout::Skip => "skip",
        StateLayout::Single => "single",
        StateLayout::Dual => "dual",
    };
    kv.string(keys::STATE_LAYOUT, layout);
    kv.bool(keys::FEEDBACK, config.feedback);
    kv.bool(keys::ABS_ATTENTION_SCALE, config.abs_attention_scale);

    let mut out = Vec::with_capacity(data.len() + kv.bytes.len() + 4096);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&GGUF_VERSION.to_le_bytes());
    out.extend_from_slice(&(placed.tensors().count() as u64).to_le_bytes());
    out.extend_from_slice(&kv.count.to_le_bytes());
    out.extend_from_slice(&kv.bytes);
    for tensor in placed.tensors() {
        let spec = tensor.spec;
        let mut name = alloc::string::String::new();
        // Writing into a String cannot fail.
        let _ = core::fmt::write(&mut name, format_args!("{}", spec.param));
        string(&mut out, &name);
        let (dims, n_dims) = dims_of(&tensor);
        out.extend_from_slice(&(n_dims as u32).to_le_bytes());
        for d in &dims[..n_dims] {
            out.extend_from_slice(&d.to_le_bytes());
        }
        out.extend_from_slice(&tensor_type_of(tensor.ty).to_le_bytes());
        out.extend_from_slice(&(tensor.offset as u64).to_le_bytes());
    }
    let data_offset = align_up(out.len(), alignment).unwrap_or(out.len());
    out.resize(data_offset, 0);
    out.extend_from_slice(&data);
    Ok(out)
}

fn string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// The metadata table being written.
#[derive(Default)]
struct Kv {
    bytes: Vec<u8>,
    count: u64,
}

impl Kv {
    fn key(&mut self, key: &str, ty: u32) {
        string(&mut self.bytes, key);
        self.bytes.extend_from_slice(&ty.to_le_bytes());
        self.count += 1;
    }
    fn string(&mut self, key: &str, value: &str) {
        self.key(key, value_type::STRING);
        string(&mut self.bytes, value);
    }
    fn u32(&mut self, key: &str, value: u32) {
        self.key(key, value_type::UINT32);
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }
    fn u64(&mut self, key: &str, value: u64) {
        self.key(key, value_type::UINT64);
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }
    fn bool(&mut self, key: &str, value: bool) {
        self.key(key, value_type::BOOL);
        self.bytes.push(value as u8);
    }
    fn layers(&mut self, key: &str, set: LayerSet) {
        self.key(key, value_type::ARRAY);
        self.bytes.extend_from_slice(&value_type::UINT32.to_le_bytes());
        self.bytes.extend_from_slice(&(set.len() as u64).to_le_bytes());
        for layer in set.iter() {
            self.bytes.extend_from_slice(&(layer as u32).to_le_bytes());
        }
    }
}
