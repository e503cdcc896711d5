//! Fused softmax attention: the sliding window with T5 bias of the token
//! self-attention (SPEC 2) and the unmasked state attentions (SPEC 4), one kernel.

use crate::backend::{tensor, weights, Wgpu};
use crate::buffers::{GpuTensor, GpuWeights};
use crate::error::{Result, WgpuError};
use crate::pipelines::Kernel;
use crate::recorder::Params;
use brt_core::desc::{Attention, Mask};
use brt_core::params::T5_BUCKETS;
use brt_core::{CoreError, Storage, View, ViewMut, WeightView};

/// Query positions and head width share 1024 floats of workgroup memory.
const TILE_FLOATS: usize = 1024;
/// Most query positions per workgroup.
const MAX_TILE: usize = 8;

#[allow(clippy::too_many_arguments)]
pub(crate) fn attention(
    k: &mut Wgpu,
    q: View<'_, GpuTensor>,
    keys: View<'_, GpuTensor>,
    v: View<'_, GpuTensor>,
    scale: WeightView<'_, GpuWeights>,
    bias: Option<WeightView<'_, GpuWeights>>,
    out: ViewMut<'_, GpuTensor>,
    desc: Attention,
) -> Result<()> {
    Wgpu::check_view("attention queries", &q, desc.query_len())?;
    Wgpu::check_view("attention keys", &keys, desc.key_len())?;
    Wgpu::check_view("attention values", &v, desc.key_len())?;
    Wgpu::check_weights("attention scale", &scale, desc.heads())?;
    if let Some(b) = &bias {
        Wgpu::check_weights("position bias table", b, desc.heads() * T5_BUCKETS)?;
    }
    let (mask, offset, window) = match desc.mask() {
        Mask::None => (0, 0, 0),
        Mask::Window { offset, window } => (1, offset, window),
    };
    if bias.is_some() && mask == 0 {
        return Err(CoreError::InvalidShape { what: "a position bias needs a window mask" }.into());
    }
    Wgpu::check_view_mut("attention output", &out, desc.query_len())?;
    let dh = desc.head_dim();
    if dh > TILE_FLOATS {
        return Err(WgpuError::Unsupported(format!("attention heads wider than {TILE_FLOATS} (got {dh})")));
    }
    let tile = MAX_TILE.min(TILE_FLOATS / dh);
    // Without a bias the scale's buffer fills the binding; the kernel ignores it.
    let bias_view = bias.unwrap_or(scale);
    let params = Params::new()
        .u(q.offset)?
        .u(keys.offset)?
        .u(v.offset)?
        .u(out.offset)?
        .u(scale.offset)?
        .u(bias_view.offset)?
        .flag(bias.is_some())?
        .u(desc.batch())?
        .u(desc.queries())?
        .u(desc.keys())?
        .u(desc.heads())?
        .u(dh)?
        .u(mask)?
        .u(offset)?
        .u(window)?
        .flag(desc.abs_scale())?
        .u(tile)?;
    let groups = [
        k.gpu.dim("attention query tiles", desc.queries().div_ceil(tile))?,
        k.gpu.dim("attention heads", desc.heads())?,
        k.gpu.dim("attention batch rows", desc.batch())?,
    ];
    let bindings = [
        tensor(q.tensor),
        tensor(keys.tensor),
        tensor(v.tensor),
        weights(scale.weights),
        weights(bias_view.weights),
        tensor(out.tensor),
    ];
    let dtypes = [scale.weights.dtype, bias_view.weights.dtype];
    k.dispatch(Kernel::Attention, dtypes, &bindings, params, groups)
}
