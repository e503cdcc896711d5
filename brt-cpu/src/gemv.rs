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
use brt_core::encoding::{quantize_activations, Q8_0_BLOCK, Q8_0_BLOCK_BYTES};
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
            // Refused by `Gemm::new`: Q8_0 weights are summed along their blocks.
            BSource::InOut(WSlice::Q8 { .. }, _) => {}
            BSource::OutIn(w @ WSlice::Q8 { .. }, ld) => out_in_q8::<S>(g, w, ld, self.cols, self.scratch, chunk),
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
///
/// Except, at the vector levels, for one input row reading whole rows of `W` (one
/// thread, a chunk as wide as the matrix): there the weights are one contiguous run, and reading it
/// in order, a row at a time, lets the hardware prefetchers stream it. Four short
/// rows side by side are four interleaved streams that restart every row, and
/// generation reads its weights from memory: on `paper` (f16, one thread) the
/// in-order read took decoding from 34-35 to 46-49 tokens/s (`brt bench --config
/// paper --decode --dtype f16 --threads 1`, AMD EPYC Zen 4), while the 4096 x
/// 1024 product alone went from 10.6-11.4 to 16.8-18.6 GB/s.
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
        // Not at the scalar level: it serves microcontrollers, which have no
        // prefetcher to stream for, and where the grouping's fewer accumulator
        // loads and stores are what counts.
        let in_order = m == 1 && width == ld && S::LANES > 1;
        let mut kk = 0;
        while kk < k {
            let rows = if kk + ROWS <= k && !in_order { ROWS } else { 1 };
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

/// Inputs quantized at a time by [`out_in_q8`], all rows together (on the
/// stack, 4.5 KiB with their scales): a whole row of up to 4096 inputs for one
/// row, so that each output's blocks are read in one run.
const Q8_CHUNK: usize = 4096;
// Every row gets at least one block a pass.
const _: () = assert!(Q8_CHUNK / GEMV_MAX_ROWS >= Q8_0_BLOCK);

/// The sum of one row of weight blocks times one row of quantized inputs
/// (`quants`, `scales`: as many blocks as `row`), in two independent chains.
///
/// # Safety
/// `row` holds whole 34-byte blocks, `quants` 32 values and `scales` one for
/// each of them; the CPU must support `S`.
#[inline(always)]
unsafe fn one_row_q8<S: Simd>(row: &[u8], quants: &[i8], scales: &[f32]) -> S::V {
    // SAFETY: the caller's contract; `chunks_exact` keeps every block whole.
    unsafe {
        let term =
            |block: &[u8], b: usize, sum| block_term::<S>(block_scale::<S>(block), block, quants, scales, b, sum);
        let (mut even, mut odd) = (S::zero(), S::zero());
        let mut pairs = row.chunks_exact(2 * Q8_0_BLOCK_BYTES);
        for (p, pair) in pairs.by_ref().enumerate() {
            even = term(&pair[..Q8_0_BLOCK_BYTES], 2 * p, even);
            odd = term(&pair[Q8_0_BLOCK_BYTES..], 2 * p + 1, odd);
        }
        if !pairs.remainder().is_empty() {
            even = term(pairs.remainder(), row.len() / Q8_0_BLOCK_BYTES - 1, even);
        }
        S::add(even, odd)
    }
}

/// A weight block's scale `d_w` in every lane.
///
/// # Safety
/// `block` holds at least its 2 scale bytes; the CPU must support `S`.
#[inline(always)]
unsafe fn block_scale<S: Simd>(block: &[u8]) -> S::V {
    // SAFETY: the caller's contract.
    unsafe { S::splat_f16(u16::from_le_bytes([block[0], block[1]])) }
}

/// `sum + d_w d_x (q_w . q_x)` for weight block `block` (scale `d_w`, from
/// [`block_scale`]) and input block `b`.
///
/// # Safety
/// `block` is a whole 34-byte block, `quants` holds input block `b`'s 32
/// values and `scales` its scale; the CPU must support `S`.
#[inline(always)]
unsafe fn block_term<S: Simd>(d_w: S::V, block: &[u8], quants: &[i8], scales: &[f32], b: usize, sum: S::V) -> S::V {
    // The contract, checked where tests run (debug assertions): a caller that
    // passed too short a slice would still read the right memory here, so
    // without this a wrong length could never fail a test.
    debug_assert!(block.len() >= Q8_0_BLOCK_BYTES && quants.len() >= (b + 1) * Q8_0_BLOCK);
    // SAFETY: the caller's contract.
    unsafe {
        let d = S::mul(d_w, S::splat(scales[b]));
        S::fma(d, S::dot_q8(block.as_ptr().add(2) as *const i8, quants.as_ptr().add(b * Q8_0_BLOCK)), sum)
    }
}

/// [`out_in`] for Q8_0 weights, in 8-bit integers (the arithmetic of
/// `brt_core::encoding::quantize_activations`): the inputs are quantized a
/// chunk at a time, each output's row of weight blocks is multiplied with them
/// block by block ([`Simd::dot_q8`], exact), and each block's integer sum is
/// scaled by `d_w * d_x` into an f32 accumulator. The source starts, strides and
/// sums over whole blocks (`CpuWeights::product_source` checks it).
#[inline(always)]
fn out_in_q8<S: Simd>(g: &Gemm<'_>, w: WSlice<'_>, ld: usize, cols: Range<usize>, scratch: &mut [f32], chunk: usize) {
    let WSlice::Q8 { blocks, start, .. } = w else { return };
    let (m, k) = (g.m, g.k);
    if !start.is_multiple_of(Q8_0_BLOCK) || !ld.is_multiple_of(Q8_0_BLOCK) || !k.is_multiple_of(Q8_0_BLOCK) {
        return; // refused by `product_source`; never reached
    }
    let mut quants = [0i8; Q8_CHUNK];
    let mut scales = [0f32; Q8_CHUNK / Q8_0_BLOCK];
    // Inputs of each row per pass: whole blocks, all rows in the buffers.
    let step = Q8_CHUNK / m / Q8_0_BLOCK * Q8_0_BLOCK;
    // The loop of `by_chunks` written out: a closure this large is not inlined
    // into the level's entry, and outside it the SIMD intrinsics are calls.
    let mut c0 = cols.start;
    while c0 < cols.end {
        let width = chunk.min(cols.end - c0);
        let acc = &mut scratch[..m * width];
        acc.fill(0.0);
        let mut p0 = 0;
        while p0 < k {
            let len = step.min(k - p0);
            let blocks_per_row = len / Q8_0_BLOCK;
            for i in 0..m {
                let x = &g.a[i * g.lda + p0..][..len];
                for (b, x) in x.chunks_exact(Q8_0_BLOCK).enumerate() {
                    let at = i * blocks_per_row + b;
                    scales[at] = quantize_activations(x, &mut quants[at * Q8_0_BLOCK..][..Q8_0_BLOCK]);
                }
            }
            let (quants, scales) = (&quants[..m * len], &scales[..m * blocks_per_row]);
            for j in 0..width {
                // `Gemm::new` checked that the weights hold `k` values of row
                // `c0 + j` from `(c0 + j) * ld`: these blocks exist.
                let first = (start + (c0 + j) * ld + p0) / Q8_0_BLOCK;
                let row = &blocks[first * Q8_0_BLOCK_BYTES..][..blocks_per_row * Q8_0_BLOCK_BYTES];
                if m == 1 {
                    // SAFETY: as below, for one row.
                    acc[j] += unsafe { S::hsum(one_row_q8::<S>(row, quants, scales)) };
                    continue;
                }
                // SAFETY: each block is 34 bytes, its quants 32 from byte 2; the
                // quants hold `len` values a row; dispatch guarantees the level.
                let sums = unsafe {
                    let mut sums = [S::zero(); GEMV_MAX_ROWS];
                    for (b, block) in row.chunks_exact(Q8_0_BLOCK_BYTES).enumerate() {
                        let d_w = block_scale::<S>(block);
                        for (i, sum) in sums.iter_mut().enumerate().take(m) {
                            *sum = block_term::<S>(d_w, block, quants, scales, i * blocks_per_row + b, *sum);
                        }
                    }
                    sums
                };
                for (i, &sum) in sums.iter().enumerate().take(m) {
                    // SAFETY: dispatch guarantees the level.
                    acc[i * width + j] += unsafe { S::hsum(sum) };
                }
            }
            p0 += len;
        }
        for i in 0..m {
            for (j, &v) in acc[i * width..][..width].iter().enumerate() {
                store(g, i, c0 + j, v);
            }
        }
        c0 += width;
    }
}
