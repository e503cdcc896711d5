//! The row-wise backward kernels against the reference's: embedding, RMS norm,
//! position rows, l2 normalisation, the gates, and the two gradient copies
//! (`add_assign`, `gather_runs_add`).
//!
//! Every gradient buffer starts from random values (the kernels add into them,
//! or turn the gradient after an in-place forward into the gradient before) at a
//! random offset inside junk padding that must stay untouched.

use super::{against_reference, placed, Grad, GradCase, Written};
use crate::backend::Backend;
use crate::failure::Failure;
use crate::gen::{head_dim, magnitude, seed, Magnitude, Placed, Rng};
use crate::io::{call, round_to, tensor, tokens, weights};
use crate::runner::Options;
use crate::tolerance::Check;
use brt_core::desc::{Embed, Heads, Positions, Rows, Strided};
use brt_core::{Gradients, View, ViewMut, WeightDtype, WeightView};
use proptest::prelude::*;

/// Parameter values: `extent` normal values times `scale`, rounded to `dtype`.
pub(crate) fn param(rng: &mut Rng, extent: usize, scale: f32, dtype: WeightDtype) -> Placed {
    let mut p = placed(rng, extent, |r| r.normal() * scale);
    round_to(dtype, &mut p.values);
    p
}

/// Normal values times `scale` at a random offset.
pub(crate) fn normals(rng: &mut Rng, extent: usize, scale: f32) -> Placed {
    placed(rng, extent, |r| r.normal() * scale)
}

/// `embed_backward`: rows of the output gradient added to the table rows of their
/// ids (repeated ids add up).
#[derive(Clone, Debug)]
pub struct EmbedGradCase {
    pub(crate) count: usize,
    pub(crate) vocab: usize,
    pub(crate) dim: usize,
    pub(crate) seed: u64,
}

impl GradCase for EmbedGradCase {
    fn run<K: Gradients>(&self, k: &mut K, _dtype: WeightDtype) -> Result<Vec<Written>, Failure> {
        let (n, v, d) = (self.count, self.vocab, self.dim);
        let mut rng = Rng::new(self.seed);
        let (before, after) = (super::pad(&mut rng), super::pad(&mut rng));
        let ids = rng.tokens(before + n + after, v);
        let d_out = normals(&mut rng, n * d, 1.0);
        let d_table = normals(&mut rng, v * d, 1.0);
        let ids = tokens(k, &ids)?;
        let d_out_t = tensor(k, &d_out.values)?;
        let mut g = Grad::new(k, "embedding table gradient", &d_table, v * d)?;
        call(
            "embed_backward",
            k.embed_backward(
                &ids,
                before,
                View::new(&d_out_t, d_out.offset),
                ViewMut::new(&mut g.t, g.offset),
                Embed::new(n, v, d)?,
            ),
        )?;
        Ok(vec![g.read(k)?])
    }
}

/// `embed_backward` against the reference: up to 40 ids over vocabularies of 1
/// to 9 (many repeats), odd widths, token offsets.
pub fn grad_embed<B: Backend>(k: &mut B::Kernels, options: &Options) -> Result<(), Failure>
where
    B::Kernels: Gradients,
{
    let count = prop_oneof![3 => 0usize..=9, 1 => 10usize..=40];
    let strategy = (count, 1usize..=9, 1usize..=17, seed()).prop_map(|(count, vocab, dim, seed)| EmbedGradCase {
        count,
        vocab,
        dim,
        seed,
    });
    against_reference::<B, _>(k, options, "grad_embed", 96, Check::GradEmbed, strategy)
}

/// `rms_norm_backward`: input and scale gradients added.
#[derive(Clone, Debug)]
pub struct RmsNormGradCase {
    pub(crate) rows: usize,
    pub(crate) dim: usize,
    pub(crate) magnitude: Magnitude,
    pub(crate) seed: u64,
}

impl GradCase for RmsNormGradCase {
    fn run<K: Gradients>(&self, k: &mut K, dtype: WeightDtype) -> Result<Vec<Written>, Failure> {
        let (rows, d) = (self.rows, self.dim);
        let mut rng = Rng::new(self.seed);
        let f = self.magnitude.factor();
        let mut x = normals(&mut rng, rows * d, f);
        if rows > 1 && rng.chance(0.3) {
            // An all-zero row: only the epsilon keeps the norm finite.
            let row = rng.below(rows);
            x.data_mut(rows * d)[row * d..(row + 1) * d].fill(0.0);
        }
        let scale = param(&mut rng, d, 1.5, dtype);
        let d_out = normals(&mut rng, rows * d, 1.0);
        let d_x = normals(&mut rng, rows * d, 1.0);
        let d_scale = normals(&mut rng, d, 1.0);
        let xt = tensor(k, &x.values)?;
        let s = weights(k, &scale.values, dtype)?;
        let dy = tensor(k, &d_out.values)?;
        let mut gx = Grad::new(k, "rms_norm input gradient", &d_x, rows * d)?;
        let mut gs = Grad::new(k, "rms_norm scale gradient", &d_scale, d)?;
        call(
            "rms_norm_backward",
            k.rms_norm_backward(
                View::new(&xt, x.offset),
                WeightView::new(&s, scale.offset),
                View::new(&dy, d_out.offset),
                ViewMut::new(&mut gx.t, gx.offset),
                ViewMut::new(&mut gs.t, gs.offset),
                Rows::new(rows, d)?,
            ),
        )?;
        let (terms_x, terms_scale) = rms_norm_terms(x.data(rows * d), scale.data(d), d_out.data(rows * d), d);
        Ok(vec![gx.read(k)?.with_terms(terms_x), gs.read(k)?.with_terms(terms_scale)])
    }
}

/// The largest terms of `rms_norm_backward` (input gradient, scale gradient): per
/// row, with `r = 1/rms(x)`, `d_x = r dy s - x r^3 (dy s . x) / d` is a difference
/// of two terms that nearly cancel when `x` is small against the epsilon, and
/// `d_scale` sums `dy x r` over rows.
fn rms_norm_terms(x: &[f32], scale: &[f32], dy: &[f32], dim: usize) -> (f64, f64) {
    let (mut terms_x, mut per_col) = (0f64, vec![0f64; dim]);
    for (xr, dr) in x.chunks_exact(dim).zip(dy.chunks_exact(dim)) {
        let mean = xr.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() / dim as f64;
        let r = 1.0 / (mean + brt_core::primitives::RMS_EPSILON as f64).sqrt();
        let t: f64 = (0..dim).map(|c| (dr[c] as f64 * scale[c] as f64 * xr[c] as f64).abs()).sum();
        for c in 0..dim {
            let first = r * (dr[c] as f64 * scale[c] as f64).abs();
            let second = (xr[c] as f64).abs() * r * r * r * t / dim as f64;
            terms_x = terms_x.max(first.max(second));
            per_col[c] += (dr[c] as f64 * xr[c] as f64 * r).abs();
        }
    }
    (terms_x, per_col.into_iter().fold(0.0, f64::max))
}

/// `rms_norm_backward` against the reference: widths 1 to 33, tiny to large
/// inputs, zero rows (epsilon), negative scales, no rows.
pub fn grad_rms_norm<B: Backend>(k: &mut B::Kernels, options: &Options) -> Result<(), Failure>
where
    B::Kernels: Gradients,
{
    let strategy = (0usize..=6, 1usize..=33, magnitude(), seed())
        .prop_map(|(rows, dim, magnitude, seed)| RmsNormGradCase { rows, dim, magnitude, seed });
    against_reference::<B, _>(k, options, "grad_rms_norm", 128, Check::GradRmsNorm, strategy)
}

/// `add_positions_backward`: per position, the sum over batch rows of the
/// gradient added to the table row.
#[derive(Clone, Debug)]
pub struct AddPositionsGradCase {
    pub(crate) positions: usize,
    pub(crate) batch: usize,
    pub(crate) dim: usize,
    pub(crate) seed: u64,
}

impl GradCase for AddPositionsGradCase {
    fn run<K: Gradients>(&self, k: &mut K, _dtype: WeightDtype) -> Result<Vec<Written>, Failure> {
        let (n, b, d) = (self.positions, self.batch, self.dim);
        let mut rng = Rng::new(self.seed);
        let d_x = normals(&mut rng, n * b * d, 1.0);
        let d_table = normals(&mut rng, n * d, 1.0);
        let dx = tensor(k, &d_x.values)?;
        let mut g = Grad::new(k, "position table gradient", &d_table, n * d)?;
        call(
            "add_positions_backward",
            k.add_positions_backward(
                View::new(&dx, d_x.offset),
                ViewMut::new(&mut g.t, g.offset),
                Positions::new(n, b, d)?,
            ),
        )?;
        Ok(vec![g.read(k)?])
    }
}

/// `add_positions_backward` against the reference: several batch rows per
/// position, no positions.
pub fn grad_add_positions<B: Backend>(k: &mut B::Kernels, options: &Options) -> Result<(), Failure>
where
    B::Kernels: Gradients,
{
    let strategy = (0usize..=5, 1usize..=3, 1usize..=17, seed())
        .prop_map(|(positions, batch, dim, seed)| AddPositionsGradCase { positions, batch, dim, seed });
    against_reference::<B, _>(k, options, "grad_add_positions", 96, Check::GradAddPositions, strategy)
}

/// `l2_normalize_backward`: the gradient after the in-place normalisation turned
/// into the gradient before.
#[derive(Clone, Debug)]
pub struct L2GradCase {
    pub(crate) rows: usize,
    pub(crate) heads: usize,
    pub(crate) head_dim: usize,
    pub(crate) magnitude: Magnitude,
    pub(crate) seed: u64,
}

impl GradCase for L2GradCase {
    fn run<K: Gradients>(&self, k: &mut K, _dtype: WeightDtype) -> Result<Vec<Written>, Failure> {
        let desc = Heads::new(self.rows, self.heads, self.head_dim)?;
        let mut rng = Rng::new(self.seed);
        let mut x = normals(&mut rng, desc.len(), self.magnitude.factor());
        if !desc.is_empty() && rng.chance(0.3) {
            // A zero head: the epsilon keeps its norm positive.
            let head = rng.below(self.rows * self.heads);
            x.data_mut(desc.len())[head * self.head_dim..(head + 1) * self.head_dim].fill(0.0);
        }
        let d_x = normals(&mut rng, desc.len(), 1.0);
        let xt = tensor(k, &x.values)?;
        let mut g = Grad::new(k, "l2_normalize gradient", &d_x, desc.len())?;
        call(
            "l2_normalize_backward",
            k.l2_normalize_backward(View::new(&xt, x.offset), ViewMut::new(&mut g.t, g.offset), desc),
        )?;
        let terms = l2_terms(x.data(desc.len()), d_x.data(desc.len()), self.head_dim);
        Ok(vec![g.read(k)?.with_terms(terms)])
    }
}

/// The largest terms of `l2_normalize_backward`: per head, with
/// `n = sqrt(x.x + eps)`, `dx = dy / n - x (x.dy) / n^3`, two terms that nearly
/// cancel when `dy` is parallel to `x`, and are large when `n` is small.
fn l2_terms(x: &[f32], dy: &[f32], head_dim: usize) -> f64 {
    let mut terms = 0f64;
    for (xh, dh) in x.chunks_exact(head_dim).zip(dy.chunks_exact(head_dim)) {
        let n =
            (xh.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() + brt_core::primitives::L2_EPSILON as f64).sqrt();
        let t: f64 = xh.iter().zip(dh).map(|(&a, &b)| (a as f64 * b as f64).abs()).sum();
        for (&a, &b) in xh.iter().zip(dh) {
            terms = terms.max((b as f64).abs() / n).max((a as f64).abs() * t / (n * n * n));
        }
    }
    terms
}

/// `l2_normalize_backward` against the reference: one to three heads, odd head
/// widths, zero heads, tiny and large values.
pub fn grad_l2_normalize<B: Backend>(k: &mut B::Kernels, options: &Options) -> Result<(), Failure>
where
    B::Kernels: Gradients,
{
    let strategy = (0usize..=6, 1usize..=3, head_dim(), magnitude(), seed())
        .prop_map(|(rows, heads, head_dim, magnitude, seed)| L2GradCase { rows, heads, head_dim, magnitude, seed });
    against_reference::<B, _>(k, options, "grad_l2_normalize", 128, Check::GradL2Normalize, strategy)
}

/// `add_assign` (`dst += src`), `gather_runs_add` (the backward of
/// `copy_weights`) and `copy_to_tape` (`dst = src`) in one case.
#[derive(Clone, Debug)]
pub struct CopiesGradCase {
    pub(crate) len: usize,
    pub(crate) count: usize,
    pub(crate) run: usize,
    pub(crate) gap: usize,
    pub(crate) seed: u64,
}

impl GradCase for CopiesGradCase {
    fn run<K: Gradients>(&self, k: &mut K, _dtype: WeightDtype) -> Result<Vec<Written>, Failure> {
        let mut rng = Rng::new(self.seed);
        let runs = Strided::new(self.count, self.run, self.run + self.gap)?;
        let src = normals(&mut rng, self.len, 1.0);
        let dst = normals(&mut rng, self.len, 1.0);
        let d_dst = normals(&mut rng, runs.extent(), 1.0);
        let d_src = normals(&mut rng, runs.total(), 1.0);
        let saved = normals(&mut rng, self.len, 1.0);
        let s = tensor(k, &src.values)?;
        let mut g = Grad::new(k, "add_assign destination", &dst, self.len)?;
        call("add_assign", k.add_assign(View::new(&s, src.offset), ViewMut::new(&mut g.t, g.offset), self.len))?;
        let dd = tensor(k, &d_dst.values)?;
        let mut gs = Grad::new(k, "gather_runs_add destination", &d_src, runs.total())?;
        call(
            "gather_runs_add",
            k.gather_runs_add(View::new(&dd, d_dst.offset), ViewMut::new(&mut gs.t, gs.offset), runs),
        )?;
        let mut tape = Grad::new(k, "copy_to_tape destination", &saved, self.len)?;
        call(
            "copy_to_tape",
            k.copy_to_tape(View::new(&s, src.offset), ViewMut::new(&mut tape.t, tape.offset), self.len),
        )?;
        Ok(vec![g.read(k)?, gs.read(k)?, tape.read(k)?])
    }
}

/// `add_assign`, `gather_runs_add` and `copy_to_tape` against the reference:
/// strided runs with gaps, empty runs, lengths past a few vectors from any
/// alignment (a streaming copy's aligned middle and plain ends); exact (one
/// addition or copy per element).
pub fn grad_copies<B: Backend>(k: &mut B::Kernels, options: &Options) -> Result<(), Failure>
where
    B::Kernels: Gradients,
{
    let strategy = ((0usize..=80, 0usize..=4, 0usize..=5, 0usize..=3), seed())
        .prop_map(|((len, count, run, gap), seed)| CopiesGradCase { len, count, run, gap, seed });
    against_reference::<B, _>(k, options, "grad_copies", 96, Check::GradCopies, strategy)
}

/// How far gate pre-activations go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GateInputs {
    /// About 1: both terms matter.
    Ordinary,
    /// Magnitudes 20 to 100 of either sign: the sigmoids saturate.
    Saturated,
    /// Some of each.
    Mixed,
}

fn gate_value(rng: &mut Rng, inputs: GateInputs) -> f32 {
    let saturated = match inputs {
        GateInputs::Ordinary => false,
        GateInputs::Saturated => true,
        GateInputs::Mixed => rng.chance(0.5),
    };
    if saturated {
        rng.sign() * rng.uniform(20.0, 100.0)
    } else {
        rng.normal() * 1.5
    }
}

/// `gate_fixed_backward` or `gate_lstm_backward`: the state's gradient turned from
/// after into before, the others added.
#[derive(Clone, Debug)]
pub struct GateGradCase {
    pub(crate) rows: usize,
    pub(crate) dim: usize,
    pub(crate) lstm: bool,
    pub(crate) inputs: GateInputs,
    pub(crate) seed: u64,
}

impl GradCase for GateGradCase {
    fn run<K: Gradients>(&self, k: &mut K, dtype: WeightDtype) -> Result<Vec<Written>, Failure> {
        let (n, d) = (self.rows * self.dim, self.dim);
        let rows = Rows::new(self.rows, d)?;
        let mut rng = Rng::new(self.seed);
        let inputs = self.inputs;
        let state = normals(&mut rng, n, 1.0);
        let z = normals(&mut rng, n, 2.0);
        let forget = placed(&mut rng, n, |r| gate_value(r, inputs));
        let input = placed(&mut rng, n, |r| gate_value(r, inputs));
        let mut bias = placed(&mut rng, d, |r| gate_value(r, inputs));
        round_to(dtype, &mut bias.values);
        let input_bias = param(&mut rng, d, 0.5, dtype);
        let grads: Vec<Placed> = [n, n, n, n, d, d].iter().map(|&len| normals(&mut rng, len, 1.0)).collect();

        let s = tensor(k, &state.values)?;
        let zt = tensor(k, &z.values)?;
        let b = weights(k, &bias.values, dtype)?;
        let mut g_state = Grad::new(k, "gated state gradient", &grads[0], n)?;
        let mut g_z = Grad::new(k, "gate update gradient", &grads[1], n)?;
        if self.lstm {
            let f = tensor(k, &forget.values)?;
            let i = tensor(k, &input.values)?;
            let bi = weights(k, &input_bias.values, dtype)?;
            let mut g_f = Grad::new(k, "forget gate gradient", &grads[2], n)?;
            let mut g_i = Grad::new(k, "input gate gradient", &grads[3], n)?;
            let mut g_bf = Grad::new(k, "forget bias gradient", &grads[4], d)?;
            let mut g_bi = Grad::new(k, "input bias gradient", &grads[5], d)?;
            call(
                "gate_lstm_backward",
                k.gate_lstm_backward(
                    View::new(&s, state.offset),
                    View::new(&zt, z.offset),
                    View::new(&f, forget.offset),
                    View::new(&i, input.offset),
                    WeightView::new(&b, bias.offset),
                    WeightView::new(&bi, input_bias.offset),
                    ViewMut::new(&mut g_state.t, g_state.offset),
                    ViewMut::new(&mut g_z.t, g_z.offset),
                    ViewMut::new(&mut g_f.t, g_f.offset),
                    ViewMut::new(&mut g_i.t, g_i.offset),
                    ViewMut::new(&mut g_bf.t, g_bf.offset),
                    ViewMut::new(&mut g_bi.t, g_bi.offset),
                    rows,
                ),
            )?;
            Ok(vec![g_state.read(k)?, g_z.read(k)?, g_f.read(k)?, g_i.read(k)?, g_bf.read(k)?, g_bi.read(k)?])
        } else {
            let mut g_b = Grad::new(k, "gate bias gradient", &grads[4], d)?;
            call(
                "gate_fixed_backward",
                k.gate_fixed_backward(
                    View::new(&s, state.offset),
                    View::new(&zt, z.offset),
                    WeightView::new(&b, bias.offset),
                    ViewMut::new(&mut g_state.t, g_state.offset),
                    ViewMut::new(&mut g_z.t, g_z.offset),
                    ViewMut::new(&mut g_b.t, g_b.offset),
                    rows,
                ),
            )?;
            Ok(vec![g_state.read(k)?, g_z.read(k)?, g_b.read(k)?])
        }
    }
}

fn gate_case(lstm: bool) -> impl Strategy<Value = GateGradCase> {
    let inputs =
        prop_oneof![2 => Just(GateInputs::Ordinary), 1 => Just(GateInputs::Saturated), 1 => Just(GateInputs::Mixed)];
    (0usize..=6, 1usize..=17, inputs, seed()).prop_map(move |(rows, dim, inputs, seed)| GateGradCase {
        rows,
        dim,
        lstm,
        inputs,
        seed,
    })
}

/// `gate_fixed_backward` against the reference, biases from ordinary to
/// saturated.
pub fn grad_gate_fixed<B: Backend>(k: &mut B::Kernels, options: &Options) -> Result<(), Failure>
where
    B::Kernels: Gradients,
{
    against_reference::<B, _>(k, options, "grad_gate_fixed", 128, Check::GradGates, gate_case(false))
}

/// `gate_lstm_backward` against the reference (the +1/-1 offsets of the forget
/// and input gates), products from ordinary to saturated.
pub fn grad_gate_lstm<B: Backend>(k: &mut B::Kernels, options: &Options) -> Result<(), Failure>
where
    B::Kernels: Gradients,
{
    against_reference::<B, _>(k, options, "grad_gate_lstm", 128, Check::GradGates, gate_case(true))
}
