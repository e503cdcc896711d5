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
//!
//! Gradients accumulate: two backward calls with the same `d_out` add twice.
//!
//! ```
//! use brt_core::{Arena, Gradients, Reference, Storage, View, ViewMut};
//! # let mut f32s = vec![0f32; 16];
//! let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut []));
//! let (mut d_x, mut d_table) = (k.alloc_tensor(2)?, k.alloc_tensor(1)?);
//! k.write_tensor(&mut d_x, 0, &[1.0, 2.0])?;
//! let desc = brt_core::desc::Positions::new(1, 2, 1)?; // one position, two rows
//! k.add_positions_backward(View::new(&d_x, 0), ViewMut::new(&mut d_table, 0), desc)?;
//! k.add_positions_backward(View::new(&d_x, 0), ViewMut::new(&mut d_table, 0), desc)?;
//! assert_eq!(d_table[0], 2.0 * (1.0 + 2.0));
//! # Ok::<(), brt_core::CoreError>(())
//! ```

use crate::desc::{Attention, Embed, Heads, LinearAttention, Matmul, Positions, Rows, Strided};
use crate::kernels::{KResult, Kernels, View, ViewMut, WeightView};

/// Backward kernels. Buffers are checked like the forward's; a too-small one is a
/// `BufferTooSmall` error.
///
/// A forward product with a tanh, then its backward: the gradients carry the slope `1 - tanh^2` of
/// the output, and `d_out` becomes `d_z`.
///
/// ```
/// # use brt_core::{Arena, Gradients, Kernels, Reference, Storage};
/// # use brt_core::{View, ViewMut, WeightData, WeightDtype, WeightView};
/// # let (mut f32s, mut ids) = (vec![0f32; 256], vec![0u32; 16]);
/// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
/// use brt_core::desc::{Activation, Matmul};
/// let mm = Matmul::new(1, 2, 1)?.activation(Activation::Tanh);
/// let (mut x, mut out) = (k.alloc_tensor(2)?, k.alloc_tensor(1)?);
/// k.write_tensor(&mut x, 0, &[1.0, 2.0])?;
/// let mut w = k.alloc_weights(2, WeightDtype::F32)?;
/// k.write_weights(&mut w, 0, WeightData::F32(&[0.5, -0.125]))?;
/// k.matmul(View::new(&x, 0), WeightView::new(&w, 0), ViewMut::new(&mut out, 0), mm)?;
/// let (mut d_out, mut d_x, mut d_w) = (k.alloc_tensor(1)?, k.alloc_tensor(2)?, k.alloc_tensor(2)?);
/// k.write_tensor(&mut d_out, 0, &[1.0])?;
/// let (dx, dw) = (Some(ViewMut::new(&mut d_x, 0)), Some(ViewMut::new(&mut d_w, 0)));
/// let (xv, wv, ov) = (View::new(&x, 0), WeightView::new(&w, 0), View::new(&out, 0));
/// k.matmul_backward(xv, wv, ov, ViewMut::new(&mut d_out, 0), dx, dw, mm)?;
/// let slope = 1.0 - out[0] * out[0];
/// assert!((d_x[0] - 0.5 * slope).abs() < 1e-6 && (d_w[1] - 2.0 * slope).abs() < 1e-6);
/// assert!((d_out[0] - slope).abs() < 1e-6);
/// # Ok::<(), brt_core::CoreError>(())
/// ```
pub trait Gradients: Kernels {
    /// `d_table[tokens[i]] += d_out[i]`.
    ///
    /// Token 1 appears twice, so its table row gathers both output gradients; unused rows stay
    /// zero.
    ///
    /// ```
    /// # use brt_core::{Arena, Gradients, Kernels, Reference, Storage};
    /// # use brt_core::{View, ViewMut, WeightData, WeightDtype, WeightView};
    /// # let (mut f32s, mut ids) = (vec![0f32; 256], vec![0u32; 16]);
    /// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
    /// use brt_core::desc::Embed;
    /// let mut tokens = k.alloc_tokens(3)?;
    /// k.write_tokens(&mut tokens, 0, &[1, 1, 0])?;
    /// let (mut d_out, mut d_table) = (k.alloc_tensor(3)?, k.alloc_tensor(3)?);
    /// k.write_tensor(&mut d_out, 0, &[1.0, 2.0, 5.0])?;
    /// k.embed_backward(&tokens, 0, View::new(&d_out, 0), ViewMut::new(&mut d_table, 0), Embed::new(3, 3, 1)?)?;
    /// assert_eq!(d_table[..], [5.0, 3.0, 0.0]);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    fn embed_backward(
        &mut self,
        tokens: &Self::Tokens,
        token_offset: usize,
        d_out: View<'_, Self::Tensor>,
        d_table: ViewMut<'_, Self::Tensor>,
        desc: Embed,
    ) -> KResult<Self>;

    /// For `y = rms(x) * scale`: `d_x += dy/dx^T d_out`, `d_scale += ...`.
    ///
    /// The norm ignores the length of its input, so `d_x` is orthogonal to `x`; `d_scale` is
    /// `d_out` times the normalised input.
    ///
    /// ```
    /// # use brt_core::{Arena, Gradients, Kernels, Reference, Storage};
    /// # use brt_core::{View, ViewMut, WeightData, WeightDtype, WeightView};
    /// # let (mut f32s, mut ids) = (vec![0f32; 256], vec![0u32; 16]);
    /// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
    /// use brt_core::desc::Rows;
    /// let (mut x, mut d_out) = (k.alloc_tensor(2)?, k.alloc_tensor(2)?);
    /// k.write_tensor(&mut x, 0, &[3.0, 4.0])?;
    /// k.write_tensor(&mut d_out, 0, &[1.0, 0.0])?;
    /// let mut scale = k.alloc_weights(2, WeightDtype::F32)?;
    /// k.write_weights(&mut scale, 0, WeightData::F32(&[1.0, 1.0]))?;
    /// let (mut d_x, mut d_scale) = (k.alloc_tensor(2)?, k.alloc_tensor(2)?);
    /// let (dx, ds) = (ViewMut::new(&mut d_x, 0), ViewMut::new(&mut d_scale, 0));
    /// let (xv, sv, dy) = (View::new(&x, 0), WeightView::new(&scale, 0), View::new(&d_out, 0));
    /// k.rms_norm_backward(xv, sv, dy, dx, ds, Rows::new(1, 2)?)?;
    /// assert!((3.0 * d_x[0] + 4.0 * d_x[1]).abs() < 1e-6);
    /// assert!((d_scale[0] - 3.0 / 12.5f32.sqrt()).abs() < 1e-6 && d_scale[1] == 0.0);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
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
    ///
    /// Position `p`'s table row gathers the gradients of all batch rows at `p`.
    ///
    /// ```
    /// # use brt_core::{Arena, Gradients, Kernels, Reference, Storage};
    /// # use brt_core::{View, ViewMut, WeightData, WeightDtype, WeightView};
    /// # let (mut f32s, mut ids) = (vec![0f32; 256], vec![0u32; 16]);
    /// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
    /// use brt_core::desc::Positions;
    /// let (mut d_x, mut d_table) = (k.alloc_tensor(4)?, k.alloc_tensor(2)?);
    /// k.write_tensor(&mut d_x, 0, &[1.0, 2.0, 3.0, 4.0])?; // (position, row) = (0,0) (0,1) (1,0) (1,1)
    /// k.add_positions_backward(View::new(&d_x, 0), ViewMut::new(&mut d_table, 0), Positions::new(2, 2, 1)?)?;
    /// assert_eq!(d_table[..], [3.0, 7.0]);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    fn add_positions_backward(
        &mut self,
        d_x: View<'_, Self::Tensor>,
        d_table: ViewMut<'_, Self::Tensor>,
        desc: Positions,
    ) -> KResult<Self>;

    /// For the in-place `x <- l2n(x)`: `x` is the value before; `d_x` holds the
    /// gradient with respect to the value after and receives the gradient with
    /// respect to the value before.
    ///
    /// For `x = [3, 4]` (norm 5) a gradient along `x` vanishes and one across it is divided by the
    /// norm.
    ///
    /// ```
    /// # use brt_core::{Arena, Gradients, Kernels, Reference, Storage};
    /// # use brt_core::{View, ViewMut, WeightData, WeightDtype, WeightView};
    /// # let (mut f32s, mut ids) = (vec![0f32; 256], vec![0u32; 16]);
    /// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
    /// use brt_core::desc::Heads;
    /// let (mut x, mut d_x) = (k.alloc_tensor(2)?, k.alloc_tensor(2)?);
    /// k.write_tensor(&mut x, 0, &[3.0, 4.0])?;
    /// for (after, before) in [([3.0, 4.0], [0.0, 0.0]), ([4.0, -3.0], [0.8, -0.6])] {
    ///     k.write_tensor(&mut d_x, 0, &after)?;
    ///     k.l2_normalize_backward(View::new(&x, 0), ViewMut::new(&mut d_x, 0), Heads::new(1, 1, 2)?)?;
    ///     assert!(d_x.iter().zip(before).all(|(g, e)| (g - e).abs() < 1e-6));
    /// }
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
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
    ///
    /// For `out = x w` with `x = [1, 2]` and `w = [3, 4]^T`: `d_x = d_out w^T` and `d_w = x^T
    /// d_out`; either may be skipped with `None`.
    ///
    /// ```
    /// # use brt_core::{Arena, Gradients, Kernels, Reference, Storage};
    /// # use brt_core::{View, ViewMut, WeightData, WeightDtype, WeightView};
    /// # let (mut f32s, mut ids) = (vec![0f32; 256], vec![0u32; 16]);
    /// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
    /// use brt_core::desc::Matmul;
    /// let mm = Matmul::new(1, 2, 1)?;
    /// let (mut x, mut out) = (k.alloc_tensor(2)?, k.alloc_tensor(1)?);
    /// k.write_tensor(&mut x, 0, &[1.0, 2.0])?;
    /// let mut w = k.alloc_weights(2, WeightDtype::F32)?;
    /// k.write_weights(&mut w, 0, WeightData::F32(&[3.0, 4.0]))?;
    /// k.matmul(View::new(&x, 0), WeightView::new(&w, 0), ViewMut::new(&mut out, 0), mm)?;
    /// assert_eq!(out[0], 11.0);
    /// let (mut d_out, mut d_x, mut d_w) = (k.alloc_tensor(1)?, k.alloc_tensor(2)?, k.alloc_tensor(2)?);
    /// k.write_tensor(&mut d_out, 0, &[1.0])?;
    /// let (x, w, out) = (View::new(&x, 0), WeightView::new(&w, 0), View::new(&out, 0));
    /// k.matmul_backward(x, w, out, ViewMut::new(&mut d_out, 0), Some(ViewMut::new(&mut d_x, 0)), None, mm)?;
    /// k.matmul_backward(x, w, out, ViewMut::new(&mut d_out, 0), None, Some(ViewMut::new(&mut d_w, 0)), mm)?;
    /// assert_eq!(d_x[..], [3.0, 4.0]);
    /// assert_eq!(d_w[..], [1.0, 2.0]);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
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
    ///
    /// A query attending equally to two keys with values 2 and 4: each value gets half the output
    /// gradient, and the key of the larger value gains from a larger logit.
    ///
    /// ```
    /// # use brt_core::{Arena, Gradients, Kernels, Reference, Storage};
    /// # use brt_core::{View, ViewMut, WeightData, WeightDtype, WeightView};
    /// # let (mut f32s, mut ids) = (vec![0f32; 256], vec![0u32; 16]);
    /// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
    /// use brt_core::desc::{Attention, Mask};
    /// let t = |k: &mut Reference<_>, v: &[f32]| -> Result<_, brt_core::CoreError> {
    ///     let mut x = k.alloc_tensor(v.len())?;
    ///     k.write_tensor(&mut x, 0, v)?;
    ///     Ok(x)
    /// };
    /// let (q, keys, v) = (t(&mut k, &[1.0])?, t(&mut k, &[0.5, 0.5])?, t(&mut k, &[2.0, 4.0])?);
    /// let (d_out, mut d_q, mut d_scale) = (t(&mut k, &[1.0])?, t(&mut k, &[0.0])?, t(&mut k, &[0.0])?);
    /// let (mut d_k, mut d_v) = (t(&mut k, &[0.0; 2])?, t(&mut k, &[0.0; 2])?);
    /// let mut scale = k.alloc_weights(1, WeightDtype::F32)?;
    /// k.write_weights(&mut scale, 0, WeightData::F32(&[1.0]))?;
    /// let desc = Attention::new(1, 1, 2, 1, 1, Mask::None, false)?;
    /// let (qv, kv, vv, a) = (View::new(&q, 0), View::new(&keys, 0), View::new(&v, 0), WeightView::new(&scale, 0));
    /// let [dq, dk, dv, ds] = [&mut d_q, &mut d_k, &mut d_v, &mut d_scale].map(|g| ViewMut::new(g, 0));
    /// k.attention_backward(qv, kv, vv, a, None, View::new(&d_out, 0), dq, dk, dv, ds, None, desc)?;
    /// assert!((d_v[0] - 0.5).abs() < 1e-6 && (d_v[1] - 0.5).abs() < 1e-6);
    /// assert!((d_k[0] + 0.5).abs() < 1e-6 && (d_k[1] - 0.5).abs() < 1e-6);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
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
    ///
    /// One token with zero query and key, value 3 and empty sums: the output is `S / z = 3`, so
    /// `d_v = 1`, and the gradient with respect to the sums is `(1/z, -S/z^2) = (1, -3)`.
    ///
    /// ```
    /// # use brt_core::{Arena, Gradients, Kernels, Reference, Storage};
    /// # use brt_core::{View, ViewMut, WeightData, WeightDtype, WeightView};
    /// # let (mut f32s, mut ids) = (vec![0f32; 256], vec![0u32; 16]);
    /// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
    /// use brt_core::desc::LinearAttention;
    /// let zeros = |k: &mut Reference<_>, n| k.alloc_tensor(n);
    /// let (q, keys, state) = (zeros(&mut k, 1)?, zeros(&mut k, 1)?, zeros(&mut k, 2)?);
    /// let (mut v, mut d_out, mut d_state) = (zeros(&mut k, 1)?, zeros(&mut k, 1)?, zeros(&mut k, 2)?);
    /// let (mut d_q, mut d_k) = (zeros(&mut k, 1)?, zeros(&mut k, 1)?);
    /// let (mut d_v, mut d_scale) = (zeros(&mut k, 1)?, zeros(&mut k, 1)?);
    /// k.write_tensor(&mut v, 0, &[3.0])?;
    /// k.write_tensor(&mut d_out, 0, &[1.0])?;
    /// let mut scale = k.alloc_weights(1, WeightDtype::F32)?;
    /// k.write_weights(&mut scale, 0, WeightData::F32(&[1.0]))?;
    /// let desc = LinearAttention::new(1, 1, 1, 1, false)?;
    /// let [qv, kv, vv, s, dy] = [&q, &keys, &v, &state, &d_out].map(|t| View::new(t, 0));
    /// let [dq, dk, dv, ds] = [&mut d_q, &mut d_k, &mut d_v, &mut d_scale].map(|g| ViewMut::new(g, 0));
    /// let (a, d_sums) = (WeightView::new(&scale, 0), ViewMut::new(&mut d_state, 0));
    /// k.linear_attention_backward(qv, kv, vv, a, s, dy, d_sums, dq, dk, dv, ds, desc)?;
    /// assert_eq!((d_v[0], d_k[0], d_q[0]), (1.0, 0.0, 0.0));
    /// assert_eq!(d_state[..], [1.0, -3.0]);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
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
    ///
    /// A zero bias is `g = 1/2`: half the gradient goes to the old state, half to the update, and
    /// the bias moves with `(s - z) g (1 - g)`.
    ///
    /// ```
    /// # use brt_core::{Arena, Gradients, Kernels, Reference, Storage};
    /// # use brt_core::{View, ViewMut, WeightData, WeightDtype, WeightView};
    /// # let (mut f32s, mut ids) = (vec![0f32; 256], vec![0u32; 16]);
    /// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
    /// use brt_core::desc::Rows;
    /// let (mut s, mut z, mut d_state) = (k.alloc_tensor(1)?, k.alloc_tensor(1)?, k.alloc_tensor(1)?);
    /// k.write_tensor(&mut s, 0, &[2.0])?;
    /// k.write_tensor(&mut z, 0, &[4.0])?;
    /// k.write_tensor(&mut d_state, 0, &[1.0])?;
    /// let bias = k.alloc_weights(1, WeightDtype::F32)?; // zero
    /// let (mut d_z, mut d_bias) = (k.alloc_tensor(1)?, k.alloc_tensor(1)?);
    /// let (ds, dz, db) = (ViewMut::new(&mut d_state, 0), ViewMut::new(&mut d_z, 0), ViewMut::new(&mut d_bias, 0));
    /// let (sv, zv, bv) = (View::new(&s, 0), View::new(&z, 0), WeightView::new(&bias, 0));
    /// k.gate_fixed_backward(sv, zv, bv, ds, dz, db, Rows::new(1, 1)?)?;
    /// assert_eq!((d_state[0], d_z[0], d_bias[0]), (0.5, 0.5, (2.0 - 4.0) * 0.25));
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
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
    ///
    /// Both gates at 1/2 (as in [`Kernels::gate_lstm`]'s example): the state and update gradients
    /// halve, and each gate's products get `ds * (s or z) * 1/4`.
    ///
    /// ```
    /// # use brt_core::{Arena, Gradients, Kernels, Reference, Storage};
    /// # use brt_core::{View, ViewMut, WeightData, WeightDtype, WeightView};
    /// # let (mut f32s, mut ids) = (vec![0f32; 256], vec![0u32; 16]);
    /// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
    /// use brt_core::desc::Rows;
    /// let t = |k: &mut Reference<_>, v: f32| -> Result<_, brt_core::CoreError> {
    ///     let mut x = k.alloc_tensor(1)?;
    ///     k.write_tensor(&mut x, 0, &[v])?;
    ///     Ok(x)
    /// };
    /// let (s, z, f, i) = (t(&mut k, 2.0)?, t(&mut k, 4.0)?, t(&mut k, 0.0)?, t(&mut k, 0.0)?);
    /// let (mut ds, mut dz, mut df, mut di, mut dbf, mut dbi) =
    ///     (t(&mut k, 1.0)?, t(&mut k, 0.0)?, t(&mut k, 0.0)?, t(&mut k, 0.0)?, t(&mut k, 0.0)?, t(&mut k, 0.0)?);
    /// let mut b = k.alloc_weights(2, WeightDtype::F32)?;
    /// k.write_weights(&mut b, 0, WeightData::F32(&[-1.0, 1.0]))?; // forget, input
    /// let (bf, bi) = (WeightView::new(&b, 0), WeightView::new(&b, 1));
    /// let [sv, zv, fv, iv] = [&s, &z, &f, &i].map(|t| View::new(t, 0));
    /// let grads = [&mut ds, &mut dz, &mut df, &mut di, &mut dbf, &mut dbi].map(|g| ViewMut::new(g, 0));
    /// let [gs, gz, gf, gi, gbf, gbi] = grads;
    /// k.gate_lstm_backward(sv, zv, fv, iv, bf, bi, gs, gz, gf, gi, gbf, gbi, Rows::new(1, 1)?)?;
    /// assert_eq!((ds[0], dz[0]), (0.5, 0.5));
    /// assert_eq!((df[0], di[0], dbf[0], dbi[0]), (0.5, 1.0, 0.5, 1.0));
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
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
    ///
    /// Adds a gradient into another.
    ///
    /// ```
    /// # use brt_core::{Arena, Gradients, Kernels, Reference, Storage};
    /// # use brt_core::{View, ViewMut, WeightData, WeightDtype, WeightView};
    /// # let (mut f32s, mut ids) = (vec![0f32; 256], vec![0u32; 16]);
    /// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
    /// let (mut src, mut dst) = (k.alloc_tensor(2)?, k.alloc_tensor(2)?);
    /// k.write_tensor(&mut src, 0, &[10.0, 20.0])?;
    /// k.write_tensor(&mut dst, 0, &[1.0, 2.0])?;
    /// k.add_assign(View::new(&src, 0), ViewMut::new(&mut dst, 0), 2)?;
    /// assert_eq!(dst[..], [11.0, 22.0]);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    fn add_assign(&mut self, src: View<'_, Self::Tensor>, dst: ViewMut<'_, Self::Tensor>, len: usize) -> KResult<Self>;

    /// `dst = src` over `len` values, exactly as [`Kernels::copy`], for a copy
    /// nothing reads until much later: the inputs a recorded forward saves for
    /// its backward. A backend may write it past its caches (the CPU backend's
    /// streaming stores: a cached copy to memory first reads every destination
    /// line only to overwrite it, and evicts the forward's working set). The
    /// default is `copy`.
    ///
    /// ```
    /// # use brt_core::{Arena, Gradients, Kernels, Reference, Storage};
    /// # use brt_core::{View, ViewMut};
    /// # let (mut f32s, mut ids) = (vec![0f32; 256], vec![0u32; 16]);
    /// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
    /// let (mut src, mut dst) = (k.alloc_tensor(3)?, k.alloc_tensor(2)?);
    /// k.write_tensor(&mut src, 0, &[10.0, 20.0, 30.0])?;
    /// k.copy_to_tape(View::new(&src, 1), ViewMut::new(&mut dst, 0), 2)?;
    /// assert_eq!(dst[..], [20.0, 30.0]);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    fn copy_to_tape(
        &mut self,
        src: View<'_, Self::Tensor>,
        dst: ViewMut<'_, Self::Tensor>,
        len: usize,
    ) -> KResult<Self> {
        self.copy(src, dst, len)
    }

    /// Threads the backend computes with, the caller's included: work a caller
    /// does on the host beside the kernels (a trainer's loss and optimizer step)
    /// may split itself as many ways, and would otherwise leave the backend's
    /// other cores idle meanwhile. The default is 1.
    ///
    /// ```
    /// # use brt_core::{Arena, Gradients, Reference};
    /// # let (mut f32s, mut ids) = (vec![0f32; 16], vec![0u32; 4]);
    /// let k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
    /// assert_eq!(k.host_threads(), 1);
    /// ```
    fn host_threads(&self) -> usize {
        1
    }

    /// The backward of `copy_weights`: `d_src += d_dst` gathered from the runs
    /// (`d_src` is contiguous, `runs.total()` long).
    ///
    /// Two runs of one element, three apart, gather elements 0 and 3 into two contiguous ones.
    ///
    /// ```
    /// # use brt_core::{Arena, Gradients, Kernels, Reference, Storage};
    /// # use brt_core::{View, ViewMut, WeightData, WeightDtype, WeightView};
    /// # let (mut f32s, mut ids) = (vec![0f32; 256], vec![0u32; 16]);
    /// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
    /// use brt_core::desc::Strided;
    /// let (mut d_dst, mut d_src) = (k.alloc_tensor(4)?, k.alloc_tensor(2)?);
    /// k.write_tensor(&mut d_dst, 0, &[1.0, 2.0, 3.0, 4.0])?;
    /// k.gather_runs_add(View::new(&d_dst, 0), ViewMut::new(&mut d_src, 0), Strided::new(2, 1, 3)?)?;
    /// assert_eq!(d_src[..], [1.0, 4.0]);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    fn gather_runs_add(
        &mut self,
        d_dst: View<'_, Self::Tensor>,
        d_src: ViewMut<'_, Self::Tensor>,
        runs: Strided,
    ) -> KResult<Self>;
}
