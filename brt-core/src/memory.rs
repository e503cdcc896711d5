//! Host memory for backends that compute on the CPU: either the caller's own slices
//! (an [`Arena`], for `no_std` and allocation-free use) or, in std crates, the heap.

use crate::error::{CoreError, CoreResult};
use core::ops::{Deref, DerefMut};

/// A source of zeroed host buffers.
///
/// Code generic over the source works with any of them; here an [`Arena`] hands
/// out two buffers, each zeroed and usable as a slice.
///
/// ```
/// use brt_core::{Arena, CoreResult, HostMemory};
/// fn two<M: HostMemory>(memory: &mut M) -> CoreResult<(M::F32, M::U32)> {
///     Ok((memory.alloc_f32(3)?, memory.alloc_u32(2)?))
/// }
/// let (mut f, mut u) = ([5.0f32; 3], [5u32; 2]);
/// let (x, ids) = two(&mut Arena::new(&mut f, &mut [], &mut u))?;
/// assert_eq!((&x[..], &ids[..]), (&[0.0; 3][..], &[0, 0][..]));
/// # Ok::<(), brt_core::CoreError>(())
/// ```
pub trait HostMemory {
    /// An f32 buffer.
    ///
    /// An arena's f32 buffer is a slice of its pool, written through like any slice.
    ///
    /// ```
    /// use brt_core::{Arena, HostMemory};
    /// let mut pool = [0f32; 4];
    /// let mut arena = Arena::new(&mut pool, &mut [], &mut []);
    /// let x: <Arena as HostMemory>::F32 = arena.alloc_f32(2)?;
    /// x[1] = 2.5;
    /// assert_eq!(x, &[0.0, 2.5]);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    type F32: DerefMut<Target = [f32]>;
    /// A buffer of 16-bit values (f16 or bf16 parameters).
    ///
    /// A 16-bit buffer holds the raw bits of f16 or bf16 values.
    ///
    /// ```
    /// use brt_core::{half::f16, Arena, HostMemory};
    /// let mut pool = [0u16; 2];
    /// let mut arena = Arena::new(&mut [], &mut pool, &mut []);
    /// let bits: <Arena as HostMemory>::U16 = arena.alloc_u16(1)?;
    /// bits[0] = f16::from_f32(1.5).to_bits();
    /// assert_eq!(f16::from_bits(bits[0]).to_f32(), 1.5);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    type U16: DerefMut<Target = [u16]>;
    /// A buffer of token ids.
    ///
    /// A token buffer holds `u32` ids.
    ///
    /// ```
    /// use brt_core::{Arena, HostMemory};
    /// let mut pool = [0u32; 4];
    /// let mut arena = Arena::new(&mut [], &mut [], &mut pool);
    /// let ids: <Arena as HostMemory>::U32 = arena.alloc_u32(3)?;
    /// ids.copy_from_slice(&[7, 8, 9]);
    /// assert_eq!(ids.iter().sum::<u32>(), 24);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    type U32: DerefMut<Target = [u32]>;
    /// An f64 buffer (for the double-precision reference used by gradient checks).
    ///
    /// An arena's f64 buffers come from the pool given to [`Arena::with_f64`].
    ///
    /// ```
    /// use brt_core::{Arena, HostMemory};
    /// let mut pool = [0f64; 2];
    /// let mut arena = Arena::default().with_f64(&mut pool);
    /// let x: <Arena as HostMemory>::F64 = arena.alloc_f64(2)?;
    /// x[0] = 0.1;
    /// assert_eq!(x[0] + x[1], 0.1);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    type F64: DerefMut<Target = [f64]>;
    /// Read-only bytes that parameters are used from where they lie (flash, ROM, a
    /// memory-mapped file): never copied and never written.
    ///
    /// An arena's bytes are a borrowed byte slice, such as a model file's data.
    ///
    /// ```
    /// use brt_core::{Arena, HostMemory};
    /// let data = [1u8, 2, 3];
    /// let bytes: <Arena as HostMemory>::Bytes = &data;
    /// assert_eq!(bytes.len(), 3);
    /// ```
    type Bytes: Deref<Target = [u8]>;

    /// `len` zeroed f32 values.
    ///
    /// The values are zero whatever the pool held; asking for more than is left
    /// is an [`OutOfMemory`](CoreError::OutOfMemory) error.
    ///
    /// ```
    /// use brt_core::{Arena, CoreError, HostMemory};
    /// let mut pool = [9.0f32; 4];
    /// let mut arena = Arena::new(&mut pool, &mut [], &mut []);
    /// assert_eq!(arena.alloc_f32(3)?, &[0.0; 3]);
    /// let e = arena.alloc_f32(2).unwrap_err();
    /// assert_eq!(e, CoreError::OutOfMemory { what: "f32 arena", requested: 2, available: 1 });
    /// # Ok::<(), CoreError>(())
    /// ```
    fn alloc_f32(&mut self, len: usize) -> CoreResult<Self::F32>;
    /// `len` zeroed 16-bit values.
    ///
    /// The values are zero, and the u16 pool is used up separately from the others.
    ///
    /// ```
    /// use brt_core::{Arena, HostMemory};
    /// let mut pool = [7u16; 3];
    /// let mut arena = Arena::new(&mut [], &mut pool, &mut []);
    /// assert_eq!(arena.alloc_u16(3)?, &[0, 0, 0]);
    /// assert!(arena.alloc_u16(1).is_err() && arena.alloc_f32(1).is_err());
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    fn alloc_u16(&mut self, len: usize) -> CoreResult<Self::U16>;
    /// `len` zeroed token ids.
    ///
    /// The ids are zero; a request of zero ids always succeeds.
    ///
    /// ```
    /// use brt_core::{Arena, HostMemory};
    /// let mut pool = [3u32; 2];
    /// let mut arena = Arena::new(&mut [], &mut [], &mut pool);
    /// assert_eq!(arena.alloc_u32(2)?, &[0, 0]);
    /// assert!(arena.alloc_u32(0)?.is_empty());
    /// assert!(arena.alloc_u32(1).is_err());
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    fn alloc_u32(&mut self, len: usize) -> CoreResult<Self::U32>;
    /// `len` zeroed f64 values.
    ///
    /// The values are zero; an arena without an f64 pool has none to give.
    ///
    /// ```
    /// use brt_core::{Arena, HostMemory};
    /// let mut pool = [1.0f64; 2];
    /// assert_eq!(Arena::default().with_f64(&mut pool).alloc_f64(2)?, &[0.0, 0.0]);
    /// assert!(Arena::default().alloc_f64(1).is_err());
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    fn alloc_f64(&mut self, len: usize) -> CoreResult<Self::F64>;
}

/// Caller-provided memory, handed out front to back and never reused.
///
/// Each pool is split with `split_at_mut`, so every buffer is a disjoint borrow of
/// the caller's slice; nothing is allocated.
///
/// Buffers are disjoint pieces of the caller's pools, handed out in order, so
/// two of them can be used at once.
///
/// ```
/// use brt_core::{Arena, HostMemory};
/// let mut pool = [0f32; 5];
/// let mut arena = Arena::new(&mut pool, &mut [], &mut []);
/// let a = arena.alloc_f32(2)?;
/// let b = arena.alloc_f32(3)?;
/// a.fill(1.0);
/// b.fill(2.0);
/// assert_eq!(arena.remaining(), (0, 0, 0));
/// drop(arena);
/// assert_eq!(pool, [1.0, 1.0, 2.0, 2.0, 2.0]);
/// # Ok::<(), brt_core::CoreError>(())
/// ```
#[derive(Debug, Default)]
pub struct Arena<'m> {
    f32s: &'m mut [f32],
    u16s: &'m mut [u16],
    u32s: &'m mut [u32],
    f64s: &'m mut [f64],
}

impl<'m> Arena<'m> {
    /// An arena over the caller's pools (any may be empty).
    ///
    /// The arena starts with every pool whole.
    ///
    /// ```
    /// use brt_core::Arena;
    /// let (mut f, mut h, mut t) = ([0f32; 8], [0u16; 4], [0u32; 2]);
    /// assert_eq!(Arena::new(&mut f, &mut h, &mut t).remaining(), (8, 4, 2));
    /// assert_eq!(Arena::new(&mut [], &mut [], &mut []).remaining(), (0, 0, 0));
    /// ```
    pub fn new(f32s: &'m mut [f32], u16s: &'m mut [u16], u32s: &'m mut [u32]) -> Self {
        Arena { f32s, u16s, u32s, f64s: &mut [] }
    }

    /// This arena with a pool of f64 values too.
    ///
    /// The f64 pool adds to the others, which are kept.
    ///
    /// ```
    /// use brt_core::{Arena, HostMemory};
    /// let (mut f, mut d) = ([0f32; 2], [0f64; 3]);
    /// let mut arena = Arena::new(&mut f, &mut [], &mut []).with_f64(&mut d);
    /// assert_eq!(arena.alloc_f64(3)?.len(), 3);
    /// assert_eq!(arena.remaining(), (2, 0, 0));
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub fn with_f64(self, f64s: &'m mut [f64]) -> Self {
        Arena { f64s, ..self }
    }

    /// Elements left in each pool: (f32, u16, u32).
    ///
    /// Each allocation takes its length off its own pool (the f64 pool is not
    /// counted).
    ///
    /// ```
    /// use brt_core::{Arena, HostMemory};
    /// let (mut f, mut t) = ([0f32; 10], [0u32; 4]);
    /// let mut arena = Arena::new(&mut f, &mut [], &mut t);
    /// arena.alloc_f32(6)?;
    /// arena.alloc_u32(1)?;
    /// assert_eq!(arena.remaining(), (4, 0, 3));
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
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
///
/// Code generic over `Real` computes in f64 and stores in either type; here a
/// mean of 7/3, which f32 rounds once and f64 keeps at its precision.
///
/// ```
/// use brt_core::Real;
/// fn mean<R: Real>(values: &[R]) -> R {
///     R::from_f64(values.iter().map(|v| v.to_f64()).sum::<f64>() / values.len() as f64)
/// }
/// assert_eq!(mean(&[1.0f32, 2.0, 4.0]), (7.0f64 / 3.0) as f32);
/// assert_eq!(mean(&[1.0f64, 2.0, 4.0]), 7.0 / 3.0);
/// ```
pub trait Real: Copy + Default + PartialEq + PartialOrd + core::fmt::Debug + 'static {
    /// The type's name.
    ///
    /// The names are those of the Rust types.
    ///
    /// ```
    /// use brt_core::Real;
    /// assert_eq!((<f32 as Real>::NAME, <f64 as Real>::NAME), ("f32", "f64"));
    /// ```
    const NAME: &'static str;
    /// A host buffer of this type drawn from `M`.
    ///
    /// For an [`Arena`], an f32 buffer is a slice of its f32 pool.
    ///
    /// ```
    /// use brt_core::{Arena, Real};
    /// let mut pool = [0f32; 2];
    /// let mut arena = Arena::new(&mut pool, &mut [], &mut []);
    /// let buffer: <f32 as Real>::Buffer<Arena> = f32::alloc(&mut arena, 2)?;
    /// assert_eq!(buffer.len(), 2);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    type Buffer<M: HostMemory>: DerefMut<Target = [Self]>;
    /// `len` zeroed values from `memory`.
    ///
    /// Each type draws from its own pool: f32 from the f32 pool, f64 from the f64
    /// one.
    ///
    /// ```
    /// use brt_core::{Arena, Real};
    /// let (mut f, mut d) = ([1f32; 2], [1f64; 3]);
    /// let mut arena = Arena::new(&mut f, &mut [], &mut []).with_f64(&mut d);
    /// assert_eq!(f64::alloc(&mut arena, 3)?, &[0.0; 3]);
    /// assert_eq!(f32::alloc(&mut arena, 2)?, &[0.0; 2]);
    /// assert!(f64::alloc(&mut arena, 1).is_err());
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    fn alloc<M: HostMemory>(memory: &mut M, len: usize) -> CoreResult<Self::Buffer<M>>;
    /// Widening to f64 (exact).
    ///
    /// Every f32 value, even one with no short decimal form, widens exactly.
    ///
    /// ```
    /// use brt_core::Real;
    /// assert_eq!(0.1f32.to_f64(), 0.1f32 as f64);
    /// assert_ne!(0.1f32.to_f64(), 0.1f64);
    /// assert_eq!(0.1f64.to_f64(), 0.1);
    /// ```
    fn to_f64(self) -> f64;
    /// Rounding from f64.
    ///
    /// f32 rounds to the nearest f32; f64 keeps the value.
    ///
    /// ```
    /// use brt_core::Real;
    /// assert_eq!(<f32 as Real>::from_f64(0.1), 0.1f32);
    /// assert_eq!(<f32 as Real>::from_f64(1.0 + 1e-10), 1.0f32);
    /// assert_eq!(<f64 as Real>::from_f64(1.0 + 1e-10), 1.0 + 1e-10);
    /// ```
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
