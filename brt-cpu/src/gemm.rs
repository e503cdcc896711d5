//! The dense product `C = act(alpha * A B (+ C))`: a packed, blocked GEMM in the
//! manner of BLIS/GotoBLAS.
//!
//! `B` is packed into `kc x NR` panels (widening f16/bf16 parameters to f32 as it
//! goes, for either weight order), `A` into `kc x MR` panels, and the level's
//! micro-kernel multiplies one panel pair into an `MR x NR` tile of `C` held in
//! registers. Blocking ([`Tiles`]): `kc` rows of the inner dimension so that a `B`
//! panel stays in L1, `mc` rows of `A` per packed block (L2), `nc` columns per
//! packed `B` block (L2/L3). A call is split into independent tasks over column ranges (or
//! row ranges when there are too few columns), each with its own packing buffers,
//! so threads never wait for each other inside a product.

use crate::parallel::SendPtr;
use crate::simd::{Epilogue, Simd, WithSimd, LINE_F32S};
use crate::tiles::Tiles;
use crate::weights::WSlice;
use brt_core::desc::Activation;
use brt_core::encoding::{q8_0_scale, quantize_activations, Q8_0_BLOCK, Q8_0_BLOCK_BYTES};
use brt_core::kernels::check_extent;
use brt_core::{CoreError, CoreResult};
use core::ops::Range;

/// Packing scratch (f32 elements) one task needs: a block of `mc x kc` values of
/// `A` and one of `kc x nc` values of `B`.
pub(crate) const fn scratch_len(t: &Tiles) -> u64 {
    (t.gemm_mc as u64 + t.gemm_nc as u64) * t.gemm_kc as u64
}

/// The right-hand side `B (k x n)` as stored.
#[derive(Clone, Copy, Debug)]
pub(crate) enum BSource<'a> {
    /// `B(p, j) = w[p*ld + j]`.
    InOut(WSlice<'a>, usize),
    /// `B(p, j) = w[j*ld + p]`.
    OutIn(WSlice<'a>, usize),
}

impl BSource<'_> {
    /// Whether the weights are Q8_0 blocks, whose products quantize their
    /// input (`brt_core::encoding::quantize_activations`).
    pub(crate) fn is_q8_0(&self) -> bool {
        matches!(self, BSource::InOut(WSlice::Q8 { .. }, _) | BSource::OutIn(WSlice::Q8 { .. }, _))
    }
}

/// One checked product. The raw destination pointer is shared by the tasks, each
/// of which writes a disjoint block.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Gemm<'a> {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub(crate) a: &'a [f32],
    pub(crate) lda: usize,
    /// `A` is stored transposed: `A(i, p) = a[p*lda + i]` (a product of two
    /// activations in the backward pass, `x^T dz`).
    pub(crate) a_transposed: bool,
    pub(crate) b: BSource<'a>,
    pub(crate) c: SendPtr,
    pub(crate) ldc: usize,
    pub alpha: f32,
    pub accumulate: bool,
    pub activation: Activation,
}

/// The last element index + 1 of a `rows x cols` matrix with row stride `ld`.
fn extent(rows: usize, cols: usize, ld: usize) -> CoreResult<usize> {
    if rows == 0 || cols == 0 {
        return Ok(0);
    }
    (rows - 1)
        .checked_mul(ld)
        .and_then(|x| x.checked_add(cols))
        .ok_or(CoreError::SizeOverflow { what: "matrix extent" })
}

impl<'a> Gemm<'a> {
    /// Checks every extent so that the tasks can use raw pointers freely.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        (m, n, k): (usize, usize, usize),
        (a, lda): (&'a [f32], usize),
        b: BSource<'a>,
        (c, ldc): (&'a mut [f32], usize),
        alpha: f32,
        accumulate: bool,
        activation: Activation,
    ) -> CoreResult<Gemm<'a>> {
        Gemm::with_a_order((m, n, k), (a, lda, false), b, (c, ldc), alpha, accumulate, activation)
    }

    /// As [`Gemm::new`], with `A` stored transposed (`(k x m)` row-major, row
    /// stride `lda`) when `a_transposed`.
    #[allow(clippy::too_many_arguments)]
    pub fn with_a_order(
        (m, n, k): (usize, usize, usize),
        (a, lda, a_transposed): (&'a [f32], usize, bool),
        b: BSource<'a>,
        (c, ldc): (&'a mut [f32], usize),
        alpha: f32,
        accumulate: bool,
        activation: Activation,
    ) -> CoreResult<Gemm<'a>> {
        let (a_rows, a_cols) = if a_transposed { (k, m) } else { (m, k) };
        if lda < a_cols || ldc < n {
            return Err(CoreError::InvalidShape { what: "matrix row stride shorter than the row" });
        }
        check_extent("matmul input", 0, extent(a_rows, a_cols, lda)?, a.len())?;
        if let BSource::InOut(WSlice::Q8 { .. }, _) = b {
            return Err(CoreError::InvalidShape { what: "a product with Q8_0 weights must sum along their blocks" });
        }
        if a_transposed && b.is_q8_0() {
            return Err(CoreError::InvalidShape { what: "a product with Q8_0 weights takes its input by rows" });
        }
        match b {
            BSource::InOut(w, ld) => {
                if ld < n {
                    return Err(CoreError::InvalidShape { what: "weight row stride shorter than the row" });
                }
                check_extent("matmul weight", 0, extent(k, n, ld)?, w.len())?;
            }
            BSource::OutIn(w, ld) => {
                if ld < k {
                    return Err(CoreError::InvalidShape { what: "weight row stride shorter than the row" });
                }
                check_extent("matmul weight", 0, extent(n, k, ld)?, w.len())?;
            }
        }
        check_extent("matmul output", 0, extent(m, n, ldc)?, c.len())?;
        Ok(Gemm { m, n, k, a, lda, a_transposed, b, c: SendPtr(c.as_mut_ptr()), ldc, alpha, accumulate, activation })
    }

    /// How to split the product into `parts` tasks: `(row parts, column parts)`.
    ///
    /// Each task packs the whole of the operand it does not split, so the split
    /// goes along the larger dimension: splitting rows repacks `B` (k x n) in
    /// every task, splitting columns repacks `A` (m x k).
    pub fn split(&self, parts: usize, (mr, nr): (usize, usize)) -> (usize, usize) {
        let col_panels = self.n.div_ceil(nr);
        let row_panels = self.m.div_ceil(mr);
        // Small products are not worth a thread.
        if parts <= 1 || (self.m * self.n * self.k) < 64 * 64 * 64 {
            return (1, 1);
        }
        let rows_ok = row_panels >= 2 * parts;
        let cols_ok = col_panels >= 2 * parts;
        if rows_ok && (self.m >= self.n || !cols_ok) {
            (parts, 1)
        } else if cols_ok {
            (1, parts)
        } else {
            (1, parts.min(col_panels).max(1))
        }
    }

    /// Rows and columns of task `t` of a `(row parts, column parts)` split.
    pub fn task_block(
        &self,
        t: usize,
        (rp, cp): (usize, usize),
        (mr, nr): (usize, usize),
    ) -> (Range<usize>, Range<usize>) {
        let part = |count: usize, unit: usize, parts: usize, i: usize| {
            let units = count.div_ceil(unit);
            let lo = (units * i / parts * unit).min(count);
            let hi = (units * (i + 1) / parts * unit).min(count);
            lo..hi
        };
        (part(self.m, mr, rp, t / cp), part(self.n, nr, cp, t % cp))
    }
}

/// One task of a product: the block `rows x cols` of `C`, with its own packing
/// scratch (sized for `tiles`).
pub(crate) struct GemmTask<'g, 'a> {
    pub gemm: &'g Gemm<'a>,
    pub rows: Range<usize>,
    pub cols: Range<usize>,
    pub scratch: &'g mut [f32],
    pub tiles: &'g Tiles,
}

impl WithSimd for GemmTask<'_, '_> {
    type Output = ();
    #[inline(always)]
    fn with<S: Simd>(self) {
        // The default blocking is compiled in (the code is the one of constant
        // blocking, as fast); any other is read at run time.
        let t = self.tiles;
        if (t.gemm_kc, t.gemm_mc, t.gemm_nc) == Tiles::default_gemm((S::MR, S::NR)) {
            gemm_block::<S, true>(self.gemm, self.rows, self.cols, self.scratch, t)
        } else {
            gemm_block::<S, false>(self.gemm, self.rows, self.cols, self.scratch, t)
        }
    }
}

/// The blocked loops over one block of `C`; `DEFAULT`: the tiles are the
/// default blocking, known at compile time.
#[inline(always)]
fn gemm_block<S: Simd, const DEFAULT: bool>(
    g: &Gemm<'_>,
    rows: Range<usize>,
    cols: Range<usize>,
    scratch: &mut [f32],
    t: &Tiles,
) {
    if rows.is_empty() || cols.is_empty() {
        return;
    }
    // Checked tiles: `mc` a multiple of MR, `nc` of NR, all positive.
    let (kc_max, mc_max, nc_max) =
        if DEFAULT { const { Tiles::default_gemm((S::MR, S::NR)) } } else { (t.gemm_kc, t.gemm_mc, t.gemm_nc) };
    if (scratch.len() as u64) < scratch_len(t) || mc_max % S::MR != 0 || nc_max % S::NR != 0 || kc_max == 0 {
        // The backend checks the tiles and sizes the scratch with `scratch_len`;
        // never reached.
        return;
    }
    let (apack, bpack) = scratch.split_at_mut(mc_max * kc_max);
    let mut jc = cols.start;
    while jc < cols.end {
        let nc = nc_max.min(cols.end - jc);
        let mut pc = 0;
        while pc < g.k {
            let kc = kc_max.min(g.k - pc);
            let first = pc == 0;
            let last = pc + kc == g.k;
            pack_b::<S>(g.b, pc, kc, jc, nc, bpack);
            let ep = Epilogue {
                alpha: g.alpha,
                accumulate: !first || g.accumulate,
                relu: last && g.activation == Activation::Relu,
            };
            let mut ic = rows.start;
            while ic < rows.end {
                let mc = mc_max.min(rows.end - ic);
                if g.a_transposed {
                    pack_a_transposed::<S>(g.a, g.lda, ic, mc, pc, kc, apack);
                } else if g.b.is_q8_0() {
                    pack_a_quantized::<S>(g, ic, mc, pc, kc, apack);
                } else {
                    pack_a::<S>(g.a, g.lda, ic, mc, pc, kc, apack);
                }
                for jr in (0..nc).step_by(S::NR) {
                    let bpanel = &bpack[jr * kc..];
                    for ir in (0..mc).step_by(S::MR) {
                        let apanel = &apack[ir * kc..];
                        let (i, j) = (ic + ir, jc + jr);
                        let (mr, nr) = (S::MR.min(ic + mc - i), S::NR.min(jc + nc - j));
                        // SAFETY: `Gemm::new` checked that C holds `m x n` with row
                        // stride `ldc`; `i + mr <= m` and `j + nr <= n`, and this
                        // task owns rows x cols of C. The panels hold `kc*MR` and
                        // `kc*NR` values (sized by `scratch_len`, checked above).
                        unsafe { tile::<S>(kc, apanel.as_ptr(), bpanel.as_ptr(), g.c.0, g.ldc, (i, j), (mr, nr), ep) };
                    }
                }
                ic += mc;
            }
            pc += kc;
        }
        if g.activation == Activation::Tanh {
            for i in rows.clone() {
                // SAFETY: row `i` and columns `jc..jc+nc` of C are in range and owned
                // by this task (see above).
                let row = unsafe { core::slice::from_raw_parts_mut(g.c.0.add(i * g.ldc + jc), nc) };
                row.iter_mut().for_each(|v| *v = libm::tanhf(*v));
            }
        }
        jc += nc;
    }
}

/// One micro-tile at `(i, j)` of `C`, `mr x nr` of it inside the matrix.
///
/// # Safety
/// The panels must hold `kc` steps; `C` must be valid for the `mr x nr` block at
/// `(i, j)` with row stride `ldc`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) unsafe fn tile<S: Simd>(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    (i, j): (usize, usize),
    (mr, nr): (usize, usize),
    ep: Epilogue,
) {
    // SAFETY: forwarded contract; a full tile goes straight to C, a partial one
    // through a stack tile of at most 16 x 32 values (every level's MR x NR fits).
    unsafe {
        let dst = c.add(i * ldc + j);
        if mr == S::MR && nr == S::NR {
            S::micro(kc, a, b, dst, ldc, ep);
            return;
        }
        // Every element the micro-kernel stores is read back below; the zeros only
        // keep the buffer initialised.
        let mut buf = [0f32; 16 * 32];
        S::micro(kc, a, b, buf.as_mut_ptr(), S::NR, Epilogue { alpha: ep.alpha, accumulate: false, relu: false });
        for r in 0..mr {
            for col in 0..nr {
                let p = dst.add(r * ldc + col);
                let mut v = buf[r * S::NR + col];
                if ep.accumulate {
                    v += *p;
                }
                if ep.relu {
                    v = v.max(0.0);
                }
                *p = v;
            }
        }
    }
}

/// Packs rows `i0 .. i0+mc`, columns `p0 .. p0+kc` of `A` into `kc x MR` panels
/// (rows past the end are zero). Its speed matters where `C` is narrow (a
/// product with 256 columns does only 16 cycles of arithmetic per packed value).
#[inline(always)]
pub(crate) fn pack_a<S: Simd>(a: &[f32], lda: usize, i0: usize, mc: usize, p0: usize, kc: usize, dst: &mut [f32]) {
    for (panel, out) in dst.chunks_exact_mut(kc * S::MR).take(mc.div_ceil(S::MR)).enumerate() {
        let r0 = i0 + panel * S::MR;
        prefetch_rows::<S>(a, lda, r0 + S::MR..(r0 + 2 * S::MR).min(i0 + mc), (p0, kc));
        pack_panel::<S>(a, lda, (r0, (r0 + S::MR).min(i0 + mc)), (p0, kc), S::MR, out);
    }
}

/// Asks for the first cache lines of rows `rows` of `m` (row stride `ld`) from
/// column `c0` (of `kc`): the next panel's, while this one is packed. A panel's
/// rows are short runs (`kc` values in as many places as it has rows), which the
/// hardware's prefetcher follows only once each has begun. Asking for every line
/// of the next panel at once stalled on the outstanding loads instead (`small`
/// forward 6% slower than without); the first four lines of each row measured
/// 1-2% faster than nothing in training and forward alike (medians of four
/// interleaved runs, about the size of the runs' spread).
#[inline(always)]
fn prefetch_rows<S: Simd>(m: &[f32], ld: usize, rows: Range<usize>, (c0, kc): (usize, usize)) {
    const PREFETCH_LINES: usize = 4;
    for r in rows {
        if let Some(row) = m.get(r * ld + c0..).and_then(|row| row.get(..kc)) {
            for line in row.iter().step_by(LINE_F32S).take(PREFETCH_LINES) {
                // SAFETY: the level's prefetch reads nothing (a hint).
                unsafe { S::prefetch(line) };
            }
        }
    }
}

/// Packs rows `r0 .. r1` (at most `width`, which is at most `NR`) of `m` (row
/// stride `ld`), columns `c0 .. c0+kc`, into one `kc x width` panel: the rows laid
/// side by side ([`interleave`]), lanes past `r1` zero. A panel of `A`, of `B`
/// stored transposed, or of the attention's probabilities.
#[inline(always)]
pub(crate) fn pack_panel<S: Simd>(
    m: &[f32],
    ld: usize,
    (r0, r1): (usize, usize),
    (c0, kc): (usize, usize),
    width: usize,
    dst: &mut [f32],
) {
    const { assert!(S::MR <= MAX_NR && S::NR <= MAX_NR) };
    let rows = r1.saturating_sub(r0).min(width).min(MAX_NR);
    let mut src: [&[f32]; MAX_NR] = [&[]; MAX_NR];
    for (ii, row) in src.iter_mut().take(rows).enumerate() {
        *row = &m[(r0 + ii) * ld + c0..][..kc];
    }
    let out = &mut dst[..kc * width];
    interleave::<S>(&src[..rows], kc, out, width);
    if rows < width {
        out.chunks_exact_mut(width).for_each(|step| step[rows..].fill(0.0));
    }
}

/// Lays `rows` side by side: `dst[p*stride + r] = rows[r][p]` for every row `r`
/// and step `p < len` (a transpose; the other values of `dst` are left as they
/// are). Four rows at a time through [`Simd::transpose4`]; where the count is not
/// a multiple of four, the last four overlap the previous ones (writing some
/// values twice, the same).
#[inline(always)]
pub(crate) fn interleave<S: Simd>(rows: &[&[f32]], len: usize, dst: &mut [f32], stride: usize) {
    let n = rows.len();
    let fits = n <= stride && rows.iter().all(|row| row.len() >= len) && dst.len() >= len * stride;
    if n < 4 || !fits {
        // Fewer than four rows (the last panel of a product), or a call that does
        // not fit (never made: indexing then stops it).
        for (r, row) in rows.iter().enumerate() {
            for (p, &v) in row[..len].iter().enumerate() {
                dst[p * stride + r] = v;
            }
        }
        return;
    }
    let mut r = 0;
    while r < n {
        let g = r.min(n - 4);
        let group = [rows[g].as_ptr(), rows[g + 1].as_ptr(), rows[g + 2].as_ptr(), rows[g + 3].as_ptr()];
        // SAFETY: each row holds at least `len` values, and the largest index
        // written, `(len-1)*stride + g + 3`, is below `len * stride` (as
        // `g + 3 < n <= stride`), which `dst` holds (all checked above).
        unsafe { S::transpose4(group, len, dst.as_mut_ptr().add(g), stride) };
        r = g + 4;
    }
}

/// The largest `NR` of any level (AVX-512's), above every `MR`.
const MAX_NR: usize = 32;

/// As [`pack_a`], with each value replaced by the one the product with Q8_0
/// weights uses: its block of 32 along `k` (of the whole row, which may reach
/// past this step's columns) quantized by `quantize_activations`, `d * q`. The
/// packed product then sums `(d_x q_x) (d_w q_w)` in f32, which agrees with the
/// integer products to f32 rounding.
#[inline(always)]
pub(crate) fn pack_a_quantized<S: Simd>(g: &Gemm<'_>, i0: usize, mc: usize, p0: usize, kc: usize, dst: &mut [f32]) {
    let mut q = [0i8; Q8_0_BLOCK];
    for (panel, out) in dst.chunks_exact_mut(kc * S::MR).take(mc.div_ceil(S::MR)).enumerate() {
        for ii in 0..S::MR {
            let r = panel * S::MR + ii;
            if r >= mc {
                (0..kc).for_each(|p| out[p * S::MR + ii] = 0.0);
                continue;
            }
            let row = &g.a[(i0 + r) * g.lda..][..g.k];
            let mut p = p0;
            while p < p0 + kc {
                let block = p / Q8_0_BLOCK * Q8_0_BLOCK;
                let x = &row[block..g.k.min(block + Q8_0_BLOCK)];
                let d = quantize_activations(x, &mut q[..x.len()]);
                let end = (p0 + kc).min(block + x.len());
                for p in p..end {
                    out[(p - p0) * S::MR + ii] = d * q[p - block] as f32;
                }
                p = end;
            }
        }
    }
}

/// As [`pack_a`] for `A` stored transposed (`A(i, p) = a[p*lda + i]`): each step
/// `p` of a panel is `MR` contiguous values.
#[inline(always)]
pub(crate) fn pack_a_transposed<S: Simd>(
    a: &[f32],
    lda: usize,
    i0: usize,
    mc: usize,
    p0: usize,
    kc: usize,
    dst: &mut [f32],
) {
    // Step by step across the panels: each step's `mc` values are read once, in
    // order (panel by panel, every step would be a new cache line per panel).
    let panels = mc.div_ceil(S::MR);
    for p in 0..kc {
        let src = &a[(p0 + p) * lda + i0..][..mc];
        for panel in 0..panels {
            let r0 = panel * S::MR;
            let rows = S::MR.min(mc - r0);
            let step = &mut dst[(panel * kc + p) * S::MR..][..S::MR];
            if rows == S::MR {
                // A copy of a length known at compile time: a few moves, where a
                // copy of `rows` values is a call to `memmove` per step.
                step.copy_from_slice(&src[r0..r0 + S::MR]);
            } else {
                step[..rows].copy_from_slice(&src[r0..]);
                step[rows..].fill(0.0);
            }
        }
    }
}

/// Packs rows `p0 .. p0+kc`, columns `j0 .. j0+nc` of `B` into `kc x NR` panels,
/// widening to f32 (columns past the end are zero).
#[inline(always)]
pub(crate) fn pack_b<S: Simd>(b: BSource<'_>, p0: usize, kc: usize, j0: usize, nc: usize, dst: &mut [f32]) {
    let nr = S::NR;
    let panels = nc.div_ceil(nr);
    match b {
        BSource::InOut(w, ld) => {
            // A few rows at a time across all panels: the weights stream in
            // memory order (each row's `nc` values are contiguous, a few rows
            // side by side), and each panel receives a contiguous run of those
            // rows. (One row at a time wrote one vector per panel, panels `kc * NR`
            // values apart: the stores fell into the same few cache sets.)
            const ROWS: usize = 8;
            for p_block in (0..kc).step_by(ROWS) {
                let block = p_block..(p_block + ROWS).min(kc);
                for panel in 0..panels {
                    let width = nr.min(nc - panel * nr);
                    for p in block.clone() {
                        let at = (p0 + p) * ld + j0 + panel * nr;
                        let row = &mut dst[(panel * kc + p) * nr..][..nr];
                        if width == nr {
                            widen_full::<S>(w, at, row);
                        } else {
                            w.widen(at, &mut row[..width]);
                            row[width..].fill(0.0);
                        }
                    }
                }
            }
        }
        BSource::OutIn(w, ld) => {
            for (panel, out) in dst.chunks_exact_mut(kc * nr).take(panels).enumerate() {
                let jb = j0 + panel * nr;
                let width = nr.min(j0 + nc - jb);
                if let WSlice::F32(v) = w {
                    // The panel's columns are rows of the weights.
                    prefetch_rows::<S>(v, ld, jb + nr..(jb + 2 * nr).min(j0 + nc), (p0, kc));
                    pack_panel::<S>(v, ld, (jb, jb + width), (p0, kc), nr, out);
                    continue;
                }
                for jj in 0..nr {
                    if jj < width {
                        let at = (jb + jj) * ld + p0;
                        match w {
                            WSlice::Q8 { blocks, start, .. } => {
                                // Block by block: one scale each (`Gemm::new` checked
                                // that the values exist).
                                let mut p = 0;
                                while p < kc {
                                    let e = start + at + p;
                                    let block = &blocks[e / Q8_0_BLOCK * Q8_0_BLOCK_BYTES..][..Q8_0_BLOCK_BYTES];
                                    let d = q8_0_scale(block);
                                    let lane = e % Q8_0_BLOCK;
                                    let run = (Q8_0_BLOCK - lane).min(kc - p);
                                    for (t, &q) in block[2 + lane..][..run].iter().enumerate() {
                                        out[(p + t) * nr + jj] = d * (q as i8) as f32;
                                    }
                                    p += run;
                                }
                            }
                            // f16 and bf16 (f32 took the path above).
                            _ => {
                                for p in 0..kc {
                                    out[p * nr + jj] = w.get(at + p);
                                }
                            }
                        }
                    } else {
                        for p in 0..kc {
                            out[p * nr + jj] = 0.0;
                        }
                    }
                }
            }
        }
    }
}

/// Widens `row.len()` (a multiple of `LANES`) values of `w` from `at` into `row`.
#[inline(always)]
fn widen_full<S: Simd>(w: WSlice<'_>, at: usize, row: &mut [f32]) {
    let n = row.len();
    // SAFETY: the caller checked (through `Gemm::new`) that `at + n <= w.len()`;
    // `row` holds `n` values and `n` is a multiple of `LANES`.
    unsafe {
        match w {
            WSlice::F32(v) => {
                let (src, out) = (v[at..at + n].as_ptr(), row.as_mut_ptr());
                for l in (0..n).step_by(S::LANES) {
                    S::store(out.add(l), S::load(src.add(l)));
                }
            }
            WSlice::F16(v) => {
                let (src, out) = (v[at..at + n].as_ptr(), row.as_mut_ptr());
                for l in (0..n).step_by(S::LANES) {
                    S::store(out.add(l), S::load_f16(src.add(l)));
                }
            }
            WSlice::Bf16(v) => {
                let (src, out) = (v[at..at + n].as_ptr(), row.as_mut_ptr());
                for l in (0..n).step_by(S::LANES) {
                    S::store(out.add(l), S::load_bf16(src.add(l)));
                }
            }
            // Refused by `Gemm::new`: Q8_0 weights are read along their blocks.
            WSlice::Q8 { .. } => w.widen(at, row),
        }
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use crate::SimdLevel;
    use std::{format, string::String, vec, vec::Vec};

    /// Every row count (below four: value by value; otherwise groups of four,
    /// the last overlapping), step counts on both sides of the 8-step
    /// transposes, and strides wider than the rows.
    struct InterleaveCases;
    impl WithSimd for InterleaveCases {
        type Output = Result<(), String>;
        #[inline(always)]
        fn with<S: Simd>(self) -> Result<(), String> {
            const UNTOUCHED: f32 = -7.0;
            for n in 0..=13 {
                for len in [0, 1, 7, 8, 9, 16, 19] {
                    for stride in [n, n + 3] {
                        let rows: Vec<Vec<f32>> =
                            (0..n).map(|r| (0..len + 2).map(|p| (100 * r + p) as f32).collect()).collect();
                        let views: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
                        let mut dst = vec![UNTOUCHED; len * stride.max(1) + 1];
                        interleave::<S>(&views, len, &mut dst, stride);
                        for (i, &v) in dst.iter().enumerate() {
                            let (p, r) = (i / stride.max(1), i % stride.max(1));
                            let want = if p < len && r < n { (100 * r + p) as f32 } else { UNTOUCHED };
                            if v != want {
                                return Err(format!("{n} rows, {len} steps, stride {stride}: [{i}] = {v}, not {want}"));
                            }
                        }
                    }
                }
            }
            Ok(())
        }
    }

    #[test]
    fn interleave_lays_rows_side_by_side_and_nothing_else() {
        for level in SimdLevel::available() {
            assert_eq!(level.dispatch(InterleaveCases), Ok(()), "{level}");
        }
    }
}
