//! The state update's gates (SPEC 4, "Gates").

use super::linear_grid;
use crate::backend::{tensor, weights, Wgpu};
use crate::buffers::{GpuTensor, GpuWeights};
use crate::error::Result;
use crate::pipelines::Kernel;
use crate::recorder::Params;
use brt_core::desc::Rows;
use brt_core::{Storage, View, ViewMut, WeightView};

pub(crate) fn gate_fixed(
    k: &mut Wgpu,
    state: ViewMut<'_, GpuTensor>,
    z: View<'_, GpuTensor>,
    bias: WeightView<'_, GpuWeights>,
    desc: Rows,
) -> Result<()> {
    Wgpu::check_view("gate update", &z, desc.len())?;
    Wgpu::check_weights("gate bias", &bias, desc.dim())?;
    Wgpu::check_view_mut("gated state", &state, desc.len())?;
    let params = Params::new().u(state.offset)?.u(z.offset)?.u(bias.offset)?.u(desc.len())?.u(desc.dim())?;
    let groups = linear_grid(k, desc.len())?;
    let bindings = [tensor(state.tensor), tensor(z.tensor), weights(bias.weights)];
    k.dispatch(Kernel::GateFixed, [bias.weights.dtype; 2], &bindings, params, groups)
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn gate_lstm(
    k: &mut Wgpu,
    state: ViewMut<'_, GpuTensor>,
    z: View<'_, GpuTensor>,
    forget: View<'_, GpuTensor>,
    input: View<'_, GpuTensor>,
    forget_bias: WeightView<'_, GpuWeights>,
    input_bias: WeightView<'_, GpuWeights>,
    desc: Rows,
) -> Result<()> {
    Wgpu::check_view("gate update", &z, desc.len())?;
    Wgpu::check_view("forget gate input", &forget, desc.len())?;
    Wgpu::check_view("input gate input", &input, desc.len())?;
    Wgpu::check_weights("forget gate bias", &forget_bias, desc.dim())?;
    Wgpu::check_weights("input gate bias", &input_bias, desc.dim())?;
    Wgpu::check_view_mut("gated state", &state, desc.len())?;
    let params = Params::new()
        .u(state.offset)?
        .u(z.offset)?
        .u(forget.offset)?
        .u(input.offset)?
        .u(forget_bias.offset)?
        .u(input_bias.offset)?
        .u(desc.len())?
        .u(desc.dim())?;
    let groups = linear_grid(k, desc.len())?;
    let bindings = [
        tensor(state.tensor),
        tensor(z.tensor),
        tensor(forget.tensor),
        tensor(input.tensor),
        weights(forget_bias.weights),
        weights(input_bias.weights),
    ];
    let dtypes = [forget_bias.weights.dtype, input_bias.weights.dtype];
    k.dispatch(Kernel::GateLstm, dtypes, &bindings, params, groups)
}
