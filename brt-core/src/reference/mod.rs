//! The scalar reference implementation of [`Kernels`] and [`Gradients`]: clear,
//! not fast; the oracle every backend is checked against.
//!
//! Values are stored as `R` (f32 for the oracle, f64 for gradient checks by finite
//! differences); every kernel computes in f64 and rounds once when it stores, and
//! follows its SPEC formula literally.
//!
//! A sum whose terms cancel shows the single rounding: `1e8 + 1 - 1e8` is 0 in
//! f32 arithmetic, but the reference product returns 1.
//!
//! ```
//! use brt_core::{desc::Matmul, Arena, Kernels, Reference, Storage};
//! use brt_core::{View, ViewMut, WeightData, WeightDtype, WeightView};
//! # let mut f32s = vec![0f32; 16];
//! let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut []));
//! let (mut x, mut out) = (k.alloc_tensor(3)?, k.alloc_tensor(1)?);
//! k.write_tensor(&mut x, 0, &[1e8, 1.0, -1e8])?;
//! let mut w = k.alloc_weights(3, WeightDtype::F32)?;
//! k.write_weights(&mut w, 0, WeightData::F32(&[1.0; 3]))?;
//! k.matmul(View::new(&x, 0), WeightView::new(&w, 0), ViewMut::new(&mut out, 0), Matmul::new(1, 3, 1)?)?;
//! assert_eq!(out[0], 1.0);
//! assert_eq!(1e8f32 + 1.0 - 1e8, 0.0);
//! # Ok::<(), brt_core::CoreError>(())
//! ```
//!
//! [`Gradients`]: crate::gradients::Gradients

mod backward;
mod forward;
mod params;
#[cfg(test)]
mod tests;

use crate::encoding::ByteLayout;
use crate::error::{CoreError, CoreResult};
use crate::kernels::{check_extent, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
use crate::memory::{HostMemory, Real};
use core::marker::PhantomData;
use core::ops::Deref;
use params::Params;
pub use params::RefWeights;

/// The reference backend over a source of host memory, storing values as `R`.
///
/// A backend over 64 caller-owned floats: its buffers are carved out of them, nothing is allocated.
///
/// ```
/// use brt_core::{Arena, Reference, Storage};
/// let mut f32s = [0f32; 64];
/// let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut []));
/// let x = k.alloc_tensor(60)?;
/// assert_eq!(x.len(), 60);
/// assert!(k.alloc_tensor(5).is_err()); // only 4 left
/// # Ok::<(), brt_core::CoreError>(())
/// ```
#[derive(Debug)]
pub struct Reference<M: HostMemory, R: Real = f32> {
    memory: M,
    precision: PhantomData<R>,
}

/// The reference backend in double precision (for gradient checks).
///
/// Double precision keeps values that f32 would round: 0.1 stays exactly `0.1f64`.
///
/// ```
/// use brt_core::{Arena, Reference64, Storage};
/// let mut f64s = vec![0f64; 4];
/// let mut k = Reference64::new_f64(Arena::new(&mut [], &mut [], &mut []).with_f64(&mut f64s));
/// let mut x = k.alloc_tensor(1)?;
/// k.write_exact(&mut x, 0, &[0.1])?;
/// assert_eq!(x[0], 0.1f64);
/// # Ok::<(), brt_core::CoreError>(())
/// ```
pub type Reference64<M> = Reference<M, f64>;

impl<M: HostMemory> Reference<M, f32> {
    /// A single-precision reference backend drawing its buffers from `memory`.
    ///
    /// Its tensors are f32 slices of the arena's f32 pool.
    ///
    /// ```
    /// use brt_core::{Arena, Reference, Storage};
    /// let mut f32s = vec![0f32; 8];
    /// let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut []));
    /// let x: &mut [f32] = k.alloc_tensor(3)?;
    /// assert_eq!(x.len(), 3);
    /// assert_eq!(k.memory().remaining(), (5, 0, 0));
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub fn new(memory: M) -> Self {
        Reference { memory, precision: PhantomData }
    }
}

impl<M: HostMemory> Reference<M, f64> {
    /// A double-precision reference backend drawing its buffers from `memory`.
    ///
    /// Its tensors come from the arena's f64 pool; the f32 pool is not touched.
    ///
    /// ```
    /// use brt_core::{Arena, Reference, Storage};
    /// let (mut f32s, mut f64s) = (vec![0f32; 4], vec![0f64; 8]);
    /// let mut k = Reference::new_f64(Arena::new(&mut f32s, &mut [], &mut []).with_f64(&mut f64s));
    /// let x: &mut [f64] = k.alloc_tensor(8)?;
    /// assert_eq!(x.len(), 8);
    /// assert_eq!(k.memory().remaining(), (4, 0, 0));
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub fn new_f64(memory: M) -> Self {
        Reference { memory, precision: PhantomData }
    }
}

impl<M: HostMemory, R: Real> Reference<M, R> {
    /// The memory source (e.g. to see how much of an arena is left).
    ///
    /// An arena shows how much is left after a few buffers.
    ///
    /// ```
    /// use brt_core::{Arena, Reference, Storage};
    /// let (mut f32s, mut ids) = (vec![0f32; 10], vec![0u32; 4]);
    /// let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
    /// let (_x, _t) = (k.alloc_tensor(4)?, k.alloc_tokens(1)?);
    /// assert_eq!(k.memory().remaining(), (6, 0, 3));
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub fn memory(&self) -> &M {
        &self.memory
    }

    /// Copies values out at full precision (for f64 checks that must not round
    /// through f32).
    ///
    /// In double precision `read_exact` returns the stored value, while `read_tensor` rounds it to
    /// f32.
    ///
    /// ```
    /// use brt_core::{Arena, Reference64, Storage};
    /// let mut f64s = vec![0f64; 4];
    /// let mut k = Reference64::new_f64(Arena::new(&mut [], &mut [], &mut []).with_f64(&mut f64s));
    /// let mut x = k.alloc_tensor(2)?;
    /// k.write_exact(&mut x, 0, &[0.1, 1.0 / 3.0])?;
    /// let mut exact = [0f64; 1];
    /// k.read_exact(&x, 1, &mut exact)?;
    /// assert_eq!(exact, [1.0 / 3.0]);
    /// let mut rounded = [0f32; 1];
    /// k.read_tensor(&x, 1, &mut rounded)?;
    /// assert_eq!(rounded, [1.0f32 / 3.0]);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub fn read_exact(&self, src: &R::Buffer<M>, offset: usize, dst: &mut [R]) -> CoreResult<()> {
        dst.copy_from_slice(range("tensor read", src, offset, dst.len())?);
        Ok(())
    }

    /// Copies parameter values in at full precision (parameters used in place
    /// are read-only).
    ///
    /// A double-precision parameter takes a value f32 cannot hold.
    ///
    /// ```
    /// use brt_core::{Arena, Reference64, Storage, WeightDtype};
    /// let mut f64s = vec![0f64; 4];
    /// let mut k = Reference64::new_f64(Arena::new(&mut [], &mut [], &mut []).with_f64(&mut f64s));
    /// let mut w = k.alloc_weights(2, WeightDtype::F32)?;
    /// k.write_weights_exact(&mut w, 1, &[0.1])?;
    /// assert_eq!(w.values(), Some(&[0.0, 0.1][..]));
    /// assert!(k.write_weights_exact(&mut w, 2, &[1.0]).is_err());
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub fn write_weights_exact(
        &self,
        dst: &mut RefWeights<R::Buffer<M>, M::Bytes>,
        offset: usize,
        src: &[R],
    ) -> CoreResult<()> {
        match dst {
            RefWeights::Values(values) => self.write_exact(values, offset, src),
            RefWeights::InPlace(..) => Err(CoreError::InvalidShape { what: "weights used in place are read-only" }),
        }
    }

    /// Parameters used where they lie: `bytes` (exactly `layout.len()` of them)
    /// hold a model's tensor data as `layout` says, each value decoded exactly as
    /// a kernel reads it, nothing copied. For a [`crate::Model`] of
    /// `layout.layout()`.
    ///
    /// A model's f32 tensor data, encoded as a file holds it, read in place: embedding values
    /// copied out of it are the ones that were encoded. Bytes of the wrong length are refused.
    ///
    /// ```
    /// use brt_core::desc::Strided;
    /// use brt_core::{encoding::ByteLayout, init::initialize, Arena, Config, Kernels, Param, Reference, Storage};
    /// use brt_core::{ViewMut, WeightData, WeightDtype, WeightLayout, WeightView};
    /// let config = Config::plain(11, 4, 1, 3, 5, 2, 2);
    /// let canonical = WeightLayout::new(&config)?;
    /// let mut weights = vec![0f32; canonical.len()];
    /// initialize(&config, 1, &mut weights)?;
    /// let layout = ByteLayout::new(&config, WeightDtype::F32, 4)?;
    /// let mut bytes = vec![0u8; layout.len()];
    /// layout.encode(WeightData::F32(&weights), &mut bytes)?;
    /// let mut f32s = vec![0f32; 4];
    /// let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut []));
    /// assert!(k.weights_in_place(&bytes[1..], &layout).is_err());
    /// let w = k.weights_in_place(&bytes, &layout)?;
    /// let (at, from) = (layout.layout().span(Param::Embedding).unwrap(), canonical.span(Param::Embedding).unwrap());
    /// let mut x = k.alloc_tensor(4)?;
    /// k.copy_weights(WeightView::new(&w, at.offset), ViewMut::new(&mut x, 0), Strided::contiguous(4))?;
    /// assert_eq!(x[..], weights[from.offset..from.offset + 4]);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub fn weights_in_place(
        &self,
        bytes: M::Bytes,
        layout: &ByteLayout,
    ) -> CoreResult<RefWeights<R::Buffer<M>, M::Bytes>> {
        if bytes.len() != layout.len() {
            let (expected, actual) = (layout.len(), bytes.len());
            return Err(CoreError::LengthMismatch { what: "tensor data bytes", expected, actual });
        }
        Ok(RefWeights::InPlace(bytes, *layout))
    }

    /// Copies values in at full precision.
    ///
    /// Values land unrounded from the offset on; a write past the end is refused.
    ///
    /// ```
    /// use brt_core::{Arena, Reference64, Storage};
    /// let mut f64s = vec![0f64; 4];
    /// let mut k = Reference64::new_f64(Arena::new(&mut [], &mut [], &mut []).with_f64(&mut f64s));
    /// let mut x = k.alloc_tensor(3)?;
    /// k.write_exact(&mut x, 1, &[0.1, 0.2])?;
    /// assert_eq!(x[..], [0.0, 0.1, 0.2]);
    /// assert!(k.write_exact(&mut x, 2, &[0.1, 0.2]).is_err());
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub fn write_exact(&self, dst: &mut R::Buffer<M>, offset: usize, src: &[R]) -> CoreResult<()> {
        range_mut("tensor write", dst, offset, src.len())?.copy_from_slice(src);
        Ok(())
    }
}

/// The elements `offset .. offset + len` of a buffer, or a `BufferTooSmall` error.
pub(crate) fn range<'a, T>(what: &'static str, data: &'a [T], offset: usize, len: usize) -> CoreResult<&'a [T]> {
    check_extent(what, offset, len, data.len())?;
    Ok(&data[offset..offset + len])
}

pub(crate) fn range_mut<'a, T>(
    what: &'static str,
    data: &'a mut [T],
    offset: usize,
    len: usize,
) -> CoreResult<&'a mut [T]> {
    check_extent(what, offset, len, data.len())?;
    Ok(&mut data[offset..offset + len])
}

/// The `len` values of a read-only view.
pub(crate) fn view<'a, B: core::ops::Deref<Target = [R]>, R>(
    what: &'static str,
    v: View<'a, B>,
    len: usize,
) -> CoreResult<&'a [R]> {
    range(what, v.tensor, v.offset, len)
}

/// The `len` values of a writable view.
pub(crate) fn view_mut<'a, B: core::ops::DerefMut<Target = [R]>, R>(
    what: &'static str,
    v: ViewMut<'a, B>,
    len: usize,
) -> CoreResult<&'a mut [R]> {
    range_mut(what, v.tensor, v.offset, len)
}

/// The `len` values of a parameter view.
pub(crate) fn weights<'a, B: Deref<Target = [R]>, Bytes: Deref<Target = [u8]>, R: Real>(
    what: &'static str,
    v: WeightView<'a, RefWeights<B, Bytes>>,
    len: usize,
) -> CoreResult<Params<'a, R>> {
    v.weights.range(what, v.offset, len)
}

/// `sum a_i b_i` in f64.
pub(crate) fn dot<R: Real>(a: &[R], b: &[R]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| x.to_f64() * y.to_f64()).sum()
}

/// Element `i` in f64.
#[inline]
pub(crate) fn at<R: Real>(s: &[R], i: usize) -> f64 {
    s[i].to_f64()
}

impl<M: HostMemory, R: Real> Storage for Reference<M, R> {
    type Error = CoreError;
    type Tensor = R::Buffer<M>;
    type Weights = RefWeights<R::Buffer<M>, M::Bytes>;
    type Tokens = M::U32;

    fn alloc_tensor(&mut self, len: usize) -> CoreResult<R::Buffer<M>> {
        R::alloc(&mut self.memory, len)
    }
    fn alloc_weights(&mut self, len: usize, dtype: WeightDtype) -> CoreResult<Self::Weights> {
        // The oracle keeps every parameter at its own precision; narrower inputs
        // widen exactly. Q8_0 is not a type of values: its decoded values are
        // held as f32 weights.
        if dtype == WeightDtype::Q8_0 {
            return Err(CoreError::InvalidShape { what: crate::encoding::Q8_0_CPU_ONLY });
        }
        Ok(RefWeights::Values(R::alloc(&mut self.memory, len)?))
    }
    fn alloc_tokens(&mut self, len: usize) -> CoreResult<M::U32> {
        self.memory.alloc_u32(len)
    }
    fn tensor_len(tensor: &R::Buffer<M>) -> usize {
        tensor.len()
    }
    fn weights_len(weights: &Self::Weights) -> usize {
        weights.len()
    }
    fn tokens_len(tokens: &M::U32) -> usize {
        tokens.len()
    }
    fn write_tensor(&mut self, dst: &mut R::Buffer<M>, offset: usize, src: &[f32]) -> CoreResult<()> {
        let out = range_mut("tensor write", dst, offset, src.len())?;
        for (o, &v) in out.iter_mut().zip(src) {
            *o = R::from_f64(v as f64);
        }
        Ok(())
    }
    fn read_tensor(&mut self, src: &R::Buffer<M>, offset: usize, dst: &mut [f32]) -> CoreResult<()> {
        let values = range("tensor read", src, offset, dst.len())?;
        for (o, v) in dst.iter_mut().zip(values) {
            *o = v.to_f64() as f32;
        }
        Ok(())
    }
    fn write_weights(&mut self, dst: &mut Self::Weights, offset: usize, src: WeightData<'_>) -> CoreResult<()> {
        let RefWeights::Values(dst) = dst else {
            return Err(CoreError::InvalidShape { what: "weights used in place are read-only" });
        };
        let out = range_mut("weights write", dst, offset, src.len())?;
        for (i, o) in out.iter_mut().enumerate() {
            *o = R::from_f64(src.get(i).unwrap_or(0.0) as f64);
        }
        Ok(())
    }
    fn write_tokens(&mut self, dst: &mut M::U32, offset: usize, src: &[u32]) -> CoreResult<()> {
        check_extent("tokens write", offset, src.len(), dst.len())?;
        dst[offset..offset + src.len()].copy_from_slice(src);
        Ok(())
    }
    fn sync(&mut self) -> CoreResult<()> {
        Ok(())
    }
}
