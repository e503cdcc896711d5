//! Deliberately broken backward kernels: the reference (forward and backward)
//! with exactly one fault in one backward kernel each. The gradient checks must
//! catch every one of them (see `main.rs`).

use brt_core::desc::{Activation, Attention, Embed, Heads, LinearAttention, Matmul, Positions, Rows, Strided};
use brt_core::kernels::check_extent;
use brt_core::{
    CoreError, Gradients, KResult, Kernels, Reference, Storage, View, ViewMut, WeightData, WeightDtype, WeightView,
};
use brt_cpu::Heap;
use conformance::{Backend, Skip};
use std::marker::PhantomData;

/// The fault a broken backward carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GradFault {
    /// `gate_fixed_backward` assigns the update's and the bias's gradients
    /// instead of adding to them.
    GateGradAssigns,
    /// `matmul_backward` ignores the activation's derivative.
    MatmulIgnoresActivation,
    /// `attention_backward` leaves the scale's gradient out.
    AttentionDropsScaleGrad,
    /// `linear_attention_backward` differentiates as if the carried sums were zero.
    LinearIgnoresCarriedSums,
    /// `l2_normalize_backward` adds the gradient before to the gradient after
    /// instead of replacing it.
    L2GradAdds,
    /// `add_assign` does not check its extents (and panics on a short buffer).
    UncheckedAddAssign,
}

/// A fault as a type, so that a broken kernel set can be a [`Backend`].
pub trait GradFaultKind {
    /// The fault.
    const FAULT: GradFault;
    /// Its name in messages.
    const NAME: &'static str;
}

macro_rules! faults {
    ($($kind:ident),*) => {$(
        #[derive(Debug)]
        pub struct $kind;
        impl GradFaultKind for $kind {
            const FAULT: GradFault = GradFault::$kind;
            const NAME: &'static str = stringify!($kind);
        }
    )*};
}
faults!(
    GateGradAssigns,
    MatmulIgnoresActivation,
    AttentionDropsScaleGrad,
    LinearIgnoresCarriedSums,
    L2GradAdds,
    UncheckedAddAssign
);

/// The reference kernels with backward fault `F`.
pub struct GradBroken<F> {
    inner: Reference<Heap>,
    fault: PhantomData<F>,
}

/// The factory of [`GradBroken`] kernels.
pub struct GradBrokenBackend<F>(PhantomData<F>);

impl<F: GradFaultKind> Backend for GradBrokenBackend<F> {
    type Kernels = GradBroken<F>;
    const NAME: &'static str = F::NAME;

    fn create() -> Result<GradBroken<F>, Skip> {
        Ok(GradBroken { inner: Reference::new(Heap), fault: PhantomData })
    }

    fn core_error(error: &CoreError) -> Option<CoreError> {
        Some(*error)
    }
}

/// Sets `len` values of `v` from `offset` to zero (checked).
fn zero(v: &mut [f32], offset: usize, len: usize) -> KResult<Reference<Heap>> {
    check_extent("zeroed gradient", offset, len, v.len())?;
    v[offset..offset + len].fill(0.0);
    Ok(())
}

impl<F: GradFaultKind> Storage for GradBroken<F> {
    type Error = CoreError;
    type Tensor = Vec<f32>;
    type Weights = P;
    type Tokens = Vec<u32>;

    fn alloc_tensor(&mut self, len: usize) -> Result<Vec<f32>, CoreError> {
        self.inner.alloc_tensor(len)
    }
    fn alloc_weights(&mut self, len: usize, dtype: WeightDtype) -> Result<P, CoreError> {
        self.inner.alloc_weights(len, dtype)
    }
    fn alloc_tokens(&mut self, len: usize) -> Result<Vec<u32>, CoreError> {
        self.inner.alloc_tokens(len)
    }
    fn tensor_len(tensor: &Vec<f32>) -> usize {
        tensor.len()
    }
    fn weights_len(weights: &P) -> usize {
        weights.len()
    }
    fn tokens_len(tokens: &Vec<u32>) -> usize {
        tokens.len()
    }
    fn write_tensor(&mut self, dst: &mut Vec<f32>, offset: usize, src: &[f32]) -> Result<(), CoreError> {
        self.inner.write_tensor(dst, offset, src)
    }
    fn read_tensor(&mut self, src: &Vec<f32>, offset: usize, dst: &mut [f32]) -> Result<(), CoreError> {
        self.inner.read_tensor(src, offset, dst)
    }
    fn write_weights(&mut self, dst: &mut P, offset: usize, src: WeightData<'_>) -> Result<(), CoreError> {
        self.inner.write_weights(dst, offset, src)
    }
    fn write_tokens(&mut self, dst: &mut Vec<u32>, offset: usize, src: &[u32]) -> Result<(), CoreError> {
        self.inner.write_tokens(dst, offset, src)
    }
    fn sync(&mut self) -> Result<(), CoreError> {
        Ok(())
    }
}

type T = Vec<f32>;
/// The reference's parameter buffer.
type P = brt_core::RefWeights<Vec<f32>, brt_cpu::SharedBytes>;

impl<F: GradFaultKind> Kernels for GradBroken<F> {
    fn embed(&mut self, t: &Vec<u32>, o: usize, w: WeightView<'_, P>, out: ViewMut<'_, T>, d: Embed) -> KResult<Self> {
        self.inner.embed(t, o, w, out, d)
    }
    fn rms_norm(&mut self, x: View<'_, T>, s: WeightView<'_, P>, out: ViewMut<'_, T>, d: Rows) -> KResult<Self> {
        self.inner.rms_norm(x, s, out, d)
    }
    fn add_positions(&mut self, x: ViewMut<'_, T>, t: WeightView<'_, P>, d: Positions) -> KResult<Self> {
        self.inner.add_positions(x, t, d)
    }
    fn l2_normalize(&mut self, x: ViewMut<'_, T>, d: Heads) -> KResult<Self> {
        self.inner.l2_normalize(x, d)
    }
    fn matmul(&mut self, x: View<'_, T>, w: WeightView<'_, P>, out: ViewMut<'_, T>, d: Matmul) -> KResult<Self> {
        self.inner.matmul(x, w, out, d)
    }
    fn attention(
        &mut self,
        q: View<'_, T>,
        k: View<'_, T>,
        v: View<'_, T>,
        scale: WeightView<'_, P>,
        bias: Option<WeightView<'_, P>>,
        out: ViewMut<'_, T>,
        d: Attention,
    ) -> KResult<Self> {
        self.inner.attention(q, k, v, scale, bias, out, d)
    }
    fn linear_attention(
        &mut self,
        q: View<'_, T>,
        k: View<'_, T>,
        v: View<'_, T>,
        scale: WeightView<'_, P>,
        state: ViewMut<'_, T>,
        out: ViewMut<'_, T>,
        d: LinearAttention,
    ) -> KResult<Self> {
        self.inner.linear_attention(q, k, v, scale, state, out, d)
    }
    fn gate_fixed(&mut self, s: ViewMut<'_, T>, z: View<'_, T>, b: WeightView<'_, P>, d: Rows) -> KResult<Self> {
        self.inner.gate_fixed(s, z, b, d)
    }
    fn gate_lstm(
        &mut self,
        s: ViewMut<'_, T>,
        z: View<'_, T>,
        f: View<'_, T>,
        i: View<'_, T>,
        bf: WeightView<'_, P>,
        bi: WeightView<'_, P>,
        d: Rows,
    ) -> KResult<Self> {
        self.inner.gate_lstm(s, z, f, i, bf, bi, d)
    }
    fn copy(&mut self, src: View<'_, T>, dst: ViewMut<'_, T>, len: usize) -> KResult<Self> {
        self.inner.copy(src, dst, len)
    }
    fn fill(&mut self, dst: ViewMut<'_, T>, runs: Strided, value: f32) -> KResult<Self> {
        self.inner.fill(dst, runs, value)
    }
    fn copy_weights(&mut self, src: WeightView<'_, P>, dst: ViewMut<'_, T>, runs: Strided) -> KResult<Self> {
        self.inner.copy_weights(src, dst, runs)
    }
}

impl<F: GradFaultKind> Gradients for GradBroken<F> {
    fn embed_backward(
        &mut self,
        t: &Vec<u32>,
        o: usize,
        d_out: View<'_, T>,
        d_table: ViewMut<'_, T>,
        d: Embed,
    ) -> KResult<Self> {
        self.inner.embed_backward(t, o, d_out, d_table, d)
    }
    fn rms_norm_backward(
        &mut self,
        x: View<'_, T>,
        s: WeightView<'_, P>,
        d_out: View<'_, T>,
        d_x: ViewMut<'_, T>,
        d_s: ViewMut<'_, T>,
        d: Rows,
    ) -> KResult<Self> {
        self.inner.rms_norm_backward(x, s, d_out, d_x, d_s, d)
    }
    fn add_positions_backward(&mut self, d_x: View<'_, T>, d_t: ViewMut<'_, T>, d: Positions) -> KResult<Self> {
        self.inner.add_positions_backward(d_x, d_t, d)
    }
    fn l2_normalize_backward(&mut self, x: View<'_, T>, d_x: ViewMut<'_, T>, d: Heads) -> KResult<Self> {
        if F::FAULT != GradFault::L2GradAdds {
            return self.inner.l2_normalize_backward(x, d_x, d);
        }
        check_extent("l2 gradient", d_x.offset, d.len(), d_x.tensor.len())?;
        let after: Vec<f32> = d_x.tensor[d_x.offset..d_x.offset + d.len()].to_vec();
        let offset = d_x.offset;
        self.inner.l2_normalize_backward(x, ViewMut::new(&mut *d_x.tensor, offset), d)?;
        for (g, a) in d_x.tensor[offset..offset + d.len()].iter_mut().zip(after) {
            *g += a;
        }
        Ok(())
    }
    fn matmul_backward(
        &mut self,
        x: View<'_, T>,
        w: WeightView<'_, P>,
        out: View<'_, T>,
        d_out: ViewMut<'_, T>,
        d_x: Option<ViewMut<'_, T>>,
        d_w: Option<ViewMut<'_, T>>,
        d: Matmul,
    ) -> KResult<Self> {
        let d = if F::FAULT == GradFault::MatmulIgnoresActivation { d.activation(Activation::Identity) } else { d };
        self.inner.matmul_backward(x, w, out, d_out, d_x, d_w, d)
    }
    fn attention_backward(
        &mut self,
        q: View<'_, T>,
        k: View<'_, T>,
        v: View<'_, T>,
        scale: WeightView<'_, P>,
        bias: Option<WeightView<'_, P>>,
        d_out: View<'_, T>,
        d_q: ViewMut<'_, T>,
        d_k: ViewMut<'_, T>,
        d_v: ViewMut<'_, T>,
        d_scale: ViewMut<'_, T>,
        d_bias: Option<ViewMut<'_, T>>,
        d: Attention,
    ) -> KResult<Self> {
        if F::FAULT != GradFault::AttentionDropsScaleGrad {
            return self.inner.attention_backward(q, k, v, scale, bias, d_out, d_q, d_k, d_v, d_scale, d_bias, d);
        }
        check_extent("scale gradient", d_scale.offset, d.heads(), d_scale.tensor.len())?;
        let mut scratch = vec![0f32; d.heads()];
        self.inner.attention_backward(
            q,
            k,
            v,
            scale,
            bias,
            d_out,
            d_q,
            d_k,
            d_v,
            ViewMut::new(&mut scratch, 0),
            d_bias,
            d,
        )
    }
    fn linear_attention_backward(
        &mut self,
        q: View<'_, T>,
        k: View<'_, T>,
        v: View<'_, T>,
        scale: WeightView<'_, P>,
        state: View<'_, T>,
        d_out: View<'_, T>,
        d_state: ViewMut<'_, T>,
        d_q: ViewMut<'_, T>,
        d_k: ViewMut<'_, T>,
        d_v: ViewMut<'_, T>,
        d_scale: ViewMut<'_, T>,
        d: LinearAttention,
    ) -> KResult<Self> {
        if F::FAULT != GradFault::LinearIgnoresCarriedSums {
            return self
                .inner
                .linear_attention_backward(q, k, v, scale, state, d_out, d_state, d_q, d_k, d_v, d_scale, d);
        }
        check_extent("linear attention state", state.offset, d.state_len(), state.tensor.len())?;
        let zeros = vec![0f32; d.state_len()];
        self.inner.linear_attention_backward(
            q,
            k,
            v,
            scale,
            View::new(&zeros, 0),
            d_out,
            d_state,
            d_q,
            d_k,
            d_v,
            d_scale,
            d,
        )
    }
    fn gate_fixed_backward(
        &mut self,
        s: View<'_, T>,
        z: View<'_, T>,
        b: WeightView<'_, P>,
        d_s: ViewMut<'_, T>,
        d_z: ViewMut<'_, T>,
        d_b: ViewMut<'_, T>,
        d: Rows,
    ) -> KResult<Self> {
        if F::FAULT == GradFault::GateGradAssigns {
            zero(d_z.tensor, d_z.offset, d.len())?;
            zero(d_b.tensor, d_b.offset, d.dim())?;
        }
        self.inner.gate_fixed_backward(s, z, b, d_s, d_z, d_b, d)
    }
    fn gate_lstm_backward(
        &mut self,
        s: View<'_, T>,
        z: View<'_, T>,
        f: View<'_, T>,
        i: View<'_, T>,
        bf: WeightView<'_, P>,
        bi: WeightView<'_, P>,
        d_s: ViewMut<'_, T>,
        d_z: ViewMut<'_, T>,
        d_f: ViewMut<'_, T>,
        d_i: ViewMut<'_, T>,
        d_bf: ViewMut<'_, T>,
        d_bi: ViewMut<'_, T>,
        d: Rows,
    ) -> KResult<Self> {
        self.inner.gate_lstm_backward(s, z, f, i, bf, bi, d_s, d_z, d_f, d_i, d_bf, d_bi, d)
    }
    fn add_assign(&mut self, src: View<'_, T>, dst: ViewMut<'_, T>, len: usize) -> KResult<Self> {
        if F::FAULT != GradFault::UncheckedAddAssign {
            return self.inner.add_assign(src, dst, len);
        }
        // Indexing without the extent checks: a short buffer panics.
        for i in 0..len {
            dst.tensor[dst.offset + i] += src.tensor[src.offset + i];
        }
        Ok(())
    }
    fn gather_runs_add(&mut self, d_dst: View<'_, T>, d_src: ViewMut<'_, T>, runs: Strided) -> KResult<Self> {
        self.inner.gather_runs_add(d_dst, d_src, runs)
    }
}
