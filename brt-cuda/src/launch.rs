//! Launch geometry: which kernel, how many blocks of how many threads.
//!
//! The block sizes the kernels' tiling depends on are also written in
//! `kernels/common.cuh`; the NVRTC prelude passes these values and the kernels
//! `static_assert` that both agree.

use crate::error::{CudaError, CudaResult};
use crate::source::Program;

/// Threads per block of the grid-stride elementwise kernels.
pub(crate) const ELEMENTWISE_THREADS: u32 = 256;
/// Largest block of the row reductions (a power of two).
pub(crate) const REDUCE_MAX_THREADS: u32 = 256;
/// Threads per block of the tiled product.
pub(crate) const MM_THREADS: u32 = 256;
/// Rows and columns of out per block of the tiled product.
pub(crate) const MM_TILE: usize = 64;
/// Threads per block of the attention kernel.
pub(crate) const ATT_THREADS: u32 = 128;
/// Queries per block of the attention kernel (4 threads each).
pub(crate) const ATT_QUERIES: usize = 32;
/// The widest head the attention kernels are built for: a thread keeps
/// `head_dim / 4` (softmax) or `head_dim` (linear) values in registers, and
/// linear attention has one thread per column.
pub(crate) const MAX_HEAD_DIM: usize = 1024;

/// Blocks of a grid-stride kernel at most (they loop over the rest).
const MAX_STRIDE_GRID: u64 = 65_535;
/// CUDA's limit on `gridDim.x`.
const MAX_GRID: u64 = i32::MAX as u64;

/// A kernel of one of the programs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kernel {
    Embed,
    AddPositions,
    GateFixed,
    GateLstm,
    Fill,
    CopyWeights,
    Activation,
    RmsNorm,
    L2Normalize,
    Matmul,
    Attention { head_dim: usize },
    LinearAttention { head_dim: usize },
}

impl Kernel {
    /// The `extern "C"` name in the CUDA C source.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kernel::Embed => "brt_embed",
            Kernel::AddPositions => "brt_add_positions",
            Kernel::GateFixed => "brt_gate_fixed",
            Kernel::GateLstm => "brt_gate_lstm",
            Kernel::Fill => "brt_fill",
            Kernel::CopyWeights => "brt_copy_weights",
            Kernel::Activation => "brt_activation",
            Kernel::RmsNorm => "brt_rms_norm",
            Kernel::L2Normalize => "brt_l2_normalize",
            Kernel::Matmul => "brt_matmul",
            Kernel::Attention { .. } => "brt_attention",
            Kernel::LinearAttention { .. } => "brt_linear_attention",
        }
    }

    /// The program that defines it.
    pub(crate) fn program(self) -> Program {
        match self {
            Kernel::Attention { head_dim } | Kernel::LinearAttention { head_dim } => Program::Attention { head_dim },
            _ => Program::Common,
        }
    }
}

/// Blocks and threads of one launch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub grid: u32,
    pub block: u32,
}

/// A grid-stride kernel over `total` elements (`total > 0`).
pub(crate) fn elementwise(total: u64) -> Geometry {
    let blocks = total.div_ceil(ELEMENTWISE_THREADS as u64).clamp(1, MAX_STRIDE_GRID);
    Geometry { grid: blocks as u32, block: ELEMENTWISE_THREADS }
}

/// A row reduction over `rows` rows of `width` elements (`rows > 0`): a power
/// of two of threads, 32 to 256, no more than the row needs.
pub(crate) fn reduction(rows: u64, width: u64) -> Geometry {
    let threads = width.clamp(32, REDUCE_MAX_THREADS as u64).next_power_of_two().min(REDUCE_MAX_THREADS as u64);
    Geometry { grid: rows.clamp(1, MAX_STRIDE_GRID) as u32, block: threads as u32 }
}

/// One block per `blocks` (no grid-stride loop), checked against CUDA's limit.
pub(crate) fn exact(blocks: u64, block: u32, what: &str) -> CudaResult<Geometry> {
    if blocks == 0 || blocks > MAX_GRID {
        return Err(CudaError::Unsupported(format!(
            "{what} needs {blocks} thread blocks; CUDA allows 1 to {MAX_GRID}"
        )));
    }
    Ok(Geometry { grid: blocks as u32, block })
}

/// Threads of a linear-attention block: one per column, a multiple of 32.
pub(crate) fn linear_attention_threads(head_dim: usize) -> u32 {
    (head_dim.div_ceil(32) * 32) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reduction_blocks_are_powers_of_two_within_limits() {
        for width in [1u64, 5, 31, 32, 33, 100, 128, 129, 256, 257, 4096] {
            let g = reduction(7, width);
            assert!(g.block.is_power_of_two() && (32..=256).contains(&g.block), "width {width}: {g:?}");
            assert!(g.block as u64 >= width.min(256), "width {width}: {g:?}");
        }
        assert_eq!(reduction(1 << 40, 8).grid, 65_535);
    }

    #[test]
    fn elementwise_grids_cover_small_totals_and_stride_over_large_ones() {
        assert_eq!(elementwise(1), Geometry { grid: 1, block: 256 });
        assert_eq!(elementwise(257).grid, 2);
        assert_eq!(elementwise(u64::MAX).grid, 65_535);
    }

    #[test]
    fn exact_grids_refuse_what_cuda_cannot_launch() {
        assert!(exact(0, 128, "x").is_err());
        assert!(exact(1 << 31, 128, "x").is_err());
        assert_eq!(exact(5, 128, "x").unwrap(), Geometry { grid: 5, block: 128 });
        assert_eq!(linear_attention_threads(5), 32);
        assert_eq!(linear_attention_threads(128), 128);
        assert_eq!(linear_attention_threads(129), 160);
    }
}
