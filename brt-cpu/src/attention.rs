//! Softmax attention (SPEC sections 1, 2 and 4), tiled like a matrix product.
//!
//! A task is one (batch row, head, tile of `qt` queries). Its keys are walked in
//! tiles of `kt` (both from [`Tiles`]); per key tile, the scores `Q K^T` and the update `P V` are
//! micro-kernel products on packed panels, and the softmax is the online form
//! (running maximum and sum, rescaling the output when the maximum grows). The
//! running maximum starts at the official safe softmax's floor (-1000) and the
//! final denominator adds `exp(-1000 - max)`: exactly the reference's formula.
//!
//! With a window mask, each `MR`-row panel only computes the key columns some of
//! its rows can see (the band of the window), so the `W + qt` keys a query tile
//! spans cost little more than the `W` each query uses. The T5 bias depends only
//! on the distance `n`, and saturates at `n >= 113`, so a 128-entry table of
//! `a_h * bias_h(n)` per task covers every distance; it is stored by decreasing
//! distance, so that the biases of a row's keys (distances falling by one per key)
//! are a contiguous run of it and the logits take one vector pass.

use crate::gemm::{pack_a, pack_b, pack_panel, BSource};
use crate::parallel::SendPtr;
use crate::simd::{Epilogue, Simd, WithSimd};
use crate::tiles::Tiles;
use crate::vector::{axpy, dot, exp, exp_shifted_sum, max_of, scale, scale_add, scale_add_const};
use crate::weights::WSlice;
use brt_core::desc::{Attention, Mask};
use brt_core::params::T5_BUCKETS;
use brt_core::primitives::{t5_bucket, SAFE_SOFTMAX_FLOOR};

/// Entries of the per-task bias table: distances at or above it share the last.
pub(crate) const BIAS_TABLE: usize = 128;

/// Where a row's bias entries start in a table stored by decreasing distance
/// (entry `t` is distance `BIAS_TABLE - 1 - t`, the first entry every distance
/// beyond): the visible keys `vl..vh` of a row whose key 0 is at distance `base`
/// are keys `vl..near`, all in entry 0, then keys `near..vh`, entries `t0..` one
/// by one; returns `(near, t0)`. A visible key comes before the query (`vh <=
/// base`), so the run ends within the table. The backward's table and gradient
/// are laid out alike.
#[inline(always)]
pub(crate) fn bias_run(base: usize, vl: usize, vh: usize) -> (usize, usize) {
    let near = (base + 1).saturating_sub(BIAS_TABLE).clamp(vl, vh);
    // `near >= base + 1 - BIAS_TABLE` whenever keys remain past it.
    let t0 = if near < vh { near + BIAS_TABLE - 1 - base } else { 0 };
    (near, t0)
}

/// Rounds `x` up to a multiple of `unit`.
pub(crate) const fn round_up(x: usize, unit: usize) -> usize {
    x.div_ceil(unit) * unit
}

/// Scratch (f32 elements) of one task at micro-tile `(mr, nr)` for head widths
/// up to `max_dh`: packed queries, keys and values, the scores, one panel of
/// probabilities, the output accumulator, row statistics and the bias table.
pub(crate) const fn scratch_len(t: &Tiles, (mr, nr): (usize, usize), max_dh: usize) -> u64 {
    let (qt, kt, mr, dh) = (t.attention_queries as u64, t.attention_keys as u64, mr as u64, max_dh as u64);
    let dh_pad = round_up(max_dh, nr) as u64;
    qt * dh + kt * dh + dh_pad * kt + qt * kt + mr * kt + qt * dh_pad + 2 * qt + BIAS_TABLE as u64
}

/// Heads the one-query path takes together in that scratch (at most
/// `GROUP_HEADS`, at least one): per head, a row of scores, the output
/// accumulator, the running maximum and sum, and the bias table. The scratch is
/// not made larger for it, so the smallest tiles keep their memory.
pub(crate) fn group_capacity(t: &Tiles, (mr, nr): (usize, usize), max_dh: usize) -> usize {
    let per_head = t.attention_keys + round_up(max_dh, nr) + 2 + BIAS_TABLE;
    (scratch_len(t, (mr, nr), max_dh) as usize / per_head).clamp(1, GROUP_HEADS)
}

/// One checked attention call, with the backend's (checked) tiles.
pub(crate) struct AttnCall<'a> {
    pub tiles: Tiles,
    pub q: &'a [f32],
    pub k: &'a [f32],
    pub v: &'a [f32],
    pub scale: WSlice<'a>,
    pub bias: Option<WSlice<'a>>,
    pub out: SendPtr,
    pub desc: Attention,
    /// Threads the backend runs the tasks on.
    pub workers: usize,
    /// Heads one task of the one-query path can take ([`group_capacity`]).
    pub group_heads: usize,
}

impl AttnCall<'_> {
    /// Query tiles per (row, head).
    pub fn tiles(&self) -> usize {
        self.desc.queries().div_ceil(self.tiles.attention_queries)
    }
    /// Whether the call takes the one-query path (a few queries per row).
    fn one_query(&self) -> bool {
        self.desc.queries() <= FEW_QUERIES
    }
    /// Groups of heads per row on the one-query path: at most `group_heads`
    /// heads each, and two groups per thread where there are heads enough (the
    /// calls are short: more tasks than threads balance the threads' finishing
    /// times). One thread takes a row's heads in one group.
    fn head_groups(&self) -> usize {
        let heads = self.desc.heads();
        let threads_per_row = self.workers.div_ceil(self.desc.batch().max(1));
        let fewest = heads.div_ceil(self.group_heads.max(1));
        if threads_per_row <= 1 {
            fewest
        } else {
            fewest.max(heads.min(2 * threads_per_row))
        }
    }
    /// Tasks of the call.
    pub fn tasks(&self) -> usize {
        if self.one_query() {
            self.desc.batch() * self.head_groups()
        } else {
            self.desc.batch() * self.desc.heads() * self.tiles()
        }
    }
}

/// Task `t` of an attention call.
pub(crate) struct AttnTask<'c, 'a> {
    pub call: &'c AttnCall<'a>,
    pub task: usize,
    pub scratch: &'c mut [f32],
}

impl WithSimd for AttnTask<'_, '_> {
    type Output = ();
    #[inline(always)]
    fn with<S: Simd>(self) {
        // The default tiles are compiled in (the score tiles' row stride a
        // constant, as fast as constant tiles); any others are read at run time.
        let t = &self.call.tiles;
        if (t.attention_queries, t.attention_keys) == (DEFAULTS.attention_queries, DEFAULTS.attention_keys) {
            attend::<S, true>(self.call, self.task, self.scratch)
        } else {
            attend::<S, false>(self.call, self.task, self.scratch)
        }
    }
}

/// Calls of at most this many queries per row (one token per call) take the
/// one-query path: it streams the keys and values straight from the cache, where
/// the tiled path would pack them for micro-kernels whose rows would mostly be
/// padding.
const FEW_QUERIES: usize = 4;

/// Heads one task of the one-query path takes together. A cached position's keys
/// (and values) of all heads are one contiguous row, and the positions follow each
/// other: reading a group of heads position by position streams the cache in
/// memory order, where one head at a time reads a short run of every row.
const GROUP_HEADS: usize = 8;

/// The scale and bias logits of one query's keys `vl..vh` of a tile (`row`), then
/// the online softmax: the running maximum and sum move on, and `acc` (the
/// output so far) is rescaled when the maximum grows; `row[vl..vh]` becomes the
/// probabilities (unnormalised).
///
/// `bias`: the task's table of `a * bias(n)` by decreasing distance, and the
/// distance `base` of the tile's key 0 from the query (key `j` is at `base - j`).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn softmax_step<S: Simd>(
    row: &mut [f32],
    vl: usize,
    vh: usize,
    a: f32,
    bias: Option<(&[f32], usize)>,
    row_max: &mut f32,
    row_sum: &mut f32,
    acc: &mut [f32],
) {
    let seen = &mut row[vl..vh];
    match bias {
        Some((table, base)) => {
            let (near, t0) = bias_run(base, vl, vh);
            scale_add_const::<S>(&mut seen[..near - vl], a, table[0]);
            if near < vh {
                scale_add::<S>(&mut seen[near - vl..], a, &table[t0..t0 + (vh - near)]);
            }
        }
        None => scale::<S>(seen, a),
    }
    let previous = *row_max;
    let new_max = max_of::<S>(seen, previous);
    let sum = exp_shifted_sum::<S>(seen, new_max);
    let correction = exp::<S>(previous - new_max);
    *row_sum = *row_sum * correction + sum;
    if correction != 1.0 {
        scale::<S>(acc, correction);
    }
    *row_max = new_max;
}

/// One query's attention for a group of heads over keys `lo..hi`, read in place
/// (rows of stride `ld`; head `g` of the group at column `col0 + g dh`), into
/// `acc` (`dh_pad` values per head, normalised): per tile of keys, the scores are
/// dot products key by key (all the group's heads of one key, then the next key:
/// the cache is read in memory order), then [`softmax_step`] per head, then `acc
/// += p v`, again key by key. The same algebra as the tiled path, summed in
/// another order; each head's sums are those of the head alone.
///
/// `scales[g]`: head `g`'s scale; `bias`: the heads' tables (`BIAS_TABLE` each)
/// and the distance of key 0 from the query (its position in the keys, which
/// start `offset` positions before the queries).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn attend_query<S: Simd>(
    c: &AttnCall<'_>,
    q_at: usize,
    col0: usize,
    (lo, hi): (usize, usize),
    scales: &[f32],
    bias: Option<(&[f32], usize)>,
    (rows, k_tile): (&mut [f32], usize),
    stats: (&mut [f32], &mut [f32]),
    (acc, dh_pad): (&mut [f32], usize),
) {
    let d = c.desc;
    let (dh, ld, group) = (d.head_dim(), d.batch() * d.width(), scales.len());
    let (max, sum) = stats;
    max[..group].fill(SAFE_SOFTMAX_FLOOR);
    sum[..group].fill(0.0);
    acc[..group * dh_pad].fill(0.0);
    let mut jt = lo;
    while jt < hi {
        let kt = k_tile.min(hi - jt);
        for j in 0..kt {
            let keys = &c.k[(jt + j) * ld + col0..][..group * dh];
            for (g, key) in keys.chunks_exact(dh).enumerate() {
                rows[g * k_tile + j] = dot::<S>(&c.q[q_at + g * dh..][..dh], key);
            }
        }
        for (g, &a) in scales.iter().enumerate() {
            let bias = bias.map(|(tables, distance)| (&tables[g * BIAS_TABLE..][..BIAS_TABLE], distance - jt));
            let row = &mut rows[g * k_tile..][..kt];
            softmax_step::<S>(row, 0, kt, a, bias, &mut max[g], &mut sum[g], &mut acc[g * dh_pad..][..dh]);
        }
        for j in 0..kt {
            let values = &c.v[(jt + j) * ld + col0..][..group * dh];
            for (g, value) in values.chunks_exact(dh).enumerate() {
                axpy::<S>(&mut acc[g * dh_pad..][..dh], rows[g * k_tile + j], value);
            }
        }
        jt += kt;
    }
    for g in 0..group {
        let inv = 1.0 / (sum[g] + exp::<S>(SAFE_SOFTMAX_FLOOR - max[g]));
        for o in &mut acc[g * dh_pad..][..dh] {
            *o *= inv;
        }
    }
}

/// The one-query path's task: batch row `b`, one group of heads, every query of
/// the call (at most `FEW_QUERIES`).
#[inline(always)]
fn attend_heads<S: Simd>(c: &AttnCall<'_>, task: usize, k_tile: usize, scratch: &mut [f32]) {
    let d = c.desc;
    let (heads, dh, width) = (d.heads(), d.head_dim(), d.width());
    let groups = c.head_groups();
    let (b, group) = (task / groups, task % groups);
    let (h0, h1) = (group * heads / groups, (group + 1) * heads / groups);
    let (n, cap) = (h1 - h0, c.group_heads);
    let dh_pad = round_up(dh, S::NR);
    if n > cap || cap > GROUP_HEADS || scratch.len() < cap * (k_tile + dh_pad + 2 + BIAS_TABLE) {
        return; // sized by the backend (`group_capacity`); never reached
    }
    let (rows, rest) = scratch.split_at_mut(cap * k_tile);
    let (acc, rest) = rest.split_at_mut(cap * dh_pad);
    let (max, rest) = rest.split_at_mut(cap);
    let (sum, rest) = rest.split_at_mut(cap);
    let tables = &mut rest[..cap * BIAS_TABLE];
    let mut scales = [0f32; GROUP_HEADS];
    for (g, a) in scales[..n].iter_mut().enumerate() {
        let raw = c.scale.get(h0 + g);
        *a = if d.abs_scale() { raw.abs() } else { raw };
    }
    let window = match d.mask() {
        Mask::Window { offset, window } => Some((offset, window)),
        Mask::None => None,
    };
    if let Some(table) = c.bias {
        // Entry t holds distance BIAS_TABLE - 1 - t; the first one stands for
        // every distance at or beyond it (they share the last bucket).
        for t in 0..BIAS_TABLE {
            let bucket = t5_bucket(BIAS_TABLE - 1 - t);
            for (g, &a) in scales[..n].iter().enumerate() {
                tables[g * BIAS_TABLE + t] = a * table.get((h0 + g) * T5_BUCKETS + bucket);
            }
        }
    }
    // Rows of q/k/v are positions (stride B*width); the group's columns start here.
    let ld = d.batch() * width;
    let col0 = b * width + h0 * dh;
    for i in 0..d.queries() {
        let (lo, hi) = match window {
            Some((offset, w)) => (i + offset - w, i + offset),
            None => (0, d.keys()),
        };
        let bias = c.bias.and(window).map(|(offset, _)| (&tables[..n * BIAS_TABLE], i + offset));
        let stats = (&mut max[..], &mut sum[..]);
        attend_query::<S>(c, i * ld + col0, col0, (lo, hi), &scales[..n], bias, (rows, k_tile), stats, (acc, dh_pad));
        // SAFETY: query i of row b, heads h0..h1: `i*ld + col0 + n*dh` is within the
        // output (checked by the backend against `query_len`), and this task is the
        // only one writing these (query, row, heads).
        let dst = unsafe { core::slice::from_raw_parts_mut(c.out.0.add(i * ld + col0), n * dh) };
        for (g, out) in dst.chunks_exact_mut(dh).enumerate() {
            out.copy_from_slice(&acc[g * dh_pad..][..dh]);
        }
    }
}

/// The attention tiles of every level's defaults.
const DEFAULTS: Tiles = Tiles::default_for(crate::SimdLevel::Scalar);

/// One task; `DEFAULT`: the tiles are the defaults, known at compile time.
#[inline(always)]
fn attend<S: Simd, const DEFAULT: bool>(c: &AttnCall<'_>, task: usize, scratch: &mut [f32]) {
    let d = c.desc;
    let (heads, dh, width) = (d.heads(), d.head_dim(), d.width());
    let tiles = c.tiles();
    let (b, h, tile) = (task / (heads * tiles), task / tiles % heads, task % tiles);
    let (q_tile, k_tile) = if DEFAULT {
        (DEFAULTS.attention_queries, DEFAULTS.attention_keys)
    } else {
        (c.tiles.attention_queries, c.tiles.attention_keys)
    };
    if c.one_query() {
        return attend_heads::<S>(c, task, k_tile, scratch);
    }
    let i0 = tile * q_tile;
    let qt = q_tile.min(d.queries() - i0);
    let dh_pad = round_up(dh, S::NR);
    let tiles_fit = q_tile % S::MR == 0 && k_tile % S::NR == 0 && k_tile > 0;
    if !tiles_fit || (scratch.len() as u64) < scratch_len(&c.tiles, (S::MR, S::NR), dh) {
        return; // checked and sized by the backend; never reached
    }
    let (qpack, rest) = scratch.split_at_mut(q_tile * dh);
    let (kpack, rest) = rest.split_at_mut(k_tile * dh);
    let (vpack, rest) = rest.split_at_mut(dh_pad * k_tile);
    let (scores, rest) = rest.split_at_mut(q_tile * k_tile);
    let (ppack, rest) = rest.split_at_mut(S::MR * k_tile);
    let (acc, rest) = rest.split_at_mut(q_tile * dh_pad);
    let (row_max, rest) = rest.split_at_mut(q_tile);
    let (row_sum, rest) = rest.split_at_mut(q_tile);
    let bias_table = &mut rest[..BIAS_TABLE];

    let raw = c.scale.get(h);
    let a = if d.abs_scale() { raw.abs() } else { raw };
    let window = match d.mask() {
        Mask::Window { offset, window } => Some((offset, window)),
        Mask::None => None,
    };
    let biased = match c.bias {
        Some(table) => {
            // Entry t holds distance BIAS_TABLE - 1 - t; the first one stands for
            // every distance at or beyond it (they share the last bucket).
            for (t, slot) in bias_table.iter_mut().enumerate() {
                *slot = a * table.get(h * T5_BUCKETS + t5_bucket(BIAS_TABLE - 1 - t));
            }
            true
        }
        None => false,
    };

    // Rows of q/k/v are positions (stride B*width); this head's columns start here.
    let ld = d.batch() * width;
    let col0 = b * width + h * dh;
    if qt <= FEW_QUERIES {
        // The last few queries of a longer call: one query at a time, this head.
        for i in i0..i0 + qt {
            let (lo, hi) = match window {
                Some((offset, w)) => (i + offset - w, i + offset),
                None => (0, d.keys()),
            };
            let bias = biased.then_some(&*bias_table).zip(window.map(|(offset, _)| i + offset));
            let stats = (&mut row_max[..], &mut row_sum[..]);
            attend_query::<S>(c, i * ld + col0, col0, (lo, hi), &[a], bias, (scores, k_tile), stats, (acc, dh_pad));
            // SAFETY: as for the tiled path's output below.
            let dst = unsafe { core::slice::from_raw_parts_mut(c.out.0.add(i * ld + col0), dh) };
            dst.copy_from_slice(&acc[..dh]);
        }
        return;
    }
    pack_a::<S>(&c.q[col0..], ld, i0, qt, 0, dh, qpack);
    row_max[..qt].fill(SAFE_SOFTMAX_FLOOR);
    row_sum[..qt].fill(0.0);
    acc.fill(0.0);

    // Keys some query of the tile may see, and those row `i` of the tile sees.
    let visible = |first: usize, last: usize| match window {
        Some((offset, w)) => (i0 + first + offset - w, i0 + last + offset),
        None => (0, d.keys()),
    };
    let (key_lo, key_hi) = visible(0, qt - 1);
    let mut jt = key_lo;
    while jt < key_hi {
        let kt = k_tile.min(key_hi - jt);
        pack_b::<S>(BSource::OutIn(WSlice::F32(&c.k[col0..]), ld), 0, dh, jt, kt, kpack);
        pack_b::<S>(BSource::InOut(WSlice::F32(&c.v[col0..]), ld), jt, kt, 0, dh, vpack);
        for r0 in (0..qt).step_by(S::MR) {
            let r1 = (r0 + S::MR).min(qt);
            let (lo, _) = visible(r0, r0);
            let (_, hi) = visible(r1 - 1, r1 - 1);
            let (lo, hi) = (lo.max(jt), hi.min(jt + kt));
            if lo >= hi {
                continue; // nothing of this tile is visible to these rows
            }
            let (c_lo, c_hi) = (lo - jt, hi - jt);
            // Scores of the key panels the band touches.
            for cp in c_lo / S::NR..c_hi.div_ceil(S::NR) {
                // SAFETY: the Q panel holds `dh*MR` values at `r0*dh`, the K panel
                // `dh*NR` at `cp*dh*NR` (cp*NR < kt <= k_tile), and the scores tile
                // `MR x NR` at row r0 < q_tile (a multiple of MR, checked above),
                // column cp*NR + NR <= k_tile (a multiple of NR) with stride k_tile.
                unsafe {
                    S::micro(
                        dh,
                        qpack.as_ptr().add(r0 * dh),
                        kpack.as_ptr().add(cp * dh * S::NR),
                        scores.as_mut_ptr().add(r0 * k_tile + cp * S::NR),
                        k_tile,
                        Epilogue { alpha: 1.0, accumulate: false, relu: false },
                    );
                }
            }
            // Online softmax, row by row.
            for i in r0..r1 {
                let (vl, vh) = visible(i, i);
                let (vl, vh) = (vl.max(jt) - jt, vh.min(jt + kt).max(jt) - jt);
                let row = &mut scores[i * k_tile..][..k_tile];
                if vl >= vh {
                    row[c_lo..c_hi].fill(0.0);
                    continue;
                }
                let bias = match (biased, window) {
                    (true, Some((offset, _))) => Some((&*bias_table, i0 + i + offset - jt)),
                    _ => None,
                };
                let (max, sum) = (&mut row_max[i], &mut row_sum[i]);
                softmax_step::<S>(row, vl, vh, a, bias, max, sum, &mut acc[i * dh_pad..][..dh_pad]);
                row[c_lo..vl].fill(0.0);
                row[vh..c_hi].fill(0.0);
            }
            // P (rows r0.., keys c_lo..c_hi) as an A panel, then acc += P V.
            let kc = c_hi - c_lo;
            pack_panel::<S>(scores, k_tile, (r0, r1), (c_lo, kc), S::MR, ppack);
            for dp in 0..dh_pad / S::NR {
                // SAFETY: the P panel holds `kc*MR` values; the V panel `dp` starts
                // at `dp*kt*NR` and holds `kt*NR`, of which rows c_lo..c_hi are
                // read; the accumulator tile is rows r0 .. r0 + MR <= q_tile (a
                // multiple of MR), columns dp*NR + NR <= dh_pad, stride dh_pad.
                unsafe {
                    S::micro(
                        kc,
                        ppack.as_ptr(),
                        vpack.as_ptr().add((dp * kt + c_lo) * S::NR),
                        acc.as_mut_ptr().add(r0 * dh_pad + dp * S::NR),
                        dh_pad,
                        Epilogue { alpha: 1.0, accumulate: true, relu: false },
                    );
                }
            }
        }
        jt += kt;
    }
    for i in 0..qt {
        let denominator = row_sum[i] + exp::<S>(SAFE_SOFTMAX_FLOOR - row_max[i]);
        let inv = 1.0 / denominator;
        let src = &acc[i * dh_pad..][..dh];
        // SAFETY: query i0+i of row b, head h: `(i0+i)*ld + col0 + dh` is within the
        // output (checked by the backend against `query_len`), and this task is the
        // only one writing that (query, row, head).
        let dst = unsafe { core::slice::from_raw_parts_mut(c.out.0.add((i0 + i) * ld + col0), dh) };
        for (o, &s) in dst.iter_mut().zip(src) {
            *o = s * inv;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simd::SimdLevel;

    /// `group_capacity` is what keeps `attend_heads`'s guard unreached: a group one
    /// head too large for the scratch would leave its outputs unwritten. The
    /// conformance suite cannot see it: the backend's scratch is usually larger
    /// than the forward attention's (another kernel's need decides it), and its
    /// tile shapes are few. So every tile shape up to 8 x 8 micro-tiles and every
    /// head width up to 256 is checked here: the group fits, and one head more
    /// would not (or the group is at its cap).
    #[test]
    fn a_group_of_heads_fills_the_attention_scratch_and_never_overflows_it() {
        for level in SimdLevel::ALL {
            let (mr, nr) = level.micro_tile();
            for (q_tiles, k_tiles) in (1..=8).flat_map(|q| (1..=8).map(move |k| (q, k))) {
                let t =
                    Tiles { attention_queries: q_tiles * mr, attention_keys: k_tiles * nr, ..Tiles::smallest(level) };
                for max_dh in 1..=256 {
                    let room = scratch_len(&t, (mr, nr), max_dh);
                    let heads = group_capacity(&t, (mr, nr), max_dh);
                    // What `attend_heads` takes for `h` heads: per head a row of scores,
                    // the output accumulator, the running maximum and sum, the bias table.
                    let need = |h: usize| (h * (t.attention_keys + round_up(max_dh, nr) + 2 + BIAS_TABLE)) as u64;
                    let case = (level, q_tiles, k_tiles, max_dh); // micro-tiles of queries, of keys; head width
                    assert!((1..=GROUP_HEADS).contains(&heads), "{case:?}: {heads} heads");
                    assert!(
                        need(heads) <= room,
                        "{case:?}: {heads} heads need {}, the scratch holds {room}",
                        need(heads)
                    );
                    assert!(
                        heads == GROUP_HEADS || need(heads + 1) > room,
                        "{case:?}: {heads} heads, but {} fit in {room}",
                        heads + 1
                    );
                }
            }
        }
    }
}
