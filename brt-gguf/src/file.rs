//! The reader: [`ModelFile::parse`] checks a whole model file and then hands out
//! its weights where they lie.

use crate::error::GgufError;
use crate::keys::{self, tensor_type};
use crate::reader::{Cursor, Value};
use crate::{DEFAULT_ALIGNMENT, FORMAT_VERSION, GGUF_VERSION, MAGIC, MAX_ALIGNMENT, OLDEST_FORMAT_VERSION};
use brt_core::encoding::{q8_0_scale, Q8_0_BLOCK_BYTES};
use brt_core::half::{bf16, f16};
use brt_core::{
    ByteLayout, Config, GateKind, LayerSet, Param, StateLayout, StoredTensor, TensorType, WeightData, WeightDtype,
    WeightLayout, MAX_LAYERS,
};

/// A checked brt model file, borrowing its bytes.
///
/// Everything was validated by [`ModelFile::parse`]: the structure, every size
/// against the bytes present, the configuration, every tensor's name, shape, type
/// and place, the checksum, that every value is finite and that the weights are
/// aligned in memory for their type.
///
/// A file whose tensor data changed after it was written is refused:
///
/// ```
/// use brt_gguf::{GgufError, ModelFile};
/// let plain = brt_gguf::include_model!("../tests/data/plain.gguf");
/// let file = ModelFile::parse(plain)?;
/// // A copy at an 8-byte aligned address, for the weights to be used in place.
/// let mut words = vec![0u64; plain.len().div_ceil(8)];
/// let bytes = &mut bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..plain.len()];
/// bytes.copy_from_slice(plain);
/// assert!(ModelFile::parse(bytes).is_ok());
/// bytes[file.data_offset()] ^= 1;
/// let error = ModelFile::parse(bytes).unwrap_err();
/// assert!(matches!(error, GgufError::Checksum { stored, .. } if stored == file.crc32()));
/// # Ok::<(), GgufError>(())
/// ```
#[derive(Clone, Copy)]
pub struct ModelFile<'a> {
    bytes: &'a [u8],
    config: Config,
    layout: ByteLayout,
    data_offset: usize,
    crc32: u32,
    format_version: u32,
    name: Option<&'a str>,
    tokenizer: Option<&'a str>,
    metadata_start: usize,
    metadata_count: u64,
}

impl core::fmt::Debug for ModelFile<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ModelFile")
            .field("config", &self.config)
            .field("dtype", &self.layout.dtype())
            .field("bytes", &self.bytes.len())
            .field("data_offset", &self.data_offset)
            .field("crc32", &self.crc32)
            .finish_non_exhaustive()
    }
}

/// The metadata brt reads, gathered in one pass over the key-value table.
#[derive(Default)]
struct Fields<'a> {
    values: [Option<Value<'a>>; KNOWN.len()],
}

/// Every key brt reads, in the order of [`Fields::values`].
const KNOWN: [&str; 20] = [
    keys::ARCHITECTURE,
    keys::NAME,
    keys::TOKENIZER,
    keys::ALIGNMENT,
    keys::FORMAT_VERSION,
    keys::DATA_CRC32,
    keys::VOCAB,
    keys::D_MODEL,
    keys::HEADS,
    keys::HEAD_DIM,
    keys::MLP_HIDDEN,
    keys::LAYERS,
    keys::WINDOW,
    keys::STATES,
    keys::RECURRENT,
    keys::LINEAR,
    keys::GATE,
    keys::STATE_LAYOUT,
    keys::FEEDBACK,
    keys::ABS_ATTENTION_SCALE,
];

impl<'a> Fields<'a> {
    fn slot(key: &str) -> Option<usize> {
        KNOWN.iter().position(|&k| k == key)
    }

    fn get(&self, key: &'static str) -> Option<Value<'a>> {
        Fields::slot(key).and_then(|i| self.values[i])
    }

    fn require(&self, key: &'static str) -> Result<Value<'a>, GgufError> {
        self.get(key).ok_or(GgufError::Metadata { key, problem: "missing" })
    }

    fn size(&self, key: &'static str) -> Result<usize, GgufError> {
        let value = self.require(key)?;
        let n = value.as_u64().ok_or(GgufError::Metadata { key, problem: "not a non-negative integer" })?;
        usize::try_from(n).map_err(|_| GgufError::Metadata { key, problem: "too large for this machine" })
    }

    fn u32(&self, key: &'static str) -> Result<u32, GgufError> {
        u32::try_from(self.size(key)?).map_err(|_| GgufError::Metadata { key, problem: "larger than 32 bits" })
    }

    fn flag(&self, key: &'static str) -> Result<bool, GgufError> {
        match self.get(key) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(b),
            Some(_) => Err(GgufError::Metadata { key, problem: "not a boolean" }),
        }
    }

    fn text(&self, key: &'static str) -> Result<&'a str, GgufError> {
        match self.require(key)? {
            Value::Str(s) => Ok(s),
            _ => Err(GgufError::Metadata { key, problem: "not a string" }),
        }
    }

    fn layers(&self, key: &'static str, layers: usize) -> Result<LayerSet, GgufError> {
        let array = match self.get(key) {
            None => return Ok(LayerSet::EMPTY),
            Some(Value::Array(a)) => a,
            Some(_) => return Err(GgufError::Metadata { key, problem: "not an array of layer indices" }),
        };
        let mut set = LayerSet::EMPTY;
        let mut count = 0u64;
        for value in array.iter() {
            let index = value.as_u64().ok_or(GgufError::Metadata { key, problem: "not an array of layer indices" })?;
            if index >= layers as u64 || index >= MAX_LAYERS as u64 {
                return Err(GgufError::Metadata { key, problem: "a layer index is not below the number of layers" });
            }
            set = set.with(index as usize);
            count += 1;
        }
        if count != array.len() {
            return Err(GgufError::Metadata { key, problem: "not an array of layer indices" });
        }
        Ok(set)
    }

    fn config(&self) -> Result<Config, GgufError> {
        let layers = self.size(keys::LAYERS)?;
        let gate = match self.text(keys::GATE)? {
            "fixed" => GateKind::Fixed,
            "lstm" => GateKind::Lstm,
            _ => return Err(GgufError::Metadata { key: keys::GATE, problem: "neither `fixed` nor `lstm`" }),
        };
        let layout = match self.text(keys::STATE_LAYOUT)? {
            "skip" => StateLayout::Skip,
            "single" => StateLayout::Single,
            "dual" => StateLayout::Dual,
            _ => {
                return Err(GgufError::Metadata { key: keys::STATE_LAYOUT, problem: "not `skip`, `single` or `dual`" })
            }
        };
        let config = Config {
            vocab: self.size(keys::VOCAB)?,
            d_model: self.size(keys::D_MODEL)?,
            heads: self.size(keys::HEADS)?,
            head_dim: self.size(keys::HEAD_DIM)?,
            mlp_hidden: self.size(keys::MLP_HIDDEN)?,
            layers,
            window: self.size(keys::WINDOW)?,
            states: self.size(keys::STATES)?,
            recurrent: self.layers(keys::RECURRENT, layers)?,
            linear: self.layers(keys::LINEAR, layers)?,
            gate,
            layout,
            feedback: self.flag(keys::FEEDBACK)?,
            abs_attention_scale: self.flag(keys::ABS_ATTENTION_SCALE)?,
        };
        config.validate()?;
        Ok(config)
    }
}

/// The GGUF tensor type of a tensor encoding.
pub(crate) const fn tensor_type_of(ty: TensorType) -> u32 {
    match ty {
        TensorType::F32 => tensor_type::F32,
        TensorType::F16 => tensor_type::F16,
        TensorType::Bf16 => tensor_type::BF16,
        TensorType::Q8_0 => tensor_type::Q8_0,
    }
}

/// The model storage type a tensor of this GGUF type belongs to (a Q8_0 model
/// also has f32 tensors).
fn dtype_of(tensor_type: u32) -> Option<WeightDtype> {
    match tensor_type {
        tensor_type::F32 => Some(WeightDtype::F32),
        tensor_type::F16 => Some(WeightDtype::F16),
        tensor_type::BF16 => Some(WeightDtype::Bf16),
        tensor_type::Q8_0 => Some(WeightDtype::Q8_0),
        _ => None,
    }
}

/// A tensor's GGUF dimensions (innermost first) for a parameter of shape
/// `(rows, cols)`: vectors are 1-D, matrices 2-D, and a Q8_0 kernel, stored
/// transposed, `(cols, rows)` (GGML's `(output, input)` weight).
pub(crate) fn dims_of(tensor: &StoredTensor) -> ([u64; 2], usize) {
    let (rows, cols) = (tensor.spec.span.rows as u64, tensor.spec.span.cols as u64);
    if tensor.spec.param.is_vector() {
        ([cols, 0], 1)
    } else if tensor.is_transposed() {
        ([rows, cols], 2)
    } else {
        ([cols, rows], 2)
    }
}

/// `x` rounded up to a multiple of `align` (a power of two), or `None` on overflow.
pub(crate) fn align_up(x: usize, align: usize) -> Option<usize> {
    Some(x.checked_add(align - 1)? & !(align - 1))
}

impl<'a> ModelFile<'a> {
    /// Reads and checks a whole model file. Never panics; every problem is an
    /// error that says what is wrong.
    ///
    /// ```
    /// // A model file in the program (a mapped file or flash works the same).
    /// let file = brt_gguf::ModelFile::parse(brt_gguf::include_model!("../tests/data/plain.gguf"))?;
    /// assert_eq!(file.config().d_model, 8);
    /// // Cut short, or anything else wrong: an error, never a panic.
    /// let bytes = file.bytes();
    /// assert!(brt_gguf::ModelFile::parse(&bytes[..bytes.len() - 1]).is_err());
    /// # Ok::<(), brt_gguf::GgufError>(())
    /// ```
    pub fn parse(bytes: &'a [u8]) -> Result<ModelFile<'a>, GgufError> {
        if cfg!(target_endian = "big") {
            // The file is little-endian and its weights are used where they lie.
            return Err(GgufError::Malformed { what: "brt model files need a little-endian machine", offset: 0 });
        }
        let mut c = Cursor::new(bytes, 0);
        if c.take(4, "header").ok() != Some(&MAGIC[..]) {
            return Err(GgufError::NotGguf);
        }
        let version = c.u32("header")?;
        if version != GGUF_VERSION {
            return Err(GgufError::UnsupportedVersion { found: version });
        }
        // A tensor description takes at least 24 bytes, a key-value pair 13.
        let tensor_count = c.count("header", 24)?;
        let metadata_count = c.count("header", 13)?;
        let metadata_start = c.offset();

        let mut fields = Fields::default();
        for _ in 0..metadata_count {
            let key = c.string("metadata key")?;
            let ty = c.u32("metadata value type")?;
            let value = c.value(ty, 0)?;
            if let Some(slot) = Fields::slot(key) {
                if fields.values[slot].is_some() {
                    return Err(GgufError::Metadata { key: KNOWN[slot], problem: "appears twice" });
                }
                fields.values[slot] = Some(value);
            }
        }

        match fields.text(keys::ARCHITECTURE)? {
            "brt" => {}
            _ => return Err(GgufError::OtherArchitecture),
        }
        let format_version = fields.u32(keys::FORMAT_VERSION)?;
        if !(OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&format_version) {
            return Err(GgufError::UnsupportedFormatVersion { found: format_version });
        }
        let alignment = match fields.get(keys::ALIGNMENT) {
            None => DEFAULT_ALIGNMENT,
            Some(_) => fields.u32(keys::ALIGNMENT)? as usize,
        };
        if !alignment.is_power_of_two() || !(4..=MAX_ALIGNMENT).contains(&alignment) {
            return Err(GgufError::Metadata {
                key: keys::ALIGNMENT,
                problem: "not a power of two from 4 to 65536 bytes",
            });
        }
        let crc32 = fields.u32(keys::DATA_CRC32)?;
        let name = match fields.get(keys::NAME) {
            None => None,
            Some(_) => Some(fields.text(keys::NAME)?),
        };
        let tokenizer = match fields.get(keys::TOKENIZER) {
            None => None,
            Some(_) => Some(fields.text(keys::TOKENIZER)?),
        };
        let config = fields.config()?;
        let expected = WeightLayout::new(&config)?.params().count();
        if tensor_count != expected as u64 {
            return Err(GgufError::TensorCount { expected, found: tensor_count });
        }

        // The tensor table: the parameters in canonical order, each at the next
        // multiple of the alignment, all of one storage type; a Q8_0 model (any
        // tensor in Q8_0) has its matrices in Q8_0 where their rows are whole
        // blocks and everything else in f32.
        let mut dtype = None;
        let mut table = c.clone();
        for index in 0..expected {
            let info = TensorInfo::read(&mut table)?;
            let ty = dtype_of(info.ty).ok_or(GgufError::Tensor { index, problem: UNKNOWN_TYPE })?;
            if dtype.is_none() || ty == WeightDtype::Q8_0 {
                dtype = Some(ty);
            }
        }
        let dtype = dtype.unwrap_or(WeightDtype::F32);
        if dtype == WeightDtype::Q8_0 && format_version < TRANSPOSED_Q8_0_KERNELS {
            return Err(GgufError::OldQ8_0);
        }
        let layout = ByteLayout::new(&config, dtype, alignment)?;
        for (index, tensor) in layout.tensors().enumerate() {
            let info = TensorInfo::read(&mut c)?;
            let bad = |problem| GgufError::Tensor { index, problem };
            let spec = tensor.spec;
            if Param::from_name(info.name) != Some(spec.param) {
                return Err(bad("not the parameter the configuration has at this place (name)"));
            }
            let (dims, n_dims) = dims_of(&tensor);
            if info.dims[..info.n_dims] != dims[..n_dims] {
                return Err(bad("its shape is not the one the configuration gives this parameter"));
            }
            if info.ty != tensor_type_of(tensor.ty) {
                return Err(bad(if dtype == WeightDtype::Q8_0 {
                    "its storage type is not the one a q8_0 model has for it (q8_0 for matrices whose summed \
                     dimension is whole blocks of 32, f32 for the rest)"
                } else {
                    "its storage type differs from the first tensor's"
                }));
            }
            if info.offset != tensor.offset as u64 {
                return Err(bad("its data is not where the layout puts it (each tensor follows the previous one at the next multiple of the alignment)"));
            }
        }

        let data_offset =
            align_up(c.offset(), alignment).ok_or(GgufError::DataSize { expected: usize::MAX, found: bytes.len() })?;
        let end = data_offset
            .checked_add(layout.len())
            .ok_or(GgufError::DataSize { expected: usize::MAX, found: bytes.len() })?;
        // Writers may pad the last tensor to the alignment too.
        let padded_end = align_up(end, alignment).unwrap_or(end);
        if bytes.len() < end || bytes.len() > padded_end {
            return Err(GgufError::DataSize { expected: end, found: bytes.len() });
        }
        let data = &bytes[data_offset..end];
        let needed = dtype.size().unwrap_or(4);
        if (data.as_ptr() as usize) % needed != 0 {
            return Err(GgufError::Misaligned { needed });
        }
        let computed = crc32fast::hash(data);
        if computed != crc32 {
            return Err(GgufError::Checksum { stored: crc32, computed });
        }
        let file = ModelFile {
            bytes,
            config,
            layout,
            data_offset,
            crc32,
            format_version,
            name,
            tokenizer,
            metadata_start,
            metadata_count,
        };
        for (index, tensor) in layout.tensors().enumerate() {
            if let Some(element) = file.first_non_finite(&tensor) {
                return Err(GgufError::NonFinite { index, element });
            }
        }
        Ok(file)
    }

    /// The index of the first value of `tensor` that is NaN or infinite (for
    /// Q8_0, the first value of the first block whose scale is).
    fn first_non_finite(&self, tensor: &StoredTensor) -> Option<usize> {
        let data = self.tensor_bytes(tensor);
        if tensor.ty == TensorType::Q8_0 {
            let bad = data.chunks_exact(Q8_0_BLOCK_BYTES).position(|block| !q8_0_scale(block).is_finite());
            return bad.map(|block| tensor.param_index(block * brt_core::encoding::Q8_0_BLOCK));
        }
        match tensor_values(tensor.ty, data)? {
            WeightData::F32(v) => v.iter().position(|x| !x.is_finite()),
            WeightData::F16(v) => v.iter().position(|x| !x.is_finite()),
            WeightData::Bf16(v) => v.iter().position(|x| !x.is_finite()),
        }
    }

    /// The bytes of one tensor (its place was checked by `parse`).
    fn tensor_bytes(&self, tensor: &StoredTensor) -> &'a [u8] {
        let start = self.data_offset + tensor.offset;
        self.bytes.get(start..start + tensor.bytes).unwrap_or(&[])
    }

    /// The configuration.
    ///
    /// ```
    /// # let file = brt_gguf::ModelFile::parse(brt_gguf::include_model!("../tests/data/plain.gguf"))?;
    /// assert_eq!(file.config(), &brt_core::Config::plain(19, 8, 2, 3, 12, 2, 4));
    /// # Ok::<(), brt_gguf::GgufError>(())
    /// ```
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// How the weights are stored.
    ///
    /// ```
    /// # let file = brt_gguf::ModelFile::parse(brt_gguf::include_model!("../tests/data/plain.gguf"))?;
    /// assert_eq!(file.dtype(), brt_core::WeightDtype::F32);
    /// # Ok::<(), brt_gguf::GgufError>(())
    /// ```
    pub fn dtype(&self) -> WeightDtype {
        self.layout.dtype()
    }

    /// Where each parameter's values lie in [`ModelFile::weights`]: for f32, f16
    /// and bf16 the aligned layout (every parameter starts at a multiple of the
    /// file's alignment); for Q8_0 the canonical one, whose elements
    /// [`ModelFile::byte_layout`] maps to bytes.
    ///
    /// ```
    /// # let file = brt_gguf::ModelFile::parse(brt_gguf::include_model!("../tests/data/plain.gguf"))?;
    /// // f32 values: every parameter starts at a multiple of 32 bytes.
    /// assert!(file.layout().params().all(|p| p.offset * 4 % file.alignment() == 0));
    /// # Ok::<(), brt_gguf::GgufError>(())
    /// ```
    pub fn layout(&self) -> &WeightLayout {
        self.layout.layout()
    }

    /// Where each tensor lies in [`ModelFile::weight_bytes`] and how it is
    /// encoded.
    ///
    /// ```
    /// # let file = brt_gguf::ModelFile::parse(brt_gguf::include_model!("../tests/data/plain.gguf"))?;
    /// assert_eq!(file.byte_layout().len(), file.weight_bytes().len());
    /// # Ok::<(), brt_gguf::GgufError>(())
    /// ```
    pub fn byte_layout(&self) -> &ByteLayout {
        &self.layout
    }

    /// Every weight, in place, for a model stored in one type (f32, f16, bf16):
    /// the file's tensor data viewed as values of that type, laid out as
    /// [`ModelFile::layout`] says. No copy. `None` for a Q8_0 model, whose
    /// tensors have different types: read them with [`ModelFile::tensor`] or use
    /// [`ModelFile::weight_bytes`] where they lie.
    ///
    /// ```
    /// # let file = brt_gguf::ModelFile::parse(brt_gguf::include_model!("../tests/data/plain.gguf"))?;
    /// let Some(brt_core::WeightData::F32(values)) = file.weights() else { unreachable!() };
    /// assert_eq!(values.len(), file.layout().len());
    /// # Ok::<(), brt_gguf::GgufError>(())
    /// ```
    pub fn weights(&self) -> Option<WeightData<'a>> {
        weight_data(self.weight_bytes(), self.layout.dtype())
    }

    /// The raw bytes of the tensor data: every tensor where
    /// [`ModelFile::byte_layout`] places it.
    ///
    /// ```
    /// # let file = brt_gguf::ModelFile::parse(brt_gguf::include_model!("../tests/data/plain.gguf"))?;
    /// // In place: a view of the file, not a copy.
    /// assert_eq!(file.weight_bytes().as_ptr(), file.bytes()[file.data_offset()..].as_ptr());
    /// # Ok::<(), brt_gguf::GgufError>(())
    /// ```
    pub fn weight_bytes(&self) -> &'a [u8] {
        &self.bytes[self.data_offset..self.data_offset + self.layout.len()]
    }

    /// One parameter's values in place, when they are stored as f32, f16 or bf16
    /// (`None` for a Q8_0 tensor: see [`ModelFile::tensor`]).
    ///
    /// ```
    /// # let file = brt_gguf::ModelFile::parse(brt_gguf::include_model!("../tests/data/plain.gguf"))?;
    /// let Some(brt_core::WeightData::F32(norm)) = file.param(brt_core::Param::FinalNorm) else { unreachable!() };
    /// assert_eq!(norm.len(), file.config().d_model);
    /// # Ok::<(), brt_gguf::GgufError>(())
    /// ```
    pub fn param(&self, param: Param) -> Option<WeightData<'a>> {
        let (tensor, bytes) = self.tensor(param)?;
        tensor_values(tensor.ty, bytes)
    }

    /// One parameter's tensor: its place, type and bytes.
    ///
    /// ```
    /// # let file = brt_gguf::ModelFile::parse(brt_gguf::include_model!("../tests/data/plain.gguf"))?;
    /// let (tensor, bytes) = file.tensor(brt_core::Param::Embedding).unwrap();
    /// assert_eq!((tensor.ty, bytes.len()), (brt_core::TensorType::F32, 19 * 8 * 4));
    /// # Ok::<(), brt_gguf::GgufError>(())
    /// ```
    pub fn tensor(&self, param: Param) -> Option<(StoredTensor, &'a [u8])> {
        let tensor = self.layout.tensors().find(|t| t.spec.param == param)?;
        Some((tensor, self.tensor_bytes(&tensor)))
    }

    /// The model's name, if the file has one.
    ///
    /// ```
    /// # let file = brt_gguf::ModelFile::parse(brt_gguf::include_model!("../tests/data/plain.gguf"))?;
    /// assert_eq!(file.name(), Some("plain"));
    /// # Ok::<(), brt_gguf::GgufError>(())
    /// ```
    pub fn name(&self) -> Option<&'a str> {
        self.name
    }

    /// The tokenizer the model was trained with, if the file records it
    /// ([`keys::TOKENIZER`]).
    ///
    /// ```
    /// # let file = brt_gguf::ModelFile::parse(brt_gguf::include_model!("../tests/data/plain.gguf"))?;
    /// assert_eq!(file.tokenizer(), None);
    /// # Ok::<(), brt_gguf::GgufError>(())
    /// ```
    pub fn tokenizer(&self) -> Option<&'a str> {
        self.tokenizer
    }

    /// Alignment of the tensor data in bytes.
    ///
    /// ```
    /// # let file = brt_gguf::ModelFile::parse(brt_gguf::include_model!("../tests/data/plain.gguf"))?;
    /// assert_eq!(file.alignment(), 32);
    /// # Ok::<(), brt_gguf::GgufError>(())
    /// ```
    pub fn alignment(&self) -> usize {
        self.layout.align()
    }

    /// Byte offset of the tensor data section in the file.
    ///
    /// ```
    /// # let file = brt_gguf::ModelFile::parse(brt_gguf::include_model!("../tests/data/plain.gguf"))?;
    /// assert_eq!(file.data_offset() % file.alignment(), 0);
    /// # Ok::<(), brt_gguf::GgufError>(())
    /// ```
    pub fn data_offset(&self) -> usize {
        self.data_offset
    }

    /// The CRC-32 of the tensor data (checked).
    ///
    /// ```
    /// # let file = brt_gguf::ModelFile::parse(brt_gguf::include_model!("../tests/data/plain.gguf"))?;
    /// assert_eq!(file.crc32(), crc32fast::hash(file.weight_bytes()));
    /// # Ok::<(), brt_gguf::GgufError>(())
    /// ```
    pub fn crc32(&self) -> u32 {
        self.crc32
    }

    /// The brt format version the file was written in
    /// ([`crate::OLDEST_FORMAT_VERSION`] to [`crate::FORMAT_VERSION`]).
    ///
    /// ```
    /// # let file = brt_gguf::ModelFile::parse(brt_gguf::include_model!("../tests/data/plain.gguf"))?;
    /// assert_eq!(file.format_version(), brt_gguf::FORMAT_VERSION);
    /// # Ok::<(), brt_gguf::GgufError>(())
    /// ```
    pub fn format_version(&self) -> u32 {
        self.format_version
    }

    /// The file's bytes.
    ///
    /// ```
    /// # let file = brt_gguf::ModelFile::parse(brt_gguf::include_model!("../tests/data/plain.gguf"))?;
    /// assert_eq!(&file.bytes()[..4], b"GGUF");
    /// # Ok::<(), brt_gguf::GgufError>(())
    /// ```
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Every metadata key and value in file order, brt's and any other.
    ///
    /// ```
    /// # let file = brt_gguf::ModelFile::parse(brt_gguf::include_model!("../tests/data/plain.gguf"))?;
    /// let (key, value) = file.metadata().next().unwrap();
    /// assert_eq!((key, value), ("general.architecture", brt_gguf::Value::Str("brt")));
    /// # Ok::<(), brt_gguf::GgufError>(())
    /// ```
    pub fn metadata(&self) -> impl Iterator<Item = (&'a str, Value<'a>)> + 'a {
        let mut c = Cursor::new(&self.bytes[self.metadata_start..], self.metadata_start);
        // The table was read once by `parse`; it reads again.
        (0..self.metadata_count).map_while(move |_| {
            let key = c.string("metadata key").ok()?;
            let ty = c.u32("metadata value type").ok()?;
            Some((key, c.value(ty, 0).ok()?))
        })
    }
}

/// The first format version that stores Q8_0 kernels one row of blocks per
/// output (and computes them in 8-bit integers).
const TRANSPOSED_Q8_0_KERNELS: u32 = 2;

const UNKNOWN_TYPE: &str = "a storage type other than f32 (0), f16 (1), bf16 (30) or q8_0 (8)";

/// A tensor's values in place when it is stored in a floating-point type.
fn tensor_values(ty: TensorType, bytes: &[u8]) -> Option<WeightData<'_>> {
    match ty {
        TensorType::F32 => weight_data(bytes, WeightDtype::F32),
        TensorType::F16 => weight_data(bytes, WeightDtype::F16),
        TensorType::Bf16 => weight_data(bytes, WeightDtype::Bf16),
        TensorType::Q8_0 => None,
    }
}

/// One entry of the tensor table.
struct TensorInfo<'a> {
    name: &'a str,
    n_dims: usize,
    dims: [u64; 4],
    ty: u32,
    offset: u64,
}

impl<'a> TensorInfo<'a> {
    fn read(c: &mut Cursor<'a>) -> Result<TensorInfo<'a>, GgufError> {
        let name = c.string("tensor name")?;
        let at = c.offset();
        let n_dims = c.u32("tensor dimensions")? as usize;
        if !(1..=4).contains(&n_dims) {
            return Err(GgufError::Malformed { what: "a tensor with no or more than 4 dimensions", offset: at });
        }
        let mut dims = [0u64; 4];
        for d in dims.iter_mut().take(n_dims) {
            *d = c.u64("tensor dimensions")?;
        }
        let ty = c.u32("tensor type")?;
        let offset = c.u64("tensor offset")?;
        Ok(TensorInfo { name, n_dims, dims, ty, offset })
    }
}

/// Little-endian `bytes` viewed in place as values of `dtype`, or `None` when
/// they are not a whole number of values at an address aligned for the type, or
/// `dtype` is Q8_0 (whose tensors differ in type).
///
/// ```
/// use brt_core::{WeightData, WeightDtype};
/// let words = [1.5f32.to_bits(), (-2.0f32).to_bits()];
/// let bytes: &[u8] = bytemuck::cast_slice(&words);
/// assert!(matches!(brt_gguf::weight_data(bytes, WeightDtype::F32), Some(WeightData::F32([1.5, -2.0]))));
/// // Not a whole number of values.
/// assert!(brt_gguf::weight_data(&bytes[..6], WeightDtype::F32).is_none());
/// ```
pub fn weight_data(bytes: &[u8], dtype: WeightDtype) -> Option<WeightData<'_>> {
    Some(match dtype {
        WeightDtype::F32 => WeightData::F32(bytemuck::try_cast_slice(bytes).ok()?),
        WeightDtype::F16 => WeightData::F16(bytemuck::try_cast_slice::<u8, f16>(bytes).ok()?),
        WeightDtype::Bf16 => WeightData::Bf16(bytemuck::try_cast_slice::<u8, bf16>(bytes).ok()?),
        WeightDtype::Q8_0 => return None,
    })
}
