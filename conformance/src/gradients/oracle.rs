//! The oracle checked: the f64 reference's backward kernels against central
//! finite differences of its forward kernels, and its whole-model gradients (by
//! `brt::autodiff::Recorder`) against central finite differences of the loss,
//! all in f64 (`brt_core::Reference64`).
//!
//! For a forward `out = f(inputs)` and random directions `g`, the backward must
//! give the gradient of `L = g . out` with respect to every input (for in-place
//! kernels, with respect to the value before; linear attention's loss also has a
//! term `g_state . state_after`). Gradient buffers start from random values and
//! the check subtracts them, so the backward must add into them.
//!
//! Each element is perturbed by `eps = 1e-6 (1 + |x|)` and `eps / 2` (central
//! differences, Richardson-extrapolated; models: central differences at `eps`).
//! Where the loss has a
//! kink inside `[x - eps, x + eps]` (a ReLU argument near zero) the one-sided
//! differences disagree and the element is left out (at most half of them).
//! These checks are about the oracle, not a backend: they take no kernels.

use super::models::{grad_model_case, reference_gradient, segment};
use crate::checks::models::{upload_model, Variant};
use crate::failure::Failure;
use crate::gen::{seed, Rng};
use crate::io::call;
use crate::runner::{run_cases, Options};
use crate::tolerance::{compare_f64, tolerance, Check, Tolerance};
use brt_core::desc::{Activation, Attention, Embed, Heads, LinearAttention, Mask, Matmul, Positions, Rows, Strided};
use brt_core::params::T5_BUCKETS;
use brt_core::{
    CoreError, GateKind, Gradients, Kernels, Plan, RefWeights, Reference64, StateLayout, Storage, Stream, View,
    ViewMut, WeightDtype, WeightView,
};
use brt_cpu::{Heap, SharedBytes};
use proptest::prelude::*;

/// The f64 reference.
type K64 = Reference64<Heap>;
/// One of its buffers.
type T64 = <K64 as Storage>::Tensor;

/// A loss of the inputs of a finite-difference problem (each input a vector).
type Loss<'a> = dyn Fn(&[Vec<f64>]) -> Result<f64, Failure> + 'a;

/// A check of the oracle.
pub type OracleFn = fn(&Options) -> Result<(), Failure>;

/// Runs `f` on a fresh f64 reference; its errors are failures of the oracle.
fn run64<T>(f: impl FnOnce(&mut K64) -> Result<T, CoreError>) -> Result<T, Failure> {
    f(&mut Reference64::new_f64(Heap)).map_err(|e| Failure::backend("the f64 reference", e))
}

/// A new buffer holding `values` exactly.
fn buf(k: &mut K64, values: &[f64]) -> Result<T64, CoreError> {
    let mut t = k.alloc_tensor(values.len())?;
    k.write_exact(&mut t, 0, values)?;
    Ok(t)
}

/// New parameters holding `values` exactly.
fn params(k: &mut K64, values: &[f64]) -> Result<RefWeights<T64, SharedBytes>, CoreError> {
    Ok(RefWeights::Values(buf(k, values)?))
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `n` normal values times `scale`.
fn normals(rng: &mut Rng, n: usize, scale: f64) -> Vec<f64> {
    (0..n).map(|_| rng.normal() as f64 * scale).collect()
}

/// `after - before`, element by element: what a backward added.
fn added(after: &[f64], before: &[f64]) -> Vec<f64> {
    after.iter().zip(before).map(|(a, b)| a - b).collect()
}

/// Central differences of `loss` at `inputs` against `analytic` (one gradient per
/// input), every element, under the tolerance of [`Check::FiniteDifferenceKernel`].
fn check_fd(
    inputs: &[(&'static str, Vec<f64>)],
    loss: &Loss<'_>,
    analytic: &[Vec<f64>],
    tol: Tolerance,
) -> Result<(), Failure> {
    let mut values: Vec<Vec<f64>> = inputs.iter().map(|(_, v)| v.clone()).collect();
    let center = loss(&values)?;
    for (n, (name, input)) in inputs.iter().enumerate() {
        if analytic[n].len() != input.len() {
            return Err(Failure::Length {
                what: format!("gradient of {name}"),
                got: analytic[n].len(),
                want: input.len(),
            });
        }
        let (mut numeric, mut exact) = (Vec::new(), Vec::new());
        let mut kinks = 0;
        for (i, &x) in input.iter().enumerate() {
            let eps = 1e-6 * (1.0 + x.abs());
            let mut at = |value: f64| -> Result<f64, Failure> {
                values[n][i] = value;
                let l = loss(&values);
                values[n][i] = x;
                l
            };
            let (plus, minus) = (at(x + eps)?, at(x - eps)?);
            let (plus_half, minus_half) = (at(x + eps / 2.0)?, at(x - eps / 2.0)?);
            let central = (plus - minus) / (2.0 * eps);
            // The forward less the backward difference, at eps and at eps / 2:
            // a kink within the step (a ReLU argument crossing zero) shows in
            // them, and so does a smooth curvature, which makes the first twice
            // the second. Taken out, the curvature no longer passes for a kink
            // (met: the scale's derivative of 34 near the softmax floor, whose
            // gap at eps, 0.36, was a kink to the bare test).
            let gap = (plus + minus - 2.0 * center) / eps;
            let half_gap = (plus_half + minus_half - 2.0 * center) / (eps / 2.0);
            if (half_gap - gap / 2.0).abs() > 1e-2 * (1.0 + central.abs()) {
                kinks += 1;
                continue;
            }
            // Richardson extrapolation of the central differences at eps and
            // eps / 2: the eps^2 term cancels (logits around -1000 make the
            // scale's third derivative large).
            let half = (plus_half - minus_half) / eps;
            numeric.push((4.0 * half - central) / 3.0);
            exact.push(analytic[n][i]);
        }
        if kinks * 2 > input.len() {
            return Err(Failure::Property(format!(
                "{kinks} of {} elements of {name} sit on a kink of the loss: the case checks nothing",
                input.len()
            )));
        }
        compare_f64(&format!("gradient of {name} (backward vs finite differences)"), &exact, &numeric, tol, 1.0)?;
    }
    Ok(())
}

/// Runs an oracle check: `cases` generated cases of `strategy`, each a finite-
/// difference problem.
fn run_fd<S>(
    options: &Options,
    name: &'static str,
    cases: u32,
    strategy: S,
    problem: fn(&S::Value, Tolerance) -> Result<(), Failure>,
) -> Result<(), Failure>
where
    S: Strategy,
    S::Value: std::fmt::Debug,
{
    let tol = tolerance(Check::FiniteDifferenceKernel, WeightDtype::F32);
    run_cases(name, cases, options, strategy, |case| problem(case, tol))
}

/// Sizes and a seed.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// Rows (positions, tokens, ids, queries).
    pub rows: usize,
    /// Width (or vocabulary).
    pub dim: usize,
    /// Heads (or batch rows).
    pub heads: usize,
    /// Head width (or a second width).
    pub head_dim: usize,
    /// A variant bit (kernel-specific).
    pub flag: bool,
    /// Values.
    pub seed: u64,
}

fn shape(rows: std::ops::RangeInclusive<usize>, dim: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = Shape> {
    (rows, dim, 1usize..=2, 1usize..=4, any::<bool>(), seed())
        .prop_map(|(rows, dim, heads, head_dim, flag, seed)| Shape { rows, dim, heads, head_dim, flag, seed })
}

/// `rms_norm_backward` against finite differences of `rms_norm`: the input's and
/// the scale's gradients.
pub fn fd_rms_norm(options: &Options) -> Result<(), Failure> {
    run_fd(options, "fd_rms_norm", 48, shape(1..=3, 1..=6), |s, tol| {
        let desc = Rows::new(s.rows, s.dim)?;
        let mut rng = Rng::new(s.seed);
        let inputs = [("input", normals(&mut rng, desc.len(), 2.0)), ("scale", normals(&mut rng, s.dim, 1.5))];
        let g = normals(&mut rng, desc.len(), 1.0);
        let (c0, c1) = (normals(&mut rng, desc.len(), 1.0), normals(&mut rng, s.dim, 1.0));
        let loss = |v: &[Vec<f64>]| {
            run64(|k| {
                let (x, sc) = (buf(k, &v[0])?, params(k, &v[1])?);
                let mut out = k.alloc_tensor(desc.len())?;
                k.rms_norm(View::new(&x, 0), WeightView::new(&sc, 0), ViewMut::new(&mut out, 0), desc)?;
                Ok(dot(&out, &g))
            })
        };
        let analytic = run64(|k| {
            let (x, sc, dy) = (buf(k, &inputs[0].1)?, params(k, &inputs[1].1)?, buf(k, &g)?);
            let (mut dx, mut ds) = (buf(k, &c0)?, buf(k, &c1)?);
            k.rms_norm_backward(
                View::new(&x, 0),
                WeightView::new(&sc, 0),
                View::new(&dy, 0),
                ViewMut::new(&mut dx, 0),
                ViewMut::new(&mut ds, 0),
                desc,
            )?;
            Ok(vec![added(&dx, &c0), added(&ds, &c1)])
        })?;
        check_fd(&inputs, &loss, &analytic, tol)
    })
}

/// `l2_normalize_backward` against finite differences of the in-place
/// `l2_normalize` (gradient with respect to the value before).
pub fn fd_l2_normalize(options: &Options) -> Result<(), Failure> {
    run_fd(options, "fd_l2_normalize", 48, shape(1..=2, 1..=1), |s, tol| {
        let desc = Heads::new(s.rows, s.heads, s.head_dim)?;
        let mut rng = Rng::new(s.seed);
        let inputs = [("input", normals(&mut rng, desc.len(), 1.0))];
        let g = normals(&mut rng, desc.len(), 1.0);
        let loss = |v: &[Vec<f64>]| {
            run64(|k| {
                let mut x = buf(k, &v[0])?;
                k.l2_normalize(ViewMut::new(&mut x, 0), desc)?;
                Ok(dot(&x, &g))
            })
        };
        let analytic = run64(|k| {
            let x = buf(k, &inputs[0].1)?;
            let mut dx = buf(k, &g)?;
            k.l2_normalize_backward(View::new(&x, 0), ViewMut::new(&mut dx, 0), desc)?;
            Ok(vec![dx.to_vec()])
        })?;
        check_fd(&inputs, &loss, &analytic, tol)
    })
}

/// `add_positions_backward` against finite differences of the in-place
/// `add_positions`: the rows' gradient passes through, the table's is the sum
/// over batch rows.
pub fn fd_add_positions(options: &Options) -> Result<(), Failure> {
    run_fd(options, "fd_add_positions", 32, shape(1..=3, 1..=4), |s, tol| {
        let desc = Positions::new(s.rows, s.heads, s.dim)?;
        let mut rng = Rng::new(s.seed);
        let inputs = [("rows", normals(&mut rng, desc.len(), 1.0)), ("table", normals(&mut rng, s.rows * s.dim, 1.0))];
        let g = normals(&mut rng, desc.len(), 1.0);
        let c = normals(&mut rng, s.rows * s.dim, 1.0);
        let loss = |v: &[Vec<f64>]| {
            run64(|k| {
                let (mut x, t) = (buf(k, &v[0])?, params(k, &v[1])?);
                k.add_positions(ViewMut::new(&mut x, 0), WeightView::new(&t, 0), desc)?;
                Ok(dot(&x, &g))
            })
        };
        let analytic = run64(|k| {
            let dx = buf(k, &g)?;
            let mut dt = buf(k, &c)?;
            k.add_positions_backward(View::new(&dx, 0), ViewMut::new(&mut dt, 0), desc)?;
            Ok(vec![g.clone(), added(&dt, &c)])
        })?;
        check_fd(&inputs, &loss, &analytic, tol)
    })
}

/// `embed_backward` against finite differences of `embed` (repeated ids add up).
pub fn fd_embed(options: &Options) -> Result<(), Failure> {
    run_fd(options, "fd_embed", 32, shape(1..=6, 1..=4), |s, tol| {
        let (vocab, dim) = (s.dim, s.head_dim);
        let desc = Embed::new(s.rows, vocab, dim)?;
        let mut rng = Rng::new(s.seed);
        let ids = rng.tokens(s.rows, vocab);
        let inputs = [("table", normals(&mut rng, vocab * dim, 1.0))];
        let g = normals(&mut rng, s.rows * dim, 1.0);
        let c = normals(&mut rng, vocab * dim, 1.0);
        let loss = |v: &[Vec<f64>]| {
            run64(|k| {
                let table = params(k, &v[0])?;
                let mut t = k.alloc_tokens(ids.len())?;
                k.write_tokens(&mut t, 0, &ids)?;
                let mut out = k.alloc_tensor(s.rows * dim)?;
                k.embed(&t, 0, WeightView::new(&table, 0), ViewMut::new(&mut out, 0), desc)?;
                Ok(dot(&out, &g))
            })
        };
        let analytic = run64(|k| {
            let mut t = k.alloc_tokens(ids.len())?;
            k.write_tokens(&mut t, 0, &ids)?;
            let dy = buf(k, &g)?;
            let mut dt = buf(k, &c)?;
            k.embed_backward(&t, 0, View::new(&dy, 0), ViewMut::new(&mut dt, 0), desc)?;
            Ok(vec![added(&dt, &c)])
        })?;
        check_fd(&inputs, &loss, &analytic, tol)
    })
}

/// `gather_runs_add` against finite differences of `copy_weights`, and
/// `add_assign` against finite differences of `copy` (its backward).
pub fn fd_copies(options: &Options) -> Result<(), Failure> {
    run_fd(options, "fd_copies", 32, shape(0..=3, 0..=3), |s, tol| {
        let runs = Strided::new(s.rows, s.dim, s.dim + s.head_dim - 1)?;
        let mut rng = Rng::new(s.seed);
        let inputs = [("runs source", normals(&mut rng, runs.total(), 1.0))];
        let g = normals(&mut rng, runs.extent(), 1.0);
        let c = normals(&mut rng, runs.total(), 1.0);
        let loss = |v: &[Vec<f64>]| {
            run64(|k| {
                let src = params(k, &v[0])?;
                let mut dst = k.alloc_tensor(runs.extent())?;
                k.copy_weights(WeightView::new(&src, 0), ViewMut::new(&mut dst, 0), runs)?;
                Ok(dot(&dst, &g))
            })
        };
        let analytic = run64(|k| {
            let dd = buf(k, &g)?;
            let mut ds = buf(k, &c)?;
            k.gather_runs_add(View::new(&dd, 0), ViewMut::new(&mut ds, 0), runs)?;
            Ok(vec![added(&ds, &c)])
        })?;
        check_fd(&inputs, &loss, &analytic, tol)?;

        let len = s.rows * s.dim;
        let inputs = [("copy source", normals(&mut rng, len, 1.0))];
        let g = normals(&mut rng, len, 1.0);
        let c = normals(&mut rng, len, 1.0);
        let loss = |v: &[Vec<f64>]| {
            run64(|k| {
                let src = buf(k, &v[0])?;
                let mut dst = k.alloc_tensor(len)?;
                k.copy(View::new(&src, 0), ViewMut::new(&mut dst, 0), len)?;
                Ok(dot(&dst, &g))
            })
        };
        let analytic = run64(|k| {
            let dd = buf(k, &g)?;
            let mut ds = buf(k, &c)?;
            k.add_assign(View::new(&dd, 0), ViewMut::new(&mut ds, 0), len)?;
            Ok(vec![added(&ds, &c)])
        })?;
        check_fd(&inputs, &loss, &analytic, tol)
    })
}

/// A product for the oracle: form and sizes.
#[derive(Clone, Copy, Debug)]
pub struct FdMatmul {
    m: usize,
    k: usize,
    n: usize,
    transposed: bool,
    accumulate: bool,
    activation: Activation,
    seed: u64,
}

/// `matmul_backward` against finite differences of `matmul` in every form: the
/// input's, the weight's and (when the product accumulates) the previous
/// output's gradients, the last being what `d_out` holds after the call.
pub fn fd_matmul(options: &Options) -> Result<(), Failure> {
    let activation = prop_oneof![Just(Activation::Identity), Just(Activation::Relu), Just(Activation::Tanh)];
    let strategy = (0usize..=3, 1usize..=4, 1usize..=4, any::<bool>(), any::<bool>(), activation, seed()).prop_map(
        |(m, k, n, transposed, accumulate, activation, seed)| FdMatmul {
            m,
            k,
            n,
            transposed,
            accumulate,
            activation,
            seed,
        },
    );
    run_fd(options, "fd_matmul", 64, strategy, |c, tol| {
        let (m, kk, n) = (c.m, c.k, c.n);
        let mut rng = Rng::new(c.seed);
        let alpha = rng.uniform(-2.0, 2.0);
        let mut desc = Matmul::new(m, kk, n)?.alpha(alpha).activation(c.activation);
        if c.transposed {
            desc = desc.transposed_weight();
        }
        if c.accumulate {
            desc = desc.accumulate();
        }
        let inputs = [
            ("input", normals(&mut rng, m * kk, 1.0)),
            ("weight", normals(&mut rng, kk * n, 1.0)),
            ("previous output", normals(&mut rng, m * n, 1.0)),
        ];
        let g = normals(&mut rng, m * n, 1.0);
        let (c0, c1) = (normals(&mut rng, m * kk, 1.0), normals(&mut rng, kk * n, 1.0));
        let forward = |k: &mut K64, v: &[Vec<f64>]| -> Result<T64, CoreError> {
            let (x, w) = (buf(k, &v[0])?, params(k, &v[1])?);
            let mut out = buf(k, &v[2])?;
            k.matmul(View::new(&x, 0), WeightView::new(&w, 0), ViewMut::new(&mut out, 0), desc)?;
            Ok(out)
        };
        let loss = |v: &[Vec<f64>]| run64(|k| Ok(dot(&forward(k, v)?, &g)));
        let values: Vec<Vec<f64>> = inputs.iter().map(|(_, v)| v.clone()).collect();
        let analytic = run64(|k| {
            let out = forward(k, &values)?;
            let (x, w) = (buf(k, &values[0])?, params(k, &values[1])?);
            let mut d_out = buf(k, &g)?;
            let (mut dx, mut dw) = (buf(k, &c0)?, buf(k, &c1)?);
            k.matmul_backward(
                View::new(&x, 0),
                WeightView::new(&w, 0),
                View::new(&out, 0),
                ViewMut::new(&mut d_out, 0),
                Some(ViewMut::new(&mut dx, 0)),
                Some(ViewMut::new(&mut dw, 0)),
                desc,
            )?;
            // Without accumulation the previous output is not read: its gradient is
            // zero (the caller clears d_out).
            let d_before = if c.accumulate { d_out.to_vec() } else { vec![0.0; m * n] };
            Ok(vec![added(&dx, &c0), added(&dw, &c1), d_before])
        })?;
        check_fd(&inputs, &loss, &analytic, tol)
    })
}

/// An attention call for the oracle.
#[derive(Clone, Copy, Debug)]
pub struct FdAttention {
    batch: usize,
    queries: usize,
    heads: usize,
    head_dim: usize,
    /// `Some((window, extra cached keys, keys past the last query))`, or every key.
    window: Option<(usize, usize, usize)>,
    /// Keys without a mask.
    keys: usize,
    abs_scale: bool,
    /// Position biases about -1000 and scales of magnitude about 1 (window only).
    near_floor: bool,
    seed: u64,
}

/// `attention_backward` against finite differences of `attention`: queries,
/// keys, values, scales and (with the window) the T5 bias table, with windows
/// short and long (log buckets), `abs` scales, and logits around the floor.
pub fn fd_attention(options: &Options) -> Result<(), Failure> {
    let window = prop_oneof![
        3 => (1usize..=3, 0usize..=1, 0usize..=1).prop_map(Some),
        1 => (17usize..=20, 0usize..=1, 0usize..=1).prop_map(Some),
        2 => Just(None),
    ];
    let strategy =
        ((1usize..=2, 1usize..=2, 1usize..=2, 1usize..=3), window, 1usize..=4, any::<bool>(), any::<bool>(), seed())
            .prop_map(|((batch, queries, heads, head_dim), window, keys, abs_scale, near_floor, seed)| FdAttention {
                batch,
                queries,
                heads,
                head_dim,
                window,
                keys,
                abs_scale,
                near_floor: near_floor && window.is_some(),
                seed,
            });
    run_fd(options, "fd_attention", 96, strategy, |c, tol| {
        let (mask, keys) = match c.window {
            Some((window, extra, past)) => {
                (Mask::Window { offset: window + extra, window }, window + extra + c.queries + past)
            }
            None => (Mask::None, c.keys),
        };
        let desc = Attention::new(c.batch, c.queries, keys, c.heads, c.head_dim, mask, c.abs_scale)?;
        let biased = c.window.is_some();
        let mut rng = Rng::new(c.seed);
        let scale: Vec<f64> = (0..c.heads)
            .map(|_| {
                let sign = rng.sign() as f64;
                if c.near_floor {
                    sign * rng.uniform(0.995, 1.005) as f64
                } else {
                    sign * rng.uniform(0.5, 3.0) as f64
                }
            })
            .collect();
        let mut inputs = vec![
            ("queries", normals(&mut rng, desc.query_len(), 1.0)),
            ("keys", normals(&mut rng, desc.key_len(), 1.0)),
            ("values", normals(&mut rng, desc.key_len(), 1.0)),
            ("scale", scale),
        ];
        if biased {
            let bias: Vec<f64> = (0..c.heads * T5_BUCKETS)
                .map(|_| if c.near_floor { -1000.0 + rng.uniform(-4.0, 4.0) as f64 } else { rng.normal() as f64 })
                .collect();
            inputs.push(("position bias", bias));
        }
        let g = normals(&mut rng, desc.query_len(), 1.0);
        let init: Vec<Vec<f64>> = [desc.query_len(), desc.key_len(), desc.key_len(), c.heads, c.heads * T5_BUCKETS]
            .iter()
            .map(|&n| normals(&mut rng, n, 1.0))
            .collect();
        let loss = |v: &[Vec<f64>]| {
            run64(|k| {
                let (q, kt, vt, s) = (buf(k, &v[0])?, buf(k, &v[1])?, buf(k, &v[2])?, params(k, &v[3])?);
                let b = match v.get(4) {
                    Some(b) => Some(params(k, b)?),
                    None => None,
                };
                let mut out = k.alloc_tensor(desc.query_len())?;
                k.attention(
                    View::new(&q, 0),
                    View::new(&kt, 0),
                    View::new(&vt, 0),
                    WeightView::new(&s, 0),
                    b.as_ref().map(|b| WeightView::new(b, 0)),
                    ViewMut::new(&mut out, 0),
                    desc,
                )?;
                Ok(dot(&out, &g))
            })
        };
        let values: Vec<Vec<f64>> = inputs.iter().map(|(_, v)| v.clone()).collect();
        let analytic = run64(|k| {
            let (q, kt, vt, s) =
                (buf(k, &values[0])?, buf(k, &values[1])?, buf(k, &values[2])?, params(k, &values[3])?);
            let b = match values.get(4) {
                Some(b) => Some(params(k, b)?),
                None => None,
            };
            let dy = buf(k, &g)?;
            let mut grads = Vec::new();
            for i in &init {
                grads.push(buf(k, i)?);
            }
            let [dq, dk, dv, ds, db] = &mut grads[..] else {
                return Err(CoreError::Mismatch { what: "five gradient buffers" });
            };
            k.attention_backward(
                View::new(&q, 0),
                View::new(&kt, 0),
                View::new(&vt, 0),
                WeightView::new(&s, 0),
                b.as_ref().map(|b| WeightView::new(b, 0)),
                View::new(&dy, 0),
                ViewMut::new(dq, 0),
                ViewMut::new(dk, 0),
                ViewMut::new(dv, 0),
                ViewMut::new(ds, 0),
                biased.then(|| ViewMut::new(&mut *db, 0)),
                desc,
            )?;
            let mut out: Vec<Vec<f64>> = grads.iter().zip(&init).map(|(g, i)| added(g, i)).collect();
            if !biased {
                out.pop();
            }
            Ok(out)
        })?;
        check_fd(&inputs, &loss, &analytic, tol)
    })
}

/// `linear_attention_backward` against finite differences of `linear_attention`
/// with a loss on both the output and the carried sums after the call:
/// queries, keys, values, scales and the sums before, from zero or warm sums.
pub fn fd_linear_attention(options: &Options) -> Result<(), Failure> {
    let strategy = ((1usize..=2, 0usize..=4, 1usize..=2, 1usize..=3), any::<bool>(), any::<bool>(), seed());
    run_fd(options, "fd_linear_attention", 64, strategy, |&((batch, tokens, heads, dh), abs, warm, seed), tol| {
        let desc = LinearAttention::new(batch, tokens, heads, dh, abs)?;
        let (n, sl, per_row) = (desc.token_len(), desc.state_len(), desc.state_per_row());
        let mut rng = Rng::new(seed);
        let scale: Vec<f64> = (0..heads).map(|_| rng.sign() as f64 * rng.uniform(0.25, 3.0) as f64).collect();
        let state: Vec<f64> = (0..sl)
            .map(|i| match (warm, i % per_row < heads * dh * dh) {
                (false, _) => 0.0,
                (true, true) => rng.normal() as f64 * 2.0,
                (true, false) => rng.uniform(0.5, 3.0) as f64,
            })
            .collect();
        let inputs = [
            ("queries", normals(&mut rng, n, 1.0)),
            ("keys", normals(&mut rng, n, 1.0)),
            ("values", normals(&mut rng, n, 1.0)),
            ("scale", scale),
            ("sums before", state),
        ];
        let (g_out, g_state) = (normals(&mut rng, n, 1.0), normals(&mut rng, sl, 0.5));
        let init: Vec<Vec<f64>> = [n, n, n, heads].iter().map(|&len| normals(&mut rng, len, 1.0)).collect();
        let loss = |v: &[Vec<f64>]| {
            run64(|k| {
                let (q, kt, vt, s) = (buf(k, &v[0])?, buf(k, &v[1])?, buf(k, &v[2])?, params(k, &v[3])?);
                let mut st = buf(k, &v[4])?;
                let mut out = k.alloc_tensor(n)?;
                k.linear_attention(
                    View::new(&q, 0),
                    View::new(&kt, 0),
                    View::new(&vt, 0),
                    WeightView::new(&s, 0),
                    ViewMut::new(&mut st, 0),
                    ViewMut::new(&mut out, 0),
                    desc,
                )?;
                Ok(dot(&out, &g_out) + dot(&st, &g_state))
            })
        };
        let values: Vec<Vec<f64>> = inputs.iter().map(|(_, v)| v.clone()).collect();
        let analytic = run64(|k| {
            let (q, kt, vt, s, st) = (
                buf(k, &values[0])?,
                buf(k, &values[1])?,
                buf(k, &values[2])?,
                params(k, &values[3])?,
                buf(k, &values[4])?,
            );
            let dy = buf(k, &g_out)?;
            let mut d_state = buf(k, &g_state)?;
            let (mut dq, mut dk, mut dv, mut ds) =
                (buf(k, &init[0])?, buf(k, &init[1])?, buf(k, &init[2])?, buf(k, &init[3])?);
            k.linear_attention_backward(
                View::new(&q, 0),
                View::new(&kt, 0),
                View::new(&vt, 0),
                WeightView::new(&s, 0),
                View::new(&st, 0),
                View::new(&dy, 0),
                ViewMut::new(&mut d_state, 0),
                ViewMut::new(&mut dq, 0),
                ViewMut::new(&mut dk, 0),
                ViewMut::new(&mut dv, 0),
                ViewMut::new(&mut ds, 0),
                desc,
            )?;
            Ok(vec![
                added(&dq, &init[0]),
                added(&dk, &init[1]),
                added(&dv, &init[2]),
                added(&ds, &init[3]),
                d_state.to_vec(),
            ])
        })?;
        check_fd(&inputs, &loss, &analytic, tol)
    })
}

/// `gate_fixed_backward` against finite differences of `gate_fixed`: the state
/// before, the update and the bias.
pub fn fd_gate_fixed(options: &Options) -> Result<(), Failure> {
    run_fd(options, "fd_gate_fixed", 32, shape(1..=3, 1..=4), |s, tol| {
        let desc = Rows::new(s.rows, s.dim)?;
        let len = desc.len();
        let mut rng = Rng::new(s.seed);
        let inputs = [
            ("state before", normals(&mut rng, len, 1.0)),
            ("update", normals(&mut rng, len, 1.0)),
            ("bias", normals(&mut rng, s.dim, 2.0)),
        ];
        let g = normals(&mut rng, len, 1.0);
        let (c0, c1) = (normals(&mut rng, len, 1.0), normals(&mut rng, s.dim, 1.0));
        let loss = |v: &[Vec<f64>]| {
            run64(|k| {
                let mut st = buf(k, &v[0])?;
                let (z, b) = (buf(k, &v[1])?, params(k, &v[2])?);
                k.gate_fixed(ViewMut::new(&mut st, 0), View::new(&z, 0), WeightView::new(&b, 0), desc)?;
                Ok(dot(&st, &g))
            })
        };
        let analytic = run64(|k| {
            let (st, z, b) = (buf(k, &inputs[0].1)?, buf(k, &inputs[1].1)?, params(k, &inputs[2].1)?);
            let mut ds = buf(k, &g)?;
            let (mut dz, mut db) = (buf(k, &c0)?, buf(k, &c1)?);
            k.gate_fixed_backward(
                View::new(&st, 0),
                View::new(&z, 0),
                WeightView::new(&b, 0),
                ViewMut::new(&mut ds, 0),
                ViewMut::new(&mut dz, 0),
                ViewMut::new(&mut db, 0),
                desc,
            )?;
            Ok(vec![ds.to_vec(), added(&dz, &c0), added(&db, &c1)])
        })?;
        check_fd(&inputs, &loss, &analytic, tol)
    })
}

/// `gate_lstm_backward` against finite differences of `gate_lstm`: the state
/// before, the update, both gate products and both biases.
pub fn fd_gate_lstm(options: &Options) -> Result<(), Failure> {
    run_fd(options, "fd_gate_lstm", 32, shape(1..=3, 1..=4), |s, tol| {
        let desc = Rows::new(s.rows, s.dim)?;
        let (len, d) = (desc.len(), s.dim);
        let mut rng = Rng::new(s.seed);
        let inputs = [
            ("state before", normals(&mut rng, len, 1.0)),
            ("update", normals(&mut rng, len, 1.0)),
            ("forget product", normals(&mut rng, len, 2.0)),
            ("input product", normals(&mut rng, len, 2.0)),
            ("forget bias", normals(&mut rng, d, 1.0)),
            ("input bias", normals(&mut rng, d, 1.0)),
        ];
        let g = normals(&mut rng, len, 1.0);
        let init: Vec<Vec<f64>> = [len, len, len, d, d].iter().map(|&n| normals(&mut rng, n, 1.0)).collect();
        let loss = |v: &[Vec<f64>]| {
            run64(|k| {
                let mut st = buf(k, &v[0])?;
                let (z, f, i) = (buf(k, &v[1])?, buf(k, &v[2])?, buf(k, &v[3])?);
                let (bf, bi) = (params(k, &v[4])?, params(k, &v[5])?);
                k.gate_lstm(
                    ViewMut::new(&mut st, 0),
                    View::new(&z, 0),
                    View::new(&f, 0),
                    View::new(&i, 0),
                    WeightView::new(&bf, 0),
                    WeightView::new(&bi, 0),
                    desc,
                )?;
                Ok(dot(&st, &g))
            })
        };
        let values: Vec<Vec<f64>> = inputs.iter().map(|(_, v)| v.clone()).collect();
        let analytic = run64(|k| {
            let mut b = Vec::new();
            for v in &values[..4] {
                b.push(buf(k, v)?);
            }
            let (bf, bi) = (params(k, &values[4])?, params(k, &values[5])?);
            let mut ds = buf(k, &g)?;
            let mut grads = Vec::new();
            for i in &init {
                grads.push(buf(k, i)?);
            }
            let [dz, df, di, dbf, dbi] = &mut grads[..] else {
                return Err(CoreError::Mismatch { what: "five gradient buffers" });
            };
            k.gate_lstm_backward(
                View::new(&b[0], 0),
                View::new(&b[1], 0),
                View::new(&b[2], 0),
                View::new(&b[3], 0),
                WeightView::new(&bf, 0),
                WeightView::new(&bi, 0),
                ViewMut::new(&mut ds, 0),
                ViewMut::new(dz, 0),
                ViewMut::new(df, 0),
                ViewMut::new(di, 0),
                ViewMut::new(dbf, 0),
                ViewMut::new(dbi, 0),
                desc,
            )?;
            let mut out = vec![ds.to_vec()];
            out.extend(grads.iter().zip(&init).map(|(g, i)| added(g, i)));
            Ok(out)
        })?;
        check_fd(&inputs, &loss, &analytic, tol)
    })
}

/// Whole-model gradients of `variant` by the recorder over the f64 reference
/// against central finite differences of the loss, on one or two elements of
/// every parameter.
///
/// An element whose difference cannot be trusted to the tolerance moves the
/// probe to another element. Two things spoil one, both met at 1,000 cases:
/// a kink within the step (a ReLU argument crossing zero), and a curvature the
/// step does not resolve (gradients in the thousands). Hence two steps, `h =
/// 1e-6 (1 + |x|)` and `s = h / 8`, and two tests:
/// - a kink at `x + d` (`|d| = u s < s`, the derivative jumping by `j`) moves
///   the central difference at `s` by `j (1 - u) / 2`. The gap between the
///   forward and backward differences at `s`, less the same gap at `h` over 8
///   (what a smooth curvature alone gives), is `j |7/8 - 63 u / 64|`; the
///   central differences at `h` and `s` differ by `7 j u / 16`.
/// - A smooth curvature leaves the first near zero and makes the second 63
///   times the truncation error at `s`.
///
/// The first must stay within the tolerance and the second within half of it,
/// which bounds a kink's error to 0.62 of the tolerance at every `u`. A kink
/// between `s` and `h` fails them too, though `s` does not see it (met: one
/// ReLU argument about 1e-7 from zero, upstream of most parameters): then the
/// pair `s`, `s / 8` is tried (the loss's rounding, some 1e-15 of it, is still
/// far below the tolerance at that step).
fn fd_model(options: &Options, name: &'static str, variant: Variant, cases: u32) -> Result<(), Failure> {
    let tol = tolerance(Check::FiniteDifferenceModel, WeightDtype::F32);
    let dtype = WeightDtype::F32;
    run_cases(name, cases, options, grad_model_case(variant), |case| {
        let config = case.config;
        let flat = case.weights(dtype)?;
        let segment = segment(case, &flat, dtype)?;
        let analytic = reference_gradient(&config, case.batch, &flat, dtype, &segment)?;
        if analytic.iter().all(|&g| g == 0.0) {
            return Err(Failure::Property("the recorder's gradient is zero: the case checks nothing".into()));
        }
        let k = &mut Reference64::new_f64(Heap);
        let mut model = upload_model(k, &config, &flat, dtype)?;
        let plan = Plan::new(&config, case.batch, segment.max_tokens)?;
        let mut stream = call("Stream::new", Stream::new(k, &model, plan))?;
        let (state, position) = &segment.carried;
        let mut logits = vec![0f64; segment.direction.len()];
        let mut loss = |k: &mut K64, model: &brt_core::Model<K64>, stream: &mut Stream<K64>| -> Result<f64, Failure> {
            call("Stream::restore", stream.restore(k, state, *position))?;
            call("Stream::forward", stream.forward(k, model, &segment.tokens, &segment.resets))?;
            call("read_exact", k.read_exact(stream.logits(), 0, &mut logits))?;
            Ok(logits.iter().zip(&segment.direction).map(|(l, &d)| l * d as f64).sum())
        };
        let center = loss(k, &model, &mut stream)?;
        let mut rng = Rng::new(case.seed ^ 0x6664);
        let layout = brt_core::WeightLayout::new(&config)?;
        let (mut checked, mut kinks) = (0, 0);
        for spec in layout.params() {
            let len = spec.span.len();
            let mut probes = len.min(2);
            let mut tries = 0;
            while probes > 0 && tries < 6 {
                tries += 1;
                let index = spec.offset + rng.below(len);
                let x = flat[index] as f64;
                let mut at = |value: f64, k: &mut K64, model: &mut brt_core::Model<K64>, stream: &mut Stream<K64>| {
                    call("write_exact", k.write_weights_exact(model.weights_mut(), index, &[value]))?;
                    loss(k, model, stream)
                };
                // (central difference, forward less backward difference) at `step`.
                let mut differences = |step: f64| -> Result<(f64, f64), Failure> {
                    let plus = at(x + step, k, &mut model, &mut stream)?;
                    let minus = at(x - step, k, &mut model, &mut stream)?;
                    Ok(((plus - minus) / (2.0 * step), (plus + minus - 2.0 * center) / step))
                };
                let mut step = 1e-6 * (1.0 + x.abs());
                let (mut coarse, mut coarse_gap) = differences(step)?;
                let mut resolved = None;
                for _ in 0..2 {
                    step /= 8.0;
                    let (central, gap) = differences(step)?;
                    let allowed = tol.allowed(central as f32);
                    if (gap - coarse_gap / 8.0).abs() <= allowed && (coarse - central).abs() <= allowed / 2.0 {
                        resolved = Some(central);
                        break;
                    }
                    (coarse, coarse_gap) = (central, gap);
                }
                call("write_exact", k.write_weights_exact(model.weights_mut(), index, &[x]))?;
                let Some(central) = resolved else {
                    kinks += 1;
                    continue;
                };
                probes -= 1;
                checked += 1;
                let what =
                    format!("gradient of {:?}[{}] (recorder vs finite differences)", spec.param, index - spec.offset);
                compare_f64(&what, &[analytic[index] as f64], &[central], tol, 1.0)?;
            }
        }
        if checked == 0 || kinks > checked {
            return Err(Failure::Property(format!(
                "{kinks} probes unresolved (a kink or a curvature within the steps), {checked} checked: \
                 the case checks little"
            )));
        }
        Ok(())
    })
}

macro_rules! model_checks {
    ($($(#[$doc:meta])* $name:ident => $variant:expr;)*) => {$(
        $(#[$doc])*
        pub fn $name(options: &Options) -> Result<(), Failure> {
            fd_model(options, stringify!($name), $variant, 8)
        }
    )*};
}

model_checks! {
    /// The recorder over the f64 reference on the plain stack, against finite
    /// differences.
    fd_model_plain => Variant::Plain;
    /// ... with a recurrent layer, fixed gate, skip layout.
    fd_model_fixed_skip => Variant::Recurrent(GateKind::Fixed, StateLayout::Skip);
    /// ... fixed gate, single layout.
    fd_model_fixed_single => Variant::Recurrent(GateKind::Fixed, StateLayout::Single);
    /// ... fixed gate, dual layout.
    fd_model_fixed_dual => Variant::Recurrent(GateKind::Fixed, StateLayout::Dual);
    /// ... LSTM gates, skip layout.
    fd_model_lstm_skip => Variant::Recurrent(GateKind::Lstm, StateLayout::Skip);
    /// ... LSTM gates, single layout.
    fd_model_lstm_single => Variant::Recurrent(GateKind::Lstm, StateLayout::Single);
    /// ... LSTM gates, dual layout.
    fd_model_lstm_dual => Variant::Recurrent(GateKind::Lstm, StateLayout::Dual);
    /// ... in feedback mode.
    fd_model_feedback => Variant::Feedback;
    /// ... with two recurrent layers.
    fd_model_two_recurrent => Variant::TwoRecurrent;
    /// ... with linear-attention layers.
    fd_model_linear => Variant::Linear;
}

/// Every check of the oracle, with its name.
pub fn all_oracle_checks() -> Vec<(&'static str, OracleFn)> {
    crate::__each_oracle_check!(list)
}
