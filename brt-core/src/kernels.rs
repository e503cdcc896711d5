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

use crate::desc::{Attention, Embed, Heads, LinearAttention, Matmul, Positions, Rows, Strided};
use crate::error::{CoreError, CoreResult};
use half::{bf16, f16};

/// A read-only window into an activation buffer, starting at `offset` elements.
/// Its extent comes from the descriptor of the call.
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
    pub fn new(tensor: &'a T, offset: usize) -> Self {
        View { tensor, offset }
    }
}

/// A writable window into an activation buffer, starting at `offset` elements.
#[derive(Debug)]
pub struct ViewMut<'a, T> {
    /// The buffer.
    pub tensor: &'a mut T,
    /// First element.
    pub offset: usize,
}

impl<'a, T> ViewMut<'a, T> {
    /// A view starting at `offset`.
    pub fn new(tensor: &'a mut T, offset: usize) -> Self {
        ViewMut { tensor, offset }
    }

    /// A shorter-lived copy of this view, so it can be passed on and used again.
    pub fn reborrow(&mut self) -> ViewMut<'_, T> {
        ViewMut { tensor: self.tensor, offset: self.offset }
    }
}

/// A read-only window into the parameter buffer, starting at `offset` elements.
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
    pub fn new(weights: &'a W, offset: usize) -> Self {
        WeightView { weights, offset }
    }
}

/// How parameters are stored. Computation is always in f32.
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
    pub const fn size(self) -> Option<usize> {
        match self {
            WeightDtype::F32 => Some(4),
            WeightDtype::F16 | WeightDtype::Bf16 => Some(2),
            WeightDtype::Q8_0 => None,
        }
    }

    /// The name used in files and messages.
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
    pub fn len(&self) -> usize {
        match self {
            WeightData::F32(v) => v.len(),
            WeightData::F16(v) => v.len(),
            WeightData::Bf16(v) => v.len(),
        }
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Value `i` as f32 (`None` past the end).
    pub fn get(&self, i: usize) -> Option<f32> {
        match self {
            WeightData::F32(v) => v.get(i).copied(),
            WeightData::F16(v) => v.get(i).map(|x| x.to_f32()),
            WeightData::Bf16(v) => v.get(i).map(|x| x.to_f32()),
        }
    }
}

/// Checks that `offset + extent <= available`, naming the buffer otherwise.
pub fn check_extent(what: &'static str, offset: usize, extent: usize, available: usize) -> CoreResult<()> {
    match offset.checked_add(extent) {
        Some(needed) if needed <= available => Ok(()),
        Some(needed) => Err(CoreError::BufferTooSmall { what, needed, available }),
        None => Err(CoreError::BufferTooSmall { what, needed: usize::MAX, available }),
    }
}

/// Buffers and transfers: what a backend stores and how data crosses to it.
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
    fn alloc_tensor(&mut self, len: usize) -> Result<Self::Tensor, Self::Error>;
    /// A new parameter buffer of `len` elements stored as `dtype`, all zero.
    fn alloc_weights(&mut self, len: usize, dtype: WeightDtype) -> Result<Self::Weights, Self::Error>;
    /// A new token buffer of `len` ids, all zero.
    fn alloc_tokens(&mut self, len: usize) -> Result<Self::Tokens, Self::Error>;

    /// Elements of an activation buffer.
    fn tensor_len(tensor: &Self::Tensor) -> usize;
    /// Elements of a parameter buffer.
    fn weights_len(weights: &Self::Weights) -> usize;
    /// Ids a token buffer holds.
    fn tokens_len(tokens: &Self::Tokens) -> usize;

    /// Copies `src` into `dst` from element `offset`.
    fn write_tensor(&mut self, dst: &mut Self::Tensor, offset: usize, src: &[f32]) -> Result<(), Self::Error>;
    /// Copies elements `offset..offset + dst.len()` of `src` into `dst`; waits for
    /// all enqueued work first.
    fn read_tensor(&mut self, src: &Self::Tensor, offset: usize, dst: &mut [f32]) -> Result<(), Self::Error>;
    /// Stores `src` into the parameter buffer from element `offset`, converting to
    /// the buffer's storage type.
    fn write_weights(&mut self, dst: &mut Self::Weights, offset: usize, src: WeightData<'_>)
        -> Result<(), Self::Error>;
    /// Copies token ids into `dst` from element `offset`.
    fn write_tokens(&mut self, dst: &mut Self::Tokens, offset: usize, src: &[u32]) -> Result<(), Self::Error>;
    /// Waits until all enqueued work is done.
    fn sync(&mut self) -> Result<(), Self::Error>;

    /// Checks that `view` has `extent` elements.
    fn check_view(what: &'static str, view: &View<'_, Self::Tensor>, extent: usize) -> CoreResult<()> {
        check_extent(what, view.offset, extent, Self::tensor_len(view.tensor))
    }
    /// Checks that `view` has `extent` elements.
    fn check_view_mut(what: &'static str, view: &ViewMut<'_, Self::Tensor>, extent: usize) -> CoreResult<()> {
        check_extent(what, view.offset, extent, Self::tensor_len(view.tensor))
    }
    /// Checks that `view` has `extent` elements.
    fn check_weights(what: &'static str, view: &WeightView<'_, Self::Weights>, extent: usize) -> CoreResult<()> {
        check_extent(what, view.offset, extent, Self::weights_len(view.weights))
    }
}

/// Shorthand for a backend's result.
pub type KResult<K> = Result<(), <K as Storage>::Error>;

/// The compute primitives of the model (SPEC sections 1, 2, 4 and 7).
///
/// Sequences are position-major, batch-minor: `(position p, batch row b)` is row
/// `p*B + b`. Heads are contiguous column ranges of a row.
pub trait Kernels: Storage {
    /// `out[i] = table[tokens[token_offset + i]]`; ids are below `vocab` (the core
    /// checks them on the host before they are uploaded).
    fn embed(
        &mut self,
        tokens: &Self::Tokens,
        token_offset: usize,
        table: WeightView<'_, Self::Weights>,
        out: ViewMut<'_, Self::Tensor>,
        desc: Embed,
    ) -> KResult<Self>;

    /// RMS norm of each row (SPEC 1): `x / sqrt(mean(x^2) + 1e-6) * scale`.
    fn rms_norm(
        &mut self,
        x: View<'_, Self::Tensor>,
        scale: WeightView<'_, Self::Weights>,
        out: ViewMut<'_, Self::Tensor>,
        desc: Rows,
    ) -> KResult<Self>;

    /// Adds row `p` of `table` to every batch row of position `p` (state ids).
    fn add_positions(
        &mut self,
        x: ViewMut<'_, Self::Tensor>,
        table: WeightView<'_, Self::Weights>,
        desc: Positions,
    ) -> KResult<Self>;

    /// In place, per head: `x / sqrt(sum(x^2) + 1e-6)` (SPEC 1).
    fn l2_normalize(&mut self, x: ViewMut<'_, Self::Tensor>, desc: Heads) -> KResult<Self>;

    /// Dense product with optional accumulation and activation (see [`Matmul`]).
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
    fn gate_fixed(
        &mut self,
        state: ViewMut<'_, Self::Tensor>,
        z: View<'_, Self::Tensor>,
        bias: WeightView<'_, Self::Weights>,
        desc: Rows,
    ) -> KResult<Self>;

    /// LSTM gate, in place: `f = sigmoid(forget + bf + 1)`, `i = sigmoid(input + bi - 1)`,
    /// `s = s*f + z*i`, where `forget` and `input` are the gate input's products.
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
    fn copy(&mut self, src: View<'_, Self::Tensor>, dst: ViewMut<'_, Self::Tensor>, len: usize) -> KResult<Self>;

    /// Sets every element of the runs to `value`.
    fn fill(&mut self, dst: ViewMut<'_, Self::Tensor>, runs: Strided, value: f32) -> KResult<Self>;

    /// Copies `runs.total()` contiguous parameters into the runs of `dst`.
    fn copy_weights(
        &mut self,
        src: WeightView<'_, Self::Weights>,
        dst: ViewMut<'_, Self::Tensor>,
        runs: Strided,
    ) -> KResult<Self>;
}
