//! Heap memory for host backends (std only): each buffer is its own `Vec`.

use brt_core::{CoreError, CoreResult, HostMemory};
use std::vec::Vec;

/// Buffers on the heap. Allocation failure is reported, not aborted on.
#[derive(Clone, Copy, Debug, Default)]
pub struct Heap;

fn zeroed<T: Copy>(len: usize, zero: T, what: &'static str) -> CoreResult<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| CoreError::OutOfMemory { what, requested: len, available: 0 })?;
    v.resize(len, zero);
    Ok(v)
}

impl HostMemory for Heap {
    type F32 = Vec<f32>;
    type U16 = Vec<u16>;
    type U32 = Vec<u32>;
    type F64 = Vec<f64>;

    fn alloc_f32(&mut self, len: usize) -> CoreResult<Vec<f32>> {
        zeroed(len, 0.0, "heap (f32)")
    }
    fn alloc_u16(&mut self, len: usize) -> CoreResult<Vec<u16>> {
        zeroed(len, 0, "heap (u16)")
    }
    fn alloc_u32(&mut self, len: usize) -> CoreResult<Vec<u32>> {
        zeroed(len, 0, "heap (u32)")
    }
    fn alloc_f64(&mut self, len: usize) -> CoreResult<Vec<f64>> {
        zeroed(len, 0.0, "heap (f64)")
    }
}
