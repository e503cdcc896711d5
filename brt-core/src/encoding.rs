//! How a model's parameters lie in bytes: the storage type of each tensor, the
//! 8-bit block format (GGML's Q8_0), and where each tensor starts in a model
//! file's tensor data, which a backend can use where it lies.
//!
//! A model stored as f32, f16 or bf16 has every tensor in that type. A model
//! stored as [`WeightDtype::Q8_0`] keeps the bulk of its parameters, the matrices,
//! in blocks of 32 signed bytes with one f16 scale each (34 bytes for 32 values,
//! 8.5 bits a value), and its vectors (norm scales, attention scales, gate biases)
//! in f32: they are a tiny part of the model and set the scale of everything
//! downstream.
//!
//! The blocks run along a tensor's innermost, contiguous dimension, as GGML lays
//! them out, and that dimension is the one a product sums over: a kernel (the
//! `(input, output)` weight of `x @ w`) is stored transposed, one row of blocks
//! per output, so that a product multiplies a block of weights with a block of
//! inputs in 8-bit integers ([`quantize_activations`] states the product's
//! arithmetic). The embedding is stored as it is (its rows are what the logits
//! sum over, and what an embedding lookup reads), and so are the tables read by
//! rows (initial state, state ids, position biases). A tensor that is not whole
//! blocks along that dimension stays f32, so every configuration can be stored.

use crate::error::{CoreError, CoreResult};
use crate::kernels::{WeightData, WeightDtype};
use crate::params::{Param, ParamSpec, WeightLayout};
use crate::Config;
use half::f16;

/// What a backend that cannot read Q8_0 weights says when asked to hold them.
///
/// The reference backend, which holds values rather than blocks, refuses Q8_0
/// parameter buffers with this message.
///
/// ```
/// use brt_core::encoding::Q8_0_CPU_ONLY;
/// use brt_core::{Arena, CoreError, Reference, Storage, WeightDtype};
/// let mut pool = [0f32; 64];
/// let mut k = Reference::new(Arena::new(&mut pool, &mut [], &mut []));
/// let e = k.alloc_weights(64, WeightDtype::Q8_0).unwrap_err();
/// assert_eq!(e, CoreError::InvalidShape { what: Q8_0_CPU_ONLY });
/// assert!(e.to_string().contains("--backend cpu"));
/// ```
pub const Q8_0_CPU_ONLY: &str = "q8_0 weights (8-bit blocks) run on the CPU backend only; use --backend cpu, or \
                                 convert the model for this backend: brt convert MODEL OUT.gguf --dtype f16";

/// Values in one Q8_0 block.
///
/// A Q8_0 tensor is whole blocks of this many values.
///
/// ```
/// use brt_core::encoding::Q8_0_BLOCK;
/// use brt_core::TensorType;
/// assert_eq!(Q8_0_BLOCK, 32);
/// assert!(TensorType::Q8_0.bytes(3 * Q8_0_BLOCK).is_some());
/// assert!(TensorType::Q8_0.bytes(Q8_0_BLOCK + 1).is_none());
/// ```
pub const Q8_0_BLOCK: usize = 32;
/// Bytes of one Q8_0 block: the f16 scale `d` (little-endian), then 32 signed
/// bytes `q`; value `i` is `d * q[i]`.
///
/// A block of 32 values takes 34 bytes, 8.5 bits a value.
///
/// ```
/// use brt_core::encoding::{Q8_0_BLOCK, Q8_0_BLOCK_BYTES};
/// use brt_core::TensorType;
/// assert_eq!(Q8_0_BLOCK_BYTES, 34);
/// assert_eq!(TensorType::Q8_0.bytes(2 * Q8_0_BLOCK), Some(2 * Q8_0_BLOCK_BYTES));
/// assert_eq!(Q8_0_BLOCK_BYTES * 8 * 2, Q8_0_BLOCK * 17);
/// ```
pub const Q8_0_BLOCK_BYTES: usize = 2 + Q8_0_BLOCK;

/// How one tensor is encoded.
///
/// Each type has its name, its size for a number of values and its alignment.
///
/// ```
/// use brt_core::TensorType;
/// let types = [TensorType::F32, TensorType::F16, TensorType::Bf16, TensorType::Q8_0];
/// let bytes: Vec<_> = types.iter().map(|t| t.bytes(64)).collect();
/// assert_eq!(bytes, [Some(256), Some(128), Some(128), Some(68)]);
/// assert_eq!(types.map(|t| t.name()), ["f32", "f16", "bf16", "q8_0"]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TensorType {
    /// Little-endian f32 values.
    F32,
    /// Little-endian f16 values.
    F16,
    /// Little-endian bf16 values.
    Bf16,
    /// Q8_0 blocks ([`Q8_0_BLOCK_BYTES`] bytes for every [`Q8_0_BLOCK`] values).
    Q8_0,
}

impl TensorType {
    /// The name used in files and messages.
    ///
    /// Names are lower case, as in GGUF files and on the command line.
    ///
    /// ```
    /// use brt_core::TensorType;
    /// assert_eq!(TensorType::Bf16.name(), "bf16");
    /// assert_eq!(TensorType::Q8_0.name(), "q8_0");
    /// ```
    pub const fn name(self) -> &'static str {
        match self {
            TensorType::F32 => "f32",
            TensorType::F16 => "f16",
            TensorType::Bf16 => "bf16",
            TensorType::Q8_0 => "q8_0",
        }
    }

    /// Bytes that `len` values take, or `None` when they overflow or (Q8_0) are
    /// not whole blocks.
    ///
    /// f32 takes 4 bytes a value and f16 2; Q8_0 needs whole blocks; an
    /// overflowing size is `None`.
    ///
    /// ```
    /// use brt_core::TensorType;
    /// assert_eq!(TensorType::F32.bytes(10), Some(40));
    /// assert_eq!(TensorType::F16.bytes(10), Some(20));
    /// assert_eq!(TensorType::Q8_0.bytes(96), Some(3 * 34));
    /// assert_eq!(TensorType::Q8_0.bytes(10), None);
    /// assert_eq!(TensorType::F32.bytes(usize::MAX), None);
    /// ```
    pub const fn bytes(self, len: usize) -> Option<usize> {
        match self {
            TensorType::F32 => len.checked_mul(4),
            TensorType::F16 | TensorType::Bf16 => len.checked_mul(2),
            TensorType::Q8_0 if len % Q8_0_BLOCK == 0 => (len / Q8_0_BLOCK).checked_mul(Q8_0_BLOCK_BYTES),
            TensorType::Q8_0 => None,
        }
    }

    /// The alignment in bytes the values need in memory to be used in place.
    ///
    /// f32 needs 4 bytes; the 16-bit types and Q8_0 (whose scale is an f16) 2.
    ///
    /// ```
    /// use brt_core::TensorType;
    /// assert_eq!(TensorType::F32.align(), 4);
    /// assert_eq!((TensorType::F16.align(), TensorType::Q8_0.align()), (2, 2));
    /// ```
    pub const fn align(self) -> usize {
        match self {
            TensorType::F32 => 4,
            // A block's scale is an f16 at the block's start; blocks are 34 bytes.
            TensorType::F16 | TensorType::Bf16 | TensorType::Q8_0 => 2,
        }
    }
}

impl WeightDtype {
    /// How a parameter of shape `(rows, cols)` is stored in a model of this type,
    /// in a configuration whose heads are `heads_width` (`H*dh`) wide (see the
    /// module's documentation).
    ///
    /// A uniform type stores every tensor as itself. Q8_0 stores a kernel whose
    /// input is whole blocks in blocks, and keeps vectors, and a kernel read by
    /// heads that are not whole blocks (here 16 wide), in f32.
    ///
    /// ```
    /// use brt_core::{LayerParam, Param, TensorType, WeightDtype};
    /// let layer = |p| Param::Layer(0, p);
    /// let q8 = WeightDtype::Q8_0;
    /// assert_eq!(q8.tensor_type(layer(LayerParam::MlpOut), 96, 64, 16), TensorType::Q8_0);
    /// assert_eq!(q8.tensor_type(layer(LayerParam::Out), 16, 64, 16), TensorType::F32);
    /// assert_eq!(q8.tensor_type(layer(LayerParam::Out), 64, 64, 32), TensorType::Q8_0);
    /// assert_eq!(q8.tensor_type(Param::FinalNorm, 1, 64, 16), TensorType::F32);
    /// assert_eq!(WeightDtype::F16.tensor_type(Param::FinalNorm, 1, 64, 16), TensorType::F16);
    /// ```
    pub const fn tensor_type(self, param: Param, rows: usize, cols: usize, heads_width: usize) -> TensorType {
        match self {
            WeightDtype::F32 => TensorType::F32,
            WeightDtype::F16 => TensorType::F16,
            WeightDtype::Bf16 => TensorType::Bf16,
            WeightDtype::Q8_0 if in_whole_blocks(param, rows, cols, heads_width) => TensorType::Q8_0,
            WeightDtype::Q8_0 => TensorType::F32,
        }
    }
}

/// Whether a parameter is a matrix whose summed dimension is whole Q8_0
/// blocks: a kernel's rows (its input), and, for a kernel that products read
/// `H*dh` rows at a time, each part too (so every part starts at a block); any
/// other matrix's columns.
const fn in_whole_blocks(param: Param, rows: usize, cols: usize, heads_width: usize) -> bool {
    match param {
        Param::FinalNorm => false,
        Param::Embedding => cols % Q8_0_BLOCK == 0,
        Param::Layer(_, p) if p.is_vector() => false,
        Param::Layer(_, p) if p.is_kernel() => {
            rows % Q8_0_BLOCK == 0 && (!p.is_read_by_heads() || heads_width % Q8_0_BLOCK == 0)
        }
        Param::Layer(..) => cols % Q8_0_BLOCK == 0,
    }
}

/// One parameter's place in a model's tensor data.
///
/// The tensors of a [`ByteLayout`] say where each parameter's bytes are and
/// how many: a Q8_0 embedding of `(40, 64)` takes 80 blocks.
///
/// ```
/// use brt_core::{ByteLayout, Config, Param, StoredTensor, TensorType, WeightDtype};
/// let layout = ByteLayout::new(&Config::plain(40, 64, 2, 8, 96, 2, 4), WeightDtype::Q8_0, 32)?;
/// let embed: StoredTensor = layout.tensors().next().unwrap();
/// assert_eq!((embed.spec.param, embed.ty, embed.offset), (Param::Embedding, TensorType::Q8_0, 0));
/// assert_eq!(embed.bytes, 40 * 64 / 32 * 34);
/// # Ok::<(), brt_core::CoreError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredTensor {
    /// The parameter, with its elements' place in [`ByteLayout::layout`].
    pub spec: ParamSpec,
    /// How its values are encoded.
    pub ty: TensorType,
    /// Its first byte in the tensor data.
    pub offset: usize,
    /// Its bytes.
    pub bytes: usize,
}

impl StoredTensor {
    /// Whether the values are stored transposed: a Q8_0 kernel, `(cols, rows)`
    /// row-major, with its blocks along the parameter's rows (the dimension a
    /// product sums over).
    ///
    /// A Q8_0 MLP kernel is transposed; the Q8_0 embedding, and any tensor of a
    /// uniform type, is not.
    ///
    /// ```
    /// use brt_core::{ByteLayout, Config, LayerParam, Param, WeightDtype};
    /// let config = Config::plain(40, 64, 2, 8, 96, 2, 4);
    /// let q8 = ByteLayout::new(&config, WeightDtype::Q8_0, 32)?;
    /// let transposed = |p| q8.tensors().any(|t| t.spec.param == p && t.is_transposed());
    /// assert!(transposed(Param::Layer(0, LayerParam::MlpIn)) && !transposed(Param::Embedding));
    /// let f16 = ByteLayout::new(&config, WeightDtype::F16, 32)?;
    /// assert!(f16.tensors().all(|t| !t.is_transposed()));
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub const fn is_transposed(&self) -> bool {
        matches!(self.ty, TensorType::Q8_0) && self.spec.param.is_kernel()
    }

    /// Where value `e` of the parameter (row-major `(rows, cols)`, as
    /// [`ByteLayout::layout`] addresses it) lies among the stored values.
    ///
    /// Element `(r, c)` of a transposed `(96, 64)` kernel is stored at `c * 96 + r`;
    /// an untransposed tensor's elements stay where they are.
    ///
    /// ```
    /// use brt_core::{ByteLayout, Config, LayerParam, Param, WeightDtype};
    /// let layout = ByteLayout::new(&Config::plain(40, 64, 2, 8, 96, 2, 4), WeightDtype::Q8_0, 32)?;
    /// let find = |p| layout.tensors().find(|t| t.spec.param == p).unwrap();
    /// let mlp_out = find(Param::Layer(0, LayerParam::MlpOut));
    /// let (r, c) = (5, 7);
    /// assert_eq!(mlp_out.stored_index(r * 64 + c), c * 96 + r);
    /// assert_eq!(find(Param::Embedding).stored_index(100), 100);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub const fn stored_index(&self, e: usize) -> usize {
        if self.is_transposed() {
            let (rows, cols) = (self.spec.span.rows, self.spec.span.cols);
            e % cols * rows + e / cols
        } else {
            e
        }
    }

    /// The parameter's value for stored value `s` (the inverse of
    /// [`StoredTensor::stored_index`]).
    ///
    /// Going to the stored place and back gives every element its own index.
    ///
    /// ```
    /// use brt_core::{ByteLayout, Config, LayerParam, Param, WeightDtype};
    /// let layout = ByteLayout::new(&Config::plain(40, 64, 2, 8, 96, 2, 4), WeightDtype::Q8_0, 32)?;
    /// let t = layout.tensors().find(|t| t.spec.param == Param::Layer(1, LayerParam::MlpOut)).unwrap();
    /// assert!(t.is_transposed());
    /// assert_eq!(t.param_index(1), 64, "stored value 1 is row 1, column 0");
    /// assert!((0..t.spec.span.len()).all(|e| t.param_index(t.stored_index(e)) == e));
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub const fn param_index(&self, s: usize) -> usize {
        if self.is_transposed() {
            let (rows, cols) = (self.spec.span.rows, self.spec.span.cols);
            s % rows * cols + s / rows
        } else {
            s
        }
    }
}

/// Where every tensor of a model lies in its tensor data (a model file's data
/// section), for a storage type and an alignment: tensors follow one another in
/// canonical order, each at the next multiple of `align` bytes.
///
/// The elements are addressed by [`ByteLayout::layout`]: for f32, f16 and bf16 it
/// is the aligned layout whose element offsets are the byte offsets divided by the
/// type's size (so the data is one array of values); for Q8_0, whose tensors have
/// different types, the canonical one.
///
/// In f16 with tensors at multiples of 32 bytes, each tensor's byte offset is
/// twice its element offset in a layout aligned to 16 elements.
///
/// ```
/// use brt_core::{ByteLayout, Config, WeightDtype, WeightLayout};
/// let config = Config::plain(10, 8, 2, 4, 16, 2, 4);
/// let bytes = ByteLayout::new(&config, WeightDtype::F16, 32)?;
/// assert_eq!(bytes.layout(), &WeightLayout::aligned(&config, 16)?);
/// assert!(bytes.tensors().all(|t| t.offset == 2 * t.spec.offset && t.offset % 32 == 0));
/// assert_eq!(bytes.len(), 2 * bytes.layout().len());
/// # Ok::<(), brt_core::CoreError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteLayout {
    layout: WeightLayout,
    dtype: WeightDtype,
    align: usize,
    len: usize,
}

impl ByteLayout {
    /// The byte layout of `config` stored as `dtype` with tensors at multiples of
    /// `align` bytes. Fails when a size overflows, or when `align` is not a
    /// positive multiple of every tensor type's alignment (4 bytes).
    ///
    /// Any positive multiple of 4 bytes is an alignment; 0 and 6 are not.
    ///
    /// ```
    /// use brt_core::{ByteLayout, Config, CoreError, WeightDtype};
    /// let config = Config::plain(10, 8, 2, 4, 16, 2, 4);
    /// assert!(ByteLayout::new(&config, WeightDtype::Q8_0, 4).is_ok());
    /// assert!(ByteLayout::new(&config, WeightDtype::F32, 64).is_ok());
    /// for bad in [0, 6] {
    ///     let e = ByteLayout::new(&config, WeightDtype::F32, bad).unwrap_err();
    ///     assert!(matches!(e, CoreError::InvalidConfig { .. }));
    /// }
    /// ```
    pub fn new(config: &Config, dtype: WeightDtype, align: usize) -> CoreResult<ByteLayout> {
        if align == 0 || align % 4 != 0 {
            return Err(CoreError::InvalidConfig {
                what: "tensor data alignment must be a positive multiple of 4 bytes",
                value: align as i64,
            });
        }
        let layout = match dtype.size() {
            Some(size) => WeightLayout::aligned(config, align / size)?,
            None => WeightLayout::new(config)?,
        };
        let mut byte_layout = ByteLayout { layout, dtype, align, len: 0 };
        let mut len = 0;
        for tensor in byte_layout.walk() {
            len = tensor?.offset_after()?;
        }
        byte_layout.len = len;
        Ok(byte_layout)
    }

    /// The elements' layout: what the core addresses parameters by.
    ///
    /// For Q8_0 it is the canonical layout (its tensors' types differ, so byte
    /// offsets are not element offsets times a size).
    ///
    /// ```
    /// use brt_core::{ByteLayout, Config, WeightDtype, WeightLayout};
    /// let config = Config::plain(10, 8, 2, 4, 16, 2, 4);
    /// let q8 = ByteLayout::new(&config, WeightDtype::Q8_0, 32)?;
    /// assert_eq!(q8.layout(), &WeightLayout::new(&config)?);
    /// let f32s = ByteLayout::new(&config, WeightDtype::F32, 32)?;
    /// assert_eq!(f32s.layout().align(), 8);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub const fn layout(&self) -> &WeightLayout {
        &self.layout
    }

    /// The model's storage type.
    ///
    /// It is the type the layout was made for.
    ///
    /// ```
    /// use brt_core::{ByteLayout, Config, WeightDtype};
    /// let layout = ByteLayout::new(&Config::plain(10, 8, 2, 4, 16, 2, 4), WeightDtype::Bf16, 8)?;
    /// assert_eq!(layout.dtype(), WeightDtype::Bf16);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub const fn dtype(&self) -> WeightDtype {
        self.dtype
    }

    /// Every tensor's alignment in bytes.
    ///
    /// It is the alignment asked for, and every tensor starts at a multiple of it.
    ///
    /// ```
    /// use brt_core::{ByteLayout, Config, WeightDtype};
    /// let layout = ByteLayout::new(&Config::plain(10, 8, 2, 4, 16, 2, 4), WeightDtype::F32, 64)?;
    /// assert_eq!(layout.align(), 64);
    /// assert!(layout.tensors().all(|t| t.offset % 64 == 0));
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub const fn align(&self) -> usize {
        self.align
    }

    /// Bytes of the tensor data, up to the end of the last tensor.
    ///
    /// The data ends with the last tensor, whatever the alignment; f32 with a
    /// 4-byte alignment has no gaps.
    ///
    /// ```
    /// use brt_core::{ByteLayout, Config, WeightDtype, WeightLayout};
    /// let config = Config::plain(10, 8, 2, 4, 16, 2, 4);
    /// let layout = ByteLayout::new(&config, WeightDtype::F32, 4)?;
    /// assert_eq!(layout.len(), 4 * WeightLayout::new(&config)?.len());
    /// let last = layout.tensors().last().unwrap();
    /// assert_eq!(layout.len(), last.offset + last.bytes);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether there is no data (never for a valid configuration).
    ///
    /// Even the smallest valid model has data.
    ///
    /// ```
    /// use brt_core::{ByteLayout, Config, WeightDtype};
    /// let tiny = Config::plain(1, 1, 1, 1, 1, 1, 1);
    /// assert!(!ByteLayout::new(&tiny, WeightDtype::Q8_0, 4)?.is_empty());
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every tensor in canonical order (sizes were checked by [`ByteLayout::new`]).
    ///
    /// There is one tensor per parameter, in order, none overlapping the next.
    ///
    /// ```
    /// use brt_core::{ByteLayout, Config, WeightDtype};
    /// let layout = ByteLayout::new(&Config::plain(40, 64, 2, 8, 96, 2, 4), WeightDtype::Q8_0, 32)?;
    /// assert!(layout.tensors().map(|t| t.spec).eq(layout.layout().params()));
    /// let tensors: Vec<_> = layout.tensors().collect();
    /// assert!(tensors.windows(2).all(|w| w[0].offset + w[0].bytes <= w[1].offset));
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub fn tensors(&self) -> impl Iterator<Item = StoredTensor> + '_ {
        self.walk().map_while(Result::ok)
    }

    /// The tensor holding elements `offset .. offset + len` of
    /// [`ByteLayout::layout`], or `None` when they are not all inside one tensor.
    ///
    /// Part of a tensor is found in it; a range running into the next tensor is
    /// not in one.
    ///
    /// ```
    /// use brt_core::{ByteLayout, Config, LayerParam, Param, WeightDtype};
    /// let layout = ByteLayout::new(&Config::plain(40, 64, 2, 8, 96, 2, 4), WeightDtype::Q8_0, 32)?;
    /// let query = layout.layout().span(Param::Layer(0, LayerParam::Query)).unwrap();
    /// let found = layout.locate(query.offset + 64, 64).map(|t| t.spec.param);
    /// assert_eq!(found, Some(Param::Layer(0, LayerParam::Query)));
    /// assert!(layout.locate(query.offset + query.len() - 1, 2).is_none());
    /// assert!(layout.locate(usize::MAX, 2).is_none());
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub fn locate(&self, offset: usize, len: usize) -> Option<StoredTensor> {
        let end = offset.checked_add(len)?;
        self.tensors()
            .take_while(|t| t.spec.offset <= offset)
            .find(|t| offset >= t.spec.offset && end <= t.spec.offset + t.spec.span.len())
    }

    /// Encodes `weights`, every parameter in the canonical layout
    /// ([`WeightLayout::new`]), into `out` (exactly [`ByteLayout::len`] bytes),
    /// zeros between tensors. Values are rounded to nearest (ties to even) for
    /// f16 and bf16, and quantized as [`quantize_q8_0`] does.
    ///
    /// In f32 with a 4-byte alignment the bytes are the values, little-endian, in
    /// order; a buffer of the wrong length is refused.
    ///
    /// ```
    /// use brt_core::{ByteLayout, Config, WeightData, WeightDtype, WeightLayout};
    /// let config = Config::plain(10, 8, 2, 4, 16, 2, 4);
    /// let values: Vec<f32> = (0..WeightLayout::new(&config)?.len()).map(|i| i as f32).collect();
    /// let layout = ByteLayout::new(&config, WeightDtype::F32, 4)?;
    /// let mut bytes = vec![0u8; layout.len()];
    /// layout.encode(WeightData::F32(&values), &mut bytes)?;
    /// assert_eq!(bytes[4 * 3..4 * 4], 3f32.to_le_bytes());
    /// assert!(layout.encode(WeightData::F32(&values[1..]), &mut bytes).is_err());
    /// assert!(layout.encode(WeightData::F32(&values), &mut bytes[1..]).is_err());
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub fn encode(&self, weights: WeightData<'_>, out: &mut [u8]) -> CoreResult<()> {
        let canonical = WeightLayout::new(self.layout.config())?;
        if weights.len() != canonical.len() {
            let (expected, actual) = (canonical.len(), weights.len());
            return Err(CoreError::LengthMismatch { what: "model parameters", expected, actual });
        }
        if out.len() != self.len {
            return Err(CoreError::LengthMismatch { what: "tensor data bytes", expected: self.len, actual: out.len() });
        }
        out.fill(0);
        let mut block = [0f32; Q8_0_BLOCK];
        for (tensor, from) in self.tensors().zip(canonical.params()) {
            let dst = &mut out[tensor.offset..tensor.offset + tensor.bytes];
            let value = |i: usize| weights.get(from.offset + tensor.param_index(i)).unwrap_or(0.0);
            match tensor.ty {
                TensorType::F32 => put(dst, value, |v| v.to_le_bytes()),
                TensorType::F16 => put(dst, value, |v| f16::from_f32(v).to_bits().to_le_bytes()),
                TensorType::Bf16 => put(dst, value, |v| half::bf16::from_f32(v).to_bits().to_le_bytes()),
                TensorType::Q8_0 => {
                    for (b, dst) in dst.chunks_exact_mut(Q8_0_BLOCK_BYTES).enumerate() {
                        block.iter_mut().enumerate().for_each(|(i, v)| *v = value(b * Q8_0_BLOCK + i));
                        // `dst` is one block: its length is exactly right.
                        quantize_q8_0(&block, dst)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Decodes tensor data laid out as this layout says into f32 values in the
    /// canonical layout (`out` holds exactly every parameter): the exact values
    /// the stored ones stand for.
    ///
    /// Decoding Q8_0 data gives each value within half a quantization step (plus
    /// the f16 rounding of the scale); encoding what was decoded gives the same
    /// bytes.
    ///
    /// ```
    /// use brt_core::{ByteLayout, Config, WeightData, WeightDtype, WeightLayout};
    /// let config = Config::plain(40, 64, 2, 8, 96, 2, 4);
    /// let n = WeightLayout::new(&config)?.len();
    /// let values: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
    /// let layout = ByteLayout::new(&config, WeightDtype::Q8_0, 32)?;
    /// let mut bytes = vec![0u8; layout.len()];
    /// layout.encode(WeightData::F32(&values), &mut bytes)?;
    /// let mut back = vec![0f32; n];
    /// layout.decode(&bytes, &mut back)?;
    /// assert!(values.iter().zip(&back).all(|(v, b)| (v - b).abs() <= 0.5 / 127.0 + 1e-3));
    /// let mut again = vec![0u8; layout.len()];
    /// layout.encode(WeightData::F32(&back), &mut again)?;
    /// assert_eq!(again, bytes);
    /// assert!(layout.decode(&bytes[1..], &mut back).is_err());
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub fn decode(&self, data: &[u8], out: &mut [f32]) -> CoreResult<()> {
        let canonical = WeightLayout::new(self.layout.config())?;
        if out.len() != canonical.len() {
            let (expected, actual) = (canonical.len(), out.len());
            return Err(CoreError::LengthMismatch { what: "model parameters", expected, actual });
        }
        if data.len() < self.len {
            return Err(CoreError::BufferTooSmall {
                what: "tensor data bytes",
                needed: self.len,
                available: data.len(),
            });
        }
        for (tensor, to) in self.tensors().zip(canonical.params()) {
            let src = &data[tensor.offset..tensor.offset + tensor.bytes];
            let dst = &mut out[to.offset..to.offset + to.span.len()];
            match tensor.ty {
                TensorType::F32 => get(src, dst, f32::from_le_bytes),
                TensorType::F16 => get(src, dst, |b| f16::from_bits(u16::from_le_bytes(b)).to_f32()),
                TensorType::Bf16 => get(src, dst, |b| half::bf16::from_bits(u16::from_le_bytes(b)).to_f32()),
                TensorType::Q8_0 => {
                    for (b, block) in src.chunks_exact(Q8_0_BLOCK_BYTES).enumerate() {
                        for i in 0..Q8_0_BLOCK {
                            // `param_index` maps the tensor's stored values onto its
                            // own elements: below `dst.len()`.
                            dst[tensor.param_index(b * Q8_0_BLOCK + i)] = q8_0_value(block, i);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Walks the tensors computing byte offsets, failing on overflow.
    fn walk(&self) -> impl Iterator<Item = CoreResult<StoredTensor>> + '_ {
        let mut next = 0usize;
        let overflow = CoreError::SizeOverflow { what: "tensor data bytes" };
        let heads_width = self.layout.config().qkv_width();
        self.layout.params().map(move |spec| {
            let ty = self.dtype.tensor_type(spec.param, spec.span.rows, spec.span.cols, heads_width);
            let bytes = ty.bytes(spec.span.len()).ok_or(overflow)?;
            let offset = next.checked_next_multiple_of(self.align).ok_or(overflow)?;
            let tensor = StoredTensor { spec, ty, offset, bytes };
            next = tensor.offset_after()?;
            Ok(tensor)
        })
    }
}

impl StoredTensor {
    fn offset_after(&self) -> CoreResult<usize> {
        self.offset.checked_add(self.bytes).ok_or(CoreError::SizeOverflow { what: "tensor data bytes" })
    }
}

fn put<const N: usize>(dst: &mut [u8], value: impl Fn(usize) -> f32, bytes: impl Fn(f32) -> [u8; N]) {
    for (i, d) in dst.chunks_exact_mut(N).enumerate() {
        d.copy_from_slice(&bytes(value(i)));
    }
}

fn get<const N: usize>(src: &[u8], dst: &mut [f32], value: impl Fn([u8; N]) -> f32) {
    for (d, s) in dst.iter_mut().zip(src.chunks_exact(N)) {
        let mut b = [0u8; N];
        b.copy_from_slice(s);
        *d = value(b);
    }
}

/// Quantizes 32 values into one Q8_0 block (`out`: [`Q8_0_BLOCK_BYTES`] bytes),
/// as GGML's reference quantizer does: `d = max|x| / 127`, `q = round(x / d)`
/// (half away from zero), `d` stored as f16. Each value is then off by at most
/// half a step, `|d|/2` (plus the f16 rounding of `d` times `|q|`).
///
/// Fails on a value that is not finite, or when the slices are not one block.
///
/// The largest magnitude becomes ±127 and the others are within half a step of
/// their value; a block of zeros has scale 0.
///
/// ```
/// use brt_core::encoding::{q8_0_scale, q8_0_value, quantize_q8_0};
/// let values: Vec<f32> = (0..32).map(|i| i as f32 / 8.0 - 2.0).collect();
/// let mut block = [0u8; 34];
/// quantize_q8_0(&values, &mut block)?;
/// let d = q8_0_scale(&block);
/// assert_eq!(block[2] as i8, -127, "the first value, -2, is the largest");
/// assert!((0..32).all(|i| (q8_0_value(&block, i) - values[i]).abs() <= d / 2.0 + 2e-3));
/// assert!(quantize_q8_0(&values[1..], &mut block).is_err());
/// assert!(quantize_q8_0(&[f32::NAN; 32], &mut block).is_err());
/// quantize_q8_0(&[0.0; 32], &mut block)?;
/// assert_eq!(block, [0u8; 34]);
/// # Ok::<(), brt_core::CoreError>(())
/// ```
pub fn quantize_q8_0(values: &[f32], out: &mut [u8]) -> CoreResult<()> {
    if values.len() != Q8_0_BLOCK || out.len() != Q8_0_BLOCK_BYTES {
        return Err(CoreError::InvalidShape { what: "a Q8_0 block is 32 values in 34 bytes" });
    }
    if values.iter().any(|v| !v.is_finite()) {
        return Err(CoreError::InvalidShape { what: "only finite values can be quantized" });
    }
    let amax = values.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let inverse = if d == 0.0 { 0.0 } else { 1.0 / d };
    out[..2].copy_from_slice(&f16::from_f32(d).to_bits().to_le_bytes());
    for (q, &v) in out[2..].iter_mut().zip(values) {
        // |v * inverse| <= 127 (up to rounding), so the cast cannot saturate
        // beyond one step; `as` saturates rather than wrapping in any case.
        *q = libm::roundf(v * inverse) as i8 as u8;
    }
    Ok(())
}

/// Quantizes one block of a product's input (at most [`Q8_0_BLOCK`] values, the
/// last block of a row may be shorter) as the weights are, but with the scale
/// kept in f32: `d = max|x| / 127`, `q = round(x * (1/d))` (half away from zero),
/// and `d = 0`, `q = 0` for a block of zeros. A block holding a value that is not
/// finite gets `d = NaN` (and `q = 0`), so that the product is NaN, as the f32
/// product would be. Returns `d`; writes `q[..x.len()]`.
///
/// This is the arithmetic of every product with Q8_0 weights, on every backend:
/// each row of the input is cut into blocks of 32 along the summed dimension
/// (aligned with the weights' blocks), each block quantized by this function,
/// and the product is `sum over blocks of d_w * d_x * sum(q_w * q_x)`, the inner
/// sums in exact integers. Backends may order the f32 additions of the blocks'
/// terms differently: results agree to f32 rounding. (GGML computes its Q8_0
/// products the same way, with `d_x` rounded to f16.)
///
/// The largest magnitude, 1.27, becomes -127 steps of 0.01; a block holding an
/// infinity makes its scale NaN.
///
/// ```
/// use brt_core::encoding::quantize_activations;
/// let mut q = [0i8; 5];
/// let d = quantize_activations(&[0.5, -1.27, 0.004, 0.0, 1.0], &mut q);
/// assert_eq!(d, 1.27 / 127.0);
/// assert_eq!(q, [50, -127, 0, 0, 100]);
/// assert!(quantize_activations(&[1.0, f32::INFINITY], &mut q[..2]).is_nan());
/// assert_eq!(q[..2], [0, 0]);
/// ```
#[inline]
pub fn quantize_activations(x: &[f32], q: &mut [i8]) -> f32 {
    // Whole blocks (nearly all of them) with their length known, so that the
    // loops below compile to vector code where this is inlined.
    match (<&[f32; Q8_0_BLOCK]>::try_from(x), q.first_chunk_mut::<Q8_0_BLOCK>()) {
        (Ok(x), Some(q)) => quantize_slice(x, q),
        _ => quantize_slice(x, q),
    }
}

#[inline(always)]
fn quantize_slice(x: &[f32], q: &mut [i8]) -> f32 {
    // The largest magnitude as the largest bit pattern without the sign: for
    // magnitudes, the order of the patterns is that of the values, with the
    // infinities and NaNs above every finite value (and integer maxima are
    // vector code, `f32::max` with its NaN rules is not).
    let amax_bits = x.iter().map(|v| v.to_bits() & 0x7fff_ffff).max().unwrap_or(0);
    if amax_bits >= f32::INFINITY.to_bits() {
        q.iter_mut().for_each(|q| *q = 0);
        return f32::NAN;
    }
    let d = f32::from_bits(amax_bits) / 127.0;
    let inverse = if d == 0.0 { 0.0 } else { 1.0 / d };
    for (q, &v) in q.iter_mut().zip(x) {
        // |v * inverse| <= 127 up to one rounding; the clamp also keeps -128
        // out, which the integer kernels rely on.
        *q = round_half_away(v * inverse).clamp(-127, 127) as i8;
    }
    d
}

/// `y` rounded to the nearest integer, halves away from zero, for finite `|y|`
/// below 2^23: exactly `libm::roundf`, without its software rounding (this runs
/// for every input of every product with Q8_0 weights). `y as i32` truncates,
/// and `y - trunc(y)`, the fraction, is exact in f32.
#[inline(always)]
fn round_half_away(y: f32) -> i32 {
    let truncated = y as i32;
    let fraction = y - truncated as f32;
    truncated + i32::from(fraction >= 0.5) - i32::from(fraction <= -0.5)
}

/// Value `i` (below 32) of a Q8_0 block: `d * q[i]`, exact in f32 (an 11-bit
/// significand times an 8-bit integer).
///
/// A block with scale 0.5 whose byte 3 is -4 holds -2 at index 3.
///
/// ```
/// use brt_core::encoding::q8_0_value;
/// use brt_core::half::f16;
/// let mut block = [0u8; 34];
/// block[..2].copy_from_slice(&f16::from_f32(0.5).to_bits().to_le_bytes());
/// block[2 + 3] = -4i8 as u8;
/// assert_eq!(q8_0_value(&block, 3), -2.0);
/// assert_eq!(q8_0_value(&block, 4), 0.0);
/// ```
#[inline(always)]
pub fn q8_0_value(block: &[u8], i: usize) -> f32 {
    q8_0_scale(block) * (block[2 + i] as i8) as f32
}

/// The scale `d` of a Q8_0 block.
///
/// The scale is the block's first two bytes, a little-endian f16.
///
/// ```
/// use brt_core::encoding::q8_0_scale;
/// use brt_core::half::f16;
/// let mut block = [0u8; 34];
/// block[..2].copy_from_slice(&f16::from_f32(0.125).to_bits().to_le_bytes());
/// assert_eq!(q8_0_scale(&block), 0.125);
/// ```
#[inline(always)]
pub fn q8_0_scale(block: &[u8]) -> f32 {
    f16::from_bits(u16::from_le_bytes([block[0], block[1]])).to_f32()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::LayerParam;

    fn config() -> Config {
        // d = 64 and F = 96: the kernels with d or F rows are whole blocks along
        // their input; the heads' 2 x 8 = 16 are not, so the attention output
        // kernel (16 rows) stays f32.
        Config::plain(40, 64, 2, 8, 96, 2, 4)
    }

    #[test]
    fn q8_0_quantizes_matrices_with_whole_blocks_and_keeps_vectors_f32() {
        let layout = ByteLayout::new(&config(), WeightDtype::Q8_0, 32).unwrap();
        let ty = |p| layout.tensors().find(|t| t.spec.param == p).unwrap().ty;
        assert_eq!(ty(Param::Embedding), TensorType::Q8_0);
        assert_eq!(ty(Param::FinalNorm), TensorType::F32);
        assert_eq!(ty(Param::Layer(0, LayerParam::AttnNorm)), TensorType::F32);
        assert_eq!(ty(Param::Layer(1, LayerParam::Query)), TensorType::Q8_0, "64 rows");
        assert_eq!(ty(Param::Layer(1, LayerParam::Out)), TensorType::F32, "16 rows");
        assert_eq!(ty(Param::Layer(1, LayerParam::MlpIn)), TensorType::Q8_0, "64 rows");
        assert_eq!(ty(Param::Layer(1, LayerParam::MlpOut)), TensorType::Q8_0, "96 rows");
        let transposed = |p| layout.tensors().any(|t| t.spec.param == p && t.is_transposed());
        assert!(transposed(Param::Layer(0, LayerParam::MlpOut)) && !transposed(Param::Embedding));
        let mut end = 0;
        for t in layout.tensors() {
            assert_eq!(t.offset % 32, 0);
            assert!(t.offset >= end, "tensors do not overlap");
            assert_eq!(Some(t.bytes), t.ty.bytes(t.spec.span.len()));
            end = t.offset + t.bytes;
        }
        assert_eq!(layout.len(), end);
        let embed = layout.tensors().next().unwrap();
        assert_eq!(embed.bytes, 40 * 64 / 32 * 34);
    }

    #[test]
    fn uniform_types_address_elements_at_byte_offset_over_size() {
        for dtype in [WeightDtype::F32, WeightDtype::F16, WeightDtype::Bf16] {
            let layout = ByteLayout::new(&config(), dtype, 32).unwrap();
            let size = dtype.size().unwrap();
            assert_eq!(layout.layout(), &WeightLayout::aligned(&config(), 32 / size).unwrap());
            assert_eq!(layout.len(), layout.layout().len() * size);
            for t in layout.tensors() {
                assert_eq!(t.offset, t.spec.offset * size);
            }
        }
    }

    #[test]
    fn encoding_then_decoding_gives_the_values_within_half_a_step() {
        let config = config();
        let n = WeightLayout::new(&config).unwrap().len();
        let values: alloc_free::Values = alloc_free::Values::new(n);
        let layout = ByteLayout::new(&config, WeightDtype::Q8_0, 32).unwrap();
        let mut bytes = [0u8; 70_000];
        let mut back = [0f32; 60_000];
        let (bytes, back) = (&mut bytes[..layout.len()], &mut back[..n]);
        layout.encode(WeightData::F32(values.get()), bytes).unwrap();
        layout.decode(bytes, back).unwrap();
        let canonical = WeightLayout::new(&config).unwrap();
        for (tensor, spec) in layout.tensors().zip(canonical.params()) {
            let (want, got) = (&values.get()[spec.offset..], &back[spec.offset..]);
            for block in 0..spec.span.len() / 32 {
                // A stored block's values, wherever the parameter has them.
                let at = |i: usize| tensor.param_index(block * 32 + i);
                if tensor.ty == TensorType::F32 {
                    (0..32).for_each(|i| assert_eq!(want[at(i)], got[at(i)]));
                    continue;
                }
                let amax = (0..32).fold(0f32, |m, i| m.max(want[at(i)].abs()));
                let step = f16::from_f32(amax / 127.0).to_f32();
                for i in 0..32 {
                    let (w, g) = (want[at(i)], got[at(i)]);
                    // Half a step, plus d's f16 rounding (2^-11 relative) times 127.
                    assert!((w - g).abs() <= step * 0.5 + amax * 1e-3, "{:?} block {block}: {w} vs {g}", tensor.spec);
                }
            }
        }
        // The values decode exactly to what the blocks hold: a second round trip
        // changes nothing.
        let mut again = [0u8; 70_000];
        layout.encode(WeightData::F32(back), &mut again[..layout.len()]).unwrap();
        assert_eq!(&again[..layout.len()], &bytes[..]);
    }

    #[test]
    fn quantizing_refuses_what_it_cannot_hold() {
        let mut out = [0u8; 34];
        assert!(quantize_q8_0(&[0.0; 31], &mut out).is_err());
        let mut values = [1.0f32; 32];
        values[3] = f32::NAN;
        assert!(quantize_q8_0(&values, &mut out).is_err());
        quantize_q8_0(&[0.0; 32], &mut out).unwrap();
        assert_eq!(out, [0u8; 34], "a zero block has scale 0");
        assert!(ByteLayout::new(&config(), WeightDtype::Q8_0, 6).is_err());
        assert_eq!(TensorType::Q8_0.bytes(33), None);
    }

    #[test]
    fn a_transposed_kernel_stores_each_output_s_inputs_together() {
        let layout = ByteLayout::new(&config(), WeightDtype::Q8_0, 32).unwrap();
        let mlp_out = layout.tensors().find(|t| t.spec.param == Param::Layer(0, LayerParam::MlpOut)).unwrap();
        let (rows, cols) = (mlp_out.spec.span.rows, mlp_out.spec.span.cols);
        assert!(mlp_out.is_transposed() && (rows, cols) == (96, 64));
        // Element (r, c) of the (96, 64) kernel is stored at c * 96 + r.
        assert_eq!(mlp_out.stored_index(5 * cols + 7), 7 * rows + 5);
        for e in 0..rows * cols {
            assert_eq!(mlp_out.param_index(mlp_out.stored_index(e)), e);
        }
        let embed = layout.tensors().next().unwrap();
        assert!(!embed.is_transposed() && embed.stored_index(100) == 100);
    }

    #[test]
    fn activations_quantize_to_127_steps_of_their_largest_magnitude() {
        let x: [f32; 5] = [0.5, -1.27, 0.004, 0.0, 1.0];
        let mut q = [0i8; 5];
        let d = quantize_activations(&x, &mut q);
        assert_eq!(d, 1.27 / 127.0);
        assert_eq!(q, [50, -127, 0, 0, 100]);
        assert_eq!(quantize_activations(&[0.0; 3], &mut q[..3]), 0.0);
        assert_eq!(q[..3], [0, 0, 0]);
        for bad in [f32::INFINITY, f32::NEG_INFINITY, f32::NAN, -f32::NAN] {
            q[..2].fill(9);
            let d = quantize_activations(&[1.0, bad], &mut q[..2]);
            assert!(d.is_nan() && q[..2] == [0, 0], "a block holding {bad} makes the product NaN");
        }
        // A whole block (the path for blocks of 32) and the largest magnitude
        // negative.
        let mut x = [0.25f32; 32];
        x[17] = -2.54;
        let mut q = [0i8; 32];
        assert_eq!(quantize_activations(&x, &mut q), 2.54 / 127.0);
        assert_eq!((q[0], q[17]), (13, -127));
    }

    #[test]
    fn rounding_halves_away_from_zero_is_libm_s_roundf() {
        // Every value within 64 ulps of each integer and each half from -130 to
        // 130 (where rounding can go wrong), then a spread of others.
        let mut checked = 0;
        for twice in -260i32..=260 {
            let centre = twice as f32 / 2.0;
            let mut y = centre;
            let mut z = centre;
            for _ in 0..64 {
                for v in [y, z, -y, -z] {
                    assert_eq!(round_half_away(v), libm::roundf(v) as i32, "{v:e}");
                    checked += 1;
                }
                y = libm::nextafterf(y, f32::INFINITY);
                z = libm::nextafterf(z, f32::NEG_INFINITY);
            }
        }
        let mut bits = 0x1234_5678u32;
        for _ in 0..100_000 {
            bits = bits.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let v = f32::from_bits(bits);
            if v.is_finite() && v.abs() < 8_388_608.0 {
                assert_eq!(round_half_away(v), libm::roundf(v) as i32, "{v:e}");
                checked += 1;
            }
        }
        assert!(checked > 100_000);
    }

    /// Deterministic test values without an allocator.
    mod alloc_free {
        pub struct Values {
            data: [f32; 60_000],
            len: usize,
        }
        impl Values {
            pub fn new(len: usize) -> Values {
                let mut data = [0f32; 60_000];
                let mut x = 12345u32;
                for v in data.iter_mut().take(len) {
                    x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    *v = (x >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0;
                }
                Values { data, len }
            }
            pub fn get(&self) -> &[f32] {
                &self.data[..self.len]
            }
        }
    }
}
