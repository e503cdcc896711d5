//! This machine's single-precision matrix-product rate, the yardstick of
//! `brt bench` (std only).
//!
//! The yardstick is this backend's own best product (the level
//! [`SimdLevel::detect`] picks, the packed GEMM every model product uses) on
//! large square f32 matrices, timed over several repetitions, best of them: the
//! rate the hardware gives this code when nothing but a product runs, so "model
//! GFLOP/s over GEMM GFLOP/s" says how much of that the whole forward pass keeps
//! (attention, norms, odd shapes and thread hand-offs included), measured in the
//! same run under the same machine load. It is not an independent library, and
//! it is not the best product there is: on the development machine OpenBLAS (via
//! numpy) did 1536^3 at about 102 GFLOP per CPU-second against this product's
//! 76-86, so a ratio against this yardstick reads about 20% higher than one
//! against OpenBLAS would (the `paper` forward measured 0.78 of OpenBLAS's rate
//! per CPU-second). No BLAS is linked because the crate must build `no_std` and
//! without system libraries; the comparison is one `numpy` line away.

use crate::{Cpu, CpuError, Heap, Options, SimdLevel};
use brt_core::desc::Matmul;
use brt_core::{Kernels, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
use std::time::Instant;
use std::vec::Vec;

/// GFLOP/s (2 n^3 per product) of `n x n x n` f32 products on `threads` threads
/// at `level` (`None`: the best this CPU supports); best of `repeats` timed runs
/// after one warm-up.
///
/// A small product on one thread runs at a positive, finite rate:
///
/// ```
/// use brt_cpu::{sgemm_gflops, SimdLevel};
///
/// let rate = sgemm_gflops(Some(SimdLevel::Scalar), 1, 16, 1).unwrap();
/// assert!(rate.is_finite() && rate > 0.0);
/// ```
pub fn sgemm_gflops(level: Option<SimdLevel>, threads: usize, n: usize, repeats: usize) -> Result<f64, CpuError> {
    let mut k = Cpu::with_options(Heap, Options { level, threads, ..Options::default() })?;
    let values: Vec<f32> = (0..n * n).map(|i| ((i * 7919 % 1000) as f32 - 500.0) * 1e-3).collect();
    let mut a = k.alloc_tensor(n * n)?;
    k.write_tensor(&mut a, 0, &values)?;
    let mut w = k.alloc_weights(n * n, WeightDtype::F32)?;
    k.write_weights(&mut w, 0, WeightData::F32(&values))?;
    let mut c = k.alloc_tensor(n * n)?;
    let desc = Matmul::new(n, n, n)?;
    let mut best = f64::INFINITY;
    for i in 0..repeats.max(1) + 1 {
        let start = Instant::now();
        k.matmul(View::new(&a, 0), WeightView::new(&w, 0), ViewMut::new(&mut c, 0), desc)?;
        let seconds = start.elapsed().as_secs_f64();
        if i > 0 {
            best = best.min(seconds);
        }
    }
    Ok(2.0 * (n as f64).powi(3) / best / 1e9)
}

/// This machine's single-precision GEMM rate on `threads` threads, in GFLOP/s:
/// [`sgemm_gflops`] at the best level on 1536-square matrices, best of 5.
///
/// The rate is a positive, finite number (this takes a few seconds):
///
/// ```
/// let rate = brt_cpu::measure_sgemm_gflops(1).unwrap();
/// assert!(rate.is_finite() && rate > 0.0);
/// ```
pub fn measure_sgemm_gflops(threads: usize) -> Result<f64, CpuError> {
    sgemm_gflops(None, threads, 1536, 5)
}
