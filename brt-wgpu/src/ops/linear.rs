//! Linear attention (SPEC 7) in chunked form, carrying its sums in the state.

use crate::backend::{tensor, weights, Wgpu};
use crate::buffers::{GpuTensor, GpuWeights};
use crate::error::{Result, WgpuError};
use crate::pipelines::Kernel;
use crate::recorder::Params;
use brt_core::desc::LinearAttention;
use brt_core::{Storage, View, ViewMut, WeightView};

/// Chunk positions and head width share 1024 floats of workgroup memory.
const CHUNK_FLOATS: usize = 1024;
/// Most tokens per chunk.
const MAX_CHUNK: usize = 16;

#[allow(clippy::too_many_arguments)]
pub(crate) fn linear_attention(
    k: &mut Wgpu,
    q: View<'_, GpuTensor>,
    keys: View<'_, GpuTensor>,
    v: View<'_, GpuTensor>,
    scale: WeightView<'_, GpuWeights>,
    state: ViewMut<'_, GpuTensor>,
    out: ViewMut<'_, GpuTensor>,
    desc: LinearAttention,
) -> Result<()> {
    Wgpu::check_view("linear attention queries", &q, desc.token_len())?;
    Wgpu::check_view("linear attention keys", &keys, desc.token_len())?;
    Wgpu::check_view("linear attention values", &v, desc.token_len())?;
    Wgpu::check_weights("linear attention scale", &scale, desc.heads())?;
    Wgpu::check_view_mut("linear attention state", &state, desc.state_len())?;
    Wgpu::check_view_mut("linear attention output", &out, desc.token_len())?;
    let dh = desc.head_dim();
    if dh > CHUNK_FLOATS {
        return Err(WgpuError::Unsupported(format!("linear attention heads wider than {CHUNK_FLOATS} (got {dh})")));
    }
    if desc.tokens() == 0 {
        return Ok(());
    }
    let chunk = MAX_CHUNK.min(CHUNK_FLOATS / dh);
    let params = Params::new()
        .u(q.offset)?
        .u(keys.offset)?
        .u(v.offset)?
        .u(out.offset)?
        .u(scale.offset)?
        .u(state.offset)?
        .u(desc.batch())?
        .u(desc.tokens())?
        .u(desc.heads())?
        .u(dh)?
        .flag(desc.abs_scale())?
        .u(chunk)?;
    let groups = [
        k.gpu.dim("linear attention heads", desc.heads())?,
        k.gpu.dim("linear attention batch rows", desc.batch())?,
        1,
    ];
    let bindings = [
        tensor(q.tensor),
        tensor(keys.tensor),
        tensor(v.tensor),
        weights(scale.weights),
        tensor(state.tensor),
        tensor(out.tensor),
    ];
    k.dispatch(Kernel::LinearAttention, [scale.weights.dtype; 2], &bindings, params, groups)
}
