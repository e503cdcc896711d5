//! `brt_core::Gradients` for the CPU backend: the backward kernels of training.
//!
//! Same semantics as the reference's backward (`brt_core::reference`), in f32:
//! vector-Jacobian products added (`+=`) into gradient buffers, and in-place
//! forwards turning the gradient after into the gradient before.
//!
//! - Products (`matmul_backward`) reuse the packed GEMM: `d_x += alpha dz W^T`
//!   reads the weight in the other order, `d_w += alpha x^T dz` takes the
//!   activation `dz` as the right-hand side and `x` transposed as the left (for
//!   `OutIn` weights, `d_w^T += alpha dz^T x`), so `d_w` is laid out like the
//!   weight and f16/bf16 weights are widened as in the forward.
//! - Attention (`attention.rs`) and linear attention (`linear.rs`) are tiled and
//!   chunked like their forwards (sizes from [`crate::Tiles`]), a task per
//!   (batch row, head).
//! - Row-wise kernels split rows over threads. Parameter gradients that every row
//!   (or batch row) adds to are summed per thread and added once at the end
//!   (`Cpu::parallel_reduce`), so no float atomics are needed. The tasks are
//!   split into fixed parts summed in a fixed order, so results are the same
//!   from run to run for a given thread count (across thread counts they agree
//!   to rounding).

mod attention;
mod linear;
mod rows;

use crate::backend::{view, view_mut, weights};
use crate::gemm::{BSource, Gemm};
use crate::parallel::{part, SendPtr};
use crate::weights::{CpuWeights, WSlice};
use crate::{Cpu, CpuError};
use attention::{AttnGradCall, AttnGradTask};
use brt_core::desc::{
    Activation, Attention, Embed, Heads, LinearAttention, Mask, Matmul, Positions, Rows, Strided, WeightOrder,
};
use brt_core::params::T5_BUCKETS;
use brt_core::{kernels::check_extent, CoreError, Gradients, HostMemory, KResult, View, ViewMut, WeightView};
use linear::{LinearGradCall, LinearGradTask};
use rows::{
    ActivationGrad, AddAssign, CopyStreaming, EmbedGrad, GateFixedGrad, GateLstmGrad, L2NormalizeGrad, PositionsGrad,
    RmsNormGrad,
};

pub(crate) use attention::scratch_len as attention_scratch_len;
pub(crate) use linear::scratch_len as linear_scratch_len;

/// Element-wise work below this many values runs on one thread.
const PARALLEL_MIN: usize = 1 << 15;

/// A mutable sub-slice of a buffer shared by tasks that touch disjoint ranges.
///
/// # Safety
/// `ptr` must be valid for `range.end` values, and no other live reference may
/// overlap `range`.
unsafe fn slice_mut<'a>(ptr: SendPtr, range: core::ops::Range<usize>) -> &'a mut [f32] {
    // SAFETY: forwarded contract.
    unsafe { core::slice::from_raw_parts_mut(ptr.get().add(range.start), range.len()) }
}

impl<M: HostMemory> Cpu<M> {
    /// Runs `f` on matching ranges of `src` and `dst` (as long as the shorter),
    /// one range per task: an element-wise pass over a long vector split over
    /// the threads (bound by memory, which one core alone does not saturate).
    fn split_elementwise(
        &mut self,
        src: &[f32],
        dst: &mut [f32],
        f: &(dyn Fn(&[f32], &mut [f32]) + Sync),
    ) -> Result<(), CpuError> {
        let len = src.len().min(dst.len());
        let tasks = self.rows_tasks(len, 1).min(len.div_ceil(1 << 14)).max(1);
        let d = SendPtr(dst.as_mut_ptr());
        self.parallel(tasks, &|t, _| {
            let range = part(len, tasks, t);
            // SAFETY: `dst` holds at least `len` values and the ranges of the
            // tasks are disjoint.
            let dst = unsafe { slice_mut(d, range.clone()) };
            f(&src[range], dst);
        })
    }

    /// Tasks for `rows` rows of `dim` values: one per thread when there is enough
    /// work, else one.
    fn rows_tasks(&self, rows: usize, dim: usize) -> usize {
        if rows.saturating_mul(dim) >= PARALLEL_MIN {
            self.threads().min(rows).max(1)
        } else {
            1
        }
    }
}

impl<M: HostMemory> Gradients for Cpu<M> {
    fn embed_backward(
        &mut self,
        tokens: &M::U32,
        token_offset: usize,
        d_out: View<'_, M::F32>,
        d_table: ViewMut<'_, M::F32>,
        desc: Embed,
    ) -> KResult<Self> {
        let (n, dim, vocab) = (desc.count(), desc.dim(), desc.vocab());
        check_extent("embed tokens", token_offset, n, tokens.len())?;
        let ids = &tokens[token_offset..token_offset + n];
        let d_out = view("embed output gradient", d_out, n * dim)?;
        let d_table = view_mut("embedding table gradient", d_table, vocab * dim)?;
        if let Some((index, &id)) = ids.iter().enumerate().find(|(_, &id)| id as usize >= vocab) {
            return Err(CoreError::TokenOutOfRange { index, id, vocab }.into());
        }
        // Tasks own column ranges of the table, so repeated ids never collide.
        let tasks = if n * dim >= PARALLEL_MIN { self.threads().min(dim.div_ceil(64)).max(1) } else { 1 };
        let (table_len, table, level) = (d_table.len(), SendPtr(d_table.as_mut_ptr()), self.level());
        self.parallel(tasks, &|t, _| {
            let cols = part(dim, tasks, t);
            level.dispatch(EmbedGrad { ids, d_out, d_table: table, table_len, dim, cols });
        })
    }

    fn rms_norm_backward(
        &mut self,
        x: View<'_, M::F32>,
        scale: WeightView<'_, CpuWeights<M>>,
        d_out: View<'_, M::F32>,
        d_x: ViewMut<'_, M::F32>,
        d_scale: ViewMut<'_, M::F32>,
        desc: Rows,
    ) -> KResult<Self> {
        let (rows, dim) = (desc.rows(), desc.dim());
        let x = view("rms_norm input", x, desc.len())?;
        let scale = weights("rms_norm scale", scale, dim)?;
        let d_out = view("rms_norm output gradient", d_out, desc.len())?;
        let d_x = view_mut("rms_norm input gradient", d_x, desc.len())?;
        let d_scale = view_mut("rms_norm scale gradient", d_scale, dim)?;
        let tasks = self.rows_tasks(rows, dim);
        let (dx, level) = (SendPtr(d_x.as_mut_ptr()), self.level());
        self.parallel_reduce(tasks, 0, &mut [d_scale], &|t, _, partial| {
            let r = part(rows, tasks, t);
            let range = r.start * dim..r.end * dim;
            // SAFETY: `d_x` holds `rows * dim` values (checked above) and the row
            // ranges of the tasks are disjoint.
            let d_x = unsafe { slice_mut(dx, range.clone()) };
            level.dispatch(RmsNormGrad { x: &x[range.clone()], scale, d_out: &d_out[range], d_x, partial, dim });
        })
    }

    fn add_positions_backward(
        &mut self,
        d_x: View<'_, M::F32>,
        d_table: ViewMut<'_, M::F32>,
        desc: Positions,
    ) -> KResult<Self> {
        let (positions, batch, dim) = (desc.positions(), desc.batch(), desc.dim());
        let d_x = view("add_positions gradient", d_x, desc.len())?;
        let d_table = view_mut("position table gradient", d_table, positions * dim)?;
        let tasks = self.rows_tasks(positions, batch * dim);
        let (table, level) = (SendPtr(d_table.as_mut_ptr()), self.level());
        self.parallel(tasks, &|t, _| {
            let p = part(positions, tasks, t);
            // SAFETY: the table gradient holds `positions * dim` values (checked
            // above) and the position ranges of the tasks are disjoint.
            let d_table = unsafe { slice_mut(table, p.start * dim..p.end * dim) };
            let d_x = &d_x[p.start * batch * dim..p.end * batch * dim];
            level.dispatch(PositionsGrad { d_x, d_table, batch, dim });
        })
    }

    fn l2_normalize_backward(&mut self, x: View<'_, M::F32>, d_x: ViewMut<'_, M::F32>, desc: Heads) -> KResult<Self> {
        let x = view("l2_normalize input", x, desc.len())?;
        let d_x = view_mut("l2_normalize gradient", d_x, desc.len())?;
        let (rows, width, head_dim) = (desc.rows(), desc.width(), desc.head_dim());
        let tasks = self.rows_tasks(rows, width);
        let (d, level) = (SendPtr(d_x.as_mut_ptr()), self.level());
        self.parallel(tasks, &|t, _| {
            let r = part(rows, tasks, t);
            let range = r.start * width..r.end * width;
            // SAFETY: the gradient holds `rows * width` values (checked above) and
            // the row ranges of the tasks are disjoint.
            let d = unsafe { slice_mut(d, range.clone()) };
            level.dispatch(L2NormalizeGrad { x: &x[range], d, head_dim });
        })
    }

    fn matmul_backward(
        &mut self,
        x: View<'_, M::F32>,
        w: WeightView<'_, CpuWeights<M>>,
        out: View<'_, M::F32>,
        d_out: ViewMut<'_, M::F32>,
        d_x: Option<ViewMut<'_, M::F32>>,
        d_w: Option<ViewMut<'_, M::F32>>,
        desc: Matmul,
    ) -> KResult<Self> {
        let (m, k, n) = (desc.m(), desc.k(), desc.n());
        let x = view("matmul input", x, m * k)?;
        let w = weights("matmul weight", w, k * n)?;
        let out = view("matmul output", out, m * n)?;
        let d_z = view_mut("matmul output gradient", d_out, m * n)?;
        let d_x = match d_x {
            Some(v) => Some(view_mut("matmul input gradient", v, m * k)?),
            None => None,
        };
        let d_w = match d_w {
            Some(v) => Some(view_mut("matmul weight gradient", v, k * n)?),
            None => None,
        };
        if m == 0 {
            return Ok(());
        }
        // d_z = d_out * act'(out), in place.
        let activation = desc.activation_kind();
        if activation != Activation::Identity {
            let tasks = self.rows_tasks(m, n);
            let (dz, level) = (SendPtr(d_z.as_mut_ptr()), self.level());
            self.parallel(tasks, &|t, _| {
                let r = part(m, tasks, t);
                let range = r.start * n..r.end * n;
                // SAFETY: `d_z` holds `m * n` values (checked above) and the row
                // ranges of the tasks are disjoint.
                let d = unsafe { slice_mut(dz, range.clone()) };
                level.dispatch(ActivationGrad { y: &out[range], d, activation });
            })?;
        }
        let d_z: &[f32] = d_z;
        let alpha = desc.alpha_value();
        if let Some(d_x) = d_x {
            // d_x (m x k) += alpha d_z (m x n) W^T: the weight read in the other order.
            let wt = match desc.order() {
                WeightOrder::InOut => BSource::OutIn(w, n),
                WeightOrder::OutIn => BSource::InOut(w, k),
            };
            let g = Gemm::new((m, k, n), (d_z, n), wt, (d_x, k), alpha, true, Activation::Identity)?;
            self.product(&g)?;
        }
        if let Some(d_w) = d_w {
            // The weight's own layout: InOut (k x n) += alpha x^T d_z;
            // OutIn (n x k) += alpha d_z^T x. Both sum over the m rows.
            let g = match desc.order() {
                WeightOrder::InOut => Gemm::with_a_order(
                    (k, n, m),
                    (x, k, true),
                    BSource::InOut(WSlice::F32(d_z), n),
                    (d_w, n),
                    alpha,
                    true,
                    Activation::Identity,
                )?,
                WeightOrder::OutIn => Gemm::with_a_order(
                    (n, k, m),
                    (d_z, n, true),
                    BSource::InOut(WSlice::F32(x), k),
                    (d_w, k),
                    alpha,
                    true,
                    Activation::Identity,
                )?,
            };
            self.product(&g)?;
        }
        Ok(())
    }

    fn attention_backward(
        &mut self,
        q: View<'_, M::F32>,
        k: View<'_, M::F32>,
        v: View<'_, M::F32>,
        scale: WeightView<'_, CpuWeights<M>>,
        bias: Option<WeightView<'_, CpuWeights<M>>>,
        d_out: View<'_, M::F32>,
        d_q: ViewMut<'_, M::F32>,
        d_k: ViewMut<'_, M::F32>,
        d_v: ViewMut<'_, M::F32>,
        d_scale: ViewMut<'_, M::F32>,
        d_bias: Option<ViewMut<'_, M::F32>>,
        desc: Attention,
    ) -> KResult<Self> {
        let heads = desc.heads();
        let q = view("attention queries", q, desc.query_len())?;
        let k = view("attention keys", k, desc.key_len())?;
        let v = view("attention values", v, desc.key_len())?;
        let scale = weights("attention scale", scale, heads)?;
        let bias = match bias {
            Some(b) => Some(weights("position bias table", b, heads * T5_BUCKETS)?),
            None => None,
        };
        if bias.is_some() && desc.mask() == Mask::None {
            return Err(CoreError::InvalidShape { what: "a position bias needs a window mask" }.into());
        }
        let d_out = view("attention output gradient", d_out, desc.query_len())?;
        let d_q = view_mut("attention query gradient", d_q, desc.query_len())?;
        let d_k = view_mut("attention key gradient", d_k, desc.key_len())?;
        let d_v = view_mut("attention value gradient", d_v, desc.key_len())?;
        let d_scale = view_mut("attention scale gradient", d_scale, heads)?;
        let d_bias = match d_bias {
            Some(b) => Some(view_mut("position bias gradient", b, heads * T5_BUCKETS)?),
            None => None,
        };
        if d_bias.is_some() != bias.is_some() {
            return Err(CoreError::InvalidShape { what: "a bias gradient goes with a bias" }.into());
        }
        self.check_head_dim(desc.head_dim())?;
        if desc.queries() == 0 {
            return Ok(());
        }
        let tiles = self.tiles();
        let call = AttnGradCall {
            tiles,
            q,
            k,
            v,
            scale,
            bias,
            d_out,
            d_q: SendPtr(d_q.as_mut_ptr()),
            d_k: SendPtr(d_k.as_mut_ptr()),
            d_v: SendPtr(d_v.as_mut_ptr()),
            desc,
        };
        let need = scratch_need(attention::scratch_len(&tiles, self.tile(), desc.head_dim()));
        let level = self.level();
        let body = |task: usize, scratch: &mut [f32], partial: &mut [f32]| {
            level.dispatch(AttnGradTask { call: &call, task, scratch, partial });
        };
        match d_bias {
            Some(d_bias) => self.parallel_reduce(desc.batch() * heads, need, &mut [d_scale, d_bias], &body),
            None => self.parallel_reduce(desc.batch() * heads, need, &mut [d_scale], &body),
        }
    }

    fn linear_attention_backward(
        &mut self,
        q: View<'_, M::F32>,
        k: View<'_, M::F32>,
        v: View<'_, M::F32>,
        scale: WeightView<'_, CpuWeights<M>>,
        state: View<'_, M::F32>,
        d_out: View<'_, M::F32>,
        d_state: ViewMut<'_, M::F32>,
        d_q: ViewMut<'_, M::F32>,
        d_k: ViewMut<'_, M::F32>,
        d_v: ViewMut<'_, M::F32>,
        d_scale: ViewMut<'_, M::F32>,
        desc: LinearAttention,
    ) -> KResult<Self> {
        let n = desc.token_len();
        let q = view("linear attention queries", q, n)?;
        let k = view("linear attention keys", k, n)?;
        let v = view("linear attention values", v, n)?;
        let scale = weights("linear attention scale", scale, desc.heads())?;
        let state = view("linear attention state", state, desc.state_len())?;
        let d_out = view("linear attention output gradient", d_out, n)?;
        let d_state = view_mut("linear attention state gradient", d_state, desc.state_len())?;
        let d_q = view_mut("linear attention query gradient", d_q, n)?;
        let d_k = view_mut("linear attention key gradient", d_k, n)?;
        let d_v = view_mut("linear attention value gradient", d_v, n)?;
        let d_scale = view_mut("linear attention scale gradient", d_scale, desc.heads())?;
        self.check_head_dim(desc.head_dim())?;
        if desc.tokens() == 0 {
            return Ok(());
        }
        let call = LinearGradCall {
            chunk: self.tiles().linear_chunk,
            q,
            k,
            v,
            scale,
            state,
            d_out,
            d_state: SendPtr(d_state.as_mut_ptr()),
            d_q: SendPtr(d_q.as_mut_ptr()),
            d_k: SendPtr(d_k.as_mut_ptr()),
            d_v: SendPtr(d_v.as_mut_ptr()),
            desc,
        };
        let need = scratch_need(linear::scratch_len(self.tiles().linear_chunk, desc.head_dim()));
        let level = self.level();
        self.parallel_reduce(desc.batch() * desc.heads(), need, &mut [d_scale], &|task, scratch, partial| {
            level.dispatch(LinearGradTask { call: &call, task, scratch, partial });
        })
    }

    fn gate_fixed_backward(
        &mut self,
        state: View<'_, M::F32>,
        z: View<'_, M::F32>,
        bias: WeightView<'_, CpuWeights<M>>,
        d_state: ViewMut<'_, M::F32>,
        d_z: ViewMut<'_, M::F32>,
        d_bias: ViewMut<'_, M::F32>,
        desc: Rows,
    ) -> KResult<Self> {
        let (rows, dim) = (desc.rows(), desc.dim());
        let state = view("gated state", state, desc.len())?;
        let z = view("gate update", z, desc.len())?;
        let bias = weights("gate bias", bias, dim)?;
        let d_state = view_mut("gated state gradient", d_state, desc.len())?;
        let d_z = view_mut("gate update gradient", d_z, desc.len())?;
        let d_bias = view_mut("gate bias gradient", d_bias, dim)?;
        let tasks = self.rows_tasks(rows, dim);
        let (ds, dz, level) = (SendPtr(d_state.as_mut_ptr()), SendPtr(d_z.as_mut_ptr()), self.level());
        self.parallel_reduce(tasks, 0, &mut [d_bias], &|t, _, partial| {
            let r = part(rows, tasks, t);
            let range = r.start * dim..r.end * dim;
            // SAFETY: both gradients hold `rows * dim` values (checked above) and
            // the row ranges of the tasks are disjoint.
            let (d_state, d_z) = unsafe { (slice_mut(ds, range.clone()), slice_mut(dz, range.clone())) };
            level.dispatch(GateFixedGrad {
                state: &state[range.clone()],
                z: &z[range],
                bias,
                d_state,
                d_z,
                partial,
                dim,
            });
        })
    }

    fn gate_lstm_backward(
        &mut self,
        state: View<'_, M::F32>,
        z: View<'_, M::F32>,
        forget: View<'_, M::F32>,
        input: View<'_, M::F32>,
        forget_bias: WeightView<'_, CpuWeights<M>>,
        input_bias: WeightView<'_, CpuWeights<M>>,
        d_state: ViewMut<'_, M::F32>,
        d_z: ViewMut<'_, M::F32>,
        d_forget: ViewMut<'_, M::F32>,
        d_input: ViewMut<'_, M::F32>,
        d_forget_bias: ViewMut<'_, M::F32>,
        d_input_bias: ViewMut<'_, M::F32>,
        desc: Rows,
    ) -> KResult<Self> {
        let (rows, dim, len) = (desc.rows(), desc.dim(), desc.len());
        let state = view("gated state", state, len)?;
        let z = view("gate update", z, len)?;
        let forget = view("forget gate input", forget, len)?;
        let input = view("input gate input", input, len)?;
        let forget_bias = weights("forget gate bias", forget_bias, dim)?;
        let input_bias = weights("input gate bias", input_bias, dim)?;
        let d_state = view_mut("gated state gradient", d_state, len)?;
        let d_z = view_mut("gate update gradient", d_z, len)?;
        let d_forget = view_mut("forget gate gradient", d_forget, len)?;
        let d_input = view_mut("input gate gradient", d_input, len)?;
        let d_bf = view_mut("forget bias gradient", d_forget_bias, dim)?;
        let d_bi = view_mut("input bias gradient", d_input_bias, dim)?;
        let tasks = self.rows_tasks(rows, dim);
        let ptrs = [d_state, d_z, d_forget, d_input].map(|b| SendPtr(b.as_mut_ptr()));
        let level = self.level();
        self.parallel_reduce(tasks, 0, &mut [d_bf, d_bi], &|t, _, partial| {
            let r = part(rows, tasks, t);
            let range = r.start * dim..r.end * dim;
            // SAFETY: the four gradients hold `rows * dim` values each (checked
            // above) and the row ranges of the tasks are disjoint.
            let [d_state, d_z, d_forget, d_input] = ptrs.map(|p| unsafe { slice_mut(p, range.clone()) });
            level.dispatch(GateLstmGrad {
                state: &state[range.clone()],
                z: &z[range.clone()],
                forget: &forget[range.clone()],
                input: &input[range],
                forget_bias,
                input_bias,
                d_state,
                d_z,
                d_forget,
                d_input,
                partial,
                dim,
            });
        })
    }

    fn add_assign(&mut self, src: View<'_, M::F32>, dst: ViewMut<'_, M::F32>, len: usize) -> KResult<Self> {
        let src = view("add source", src, len)?;
        let dst = view_mut("add destination", dst, len)?;
        let level = self.level();
        self.split_elementwise(src, dst, &|src, dst| level.dispatch(AddAssign { src, dst }))
    }

    fn host_threads(&self) -> usize {
        self.threads()
    }

    fn copy_to_tape(&mut self, src: View<'_, M::F32>, dst: ViewMut<'_, M::F32>, len: usize) -> KResult<Self> {
        let src = view("copy source", src, len)?;
        let dst = view_mut("copy destination", dst, len)?;
        let level = self.level();
        self.split_elementwise(src, dst, &|src, dst| level.dispatch(CopyStreaming { src, dst }))
    }

    fn gather_runs_add(&mut self, d_dst: View<'_, M::F32>, d_src: ViewMut<'_, M::F32>, runs: Strided) -> KResult<Self> {
        let d_dst = view("runs gradient", d_dst, runs.extent())?;
        let d_src = view_mut("gathered gradient", d_src, runs.total())?;
        let level = self.level();
        for r in 0..runs.count() {
            let src = &d_dst[r * runs.stride()..][..runs.len()];
            level.dispatch(AddAssign { src, dst: &mut d_src[r * runs.len()..][..runs.len()] });
        }
        Ok(())
    }
}

/// A task's scratch need as a `usize`. It fits (the head width was checked
/// against the backend's capacity, and the backend's scratch, sized for the
/// widest head, fits); if it did not, `usize::MAX` makes `parallel_reduce`
/// refuse the call.
fn scratch_need(len: u64) -> usize {
    usize::try_from(len).unwrap_or(usize::MAX)
}

/// Splits `len` values off the front of `rest` (a task's scratch).
#[inline(always)]
fn take<'s>(rest: &mut &'s mut [f32], len: usize) -> &'s mut [f32] {
    let (head, tail) = core::mem::take(rest).split_at_mut(len);
    *rest = tail;
    head
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use crate::{Cpu, Heap, Options};
    use brt_core::Gradients;

    /// A trainer splits its loss and optimizer step over `host_threads`: it is
    /// the backend's own thread count, so that no core idles meanwhile and none
    /// takes two threads.
    #[test]
    fn host_threads_are_the_backends_threads() {
        for threads in [1, 2, 3] {
            let k = Cpu::with_options(Heap, Options::threads(threads)).unwrap();
            assert_eq!(k.host_threads(), threads, "{threads} threads");
        }
    }
}
