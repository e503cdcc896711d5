//! Host memory for backends that compute on the CPU: either the caller's own slices
//! (an [`Arena`], for `no_std` and allocation-free use) or, in std crates, the heap.

use crate::error::{CoreError, CoreResult};
use core::ops::{Deref, DerefMut};

/// A source of zeroed host buffers.
pub trait HostMemory {
    /// An f32 buffer.
    type F32: DerefMut<Target = [f32]>;
    /// A buffer of 16-bit values (f16 or bf16 parameters).
    type U16: DerefMut<Target = [u16]>;
    /// A buffer of token ids.
    type U32: DerefMut<Target = [u32]>;
    /// An f64 buffer (for the double-precision reference used by gradient checks).
    type F64: DerefMut<Target = [f64]>;
    /// Read-only bytes that parameters are used from where they lie (flash, ROM, a
    /// memory-mapped file): never copied and never written.
    type Bytes: Deref<Target = [u8]>;

    /// `len` zeroed f32 values.
    fn alloc_f32(&mut self, len: usize) -> CoreResult<Self::F32>;
    /// `len` zeroed 16-bit values.
    fn alloc_u16(&mut self, len: usize) -> CoreResult<Self::U16>;
    /// `len` zeroed token ids.
    fn alloc_u32(&mut self, len: usize) -> CoreResult<Self::U32>;
    /// `len` zeroed f64 values.
    fn alloc_f64(&mut self, len: usize) -> CoreResult<Self::F64>;
}

/// Caller-provided memory, handed out front to back and never reused.
///
/// Each pool is split with `split_at_mut`, so every buffer is a disjoint borrow of
/// the caller's slice; nothing is allocated.
#[derive(Debug, Default)]
pub struct Arena<'m> {
    f32s: &'m mut [f32],
    u16s: &'m mut [u16],
    u32s: &'m mut [u32],
    f64s: &'m mut [f64],
}

impl<'m> Arena<'m> {
    /// An arena over the caller's pools (any may be empty).
    pub fn new(f32s: &'m mut [f32], u16s: &'m mut [u16], u32s: &'m mut [u32]) -> Self {
        Arena { f32s, u16s, u32s, f64s: &mut [] }
    }

    /// This arena with a pool of f64 values too.
    pub fn with_f64(self, f64s: &'m mut [f64]) -> Self {
        Arena { f64s, ..self }
    }

    /// Elements left in each pool: (f32, u16, u32).
    pub fn remaining(&self) -> (usize, usize, usize) {
        (self.f32s.len(), self.u16s.len(), self.u32s.len())
    }
}

fn take<'m, T: Copy>(pool: &mut &'m mut [T], len: usize, zero: T, what: &'static str) -> CoreResult<&'m mut [T]> {
    if len > pool.len() {
        return Err(CoreError::OutOfMemory { what, requested: len, available: pool.len() });
    }
    let (head, tail) = core::mem::take(pool).split_at_mut(len);
    *pool = tail;
    head.fill(zero);
    Ok(head)
}

impl<'m> HostMemory for Arena<'m> {
    type F32 = &'m mut [f32];
    type U16 = &'m mut [u16];
    type U32 = &'m mut [u32];
    type F64 = &'m mut [f64];
    type Bytes = &'m [u8];

    fn alloc_f32(&mut self, len: usize) -> CoreResult<&'m mut [f32]> {
        take(&mut self.f32s, len, 0.0, "f32 arena")
    }
    fn alloc_u16(&mut self, len: usize) -> CoreResult<&'m mut [u16]> {
        take(&mut self.u16s, len, 0, "u16 arena")
    }
    fn alloc_u32(&mut self, len: usize) -> CoreResult<&'m mut [u32]> {
        take(&mut self.u32s, len, 0, "u32 arena")
    }
    fn alloc_f64(&mut self, len: usize) -> CoreResult<&'m mut [f64]> {
        take(&mut self.f64s, len, 0.0, "f64 arena")
    }
}

/// A floating-point type the reference kernels can store: f32 (the oracle of
/// every backend) or f64 (for gradient checks by finite differences).
pub trait Real: Copy + Default + PartialEq + PartialOrd + core::fmt::Debug + 'static {
    /// The type's name.
    const NAME: &'static str;
    /// A host buffer of this type drawn from `M`.
    type Buffer<M: HostMemory>: DerefMut<Target = [Self]>;
    /// `len` zeroed values from `memory`.
    fn alloc<M: HostMemory>(memory: &mut M, len: usize) -> CoreResult<Self::Buffer<M>>;
    /// Widening to f64 (exact).
    fn to_f64(self) -> f64;
    /// Rounding from f64.
    fn from_f64(value: f64) -> Self;
}

impl Real for f32 {
    const NAME: &'static str = "f32";
    type Buffer<M: HostMemory> = M::F32;
    fn alloc<M: HostMemory>(memory: &mut M, len: usize) -> CoreResult<M::F32> {
        memory.alloc_f32(len)
    }
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn from_f64(value: f64) -> f32 {
        value as f32
    }
}

impl Real for f64 {
    const NAME: &'static str = "f64";
    type Buffer<M: HostMemory> = M::F64;
    fn alloc<M: HostMemory>(memory: &mut M, len: usize) -> CoreResult<M::F64> {
        memory.alloc_f64(len)
    }
    fn to_f64(self) -> f64 {
        self
    }
    fn from_f64(value: f64) -> f64 {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arena_hands_out_disjoint_zeroed_pieces_and_reports_exhaustion() {
        let mut f = [1.0f32; 10];
        let mut u = [7u32; 3];
        let mut arena = Arena::new(&mut f, &mut [], &mut u);
        let a = arena.alloc_f32(4).unwrap();
        let b = arena.alloc_f32(6).unwrap();
        assert!(a.iter().chain(b.iter()).all(|&x| x == 0.0));
        assert_eq!(arena.alloc_f32(1), Err(CoreError::OutOfMemory { what: "f32 arena", requested: 1, available: 0 }));
        assert_eq!(arena.alloc_u32(3).unwrap(), &mut [0, 0, 0]);
        assert!(arena.alloc_u16(1).is_err());
        assert!(arena.alloc_f64(1).is_err());

        // The f64 pool (the double-precision reference's buffers).
        let mut d = [2.0f64; 5];
        let mut arena = Arena::new(&mut [], &mut [], &mut []).with_f64(&mut d);
        let a = arena.alloc_f64(2).unwrap();
        let b = arena.alloc_f64(3).unwrap();
        assert!(a.iter().chain(b.iter()).all(|&x| x == 0.0));
        assert_eq!(arena.alloc_f64(1), Err(CoreError::OutOfMemory { what: "f64 arena", requested: 1, available: 0 }));
    }
}
