//! Row normalisations (SPEC 1) and the state-id addition (SPEC 4).

use super::linear_grid;
use crate::backend::{tensor, weights, Wgpu};
use crate::buffers::{GpuTensor, GpuWeights};
use crate::error::Result;
use crate::pipelines::Kernel;
use crate::recorder::Params;
use brt_core::desc::{Heads, Positions, Rows};
use brt_core::{Storage, View, ViewMut, WeightDtype, WeightView};

pub(crate) fn rms_norm(
    k: &mut Wgpu,
    x: View<'_, GpuTensor>,
    scale: WeightView<'_, GpuWeights>,
    out: ViewMut<'_, GpuTensor>,
    desc: Rows,
) -> Result<()> {
    Wgpu::check_view("rms_norm input", &x, desc.len())?;
    Wgpu::check_weights("rms_norm scale", &scale, desc.dim())?;
    Wgpu::check_view_mut("rms_norm output", &out, desc.len())?;
    let params = Params::new().u(x.offset)?.u(scale.offset)?.u(out.offset)?.u(desc.rows())?.u(desc.dim())?;
    // One workgroup per row.
    let groups = k.gpu.grid(desc.rows() as u64)?;
    let bindings = [tensor(x.tensor), weights(scale.weights), tensor(out.tensor)];
    k.dispatch(Kernel::RmsNorm, [scale.weights.dtype; 2], &bindings, params, groups)
}

pub(crate) fn l2_normalize(k: &mut Wgpu, x: ViewMut<'_, GpuTensor>, desc: Heads) -> Result<()> {
    Wgpu::check_view_mut("l2_normalize input", &x, desc.len())?;
    let heads = desc.rows() * desc.heads();
    let params = Params::new().u(x.offset)?.u(heads)?.u(desc.head_dim())?;
    // One workgroup per head of a row.
    let groups = k.gpu.grid(heads as u64)?;
    k.dispatch(Kernel::L2Normalize, [WeightDtype::F32; 2], &[tensor(x.tensor)], params, groups)
}

pub(crate) fn add_positions(
    k: &mut Wgpu,
    x: ViewMut<'_, GpuTensor>,
    table: WeightView<'_, GpuWeights>,
    desc: Positions,
) -> Result<()> {
    Wgpu::check_weights("position table", &table, desc.positions() * desc.dim())?;
    Wgpu::check_view_mut("add_positions input", &x, desc.len())?;
    let params = Params::new().u(x.offset)?.u(table.offset)?.u(desc.len())?.u(desc.batch())?.u(desc.dim())?;
    let groups = linear_grid(k, desc.len())?;
    let bindings = [tensor(x.tensor), weights(table.weights)];
    k.dispatch(Kernel::AddPositions, [table.weights.dtype; 2], &bindings, params, groups)
}
