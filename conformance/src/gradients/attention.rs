//! `attention_backward` against the reference's: the sliding window with its T5
//! bias (whose gradient is per bucket), unmasked state attentions, `abs` scales,
//! and logits in the hundreds, below the safe-softmax floor, or around it (where
//! the floor's term `exp(-1000 - max)` shares the probability mass with the keys).

use super::kernels::normals;
use super::{against_reference, Grad, GradCase, Written};
use crate::backend::Backend;
use crate::checks::attention::{move_near_floor, window_mask, AttentionCase, Logits, MaskCase};
use crate::checks::kernels::pads;
use crate::failure::Failure;
use crate::gen::{head_dim, seed, Rng};
use crate::io::{call, tensor, weights};
use crate::runner::Options;
use crate::tolerance::Check;
use brt_core::params::T5_BUCKETS;
use brt_core::{Gradients, View, ViewMut, WeightDtype, WeightView};
use proptest::prelude::*;

/// One attention call and its backward.
#[derive(Clone, Debug)]
pub struct AttentionGradCase {
    /// The forward call (shapes, mask, bias, scale, logits, inputs).
    pub(crate) forward: AttentionCase,
    /// Moves the logits around the safe-softmax floor: scales of magnitude about 1
    /// and position biases about -1000 (needs a window mask and a bias).
    pub(crate) near_floor: bool,
    /// Head 0's scale is exactly 0: with `abs` scales `|a|` has no derivative
    /// there, and every backend takes the reference's 0.
    pub(crate) zero_scale: bool,
}

impl GradCase for AttentionGradCase {
    fn run<K: Gradients>(&self, k: &mut K, dtype: WeightDtype) -> Result<Vec<Written>, Failure> {
        let mut data = self.forward.data(dtype)?;
        let desc = data.desc;
        let heads = desc.heads();
        let mut rng = Rng::new(self.forward.seed ^ 0x6772_6164);
        if self.near_floor {
            move_near_floor(&mut data, &mut rng, dtype);
        }
        if self.zero_scale {
            data.scale.values[data.scale.offset] = 0.0;
        }
        let d_out = normals(&mut rng, desc.query_len(), 1.0);
        let grads: Vec<_> = [desc.query_len(), desc.key_len(), desc.key_len(), heads, heads * T5_BUCKETS]
            .iter()
            .map(|&len| normals(&mut rng, len, 1.0))
            .collect();

        let q = tensor(k, &data.q.values)?;
        let kt = tensor(k, &data.k.values)?;
        let v = tensor(k, &data.v.values)?;
        let s = weights(k, &data.scale.values, dtype)?;
        let b = match &data.bias {
            Some(b) => Some((weights(k, &b.values, dtype)?, b.offset)),
            None => None,
        };
        let dy = tensor(k, &d_out.values)?;
        let mut g_q = Grad::new(k, "attention query gradient", &grads[0], desc.query_len())?;
        let mut g_k = Grad::new(k, "attention key gradient", &grads[1], desc.key_len())?;
        let mut g_v = Grad::new(k, "attention value gradient", &grads[2], desc.key_len())?;
        let mut g_s = Grad::new(k, "attention scale gradient", &grads[3], heads)?;
        let mut g_b = Grad::new(k, "position bias gradient", &grads[4], heads * T5_BUCKETS)?;
        let biased = b.is_some();
        call(
            "attention_backward",
            k.attention_backward(
                View::new(&q, data.q.offset),
                View::new(&kt, data.k.offset),
                View::new(&v, data.v.offset),
                WeightView::new(&s, data.scale.offset),
                b.as_ref().map(|(t, offset)| WeightView::new(t, *offset)),
                View::new(&dy, d_out.offset),
                ViewMut::new(&mut g_q.t, g_q.offset),
                ViewMut::new(&mut g_k.t, g_k.offset),
                ViewMut::new(&mut g_v.t, g_v.offset),
                ViewMut::new(&mut g_s.t, g_s.offset),
                biased.then(|| ViewMut::new(&mut g_b.t, g_b.offset)),
                desc,
            ),
        )?;
        // The scale's gradient sums dlogit * (q.k + bias) over every visible pair:
        // its rounding grows with their number, and with biases near -1000 its
        // terms are that large while their sum is small. Worse, there every f32
        // logit x carries a rounding of about |x| 2^-24, which moves its pair's
        // dlogit by that much relative and the sum by |x| times it: an error of
        // about x^2 2^-24 per unit of |dlogit|, i.e. x^2 / 4096 in units of the
        // row's 5e-4 with a factor of 2 to spare (measured: with only the first
        // two factors, 7 of 18 CPU factories failed within 4,000 cases, all near
        // the floor, errors up to 0.03 on a gradient of 0.57).
        let pairs = (0..desc.queries()).map(|i| desc.visible_keys(i).len()).sum::<usize>() * desc.batch();
        let content = data
            .bias
            .as_ref()
            .map_or(0.0, |b| b.data(heads * T5_BUCKETS).iter().fold(0f32, |m, v| m.max(v.abs())) as f64);
        let d_scale = g_s.read(k)?;
        let largest =
            d_scale.values[d_scale.offset..d_scale.offset + heads].iter().fold(1f64, |m, v| m.max(v.abs() as f64));
        let growth = (1.0 + content / 100.0 + content * content / 4096.0) * ((pairs as f64).sqrt() / 16.0).max(1.0);
        let d_scale = d_scale.with_terms(largest * growth);
        // Without a bias, its gradient buffer is read back too: it must be untouched.
        Ok(vec![g_q.read(k)?, g_k.read(k)?, g_v.read(k)?, d_scale, g_b.read(k)?])
    }
}

fn case(
    mask: impl Strategy<Value = MaskCase>,
    bias: impl Strategy<Value = bool>,
    logits: impl Strategy<Value = (Logits, bool)>,
) -> impl Strategy<Value = AttentionGradCase> {
    let scales = (any::<bool>(), prop::bool::weighted(0.15));
    ((1usize..=3, 0usize..=5, 1usize..=3, head_dim()), (mask, bias, scales, logits), pads(), seed()).prop_map(
        |(
            (batch, queries, heads, head_dim),
            (mask, bias, (abs_scale, zero_scale), (logits, near_floor)),
            pads,
            seed,
        )| {
            let window = matches!(mask, MaskCase::Window { .. });
            // A position bias only exists with a window mask; below the floor it
            // would lift the logits back up; around the floor it is what puts them
            // there.
            let near_floor = near_floor && window;
            let bias = (bias && window && logits != Logits::BelowFloor) || near_floor;
            let forward = AttentionCase { batch, queries, heads, head_dim, mask, bias, abs_scale, logits, pads, seed };
            AttentionGradCase { forward, near_floor, zero_scale }
        },
    )
}

/// `attention_backward` with the sliding window against the reference: windows
/// of 1 to 40 (log T5 buckets), extra cached keys, several batch rows, one to
/// three heads, odd head widths, the T5 bias (its gradient per head and bucket)
/// on most cases, `abs` scales of either sign and of zero.
pub fn grad_attention_window<B: Backend>(k: &mut B::Kernels, options: &Options) -> Result<(), Failure>
where
    B::Kernels: Gradients,
{
    let strategy = case(window_mask(), prop::bool::weighted(0.8), Just((Logits::Normal, false)));
    against_reference::<B, _>(k, options, "grad_attention_window", 160, Check::GradAttention, strategy)
}

/// `attention_backward` without a mask (state attentions) against the reference:
/// one (S = 1) to nine keys.
pub fn grad_attention_full<B: Backend>(k: &mut B::Kernels, options: &Options) -> Result<(), Failure>
where
    B::Kernels: Gradients,
{
    let mask = (1usize..=9).prop_map(|keys| MaskCase::None { keys });
    let strategy = case(mask, Just(false), Just((Logits::Normal, false)));
    against_reference::<B, _>(k, options, "grad_attention_full", 96, Check::GradAttention, strategy)
}

/// `attention_backward` where the softmax is delicate, against the reference:
/// logits in the hundreds, all below the floor of -1000 (the gradients vanish
/// with the output), and around the floor (biases near -1000, scales of magnitude
/// about 1), where the floor's term competes with the keys for the probability
/// mass but adds nothing to the output.
pub fn grad_attention_large_logits<B: Backend>(k: &mut B::Kernels, options: &Options) -> Result<(), Failure>
where
    B::Kernels: Gradients,
{
    let mask = prop_oneof![window_mask(), (1usize..=9).prop_map(|keys| MaskCase::None { keys })];
    let logits = prop_oneof![
        1 => Just((Logits::Large, false)),
        1 => Just((Logits::BelowFloor, false)),
        2 => Just((Logits::Normal, true)),
    ];
    let strategy = case(mask, any::<bool>(), logits);
    against_reference::<B, _>(k, options, "grad_attention_large_logits", 128, Check::GradAttentionLargeLogits, strategy)
}
