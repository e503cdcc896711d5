//! `matmul_backward` against the reference's: both weight orders, scale,
//! accumulation, ReLU and tanh (their derivative read from the forward's
//! output), either gradient alone or both.

use super::kernels::{normals, param};
use super::{against_reference, Grad, GradCase, Written};
use crate::backend::Backend;
use crate::checks::kernels::{activation, Alpha};
use crate::failure::Failure;
use crate::gen::{seed, Rng};
use crate::io::{call, read, tensor, weights};
use crate::runner::Options;
use crate::tolerance::Check;
use brt_core::desc::{Activation, Matmul};
use brt_core::{Gradients, Kernels, Reference, View, ViewMut, WeightDtype, WeightView};
use brt_cpu::Heap;
use proptest::prelude::*;

/// Which parameter gradients a call asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wants {
    /// `d_x` and `d_w` (what training asks for).
    Both,
    /// `d_x` only (a frozen weight).
    Input,
    /// `d_w` only (the first layer: no gradient for the embeddings' rows).
    Weight,
}

/// One product and its backward.
#[derive(Clone, Debug)]
pub struct MatmulGradCase {
    pub(crate) m: usize,
    pub(crate) k: usize,
    pub(crate) n: usize,
    pub(crate) transposed: bool,
    pub(crate) alpha: Alpha,
    pub(crate) accumulate: bool,
    pub(crate) activation: Activation,
    pub(crate) wants: Wants,
    /// Inputs of about 1e-4 instead of 1.
    pub(crate) tiny: bool,
    pub(crate) seed: u64,
}

impl GradCase for MatmulGradCase {
    fn run<K: Gradients>(&self, k: &mut K, dtype: WeightDtype) -> Result<Vec<Written>, Failure> {
        let (m, kk, n) = (self.m, self.k, self.n);
        let mut rng = Rng::new(self.seed);
        let x = normals(&mut rng, m * kk, if self.tiny { 1e-4 } else { 1.0 });
        let w = param(&mut rng, kk * n, 1.0 / (kk as f32).sqrt(), dtype);
        let mut out = normals(&mut rng, m * n, 1.0);
        let alpha = self.alpha.value(&mut rng);
        let mut desc = Matmul::new(m, kk, n)?.alpha(alpha).activation(self.activation);
        if self.transposed {
            desc = desc.transposed_weight();
        }
        if self.accumulate {
            desc = desc.accumulate();
        }
        // The forward's result, as the reference computes it, is the `out` every
        // backend's backward reads (the activation's derivative comes from it).
        {
            let r = &mut Reference::new(Heap);
            let (xr, wr) = (tensor(r, &x.values)?, weights(r, &w.values, dtype)?);
            let mut o = tensor(r, &out.values)?;
            call(
                "reference matmul",
                r.matmul(
                    View::new(&xr, x.offset),
                    WeightView::new(&wr, w.offset),
                    ViewMut::new(&mut o, out.offset),
                    desc,
                ),
            )?;
            out.values = read(r, &o)?;
        }
        let d_out = normals(&mut rng, m * n, 1.0);
        let d_x = normals(&mut rng, m * kk, 1.0);
        let d_w = normals(&mut rng, kk * n, 1.0);

        let xt = tensor(k, &x.values)?;
        let wt = weights(k, &w.values, dtype)?;
        let ot = tensor(k, &out.values)?;
        let mut g_out = Grad::new(k, "matmul output gradient (becomes d_z)", &d_out, m * n)?;
        let mut g_x = Grad::new(k, "matmul input gradient", &d_x, m * kk)?;
        let mut g_w = Grad::new(k, "matmul weight gradient", &d_w, kk * n)?;
        let want_x = self.wants != Wants::Weight;
        let want_w = self.wants != Wants::Input;
        call(
            "matmul_backward",
            k.matmul_backward(
                View::new(&xt, x.offset),
                WeightView::new(&wt, w.offset),
                View::new(&ot, out.offset),
                ViewMut::new(&mut g_out.t, g_out.offset),
                want_x.then(|| ViewMut::new(&mut g_x.t, g_x.offset)),
                want_w.then(|| ViewMut::new(&mut g_w.t, g_w.offset)),
                desc,
            ),
        )?;
        // A gradient not asked for is read back too: it must be untouched.
        Ok(vec![g_out.read(k)?, g_x.read(k)?, g_w.read(k)?])
    }
}

fn matmul_case() -> impl Strategy<Value = MatmulGradCase> {
    let (alpha, activation) = (Alpha::strategy(), activation());
    let wants = prop_oneof![4 => Just(Wants::Both), 1 => Just(Wants::Input), 1 => Just(Wants::Weight)];
    let rows = prop_oneof![3 => 0usize..=7, 1 => 8usize..=40];
    let inner = prop_oneof![3 => 1usize..=17, 1 => 18usize..=70];
    (
        (rows, inner, 1usize..=17, any::<bool>()),
        (alpha, any::<bool>(), activation, wants, prop::bool::weighted(0.15)),
        seed(),
    )
        .prop_map(|((m, k, n, transposed), (alpha, accumulate, activation, wants, tiny), seed)| MatmulGradCase {
            m,
            k,
            n,
            transposed,
            alpha,
            accumulate,
            activation,
            wants,
            tiny,
            seed,
        })
}

/// `matmul_backward` against the reference: both weight orders, scale (incl.
/// `1/sqrt(V)` and negative), accumulation, ReLU and tanh, `d_x` or `d_w` alone,
/// no rows, inner dimensions 1 to 70, up to 40 rows.
pub fn grad_matmul<B: Backend>(k: &mut B::Kernels, options: &Options) -> Result<(), Failure>
where
    B::Kernels: Gradients,
{
    against_reference::<B, _>(k, options, "grad_matmul", 192, Check::GradMatmul, matmul_case())
}
