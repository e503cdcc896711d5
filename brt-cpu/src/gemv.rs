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
use brt_core::encoding::{Q8_0_BLOCK, Q8_0_BLOCK_BYTES};
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
            BSource::InOut(w @ WSlice::Q8 { .. }, ld) => in_out_q8::<S>(g, w, ld, self.cols, self.scratch, chunk),
            BSource::OutIn(w @ WSlice::Q8 { .. }, ld) => out_in_q8::<S>(g, w, ld, self.cols),
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

/// Each row's two chains added, then its lanes.
///
/// # Safety
/// The CPU must support `S`.
#[inline(always)]
unsafe fn chains_sum<S: Simd>(even: &[S::V; GEMV_MAX_ROWS], odd: &[S::V; GEMV_MAX_ROWS]) -> [f32; GEMV_MAX_ROWS] {
    let mut out = [0f32; GEMV_MAX_ROWS];
    for ((o, &e), &d) in out.iter_mut().zip(even).zip(odd) {
        // SAFETY: forwarded contract.
        *o = unsafe { S::hsum(S::add(e, d)) };
    }
    out
}

/// Rows of `W` streamed together by the `InOut` products: each accumulator
/// vector is loaded and stored once for four weight rows instead of one, and
/// four rows stream from memory side by side. Each output still receives its
/// terms in row order, one fused multiply-add each, so the results are the
/// same as one row at a time.
const ROWS: usize = 4;

/// Runs `accumulate(c0, width, acc)` for the chunks of at most `chunk` columns
/// of `cols`, with `acc` (`m x width`) zeroed before and written to `C` after.
#[inline(always)]
fn by_chunks(
    g: &Gemm<'_>,
    cols: Range<usize>,
    scratch: &mut [f32],
    chunk: usize,
    mut accumulate: impl FnMut(usize, usize, &mut [f32]),
) {
    let mut c0 = cols.start;
    while c0 < cols.end {
        let width = chunk.min(cols.end - c0);
        let acc = &mut scratch[..g.m * width];
        acc.fill(0.0);
        accumulate(c0, width, acc);
        for i in 0..g.m {
            for (j, &v) in acc[i * width..][..width].iter().enumerate() {
                store(g, i, c0 + j, v);
            }
        }
        c0 += width;
    }
}

#[inline(always)]
fn in_out<S: Simd, L: Load>(g: &Gemm<'_>, w: &[L], ld: usize, cols: Range<usize>, scratch: &mut [f32], chunk: usize) {
    let (m, k) = (g.m, g.k);
    by_chunks(g, cols, scratch, chunk, |c0, width, acc| {
        let full = width / S::LANES * S::LANES;
        let mut kk = 0;
        while kk < k {
            let rows = if kk + ROWS <= k { ROWS } else { 1 };
            let row = |r: usize| &w[(kk + r) * ld + c0..][..width];
            for i in 0..m {
                let x = |r: usize| g.a[i * g.lda + kk + r];
                let out = &mut acc[i * width..][..width];
                // SAFETY: `j + LANES <= full <= width` for every weight row and the
                // accumulator row; dispatch guarantees the level.
                unsafe {
                    if rows == ROWS {
                        let xv = [S::splat(x(0)), S::splat(x(1)), S::splat(x(2)), S::splat(x(3))];
                        let rp = [row(0).as_ptr(), row(1).as_ptr(), row(2).as_ptr(), row(3).as_ptr()];
                        for j in (0..full).step_by(S::LANES) {
                            let p = out.as_mut_ptr().add(j);
                            let mut v = S::load(p);
                            for r in 0..ROWS {
                                v = S::fma(xv[r], L::vector::<S>(rp[r].add(j)), v);
                            }
                            S::store(p, v);
                        }
                    } else {
                        let xv = S::splat(x(0));
                        let rp = row(0).as_ptr();
                        for j in (0..full).step_by(S::LANES) {
                            let p = out.as_mut_ptr().add(j);
                            S::store(p, S::fma(xv, L::vector::<S>(rp.add(j)), S::load(p)));
                        }
                    }
                }
                for (j, o) in out.iter_mut().enumerate().skip(full) {
                    for r in 0..rows {
                        *o += x(r) * row(r)[j].scalar();
                    }
                }
            }
            kk += rows;
        }
    });
}

#[inline(always)]
fn out_in<S: Simd, L: Load>(g: &Gemm<'_>, w: &[L], ld: usize, cols: Range<usize>) {
    let (m, k) = (g.m, g.k);
    let full = k / S::LANES * S::LANES;
    for j in cols {
        let row = &w[j * ld..][..k];
        // SAFETY: `p + LANES <= full <= k` for the row (and, in `dots`, every x
        // row, which `Gemm::new` checked); dispatch guarantees the level.
        let mut acc = unsafe { dots::<S>(g, full, |p| L::vector::<S>(row.as_ptr().add(p))) };
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

/// The dot products of the first `full` values of every x row with the weight
/// vectors `weights(p)`, `p` in `(0..full).step_by(LANES)`: two chains of
/// multiply-adds per row (even and odd vectors), so that one row does not wait
/// on the latency of each before the next; the chains are added at the end.
///
/// # Safety
/// Every x row must hold `full` values at stride `lda` (`Gemm::new` checks `k`)
/// and `weights` must be safe to call for those `p`; the CPU must support `S`.
#[inline(always)]
unsafe fn dots<S: Simd>(g: &Gemm<'_>, full: usize, mut weights: impl FnMut(usize) -> S::V) -> [f32; GEMV_MAX_ROWS] {
    let m = g.m;
    let mut p = 0;
    // SAFETY: the caller's contract, for `p + 2 * LANES <= full` and `p + LANES <= full`.
    unsafe {
        let mut even = [S::zero(); GEMV_MAX_ROWS];
        let mut odd = [S::zero(); GEMV_MAX_ROWS];
        while p + 2 * S::LANES <= full {
            let (w0, w1) = (weights(p), weights(p + S::LANES));
            for (i, (e, o)) in even.iter_mut().zip(&mut odd).enumerate().take(m) {
                let x = g.a.as_ptr().add(i * g.lda + p);
                *e = S::fma(S::load(x), w0, *e);
                *o = S::fma(S::load(x.add(S::LANES)), w1, *o);
            }
            p += 2 * S::LANES;
        }
        if p < full {
            let w0 = weights(p);
            for (i, e) in even.iter_mut().enumerate().take(m) {
                *e = S::fma(S::load(g.a.as_ptr().add(i * g.lda + p)), w0, *e);
            }
        }
        chains_sum::<S>(&even, &odd)
    }
}

/// [`in_out`] for Q8_0 weights: the same operations in the same order on the
/// values the blocks stand for (see [`crate::q8`]). A tensor's rows are whole
/// blocks, so the four rows streamed together cross block boundaries at the
/// same columns and share the loop over blocks (one scale per row and block).
#[inline(always)]
fn in_out_q8<S: Simd>(g: &Gemm<'_>, w: WSlice<'_>, ld: usize, cols: Range<usize>, scratch: &mut [f32], chunk: usize) {
    let WSlice::Q8 { blocks, start, .. } = w else { return };
    let (m, k) = (g.m, g.k);
    by_chunks(g, cols, scratch, chunk, |c0, width, acc| {
        let full = width / S::LANES * S::LANES;
        let mut kk = 0;
        while kk < k {
            let first = start + kk * ld + c0;
            let together = kk + ROWS <= k && ld.is_multiple_of(Q8_0_BLOCK) && first.is_multiple_of(S::LANES);
            let rows = if together { ROWS } else { 1 };
            let x = |i: usize, r: usize| g.a[i * g.lda + kk + r];
            if together {
                // SAFETY: `Gemm::new` checked that the weights hold rows `kk ..
                // kk + 4` up to column `cols.end`, so every block read exists;
                // vectors start at multiples of LANES inside one block (`first`
                // and `ld` are aligned, 32 is a multiple of LANES); `o + LANES <=
                // end <= full <= width` for the accumulators; dispatch
                // guarantees the level.
                unsafe {
                    let mut xvs = [[S::zero(); ROWS]; GEMV_MAX_ROWS];
                    for (i, xv) in xvs.iter_mut().enumerate().take(m) {
                        *xv = [S::splat(x(i, 0)), S::splat(x(i, 1)), S::splat(x(i, 2)), S::splat(x(i, 3))];
                    }
                    let mut j = 0;
                    while j < full {
                        let lane = (first + j) % Q8_0_BLOCK;
                        let end = full.min(j + Q8_0_BLOCK - lane);
                        let mut scale = [S::zero(); ROWS];
                        let mut quants = [core::ptr::null::<i8>(); ROWS];
                        for r in 0..ROWS {
                            let block = blocks.as_ptr().add((first + r * ld + j) / Q8_0_BLOCK * Q8_0_BLOCK_BYTES);
                            scale[r] = S::splat_f16(u16::from_le_bytes([*block, *block.add(1)]));
                            quants[r] = block.add(2 + lane) as *const i8;
                        }
                        for (i, xv) in xvs.iter().enumerate().take(m) {
                            let mut o = j;
                            while o < end {
                                let p = acc.as_mut_ptr().add(i * width + o);
                                let mut v = S::load(p);
                                for r in 0..ROWS {
                                    let wv = S::mul(scale[r], S::load_i8(quants[r].add(o - j)));
                                    v = S::fma(xv[r], wv, v);
                                }
                                S::store(p, v);
                                o += S::LANES;
                            }
                        }
                        j = end;
                    }
                }
            } else {
                // SAFETY: as above for one row; `for_each_vector` handles any start.
                unsafe {
                    crate::q8::for_each_vector::<S>(blocks, first, full, |j, wv| {
                        for i in 0..m {
                            let p = acc.as_mut_ptr().add(i * width + j);
                            S::store(p, S::fma(S::splat(x(i, 0)), wv, S::load(p)));
                        }
                    });
                }
            }
            for j in full..width {
                for i in 0..m {
                    for r in 0..rows {
                        acc[i * width + j] += x(i, r) * w.get((kk + r) * ld + c0 + j);
                    }
                }
            }
            kk += rows;
        }
    });
}

/// [`out_in`] for Q8_0 weights, in the same order on the same values: when a
/// row starts at a block (as every row of a tensor does), vector pairs never
/// straddle blocks (a block is an even number of vectors) and each block's scale
/// is read once.
#[inline(always)]
fn out_in_q8<S: Simd>(g: &Gemm<'_>, w: WSlice<'_>, ld: usize, cols: Range<usize>) {
    let WSlice::Q8 { blocks, start, .. } = w else { return };
    let (m, k) = (g.m, g.k);
    let full = k / S::LANES * S::LANES;
    let pair = 2 * S::LANES;
    for j in cols {
        let first = start + j * ld;
        // SAFETY: `Gemm::new` checked that row `j` holds `k` values from `j * ld`
        // and that every x row holds k values at stride lda; every vector read
        // is below `full`; dispatch guarantees the level.
        let mut acc = unsafe {
            if !first.is_multiple_of(Q8_0_BLOCK) || !Q8_0_BLOCK.is_multiple_of(pair) {
                dots::<S>(g, full, |p| crate::q8::vector::<S>(blocks, first + p))
            } else {
                let mut even = [S::zero(); GEMV_MAX_ROWS];
                let mut odd = [S::zero(); GEMV_MAX_ROWS];
                let mut p = 0;
                while p < full {
                    let block = blocks.as_ptr().add((first + p) / Q8_0_BLOCK * Q8_0_BLOCK_BYTES);
                    let scale = S::splat_f16(u16::from_le_bytes([*block, *block.add(1)]));
                    let quants = block.add(2) as *const i8;
                    let end = full.min(p + Q8_0_BLOCK);
                    let mut o = 0;
                    while p + o + pair <= end {
                        let w0 = S::mul(scale, S::load_i8(quants.add(o)));
                        let w1 = S::mul(scale, S::load_i8(quants.add(o + S::LANES)));
                        for (i, (e, d)) in even.iter_mut().zip(&mut odd).enumerate().take(m) {
                            let x = g.a.as_ptr().add(i * g.lda + p + o);
                            *e = S::fma(S::load(x), w0, *e);
                            *d = S::fma(S::load(x.add(S::LANES)), w1, *d);
                        }
                        o += pair;
                    }
                    // Only the row's last block can end on an odd vector.
                    if p + o < end {
                        let w0 = S::mul(scale, S::load_i8(quants.add(o)));
                        for (i, e) in even.iter_mut().enumerate().take(m) {
                            *e = S::fma(S::load(g.a.as_ptr().add(i * g.lda + p + o)), w0, *e);
                        }
                    }
                    p = end;
                }
                chains_sum::<S>(&even, &odd)
            }
        };
        for (i, a) in acc.iter_mut().enumerate().take(m) {
            for (p, &x) in g.a[i * g.lda..][..k].iter().enumerate().skip(full) {
                *a += x * w.get(j * ld + p);
            }
        }
        for (i, &a) in acc.iter().enumerate().take(m) {
            store(g, i, j, a);
        }
    }
}
