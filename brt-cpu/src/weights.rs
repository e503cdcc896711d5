//! Parameter storage: f32, or 16-bit values (f16, bf16) that are widened to f32
//! as the kernels read them, so a 16-bit model takes half the memory; owned, or
//! used in place from read-only bytes (flash, ROM, a mapped file), where a model
//! can also be 8-bit (Q8_0 blocks, multiplied in 8-bit integers by products,
//! see [`crate::gemv`], and widened to f32 where they are read otherwise).

use crate::gemm::BSource;
use crate::CpuError;
use brt_core::desc::WeightOrder;
use brt_core::encoding::{q8_0_value, Q8_0_BLOCK, Q8_0_BLOCK_BYTES};
use brt_core::half::{bf16, f16};
use brt_core::kernels::check_extent;
use brt_core::{ByteLayout, CoreError, CoreResult, HostMemory, TensorType, WeightData, WeightDtype};

/// The parameter buffer of the CPU backend.
///
/// Weights written as f32 are stored in the buffer's own type: bf16 keeps 7
/// bits of an f32's mantissa, so 1.5 is exact and 1 + 2^-10 rounds to 1:
///
/// ```
/// use brt_core::desc::Matmul;
/// use brt_core::{Kernels, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
/// use brt_cpu::{Cpu, CpuError, CpuWeights, Heap, SimdLevel};
///
/// let mut k = Cpu::with_level(Heap, SimdLevel::Scalar)?;
/// let mut w = k.alloc_weights(2, WeightDtype::Bf16)?;
/// assert!(matches!(w, CpuWeights::Bf16(_)));
/// k.write_weights(&mut w, 0, WeightData::F32(&[1.5, 1.0 + 1.0 / 1024.0]))?;
/// // Read them back through a (1, 1) x (1, 2) product with x = 1.
/// let mut x = k.alloc_tensor(1)?;
/// k.write_tensor(&mut x, 0, &[1.0])?;
/// let mut out = k.alloc_tensor(2)?;
/// k.matmul(View::new(&x, 0), WeightView::new(&w, 0), ViewMut::new(&mut out, 0), Matmul::new(1, 1, 2)?)?;
/// let mut y = [0f32; 2];
/// k.read_tensor(&out, 0, &mut y)?;
/// assert_eq!(y, [1.5, 1.0]);
/// # Ok::<(), CpuError>(())
/// ```
pub enum CpuWeights<M: HostMemory> {
    /// Single precision.
    F32(M::F32),
    /// IEEE half precision, stored as raw bits.
    F16(M::U16),
    /// bfloat16, stored as raw bits.
    Bf16(M::U16),
    /// Values of the given type used where they lie, read-only: little-endian
    /// bytes, aligned for the type (checked by [`crate::Cpu::weights_in_place`]).
    InPlace(M::Bytes, WeightDtype),
    /// A Q8_0 model's tensor data used where it lies, read-only: each tensor
    /// where the layout puts it, in its own type (checked by
    /// [`crate::Cpu::weights_in_place`]).
    Quantized(M::Bytes, ByteLayout),
}

impl<M: HostMemory> core::fmt::Debug for CpuWeights<M> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "CpuWeights({}, {} values)", self.dtype().name(), self.len())
    }
}

impl<M: HostMemory> CpuWeights<M> {
    /// How the values are stored.
    ///
    /// The type the buffer was allocated with:
    ///
    /// ```
    /// use brt_core::{Storage, WeightDtype};
    /// use brt_cpu::{Cpu, Heap};
    ///
    /// let mut k = Cpu::new(Heap).unwrap();
    /// for dtype in [WeightDtype::F32, WeightDtype::F16, WeightDtype::Bf16] {
    ///     assert_eq!(k.alloc_weights(4, dtype).unwrap().dtype(), dtype);
    /// }
    /// ```
    pub fn dtype(&self) -> WeightDtype {
        match self {
            CpuWeights::F32(_) => WeightDtype::F32,
            CpuWeights::F16(_) => WeightDtype::F16,
            CpuWeights::Bf16(_) => WeightDtype::Bf16,
            CpuWeights::InPlace(_, dtype) => *dtype,
            CpuWeights::Quantized(..) => WeightDtype::Q8_0,
        }
    }

    /// Views `bytes` (exactly the layout's length: checked by
    /// [`crate::Cpu::weights_in_place`]) as the tensor data `layout` describes,
    /// or `None` when their address is not aligned for every tensor type in it
    /// (the layout keeps each tensor at a multiple of 4 bytes from the start).
    pub(crate) fn in_place(bytes: M::Bytes, layout: &ByteLayout) -> Option<CpuWeights<M>> {
        // A Q8_0 model's f32 tensors need 4 bytes; its data as a whole need not
        // be a multiple of 4 bytes long (its last tensor may be blocks).
        let align = layout.dtype().size().unwrap_or(4);
        if !(bytes.as_ptr() as usize).is_multiple_of(align) {
            return None;
        }
        Some(match layout.dtype() {
            WeightDtype::Q8_0 => CpuWeights::Quantized(bytes, *layout),
            dtype => CpuWeights::InPlace(bytes, dtype),
        })
    }

    /// Whether the values are used in place (and so cannot be written).
    ///
    /// Buffers the backend allocated, or built from owned values, are not:
    ///
    /// ```
    /// use brt_core::{Storage, WeightDtype};
    /// use brt_cpu::{Cpu, CpuWeights, Heap};
    ///
    /// let mut k = Cpu::new(Heap).unwrap();
    /// assert!(!k.alloc_weights(4, WeightDtype::F16).unwrap().is_in_place());
    /// assert!(!CpuWeights::<Heap>::F32(vec![1.0, 2.0]).is_in_place());
    /// ```
    pub fn is_in_place(&self) -> bool {
        matches!(self, CpuWeights::InPlace(..) | CpuWeights::Quantized(..))
    }

    /// Number of values (the elements the model's layout addresses).
    ///
    /// Values, not bytes:
    ///
    /// ```
    /// use brt_core::{Storage, WeightDtype};
    /// use brt_cpu::{Cpu, CpuWeights, Heap};
    ///
    /// let mut k = Cpu::new(Heap).unwrap();
    /// assert_eq!(k.alloc_weights(6, WeightDtype::F16).unwrap().len(), 6);
    /// assert_eq!(CpuWeights::<Heap>::F32(vec![1.0, 2.0, 3.0]).len(), 3);
    /// ```
    pub fn len(&self) -> usize {
        match self {
            CpuWeights::Quantized(_, layout) => layout.layout().len(),
            _ => self.slice().len(),
        }
    }

    /// Whether there are no values.
    ///
    /// Only an empty buffer is:
    ///
    /// ```
    /// use brt_cpu::{CpuWeights, Heap};
    ///
    /// assert!(CpuWeights::<Heap>::F32(Vec::new()).is_empty());
    /// assert!(!CpuWeights::<Heap>::Bf16(vec![0u16]).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of storage the values take.
    ///
    /// Four bytes per f32 value, two per f16 or bf16 value:
    ///
    /// ```
    /// use brt_core::{Storage, WeightDtype};
    /// use brt_cpu::{Cpu, Heap};
    ///
    /// let mut k = Cpu::new(Heap).unwrap();
    /// assert_eq!(k.alloc_weights(10, WeightDtype::F32).unwrap().bytes(), 40);
    /// assert_eq!(k.alloc_weights(10, WeightDtype::F16).unwrap().bytes(), 20);
    /// assert_eq!(k.alloc_weights(10, WeightDtype::Bf16).unwrap().bytes(), 20);
    /// ```
    pub fn bytes(&self) -> usize {
        match self {
            CpuWeights::Quantized(bytes, _) => bytes.len(),
            _ => self.len() * self.dtype().size().unwrap_or(4),
        }
    }

    /// Values `offset .. offset + len`, which lie inside one tensor for a Q8_0
    /// model (the core only asks for views of one parameter).
    pub(crate) fn range(&self, what: &'static str, offset: usize, len: usize) -> CoreResult<WSlice<'_>> {
        let CpuWeights::Quantized(bytes, layout) = self else {
            return self.slice().range(what, offset, len);
        };
        check_extent(what, offset, len, self.len())?;
        let tensor = layout
            .locate(offset, len)
            .ok_or(CoreError::InvalidShape { what: "a view of Q8_0 weights must lie inside one tensor" })?;
        if tensor.is_transposed() {
            return Err(CoreError::InvalidShape { what: "a Q8_0 kernel is read by products only" });
        }
        let data = &bytes[tensor.offset..tensor.offset + tensor.bytes];
        let start = offset - tensor.spec.offset;
        Ok(match tensor.ty {
            TensorType::Q8_0 => WSlice::Q8 { blocks: data, start, len },
            // `in_place` checked that the data is 4-byte aligned and the layout
            // places every tensor at a multiple of 4 bytes; a Q8_0 model's other
            // tensors are f32, so the view exists.
            _ => WSlice::F32(
                bytemuck::try_cast_slice(data)
                    .ok()
                    .and_then(|values: &[f32]| values.get(start..start + len))
                    .ok_or(CoreError::InvalidShape { what: "a Q8_0 model's f32 tensor is not 4-byte aligned" })?,
            ),
        })
    }

    /// The right-hand side of a product `x @ w`, `w` the `(k, n)` values from
    /// `offset` read in `order`. A Q8_0 kernel is stored transposed (its blocks
    /// along the summed dimension, see `brt_core::encoding`), so its view, rows
    /// `r0 .. r0 + k` of the whole kernel, is read as `OutIn` rows of the stored
    /// tensor from column `r0`. Every Q8_0 source starts and strides at whole
    /// blocks and sums over whole blocks, which the integer products rely on.
    pub(crate) fn product_source(
        &self,
        what: &'static str,
        offset: usize,
        (k, n): (usize, usize),
        order: WeightOrder,
    ) -> CoreResult<BSource<'_>> {
        let len = k.checked_mul(n).ok_or(CoreError::SizeOverflow { what })?;
        let plain = |w| match order {
            WeightOrder::InOut => BSource::InOut(w, n),
            WeightOrder::OutIn => BSource::OutIn(w, k),
        };
        let CpuWeights::Quantized(bytes, layout) = self else {
            return Ok(plain(self.range(what, offset, len)?));
        };
        check_extent(what, offset, len, self.len())?;
        let tensor = layout
            .locate(offset, len)
            .ok_or(CoreError::InvalidShape { what: "a view of Q8_0 weights must lie inside one tensor" })?;
        let source = if tensor.is_transposed() {
            let (rows, cols) = (tensor.spec.span.rows, tensor.spec.span.cols);
            let start = offset - tensor.spec.offset;
            if order != WeightOrder::InOut || n != cols || !start.is_multiple_of(cols) {
                return Err(CoreError::InvalidShape {
                    what: "a Q8_0 kernel is read by products of whole rows, as (input, output)",
                });
            }
            let data = &bytes[tensor.offset..tensor.offset + tensor.bytes];
            // Element (r, j) of the view is stored at j * rows + start / cols + r.
            BSource::OutIn(WSlice::Q8 { blocks: data, start: start / cols, len: (n - 1) * rows + k }, rows)
        } else {
            plain(self.range(what, offset, len)?)
        };
        match source {
            BSource::OutIn(WSlice::Q8 { start, .. }, ld)
                if !start.is_multiple_of(Q8_0_BLOCK)
                    || !ld.is_multiple_of(Q8_0_BLOCK)
                    || !k.is_multiple_of(Q8_0_BLOCK) =>
            {
                Err(CoreError::InvalidShape { what: "a product with Q8_0 weights must sum over whole blocks" })
            }
            BSource::InOut(WSlice::Q8 { .. }, _) => {
                Err(CoreError::InvalidShape { what: "a product with Q8_0 weights must sum along their blocks" })
            }
            source => Ok(source),
        }
    }

    /// A borrowed view of every value of a uniformly stored buffer (empty for a
    /// Q8_0 model, whose tensors are reached through [`CpuWeights::range`]).
    fn slice(&self) -> WSlice<'_> {
        match self {
            CpuWeights::F32(v) => WSlice::F32(v),
            CpuWeights::F16(v) => WSlice::F16(v),
            CpuWeights::Bf16(v) => WSlice::Bf16(v),
            // `in_place` checked length and alignment; the bytes cannot change.
            CpuWeights::InPlace(bytes, WeightDtype::F32) => WSlice::F32(bytemuck::try_cast_slice(bytes).unwrap_or(&[])),
            CpuWeights::InPlace(bytes, WeightDtype::F16) => WSlice::F16(bytemuck::try_cast_slice(bytes).unwrap_or(&[])),
            CpuWeights::InPlace(bytes, WeightDtype::Bf16) => {
                WSlice::Bf16(bytemuck::try_cast_slice(bytes).unwrap_or(&[]))
            }
            CpuWeights::InPlace(_, WeightDtype::Q8_0) | CpuWeights::Quantized(..) => WSlice::F32(&[]),
        }
    }

    /// Stores `src` from element `offset`, rounding to the storage type (to
    /// nearest, ties to even). Parameters used in place are read-only.
    pub(crate) fn write(&mut self, offset: usize, src: WeightData<'_>) -> Result<(), CpuError> {
        let len = src.len();
        match self {
            CpuWeights::InPlace(..) | CpuWeights::Quantized(..) => return Err(CpuError::ReadOnlyWeights),
            CpuWeights::F32(dst) => {
                check_extent("weights write", offset, len, dst.len())?;
                let dst = &mut dst[offset..offset + len];
                match src {
                    WeightData::F32(s) => dst.copy_from_slice(s),
                    WeightData::F16(s) => dst.iter_mut().zip(s).for_each(|(d, v)| *d = v.to_f32()),
                    WeightData::Bf16(s) => dst.iter_mut().zip(s).for_each(|(d, v)| *d = v.to_f32()),
                }
            }
            CpuWeights::F16(dst) => {
                check_extent("weights write", offset, len, dst.len())?;
                let dst = &mut dst[offset..offset + len];
                match src {
                    WeightData::F32(s) => dst.iter_mut().zip(s).for_each(|(d, &v)| *d = f16::from_f32(v).to_bits()),
                    WeightData::F16(s) => dst.iter_mut().zip(s).for_each(|(d, v)| *d = v.to_bits()),
                    WeightData::Bf16(s) => {
                        dst.iter_mut().zip(s).for_each(|(d, v)| *d = f16::from_f32(v.to_f32()).to_bits())
                    }
                }
            }
            CpuWeights::Bf16(dst) => {
                check_extent("weights write", offset, len, dst.len())?;
                let dst = &mut dst[offset..offset + len];
                match src {
                    WeightData::F32(s) => dst.iter_mut().zip(s).for_each(|(d, &v)| *d = bf16::from_f32(v).to_bits()),
                    WeightData::F16(s) => {
                        dst.iter_mut().zip(s).for_each(|(d, v)| *d = bf16::from_f32(v.to_f32()).to_bits())
                    }
                    WeightData::Bf16(s) => dst.iter_mut().zip(s).for_each(|(d, v)| *d = v.to_bits()),
                }
            }
        }
        Ok(())
    }
}

/// A borrowed run of values in any storage type (parameters, or f32 activations
/// used as a product's right-hand side).
#[derive(Clone, Copy, Debug)]
pub(crate) enum WSlice<'a> {
    F32(&'a [f32]),
    F16(&'a [u16]),
    Bf16(&'a [u16]),
    /// Values `start .. start + len` of a tensor stored as Q8_0 `blocks`.
    Q8 {
        /// The tensor's blocks, [`Q8_0_BLOCK_BYTES`] bytes each.
        blocks: &'a [u8],
        /// The first value, counted from the tensor's first.
        start: usize,
        /// Number of values.
        len: usize,
    },
}

impl<'a> WSlice<'a> {
    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            WSlice::F32(v) => v.len(),
            WSlice::F16(v) | WSlice::Bf16(v) => v.len(),
            WSlice::Q8 { len, .. } => *len,
        }
    }

    /// The values `offset .. offset + len`, or a `BufferTooSmall` error naming `what`.
    pub fn range(&self, what: &'static str, offset: usize, len: usize) -> CoreResult<WSlice<'a>> {
        check_extent(what, offset, len, self.len())?;
        Ok(match *self {
            WSlice::F32(v) => WSlice::F32(&v[offset..offset + len]),
            WSlice::F16(v) => WSlice::F16(&v[offset..offset + len]),
            WSlice::Bf16(v) => WSlice::Bf16(&v[offset..offset + len]),
            WSlice::Q8 { blocks, start, .. } => WSlice::Q8 { blocks, start: start + offset, len },
        })
    }

    /// Value `i` widened to f32 (`i` must be below `len`; 0 otherwise).
    #[inline(always)]
    pub fn get(&self, i: usize) -> f32 {
        match self {
            WSlice::F32(v) => v.get(i).copied().unwrap_or(0.0),
            WSlice::F16(v) => v.get(i).map_or(0.0, |&b| f16::from_bits(b).to_f32()),
            WSlice::Bf16(v) => v.get(i).map_or(0.0, |&b| bf16::from_bits(b).to_f32()),
            WSlice::Q8 { blocks, start, len } => {
                let at = start + i;
                match blocks.get(at / Q8_0_BLOCK * Q8_0_BLOCK_BYTES..) {
                    Some(block) if i < *len && block.len() >= Q8_0_BLOCK_BYTES => q8_0_value(block, at % Q8_0_BLOCK),
                    _ => 0.0,
                }
            }
        }
    }

    /// Widens values `offset ..` into `out` (as many as `out` holds; the caller has
    /// checked the range).
    #[inline(always)]
    pub fn widen(&self, offset: usize, out: &mut [f32]) {
        match self {
            WSlice::F32(v) => out.copy_from_slice(&v[offset..offset + out.len()]),
            WSlice::F16(v) => {
                out.iter_mut().zip(&v[offset..]).for_each(|(o, &b)| *o = f16::from_bits(b).to_f32());
            }
            WSlice::Bf16(v) => {
                out.iter_mut().zip(&v[offset..]).for_each(|(o, &b)| *o = bf16::from_bits(b).to_f32());
            }
            WSlice::Q8 { .. } => out.iter_mut().enumerate().for_each(|(i, o)| *o = self.get(offset + i)),
        }
    }
}

/// Calls `f(start, values)` for consecutive runs of at most 256 values of `w`,
/// widened to f32 on the stack (f32 storage is passed through as it is).
#[inline(always)]
pub(crate) fn for_each_run(w: WSlice<'_>, mut f: impl FnMut(usize, &[f32])) {
    const RUN: usize = 256;
    match w {
        WSlice::F32(v) => {
            for (i, run) in v.chunks(RUN).enumerate() {
                f(i * RUN, run);
            }
        }
        _ => {
            let mut buf = [0f32; RUN];
            let mut start = 0;
            while start < w.len() {
                let len = RUN.min(w.len() - start);
                w.widen(start, &mut buf[..len]);
                f(start, &buf[..len]);
                start += len;
            }
        }
    }
}
