//! Dense products (SPEC 1: no biases), both weight orders, with scale,
//! accumulation and activation fused into the output.

use crate::backend::{tensor, weights, Wgpu};
use crate::buffers::{GpuTensor, GpuWeights};
use crate::error::Result;
use crate::pipelines::Kernel;
use crate::recorder::Params;
use brt_core::desc::{Activation, Matmul, WeightOrder};
use brt_core::{Storage, View, ViewMut, WeightView};

/// Output rows and columns of one workgroup's tile.
const TILE: usize = 64;
/// Products of at most this many rows take the matrix-vector kernel.
const MATVEC_ROWS: usize = 4;
/// Output columns of one matrix-vector workgroup.
const MATVEC_COLS: usize = 8;

pub(crate) fn matmul(
    k: &mut Wgpu,
    x: View<'_, GpuTensor>,
    w: WeightView<'_, GpuWeights>,
    out: ViewMut<'_, GpuTensor>,
    desc: Matmul,
) -> Result<()> {
    let (m, kk, n) = (desc.m(), desc.k(), desc.n());
    Wgpu::check_view("matmul input", &x, m * kk)?;
    Wgpu::check_weights("matmul weight", &w, kk * n)?;
    Wgpu::check_view_mut("matmul output", &out, m * n)?;
    let order = match desc.order() {
        WeightOrder::InOut => 0,
        WeightOrder::OutIn => 1,
    };
    let activation = match desc.activation_kind() {
        Activation::Identity => 0,
        Activation::Relu => 1,
        Activation::Tanh => 2,
    };
    let params = Params::new()
        .u(x.offset)?
        .u(w.offset)?
        .u(out.offset)?
        .u(m)?
        .u(kk)?
        .u(n)?
        .u(order)?
        .f(desc.alpha_value())?
        .flag(desc.accumulates())?
        .u(activation)?;
    let bindings = [tensor(x.tensor), weights(w.weights), tensor(out.tensor)];
    if m <= MATVEC_ROWS {
        // A handful of rows (token-by-token generation): split the inner
        // dimension across a workgroup instead of idling most of a 64-row tile.
        let groups = k.gpu.grid(n.div_ceil(MATVEC_COLS) as u64)?;
        return k.dispatch(Kernel::MatVec, [w.weights.dtype; 2], &bindings, params, groups);
    }
    let groups = [k.gpu.dim("matmul columns", n.div_ceil(TILE))?, k.gpu.dim("matmul rows", m.div_ceil(TILE))?, 1];
    k.dispatch(Kernel::Matmul, [w.weights.dtype; 2], &bindings, params, groups)
}
