//! Products with a few rows (generation: one token per batch row), streaming the
//! weights straight from memory instead of packing them.
//!
//! With `m <= GEMV_MAX_ROWS` rows a product is bound by reading the weights, so
//! this path reads each weight exactly once, in memory order, widening f16/bf16
//! in registers (half the bytes of f32). `InOut` weights: for a chunk of output
//! columns, accumulate `x[i, kk] * W[kk, chunk]` over the rows `kk` of `W` in the
//! task's scratch. `OutIn` weights (the tied logits): each output is a dot product
//! of `x_i` with a contiguous row of `W`.

use crate::gemm::{BSource, Gemm};
use crate::simd::{Simd, WithSimd};
use crate::tiles::Tiles;
use crate::weights::WSlice;
use brt_core::desc::Activation;
use brt_core::half::{bf16, f16};
use core::ops::Range;

/// Products with at most this many rows take this path.
pub(crate) const GEMV_MAX_ROWS: usize = 4;

/// Scratch (f32 elements) one task needs: `GEMV_MAX_ROWS` rows of
/// `Tiles::gemv_columns` output columns accumulated at once for `InOut` weights.
pub(crate) const fn scratch_len(t: &Tiles) -> u64 {
    GEMV_MAX_ROWS as u64 * t.gemv_columns as u64
}

/// How one storage type is read and widened.
trait Load: Copy {
    /// Loads `LANES` values at `p` as f32.
    ///
    /// # Safety
    /// `p` must be valid for `LANES` reads and the CPU must support `S`.
    unsafe fn vector<S: Simd>(p: *const Self) -> S::V;
    /// One value as f32.
    fn scalar(self) -> f32;
}

impl Load for f32 {
    #[inline(always)]
    unsafe fn vector<S: Simd>(p: *const f32) -> S::V {
        // SAFETY: forwarded contract.
        unsafe { S::load(p) }
    }
    #[inline(always)]
    fn scalar(self) -> f32 {
        self
    }
}

/// f16 bits.
#[derive(Clone, Copy)]
#[repr(transparent)]
struct F16(u16);
/// bf16 bits.
#[derive(Clone, Copy)]
#[repr(transparent)]
struct Bf16(u16);

impl Load for F16 {
    #[inline(always)]
    unsafe fn vector<S: Simd>(p: *const F16) -> S::V {
        // SAFETY: forwarded contract; `F16` is a transparent `u16`.
        unsafe { S::load_f16(p as *const u16) }
    }
    #[inline(always)]
    fn scalar(self) -> f32 {
        f16::from_bits(self.0).to_f32()
    }
}

impl Load for Bf16 {
    #[inline(always)]
    unsafe fn vector<S: Simd>(p: *const Bf16) -> S::V {
        // SAFETY: forwarded contract; `Bf16` is a transparent `u16`.
        unsafe { S::load_bf16(p as *const u16) }
    }
    #[inline(always)]
    fn scalar(self) -> f32 {
        bf16::from_bits(self.0).to_f32()
    }
}

/// Columns `cols` of a product with few rows.
pub(crate) struct GemvTask<'g, 'a> {
    pub gemm: &'g Gemm<'a>,
    pub cols: Range<usize>,
    pub scratch: &'g mut [f32],
    pub tiles: &'g Tiles,
}

impl WithSimd for GemvTask<'_, '_> {
    type Output = ();
    #[inline(always)]
    fn with<S: Simd>(self) {
        let g = self.gemm;
        let chunk = self.tiles.gemv_columns;
        let fits = (self.scratch.len() as u64) >= scratch_len(self.tiles) && chunk > 0;
        if g.m > GEMV_MAX_ROWS || g.a_transposed || !fits || self.cols.is_empty() {
            return; // the backend only sends products that fit; never reached
        }
        let as_f16 = |v: &[u16]| {
            // SAFETY: `F16` is a transparent wrapper of u16: same size, alignment
            // and validity, so the slice reinterprets exactly.
            unsafe { core::slice::from_raw_parts(v.as_ptr() as *const F16, v.len()) }
        };
        let as_bf16 = |v: &[u16]| {
            // SAFETY: as above, for `Bf16`.
            unsafe { core::slice::from_raw_parts(v.as_ptr() as *const Bf16, v.len()) }
        };
        match g.b {
            BSource::InOut(WSlice::F32(w), ld) => in_out::<S, f32>(g, w, ld, self.cols, self.scratch, chunk),
            BSource::InOut(WSlice::F16(w), ld) => in_out::<S, F16>(g, as_f16(w), ld, self.cols, self.scratch, chunk),
            BSource::InOut(WSlice::Bf16(w), ld) => in_out::<S, Bf16>(g, as_bf16(w), ld, self.cols, self.scratch, chunk),
            BSource::OutIn(WSlice::F32(w), ld) => out_in::<S, f32>(g, w, ld, self.cols),
            BSource::OutIn(WSlice::F16(w), ld) => out_in::<S, F16>(g, as_f16(w), ld, self.cols),
            BSource::OutIn(WSlice::Bf16(w), ld) => out_in::<S, Bf16>(g, as_bf16(w), ld, self.cols),
        }
    }
}

/// Writes `act(alpha * value (+ old))` to `C[i, j]`.
#[inline(always)]
fn store(g: &Gemm<'_>, i: usize, j: usize, value: f32) {
    // SAFETY: `Gemm::new` checked that C holds `m x n` with row stride `ldc`;
    // i < m, j < n, and this task owns column j.
    unsafe {
        let p = g.c.0.add(i * g.ldc + j);
        let mut v = g.alpha * value;
        if g.accumulate {
            v += *p;
        }
        *p = match g.activation {
            Activation::Identity => v,
            Activation::Relu => v.max(0.0),
            Activation::Tanh => libm::tanhf(v),
        };
    }
}

#[inline(always)]
fn in_out<S: Simd, L: Load>(g: &Gemm<'_>, w: &[L], ld: usize, cols: Range<usize>, scratch: &mut [f32], chunk: usize) {
    let (m, k) = (g.m, g.k);
    let mut c0 = cols.start;
    while c0 < cols.end {
        let width = chunk.min(cols.end - c0);
        let full = width / S::LANES * S::LANES;
        let acc = &mut scratch[..m * width];
        acc.fill(0.0);
        for kk in 0..k {
            let row = &w[kk * ld + c0..][..width];
            for i in 0..m {
                let x = g.a[i * g.lda + kk];
                let out = &mut acc[i * width..][..width];
                // SAFETY: `j + LANES <= full <= width` for the row and the
                // accumulator; dispatch guarantees the level.
                unsafe {
                    let xv = S::splat(x);
                    for j in (0..full).step_by(S::LANES) {
                        let p = out.as_mut_ptr().add(j);
                        S::store(p, S::fma(xv, L::vector::<S>(row.as_ptr().add(j)), S::load(p)));
                    }
                }
                for j in full..width {
                    out[j] += x * row[j].scalar();
                }
            }
        }
        for i in 0..m {
            for (j, &v) in acc[i * width..][..width].iter().enumerate() {
                store(g, i, c0 + j, v);
            }
        }
        c0 += width;
    }
}

#[inline(always)]
fn out_in<S: Simd, L: Load>(g: &Gemm<'_>, w: &[L], ld: usize, cols: Range<usize>) {
    let (m, k) = (g.m, g.k);
    let full = k / S::LANES * S::LANES;
    for j in cols {
        let row = &w[j * ld..][..k];
        let mut acc = [0f32; GEMV_MAX_ROWS];
        // SAFETY: `p + LANES <= full <= k` for the row and every x row (checked by
        // `Gemm::new`: x rows hold k values at stride lda); dispatch guarantees the
        // level.
        unsafe {
            let mut vacc = [S::zero(); GEMV_MAX_ROWS];
            for p in (0..full).step_by(S::LANES) {
                let wv = L::vector::<S>(row.as_ptr().add(p));
                for (i, a) in vacc.iter_mut().enumerate().take(m) {
                    *a = S::fma(S::load(g.a.as_ptr().add(i * g.lda + p)), wv, *a);
                }
            }
            for (i, a) in acc.iter_mut().enumerate().take(m) {
                *a = S::hsum(vacc[i]);
            }
        }
        for (i, a) in acc.iter_mut().enumerate().take(m) {
            let x = &g.a[i * g.lda..][..k];
            for p in full..k {
                *a += x[p] * row[p].scalar();
            }
        }
        for (i, &a) in acc.iter().enumerate().take(m) {
            store(g, i, j, a);
        }
    }
}
