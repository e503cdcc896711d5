//! `linear_attention_backward` against the reference's: from a zero or a warm
//! carried state (whose gradient after the call is turned into the gradient
//! before), several batch rows, odd head widths, `abs` scales, and blocks long
//! enough to cross a backend's chunks.

use super::kernels::normals;
use super::{against_reference, placed, Grad, GradCase, Written};
use crate::backend::Backend;
use crate::failure::Failure;
use crate::gen::{head_dim, seed, Rng};
use crate::io::{call, round_to, tensor, weights};
use crate::runner::Options;
use crate::tolerance::Check;
use brt_core::desc::LinearAttention;
use brt_core::{Gradients, View, ViewMut, WeightDtype, WeightView};
use proptest::prelude::*;

/// One linear attention call and its backward.
#[derive(Clone, Debug)]
pub struct LinearGradCase {
    pub(crate) batch: usize,
    pub(crate) tokens: usize,
    pub(crate) heads: usize,
    pub(crate) head_dim: usize,
    pub(crate) abs_scale: bool,
    /// Head 0's scale is exactly 0: with `abs` scales `|a|` has no derivative
    /// there, and every backend takes the reference's 0.
    pub(crate) zero_scale: bool,
    /// Activations times 3 instead of 1.
    pub(crate) large: bool,
    /// The carried sums start as those of an earlier (made-up) past, not zero.
    pub(crate) warm: bool,
    pub(crate) seed: u64,
}

impl GradCase for LinearGradCase {
    fn run<K: Gradients>(&self, k: &mut K, dtype: WeightDtype) -> Result<Vec<Written>, Failure> {
        let desc = LinearAttention::new(self.batch, self.tokens, self.heads, self.head_dim, self.abs_scale)?;
        let (n, heads, dh) = (desc.token_len(), self.heads, self.head_dim);
        let mut rng = Rng::new(self.seed);
        let f = if self.large { 3.0 } else { 1.0 };
        let q = normals(&mut rng, n, f);
        let kk = normals(&mut rng, n, f);
        let v = normals(&mut rng, n, f);
        let mut scale = placed(&mut rng, heads, |r| r.sign() * r.uniform(0.25, 4.0));
        round_to(dtype, &mut scale.values);
        if self.zero_scale {
            scale.values[scale.offset] = 0.0;
        }
        // Sums as a stream leaves them: sum(phi(k)^T v) of either sign, sum(phi(k))
        // positive, both growing with the number of past tokens.
        let (kv, per_row, warm) = (heads * dh * dh, desc.state_per_row(), self.warm);
        let past = 1.0 + rng.below(8) as f32;
        let mut index = 0;
        let state = placed(&mut rng, desc.state_len(), |r| {
            let i = index;
            index += 1;
            match (warm, i % per_row < kv) {
                (false, _) => 0.0,
                (true, true) => r.normal() * past,
                (true, false) => r.uniform(0.5, 2.0) * past,
            }
        });
        let d_out = normals(&mut rng, n, 1.0);
        let grads: Vec<_> = [desc.state_len(), n, n, n, heads].iter().map(|&len| normals(&mut rng, len, 1.0)).collect();

        let qt = tensor(k, &q.values)?;
        let kt = tensor(k, &kk.values)?;
        let vt = tensor(k, &v.values)?;
        let s = weights(k, &scale.values, dtype)?;
        let st = tensor(k, &state.values)?;
        let dy = tensor(k, &d_out.values)?;
        let mut g_state = Grad::new(k, "linear attention state gradient", &grads[0], desc.state_len())?;
        let mut g_q = Grad::new(k, "linear attention query gradient", &grads[1], n)?;
        let mut g_k = Grad::new(k, "linear attention key gradient", &grads[2], n)?;
        let mut g_v = Grad::new(k, "linear attention value gradient", &grads[3], n)?;
        let mut g_s = Grad::new(k, "linear attention scale gradient", &grads[4], heads)?;
        call(
            "linear_attention_backward",
            k.linear_attention_backward(
                View::new(&qt, q.offset),
                View::new(&kt, kk.offset),
                View::new(&vt, v.offset),
                WeightView::new(&s, scale.offset),
                View::new(&st, state.offset),
                View::new(&dy, d_out.offset),
                ViewMut::new(&mut g_state.t, g_state.offset),
                ViewMut::new(&mut g_q.t, g_q.offset),
                ViewMut::new(&mut g_k.t, g_k.offset),
                ViewMut::new(&mut g_v.t, g_v.offset),
                ViewMut::new(&mut g_s.t, g_s.offset),
                desc,
            ),
        )?;
        // The sums' gradient (and with it the keys', values' and scales') gathers
        // one term per later token, of either sign, and the queries' reads the
        // sums of every earlier token: their rounding grows with the square root
        // of the number of tokens while the result may cancel to a small value.
        let sums = (self.tokens.max(1) as f64).sqrt();
        let grown = |w: Written| {
            let largest = w.values[w.offset..w.offset + w.extent].iter().fold(1f64, |m, v| m.max(v.abs() as f64));
            w.with_terms(largest * sums)
        };
        Ok(vec![
            grown(g_state.read(k)?),
            grown(g_q.read(k)?),
            grown(g_k.read(k)?),
            grown(g_v.read(k)?),
            grown(g_s.read(k)?),
        ])
    }
}

/// Mostly short blocks (no tokens to 6) of any shape; one case in five a block of
/// 60 to 70 tokens (across a chunk of 64) with narrower heads, since the
/// reference recomputes the sums token by token. One case in four has
/// activations three times larger, from zero sums too: keys then put
/// `elu(k) + 1` near `e^-9` for the first tokens, which a backend that recovered
/// the sums in front of a chunk by subtracting the chunk's terms from the final
/// sums would lose to cancellation.
fn linear_case() -> impl Strategy<Value = LinearGradCase> {
    let short = ((1usize..=3, 0usize..=6, 1usize..=3, head_dim().boxed()), prop::bool::weighted(0.25));
    let long = ((Just(1usize), 60usize..=70, 1usize..=2, (1usize..=8).boxed()), prop::bool::weighted(0.25));
    let shape = prop_oneof![4 => short, 1 => long];
    (shape, (any::<bool>(), prop::bool::weighted(0.15), any::<bool>()), seed()).prop_map(
        |(((batch, tokens, heads, head_dim), large), (abs_scale, zero_scale, warm), seed)| LinearGradCase {
            batch,
            tokens,
            heads,
            head_dim,
            abs_scale,
            zero_scale,
            large,
            warm,
            seed,
        },
    )
}

/// `linear_attention_backward` against the reference: the carried sums' gradient
/// turned from after into before, query/key/value/scale gradients added, from a
/// zero or warm state, up to 70 tokens, `abs` scales of either sign and of zero.
pub fn grad_linear_attention<B: Backend>(k: &mut B::Kernels, options: &Options) -> Result<(), Failure>
where
    B::Kernels: Gradients,
{
    against_reference::<B, _>(k, options, "grad_linear_attention", 128, Check::GradLinearAttention, linear_case())
}
