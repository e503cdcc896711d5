//! Data movement: embedding gather, copies and fills.

use super::linear_grid;
use crate::backend::{tensor, tokens as bind_tokens, weights, Wgpu};
use crate::buffers::{GpuTensor, GpuTokens, GpuWeights};
use crate::error::Result;
use crate::pipelines::Kernel;
use crate::recorder::Params;
use brt_core::desc::{Embed, Strided};
use brt_core::kernels::check_extent;
use brt_core::{CoreError, Storage, View, ViewMut, WeightDtype, WeightView};

pub(crate) fn embed(
    k: &mut Wgpu,
    tokens: &GpuTokens,
    token_offset: usize,
    table: WeightView<'_, GpuWeights>,
    out: ViewMut<'_, GpuTensor>,
    desc: Embed,
) -> Result<()> {
    let (n, dim) = (desc.count(), desc.dim());
    check_extent("embed tokens", token_offset, n, tokens.host.len())?;
    Wgpu::check_weights("embedding table", &table, desc.vocab() * dim)?;
    Wgpu::check_view_mut("embed output", &out, n * dim)?;
    // The host copy of the ids is exact (only `write_tokens` changes them).
    for (index, &id) in tokens.host[token_offset..token_offset + n].iter().enumerate() {
        if id as usize >= desc.vocab() {
            return Err(CoreError::TokenOutOfRange { index, id, vocab: desc.vocab() }.into());
        }
    }
    let params = Params::new().u(token_offset)?.u(table.offset)?.u(out.offset)?.u(n)?.u(dim)?.u(desc.vocab())?;
    let groups = linear_grid(k, n * dim)?;
    let bindings = [bind_tokens(tokens), weights(table.weights), tensor(out.tensor)];
    k.dispatch(Kernel::Embed, [table.weights.dtype; 2], &bindings, params, groups)
}

pub(crate) fn copy(k: &mut Wgpu, src: View<'_, GpuTensor>, dst: ViewMut<'_, GpuTensor>, len: usize) -> Result<()> {
    Wgpu::check_view("copy source", &src, len)?;
    Wgpu::check_view_mut("copy destination", &dst, len)?;
    let params = Params::new().u(src.offset)?.u(dst.offset)?.u(len)?;
    let groups = linear_grid(k, len)?;
    k.dispatch(Kernel::Copy, [WeightDtype::F32; 2], &[tensor(src.tensor), tensor(dst.tensor)], params, groups)
}

pub(crate) fn fill(k: &mut Wgpu, dst: ViewMut<'_, GpuTensor>, runs: Strided, value: f32) -> Result<()> {
    Wgpu::check_view_mut("fill destination", &dst, runs.extent())?;
    let params = Params::new().u(dst.offset)?.u(runs.count())?.u(runs.len())?.u(runs.stride())?.f(value)?;
    let groups = linear_grid(k, runs.total())?;
    k.dispatch(Kernel::Fill, [WeightDtype::F32; 2], &[tensor(dst.tensor)], params, groups)
}

pub(crate) fn copy_weights(
    k: &mut Wgpu,
    src: WeightView<'_, GpuWeights>,
    dst: ViewMut<'_, GpuTensor>,
    runs: Strided,
) -> Result<()> {
    Wgpu::check_weights("copy_weights source", &src, runs.total())?;
    Wgpu::check_view_mut("copy_weights destination", &dst, runs.extent())?;
    let params = Params::new().u(src.offset)?.u(dst.offset)?.u(runs.count())?.u(runs.len())?.u(runs.stride())?;
    let groups = linear_grid(k, runs.total())?;
    let bindings = [weights(src.weights), tensor(dst.tensor)];
    k.dispatch(Kernel::CopyWeights, [src.weights.dtype; 2], &bindings, params, groups)
}
