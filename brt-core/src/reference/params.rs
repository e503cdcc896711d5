//! The reference backend's parameters: values it holds, or a model's tensor data
//! used where it lies (flash, ROM, a mapped file), each value decoded exactly as
//! a kernel reads it. The oracle is slow by design; used in place it needs no
//! memory for the weights and reads exactly the values the file stands for.

use crate::encoding::{q8_0_value, ByteLayout, StoredTensor, TensorType, Q8_0_BLOCK, Q8_0_BLOCK_BYTES};
use crate::error::{CoreError, CoreResult};
use crate::half::{bf16, f16};
use crate::kernels::check_extent;
use crate::memory::Real;
use core::ops::Deref;

/// The reference backend's parameter buffer.
///
/// Parameters allocated on the backend are values it holds (see
/// [`super::Reference::weights_in_place`] for the other kind).
///
/// ```
/// # use brt_core::{Arena, RefWeights, Reference, Storage, WeightDtype};
/// # let mut f32s = vec![0f32; 16];
/// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut []));
/// let w = k.alloc_weights(3, WeightDtype::F16)?;
/// assert!(matches!(w, RefWeights::Values(ref v) if v.len() == 3));
/// # Ok::<(), brt_core::CoreError>(())
/// ```
#[derive(Debug)]
pub enum RefWeights<B, Bytes> {
    /// Values held at the backend's precision (every storage type widens to it
    /// exactly).
    Values(B),
    /// A model's tensor data used where it lies, read-only: each tensor where and
    /// as the layout says (checked by [`super::Reference::weights_in_place`]).
    InPlace(Bytes, ByteLayout),
}

impl<R: Real, B: Deref<Target = [R]>, Bytes: Deref<Target = [u8]>> RefWeights<B, Bytes> {
    /// Number of values (the elements the model's layout addresses).
    ///
    /// The length counts values, whatever their storage type.
    ///
    /// ```
    /// # use brt_core::{Arena, RefWeights, Reference, Storage, WeightDtype};
    /// # let mut f32s = vec![0f32; 16];
    /// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut []));
    /// let w = k.alloc_weights(5, WeightDtype::Bf16)?;
    /// assert_eq!(w.len(), 5);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub fn len(&self) -> usize {
        match self {
            RefWeights::Values(values) => values.len(),
            RefWeights::InPlace(_, layout) => layout.layout().len(),
        }
    }

    /// Whether there are no values.
    ///
    /// No parameters is empty.
    ///
    /// ```
    /// # use brt_core::{Arena, RefWeights, Reference, Storage, WeightDtype};
    /// # let mut f32s = vec![0f32; 16];
    /// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut []));
    /// assert!(k.alloc_weights(0, WeightDtype::F32)?.is_empty());
    /// assert!(!k.alloc_weights(1, WeightDtype::F32)?.is_empty());
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values held, or `None` for tensor data used in place.
    ///
    /// Held values can be read directly.
    ///
    /// ```
    /// # use brt_core::{Arena, RefWeights, Reference, Storage, WeightDtype};
    /// # let mut f32s = vec![0f32; 16];
    /// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut []));
    /// use brt_core::WeightData;
    /// let mut w = k.alloc_weights(2, WeightDtype::F32)?;
    /// k.write_weights(&mut w, 0, WeightData::F32(&[1.5, -2.0]))?;
    /// assert_eq!(w.values(), Some(&[1.5, -2.0][..]));
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub fn values(&self) -> Option<&[R]> {
        match self {
            RefWeights::Values(values) => Some(values),
            RefWeights::InPlace(..) => None,
        }
    }

    /// Values `offset .. offset + len`; used in place, they must lie inside one
    /// tensor (the core only asks for views of one parameter).
    pub(crate) fn range(&self, what: &'static str, offset: usize, len: usize) -> CoreResult<Params<'_, R>> {
        match self {
            RefWeights::Values(values) => Ok(Params::Values(super::range(what, values, offset, len)?)),
            RefWeights::InPlace(bytes, layout) => {
                check_extent(what, offset, len, layout.layout().len())?;
                let tensor = layout.locate(offset, len).ok_or(CoreError::InvalidShape {
                    what: "a view of weights used in place must lie inside one tensor",
                })?;
                let data = bytes
                    .get(tensor.offset..tensor.offset + tensor.bytes)
                    .ok_or(CoreError::InvalidShape { what: "tensor data shorter than its layout" })?;
                Ok(Params::Bytes { data, tensor, start: offset - tensor.spec.offset })
            }
        }
    }
}

/// A view of parameters, read value by value.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Params<'a, R> {
    /// Values held by the backend.
    Values(&'a [R]),
    /// One tensor's encoded data, the view starting at its value `start` (counted
    /// in the parameter's own row-major order, whatever the stored order).
    Bytes { data: &'a [u8], tensor: StoredTensor, start: usize },
}

impl<R: Real> Params<'_, R> {
    /// Value `i` of the view, at the backend's precision (exact: every stored
    /// value is an f32).
    pub fn get(&self, i: usize) -> R {
        match self {
            Params::Values(values) => values[i],
            Params::Bytes { .. } => R::from_f64(self.at(i)),
        }
    }

    /// Whether the values are Q8_0 blocks: a product with them quantizes its
    /// input ([`crate::encoding::quantize_activations`]).
    pub fn is_q8_0(&self) -> bool {
        matches!(self, Params::Bytes { tensor, .. } if tensor.ty == TensorType::Q8_0)
    }

    /// Value `i` of the view in f64 (exact).
    pub fn at(&self, i: usize) -> f64 {
        let (data, ty, e) = match *self {
            Params::Values(values) => return values[i].to_f64(),
            Params::Bytes { data, tensor, start } => (data, tensor.ty, tensor.stored_index(start + i)),
        };
        let half = |at: usize| u16::from_le_bytes([data[at], data[at + 1]]);
        match ty {
            TensorType::F32 => {
                f32::from_le_bytes([data[4 * e], data[4 * e + 1], data[4 * e + 2], data[4 * e + 3]]) as f64
            }
            TensorType::F16 => f16::from_bits(half(2 * e)).to_f64(),
            TensorType::Bf16 => bf16::from_bits(half(2 * e)).to_f64(),
            TensorType::Q8_0 => q8_0_value(&data[e / Q8_0_BLOCK * Q8_0_BLOCK_BYTES..], e % Q8_0_BLOCK) as f64,
        }
    }
}
