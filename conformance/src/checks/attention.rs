//! Softmax attention against the reference: the sliding window with its T5 bias
//! (bias before the scale, the window that excludes the query's own key), the
//! unmasked state attentions, and logits large enough to overflow a naive softmax
//! or below the safe-softmax floor or around it.

use super::kernels::{pads, param_values, Pads};
use super::{against_reference, KernelCase};
use crate::backend::Backend;
use crate::failure::Failure;
use crate::gen::{head_dim, seed, Rng};
use crate::io::{call, read, round_to, tensor, weights};
use crate::runner::Options;
use crate::tolerance::Check;
use brt_core::desc::{Attention, Mask};
use brt_core::params::T5_BUCKETS;
use brt_core::primitives::SAFE_SOFTMAX_FLOOR;
use brt_core::{Kernels, View, ViewMut, WeightDtype, WeightView};
use proptest::prelude::*;

/// How large the logits `a * (q.k + bias)` are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Logits {
    /// Normalised queries and keys, scales in `[0.5, 8]` (either sign): as in the
    /// model.
    Normal,
    /// Raw queries and keys of norm 2 to 6: logits in the hundreds, which overflow
    /// `exp` in f32 unless the maximum is subtracted.
    Large,
    /// Every logit below -1000: the safe softmax's floor term dominates and the
    /// output is (almost) zero.
    BelowFloor,
    /// Scales of magnitude about 1 and position biases within 4 of the floor of
    /// -1000 (window masks, which have the bias): the floor's term
    /// `exp(-1000 - max)` competes with the keys' for the probability mass.
    NearFloor,
}

/// Which keys are visible.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaskCase {
    /// All of `keys` keys.
    None {
        /// Key positions.
        keys: usize,
    },
    /// The sliding window: `offset = window + extra_offset` cached keys in front,
    /// `extra_keys` keys past the last query's own.
    Window {
        /// `W`.
        window: usize,
        /// Cached keys beyond `W`.
        extra_offset: usize,
        /// Keys after the last query's own position.
        extra_keys: usize,
    },
}

/// One attention call.
#[derive(Clone, Debug)]
pub struct AttentionCase {
    pub(crate) batch: usize,
    pub(crate) queries: usize,
    pub(crate) heads: usize,
    pub(crate) head_dim: usize,
    pub(crate) mask: MaskCase,
    pub(crate) bias: bool,
    pub(crate) abs_scale: bool,
    pub(crate) logits: Logits,
    pub(crate) pads: Pads,
    pub(crate) seed: u64,
}

/// Host values of one attention call.
pub(crate) struct AttentionData {
    pub desc: Attention,
    pub q: crate::gen::Placed,
    pub k: crate::gen::Placed,
    pub v: crate::gen::Placed,
    pub scale: crate::gen::Placed,
    pub bias: Option<crate::gen::Placed>,
    pub out: crate::gen::Placed,
}

/// Scales each head of each row of `x` to unit norm, then by `norm(rng)`.
fn normalize_heads(x: &mut [f32], head_dim: usize, rng: &mut Rng, mut norm: impl FnMut(&mut Rng) -> f32) {
    for head in x.chunks_exact_mut(head_dim) {
        let n = head.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-3);
        let target = norm(rng);
        head.iter_mut().for_each(|v| *v *= target / n);
    }
}

impl AttentionCase {
    pub(crate) fn desc(&self) -> Result<Attention, Failure> {
        let (keys, mask) = match self.mask {
            MaskCase::None { keys } => (keys, Mask::None),
            MaskCase::Window { window, extra_offset, extra_keys } => {
                let offset = window + extra_offset;
                (offset + self.queries + extra_keys, Mask::Window { offset, window })
            }
        };
        Ok(Attention::new(self.batch, self.queries, keys, self.heads, self.head_dim, mask, self.abs_scale)?)
    }

    pub(crate) fn data(&self, dtype: WeightDtype) -> Result<AttentionData, Failure> {
        let desc = self.desc()?;
        let (dh, p) = (self.head_dim, self.pads);
        let mut rng = Rng::new(self.seed);
        let mut q = rng.placed(p.before[0], desc.query_len(), p.after[0], |r| r.normal());
        let mut k = rng.placed(p.before[1], desc.key_len(), p.after[1], |r| r.normal());
        let v = rng.placed(p.before[2], desc.key_len(), p.after[2], |r| r.normal());
        let (ql, kl) = (desc.query_len(), desc.key_len());
        let mut scale = rng.placed(0, self.heads, p.after[3], |r| r.sign() * r.uniform(0.5, 8.0));
        match self.logits {
            Logits::Normal | Logits::NearFloor => {
                normalize_heads(q.data_mut(ql), dh, &mut rng, |_| 1.0);
                normalize_heads(k.data_mut(kl), dh, &mut rng, |_| 1.0);
            }
            Logits::Large => {
                normalize_heads(q.data_mut(ql), dh, &mut rng, |r| r.uniform(2.0, 6.0));
                normalize_heads(k.data_mut(kl), dh, &mut rng, |r| r.uniform(2.0, 6.0));
            }
            Logits::BelowFloor => {
                // Per (row, head) one direction u: queries near u, keys near -u, and
                // a scale of 1500 to 3000, so every logit is about -scale.
                let width = desc.width();
                for b in 0..desc.batch() {
                    for h in 0..desc.heads() {
                        let u: Vec<f32> = rng.normals(dh, 1.0);
                        let at = |pos: usize| (pos * desc.batch() + b) * width + h * dh;
                        for i in 0..desc.queries() {
                            let row = &mut q.data_mut(ql)[at(i)..at(i) + dh];
                            for (x, &ux) in row.iter_mut().zip(&u) {
                                *x = ux + 0.02 * rng.normal();
                            }
                        }
                        for j in 0..desc.keys() {
                            let row = &mut k.data_mut(kl)[at(j)..at(j) + dh];
                            for (x, &ux) in row.iter_mut().zip(&u) {
                                *x = -ux + 0.02 * rng.normal();
                            }
                        }
                    }
                }
                normalize_heads(q.data_mut(ql), dh, &mut rng, |_| 1.0);
                normalize_heads(k.data_mut(kl), dh, &mut rng, |_| 1.0);
                for s in scale.data_mut(self.heads) {
                    let sign = if self.abs_scale { rng.sign() } else { 1.0 };
                    *s = sign * rng.uniform(1500.0, 3000.0);
                }
            }
        }
        crate::io::round_to(dtype, &mut scale.values);
        let bias = if self.bias {
            let spread = rng.uniform(0.2, 3.0);
            Some(param_values(&mut rng, p.before[3], self.heads * T5_BUCKETS, 0, spread, dtype))
        } else {
            None
        };
        let out = rng.placed(p.before[0], desc.query_len(), p.after[0], |r| r.normal());
        let mut data = AttentionData { desc, q, k, v, scale, bias, out };
        if self.logits == Logits::NearFloor {
            move_near_floor(&mut data, &mut rng, dtype);
        }
        Ok(data)
    }
}

/// Moves the logits of `d` around the safe-softmax floor: scales of magnitude
/// about 1 (either sign for `abs` scales) and position biases within 4 of -1000.
pub(crate) fn move_near_floor(d: &mut AttentionData, rng: &mut Rng, dtype: WeightDtype) {
    let heads = d.desc.heads();
    for s in d.scale.data_mut(heads) {
        let sign = if d.desc.abs_scale() { rng.sign() } else { 1.0 };
        *s = sign * rng.uniform(0.995, 1.005);
    }
    round_to(dtype, &mut d.scale.values);
    if let Some(bias) = d.bias.as_mut() {
        for b in bias.data_mut(heads * T5_BUCKETS) {
            *b = SAFE_SOFTMAX_FLOOR + rng.uniform(-4.0, 4.0);
        }
        round_to(dtype, &mut bias.values);
    }
}

/// Runs an attention call on `k` with host data `d`; returns the output buffer.
pub(crate) fn run_attention<K: Kernels>(k: &mut K, d: &AttentionData, dtype: WeightDtype) -> Result<Vec<f32>, Failure> {
    let q = tensor(k, &d.q.values)?;
    let kt = tensor(k, &d.k.values)?;
    let v = tensor(k, &d.v.values)?;
    let s = weights(k, &d.scale.values, dtype)?;
    let b = match &d.bias {
        Some(b) => Some((weights(k, &b.values, dtype)?, b.offset)),
        None => None,
    };
    let mut o = tensor(k, &d.out.values)?;
    call(
        "attention",
        k.attention(
            View::new(&q, d.q.offset),
            View::new(&kt, d.k.offset),
            View::new(&v, d.v.offset),
            WeightView::new(&s, d.scale.offset),
            b.as_ref().map(|(t, off)| WeightView::new(t, *off)),
            ViewMut::new(&mut o, d.out.offset),
            d.desc,
        ),
    )?;
    read(k, &o)
}

impl KernelCase for AttentionCase {
    fn run<K: Kernels>(&self, k: &mut K, dtype: WeightDtype) -> Result<Vec<(&'static str, Vec<f32>)>, Failure> {
        let data = self.data(dtype)?;
        Ok(vec![("attention output", run_attention(k, &data, dtype)?)])
    }
}

/// A window mask: mostly small windows, sometimes long ones that reach the
/// logarithmic T5 buckets (distances 16 and up).
pub(crate) fn window_mask() -> impl Strategy<Value = MaskCase> {
    // Rarely about as long as the CPU backend's default key tiles (192 keys in
    // the backward, 384 in the forward), so that some queries see one tile and
    // others two.
    let window = prop_oneof![16 => 1usize..=6, 4 => 14usize..=40, 1 => 188usize..=200, 1 => 380usize..=392];
    (window, 0usize..=2, 0usize..=2).prop_map(|(window, extra_offset, extra_keys)| MaskCase::Window {
        window,
        extra_offset,
        extra_keys,
    })
}

fn case(
    mask: impl Strategy<Value = MaskCase>,
    bias: impl Strategy<Value = bool>,
    logits: impl Strategy<Value = Logits>,
) -> impl Strategy<Value = AttentionCase> {
    // Sometimes more queries than a micro-tile has rows (4 to 12): the CPU
    // backend's smallest tiles take that many per task; rarely about its
    // default query tile (192).
    let queries = prop_oneof![16 => 0usize..=5, 4 => 6usize..=13, 1 => 188usize..=200];
    // Sometimes more heads than the CPU's one-query path takes in one group (8).
    let heads = prop_oneof![6 => 1usize..=3, 1 => 4usize..=11];
    ((1usize..=3, queries, heads, head_dim()), (mask, bias, any::<bool>(), logits), pads(), seed()).prop_map(
        |((batch, queries, heads, head_dim), (mask, bias, abs_scale, logits), pads, seed)| {
            // A position bias only exists with a window mask; below the floor the
            // bias would lift logits back up, so that case has none; around the
            // floor it is what puts them there.
            let window = matches!(mask, MaskCase::Window { .. });
            let logits = if logits == Logits::NearFloor && !window { Logits::Normal } else { logits };
            let bias = (bias && window && logits != Logits::BelowFloor) || logits == Logits::NearFloor;
            AttentionCase { batch, queries, heads, head_dim, mask, bias, abs_scale, logits, pads, seed }
        },
    )
}

/// Windowed attention (token self-attention) against the reference: windows of 1
/// to 40 (rarely 200), up to 13 queries (rarely 110), extra cached keys, several batch rows, one to three heads
/// (sometimes up to 11), odd head
/// widths, the T5 bias (before the scale) on most cases, `abs` scales.
pub fn attention_window<B: Backend>(k: &mut B::Kernels, options: &Options) -> Result<(), Failure> {
    let strategy = case(window_mask(), prop::bool::weighted(0.8), Just(Logits::Normal));
    against_reference::<B, _>(k, options, "attention_window", 256, Check::AttentionWindow, strategy)
}

/// Unmasked attention (the state attentions and cross-attentions) against the
/// reference: from a single key (S = 1) to nine, sometimes to 40 (more than a
/// micro-tile has columns: the CPU backend's smallest key tiles).
pub fn attention_full<B: Backend>(k: &mut B::Kernels, options: &Options) -> Result<(), Failure> {
    let keys = prop_oneof![3 => 1usize..=9, 1 => 10usize..=40];
    let mask = keys.prop_map(|keys| MaskCase::None { keys });
    let strategy = case(mask, Just(false), Just(Logits::Normal));
    against_reference::<B, _>(k, options, "attention_full", 128, Check::AttentionFull, strategy)
}

/// Softmax stability against the reference: logits in the hundreds (a softmax
/// without the maximum subtracted overflows), logits all below the official
/// floor of -1000 (the extra `exp(-1000 - max)` term makes the output vanish)
/// and logits around it with a window mask (the term shares the probability mass
/// with the keys; without a window mask these cases are plain ones).
pub fn attention_large_logits<B: Backend>(k: &mut B::Kernels, options: &Options) -> Result<(), Failure> {
    let mask = prop_oneof![window_mask(), (1usize..=9).prop_map(|keys| MaskCase::None { keys })];
    let logits = prop_oneof![Just(Logits::Large), Just(Logits::BelowFloor), Just(Logits::NearFloor)];
    let strategy = case(mask, any::<bool>(), logits);
    against_reference::<B, _>(k, options, "attention_large_logits", 192, Check::AttentionLargeLogits, strategy)
}
