//! The scalar reference implementation of [`Kernels`] and [`Gradients`]: clear,
//! not fast; the oracle every backend is checked against.
//!
//! Values are stored as `R` (f32 for the oracle, f64 for gradient checks by finite
//! differences); every kernel computes in f64 and rounds once when it stores, and
//! follows its SPEC formula literally.
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
#[derive(Debug)]
pub struct Reference<M: HostMemory, R: Real = f32> {
    memory: M,
    precision: PhantomData<R>,
}

/// The reference backend in double precision (for gradient checks).
pub type Reference64<M> = Reference<M, f64>;

impl<M: HostMemory> Reference<M, f32> {
    /// A single-precision reference backend drawing its buffers from `memory`.
    pub fn new(memory: M) -> Self {
        Reference { memory, precision: PhantomData }
    }
}

impl<M: HostMemory> Reference<M, f64> {
    /// A double-precision reference backend drawing its buffers from `memory`.
    pub fn new_f64(memory: M) -> Self {
        Reference { memory, precision: PhantomData }
    }
}

impl<M: HostMemory, R: Real> Reference<M, R> {
    /// The memory source (e.g. to see how much of an arena is left).
    pub fn memory(&self) -> &M {
        &self.memory
    }

    /// Copies values out at full precision (for f64 checks that must not round
    /// through f32).
    pub fn read_exact(&self, src: &R::Buffer<M>, offset: usize, dst: &mut [R]) -> CoreResult<()> {
        dst.copy_from_slice(range("tensor read", src, offset, dst.len())?);
        Ok(())
    }

    /// Copies parameter values in at full precision (parameters used in place
    /// are read-only).
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
