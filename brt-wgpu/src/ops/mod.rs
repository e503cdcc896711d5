//! The [`Kernels`] half of the contract: each call checks its extents on the host
//! (returning `BufferTooSmall` exactly as the reference does, before anything is
//! recorded), fills a parameter block and records one dispatch.

mod attention;
mod gates;
mod linear;
mod matmul;
mod memory;
mod norm;

use crate::backend::Wgpu;
use crate::buffers::{GpuTensor, GpuTokens, GpuWeights};
use crate::error::Result;
use brt_core::desc::{Attention, Embed, Heads, LinearAttention, Matmul, Positions, Rows, Strided};
use brt_core::{Kernels, View, ViewMut, WeightView};

/// Threads of the one-dimensional (elementwise) kernels.
pub(crate) const LINEAR_WORKGROUP: usize = 256;

impl Kernels for Wgpu {
    fn embed(
        &mut self,
        tokens: &GpuTokens,
        token_offset: usize,
        table: WeightView<'_, GpuWeights>,
        out: ViewMut<'_, GpuTensor>,
        desc: Embed,
    ) -> Result<()> {
        memory::embed(self, tokens, token_offset, table, out, desc)
    }

    fn rms_norm(
        &mut self,
        x: View<'_, GpuTensor>,
        scale: WeightView<'_, GpuWeights>,
        out: ViewMut<'_, GpuTensor>,
        desc: Rows,
    ) -> Result<()> {
        norm::rms_norm(self, x, scale, out, desc)
    }

    fn add_positions(
        &mut self,
        x: ViewMut<'_, GpuTensor>,
        table: WeightView<'_, GpuWeights>,
        desc: Positions,
    ) -> Result<()> {
        norm::add_positions(self, x, table, desc)
    }

    fn l2_normalize(&mut self, x: ViewMut<'_, GpuTensor>, desc: Heads) -> Result<()> {
        norm::l2_normalize(self, x, desc)
    }

    fn matmul(
        &mut self,
        x: View<'_, GpuTensor>,
        w: WeightView<'_, GpuWeights>,
        out: ViewMut<'_, GpuTensor>,
        desc: Matmul,
    ) -> Result<()> {
        matmul::matmul(self, x, w, out, desc)
    }

    fn attention(
        &mut self,
        q: View<'_, GpuTensor>,
        k: View<'_, GpuTensor>,
        v: View<'_, GpuTensor>,
        scale: WeightView<'_, GpuWeights>,
        bias: Option<WeightView<'_, GpuWeights>>,
        out: ViewMut<'_, GpuTensor>,
        desc: Attention,
    ) -> Result<()> {
        attention::attention(self, q, k, v, scale, bias, out, desc)
    }

    fn linear_attention(
        &mut self,
        q: View<'_, GpuTensor>,
        k: View<'_, GpuTensor>,
        v: View<'_, GpuTensor>,
        scale: WeightView<'_, GpuWeights>,
        state: ViewMut<'_, GpuTensor>,
        out: ViewMut<'_, GpuTensor>,
        desc: LinearAttention,
    ) -> Result<()> {
        linear::linear_attention(self, q, k, v, scale, state, out, desc)
    }

    fn gate_fixed(
        &mut self,
        state: ViewMut<'_, GpuTensor>,
        z: View<'_, GpuTensor>,
        bias: WeightView<'_, GpuWeights>,
        desc: Rows,
    ) -> Result<()> {
        gates::gate_fixed(self, state, z, bias, desc)
    }

    fn gate_lstm(
        &mut self,
        state: ViewMut<'_, GpuTensor>,
        z: View<'_, GpuTensor>,
        forget: View<'_, GpuTensor>,
        input: View<'_, GpuTensor>,
        forget_bias: WeightView<'_, GpuWeights>,
        input_bias: WeightView<'_, GpuWeights>,
        desc: Rows,
    ) -> Result<()> {
        gates::gate_lstm(self, state, z, forget, input, forget_bias, input_bias, desc)
    }

    fn copy(&mut self, src: View<'_, GpuTensor>, dst: ViewMut<'_, GpuTensor>, len: usize) -> Result<()> {
        memory::copy(self, src, dst, len)
    }

    fn fill(&mut self, dst: ViewMut<'_, GpuTensor>, runs: Strided, value: f32) -> Result<()> {
        memory::fill(self, dst, runs, value)
    }

    fn copy_weights(
        &mut self,
        src: WeightView<'_, GpuWeights>,
        dst: ViewMut<'_, GpuTensor>,
        runs: Strided,
    ) -> Result<()> {
        memory::copy_weights(self, src, dst, runs)
    }
}

/// Workgroups of an elementwise kernel over `elements` elements, on a 2D grid.
pub(crate) fn linear_grid(k: &Wgpu, elements: usize) -> Result<[u32; 3]> {
    k.gpu.grid(elements.div_ceil(LINEAR_WORKGROUP) as u64)
}
