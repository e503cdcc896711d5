//! The backward of softmax attention, tiled like the forward (`crate::attention`).
//!
//! A task is one (batch row, head); it owns that head's columns of `d_q`, `d_k`
//! and `d_v` and walks its queries in tiles of `Tiles::backward_queries`. The
//! forward's softmax statistics are not kept, so each query tile takes two sweeps
//! over the key tiles (`Tiles::backward_keys` keys) it can see:
//!
//! 1. scores `S = Q K^T` and `dP = dO V^T` as micro-kernel products; the online
//!    softmax gives each row's maximum `m` and denominator `l` (with the safe
//!    softmax's floor term) and, rescaled alike, `D = sum_j p_j dP_j`;
//! 2. the same products again; `P = exp(a (S + bias) - m) / l` and
//!    `dS = P (dP - D)`; then `dV += P^T dO`, `dQ += a dS K`, `dK += a dS^T Q`
//!    (products on packed panels again), and the scale's and bias's gradients
//!    `sum dS (S + bias)` and `sum a dS` per distance.
//!
//! With a window mask, every product only covers the band of keys (or, for `dV`
//! and `dK`, of queries) that some row of its micro-panel can see, as in the
//! forward. The scale's and bias's gradients are shared by all batch rows, so they
//! go to the task's `partial` sums.

use super::take;
use crate::attention::{bias_run, round_up, BIAS_TABLE};
use crate::gemm::{pack_a, pack_b, pack_panel, tile, BSource};
use crate::parallel::SendPtr;
use crate::simd::{Epilogue, Simd, WithSimd};
use crate::tiles::Tiles;
use crate::vector::{add_assign, dot, exp, exp_shifted_sum, max_of, scale};
use crate::weights::WSlice;
use brt_core::desc::{Attention, Mask};
use brt_core::params::T5_BUCKETS;
use brt_core::primitives::{t5_bucket, SAFE_SOFTMAX_FLOOR};

/// Scratch (f32 elements) of one task at micro-tile `(mr, nr)` for head widths
/// up to `max_dh`.
pub(crate) const fn scratch_len(t: &Tiles, (mr, nr): (usize, usize), max_dh: usize) -> u64 {
    let (qt, kt, cached) = (t.backward_queries as u64, t.backward_keys as u64, t.backward_cached_tiles as u64);
    let (mr, dh, dh_pad) = (mr as u64, max_dh as u64, round_up(max_dh, nr) as u64);
    let panel = if qt > kt { qt } else { kt };
    // Q and dO as A panels and as B panels; K^T, V^T and K panels; S and dP
    // tiles (kept for up to `cached` key tiles); one A panel (of a key tile for
    // dQ, of a query tile for dV and dK); row statistics; bias by distance and
    // its gradient; a row of biases and one of logits.
    2 * qt * dh
        + 2 * qt * dh_pad
        + 2 * kt * dh
        + kt * dh_pad
        + 2 * cached * qt * kt
        + mr * panel
        + 3 * qt
        + 2 * BIAS_TABLE as u64
        + 2 * kt
}

/// One checked call, with the backend's (checked) tiles.
pub(crate) struct AttnGradCall<'a> {
    pub tiles: Tiles,
    pub q: &'a [f32],
    pub k: &'a [f32],
    pub v: &'a [f32],
    pub scale: WSlice<'a>,
    pub bias: Option<WSlice<'a>>,
    pub d_out: &'a [f32],
    pub d_q: SendPtr,
    pub d_k: SendPtr,
    pub d_v: SendPtr,
    pub desc: Attention,
}

/// Task `(batch row, head)` of a call; `partial` holds the scale gradients `(H,)`
/// then, with a bias, the bias gradients `(H, 32)`.
pub(crate) struct AttnGradTask<'c, 'a> {
    pub call: &'c AttnGradCall<'a>,
    pub task: usize,
    pub scratch: &'c mut [f32],
    pub partial: &'c mut [f32],
}

impl WithSimd for AttnGradTask<'_, '_> {
    type Output = ();
    #[inline(always)]
    fn with<S: Simd>(self) {
        // The default tiles are compiled in (the tiles' row stride a constant,
        // as fast as constant tiles); any others are read at run time.
        let t = &self.call.tiles;
        let d = &DEFAULTS;
        if (t.backward_queries, t.backward_keys, t.backward_cached_tiles)
            == (d.backward_queries, d.backward_keys, d.backward_cached_tiles)
        {
            attend_backward::<S, true>(self.call, self.task, self.scratch, self.partial)
        } else {
            attend_backward::<S, false>(self.call, self.task, self.scratch, self.partial)
        }
    }
}

/// The attention backward's tiles of every level's defaults.
const DEFAULTS: Tiles = Tiles::default_for(crate::SimdLevel::Scalar);

const PLAIN: Epilogue = Epilogue { alpha: 1.0, accumulate: false, relu: false };
const ADD: Epilogue = Epilogue { alpha: 1.0, accumulate: true, relu: false };

/// One task; `DEFAULT`: the tiles are the defaults, known at compile time.
#[inline(always)]
fn attend_backward<S: Simd, const DEFAULT: bool>(
    c: &AttnGradCall<'_>,
    task: usize,
    scratch: &mut [f32],
    partial: &mut [f32],
) {
    let d = c.desc;
    let (heads, dh, width) = (d.heads(), d.head_dim(), d.width());
    let (b, h) = (task / heads, task % heads);
    let dh_pad = round_up(dh, S::NR);
    let t = if DEFAULT { DEFAULTS } else { c.tiles };
    let (q_tile, k_tile, cached_tiles) = (t.backward_queries, t.backward_keys, t.backward_cached_tiles);
    let tiles_fit = q_tile % S::MR == 0 && k_tile % S::NR == 0 && k_tile > 0 && cached_tiles > 0;
    if !tiles_fit || (scratch.len() as u64) < scratch_len(&t, (S::MR, S::NR), dh) || partial.len() < heads {
        return; // checked and sized by the backend; never reached
    }
    let mut rest = scratch;
    let q_a = take(&mut rest, q_tile * dh);
    let do_a = take(&mut rest, q_tile * dh);
    let q_b = take(&mut rest, q_tile * dh_pad);
    let do_b = take(&mut rest, q_tile * dh_pad);
    let kt_b = take(&mut rest, k_tile * dh);
    let vt_b = take(&mut rest, k_tile * dh);
    let k_b = take(&mut rest, k_tile * dh_pad);
    let s_tiles = take(&mut rest, cached_tiles * q_tile * k_tile);
    let dp_tiles = take(&mut rest, cached_tiles * q_tile * k_tile);
    let a_panel = take(&mut rest, S::MR * q_tile.max(k_tile));
    let row_max = take(&mut rest, q_tile);
    let row_inv = take(&mut rest, q_tile);
    let row_d = take(&mut rest, q_tile);
    let bias_table = take(&mut rest, BIAS_TABLE);
    let bias_grad = take(&mut rest, BIAS_TABLE);
    let bias_row = take(&mut rest, k_tile);
    let logit_row = take(&mut rest, k_tile);

    let raw = c.scale.get(h);
    let a = if d.abs_scale() { raw.abs() } else { raw };
    // d a / d raw (the reference's convention: 0 at 0 for |raw|).
    let a_slope = match (d.abs_scale(), raw) {
        (false, _) => 1.0,
        (true, r) if r > 0.0 => 1.0,
        (true, r) if r < 0.0 => -1.0,
        _ => 0.0,
    };
    let (offset, window) = match d.mask() {
        Mask::Window { offset, window } => (offset, Some(window)),
        Mask::None => (0, None),
    };
    let biased = match (c.bias, window) {
        (Some(table), Some(_)) => {
            // By decreasing distance, as the forward's (see `bias_run`).
            for (t, slot) in bias_table.iter_mut().enumerate() {
                *slot = table.get(h * T5_BUCKETS + t5_bucket(BIAS_TABLE - 1 - t));
            }
            bias_grad.fill(0.0);
            true
        }
        _ => false,
    };
    let mut scale_grad = 0f32;

    let ld = d.batch() * width;
    let col0 = b * width + h * dh;
    let (q, k, v, d_out) = (&c.q[col0..], &c.k[col0..], &c.v[col0..], &c.d_out[col0..]);
    // This head's columns of the gradients. Every write through these pointers
    // relies on: the backend checked `d_q` against `query_len` and `d_k`, `d_v`
    // against `key_len`; element (position p, this row and head, column x < dh) is
    // at `p*ld + col0 + x`; and this task is the only one touching this (row, head).
    let (d_q, d_k, d_v) =
        (c.d_q.get().wrapping_add(col0), c.d_k.get().wrapping_add(col0), c.d_v.get().wrapping_add(col0));
    let dq_panels = dh.div_ceil(S::NR);

    let mut i0 = 0;
    while i0 < d.queries() {
        let qt = q_tile.min(d.queries() - i0);
        // Keys query `i` of the tile sees (absolute key positions).
        let visible = |i: usize| match window {
            Some(w) => (i0 + i + offset - w, i0 + i + offset),
            None => (0, d.keys()),
        };
        pack_a::<S>(q, ld, i0, qt, 0, dh, q_a);
        pack_a::<S>(d_out, ld, i0, qt, 0, dh, do_a);
        pack_b::<S>(BSource::InOut(WSlice::F32(q), ld), i0, qt, 0, dh, q_b);
        pack_b::<S>(BSource::InOut(WSlice::F32(d_out), ld), i0, qt, 0, dh, do_b);
        row_max[..qt].fill(SAFE_SOFTMAX_FLOOR);
        row_inv[..qt].fill(0.0); // the running sum during the first sweep
        row_d[..qt].fill(0.0);
        let (key_lo, key_hi) = (visible(0).0, visible(qt - 1).1);
        // Whether the first sweep's tiles are kept for the second.
        let cached = (key_hi - key_lo).div_ceil(k_tile) <= cached_tiles;

        for sweep in 0..2 {
            let mut jt = key_lo;
            let mut tile_index = 0;
            while jt < key_hi {
                let kt = k_tile.min(key_hi - jt);
                let slot = if cached { tile_index } else { 0 };
                let s_tile = &mut s_tiles[slot * q_tile * k_tile..][..q_tile * k_tile];
                let dp_tile = &mut dp_tiles[slot * q_tile * k_tile..][..q_tile * k_tile];
                let compute = sweep == 0 || !cached;
                if compute {
                    pack_b::<S>(BSource::OutIn(WSlice::F32(k), ld), 0, dh, jt, kt, kt_b);
                    pack_b::<S>(BSource::OutIn(WSlice::F32(v), ld), 0, dh, jt, kt, vt_b);
                }
                if sweep == 1 {
                    pack_b::<S>(BSource::InOut(WSlice::F32(k), ld), jt, kt, 0, dh, k_b);
                }
                for r0 in (0..qt).step_by(S::MR) {
                    let r1 = (r0 + S::MR).min(qt);
                    let (lo, hi) = (visible(r0).0.max(jt), visible(r1 - 1).1.min(jt + kt));
                    if lo >= hi {
                        if sweep == 1 {
                            for i in r0..r1 {
                                s_tile[i * k_tile..][..kt].fill(0.0);
                                dp_tile[i * k_tile..][..kt].fill(0.0);
                            }
                        }
                        continue;
                    }
                    let (c_lo, c_hi) = (lo - jt, hi - jt);
                    let panels = if compute { c_lo / S::NR..c_hi.div_ceil(S::NR) } else { 0..0 };
                    for cp in panels {
                        // SAFETY: the Q and dO panels hold `dh*MR` values at
                        // `r0*dh`, the K^T and V^T panels `dh*NR` at `cp*dh*NR`
                        // (`cp*NR < kt <= k_tile`), and the tiles take an `MR x NR`
                        // block at row `r0 <= q_tile - MR`, column
                        // `cp*NR + NR <= k_tile` (the tiles are multiples of MR and NR).
                        unsafe {
                            let at = r0 * k_tile + cp * S::NR;
                            let (qp, dop) = (q_a.as_ptr().add(r0 * dh), do_a.as_ptr().add(r0 * dh));
                            S::micro(
                                dh,
                                qp,
                                kt_b.as_ptr().add(cp * dh * S::NR),
                                s_tile.as_mut_ptr().add(at),
                                k_tile,
                                PLAIN,
                            );
                            S::micro(
                                dh,
                                dop,
                                vt_b.as_ptr().add(cp * dh * S::NR),
                                dp_tile.as_mut_ptr().add(at),
                                k_tile,
                                PLAIN,
                            );
                        }
                    }
                    for i in r0..r1 {
                        let (vl, vh) = visible(i);
                        let (vl, vh) = (vl.max(jt) - jt, vh.min(jt + kt).max(jt) - jt);
                        let s_row = &mut s_tile[i * k_tile..][..k_tile];
                        let dp_row = &mut dp_tile[i * k_tile..][..k_tile];
                        if vl >= vh {
                            if sweep == 1 {
                                s_row[..kt].fill(0.0);
                                dp_row[..kt].fill(0.0);
                            }
                            continue;
                        }
                        // Biases of the visible keys: key `jt + x` is at distance
                        // `base - x` from the query (a visible key comes before
                        // `i0 + i + offset`, so `base > x`).
                        let base = if biased { i0 + i + offset - jt } else { 0 };
                        let (near, t0) = bias_run(base, vl, vh);
                        if biased {
                            bias_row[vl..near].fill(bias_table[0]);
                            bias_row[near..vh].copy_from_slice(&bias_table[t0..][..vh - near]);
                        }
                        if sweep == 0 {
                            // The logits on a copy: the scores stay for the second sweep.
                            let seen = &mut logit_row[..vh - vl];
                            seen.copy_from_slice(&s_row[vl..vh]);
                            if biased {
                                add_assign::<S>(seen, &bias_row[vl..vh]);
                            }
                            scale::<S>(seen, a);
                            let previous = row_max[i];
                            let new_max = max_of::<S>(seen, previous);
                            let sum = exp_shifted_sum::<S>(seen, new_max);
                            let d_sum = dot::<S>(seen, &dp_row[vl..vh]);
                            let correction = exp::<S>(previous - new_max);
                            row_inv[i] = row_inv[i] * correction + sum;
                            row_d[i] = row_d[i] * correction + d_sum;
                            row_max[i] = new_max;
                        } else {
                            let bias = if biased { Some(&bias_row[vl..vh]) } else { None };
                            scale_grad += probabilities_and_grads::<S>(
                                &mut s_row[vl..vh],
                                &mut dp_row[vl..vh],
                                bias,
                                a,
                                row_max[i],
                                row_inv[i],
                                row_d[i],
                            );
                            if biased {
                                // Entry 0 sums the far keys in key order; the near
                                // keys have an entry each.
                                for &g in &dp_row[vl..near] {
                                    bias_grad[0] += g;
                                }
                                add_assign::<S>(&mut bias_grad[t0..][..vh - near], &dp_row[near..vh]);
                            }
                            s_row[..vl].fill(0.0);
                            s_row[vh..kt].fill(0.0);
                            dp_row[..vl].fill(0.0);
                            dp_row[vh..kt].fill(0.0);
                        }
                    }
                    if sweep == 1 {
                        // dQ[r0..r1] += dS'[r0..r1, c_lo..c_hi] K[c_lo..c_hi].
                        let kc = c_hi - c_lo;
                        pack_panel::<S>(dp_tile, k_tile, (r0, r1), (c_lo, kc), S::MR, a_panel);
                        for dp in 0..dq_panels {
                            let cols = S::NR.min(dh - dp * S::NR);
                            // SAFETY: the A panel holds `kc*MR` values; the K panel
                            // `dp` holds `kt*NR` from `dp*kt*NR`, of which rows
                            // `c_lo..c_hi` are read; the destination block is
                            // queries `i0+r0 .. i0+r1` and columns
                            // `dp*NR .. dp*NR + cols <= dh` of this head (see above).
                            unsafe {
                                tile::<S>(
                                    kc,
                                    a_panel.as_ptr(),
                                    k_b.as_ptr().add((dp * kt + c_lo) * S::NR),
                                    d_q,
                                    ld,
                                    (i0 + r0, dp * S::NR),
                                    (r1 - r0, cols),
                                    ADD,
                                );
                            }
                        }
                    }
                }
                if sweep == 1 {
                    // dV += P^T dO and dK += dS'^T Q over this tile's keys, each
                    // panel of keys over the queries that see one of them.
                    for j0 in (0..kt).step_by(S::MR) {
                        let j1 = (j0 + S::MR).min(kt);
                        let (q_lo, q_hi) = match window {
                            // Query i sees key j iff j < i + offset <= j + w.
                            Some(w) => (
                                (jt + j0 + 1).saturating_sub(offset).max(i0).min(i0 + qt) - i0,
                                (jt + j1 - 1 + w + 1).saturating_sub(offset).max(i0).min(i0 + qt) - i0,
                            ),
                            None => (0, qt),
                        };
                        if q_lo >= q_hi {
                            continue;
                        }
                        let kc = q_hi - q_lo;
                        for (tile_src, b_panel, dst) in [(&*s_tile, &*do_b, d_v), (&*dp_tile, &*q_b, d_k)] {
                            // The panel's keys are a run of each query's row.
                            for (p, keys) in a_panel.chunks_exact_mut(S::MR).take(kc).enumerate() {
                                keys[..j1 - j0].copy_from_slice(&tile_src[(q_lo + p) * k_tile + j0..][..j1 - j0]);
                                keys[j1 - j0..].fill(0.0);
                            }
                            for dp in 0..dq_panels {
                                let cols = S::NR.min(dh - dp * S::NR);
                                // SAFETY: the A panel holds `kc*MR` values; the B
                                // panel `dp` holds `qt*NR` from `dp*qt*NR`, of which
                                // rows `q_lo..q_hi` are read; the destination block
                                // is keys `jt+j0 .. jt+j1` and columns
                                // `dp*NR .. dp*NR + cols <= dh` of this head.
                                unsafe {
                                    tile::<S>(
                                        kc,
                                        a_panel.as_ptr(),
                                        b_panel.as_ptr().add((dp * qt + q_lo) * S::NR),
                                        dst,
                                        ld,
                                        (jt + j0, dp * S::NR),
                                        (j1 - j0, cols),
                                        ADD,
                                    );
                                }
                            }
                        }
                    }
                }
                jt += kt;
                tile_index += 1;
            }
            if sweep == 0 {
                for i in 0..qt {
                    let denominator = row_inv[i] + exp::<S>(SAFE_SOFTMAX_FLOOR - row_max[i]);
                    row_inv[i] = 1.0 / denominator;
                    row_d[i] *= row_inv[i];
                }
            }
        }
        i0 += qt;
    }
    partial[h] += scale_grad * a_slope;
    if biased {
        if let Some(d_bias) = partial.get_mut(heads + h * T5_BUCKETS..heads + (h + 1) * T5_BUCKETS) {
            for n in 0..BIAS_TABLE {
                d_bias[t5_bucket(n)] += bias_grad[BIAS_TABLE - 1 - n];
            }
        }
    }
}

/// For one row's visible keys, with `s` the scores `q.k` and `dp` the products
/// `dO.v`: the probabilities `p = exp(a (s + bias) - max) * inv` replace `s`, and
/// `a p (dp - d)` (the gradient of the content `q.k + bias`) replaces `dp`.
/// Returns `sum p (dp - d) (s + bias)`, the row's share of the scale's gradient.
#[inline(always)]
fn probabilities_and_grads<S: Simd>(
    s: &mut [f32],
    dp: &mut [f32],
    bias: Option<&[f32]>,
    a: f32,
    max: f32,
    inv: f32,
    d: f32,
) -> f32 {
    let len = s.len().min(dp.len()).min(bias.map_or(usize::MAX, <[f32]>::len));
    let mut x = 0;
    // SAFETY: every access is `LANES` values at `x` with `x + LANES <= len` on the
    // main path, and within 16-value stack buffers (LANES <= 16) on the tail.
    unsafe {
        let k = Consts::<S> { a: S::splat(a), max: S::splat(max), inv: S::splat(inv), d: S::splat(d) };
        let mut acc = S::zero();
        while x + S::LANES <= len {
            let b = bias.map(|b| b.as_ptr().add(x));
            acc = lane_step::<S>(&k, s.as_mut_ptr().add(x), dp.as_mut_ptr().add(x), b, acc);
            x += S::LANES;
        }
        if x < len {
            // The tail through a padded copy, so that every element takes the same
            // vector `exp` as in the first sweep. Padding lanes have content 0 and
            // `dp = d`: their `p` is finite (at most exp(88), as `inv <= 1`) and
            // their gradient exactly 0.
            let n = len - x;
            let (mut sb, mut db, mut bb) = ([0f32; 16], [d; 16], [0f32; 16]);
            sb[..n].copy_from_slice(&s[x..len]);
            db[..n].copy_from_slice(&dp[x..len]);
            if let Some(b) = bias {
                bb[..n].copy_from_slice(&b[x..len]);
            }
            acc = lane_step::<S>(&k, sb.as_mut_ptr(), db.as_mut_ptr(), bias.map(|_| bb.as_ptr()), acc);
            s[x..len].copy_from_slice(&sb[..n]);
            dp[x..len].copy_from_slice(&db[..n]);
        }
        S::hsum(acc)
    }
}

/// Splatted constants of [`probabilities_and_grads`].
struct Consts<S: Simd> {
    a: S::V,
    max: S::V,
    inv: S::V,
    d: S::V,
}

/// One vector of [`probabilities_and_grads`]; returns the updated sum.
///
/// # Safety
/// `sp`, `dpp` (and `bp`) must be valid for `LANES` values; the CPU must support `S`.
#[inline(always)]
unsafe fn lane_step<S: Simd>(k: &Consts<S>, sp: *mut f32, dpp: *mut f32, bp: Option<*const f32>, acc: S::V) -> S::V {
    // SAFETY: forwarded contract.
    unsafe {
        let mut content = S::load(sp);
        if let Some(bp) = bp {
            content = S::add(content, S::load(bp));
        }
        let p = S::mul(S::exp(S::sub(S::mul(k.a, content), k.max)), k.inv);
        let ds = S::mul(p, S::sub(S::load(dpp), k.d));
        S::store(sp, p);
        S::store(dpp, S::mul(k.a, ds));
        S::fma(ds, content, acc)
    }
}
