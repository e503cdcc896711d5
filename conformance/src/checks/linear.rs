//! Linear attention (SPEC 7): against the reference's token-by-token recurrent
//! form, and on the backend itself, one block in one call against the same tokens
//! fed in pieces (down to one token per call) with the state carried between.

use super::kernels::{pads, Pads};
use super::{against_reference, KernelCase};
use crate::backend::Backend;
use crate::failure::Failure;
use crate::gen::{head_dim, seed, Placed, Rng};
use crate::io::{call, read, round_to, tensor, weights};
use crate::runner::{run_cases, Options};
use crate::tolerance::{compare, tolerance, Check};
use brt_core::desc::LinearAttention;
use brt_core::{Kernels, Reference, View, ViewMut, WeightDtype, WeightView};
use brt_cpu::Heap;
use proptest::prelude::*;
use std::cell::RefCell;

/// One linear attention call (or the same tokens in pieces).
#[derive(Clone, Debug)]
pub struct LinearCase {
    batch: usize,
    tokens: usize,
    heads: usize,
    head_dim: usize,
    abs_scale: bool,
    /// Activations times 3 instead of 1.
    large: bool,
    /// The carried state starts as sums of an earlier (made-up) past, not zero.
    warm: bool,
    pads: Pads,
    seed: u64,
    /// Bit `t - 1` set: a call boundary before token `t` (for the split check).
    cuts: u32,
}

struct LinearData {
    q: Placed,
    k: Placed,
    v: Placed,
    scale: Placed,
    state: Placed,
    out: Placed,
}

impl LinearCase {
    fn desc(&self, tokens: usize) -> Result<LinearAttention, Failure> {
        Ok(LinearAttention::new(self.batch, tokens, self.heads, self.head_dim, self.abs_scale)?)
    }

    /// Whether element `i` of the carried state is one of the `(H, dh, dh)` sums
    /// `phi(k)^T v` (else one of the `(H, dh)` normalizer sums `phi(k)`).
    fn in_sums(&self, desc: &LinearAttention, i: usize) -> bool {
        i % desc.state_per_row() < self.heads * self.head_dim * self.head_dim
    }

    fn data(&self, dtype: WeightDtype) -> Result<LinearData, Failure> {
        let desc = self.desc(self.tokens)?;
        let p = self.pads;
        let mut rng = Rng::new(self.seed);
        let f = if self.large { 3.0 } else { 1.0 };
        let n = desc.token_len();
        let q = rng.placed(p.before[0], n, p.after[0], |r| r.normal() * f);
        let k = rng.placed(p.before[1], n, p.after[1], |r| r.normal() * f);
        let v = rng.placed(p.before[2], n, p.after[2], |r| r.normal() * f);
        let mut scale = rng.placed(p.before[3], self.heads, p.after[3], |r| r.sign() * r.uniform(0.25, 4.0));
        round_to(dtype, &mut scale.values);
        // A warm state: sum(phi(k)^T v) of unit size per past token, sum(phi(k)) > 0.
        let past = 1.0 + rng.below(8) as f32;
        let warm = self.warm;
        let mut state = rng.placed(p.before[0], desc.state_len(), p.after[0], |_| 0.0);
        for (i, s) in state.data_mut(desc.state_len()).iter_mut().enumerate() {
            *s = match (warm, self.in_sums(&desc, i)) {
                (false, _) => 0.0,
                (true, true) => rng.normal() * past,
                (true, false) => rng.uniform(0.5, 2.0) * past,
            };
        }
        let out = rng.placed(p.before[1], n, p.after[1], |r| r.normal());
        Ok(LinearData { q, k, v, scale, state, out })
    }

    /// Runs the tokens in the calls given by `pieces` (token ranges); returns the
    /// output and the state buffers.
    fn run_pieces<K: Kernels>(
        &self,
        k: &mut K,
        d: &LinearData,
        dtype: WeightDtype,
        pieces: &[(usize, usize)],
    ) -> Result<(Vec<f32>, Vec<f32>), Failure> {
        let q = tensor(k, &d.q.values)?;
        let kt = tensor(k, &d.k.values)?;
        let v = tensor(k, &d.v.values)?;
        let s = weights(k, &d.scale.values, dtype)?;
        let mut state = tensor(k, &d.state.values)?;
        let mut out = tensor(k, &d.out.values)?;
        let row = self.batch * self.heads * self.head_dim;
        for &(start, end) in pieces {
            let at = start * row;
            call(
                "linear_attention",
                k.linear_attention(
                    View::new(&q, d.q.offset + at),
                    View::new(&kt, d.k.offset + at),
                    View::new(&v, d.v.offset + at),
                    WeightView::new(&s, d.scale.offset),
                    ViewMut::new(&mut state, d.state.offset),
                    ViewMut::new(&mut out, d.out.offset + at),
                    self.desc(end - start)?,
                ),
            )?;
        }
        Ok((read(k, &out)?, read(k, &state)?))
    }

    /// The call boundaries of `cuts` (its 32 bits repeat along longer cases).
    fn pieces(&self) -> Vec<(usize, usize)> {
        let mut pieces = Vec::new();
        let mut start = 0;
        for t in 1..self.tokens {
            if self.cuts & (1 << ((t - 1) % 32)) != 0 {
                pieces.push((start, t));
                start = t;
            }
        }
        if start < self.tokens || self.tokens == 0 {
            pieces.push((start, self.tokens));
        }
        pieces
    }
}

impl KernelCase for LinearCase {
    fn run<K: Kernels>(&self, k: &mut K, dtype: WeightDtype) -> Result<Vec<(&'static str, Vec<f32>)>, Failure> {
        let data = self.data(dtype)?;
        let (out, state) = self.run_pieces(k, &data, dtype, &[(0, self.tokens)])?;
        Ok(vec![("linear attention output", out), ("linear attention state", state)])
    }

    /// The state sums `phi(k_j)^T v_j` over up to 140 tokens onto the carried
    /// state, and positive and negative terms cancel: an element of a few
    /// hundredths can be the sum of terms of several units, and rounding follows
    /// the terms. Their magnitudes are the same call on `|v|` and `|S|` (`phi` and
    /// the normalizer are positive), on the reference; for the outputs, the same
    /// run's numerators over the same positive denominators.
    fn terms(&self, dtype: WeightDtype) -> Result<Option<Vec<Vec<f32>>>, Failure> {
        let mut data = self.data(dtype)?;
        let desc = self.desc(self.tokens)?;
        let n = desc.token_len();
        data.v.data_mut(n).iter_mut().for_each(|x| *x = x.abs());
        for (i, s) in data.state.data_mut(desc.state_len()).iter_mut().enumerate() {
            if self.in_sums(&desc, i) {
                *s = s.abs();
            }
        }
        let (mut out, mut state) = self.run_pieces(&mut Reference::new(Heap), &data, dtype, &[(0, self.tokens)])?;
        zero_outside(&mut out, data.out.offset, n);
        zero_outside(&mut state, data.state.offset, desc.state_len());
        Ok(Some(vec![out, state]))
    }
}

/// Zeroes `values` outside `offset .. offset + extent` (the padding has no terms).
fn zero_outside(values: &mut [f32], offset: usize, extent: usize) {
    values[..offset].fill(0.0);
    values[offset + extent..].fill(0.0);
}

fn case(max_tokens: usize) -> impl Strategy<Value = LinearCase> {
    // Rarely more tokens than the CPU backend's chunk (64), in one call or two.
    let tokens = prop_oneof![15 => 0..=max_tokens, 1 => 60usize..=140];
    (
        (1usize..=3, tokens, 1usize..=3, head_dim()),
        (any::<bool>(), prop::bool::weighted(0.25), any::<bool>()),
        pads(),
        seed(),
        any::<u32>(),
    )
        .prop_map(|((batch, tokens, heads, head_dim), (abs_scale, large, warm), pads, seed, cuts)| LinearCase {
            batch,
            tokens,
            heads,
            head_dim,
            abs_scale,
            large,
            warm,
            pads,
            seed,
            cuts,
        })
}

/// `linear_attention` against the reference: output and updated state, from a
/// zero or a warm state, several batch rows, odd head widths, `abs` scales.
pub fn linear_attention<B: Backend>(k: &mut B::Kernels, options: &Options) -> Result<(), Failure> {
    against_reference::<B, _>(k, options, "linear_attention", 192, Check::LinearAttention, case(6))
}

/// Property: linear attention over a block in one call (which a backend may
/// compute in the chunked form `phi(Q)(phi(K)^T V)` with a causal intra-block
/// part) equals the same tokens fed in arbitrary pieces, down to one token per
/// call (the recurrent form), with the state carried between calls.
pub fn linear_chunked_equals_recurrent<B: Backend>(k: &mut B::Kernels, options: &Options) -> Result<(), Failure> {
    let dtype = B::weight_dtype();
    let tol = tolerance(Check::LinearSplit, dtype);
    let k = RefCell::new(k);
    let strategy = (case(12), any::<bool>()).prop_map(|(mut case, one_by_one)| {
        if one_by_one {
            case.cuts = u32::MAX;
        }
        case
    });
    run_cases("linear_chunked_equals_recurrent", 128, options, strategy, |case| {
        let k = &mut **k.borrow_mut();
        let data = case.data(dtype)?;
        let (block_out, block_state) = case.run_pieces(k, &data, dtype, &[(0, case.tokens)])?;
        let (split_out, split_state) = case.run_pieces(k, &data, dtype, &case.pieces())?;
        compare("linear attention output, in pieces vs in one call", &split_out, &block_out, tol)?;
        compare("linear attention state, in pieces vs in one call", &split_state, &block_state, tol)
    })
}
