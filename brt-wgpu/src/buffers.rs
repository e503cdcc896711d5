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
#[derive(Debug)]
pub struct GpuTensor {
    pub(crate) buffer: wgpu::Buffer,
    pub(crate) len: usize,
    pub(crate) handle: Handle,
}

/// A parameter buffer on the device: f32, or f16/bf16 packed two per `u32`
/// (element `2i` in the low half), decoded in the shaders, so half-precision
/// storage needs no `shader-f16` support.
#[derive(Debug)]
pub struct GpuWeights {
    pub(crate) buffer: wgpu::Buffer,
    pub(crate) len: usize,
    pub(crate) dtype: WeightDtype,
    pub(crate) handle: Handle,
}

impl GpuWeights {
    /// How the parameters are stored.
    pub fn dtype(&self) -> WeightDtype {
        self.dtype
    }
}

/// A buffer of token ids on the device, with a host copy so that ids are checked
/// against the vocabulary before any kernel reads them.
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
