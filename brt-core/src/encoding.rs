//! How a model's parameters lie in bytes: the storage type of each tensor, the
//! 8-bit block format (GGML's Q8_0), and where each tensor starts in a model
//! file's tensor data, which a backend can use where it lies.
//!
//! A model stored as f32, f16 or bf16 has every tensor in that type. A model
//! stored as [`WeightDtype::Q8_0`] keeps the bulk of its parameters, the matrices,
//! in blocks of 32 signed bytes with one f16 scale each (34 bytes for 32 values,
//! 8.5 bits a value), and its vectors (norm scales, attention scales, gate biases)
//! in f32: they are a tiny part of the model and set the scale of everything
//! downstream. A matrix whose rows are not whole blocks stays f32 too, so every
//! configuration can be stored; the blocks run along a matrix's rows (its
//! innermost, contiguous dimension), as GGML lays them out.

use crate::error::{CoreError, CoreResult};
use crate::kernels::{WeightData, WeightDtype};
use crate::params::{Param, ParamSpec, WeightLayout};
use crate::Config;
use half::f16;

/// What a backend that cannot read Q8_0 weights says when asked to hold them.
pub const Q8_0_CPU_ONLY: &str = "q8_0 weights (8-bit blocks) run on the CPU backend only; use --backend cpu, or \
                                 convert the model for this backend: brt convert MODEL OUT.gguf --dtype f16";

/// Values in one Q8_0 block.
pub const Q8_0_BLOCK: usize = 32;
/// Bytes of one Q8_0 block: the f16 scale `d` (little-endian), then 32 signed
/// bytes `q`; value `i` is `d * q[i]`.
pub const Q8_0_BLOCK_BYTES: usize = 2 + Q8_0_BLOCK;

/// How one tensor is encoded.
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
    pub const fn bytes(self, len: usize) -> Option<usize> {
        match self {
            TensorType::F32 => len.checked_mul(4),
            TensorType::F16 | TensorType::Bf16 => len.checked_mul(2),
            TensorType::Q8_0 if len % Q8_0_BLOCK == 0 => (len / Q8_0_BLOCK).checked_mul(Q8_0_BLOCK_BYTES),
            TensorType::Q8_0 => None,
        }
    }

    /// The alignment in bytes the values need in memory to be used in place.
    pub const fn align(self) -> usize {
        match self {
            TensorType::F32 => 4,
            // A block's scale is an f16 at the block's start; blocks are 34 bytes.
            TensorType::F16 | TensorType::Bf16 | TensorType::Q8_0 => 2,
        }
    }
}

impl WeightDtype {
    /// How a parameter with rows of `cols` values is stored in a model of this
    /// type (see the module's documentation).
    pub const fn tensor_type(self, param: Param, cols: usize) -> TensorType {
        match self {
            WeightDtype::F32 => TensorType::F32,
            WeightDtype::F16 => TensorType::F16,
            WeightDtype::Bf16 => TensorType::Bf16,
            WeightDtype::Q8_0 if !param.is_vector() && cols % Q8_0_BLOCK == 0 => TensorType::Q8_0,
            WeightDtype::Q8_0 => TensorType::F32,
        }
    }
}

/// One parameter's place in a model's tensor data.
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

/// Where every tensor of a model lies in its tensor data (a model file's data
/// section), for a storage type and an alignment: tensors follow one another in
/// canonical order, each at the next multiple of `align` bytes.
///
/// The elements are addressed by [`ByteLayout::layout`]: for f32, f16 and bf16 it
/// is the aligned layout whose element offsets are the byte offsets divided by the
/// type's size (so the data is one array of values); for Q8_0, whose tensors have
/// different types, the canonical one.
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
    pub const fn layout(&self) -> &WeightLayout {
        &self.layout
    }

    /// The model's storage type.
    pub const fn dtype(&self) -> WeightDtype {
        self.dtype
    }

    /// Every tensor's alignment in bytes.
    pub const fn align(&self) -> usize {
        self.align
    }

    /// Bytes of the tensor data, up to the end of the last tensor.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether there is no data (never for a valid configuration).
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every tensor in canonical order (sizes were checked by [`ByteLayout::new`]).
    pub fn tensors(&self) -> impl Iterator<Item = StoredTensor> + '_ {
        self.walk().map_while(Result::ok)
    }

    /// The tensor holding elements `offset .. offset + len` of
    /// [`ByteLayout::layout`], or `None` when they are not all inside one tensor.
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
            let value = |i: usize| weights.get(from.offset + i).unwrap_or(0.0);
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
                    for (block, dst) in src.chunks_exact(Q8_0_BLOCK_BYTES).zip(dst.chunks_exact_mut(Q8_0_BLOCK)) {
                        for (i, v) in dst.iter_mut().enumerate() {
                            *v = q8_0_value(block, i);
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
        self.layout.params().map(move |spec| {
            let ty = self.dtype.tensor_type(spec.param, spec.span.cols);
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

/// Value `i` (below 32) of a Q8_0 block: `d * q[i]`, exact in f32 (an 11-bit
/// significand times an 8-bit integer).
#[inline(always)]
pub fn q8_0_value(block: &[u8], i: usize) -> f32 {
    q8_0_scale(block) * (block[2 + i] as i8) as f32
}

/// The scale `d` of a Q8_0 block.
#[inline(always)]
pub fn q8_0_scale(block: &[u8]) -> f32 {
    f16::from_bits(u16::from_le_bytes([block[0], block[1]])).to_f32()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::LayerParam;

    fn config() -> Config {
        // d = 64 and F = 96: the projections' rows are whole blocks; the heads'
        // 2 x 8 = 16 columns are not, so those matrices stay f32.
        Config::plain(40, 64, 2, 8, 96, 2, 4)
    }

    #[test]
    fn q8_0_quantizes_matrices_with_whole_blocks_and_keeps_vectors_f32() {
        let layout = ByteLayout::new(&config(), WeightDtype::Q8_0, 32).unwrap();
        let ty = |p| layout.tensors().find(|t| t.spec.param == p).unwrap().ty;
        assert_eq!(ty(Param::Embedding), TensorType::Q8_0);
        assert_eq!(ty(Param::FinalNorm), TensorType::F32);
        assert_eq!(ty(Param::Layer(0, LayerParam::AttnNorm)), TensorType::F32);
        assert_eq!(ty(Param::Layer(1, LayerParam::Query)), TensorType::F32, "16 columns");
        assert_eq!(ty(Param::Layer(1, LayerParam::MlpIn)), TensorType::Q8_0, "96 columns");
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
            let range = spec.offset..spec.offset + spec.span.len();
            for (block, (want, got)) in values.get()[range.clone()].chunks(32).zip(back[range].chunks(32)).enumerate() {
                if tensor.ty == TensorType::F32 {
                    assert_eq!(want, got);
                    continue;
                }
                let amax = want.iter().fold(0f32, |m, v| m.max(v.abs()));
                let step = f16::from_f32(amax / 127.0).to_f32();
                for (w, g) in want.iter().zip(got) {
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
