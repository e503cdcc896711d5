//! The row-wise kernels against the reference: embedding gather, RMS norm,
//! position rows, l2 normalisation, dense products and the copies.
//!
//! Every buffer is placed at a random offset inside a larger one whose padding
//! holds junk; the whole buffer is read back, so a kernel that touches anything
//! outside its extent fails too.

use super::{against_reference, KernelCase};
use crate::backend::Backend;
use crate::failure::Failure;
use crate::gen::{magnitude, pad, seed, Magnitude, Rng};
use crate::io::{call, read, round_to, tensor, tokens, weights};
use crate::runner::Options;
use crate::tolerance::Check;
use brt_core::desc::{Activation, Embed, Heads, Matmul, Positions, Rows, Strided};
use brt_core::{Kernels, View, ViewMut, WeightDtype, WeightView};
use proptest::prelude::*;

/// Offsets and tails of up to four buffers of one call.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pads {
    pub before: [usize; 4],
    pub after: [usize; 4],
}

pub(crate) fn pads() -> impl Strategy<Value = Pads> {
    ([pad(), pad(), pad(), pad()], [pad(), pad(), pad(), pad()]).prop_map(|(before, after)| Pads { before, after })
}

/// Parameters drawn like trained ones: normal, rounded to the storage type.
pub(crate) fn param_values(
    rng: &mut Rng,
    pad: usize,
    extent: usize,
    tail: usize,
    scale: f32,
    dtype: WeightDtype,
) -> crate::gen::Placed {
    let mut p = rng.placed(pad, extent, tail, |r| r.normal() * scale);
    round_to(dtype, &mut p.values);
    p
}

/// `embed`: rows of a table gathered by token id.
#[derive(Clone, Debug)]
pub struct EmbedCase {
    count: usize,
    vocab: usize,
    dim: usize,
    pads: Pads,
    seed: u64,
}

impl KernelCase for EmbedCase {
    fn run<K: Kernels>(&self, k: &mut K, dtype: WeightDtype) -> Result<Vec<(&'static str, Vec<f32>)>, Failure> {
        let (n, v, d, p) = (self.count, self.vocab, self.dim, self.pads);
        let mut rng = Rng::new(self.seed);
        let ids: Vec<u32> = rng.tokens(p.before[0] + n + p.after[0], v);
        let table = param_values(&mut rng, p.before[1], v * d, p.after[1], 1.0, dtype);
        let out = rng.placed(p.before[2], n * d, p.after[2], |r| r.normal());
        let ids = tokens(k, &ids)?;
        let table = weights(k, &table.values, dtype)?;
        let mut o = tensor(k, &out.values)?;
        call(
            "embed",
            k.embed(
                &ids,
                p.before[0],
                WeightView::new(&table, p.before[1]),
                ViewMut::new(&mut o, out.offset),
                Embed::new(n, v, d)?,
            ),
        )?;
        Ok(vec![("embed output", read(k, &o)?)])
    }
}

fn embed_case() -> impl Strategy<Value = EmbedCase> {
    (0usize..=9, 1usize..=9, 1usize..=17, pads(), seed()).prop_map(|(count, vocab, dim, pads, seed)| EmbedCase {
        count,
        vocab,
        dim,
        pads,
        seed,
    })
}

/// `embed` against the reference: edge sizes (one id, vocabulary of one, odd
/// widths), random offsets; exact.
pub fn embed<B: Backend>(k: &mut B::Kernels, options: &Options) -> Result<(), Failure> {
    against_reference::<B, _>(k, options, "embed", 128, Check::Embed, embed_case())
}

/// `rms_norm` on rows of any magnitude, some all zero, with partly negative scales.
#[derive(Clone, Debug)]
pub struct RmsNormCase {
    rows: usize,
    dim: usize,
    magnitude: Magnitude,
    pads: Pads,
    seed: u64,
}

impl KernelCase for RmsNormCase {
    fn run<K: Kernels>(&self, k: &mut K, dtype: WeightDtype) -> Result<Vec<(&'static str, Vec<f32>)>, Failure> {
        let (rows, d, p) = (self.rows, self.dim, self.pads);
        let mut rng = Rng::new(self.seed);
        let f = self.magnitude.factor();
        let mut x = rng.placed(p.before[0], rows * d, p.after[0], |r| r.normal() * f);
        if rows > 1 && rng.chance(0.3) {
            // An all-zero row: only the epsilon keeps the norm finite.
            let row = rng.below(rows);
            x.data_mut(rows * d)[row * d..(row + 1) * d].fill(0.0);
        }
        let scale = param_values(&mut rng, p.before[1], d, p.after[1], 1.5, dtype);
        let out = rng.placed(p.before[2], rows * d, p.after[2], |r| r.normal());
        let xt = tensor(k, &x.values)?;
        let s = weights(k, &scale.values, dtype)?;
        let mut o = tensor(k, &out.values)?;
        call(
            "rms_norm",
            k.rms_norm(
                View::new(&xt, x.offset),
                WeightView::new(&s, scale.offset),
                ViewMut::new(&mut o, out.offset),
                Rows::new(rows, d)?,
            ),
        )?;
        Ok(vec![("rms_norm output", read(k, &o)?)])
    }
}

/// `rms_norm` against the reference: widths 1 to 33, tiny to large inputs, zero
/// rows (epsilon), negative scales.
pub fn rms_norm<B: Backend>(k: &mut B::Kernels, options: &Options) -> Result<(), Failure> {
    let strategy = (0usize..=6, 1usize..=33, magnitude(), pads(), seed())
        .prop_map(|(rows, dim, magnitude, pads, seed)| RmsNormCase { rows, dim, magnitude, pads, seed });
    against_reference::<B, _>(k, options, "rms_norm", 256, Check::RmsNorm, strategy)
}

/// `add_positions`: one table row per position, added to every batch row.
#[derive(Clone, Debug)]
pub struct AddPositionsCase {
    positions: usize,
    batch: usize,
    dim: usize,
    pads: Pads,
    seed: u64,
}

impl KernelCase for AddPositionsCase {
    fn run<K: Kernels>(&self, k: &mut K, dtype: WeightDtype) -> Result<Vec<(&'static str, Vec<f32>)>, Failure> {
        let (n, b, d, p) = (self.positions, self.batch, self.dim, self.pads);
        let mut rng = Rng::new(self.seed);
        let x = rng.placed(p.before[0], n * b * d, p.after[0], |r| r.normal());
        let table = param_values(&mut rng, p.before[1], n * d, p.after[1], 1.0, dtype);
        let mut xt = tensor(k, &x.values)?;
        let t = weights(k, &table.values, dtype)?;
        call(
            "add_positions",
            k.add_positions(
                ViewMut::new(&mut xt, x.offset),
                WeightView::new(&t, table.offset),
                Positions::new(n, b, d)?,
            ),
        )?;
        Ok(vec![("add_positions result", read(k, &xt)?)])
    }
}

/// `add_positions` against the reference (state ids): several batch rows per
/// position; exact.
pub fn add_positions<B: Backend>(k: &mut B::Kernels, options: &Options) -> Result<(), Failure> {
    let strategy = (0usize..=5, 1usize..=3, 1usize..=17, pads(), seed())
        .prop_map(|(positions, batch, dim, pads, seed)| AddPositionsCase { positions, batch, dim, pads, seed });
    against_reference::<B, _>(k, options, "add_positions", 128, Check::AddPositions, strategy)
}

/// `l2_normalize` in place, per head.
#[derive(Clone, Debug)]
pub struct L2Case {
    rows: usize,
    heads: usize,
    head_dim: usize,
    magnitude: Magnitude,
    pads: Pads,
    seed: u64,
}

impl KernelCase for L2Case {
    fn run<K: Kernels>(&self, k: &mut K, _dtype: WeightDtype) -> Result<Vec<(&'static str, Vec<f32>)>, Failure> {
        let desc = Heads::new(self.rows, self.heads, self.head_dim)?;
        let mut rng = Rng::new(self.seed);
        let f = self.magnitude.factor();
        let mut x = rng.placed(self.pads.before[0], desc.len(), self.pads.after[0], |r| r.normal() * f);
        if !desc.is_empty() && rng.chance(0.3) {
            // A zero head: the epsilon keeps it at zero instead of NaN.
            let head = rng.below(self.rows * self.heads);
            x.data_mut(desc.len())[head * self.head_dim..(head + 1) * self.head_dim].fill(0.0);
        }
        let mut xt = tensor(k, &x.values)?;
        call("l2_normalize", k.l2_normalize(ViewMut::new(&mut xt, x.offset), desc))?;
        Ok(vec![("l2_normalize result", read(k, &xt)?)])
    }
}

/// `l2_normalize` against the reference: one or several heads, head widths not
/// multiples of the vector width, zero heads, tiny and large values.
pub fn l2_normalize<B: Backend>(k: &mut B::Kernels, options: &Options) -> Result<(), Failure> {
    let strategy = (0usize..=6, 1usize..=3, crate::gen::head_dim(), magnitude(), pads(), seed()).prop_map(
        |(rows, heads, head_dim, magnitude, pads, seed)| L2Case { rows, heads, head_dim, magnitude, pads, seed },
    );
    against_reference::<B, _>(k, options, "l2_normalize", 256, Check::L2Normalize, strategy)
}

/// The scale of a product.
#[derive(Clone, Copy, Debug)]
pub enum Alpha {
    /// 1.
    One,
    /// `1/sqrt(V)` as in the tied output layer.
    InverseSqrt(usize),
    /// Any value in `[-2, 2)`.
    Any,
}

impl Alpha {
    /// The scale itself (`Any` draws it from `rng`).
    pub(crate) fn value(self, rng: &mut Rng) -> f32 {
        match self {
            Alpha::One => 1.0,
            Alpha::InverseSqrt(v) => 1.0 / (v as f32).sqrt(),
            Alpha::Any => rng.uniform(-2.0, 2.0),
        }
    }

    /// Mostly 1, else `1/sqrt(V)` for V up to 300 or any value.
    pub(crate) fn strategy() -> impl Strategy<Value = Alpha> {
        prop_oneof![2 => Just(Alpha::One), 1 => (1usize..=300).prop_map(Alpha::InverseSqrt), 1 => Just(Alpha::Any)]
    }
}

/// Mostly the identity, else ReLU or tanh.
pub(crate) fn activation() -> impl Strategy<Value = Activation> {
    prop_oneof![2 => Just(Activation::Identity), 1 => Just(Activation::Relu), 1 => Just(Activation::Tanh)]
}

/// `matmul` with every option of the descriptor.
#[derive(Clone, Debug)]
pub struct MatmulCase {
    m: usize,
    k: usize,
    n: usize,
    transposed: bool,
    alpha: Alpha,
    accumulate: bool,
    activation: Activation,
    tiny: bool,
    pads: Pads,
    seed: u64,
}

impl KernelCase for MatmulCase {
    fn run<K: Kernels>(&self, k: &mut K, dtype: WeightDtype) -> Result<Vec<(&'static str, Vec<f32>)>, Failure> {
        let (m, kk, n, p) = (self.m, self.k, self.n, self.pads);
        let mut rng = Rng::new(self.seed);
        let f = if self.tiny { 1e-4 } else { 1.0 };
        let x = rng.placed(p.before[0], m * kk, p.after[0], |r| r.normal() * f);
        let w = param_values(&mut rng, p.before[1], kk * n, p.after[1], 1.0 / (kk as f32).sqrt(), dtype);
        let out = rng.placed(p.before[2], m * n, p.after[2], |r| r.normal());
        let alpha = self.alpha.value(&mut rng);
        let mut desc = Matmul::new(m, kk, n)?.alpha(alpha).activation(self.activation);
        if self.transposed {
            desc = desc.transposed_weight();
        }
        if self.accumulate {
            desc = desc.accumulate();
        }
        let xt = tensor(k, &x.values)?;
        let wt = weights(k, &w.values, dtype)?;
        let mut o = tensor(k, &out.values)?;
        call(
            "matmul",
            k.matmul(View::new(&xt, x.offset), WeightView::new(&wt, w.offset), ViewMut::new(&mut o, out.offset), desc),
        )?;
        Ok(vec![("matmul output", read(k, &o)?)])
    }
}

fn matmul_case() -> impl Strategy<Value = MatmulCase> {
    let (alpha, activation) = (Alpha::strategy(), activation());
    let inner = prop_oneof![3 => 1usize..=17, 1 => 18usize..=70];
    // Sometimes more rows and columns than a micro-tile (up to 12 x 32): the
    // CPU backend's smallest tiles pack that many per block.
    let rows = prop_oneof![3 => 0usize..=7, 1 => 8usize..=13];
    let cols = prop_oneof![3 => 1usize..=17, 1 => 18usize..=33];
    // And a few shapes across the default blocking: more rows than a block of
    // `A` (144) and a longer inner dimension than a `B` panel (256 steps with
    // AVX2 and NEON, 512 with AVX-512); one-row products wider than their column
    // run (4096, `Tiles::gemv_columns`); and products (5 rows or more: not the
    // one-row path) that fill a whole packed block of `B`, a panel deep and
    // `gemm_nc` (4096) wide: at the default tiles that block is the largest
    // scratch a CPU thread has, so only these cases hold its size to account.
    let deep = prop_oneof![250usize..=300, 500usize..=560];
    let shape = prop_oneof![
        30 => (rows, inner, cols),
        1 => (143usize..=150, deep.clone(), 1usize..=40),
        1 => (1usize..=4, 1usize..=8, 4090usize..=4200),
        1 => (5usize..=9, deep, 4090usize..=4200),
    ];
    let shape = (shape, any::<bool>()).prop_map(|((m, k, n), transposed)| (m, k, n, transposed));
    (shape, (alpha, any::<bool>(), activation, prop::bool::weighted(0.15)), pads(), seed()).prop_map(
        |((m, k, n, transposed), (alpha, accumulate, activation, tiny), pads, seed)| MatmulCase {
            m,
            k,
            n,
            transposed,
            alpha,
            accumulate,
            activation,
            tiny,
            pads,
            seed,
        },
    )
}

/// `matmul` against the reference: both weight orders, scale, accumulation,
/// ReLU and tanh, inner dimensions 1 to 70, no rows; a few shapes across the
/// CPU backend's default blocking (up to 150 rows, inner 560, 4200 columns,
/// and up to 9 x 560 x 4200 at once).
pub fn matmul<B: Backend>(k: &mut B::Kernels, options: &Options) -> Result<(), Failure> {
    against_reference::<B, _>(k, options, "matmul", 256, Check::Matmul, matmul_case())
}

/// `copy`, `fill` and `copy_weights` in one case.
#[derive(Clone, Debug)]
pub struct CopyCase {
    len: usize,
    count: usize,
    run: usize,
    gap: usize,
    pads: Pads,
    seed: u64,
}

impl KernelCase for CopyCase {
    fn run<K: Kernels>(&self, k: &mut K, dtype: WeightDtype) -> Result<Vec<(&'static str, Vec<f32>)>, Failure> {
        let p = self.pads;
        let mut rng = Rng::new(self.seed);
        let runs = Strided::new(self.count, self.run, self.run + self.gap)?;
        let src = rng.placed(p.before[0], self.len, p.after[0], |r| r.normal());
        let dst = rng.placed(p.before[1], self.len, p.after[1], |r| r.normal());
        let filled = rng.placed(p.before[2], runs.extent(), p.after[2], |r| r.normal());
        let wsrc = param_values(&mut rng, p.before[3], runs.total(), p.after[3], 1.0, dtype);
        let spread = rng.placed(p.before[2], runs.extent(), p.after[3], |r| r.normal());
        let value = rng.normal();

        let s = tensor(k, &src.values)?;
        let mut d = tensor(k, &dst.values)?;
        call("copy", k.copy(View::new(&s, src.offset), ViewMut::new(&mut d, dst.offset), self.len))?;
        let mut fl = tensor(k, &filled.values)?;
        call("fill", k.fill(ViewMut::new(&mut fl, filled.offset), runs, value))?;
        let ws = weights(k, &wsrc.values, dtype)?;
        let mut sp = tensor(k, &spread.values)?;
        call(
            "copy_weights",
            k.copy_weights(WeightView::new(&ws, wsrc.offset), ViewMut::new(&mut sp, spread.offset), runs),
        )?;
        Ok(vec![
            ("copy destination", read(k, &d)?),
            ("fill destination", read(k, &fl)?),
            ("copy_weights destination", read(k, &sp)?),
        ])
    }
}

/// `copy`, `fill` and `copy_weights` against the reference: strided runs with
/// gaps that must stay untouched, empty runs; exact.
pub fn copies<B: Backend>(k: &mut B::Kernels, options: &Options) -> Result<(), Failure> {
    let strategy = ((0usize..=20, 0usize..=4, 0usize..=5, 0usize..=3), pads(), seed())
        .prop_map(|((len, count, run, gap), pads, seed)| CopyCase { len, count, run, gap, pads, seed });
    against_reference::<B, _>(k, options, "copies", 128, Check::Copy, strategy)
}
