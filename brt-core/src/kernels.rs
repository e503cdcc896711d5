//! The `Kernels` trait: everything a backend supplies.
//!
//! Destination-passing and borrow-only: outputs, state and scratch are `&mut`
//! buffers the caller owns; a kernel never allocates and never returns a new buffer.
//! Buffers are the backend's own types (slices on the CPU, device buffers on GPUs),
//! so a whole block step can stay on the device. Transfers go through [`Storage`],
//! compute through [`Kernels`]; on GPUs kernels enqueue and [`Storage::sync`] or a
//! read is the only blocking point.
//!
//! Every kernel checks that its buffers are large enough for its descriptor and
//! returns [`CoreError::BufferTooSmall`] instead of touching memory out of range.
//!
//! The reference backend's `copy` writes into the caller's buffer, and refuses a
//! destination one element too short.
//!
//! ```
//! use brt_core::{Arena, CoreError, Kernels, Reference, Storage, View, ViewMut};
//! # let mut f32s = vec![0f32; 16];
//! let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut []));
//! let (mut src, mut dst, mut short) = (k.alloc_tensor(3)?, k.alloc_tensor(3)?, k.alloc_tensor(2)?);
//! k.write_tensor(&mut src, 0, &[1.0, 2.0, 3.0])?;
//! k.copy(View::new(&src, 0), ViewMut::new(&mut dst, 0), 3)?;
//! assert_eq!(dst[..], [1.0, 2.0, 3.0]);
//! let err = k.copy(View::new(&src, 0), ViewMut::new(&mut short, 0), 3).unwrap_err();
//! assert!(matches!(err, CoreError::BufferTooSmall { needed: 3, available: 2, .. }));
//! # Ok::<(), CoreError>(())
//! ```

use crate::desc::{Attention, Embed, Heads, LinearAttention, Matmul, Positions, Rows, Strided};
use crate::error::{CoreError, CoreResult};
use half::{bf16, f16};

/// A read-only window into an activation buffer, starting at `offset` elements.
/// Its extent comes from the descriptor of the call.
///
/// A view is a buffer and a first element; it is `Copy`, so it can be passed to several calls.
///
/// ```
/// # use brt_core::{Arena, Kernels, Reference, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
/// # let (mut f32s, mut ids) = (vec![0f32; 256], vec![0u32; 16]);
/// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
/// let mut x = k.alloc_tensor(4)?;
/// k.write_tensor(&mut x, 0, &[1.0, 2.0, 3.0, 4.0])?;
/// let view = View::new(&x, 2);
/// let again = view; // a copy
/// assert_eq!((view.offset, again.tensor[view.offset]), (2, 3.0));
/// # Ok::<(), brt_core::CoreError>(())
/// ```
#[derive(Debug)]
pub struct View<'a, T> {
    /// The buffer.
    pub tensor: &'a T,
    /// First element.
    pub offset: usize,
}

impl<T> Clone for View<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for View<'_, T> {}

impl<'a, T> View<'a, T> {
    /// A view starting at `offset`.
    ///
    /// Copying 2 elements from a view at offset 1 reads elements 1 and 2.
    ///
    /// ```
    /// # use brt_core::{Arena, Kernels, Reference, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
    /// # let (mut f32s, mut ids) = (vec![0f32; 256], vec![0u32; 16]);
    /// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
    /// let (mut src, mut dst) = (k.alloc_tensor(4)?, k.alloc_tensor(2)?);
    /// k.write_tensor(&mut src, 0, &[1.0, 2.0, 3.0, 4.0])?;
    /// k.copy(View::new(&src, 1), ViewMut::new(&mut dst, 0), 2)?;
    /// assert_eq!(dst[..], [2.0, 3.0]);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub fn new(tensor: &'a T, offset: usize) -> Self {
        View { tensor, offset }
    }
}

/// A writable window into an activation buffer, starting at `offset` elements.
///
/// A kernel writes through a writable view from its offset on; the elements before it are
/// untouched.
///
/// ```
/// # use brt_core::{Arena, Kernels, Reference, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
/// # let (mut f32s, mut ids) = (vec![0f32; 256], vec![0u32; 16]);
/// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
/// let mut x = k.alloc_tensor(4)?;
/// let out = ViewMut::new(&mut x, 1);
/// assert_eq!(out.offset, 1);
/// k.fill(out, brt_core::desc::Strided::contiguous(3), 7.0)?;
/// assert_eq!(x[..], [0.0, 7.0, 7.0, 7.0]);
/// # Ok::<(), brt_core::CoreError>(())
/// ```
#[derive(Debug)]
pub struct ViewMut<'a, T> {
    /// The buffer.
    pub tensor: &'a mut T,
    /// First element.
    pub offset: usize,
}

impl<'a, T> ViewMut<'a, T> {
    /// A view starting at `offset`.
    ///
    /// Filling 2 elements through a view at offset 2 writes the last two of four.
    ///
    /// ```
    /// # use brt_core::{Arena, Kernels, Reference, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
    /// # let (mut f32s, mut ids) = (vec![0f32; 256], vec![0u32; 16]);
    /// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
    /// let mut x = k.alloc_tensor(4)?;
    /// k.fill(ViewMut::new(&mut x, 2), brt_core::desc::Strided::contiguous(2), 1.0)?;
    /// assert_eq!(x[..], [0.0, 0.0, 1.0, 1.0]);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub fn new(tensor: &'a mut T, offset: usize) -> Self {
        ViewMut { tensor, offset }
    }

    /// A shorter-lived copy of this view, so it can be passed on and used again.
    ///
    /// One writable view serves two calls: the first gets a reborrow, the second the view itself.
    ///
    /// ```
    /// # use brt_core::{Arena, Kernels, Reference, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
    /// # let (mut f32s, mut ids) = (vec![0f32; 256], vec![0u32; 16]);
    /// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
    /// use brt_core::desc::Strided;
    /// let mut x = k.alloc_tensor(3)?;
    /// let mut out = ViewMut::new(&mut x, 0);
    /// k.fill(out.reborrow(), Strided::contiguous(3), 1.0)?;
    /// k.fill(out, Strided::contiguous(1), 5.0)?;
    /// assert_eq!(x[..], [5.0, 1.0, 1.0]);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub fn reborrow(&mut self) -> ViewMut<'_, T> {
        ViewMut { tensor: self.tensor, offset: self.offset }
    }
}

/// A read-only window into the parameter buffer, starting at `offset` elements.
///
/// A weight view is the parameter buffer and a first element, and is `Copy`.
///
/// ```
/// # use brt_core::{Arena, Kernels, Reference, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
/// # let (mut f32s, mut ids) = (vec![0f32; 256], vec![0u32; 16]);
/// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
/// let w = k.alloc_weights(4, WeightDtype::F32)?;
/// let view = WeightView::new(&w, 3);
/// let again = view;
/// assert_eq!((again.offset, Reference::<Arena>::weights_len(view.weights)), (3, 4));
/// # Ok::<(), brt_core::CoreError>(())
/// ```
#[derive(Debug)]
pub struct WeightView<'a, W> {
    /// The parameter buffer.
    pub weights: &'a W,
    /// First element.
    pub offset: usize,
}

impl<W> Clone for WeightView<'_, W> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<W> Copy for WeightView<'_, W> {}

impl<'a, W> WeightView<'a, W> {
    /// A view starting at `offset`.
    ///
    /// Copying parameters from a view at offset 2 takes the last two of four.
    ///
    /// ```
    /// # use brt_core::{Arena, Kernels, Reference, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
    /// # let (mut f32s, mut ids) = (vec![0f32; 256], vec![0u32; 16]);
    /// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
    /// use brt_core::desc::Strided;
    /// let mut w = k.alloc_weights(4, WeightDtype::F32)?;
    /// k.write_weights(&mut w, 0, WeightData::F32(&[1.0, 2.0, 3.0, 4.0]))?;
    /// let mut x = k.alloc_tensor(2)?;
    /// k.copy_weights(WeightView::new(&w, 2), ViewMut::new(&mut x, 0), Strided::contiguous(2))?;
    /// assert_eq!(x[..], [3.0, 4.0]);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub fn new(weights: &'a W, offset: usize) -> Self {
        WeightView { weights, offset }
    }
}

/// How parameters are stored. Computation is always in f32.
///
/// Every storage type has a name; all but Q8_0 have one size for every value.
///
/// ```
/// use brt_core::WeightDtype;
/// let all = [WeightDtype::F32, WeightDtype::F16, WeightDtype::Bf16, WeightDtype::Q8_0];
/// assert_eq!(all.map(WeightDtype::name), ["f32", "f16", "bf16", "q8_0"]);
/// assert_eq!(all.map(WeightDtype::size), [Some(4), Some(2), Some(2), None]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WeightDtype {
    /// IEEE single precision.
    F32,
    /// IEEE half precision.
    F16,
    /// bfloat16.
    Bf16,
    /// 8-bit blocks (GGML's Q8_0) for the matrices, f32 for the vectors: 8.5 bits
    /// a value for almost all of a model (see [`crate::encoding`]). Its tensors
    /// have different types, so such a model is only used where it lies (a model
    /// file's tensor data), never allocated and written value by value.
    Q8_0,
}

impl WeightDtype {
    /// Bytes per value when every tensor has this type; `None` for
    /// [`WeightDtype::Q8_0`], whose tensors differ ([`crate::encoding::ByteLayout`]
    /// says where each lies).
    ///
    /// f32 takes 4 bytes a value, the half types 2; Q8_0 has no single size.
    ///
    /// ```
    /// use brt_core::WeightDtype;
    /// assert_eq!(WeightDtype::F32.size(), Some(4));
    /// assert_eq!(WeightDtype::Bf16.size(), Some(2));
    /// assert_eq!(WeightDtype::Q8_0.size(), None);
    /// ```
    pub const fn size(self) -> Option<usize> {
        match self {
            WeightDtype::F32 => Some(4),
            WeightDtype::F16 | WeightDtype::Bf16 => Some(2),
            WeightDtype::Q8_0 => None,
        }
    }

    /// The name used in files and messages.
    ///
    /// The names are lower case, as in model files.
    ///
    /// ```
    /// use brt_core::WeightDtype;
    /// assert_eq!(WeightDtype::F16.name(), "f16");
    /// assert_eq!(WeightDtype::Q8_0.name(), "q8_0");
    /// ```
    pub const fn name(self) -> &'static str {
        match self {
            WeightDtype::F32 => "f32",
            WeightDtype::F16 => "f16",
            WeightDtype::Bf16 => "bf16",
            WeightDtype::Q8_0 => "q8_0",
        }
    }
}

/// Parameter values on the host, in any storage type.
///
/// Whatever the storage type, values read back as f32.
///
/// ```
/// use brt_core::{half::{bf16, f16}, WeightData};
/// let halves = [f16::from_f32(0.5), f16::from_f32(-2.0)];
/// let brains = [bf16::from_f32(3.0)];
/// assert_eq!(WeightData::F32(&[1.5]).get(0), Some(1.5));
/// assert_eq!(WeightData::F16(&halves).get(1), Some(-2.0));
/// assert_eq!(WeightData::Bf16(&brains).get(0), Some(3.0));
/// ```
#[derive(Clone, Copy, Debug)]
pub enum WeightData<'a> {
    /// f32 values.
    F32(&'a [f32]),
    /// f16 values.
    F16(&'a [f16]),
    /// bf16 values.
    Bf16(&'a [bf16]),
}

impl WeightData<'_> {
    /// Number of values.
    ///
    /// The length counts values, not bytes.
    ///
    /// ```
    /// use brt_core::{half::f16, WeightData};
    /// assert_eq!(WeightData::F32(&[1.0, 2.0, 3.0]).len(), 3);
    /// assert_eq!(WeightData::F16(&[f16::ONE; 5]).len(), 5);
    /// ```
    pub fn len(&self) -> usize {
        match self {
            WeightData::F32(v) => v.len(),
            WeightData::F16(v) => v.len(),
            WeightData::Bf16(v) => v.len(),
        }
    }

    /// Whether there are no values.
    ///
    /// No values is empty, one is not.
    ///
    /// ```
    /// use brt_core::WeightData;
    /// assert!(WeightData::F32(&[]).is_empty());
    /// assert!(!WeightData::F32(&[0.0]).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Value `i` as f32 (`None` past the end).
    ///
    /// A half-precision value widens exactly; past the end is `None`.
    ///
    /// ```
    /// use brt_core::{half::f16, WeightData};
    /// let data = WeightData::F16(&[f16::from_f32(0.25)]);
    /// assert_eq!((data.get(0), data.get(1)), (Some(0.25), None));
    /// ```
    pub fn get(&self, i: usize) -> Option<f32> {
        match self {
            WeightData::F32(v) => v.get(i).copied(),
            WeightData::F16(v) => v.get(i).map(|x| x.to_f32()),
            WeightData::Bf16(v) => v.get(i).map(|x| x.to_f32()),
        }
    }
}

/// Checks that `offset + extent <= available`, naming the buffer otherwise.
///
/// Elements 2..5 fit in 5; 2..6 do not, and the error names the buffer; an overflowing extent is an
/// error too.
///
/// ```
/// use brt_core::{kernels::check_extent, CoreError};
/// assert!(check_extent("x", 2, 3, 5).is_ok());
/// let err = CoreError::BufferTooSmall { what: "x", needed: 6, available: 5 };
/// assert_eq!(check_extent("x", 2, 4, 5), Err(err));
/// assert!(check_extent("x", 1, usize::MAX, 5).is_err());
/// ```
pub fn check_extent(what: &'static str, offset: usize, extent: usize, available: usize) -> CoreResult<()> {
    match offset.checked_add(extent) {
        Some(needed) if needed <= available => Ok(()),
        Some(needed) => Err(CoreError::BufferTooSmall { what, needed, available }),
        None => Err(CoreError::BufferTooSmall { what, needed: usize::MAX, available }),
    }
}

/// Buffers and transfers: what a backend stores and how data crosses to it.
///
/// Code generic over the backend moves data with this trait alone: here a round trip through any
/// backend, run on the reference one.
///
/// ```
/// # use brt_core::{Arena, Kernels, Reference, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
/// # let (mut f32s, mut ids) = (vec![0f32; 256], vec![0u32; 16]);
/// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
/// fn round_trip<K: Storage>(k: &mut K, values: &[f32]) -> Result<Vec<f32>, K::Error> {
///     let mut t = k.alloc_tensor(values.len())?;
///     k.write_tensor(&mut t, 0, values)?;
///     let mut back = vec![0.0; K::tensor_len(&t)];
///     k.read_tensor(&t, 0, &mut back)?;
///     Ok(back)
/// }
/// assert_eq!(round_trip(&mut k, &[1.0, -2.5])?, [1.0, -2.5]);
/// # Ok::<(), brt_core::CoreError>(())
/// ```
pub trait Storage {
    /// The backend's error; the core's errors convert into it.
    type Error: From<CoreError> + core::fmt::Debug + core::fmt::Display;
    /// An f32 activation, state or scratch buffer.
    type Tensor;
    /// The parameter buffer (f32, f16 or bf16 storage).
    type Weights;
    /// A buffer of token ids.
    type Tokens;

    /// A new activation buffer of `len` elements, all zero.
    ///
    /// A new buffer is zero; the reference backend's arena refuses more than it holds.
    ///
    /// ```
    /// # use brt_core::{Arena, Kernels, Reference, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
    /// # let (mut f32s, mut ids) = (vec![0f32; 256], vec![0u32; 16]);
    /// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
    /// use brt_core::CoreError;
    /// let x = k.alloc_tensor(4)?;
    /// assert_eq!(x[..], [0.0; 4]);
    /// assert!(matches!(k.alloc_tensor(1000), Err(CoreError::OutOfMemory { .. })));
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    fn alloc_tensor(&mut self, len: usize) -> Result<Self::Tensor, Self::Error>;
    /// A new parameter buffer of `len` elements stored as `dtype`, all zero.
    ///
    /// The reference backend holds any values type at its own precision, but not Q8_0 blocks.
    ///
    /// ```
    /// # use brt_core::{Arena, Kernels, Reference, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
    /// # let (mut f32s, mut ids) = (vec![0f32; 256], vec![0u32; 16]);
    /// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
    /// let w = k.alloc_weights(3, WeightDtype::F16)?;
    /// assert_eq!(w.values(), Some(&[0.0f32; 3][..]));
    /// assert!(k.alloc_weights(32, WeightDtype::Q8_0).is_err());
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    fn alloc_weights(&mut self, len: usize, dtype: WeightDtype) -> Result<Self::Weights, Self::Error>;
    /// A new token buffer of `len` ids, all zero.
    ///
    /// New token buffers hold zeros.
    ///
    /// ```
    /// # use brt_core::{Arena, Kernels, Reference, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
    /// # let (mut f32s, mut ids) = (vec![0f32; 256], vec![0u32; 16]);
    /// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
    /// let t = k.alloc_tokens(4)?;
    /// assert_eq!(t[..], [0u32; 4]);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    fn alloc_tokens(&mut self, len: usize) -> Result<Self::Tokens, Self::Error>;

    /// Elements of an activation buffer.
    ///
    /// The length is the one allocated.
    ///
    /// ```
    /// # use brt_core::{Arena, Kernels, Reference, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
    /// # let (mut f32s, mut ids) = (vec![0f32; 256], vec![0u32; 16]);
    /// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
    /// let x = k.alloc_tensor(5)?;
    /// assert_eq!(Reference::<Arena>::tensor_len(&x), 5);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    fn tensor_len(tensor: &Self::Tensor) -> usize;
    /// Elements of a parameter buffer.
    ///
    /// The length counts values whatever their storage type.
    ///
    /// ```
    /// # use brt_core::{Arena, Kernels, Reference, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
    /// # let (mut f32s, mut ids) = (vec![0f32; 256], vec![0u32; 16]);
    /// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
    /// let w = k.alloc_weights(6, WeightDtype::Bf16)?;
    /// assert_eq!(Reference::<Arena>::weights_len(&w), 6);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    fn weights_len(weights: &Self::Weights) -> usize;
    /// Ids a token buffer holds.
    ///
    /// The length is the number of ids allocated.
    ///
    /// ```
    /// # use brt_core::{Arena, Kernels, Reference, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
    /// # let (mut f32s, mut ids) = (vec![0f32; 256], vec![0u32; 16]);
    /// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
    /// let t = k.alloc_tokens(3)?;
    /// assert_eq!(Reference::<Arena>::tokens_len(&t), 3);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    fn tokens_len(tokens: &Self::Tokens) -> usize;

    /// Copies `src` into `dst` from element `offset`.
    ///
    /// Values land from the offset on; a write past the end is refused.
    ///
    /// ```
    /// # use brt_core::{Arena, Kernels, Reference, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
    /// # let (mut f32s, mut ids) = (vec![0f32; 256], vec![0u32; 16]);
    /// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
    /// let mut x = k.alloc_tensor(3)?;
    /// k.write_tensor(&mut x, 1, &[4.0, 5.0])?;
    /// assert_eq!(x[..], [0.0, 4.0, 5.0]);
    /// assert!(k.write_tensor(&mut x, 2, &[1.0, 2.0]).is_err());
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    fn write_tensor(&mut self, dst: &mut Self::Tensor, offset: usize, src: &[f32]) -> Result<(), Self::Error>;
    /// Copies elements `offset..offset + dst.len()` of `src` into `dst`; waits for
    /// all enqueued work first.
    ///
    /// Reading from offset 1 returns the elements written there.
    ///
    /// ```
    /// # use brt_core::{Arena, Kernels, Reference, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
    /// # let (mut f32s, mut ids) = (vec![0f32; 256], vec![0u32; 16]);
    /// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
    /// let mut x = k.alloc_tensor(3)?;
    /// k.write_tensor(&mut x, 0, &[1.0, 2.0, 3.0])?;
    /// let mut out = [0f32; 2];
    /// k.read_tensor(&x, 1, &mut out)?;
    /// assert_eq!(out, [2.0, 3.0]);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    fn read_tensor(&mut self, src: &Self::Tensor, offset: usize, dst: &mut [f32]) -> Result<(), Self::Error>;
    /// Stores `src` into the parameter buffer from element `offset`, converting to
    /// the buffer's storage type.
    ///
    /// Half-precision values are stored exactly in the reference backend's f32 parameters.
    ///
    /// ```
    /// # use brt_core::{Arena, Kernels, Reference, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
    /// # let (mut f32s, mut ids) = (vec![0f32; 256], vec![0u32; 16]);
    /// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
    /// use brt_core::half::f16;
    /// let mut w = k.alloc_weights(3, WeightDtype::F32)?;
    /// k.write_weights(&mut w, 1, WeightData::F16(&[f16::from_f32(0.5), f16::from_f32(-1.0)]))?;
    /// assert_eq!(w.values(), Some(&[0.0, 0.5, -1.0][..]));
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    fn write_weights(&mut self, dst: &mut Self::Weights, offset: usize, src: WeightData<'_>)
        -> Result<(), Self::Error>;
    /// Copies token ids into `dst` from element `offset`.
    ///
    /// Ids land from the offset on; too many are refused.
    ///
    /// ```
    /// # use brt_core::{Arena, Kernels, Reference, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
    /// # let (mut f32s, mut ids) = (vec![0f32; 256], vec![0u32; 16]);
    /// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
    /// let mut t = k.alloc_tokens(3)?;
    /// k.write_tokens(&mut t, 1, &[7, 8])?;
    /// assert_eq!(t[..], [0, 7, 8]);
    /// assert!(k.write_tokens(&mut t, 0, &[1, 2, 3, 4]).is_err());
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    fn write_tokens(&mut self, dst: &mut Self::Tokens, offset: usize, src: &[u32]) -> Result<(), Self::Error>;
    /// Waits until all enqueued work is done.
    ///
    /// The reference backend computes as it is called, so there is never anything to wait for.
    ///
    /// ```
    /// # use brt_core::{Arena, Kernels, Reference, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
    /// # let (mut f32s, mut ids) = (vec![0f32; 256], vec![0u32; 16]);
    /// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
    /// let mut x = k.alloc_tensor(1)?;
    /// k.write_tensor(&mut x, 0, &[1.0])?;
    /// k.sync()?;
    /// assert_eq!(x[0], 1.0);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    fn sync(&mut self) -> Result<(), Self::Error>;

    /// Checks that `view` has `extent` elements.
    ///
    /// A view at offset 2 of 4 elements has room for 2, not 3.
    ///
    /// ```
    /// # use brt_core::{Arena, Kernels, Reference, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
    /// # let (mut f32s, mut ids) = (vec![0f32; 256], vec![0u32; 16]);
    /// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
    /// let x = k.alloc_tensor(4)?;
    /// assert!(Reference::<Arena>::check_view("x", &View::new(&x, 2), 2).is_ok());
    /// assert!(Reference::<Arena>::check_view("x", &View::new(&x, 2), 3).is_err());
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    fn check_view(what: &'static str, view: &View<'_, Self::Tensor>, extent: usize) -> CoreResult<()> {
        check_extent(what, view.offset, extent, Self::tensor_len(view.tensor))
    }
    /// Checks that `view` has `extent` elements.
    ///
    /// A writable view at offset 1 of 3 elements has room for 2, not 3.
    ///
    /// ```
    /// # use brt_core::{Arena, Kernels, Reference, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
    /// # let (mut f32s, mut ids) = (vec![0f32; 256], vec![0u32; 16]);
    /// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
    /// let mut x = k.alloc_tensor(3)?;
    /// assert!(Reference::<Arena>::check_view_mut("x", &ViewMut::new(&mut x, 1), 2).is_ok());
    /// assert!(Reference::<Arena>::check_view_mut("x", &ViewMut::new(&mut x, 1), 3).is_err());
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    fn check_view_mut(what: &'static str, view: &ViewMut<'_, Self::Tensor>, extent: usize) -> CoreResult<()> {
        check_extent(what, view.offset, extent, Self::tensor_len(view.tensor))
    }
    /// Checks that `view` has `extent` elements.
    ///
    /// A weight view at offset 3 of 4 values has room for 1, not 2.
    ///
    /// ```
    /// # use brt_core::{Arena, Kernels, Reference, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
    /// # let (mut f32s, mut ids) = (vec![0f32; 256], vec![0u32; 16]);
    /// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
    /// let w = k.alloc_weights(4, WeightDtype::F32)?;
    /// assert!(Reference::<Arena>::check_weights("w", &WeightView::new(&w, 3), 1).is_ok());
    /// assert!(Reference::<Arena>::check_weights("w", &WeightView::new(&w, 3), 2).is_err());
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    fn check_weights(what: &'static str, view: &WeightView<'_, Self::Weights>, extent: usize) -> CoreResult<()> {
        check_extent(what, view.offset, extent, Self::weights_len(view.weights))
    }
}

/// Shorthand for a backend's result.
///
/// The result type of a kernel call in code generic over the backend.
///
/// ```
/// # use brt_core::{Arena, Kernels, Reference, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
/// # let (mut f32s, mut ids) = (vec![0f32; 256], vec![0u32; 16]);
/// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
/// use brt_core::{desc::Strided, KResult};
/// fn ones<K: Kernels>(k: &mut K, x: &mut K::Tensor, len: usize) -> KResult<K> {
///     k.fill(ViewMut::new(x, 0), Strided::contiguous(len), 1.0)
/// }
/// let mut x = k.alloc_tensor(2)?;
/// ones(&mut k, &mut x, 2)?;
/// assert_eq!(x[..], [1.0, 1.0]);
/// assert!(ones(&mut k, &mut x, 3).is_err());
/// # Ok::<(), brt_core::CoreError>(())
/// ```
pub type KResult<K> = Result<(), <K as Storage>::Error>;

/// The compute primitives of the model (SPEC sections 1, 2, 4 and 7).
///
/// Sequences are position-major, batch-minor: `(position p, batch row b)` is row
/// `p*B + b`. Heads are contiguous column ranges of a row.
///
/// A projection written once for every backend, here run on the reference one: `[1, 2] @ [[1, 0],
/// [0, 1]]`.
///
/// ```
/// # use brt_core::{Arena, Kernels, Reference, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
/// # let (mut f32s, mut ids) = (vec![0f32; 256], vec![0u32; 16]);
/// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
/// use brt_core::{desc::Matmul, KResult};
/// fn project<K: Kernels>(k: &mut K, x: &K::Tensor, w: &K::Weights, out: &mut K::Tensor) -> KResult<K> {
///     k.matmul(View::new(x, 0), WeightView::new(w, 0), ViewMut::new(out, 0), Matmul::new(1, 2, 2)?)
/// }
/// let (mut x, mut out) = (k.alloc_tensor(2)?, k.alloc_tensor(2)?);
/// k.write_tensor(&mut x, 0, &[1.0, 2.0])?;
/// let mut w = k.alloc_weights(4, WeightDtype::F32)?;
/// k.write_weights(&mut w, 0, WeightData::F32(&[1.0, 0.0, 0.0, 1.0]))?;
/// project(&mut k, &x, &w, &mut out)?;
/// assert_eq!(out[..], [1.0, 2.0]);
/// # Ok::<(), brt_core::CoreError>(())
/// ```
pub trait Kernels: Storage {
    /// `out[i] = table[tokens[token_offset + i]]`; ids are below `vocab` (the core
    /// checks them on the host before they are uploaded).
    ///
    /// Tokens `[2, 0]` pick rows 2 and 0 of a 3 x 2 table; a token offset starts further in.
    ///
    /// ```
    /// # use brt_core::{Arena, Kernels, Reference, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
    /// # let (mut f32s, mut ids) = (vec![0f32; 256], vec![0u32; 16]);
    /// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
    /// use brt_core::desc::Embed;
    /// let mut tokens = k.alloc_tokens(2)?;
    /// k.write_tokens(&mut tokens, 0, &[2, 0])?;
    /// let mut table = k.alloc_weights(6, WeightDtype::F32)?;
    /// k.write_weights(&mut table, 0, WeightData::F32(&[0.0, 1.0, 10.0, 11.0, 20.0, 21.0]))?;
    /// let mut out = k.alloc_tensor(4)?;
    /// k.embed(&tokens, 0, WeightView::new(&table, 0), ViewMut::new(&mut out, 0), Embed::new(2, 3, 2)?)?;
    /// assert_eq!(out[..], [20.0, 21.0, 0.0, 1.0]);
    /// k.embed(&tokens, 1, WeightView::new(&table, 0), ViewMut::new(&mut out, 0), Embed::new(1, 3, 2)?)?;
    /// assert_eq!(out[..2], [0.0, 1.0]);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    fn embed(
        &mut self,
        tokens: &Self::Tokens,
        token_offset: usize,
        table: WeightView<'_, Self::Weights>,
        out: ViewMut<'_, Self::Tensor>,
        desc: Embed,
    ) -> KResult<Self>;

    /// RMS norm of each row (SPEC 1): `x / sqrt(mean(x^2) + 1e-6) * scale`.
    ///
    /// The row `[3, 4]` has a root mean square of `sqrt(12.5)`; the scale multiplies each column.
    ///
    /// ```
    /// # use brt_core::{Arena, Kernels, Reference, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
    /// # let (mut f32s, mut ids) = (vec![0f32; 256], vec![0u32; 16]);
    /// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
    /// use brt_core::desc::Rows;
    /// let (mut x, mut y) = (k.alloc_tensor(2)?, k.alloc_tensor(2)?);
    /// k.write_tensor(&mut x, 0, &[3.0, 4.0])?;
    /// let mut scale = k.alloc_weights(2, WeightDtype::F32)?;
    /// k.write_weights(&mut scale, 0, WeightData::F32(&[1.0, 2.0]))?;
    /// k.rms_norm(View::new(&x, 0), WeightView::new(&scale, 0), ViewMut::new(&mut y, 0), Rows::new(1, 2)?)?;
    /// let rms = 12.5f32.sqrt();
    /// assert!((y[0] - 3.0 / rms).abs() < 1e-6 && (y[1] - 8.0 / rms).abs() < 1e-6);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    fn rms_norm(
        &mut self,
        x: View<'_, Self::Tensor>,
        scale: WeightView<'_, Self::Weights>,
        out: ViewMut<'_, Self::Tensor>,
        desc: Rows,
    ) -> KResult<Self>;

    /// Adds row `p` of `table` to every batch row of position `p` (state ids).
    ///
    /// Two positions of two batch rows: both rows of position `p` get row `p` of the table.
    ///
    /// ```
    /// # use brt_core::{Arena, Kernels, Reference, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
    /// # let (mut f32s, mut ids) = (vec![0f32; 256], vec![0u32; 16]);
    /// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
    /// use brt_core::desc::Positions;
    /// let mut x = k.alloc_tensor(8)?;
    /// let mut table = k.alloc_weights(4, WeightDtype::F32)?;
    /// k.write_weights(&mut table, 0, WeightData::F32(&[1.0, 2.0, 10.0, 20.0]))?;
    /// k.add_positions(ViewMut::new(&mut x, 0), WeightView::new(&table, 0), Positions::new(2, 2, 2)?)?;
    /// assert_eq!(x[..], [1.0, 2.0, 1.0, 2.0, 10.0, 20.0, 10.0, 20.0]);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    fn add_positions(
        &mut self,
        x: ViewMut<'_, Self::Tensor>,
        table: WeightView<'_, Self::Weights>,
        desc: Positions,
    ) -> KResult<Self>;

    /// In place, per head: `x / sqrt(sum(x^2) + 1e-6)` (SPEC 1).
    ///
    /// Each head of two elements becomes a unit vector (up to the epsilon).
    ///
    /// ```
    /// # use brt_core::{Arena, Kernels, Reference, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
    /// # let (mut f32s, mut ids) = (vec![0f32; 256], vec![0u32; 16]);
    /// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
    /// use brt_core::desc::Heads;
    /// let mut x = k.alloc_tensor(4)?;
    /// k.write_tensor(&mut x, 0, &[3.0, 4.0, 0.0, 2.0])?;
    /// k.l2_normalize(ViewMut::new(&mut x, 0), Heads::new(1, 2, 2)?)?;
    /// let expected = [0.6, 0.8, 0.0, 1.0];
    /// assert!(x.iter().zip(expected).all(|(a, b)| (a - b).abs() < 1e-6));
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    fn l2_normalize(&mut self, x: ViewMut<'_, Self::Tensor>, desc: Heads) -> KResult<Self>;

    /// Dense product with optional accumulation and activation (see [`Matmul`]).
    ///
    /// `[1, 2] @ [[1, 2, 3], [4, 5, 6]]` is `[9, 12, 15]`; an accumulating product adds to what is
    /// there.
    ///
    /// ```
    /// # use brt_core::{Arena, Kernels, Reference, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
    /// # let (mut f32s, mut ids) = (vec![0f32; 256], vec![0u32; 16]);
    /// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
    /// use brt_core::desc::Matmul;
    /// let (mut x, mut out) = (k.alloc_tensor(2)?, k.alloc_tensor(3)?);
    /// k.write_tensor(&mut x, 0, &[1.0, 2.0])?;
    /// let mut w = k.alloc_weights(6, WeightDtype::F32)?;
    /// k.write_weights(&mut w, 0, WeightData::F32(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]))?;
    /// let mm = Matmul::new(1, 2, 3)?;
    /// k.matmul(View::new(&x, 0), WeightView::new(&w, 0), ViewMut::new(&mut out, 0), mm)?;
    /// assert_eq!(out[..], [9.0, 12.0, 15.0]);
    /// k.matmul(View::new(&x, 0), WeightView::new(&w, 0), ViewMut::new(&mut out, 0), mm.accumulate())?;
    /// assert_eq!(out[..], [18.0, 24.0, 30.0]);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    fn matmul(
        &mut self,
        x: View<'_, Self::Tensor>,
        w: WeightView<'_, Self::Weights>,
        out: ViewMut<'_, Self::Tensor>,
        desc: Matmul,
    ) -> KResult<Self>;

    /// Softmax attention per head: logits `a_h * (q.k + bias_h(n))` with the T5
    /// bias of distance `n` when `bias` (an `(H, 32)` table) is given, masked keys
    /// excluded, and the official "safe" softmax (an extra `exp(-1000 - max)` term in
    /// the denominator). `scale` is `(H,)`.
    ///
    /// A query whose logits with two keys are equal gets the mean of their values; with a window of
    /// one, only the key just before it.
    ///
    /// ```
    /// # use brt_core::{Arena, Kernels, Reference, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
    /// # let (mut f32s, mut ids) = (vec![0f32; 256], vec![0u32; 16]);
    /// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
    /// use brt_core::desc::{Attention, Mask};
    /// let (mut q, mut out) = (k.alloc_tensor(1)?, k.alloc_tensor(1)?);
    /// let (mut keys, mut v) = (k.alloc_tensor(2)?, k.alloc_tensor(2)?);
    /// k.write_tensor(&mut q, 0, &[1.0])?;
    /// k.write_tensor(&mut keys, 0, &[0.5, 0.5])?;
    /// k.write_tensor(&mut v, 0, &[2.0, 4.0])?;
    /// let mut scale = k.alloc_weights(1, WeightDtype::F32)?;
    /// k.write_weights(&mut scale, 0, WeightData::F32(&[1.0]))?;
    /// let (qv, kv, vv, a) = (View::new(&q, 0), View::new(&keys, 0), View::new(&v, 0), WeightView::new(&scale, 0));
    /// let all = Attention::new(1, 1, 2, 1, 1, Mask::None, false)?;
    /// k.attention(qv, kv, vv, a, None, ViewMut::new(&mut out, 0), all)?;
    /// assert!((out[0] - 3.0).abs() < 1e-6);
    /// let previous = Attention::new(1, 1, 2, 1, 1, Mask::Window { offset: 1, window: 1 }, false)?;
    /// k.attention(qv, kv, vv, a, None, ViewMut::new(&mut out, 0), previous)?;
    /// assert!((out[0] - 2.0).abs() < 1e-6);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    #[allow(clippy::too_many_arguments)]
    fn attention(
        &mut self,
        q: View<'_, Self::Tensor>,
        k: View<'_, Self::Tensor>,
        v: View<'_, Self::Tensor>,
        scale: WeightView<'_, Self::Weights>,
        bias: Option<WeightView<'_, Self::Weights>>,
        out: ViewMut<'_, Self::Tensor>,
        desc: Attention,
    ) -> KResult<Self>;

    /// Linear attention (SPEC 7) over the tokens, updating the carried state.
    ///
    /// With zero queries and keys every token weighs the same, so the output is the running mean of
    /// the values; the carried sums (`[k^T v ; k]`) keep the count.
    ///
    /// ```
    /// # use brt_core::{Arena, Kernels, Reference, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
    /// # let (mut f32s, mut ids) = (vec![0f32; 256], vec![0u32; 16]);
    /// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
    /// use brt_core::desc::LinearAttention;
    /// let (q, keys) = (k.alloc_tensor(2)?, k.alloc_tensor(2)?); // zeros
    /// let (mut v, mut state, mut out) = (k.alloc_tensor(2)?, k.alloc_tensor(2)?, k.alloc_tensor(2)?);
    /// k.write_tensor(&mut v, 0, &[3.0, 5.0])?;
    /// let mut scale = k.alloc_weights(1, WeightDtype::F32)?;
    /// k.write_weights(&mut scale, 0, WeightData::F32(&[1.0]))?;
    /// let desc = LinearAttention::new(1, 2, 1, 1, false)?;
    /// let (qv, kv, vv) = (View::new(&q, 0), View::new(&keys, 0), View::new(&v, 0));
    /// let (a, s, o) = (WeightView::new(&scale, 0), ViewMut::new(&mut state, 0), ViewMut::new(&mut out, 0));
    /// k.linear_attention(qv, kv, vv, a, s, o, desc)?;
    /// assert_eq!(out[..], [3.0, 4.0]);
    /// assert_eq!(state[..], [8.0, 2.0]);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    #[allow(clippy::too_many_arguments)]
    fn linear_attention(
        &mut self,
        q: View<'_, Self::Tensor>,
        k: View<'_, Self::Tensor>,
        v: View<'_, Self::Tensor>,
        scale: WeightView<'_, Self::Weights>,
        state: ViewMut<'_, Self::Tensor>,
        out: ViewMut<'_, Self::Tensor>,
        desc: LinearAttention,
    ) -> KResult<Self>;

    /// Fixed gate, in place: `g = sigmoid(b)`, `s = s*g + z*(1-g)`.
    ///
    /// A zero bias gives `g = 1/2`: the new state is the mean of the old one and the update.
    ///
    /// ```
    /// # use brt_core::{Arena, Kernels, Reference, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
    /// # let (mut f32s, mut ids) = (vec![0f32; 256], vec![0u32; 16]);
    /// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
    /// use brt_core::desc::Rows;
    /// let (mut s, mut z) = (k.alloc_tensor(2)?, k.alloc_tensor(2)?);
    /// k.write_tensor(&mut s, 0, &[2.0, 0.0])?;
    /// k.write_tensor(&mut z, 0, &[4.0, 1.0])?;
    /// let bias = k.alloc_weights(2, WeightDtype::F32)?; // zeros
    /// k.gate_fixed(ViewMut::new(&mut s, 0), View::new(&z, 0), WeightView::new(&bias, 0), Rows::new(1, 2)?)?;
    /// assert_eq!(s[..], [3.0, 0.5]);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    fn gate_fixed(
        &mut self,
        state: ViewMut<'_, Self::Tensor>,
        z: View<'_, Self::Tensor>,
        bias: WeightView<'_, Self::Weights>,
        desc: Rows,
    ) -> KResult<Self>;

    /// LSTM gate, in place: `f = sigmoid(forget + bf + 1)`, `i = sigmoid(input + bi - 1)`,
    /// `s = s*f + z*i`, where `forget` and `input` are the gate input's products.
    ///
    /// Biases of -1 (forget) and +1 (input) with zero products cancel the built-in offsets: both
    /// gates are 1/2.
    ///
    /// ```
    /// # use brt_core::{Arena, Kernels, Reference, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
    /// # let (mut f32s, mut ids) = (vec![0f32; 256], vec![0u32; 16]);
    /// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
    /// use brt_core::desc::Rows;
    /// let (mut s, mut z, f, i) = (k.alloc_tensor(1)?, k.alloc_tensor(1)?, k.alloc_tensor(1)?, k.alloc_tensor(1)?);
    /// k.write_tensor(&mut s, 0, &[2.0])?;
    /// k.write_tensor(&mut z, 0, &[4.0])?;
    /// let (mut bf, mut bi) = (k.alloc_weights(1, WeightDtype::F32)?, k.alloc_weights(1, WeightDtype::F32)?);
    /// k.write_weights(&mut bf, 0, WeightData::F32(&[-1.0]))?;
    /// k.write_weights(&mut bi, 0, WeightData::F32(&[1.0]))?;
    /// let (bf, bi) = (WeightView::new(&bf, 0), WeightView::new(&bi, 0));
    /// let (zv, fv, iv) = (View::new(&z, 0), View::new(&f, 0), View::new(&i, 0));
    /// k.gate_lstm(ViewMut::new(&mut s, 0), zv, fv, iv, bf, bi, Rows::new(1, 1)?)?;
    /// assert_eq!(s[0], 0.5 * 2.0 + 0.5 * 4.0);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    #[allow(clippy::too_many_arguments)]
    fn gate_lstm(
        &mut self,
        state: ViewMut<'_, Self::Tensor>,
        z: View<'_, Self::Tensor>,
        forget: View<'_, Self::Tensor>,
        input: View<'_, Self::Tensor>,
        forget_bias: WeightView<'_, Self::Weights>,
        input_bias: WeightView<'_, Self::Weights>,
        desc: Rows,
    ) -> KResult<Self>;

    /// Copies `len` contiguous elements.
    ///
    /// Copying within one backend, between offsets.
    ///
    /// ```
    /// # use brt_core::{Arena, Kernels, Reference, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
    /// # let (mut f32s, mut ids) = (vec![0f32; 256], vec![0u32; 16]);
    /// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
    /// let (mut src, mut dst) = (k.alloc_tensor(3)?, k.alloc_tensor(3)?);
    /// k.write_tensor(&mut src, 0, &[1.0, 2.0, 3.0])?;
    /// k.copy(View::new(&src, 1), ViewMut::new(&mut dst, 0), 2)?;
    /// assert_eq!(dst[..], [2.0, 3.0, 0.0]);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    fn copy(&mut self, src: View<'_, Self::Tensor>, dst: ViewMut<'_, Self::Tensor>, len: usize) -> KResult<Self>;

    /// Sets every element of the runs to `value`.
    ///
    /// Two runs of one element, three apart, set elements 0 and 3 only.
    ///
    /// ```
    /// # use brt_core::{Arena, Kernels, Reference, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
    /// # let (mut f32s, mut ids) = (vec![0f32; 256], vec![0u32; 16]);
    /// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
    /// use brt_core::desc::Strided;
    /// let mut x = k.alloc_tensor(4)?;
    /// k.fill(ViewMut::new(&mut x, 0), Strided::new(2, 1, 3)?, 9.0)?;
    /// assert_eq!(x[..], [9.0, 0.0, 0.0, 9.0]);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    fn fill(&mut self, dst: ViewMut<'_, Self::Tensor>, runs: Strided, value: f32) -> KResult<Self>;

    /// Copies `runs.total()` contiguous parameters into the runs of `dst`.
    ///
    /// Four contiguous parameters spread over two runs of two, three apart.
    ///
    /// ```
    /// # use brt_core::{Arena, Kernels, Reference, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
    /// # let (mut f32s, mut ids) = (vec![0f32; 256], vec![0u32; 16]);
    /// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
    /// use brt_core::desc::Strided;
    /// let mut w = k.alloc_weights(4, WeightDtype::F32)?;
    /// k.write_weights(&mut w, 0, WeightData::F32(&[1.0, 2.0, 3.0, 4.0]))?;
    /// let mut x = k.alloc_tensor(5)?;
    /// k.copy_weights(WeightView::new(&w, 0), ViewMut::new(&mut x, 0), Strided::new(2, 2, 3)?)?;
    /// assert_eq!(x[..], [1.0, 2.0, 0.0, 3.0, 4.0]);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    fn copy_weights(
        &mut self,
        src: WeightView<'_, Self::Weights>,
        dst: ViewMut<'_, Self::Tensor>,
        runs: Strided,
    ) -> KResult<Self>;
}
