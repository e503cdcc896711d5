//! `Gradients`: the backward companion of [`Kernels`], for training.
//!
//! Each method is the vector-Jacobian product of the forward kernel of the same
//! name: given the gradient of the loss with respect to the forward's output
//! (`d_out`), it adds (`+=`) the gradients with respect to the forward's inputs and
//! parameters into `d_*` buffers. In-place forward kernels (gates,
//! `l2_normalize`, linear attention's carried sums) take the value their buffer held
//! *before* the forward ran, saved by the caller, and turn the gradient with
//! respect to the value after into the gradient with respect to the value before,
//! in place. Parameter gradients are f32 activation buffers laid out like the
//! parameters (a [`WeightView`]'s offset is valid in them).

use crate::desc::{Attention, Embed, Heads, LinearAttention, Matmul, Positions, Rows, Strided};
use crate::kernels::{KResult, Kernels, View, ViewMut, WeightView};

/// Backward kernels. Buffers are checked like the forward's; a too-small one is a
/// `BufferTooSmall` error.
pub trait Gradients: Kernels {
    /// `d_table[tokens[i]] += d_out[i]`.
    fn embed_backward(
        &mut self,
        tokens: &Self::Tokens,
        token_offset: usize,
        d_out: View<'_, Self::Tensor>,
        d_table: ViewMut<'_, Self::Tensor>,
        desc: Embed,
    ) -> KResult<Self>;

    /// For `y = rms(x) * scale`: `d_x += dy/dx^T d_out`, `d_scale += ...`.
    fn rms_norm_backward(
        &mut self,
        x: View<'_, Self::Tensor>,
        scale: WeightView<'_, Self::Weights>,
        d_out: View<'_, Self::Tensor>,
        d_x: ViewMut<'_, Self::Tensor>,
        d_scale: ViewMut<'_, Self::Tensor>,
        desc: Rows,
    ) -> KResult<Self>;

    /// For `x += table[p]` (in place, the gradient of `x` passes through):
    /// `d_table[p] += sum over batch rows of d_x[p, b]`.
    fn add_positions_backward(
        &mut self,
        d_x: View<'_, Self::Tensor>,
        d_table: ViewMut<'_, Self::Tensor>,
        desc: Positions,
    ) -> KResult<Self>;

    /// For the in-place `x <- l2n(x)`: `x` is the value before; `d_x` holds the
    /// gradient with respect to the value after and receives the gradient with
    /// respect to the value before.
    fn l2_normalize_backward(
        &mut self,
        x: View<'_, Self::Tensor>,
        d_x: ViewMut<'_, Self::Tensor>,
        desc: Heads,
    ) -> KResult<Self>;

    /// For `out = act(alpha x w + (accumulate ? out_before : 0))`, with `out` the
    /// forward's result: with `d_z = d_out * act'(out)`, `d_x += alpha d_z w^T`,
    /// `d_w += alpha x^T d_z`, and `d_out` is replaced by `d_z`: the gradient with
    /// respect to `out_before` when the forward accumulated; when it did not, the
    /// caller clears it.
    #[allow(clippy::too_many_arguments)]
    fn matmul_backward(
        &mut self,
        x: View<'_, Self::Tensor>,
        w: WeightView<'_, Self::Weights>,
        out: View<'_, Self::Tensor>,
        d_out: ViewMut<'_, Self::Tensor>,
        d_x: Option<ViewMut<'_, Self::Tensor>>,
        d_w: Option<ViewMut<'_, Self::Tensor>>,
        desc: Matmul,
    ) -> KResult<Self>;

    /// For softmax attention: `d_q`, `d_k`, `d_v` `+=`, `d_scale` (`(H,)`) `+=`, and
    /// `d_bias` (`(H, 32)`) `+=` when the forward had a position bias.
    #[allow(clippy::too_many_arguments)]
    fn attention_backward(
        &mut self,
        q: View<'_, Self::Tensor>,
        k: View<'_, Self::Tensor>,
        v: View<'_, Self::Tensor>,
        scale: WeightView<'_, Self::Weights>,
        bias: Option<WeightView<'_, Self::Weights>>,
        d_out: View<'_, Self::Tensor>,
        d_q: ViewMut<'_, Self::Tensor>,
        d_k: ViewMut<'_, Self::Tensor>,
        d_v: ViewMut<'_, Self::Tensor>,
        d_scale: ViewMut<'_, Self::Tensor>,
        d_bias: Option<ViewMut<'_, Self::Tensor>>,
        desc: Attention,
    ) -> KResult<Self>;

    /// For linear attention: `state` is the carried sums before the forward;
    /// `d_state` holds the gradient with respect to the sums after and receives the
    /// gradient with respect to the sums before; `d_q`, `d_k`, `d_v`, `d_scale` `+=`.
    #[allow(clippy::too_many_arguments)]
    fn linear_attention_backward(
        &mut self,
        q: View<'_, Self::Tensor>,
        k: View<'_, Self::Tensor>,
        v: View<'_, Self::Tensor>,
        scale: WeightView<'_, Self::Weights>,
        state: View<'_, Self::Tensor>,
        d_out: View<'_, Self::Tensor>,
        d_state: ViewMut<'_, Self::Tensor>,
        d_q: ViewMut<'_, Self::Tensor>,
        d_k: ViewMut<'_, Self::Tensor>,
        d_v: ViewMut<'_, Self::Tensor>,
        d_scale: ViewMut<'_, Self::Tensor>,
        desc: LinearAttention,
    ) -> KResult<Self>;

    /// For the fixed gate: `state` is the value before; `d_state` turns from the
    /// gradient after into the gradient before; `d_z`, `d_bias` `+=`.
    #[allow(clippy::too_many_arguments)]
    fn gate_fixed_backward(
        &mut self,
        state: View<'_, Self::Tensor>,
        z: View<'_, Self::Tensor>,
        bias: WeightView<'_, Self::Weights>,
        d_state: ViewMut<'_, Self::Tensor>,
        d_z: ViewMut<'_, Self::Tensor>,
        d_bias: ViewMut<'_, Self::Tensor>,
        desc: Rows,
    ) -> KResult<Self>;

    /// For the LSTM gate: as the fixed gate, plus `d_forget`, `d_input` (the gate
    /// products) and both biases `+=`.
    #[allow(clippy::too_many_arguments)]
    fn gate_lstm_backward(
        &mut self,
        state: View<'_, Self::Tensor>,
        z: View<'_, Self::Tensor>,
        forget: View<'_, Self::Tensor>,
        input: View<'_, Self::Tensor>,
        forget_bias: WeightView<'_, Self::Weights>,
        input_bias: WeightView<'_, Self::Weights>,
        d_state: ViewMut<'_, Self::Tensor>,
        d_z: ViewMut<'_, Self::Tensor>,
        d_forget: ViewMut<'_, Self::Tensor>,
        d_input: ViewMut<'_, Self::Tensor>,
        d_forget_bias: ViewMut<'_, Self::Tensor>,
        d_input_bias: ViewMut<'_, Self::Tensor>,
        desc: Rows,
    ) -> KResult<Self>;

    /// `dst[i] += src[i]` for `len` elements (gradient accumulation).
    fn add_assign(&mut self, src: View<'_, Self::Tensor>, dst: ViewMut<'_, Self::Tensor>, len: usize) -> KResult<Self>;

    /// The backward of `copy_weights`: `d_src += d_dst` gathered from the runs
    /// (`d_src` is contiguous, `runs.total()` long).
    fn gather_runs_add(
        &mut self,
        d_dst: View<'_, Self::Tensor>,
        d_src: ViewMut<'_, Self::Tensor>,
        runs: Strided,
    ) -> KResult<Self>;
}
