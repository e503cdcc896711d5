//! The metadata keys of a brt model file and the tensor type codes it uses.
//!
//! Keys follow GGUF's naming: `general.*` for what every GGUF reader knows, and the
//! architecture's own namespace (`brt.*`) for the configuration.
//!
//! Every metadata key of a brt model file is in one of the two:
//!
//! ```
//! let file = brt_gguf::ModelFile::parse(brt_gguf::include_model!("../tests/data/plain.gguf"))?;
//! assert!(file.metadata().all(|(key, _)| key.starts_with("general.") || key.starts_with("brt.")));
//! # Ok::<(), brt_gguf::GgufError>(())
//! ```

/// The architecture (`"brt"`).
///
/// GGUF's key for the architecture, under which every brt model file says `brt`:
///
/// ```
/// use brt_gguf::{keys, Value};
/// # let file = brt_gguf::ModelFile::parse(brt_gguf::include_model!("../tests/data/plain.gguf"))?;
/// let value = file.metadata().find(|&(key, _)| key == keys::ARCHITECTURE).map(|(_, v)| v);
/// assert_eq!(keys::ARCHITECTURE, "general.architecture");
/// assert_eq!(value, Some(Value::Str("brt")));
/// # Ok::<(), brt_gguf::GgufError>(())
/// ```
pub const ARCHITECTURE: &str = "general.architecture";
/// The model's name (optional).
///
/// GGUF's key for the model's name, which [`crate::ModelFile::name`] returns:
///
/// ```
/// use brt_gguf::{keys, Value};
/// # let file = brt_gguf::ModelFile::parse(brt_gguf::include_model!("../tests/data/plain.gguf"))?;
/// let value = file.metadata().find(|&(key, _)| key == keys::NAME).map(|(_, v)| v);
/// assert_eq!(keys::NAME, "general.name");
/// assert_eq!(value, Some(Value::Str("plain")));
/// assert_eq!(file.name(), Some("plain"));
/// # Ok::<(), brt_gguf::GgufError>(())
/// ```
pub const NAME: &str = "general.name";
/// The tokenizer the model was trained with (optional; brt's tokenizer
/// identity: `bytes`, or `tokenizer.json:` and a hash of its vocabulary).
///
/// A model written with [`crate::write_tagged`] names its tokenizer under this key:
///
/// ```
/// use brt_core::{Config, WeightData, WeightDtype, WeightLayout};
/// use brt_gguf::{keys, Value};
/// let config = Config::plain(16, 8, 2, 4, 16, 2, 4);
/// let values = vec![0.5f32; WeightLayout::new(&config)?.len()];
/// let tokenizer = Some("bytes");
/// let bytes = brt_gguf::write_tagged(&config, None, tokenizer, WeightData::F32(&values), WeightDtype::F32)?;
/// // `file`: `bytes` read back.
/// # let mut aligned = vec![0u64; bytes.len().div_ceil(8)];
/// # bytemuck::cast_slice_mut::<u64, u8>(&mut aligned)[..bytes.len()].copy_from_slice(&bytes);
/// # let file = brt_gguf::ModelFile::parse(&bytemuck::cast_slice(&aligned)[..bytes.len()])?;
/// let value = file.metadata().find(|&(key, _)| key == keys::TOKENIZER).map(|(_, v)| v);
/// assert_eq!(keys::TOKENIZER, "brt.tokenizer");
/// assert_eq!(value, Some(Value::Str("bytes")));
/// assert_eq!(file.tokenizer(), Some("bytes"));
/// # Ok::<(), brt_gguf::GgufError>(())
/// ```
pub const TOKENIZER: &str = "brt.tokenizer";
/// Alignment of the tensor data in bytes (GGUF's default is 32 when absent).
///
/// GGUF's key for the alignment, which brt writes as the default:
///
/// ```
/// use brt_gguf::{keys, Value};
/// # let file = brt_gguf::ModelFile::parse(brt_gguf::include_model!("../tests/data/plain.gguf"))?;
/// let value = file.metadata().find(|&(key, _)| key == keys::ALIGNMENT).map(|(_, v)| v);
/// assert_eq!(keys::ALIGNMENT, "general.alignment");
/// assert_eq!(value, Some(Value::Uint(brt_gguf::DEFAULT_ALIGNMENT as u64)));
/// assert_eq!(file.alignment(), brt_gguf::DEFAULT_ALIGNMENT);
/// # Ok::<(), brt_gguf::GgufError>(())
/// ```
pub const ALIGNMENT: &str = "general.alignment";
/// The brt file format version.
///
/// A file from this brt's writer holds [`crate::FORMAT_VERSION`] under this key:
///
/// ```
/// use brt_gguf::{keys, Value};
/// # let file = brt_gguf::ModelFile::parse(brt_gguf::include_model!("../tests/data/plain.gguf"))?;
/// let value = file.metadata().find(|&(key, _)| key == keys::FORMAT_VERSION).map(|(_, v)| v);
/// assert_eq!(keys::FORMAT_VERSION, "brt.format_version");
/// assert_eq!(value, Some(Value::Uint(brt_gguf::FORMAT_VERSION.into())));
/// # Ok::<(), brt_gguf::GgufError>(())
/// ```
pub const FORMAT_VERSION: &str = "brt.format_version";
/// CRC-32 (IEEE) of the tensor data section: from its first byte to the end of
/// the last tensor, gaps included.
///
/// The value under this key is the CRC-32 of the tensor data:
///
/// ```
/// use brt_gguf::{keys, Value};
/// # let file = brt_gguf::ModelFile::parse(brt_gguf::include_model!("../tests/data/plain.gguf"))?;
/// let value = file.metadata().find(|&(key, _)| key == keys::DATA_CRC32).map(|(_, v)| v);
/// assert_eq!(keys::DATA_CRC32, "brt.data_crc32");
/// assert_eq!(value, Some(Value::Uint(crc32fast::hash(file.weight_bytes()).into())));
/// # Ok::<(), brt_gguf::GgufError>(())
/// ```
pub const DATA_CRC32: &str = "brt.data_crc32";
/// Vocabulary size `V`.
///
/// The key holds the configuration's vocabulary size (`Config::vocab`):
///
/// ```
/// use brt_gguf::{keys, Value};
/// # let file = brt_gguf::ModelFile::parse(brt_gguf::include_model!("../tests/data/plain.gguf"))?;
/// let value = file.metadata().find(|&(key, _)| key == keys::VOCAB).map(|(_, v)| v);
/// assert_eq!(keys::VOCAB, "brt.vocab_size");
/// assert_eq!(value, Some(Value::Uint(file.config().vocab as u64)));
/// # Ok::<(), brt_gguf::GgufError>(())
/// ```
pub const VOCAB: &str = "brt.vocab_size";
/// Model width `d`.
///
/// The key holds the configuration's model width (`Config::d_model`):
///
/// ```
/// use brt_gguf::{keys, Value};
/// # let file = brt_gguf::ModelFile::parse(brt_gguf::include_model!("../tests/data/plain.gguf"))?;
/// let value = file.metadata().find(|&(key, _)| key == keys::D_MODEL).map(|(_, v)| v);
/// assert_eq!(keys::D_MODEL, "brt.embedding_length");
/// assert_eq!(value, Some(Value::Uint(file.config().d_model as u64)));
/// # Ok::<(), brt_gguf::GgufError>(())
/// ```
pub const D_MODEL: &str = "brt.embedding_length";
/// Attention heads `H`.
///
/// The key holds the configuration's number of heads (`Config::heads`):
///
/// ```
/// use brt_gguf::{keys, Value};
/// # let file = brt_gguf::ModelFile::parse(brt_gguf::include_model!("../tests/data/plain.gguf"))?;
/// let value = file.metadata().find(|&(key, _)| key == keys::HEADS).map(|(_, v)| v);
/// assert_eq!(keys::HEADS, "brt.attention.head_count");
/// assert_eq!(value, Some(Value::Uint(file.config().heads as u64)));
/// # Ok::<(), brt_gguf::GgufError>(())
/// ```
pub const HEADS: &str = "brt.attention.head_count";
/// Head width `dh`.
///
/// The key holds the configuration's head width (`Config::head_dim`):
///
/// ```
/// use brt_gguf::{keys, Value};
/// # let file = brt_gguf::ModelFile::parse(brt_gguf::include_model!("../tests/data/plain.gguf"))?;
/// let value = file.metadata().find(|&(key, _)| key == keys::HEAD_DIM).map(|(_, v)| v);
/// assert_eq!(keys::HEAD_DIM, "brt.attention.key_length");
/// assert_eq!(value, Some(Value::Uint(file.config().head_dim as u64)));
/// # Ok::<(), brt_gguf::GgufError>(())
/// ```
pub const HEAD_DIM: &str = "brt.attention.key_length";
/// MLP hidden width.
///
/// The key holds the configuration's MLP hidden width (`Config::mlp_hidden`):
///
/// ```
/// use brt_gguf::{keys, Value};
/// # let file = brt_gguf::ModelFile::parse(brt_gguf::include_model!("../tests/data/plain.gguf"))?;
/// let value = file.metadata().find(|&(key, _)| key == keys::MLP_HIDDEN).map(|(_, v)| v);
/// assert_eq!(keys::MLP_HIDDEN, "brt.feed_forward_length");
/// assert_eq!(value, Some(Value::Uint(file.config().mlp_hidden as u64)));
/// # Ok::<(), brt_gguf::GgufError>(())
/// ```
pub const MLP_HIDDEN: &str = "brt.feed_forward_length";
/// Number of layers.
///
/// The key holds the configuration's number of layers (`Config::layers`):
///
/// ```
/// use brt_gguf::{keys, Value};
/// # let file = brt_gguf::ModelFile::parse(brt_gguf::include_model!("../tests/data/plain.gguf"))?;
/// let value = file.metadata().find(|&(key, _)| key == keys::LAYERS).map(|(_, v)| v);
/// assert_eq!(keys::LAYERS, "brt.block_count");
/// assert_eq!(value, Some(Value::Uint(file.config().layers as u64)));
/// # Ok::<(), brt_gguf::GgufError>(())
/// ```
pub const LAYERS: &str = "brt.block_count";
/// Block length = attention window `W`.
///
/// The key holds the configuration's window (`Config::window`):
///
/// ```
/// use brt_gguf::{keys, Value};
/// # let file = brt_gguf::ModelFile::parse(brt_gguf::include_model!("../tests/data/plain.gguf"))?;
/// let value = file.metadata().find(|&(key, _)| key == keys::WINDOW).map(|(_, v)| v);
/// assert_eq!(keys::WINDOW, "brt.window");
/// assert_eq!(value, Some(Value::Uint(file.config().window as u64)));
/// # Ok::<(), brt_gguf::GgufError>(())
/// ```
pub const WINDOW: &str = "brt.window";
/// Number of state vectors `S`.
///
/// The key holds the number of state vectors of a model with a recurrent layer:
///
/// ```
/// use brt_core::{Config, LayerSet, WeightData, WeightLayout};
/// use brt_gguf::{keys, Value};
/// let config = Config {
///     states: 2,
///     recurrent: LayerSet::EMPTY.with(1),
///     ..Config::plain(16, 8, 2, 4, 16, 2, 4)
/// };
/// // `file`: the model file `brt_gguf::write` makes for `config`, read back.
/// # let values = vec![0.5f32; WeightLayout::new(&config)?.len()];
/// # let bytes = brt_gguf::write(&config, None, WeightData::F32(&values))?;
/// # let mut aligned = vec![0u64; bytes.len().div_ceil(8)];
/// # bytemuck::cast_slice_mut::<u64, u8>(&mut aligned)[..bytes.len()].copy_from_slice(&bytes);
/// # let file = brt_gguf::ModelFile::parse(&bytemuck::cast_slice(&aligned)[..bytes.len()])?;
/// let value = file.metadata().find(|&(key, _)| key == keys::STATES).map(|(_, v)| v);
/// assert_eq!(keys::STATES, "brt.state_count");
/// assert_eq!(value, Some(Value::Uint(config.states as u64)));
/// # Ok::<(), brt_gguf::GgufError>(())
/// ```
pub const STATES: &str = "brt.state_count";
/// The recurrent layers (array of integers).
///
/// The key holds the indices of the recurrent layers, here layer 1:
///
/// ```
/// use brt_core::{Config, LayerSet, WeightData, WeightLayout};
/// use brt_gguf::{keys, Value};
/// let config = Config {
///     states: 2,
///     recurrent: LayerSet::EMPTY.with(1),
///     ..Config::plain(16, 8, 2, 4, 16, 2, 4)
/// };
/// // `file`: the model file `brt_gguf::write` makes for `config`, read back.
/// # let values = vec![0.5f32; WeightLayout::new(&config)?.len()];
/// # let bytes = brt_gguf::write(&config, None, WeightData::F32(&values))?;
/// # let mut aligned = vec![0u64; bytes.len().div_ceil(8)];
/// # bytemuck::cast_slice_mut::<u64, u8>(&mut aligned)[..bytes.len()].copy_from_slice(&bytes);
/// # let file = brt_gguf::ModelFile::parse(&bytemuck::cast_slice(&aligned)[..bytes.len()])?;
/// let value = file.metadata().find(|&(key, _)| key == keys::RECURRENT).map(|(_, v)| v);
/// let Some(Value::Array(layers)) = value else { unreachable!() };
/// assert_eq!(keys::RECURRENT, "brt.recurrent_layers");
/// assert!(layers.iter().map(|v| v.as_u64()).eq(config.recurrent.iter().map(|l| Some(l as u64))));
/// assert_eq!(layers.len(), 1);
/// # Ok::<(), brt_gguf::GgufError>(())
/// ```
pub const RECURRENT: &str = "brt.recurrent_layers";
/// The linear-attention layers (array of integers).
///
/// The key holds the indices of the linear-attention layers, here layer 0:
///
/// ```
/// use brt_core::{Config, LayerSet, WeightData, WeightLayout};
/// use brt_gguf::{keys, Value};
/// let config = Config {
///     states: 2,
///     recurrent: LayerSet::EMPTY.with(1),
///     linear: LayerSet::EMPTY.with(0),
///     ..Config::plain(16, 8, 2, 4, 16, 2, 4)
/// };
/// // `file`: the model file `brt_gguf::write` makes for `config`, read back.
/// # let values = vec![0.5f32; WeightLayout::new(&config)?.len()];
/// # let bytes = brt_gguf::write(&config, None, WeightData::F32(&values))?;
/// # let mut aligned = vec![0u64; bytes.len().div_ceil(8)];
/// # bytemuck::cast_slice_mut::<u64, u8>(&mut aligned)[..bytes.len()].copy_from_slice(&bytes);
/// # let file = brt_gguf::ModelFile::parse(&bytemuck::cast_slice(&aligned)[..bytes.len()])?;
/// let value = file.metadata().find(|&(key, _)| key == keys::LINEAR).map(|(_, v)| v);
/// let Some(Value::Array(layers)) = value else { unreachable!() };
/// assert_eq!(keys::LINEAR, "brt.linear_layers");
/// assert!(layers.iter().map(|v| v.as_u64()).eq(config.linear.iter().map(|l| Some(l as u64))));
/// assert_eq!(layers.len(), 1);
/// # Ok::<(), brt_gguf::GgufError>(())
/// ```
pub const LINEAR: &str = "brt.linear_layers";
/// The gate: `"fixed"` or `"lstm"`.
///
/// A model with LSTM gates says `lstm` under this key:
///
/// ```
/// use brt_core::{Config, GateKind, LayerSet, WeightData, WeightLayout};
/// use brt_gguf::{keys, Value};
/// let config = Config {
///     states: 2,
///     recurrent: LayerSet::EMPTY.with(1),
///     gate: GateKind::Lstm,
///     ..Config::plain(16, 8, 2, 4, 16, 2, 4)
/// };
/// // `file`: the model file `brt_gguf::write` makes for `config`, read back.
/// # let values = vec![0.5f32; WeightLayout::new(&config)?.len()];
/// # let bytes = brt_gguf::write(&config, None, WeightData::F32(&values))?;
/// # let mut aligned = vec![0u64; bytes.len().div_ceil(8)];
/// # bytemuck::cast_slice_mut::<u64, u8>(&mut aligned)[..bytes.len()].copy_from_slice(&bytes);
/// # let file = brt_gguf::ModelFile::parse(&bytemuck::cast_slice(&aligned)[..bytes.len()])?;
/// let value = file.metadata().find(|&(key, _)| key == keys::GATE).map(|(_, v)| v);
/// assert_eq!(keys::GATE, "brt.gate");
/// assert_eq!(value, Some(Value::Str("lstm")));
/// assert_eq!(file.config().gate, GateKind::Lstm);
/// # Ok::<(), brt_gguf::GgufError>(())
/// ```
pub const GATE: &str = "brt.gate";
/// The state layout: `"skip"`, `"single"` or `"dual"`.
///
/// A model with the dual state layout says `dual` under this key:
///
/// ```
/// use brt_core::{Config, LayerSet, StateLayout, WeightData, WeightLayout};
/// use brt_gguf::{keys, Value};
/// let config = Config {
///     states: 2,
///     recurrent: LayerSet::EMPTY.with(1),
///     layout: StateLayout::Dual,
///     ..Config::plain(16, 8, 2, 4, 16, 2, 4)
/// };
/// // `file`: the model file `brt_gguf::write` makes for `config`, read back.
/// # let values = vec![0.5f32; WeightLayout::new(&config)?.len()];
/// # let bytes = brt_gguf::write(&config, None, WeightData::F32(&values))?;
/// # let mut aligned = vec![0u64; bytes.len().div_ceil(8)];
/// # bytemuck::cast_slice_mut::<u64, u8>(&mut aligned)[..bytes.len()].copy_from_slice(&bytes);
/// # let file = brt_gguf::ModelFile::parse(&bytemuck::cast_slice(&aligned)[..bytes.len()])?;
/// let value = file.metadata().find(|&(key, _)| key == keys::STATE_LAYOUT).map(|(_, v)| v);
/// assert_eq!(keys::STATE_LAYOUT, "brt.state_layout");
/// assert_eq!(value, Some(Value::Str("dual")));
/// assert_eq!(file.config().layout, StateLayout::Dual);
/// # Ok::<(), brt_gguf::GgufError>(())
/// ```
pub const STATE_LAYOUT: &str = "brt.state_layout";
/// Feedback mode (boolean).
///
/// A model in feedback mode holds `true` under this key:
///
/// ```
/// use brt_core::{Config, GateKind, LayerSet, StateLayout, WeightData, WeightLayout};
/// use brt_gguf::{keys, Value};
/// let config = Config {
///     states: 2,
///     recurrent: LayerSet::EMPTY.with(1),
///     gate: GateKind::Lstm,
///     layout: StateLayout::Dual,
///     feedback: true,
///     ..Config::plain(16, 8, 2, 4, 16, 2, 4)
/// };
/// // `file`: the model file `brt_gguf::write` makes for `config`, read back.
/// # let values = vec![0.5f32; WeightLayout::new(&config)?.len()];
/// # let bytes = brt_gguf::write(&config, None, WeightData::F32(&values))?;
/// # let mut aligned = vec![0u64; bytes.len().div_ceil(8)];
/// # bytemuck::cast_slice_mut::<u64, u8>(&mut aligned)[..bytes.len()].copy_from_slice(&bytes);
/// # let file = brt_gguf::ModelFile::parse(&bytemuck::cast_slice(&aligned)[..bytes.len()])?;
/// let value = file.metadata().find(|&(key, _)| key == keys::FEEDBACK).map(|(_, v)| v);
/// assert_eq!(keys::FEEDBACK, "brt.feedback");
/// assert_eq!(value, Some(Value::Bool(true)));
/// assert!(file.config().feedback);
/// # Ok::<(), brt_gguf::GgufError>(())
/// ```
pub const FEEDBACK: &str = "brt.feedback";
/// Learned attention scales used as `abs(a)` (boolean).
///
/// A model that uses `abs(a)` for its attention scales holds `true` under this key:
///
/// ```
/// use brt_core::{Config, WeightData, WeightLayout};
/// use brt_gguf::{keys, Value};
/// let config = Config { abs_attention_scale: true, ..Config::plain(16, 8, 2, 4, 16, 2, 4) };
/// // `file`: the model file `brt_gguf::write` makes for `config`, read back.
/// # let values = vec![0.5f32; WeightLayout::new(&config)?.len()];
/// # let bytes = brt_gguf::write(&config, None, WeightData::F32(&values))?;
/// # let mut aligned = vec![0u64; bytes.len().div_ceil(8)];
/// # bytemuck::cast_slice_mut::<u64, u8>(&mut aligned)[..bytes.len()].copy_from_slice(&bytes);
/// # let file = brt_gguf::ModelFile::parse(&bytemuck::cast_slice(&aligned)[..bytes.len()])?;
/// let value = file.metadata().find(|&(key, _)| key == keys::ABS_ATTENTION_SCALE).map(|(_, v)| v);
/// assert_eq!(keys::ABS_ATTENTION_SCALE, "brt.abs_attention_scale");
/// assert_eq!(value, Some(Value::Bool(true)));
/// assert!(file.config().abs_attention_scale);
/// # Ok::<(), brt_gguf::GgufError>(())
/// ```
pub const ABS_ATTENTION_SCALE: &str = "brt.abs_attention_scale";

/// GGML tensor type codes (the `ggml_type` enumeration) of the storage types brt
/// writes.
///
/// The reader refuses a tensor of any other type, here GGML's Q4_0 (2):
///
/// ```
/// let plain = brt_gguf::include_model!("../tests/data/plain.gguf");
/// // The embedding's entry in the tensor table: `embed`, 2 dimensions, the dimensions, the type.
/// let name = [&5u64.to_le_bytes()[..], b"embed"].concat();
/// let at = plain.windows(name.len()).position(|w| w == name).unwrap() + name.len() + 4 + 2 * 8;
/// assert_eq!(plain[at..at + 4], brt_gguf::keys::tensor_type::F32.to_le_bytes());
/// let mut bytes = plain.to_vec();
/// bytes[at..at + 4].copy_from_slice(&2u32.to_le_bytes());
/// let error = brt_gguf::ModelFile::parse(&bytes).unwrap_err();
/// assert!(matches!(error, brt_gguf::GgufError::Tensor { index: 0, .. }));
/// ```
pub mod tensor_type {
    /// IEEE single precision.
    ///
    /// The tensors of an f32 model file have this type code:
    ///
    /// ```
    /// use brt_core::{Param, TensorType};
    /// use brt_gguf::keys::tensor_type;
    /// assert_eq!(tensor_type::F32, 0); // GGML_TYPE_F32 in ggml
    /// # /// The GGUF type code in the tensor table entry of `param` in `file`.
    /// # fn type_code(file: &[u8], param: brt_core::Param) -> u32 {
    /// #     // An entry: the name (a u64 length, the bytes), the number of dimensions
    /// #     // (u32), the dimensions (u64 each), the type (u32).
    /// #     let name = param.to_string();
    /// #     let entry = [&(name.len() as u64).to_le_bytes()[..], name.as_bytes()].concat();
    /// #     let at = file.windows(entry.len()).position(|w| w == entry).unwrap() + entry.len();
    /// #     let dims = u32::from_le_bytes(file[at..at + 4].try_into().unwrap()) as usize;
    /// #     let at = at + 4 + 8 * dims;
    /// #     u32::from_le_bytes(file[at..at + 4].try_into().unwrap())
    /// # }
    /// let file = brt_gguf::ModelFile::parse(brt_gguf::include_model!("../tests/data/plain.gguf"))?;
    /// assert_eq!(file.tensor(Param::Embedding).unwrap().0.ty, TensorType::F32);
    /// assert_eq!(type_code(file.bytes(), Param::Embedding), tensor_type::F32);
    /// # Ok::<(), brt_gguf::GgufError>(())
    /// ```
    pub const F32: u32 = 0;
    /// IEEE half precision.
    ///
    /// The tensors of an f16 model file have this type code:
    ///
    /// ```
    /// use brt_core::{Config, Param, WeightData, WeightDtype, WeightLayout};
    /// use brt_gguf::keys::tensor_type;
    /// assert_eq!(tensor_type::F16, 1); // GGML_TYPE_F16 in ggml
    /// # /// The GGUF type code in the tensor table entry of `param` in `file`.
    /// # fn type_code(file: &[u8], param: brt_core::Param) -> u32 {
    /// #     // An entry: the name (a u64 length, the bytes), the number of dimensions
    /// #     // (u32), the dimensions (u64 each), the type (u32).
    /// #     let name = param.to_string();
    /// #     let entry = [&(name.len() as u64).to_le_bytes()[..], name.as_bytes()].concat();
    /// #     let at = file.windows(entry.len()).position(|w| w == entry).unwrap() + entry.len();
    /// #     let dims = u32::from_le_bytes(file[at..at + 4].try_into().unwrap()) as usize;
    /// #     let at = at + 4 + 8 * dims;
    /// #     u32::from_le_bytes(file[at..at + 4].try_into().unwrap())
    /// # }
    /// let config = Config::plain(16, 32, 1, 32, 32, 1, 4);
    /// let values = vec![0.5f32; WeightLayout::new(&config)?.len()];
    /// let bytes = brt_gguf::write_as(&config, None, WeightData::F32(&values), WeightDtype::F16)?;
    /// assert_eq!(type_code(&bytes, Param::Embedding), tensor_type::F16);
    /// assert_eq!(type_code(&bytes, Param::FinalNorm), tensor_type::F16);
    /// # Ok::<(), brt_gguf::GgufError>(())
    /// ```
    pub const F16: u32 = 1;
    /// bfloat16.
    ///
    /// The tensors of a bf16 model file have this type code:
    ///
    /// ```
    /// use brt_core::{Config, Param, WeightData, WeightDtype, WeightLayout};
    /// use brt_gguf::keys::tensor_type;
    /// assert_eq!(tensor_type::BF16, 30); // GGML_TYPE_BF16 in ggml
    /// # /// The GGUF type code in the tensor table entry of `param` in `file`.
    /// # fn type_code(file: &[u8], param: brt_core::Param) -> u32 {
    /// #     // An entry: the name (a u64 length, the bytes), the number of dimensions
    /// #     // (u32), the dimensions (u64 each), the type (u32).
    /// #     let name = param.to_string();
    /// #     let entry = [&(name.len() as u64).to_le_bytes()[..], name.as_bytes()].concat();
    /// #     let at = file.windows(entry.len()).position(|w| w == entry).unwrap() + entry.len();
    /// #     let dims = u32::from_le_bytes(file[at..at + 4].try_into().unwrap()) as usize;
    /// #     let at = at + 4 + 8 * dims;
    /// #     u32::from_le_bytes(file[at..at + 4].try_into().unwrap())
    /// # }
    /// let config = Config::plain(16, 32, 1, 32, 32, 1, 4);
    /// let values = vec![0.5f32; WeightLayout::new(&config)?.len()];
    /// let bytes = brt_gguf::write_as(&config, None, WeightData::F32(&values), WeightDtype::Bf16)?;
    /// assert_eq!(type_code(&bytes, Param::Embedding), tensor_type::BF16);
    /// assert_eq!(type_code(&bytes, Param::FinalNorm), tensor_type::BF16);
    /// # Ok::<(), brt_gguf::GgufError>(())
    /// ```
    pub const BF16: u32 = 30;
    /// GGML's Q8_0: blocks of 32 signed bytes with one f16 scale.
    ///
    /// In an 8-bit model file, the matrices whose rows are whole blocks of 32 have this
    /// type code (vectors stay f32):
    ///
    /// ```
    /// use brt_core::{Config, LayerParam, Param, WeightData, WeightDtype, WeightLayout};
    /// use brt_gguf::keys::tensor_type;
    /// assert_eq!(tensor_type::Q8_0, 8); // GGML_TYPE_Q8_0 in ggml
    /// # /// The GGUF type code in the tensor table entry of `param` in `file`.
    /// # fn type_code(file: &[u8], param: brt_core::Param) -> u32 {
    /// #     // An entry: the name (a u64 length, the bytes), the number of dimensions
    /// #     // (u32), the dimensions (u64 each), the type (u32).
    /// #     let name = param.to_string();
    /// #     let entry = [&(name.len() as u64).to_le_bytes()[..], name.as_bytes()].concat();
    /// #     let at = file.windows(entry.len()).position(|w| w == entry).unwrap() + entry.len();
    /// #     let dims = u32::from_le_bytes(file[at..at + 4].try_into().unwrap()) as usize;
    /// #     let at = at + 4 + 8 * dims;
    /// #     u32::from_le_bytes(file[at..at + 4].try_into().unwrap())
    /// # }
    /// let config = Config::plain(16, 32, 1, 32, 32, 1, 4);
    /// let values = vec![0.5f32; WeightLayout::new(&config)?.len()];
    /// let bytes = brt_gguf::write_as(&config, None, WeightData::F32(&values), WeightDtype::Q8_0)?;
    /// let mlp_in = Param::Layer(0, LayerParam::MlpIn); // 32 x 32
    /// assert_eq!(type_code(&bytes, mlp_in), tensor_type::Q8_0);
    /// assert_eq!(type_code(&bytes, Param::FinalNorm), tensor_type::F32);
    /// # Ok::<(), brt_gguf::GgufError>(())
    /// ```
    pub const Q8_0: u32 = 8;
}
