//! # brt-heap
//!
//! Heap memory for host backends: each buffer is its own `Vec` ([`Heap`]), and
//! read-only bytes shared by reference counting ([`SharedBytes`], a mapped model
//! file that weights are used from in place). Its own crate because `brt-core`
//! stays `no_std` and allocation-free, and `brt` needs it without the CPU backend.
//!
//! [`Heap`] is a [`HostMemory`] whose read-only bytes are [`SharedBytes`]:
//!
//! ```
//! use brt_core::HostMemory;
//! use brt_heap::{Heap, SharedBytes};
//! /// Bytes of a model as a backend generic over its memory takes them.
//! fn model_len<M: HostMemory>(bytes: M::Bytes) -> usize {
//!     bytes.len()
//! }
//! assert_eq!(model_len::<Heap>(SharedBytes::new(vec![0u8; 64])), 64);
//! ```
#![warn(missing_docs)]

use brt_core::{CoreError, CoreResult, HostMemory};
use core::ops::{Deref, Range};
use std::sync::Arc;

/// Read-only bytes shared by reference counting, which parameters can be used
/// from in place: a memory-mapped model file (any `AsRef<[u8]>` owner), or a
/// range of one.
///
/// Clones and slices share the owner's bytes rather than copying them:
///
/// ```
/// use brt_heap::SharedBytes;
/// let bytes = SharedBytes::new(vec![1u8, 2, 3, 4]);
/// let clone = bytes.clone();
/// let tail = bytes.slice(2..4).unwrap();
/// assert_eq!(clone.as_ptr(), bytes.as_ptr());
/// assert_eq!(tail.as_ptr(), bytes[2..].as_ptr());
/// assert_eq!(format!("{tail:?}"), "SharedBytes(2 bytes)");
/// ```
#[derive(Clone)]
pub struct SharedBytes {
    owner: Arc<dyn AsRef<[u8]> + Send + Sync>,
    range: Range<usize>,
}

impl SharedBytes {
    /// All the bytes of `owner`, which is kept alive as long as any clone.
    ///
    /// The bytes are the owner's own, in place, and outlive the handle they were
    /// made from while a clone holds them:
    ///
    /// ```
    /// use brt_heap::SharedBytes;
    /// let owner = b"GGUF model".to_vec();
    /// let at = owner.as_ptr();
    /// let bytes = SharedBytes::new(owner);
    /// assert_eq!((&bytes[..], bytes.as_ptr()), (&b"GGUF model"[..], at));
    /// let clone = bytes.clone();
    /// drop(bytes);
    /// assert_eq!(&clone[..4], b"GGUF");
    /// ```
    pub fn new(owner: impl AsRef<[u8]> + Send + Sync + 'static) -> SharedBytes {
        let len = owner.as_ref().len();
        SharedBytes { owner: Arc::new(owner), range: 0..len }
    }

    /// A copy of `bytes` at an address aligned to 8 bytes, as a mapping or
    /// `brt_gguf::include_model!` places a model file (a `Vec<u8>` is only
    /// byte-aligned): for a model file made in memory.
    ///
    /// The copy holds the same bytes, starting at a multiple of 8, even when the
    /// source does not:
    ///
    /// ```
    /// use brt_heap::SharedBytes;
    /// let source = [0u8, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    /// // Start at an odd address: not a multiple of 8.
    /// let odd = if source.as_ptr() as usize % 2 == 1 { &source[..10] } else { &source[1..] };
    /// let copy = SharedBytes::copy_aligned(odd);
    /// assert_eq!(&copy[..], odd);
    /// assert_eq!(copy.as_ptr() as usize % 8, 0);
    /// ```
    pub fn copy_aligned(bytes: &[u8]) -> SharedBytes {
        /// 8-byte words holding `.1` bytes.
        struct Words(Vec<u64>, usize);
        impl AsRef<[u8]> for Words {
            fn as_ref(&self) -> &[u8] {
                &bytemuck::cast_slice::<u64, u8>(&self.0)[..self.1]
            }
        }
        let mut words = vec![0u64; bytes.len().div_ceil(8)];
        bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..bytes.len()].copy_from_slice(bytes);
        SharedBytes::new(Words(words, bytes.len()))
    }

    /// Bytes `range` of these (relative to them), or `None` past their end.
    ///
    /// A slice of a slice counts from the inner slice's start, and may not reach
    /// past its end even where the owner has more bytes:
    ///
    /// ```
    /// use brt_heap::SharedBytes;
    /// let bytes = SharedBytes::new(*b"0123456789");
    /// let middle = bytes.slice(2..8).unwrap();
    /// assert_eq!(&middle[..], b"234567");
    /// assert_eq!(&middle.slice(1..3).unwrap()[..], b"34");
    /// assert!(middle.slice(4..7).is_none());
    /// assert!(bytes.slice(5..11).is_none());
    /// ```
    pub fn slice(&self, range: Range<usize>) -> Option<SharedBytes> {
        let start = self.range.start.checked_add(range.start)?;
        let end = self.range.start.checked_add(range.end)?;
        (start <= end && end <= self.range.end).then(|| SharedBytes { owner: self.owner.clone(), range: start..end })
    }
}

impl Deref for SharedBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // The range was checked against the owner's length when it was made.
        (*self.owner).as_ref().get(self.range.clone()).unwrap_or(&[])
    }
}

impl core::fmt::Debug for SharedBytes {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "SharedBytes({} bytes)", self.range.len())
    }
}

/// Buffers on the heap. Allocation failure is reported, not aborted on.
///
/// Buffers come zeroed, and a request the heap cannot hold is an error:
///
/// ```
/// use brt_core::{CoreError, HostMemory};
/// let mut heap = brt_heap::Heap;
/// assert_eq!(*heap.alloc_f32(3)?, [0.0; 3]);
/// assert_eq!(*heap.alloc_u16(2)?, [0; 2]);
/// assert_eq!(*heap.alloc_u32(2)?, [0; 2]);
/// assert_eq!(*heap.alloc_f64(1)?, [0.0]);
/// // More f32 values than the address space holds.
/// let too_many = heap.alloc_f32(usize::MAX);
/// assert!(matches!(too_many, Err(CoreError::OutOfMemory { requested: usize::MAX, .. })));
/// # Ok::<(), CoreError>(())
/// ```
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
    type Bytes = SharedBytes;

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
