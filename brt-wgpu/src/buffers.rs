//! Device buffers: activations, parameters and token ids, each with an identity
//! that the bind group cache keys on, and a notice to the cache when it is dropped.

use brt_core::WeightDtype;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Ids of dropped buffers, so cached bind groups that hold them can be released.
#[derive(Debug, Default)]
pub(crate) struct Graveyard(Mutex<Vec<u64>>);

impl Graveyard {
    /// Takes the ids buried since the last call.
    pub fn drain(&self) -> Vec<u64> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// A buffer's identity; dropping it reports the id to the graveyard.
#[derive(Debug)]
pub(crate) struct Handle {
    pub id: u64,
    graveyard: Arc<Graveyard>,
}

impl Handle {
    pub fn new(graveyard: &Arc<Graveyard>) -> Handle {
        Handle { id: NEXT_ID.fetch_add(1, Ordering::Relaxed), graveyard: Arc::clone(graveyard) }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.graveyard.0.lock().unwrap_or_else(|e| e.into_inner()).push(self.id);
    }
}

/// An f32 activation, state or scratch buffer on the device.
///
/// A new tensor holds zeros; writes and reads take an element offset, and
/// one past the end is refused before anything is recorded:
///
/// ```
/// use brt_core::Storage;
/// use brt_wgpu::{Wgpu, WgpuError};
///
/// # let Some(mut k) = brt_wgpu::testing::backend_or_skip("GpuTensor") else { return Ok(()) };
/// let mut t = k.alloc_tensor(4)?;
/// assert_eq!(Wgpu::tensor_len(&t), 4);
/// k.write_tensor(&mut t, 1, &[2.0, 3.0])?;
/// let mut back = [9f32; 4];
/// k.read_tensor(&t, 0, &mut back)?;
/// assert_eq!(back, [0.0, 2.0, 3.0, 0.0]);
/// assert!(matches!(k.write_tensor(&mut t, 3, &[1.0, 2.0]), Err(WgpuError::Core(_))));
/// # Ok::<(), WgpuError>(())
/// ```
#[derive(Debug)]
pub struct GpuTensor {
    pub(crate) buffer: wgpu::Buffer,
    pub(crate) len: usize,
    pub(crate) handle: Handle,
}

/// A parameter buffer on the device: f32, or f16/bf16 packed two per `u32`
/// (element `2i` in the low half), decoded in the shaders, so half-precision
/// storage needs no `shader-f16` support.
///
/// f16 values written one at a time into the middle of a word leave its other
/// half as it was; [`Kernels::copy_weights`](brt_core::Kernels::copy_weights)
/// decodes them into an f32 tensor to read them back:
///
/// ```
/// use brt_core::{desc::Strided, Kernels, Storage, ViewMut, WeightData, WeightDtype, WeightView};
///
/// # let Some(mut k) = brt_wgpu::testing::backend_or_skip("GpuWeights") else { return Ok(()) };
/// let mut w = k.alloc_weights(3, WeightDtype::F16)?;
/// k.write_weights(&mut w, 0, WeightData::F32(&[1.0, 2.0, 3.0]))?;
/// k.write_weights(&mut w, 1, WeightData::F32(&[0.5]))?; // the high half of word 0
/// let mut t = k.alloc_tensor(3)?;
/// k.copy_weights(WeightView::new(&w, 0), ViewMut::new(&mut t, 0), Strided::contiguous(3))?;
/// let mut back = [0f32; 3];
/// k.read_tensor(&t, 0, &mut back)?;
/// assert_eq!(back, [1.0, 0.5, 3.0]);
/// # Ok::<(), brt_wgpu::WgpuError>(())
/// ```
#[derive(Debug)]
pub struct GpuWeights {
    pub(crate) buffer: wgpu::Buffer,
    pub(crate) len: usize,
    pub(crate) dtype: WeightDtype,
    pub(crate) handle: Handle,
}

impl GpuWeights {
    /// How the parameters are stored.
    ///
    /// The type asked for at allocation; 8-bit Q8_0 (a CPU-only format) is
    /// refused:
    ///
    /// ```
    /// use brt_core::{Storage, WeightDtype};
    /// use brt_wgpu::WgpuError;
    ///
    /// # let Some(mut k) = brt_wgpu::testing::backend_or_skip("GpuWeights::dtype") else { return Ok(()) };
    /// assert_eq!(k.alloc_weights(5, WeightDtype::Bf16)?.dtype(), WeightDtype::Bf16);
    /// assert!(matches!(k.alloc_weights(32, WeightDtype::Q8_0), Err(WgpuError::Unsupported(_))));
    /// # Ok::<(), WgpuError>(())
    /// ```
    pub fn dtype(&self) -> WeightDtype {
        self.dtype
    }
}

/// A buffer of token ids on the device, with a host copy so that ids are checked
/// against the vocabulary before any kernel reads them.
///
/// Ids 2 and 0 pick rows of a three-row table; an id of 3 in the same
/// place is refused on the host, so no kernel reads past the table:
///
/// ```
/// use brt_core::{desc::Embed, CoreError, Kernels, Storage, ViewMut, WeightData, WeightDtype, WeightView};
/// use brt_wgpu::{Wgpu, WgpuError};
///
/// # let Some(mut k) = brt_wgpu::testing::backend_or_skip("GpuTokens") else { return Ok(()) };
/// let mut table = k.alloc_weights(6, WeightDtype::F32)?; // 3 ids, 2 columns
/// k.write_weights(&mut table, 0, WeightData::F32(&[0.0, 0.5, 1.0, 1.5, 2.0, 2.5]))?;
/// let mut ids = k.alloc_tokens(2)?;
/// k.write_tokens(&mut ids, 0, &[2, 0])?;
/// assert_eq!(Wgpu::tokens_len(&ids), 2);
/// let (mut out, desc) = (k.alloc_tensor(4)?, Embed::new(2, 3, 2)?);
/// k.embed(&ids, 0, WeightView::new(&table, 0), ViewMut::new(&mut out, 0), desc)?;
/// let mut rows = [0f32; 4];
/// k.read_tensor(&out, 0, &mut rows)?;
/// assert_eq!(rows, [2.0, 2.5, 0.0, 0.5]);
///
/// k.write_tokens(&mut ids, 1, &[3])?;
/// let err = k.embed(&ids, 0, WeightView::new(&table, 0), ViewMut::new(&mut out, 0), desc).unwrap_err();
/// assert_eq!(err, WgpuError::Core(CoreError::TokenOutOfRange { index: 1, id: 3, vocab: 3 }));
/// # Ok::<(), WgpuError>(())
/// ```
#[derive(Debug)]
pub struct GpuTokens {
    pub(crate) buffer: wgpu::Buffer,
    pub(crate) host: Vec<u32>,
    pub(crate) handle: Handle,
}

/// Bytes a parameter buffer of `len` elements takes in `dtype`.
pub(crate) fn weight_bytes(len: usize, dtype: WeightDtype) -> Option<u64> {
    let words = match dtype {
        WeightDtype::F32 => len,
        WeightDtype::F16 | WeightDtype::Bf16 => len.div_ceil(2),
        // Not read by this backend (`alloc_weights` refuses it).
        WeightDtype::Q8_0 => return None,
    };
    (words as u64).checked_mul(4)
}

/// Packs 16-bit values two per word, low half first; an odd tail is padded with 0.
pub(crate) fn pack_halves(values: &[u16]) -> Vec<u32> {
    values.chunks(2).map(|c| c[0] as u32 | (c.get(1).copied().unwrap_or(0) as u32) << 16).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_pack_low_first_and_pad() {
        assert_eq!(pack_halves(&[0x1111, 0x2222, 0x3333]), vec![0x2222_1111, 0x0000_3333]);
        assert_eq!(weight_bytes(3, WeightDtype::F16), Some(8));
        assert_eq!(weight_bytes(3, WeightDtype::F32), Some(12));
    }

    #[test]
    fn dropped_handles_are_reported() {
        let graveyard = Arc::new(Graveyard::default());
        let a = Handle::new(&graveyard);
        let id = a.id;
        drop(a);
        assert_eq!(graveyard.drain(), vec![id]);
        assert!(graveyard.drain().is_empty());
    }
}
