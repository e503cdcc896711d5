//! Every backward kernel of the CPU backend (`brt_core::Gradients`) against the
//! reference's (math in f64), at every SIMD level this machine supports (scalar
//! included) and on two threads, on shapes that cross the blocking boundaries of
//! the products (micro-tiles, `kc`, few-row products), of the attention tiles
//! (48 queries, 96 keys, partial head panels) and of the linear attention's
//! chunks (64 tokens). Inputs are random; outputs of in-place kernels and the
//! accumulated gradients start from random values too, so that `+=` and "replace"
//! are both checked. Each test prints its worst normalised error
//! `max |cpu - ref| / (1 + max |ref|)`.

mod common;

use brt_core::desc::{Activation, Attention, Embed, Heads, LinearAttention, Mask, Matmul, Positions, Rows, Strided};
use brt_core::init::SplitMix64;
use brt_core::params::T5_BUCKETS;
use brt_core::{CoreError, Gradients, Kernels, Storage, View, ViewMut, WeightDtype, WeightView};
use brt_cpu::{Cpu, CpuError, Heap, Options};
use common::*;

type RefWeights = <Ref as Storage>::Weights;
type FastWeights = <Fast as Storage>::Weights;

/// Uploads `values` as a tensor on both backends.
fn tensors(r: &mut Ref, f: &mut Fast, values: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let mut a = r.alloc_tensor(values.len()).unwrap();
    r.write_tensor(&mut a, 0, values).unwrap();
    let mut b = f.alloc_tensor(values.len()).unwrap();
    f.write_tensor(&mut b, 0, values).unwrap();
    (a, b)
}

fn weights(r: &mut Ref, f: &mut Fast, values: &[f32], dtype: WeightDtype) -> (RefWeights, FastWeights) {
    let stored = Stored::new(values, dtype);
    let mut a = r.alloc_weights(values.len(), dtype).unwrap();
    r.write_weights(&mut a, 0, stored.data()).unwrap();
    let mut b = f.alloc_weights(values.len(), dtype).unwrap();
    f.write_weights(&mut b, 0, stored.data()).unwrap();
    (a, b)
}

/// Asserts `actual` is within `tol * (1 + max |expected|)` of `expected` and
/// returns the normalised error.
fn close(actual: &[f32], expected: &[f32], tol: f32, what: &str) -> f32 {
    let (worst, size) = max_diff(actual, expected);
    let err = worst / (1.0 + size);
    assert!(err <= tol, "{what}: max abs diff {worst:e} (scale {size:e}): normalised {err:e} > tolerance {tol:e}");
    err
}

/// The worst error of a test, printed at the end.
struct Worst(&'static str, f32);

impl Worst {
    fn add(&mut self, err: f32) {
        self.1 = self.1.max(err);
    }
}

impl Drop for Worst {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            println!("{}: worst normalised error {:.2e}", self.0, self.1);
        }
    }
}

#[test]
fn matmul_backward_matches_reference_for_every_shape_order_activation_and_dtype() {
    let mut worst = Worst("matmul_backward", 0.0);
    // (m, k, n): one row; few rows (the weights-streaming path for d_x); ragged
    // micro-tiles; m above kc (256) so that d_w's inner dimension takes several
    // blocks; n above a column block for d_x's inner dimension.
    let shapes = [
        (1, 1, 1),
        (3, 5, 7),
        (4, 300, 70),
        (2, 33, 517),
        (7, 13, 33),
        (37, 300, 70),
        (150, 57, 40),
        (290, 70, 50),
        (600, 40, 30),
        (13, 64, 300),
        (9, 20, 4200),
    ];
    let mut rng = SplitMix64::new(11);
    for (name, mut fast) in backends() {
        let mut reference = Ref::new(Heap);
        for &(m, k, n) in &shapes {
            for dtype in [WeightDtype::F32, WeightDtype::F16, WeightDtype::Bf16] {
                for variant in 0..5 {
                    let transposed = variant % 2 == 1;
                    let mut desc = Matmul::new(m, k, n).unwrap();
                    if transposed {
                        desc = desc.transposed_weight();
                    }
                    desc = match variant {
                        0 => desc,
                        1 => desc.alpha(0.37).activation(Activation::Relu),
                        2 => desc.accumulate().activation(Activation::Tanh).alpha(0.05),
                        3 => desc.accumulate().alpha(-1.5),
                        _ => desc.activation(Activation::Relu),
                    };
                    let x = random(&mut rng, 3 + m * k, 1.0);
                    let w = random(&mut rng, 5 + k * n, 1.0);
                    let y0 = random(&mut rng, 2 + m * n, 1.0);
                    let dy = random(&mut rng, 1 + m * n, 1.0);
                    let dx0 = random(&mut rng, 4 + m * k, 1.0);
                    let dw0 = random(&mut rng, 6 + k * n, 1.0);
                    let (xr, xf) = tensors(&mut reference, &mut fast, &x);
                    let (wr, wf) = weights(&mut reference, &mut fast, &w, dtype);
                    // The forward's output, as the reference computes it, is the
                    // `out` both backward passes read.
                    let mut y = y0.clone();
                    reference
                        .matmul(View::new(&xr, 3), WeightView::new(&wr, 5), ViewMut::new(&mut y, 2), desc)
                        .unwrap();
                    let (yr, yf) = tensors(&mut reference, &mut fast, &y);
                    let (mut dyr, mut dyf) = tensors(&mut reference, &mut fast, &dy);
                    let (mut dxr, mut dxf) = tensors(&mut reference, &mut fast, &dx0);
                    let (mut dwr, mut dwf) = tensors(&mut reference, &mut fast, &dw0);
                    // Variant 4 asks for the weight's gradient only.
                    let want_dx = variant != 4;
                    reference
                        .matmul_backward(
                            View::new(&xr, 3),
                            WeightView::new(&wr, 5),
                            View::new(&yr, 2),
                            ViewMut::new(&mut dyr, 1),
                            want_dx.then(|| ViewMut::new(&mut dxr, 4)),
                            Some(ViewMut::new(&mut dwr, 6)),
                            desc,
                        )
                        .unwrap();
                    fast.matmul_backward(
                        View::new(&xf, 3),
                        WeightView::new(&wf, 5),
                        View::new(&yf, 2),
                        ViewMut::new(&mut dyf, 1),
                        want_dx.then(|| ViewMut::new(&mut dxf, 4)),
                        Some(ViewMut::new(&mut dwf, 6)),
                        desc,
                    )
                    .unwrap();
                    let what = format!("{name} matmul_backward {m}x{k}x{n} {dtype:?} variant {variant}");
                    assert_eq!(&dxf[..4], &dx0[..4], "{what}: wrote before the view");
                    assert_eq!(&dwf[..6], &dw0[..6], "{what}: wrote before the view");
                    let tol = 2e-6 * (m.max(n) as f32).sqrt().max(4.0);
                    worst.add(close(&dyf, &dyr, tol, &format!("{what}: d_z")));
                    worst.add(close(&dxf, &dxr, tol, &format!("{what}: d_x")));
                    worst.add(close(&dwf, &dwr, tol, &format!("{what}: d_w")));
                }
            }
        }
    }
}

/// Runs the attention backward on both backends and compares every gradient.
#[allow(clippy::too_many_arguments)]
fn check_attention(
    name: &str,
    reference: &mut Ref,
    fast: &mut Fast,
    rng: &mut SplitMix64,
    desc: Attention,
    biased: bool,
    logit_shift: f32,
    worst: &mut Worst,
) {
    let (heads, nq, nk) = (desc.heads(), desc.query_len(), desc.key_len());
    let q = random(rng, nq + 1, 1.0);
    let k = random(rng, nk + 2, 1.0);
    let v = random(rng, nk + 3, 1.0);
    let dout = random(rng, nq + 4, 1.0);
    // Scales of both signs (abs_scale), bias entries around `logit_shift` (a shift
    // near -1000 makes the safe softmax's floor compete with the keys).
    let mut params = random(rng, heads + heads * T5_BUCKETS, 1.0);
    for (i, p) in params.iter_mut().enumerate() {
        if i < heads {
            *p *= 2.0;
        } else {
            *p = *p * 2.0 + logit_shift;
        }
    }
    let (qr, qf) = tensors(reference, fast, &q);
    let (kr, kf) = tensors(reference, fast, &k);
    let (vr, vf) = tensors(reference, fast, &v);
    let (dor, dof) = tensors(reference, fast, &dout);
    let (pr, pf) = weights(reference, fast, &params, WeightDtype::F32);
    let grads0: Vec<Vec<f32>> =
        [nq, nk, nk, heads, heads * T5_BUCKETS].iter().map(|&len| random(rng, len + 1, 1.0)).collect();
    let mut r_grads: Vec<Vec<f32>> = grads0.iter().map(|g| tensors(reference, fast, g).0).collect();
    let mut f_grads: Vec<Vec<f32>> = grads0.iter().map(|g| tensors(reference, fast, g).1).collect();
    {
        let [dq, dk, dv, ds, db] = &mut r_grads[..] else { unreachable!() };
        reference
            .attention_backward(
                View::new(&qr, 1),
                View::new(&kr, 2),
                View::new(&vr, 3),
                WeightView::new(&pr, 0),
                biased.then(|| WeightView::new(&pr, heads)),
                View::new(&dor, 4),
                ViewMut::new(dq, 1),
                ViewMut::new(dk, 1),
                ViewMut::new(dv, 1),
                ViewMut::new(ds, 1),
                biased.then(|| ViewMut::new(db, 1)),
                desc,
            )
            .unwrap();
    }
    {
        let [dq, dk, dv, ds, db] = &mut f_grads[..] else { unreachable!() };
        fast.attention_backward(
            View::new(&qf, 1),
            View::new(&kf, 2),
            View::new(&vf, 3),
            WeightView::new(&pf, 0),
            biased.then(|| WeightView::new(&pf, heads)),
            View::new(&dof, 4),
            ViewMut::new(dq, 1),
            ViewMut::new(dk, 1),
            ViewMut::new(dv, 1),
            ViewMut::new(ds, 1),
            biased.then(|| ViewMut::new(db, 1)),
            desc,
        )
        .unwrap();
    }
    let what = format!("{name} attention_backward {desc:?} bias {biased} shift {logit_shift}");
    for (label, (f, r)) in ["d_q", "d_k", "d_v", "d_scale", "d_bias"].iter().zip(f_grads.iter().zip(&r_grads)) {
        // The scale's gradient sums `dS * (q.k + bias)` over every visible pair of
        // every batch row in f32: its rounding grows with their count, and with
        // biases near -1000 its terms are that large while their sum is small, so
        // the f32 rounding of the content (|shift| * 2^-24 each) shows too.
        let pairs = (desc.batch() * desc.queries() * desc.visible_keys(desc.queries() - 1).len()) as f32;
        let tol = if *label == "d_scale" {
            2e-5 * (pairs.sqrt() / 16.0).max(1.0) * (1.0 + logit_shift.abs() / 100.0)
        } else {
            2e-5
        };
        worst.add(close(f, r, tol, &format!("{what}: {label}")));
    }
    if !biased {
        assert_eq!(f_grads[4], grads0[4], "{what}: without a bias the bias gradient is untouched");
    }
}

#[test]
fn attention_backward_matches_reference_windowed_and_full_with_and_without_bias() {
    let mut worst = Worst("attention_backward", 0.0);
    let mut rng = SplitMix64::new(12);
    for (name, mut fast) in backends() {
        let mut reference = Ref::new(Heap);
        // (batch, queries, heads, head width, window, extra cached keys):
        // tiles of 48 queries and 96 keys, head widths across the panel widths.
        for &(batch, queries, heads, dh, window, extra) in &[
            (1, 1, 1, 1, 1, 0),
            (2, 5, 2, 3, 4, 3),
            (1, 49, 1, 17, 16, 0),
            (2, 100, 3, 16, 64, 0),
            (1, 130, 2, 70, 64, 9),
            (1, 97, 1, 33, 150, 20),
            // More keys than the 8 tiles the first sweep keeps for the second.
            (1, 50, 1, 8, 780, 3),
        ] {
            for abs in [false, true] {
                for biased in [false, true] {
                    let offset = window + extra;
                    let keys = offset + queries;
                    let mask = Mask::Window { offset, window };
                    let desc = Attention::new(batch, queries, keys, heads, dh, mask, abs).unwrap();
                    check_attention(&name, &mut reference, &mut fast, &mut rng, desc, biased, 0.0, &mut worst);
                }
            }
        }
        // Attention to every key (the state's attentions).
        for &(batch, queries, keys, heads, dh) in &[
            (1, 1, 1, 1, 4),
            (2, 7, 5, 2, 9),
            (1, 50, 97, 2, 64),
            (2, 64, 200, 1, 20),
            (1, 3, 300, 3, 8),
            (2, 5, 800, 1, 8),
        ] {
            for abs in [false, true] {
                let desc = Attention::new(batch, queries, keys, heads, dh, Mask::None, abs).unwrap();
                check_attention(&name, &mut reference, &mut fast, &mut rng, desc, false, 0.0, &mut worst);
            }
        }
    }
}

#[test]
fn attention_backward_matches_reference_where_the_safe_softmax_floor_competes() {
    // Biases near -1000 put the logits (scale up to 2 in magnitude, taken as |a|
    // here so that they stay negative) around the floor: its extra term shares
    // the probability mass with the keys.
    let mut worst = Worst("attention_backward near the floor", 0.0);
    let mut rng = SplitMix64::new(13);
    for (name, mut fast) in backends() {
        let mut reference = Ref::new(Heap);
        for shift in [-1000.0, -998.0, -1003.0] {
            let desc = Attention::new(2, 20, 36, 2, 8, Mask::Window { offset: 16, window: 16 }, true).unwrap();
            check_attention(&name, &mut reference, &mut fast, &mut rng, desc, true, shift, &mut worst);
        }
    }
}

#[test]
fn linear_attention_backward_matches_reference_with_carried_sums() {
    let mut worst = Worst("linear_attention_backward", 0.0);
    let mut rng = SplitMix64::new(14);
    for (name, mut fast) in backends() {
        let mut reference = Ref::new(Heap);
        // Chunks of 64 tokens: one token, a partial chunk, exactly one, one and a
        // bit, several.
        for &(batch, tokens, heads, dh) in
            &[(1, 1, 1, 1), (2, 5, 2, 3), (1, 64, 1, 8), (2, 65, 2, 5), (1, 130, 1, 17), (1, 9, 2, 40)]
        {
            for abs in [false, true] {
                let desc = LinearAttention::new(batch, tokens, heads, dh, abs).unwrap();
                let (n, s) = (desc.token_len(), desc.state_len());
                let q = random(&mut rng, n, 1.0);
                let k = random(&mut rng, n, 1.0);
                let v = random(&mut rng, n, 1.0);
                let dout = random(&mut rng, n, 1.0);
                let scale = random(&mut rng, heads, 1.5);
                // Carried sums as earlier tokens leave them: positive z (sums of
                // phi(k) > 0), S of either sign.
                let mut state = random(&mut rng, s, 3.0);
                let per_row = desc.state_per_row();
                for (i, x) in state.iter_mut().enumerate() {
                    if i % per_row >= heads * dh * dh {
                        *x = 0.5 + x.abs();
                    }
                }
                let (qr, qf) = tensors(&mut reference, &mut fast, &q);
                let (kr, kf) = tensors(&mut reference, &mut fast, &k);
                let (vr, vf) = tensors(&mut reference, &mut fast, &v);
                let (dor, dof) = tensors(&mut reference, &mut fast, &dout);
                let (sr, sf) = tensors(&mut reference, &mut fast, &state);
                let (ar, af) = weights(&mut reference, &mut fast, &scale, WeightDtype::Bf16);
                let grads0: Vec<Vec<f32>> = [s, n, n, n, heads].iter().map(|&len| random(&mut rng, len, 1.0)).collect();
                let mut r: Vec<Vec<f32>> = grads0.clone();
                let mut f: Vec<Vec<f32>> = grads0.clone();
                {
                    let [d_state, dq, dk, dv, ds] = &mut r[..] else { unreachable!() };
                    reference
                        .linear_attention_backward(
                            View::new(&qr, 0),
                            View::new(&kr, 0),
                            View::new(&vr, 0),
                            WeightView::new(&ar, 0),
                            View::new(&sr, 0),
                            View::new(&dor, 0),
                            ViewMut::new(d_state, 0),
                            ViewMut::new(dq, 0),
                            ViewMut::new(dk, 0),
                            ViewMut::new(dv, 0),
                            ViewMut::new(ds, 0),
                            desc,
                        )
                        .unwrap();
                }
                {
                    let [d_state, dq, dk, dv, ds] = &mut f[..] else { unreachable!() };
                    fast.linear_attention_backward(
                        View::new(&qf, 0),
                        View::new(&kf, 0),
                        View::new(&vf, 0),
                        WeightView::new(&af, 0),
                        View::new(&sf, 0),
                        View::new(&dof, 0),
                        ViewMut::new(d_state, 0),
                        ViewMut::new(dq, 0),
                        ViewMut::new(dk, 0),
                        ViewMut::new(dv, 0),
                        ViewMut::new(ds, 0),
                        desc,
                    )
                    .unwrap();
                }
                let what = format!("{name} linear_attention_backward {desc:?}");
                for (label, (a, e)) in ["d_state", "d_q", "d_k", "d_v", "d_scale"].iter().zip(f.iter().zip(&r)) {
                    worst.add(close(a, e, 5e-5, &format!("{what}: {label}")));
                }
            }
        }
    }
}

#[test]
fn row_kernel_backwards_match_reference() {
    let mut worst = Worst("row kernels", 0.0);
    let mut rng = SplitMix64::new(15);
    for (name, mut fast) in backends() {
        let mut reference = Ref::new(Heap);
        // Small rows, runs of more than 256 columns (the gate and scale runs), and
        // enough values (> 2^15) to be split over threads.
        for &(rows, dim) in &[(1, 1), (3, 7), (5, 300), (300, 257), (40, 1030)] {
            for dtype in [WeightDtype::F32, WeightDtype::F16, WeightDtype::Bf16] {
                let len = rows * dim;
                let what = format!("{name} {rows}x{dim} {dtype:?}");
                let x = random(&mut rng, len + 1, 2.0);
                let dy = random(&mut rng, len + 2, 1.0);
                let scale = random(&mut rng, dim + 3, 2.0);
                let (xr, xf) = tensors(&mut reference, &mut fast, &x);
                let (dyr, dyf) = tensors(&mut reference, &mut fast, &dy);
                let (wr, wf) = weights(&mut reference, &mut fast, &scale, dtype);
                let desc = Rows::new(rows, dim).unwrap();

                // rms_norm: d_x and d_scale accumulate.
                let dx0 = random(&mut rng, len, 1.0);
                let ds0 = random(&mut rng, dim, 1.0);
                let (mut dxr, mut dxf) = tensors(&mut reference, &mut fast, &dx0);
                let (mut dsr, mut dsf) = tensors(&mut reference, &mut fast, &ds0);
                reference
                    .rms_norm_backward(
                        View::new(&xr, 1),
                        WeightView::new(&wr, 3),
                        View::new(&dyr, 2),
                        ViewMut::new(&mut dxr, 0),
                        ViewMut::new(&mut dsr, 0),
                        desc,
                    )
                    .unwrap();
                fast.rms_norm_backward(
                    View::new(&xf, 1),
                    WeightView::new(&wf, 3),
                    View::new(&dyf, 2),
                    ViewMut::new(&mut dxf, 0),
                    ViewMut::new(&mut dsf, 0),
                    desc,
                )
                .unwrap();
                worst.add(close(&dxf, &dxr, 2e-5, &format!("{what}: rms_norm d_x")));
                worst.add(close(&dsf, &dsr, 2e-5, &format!("{what}: rms_norm d_scale")));

                // l2_normalize per head, in place (heads of `dim / heads` values).
                let heads = if dim % 3 == 0 { 3 } else { 1 };
                let hdesc = Heads::new(rows, heads, dim / heads).unwrap();
                let (mut dr, mut df) = tensors(&mut reference, &mut fast, &dy);
                reference.l2_normalize_backward(View::new(&xr, 1), ViewMut::new(&mut dr, 2), hdesc).unwrap();
                fast.l2_normalize_backward(View::new(&xf, 1), ViewMut::new(&mut df, 2), hdesc).unwrap();
                worst.add(close(&df, &dr, 2e-5, &format!("{what}: l2_normalize")));

                // Fixed gate: d_state replaced, d_z and d_bias accumulate.
                let z = random(&mut rng, len, 2.0);
                let (zr, zf) = tensors(&mut reference, &mut fast, &z);
                let (mut dsr, mut dsf) = tensors(&mut reference, &mut fast, &dy);
                let (mut dzr, mut dzf) = tensors(&mut reference, &mut fast, &dx0);
                let (mut dbr, mut dbf) = tensors(&mut reference, &mut fast, &ds0);
                reference
                    .gate_fixed_backward(
                        View::new(&xr, 1),
                        View::new(&zr, 0),
                        WeightView::new(&wr, 3),
                        ViewMut::new(&mut dsr, 2),
                        ViewMut::new(&mut dzr, 0),
                        ViewMut::new(&mut dbr, 0),
                        desc,
                    )
                    .unwrap();
                fast.gate_fixed_backward(
                    View::new(&xf, 1),
                    View::new(&zf, 0),
                    WeightView::new(&wf, 3),
                    ViewMut::new(&mut dsf, 2),
                    ViewMut::new(&mut dzf, 0),
                    ViewMut::new(&mut dbf, 0),
                    desc,
                )
                .unwrap();
                worst.add(close(&dsf, &dsr, 2e-5, &format!("{what}: gate_fixed d_state")));
                worst.add(close(&dzf, &dzr, 2e-5, &format!("{what}: gate_fixed d_z")));
                worst.add(close(&dbf, &dbr, 2e-5, &format!("{what}: gate_fixed d_bias")));

                // LSTM gate.
                let forget = random(&mut rng, len, 2.0);
                let input = random(&mut rng, len, 2.0);
                let bias2 = random(&mut rng, 2 * dim, 1.0);
                let (fr, ff) = tensors(&mut reference, &mut fast, &forget);
                let (ir, inf) = tensors(&mut reference, &mut fast, &input);
                let (br, bf) = weights(&mut reference, &mut fast, &bias2, dtype);
                let mut r: Vec<Vec<f32>> = vec![dy[2..].to_vec(), dx0.clone(), z.clone(), x[1..].to_vec()];
                r.extend([ds0.clone(), scale[..dim].to_vec()]);
                let mut f = r.clone();
                {
                    let [d_state, d_z, d_f, d_i, d_bf, d_bi] = &mut r[..] else { unreachable!() };
                    reference
                        .gate_lstm_backward(
                            View::new(&xr, 1),
                            View::new(&zr, 0),
                            View::new(&fr, 0),
                            View::new(&ir, 0),
                            WeightView::new(&br, 0),
                            WeightView::new(&br, dim),
                            ViewMut::new(d_state, 0),
                            ViewMut::new(d_z, 0),
                            ViewMut::new(d_f, 0),
                            ViewMut::new(d_i, 0),
                            ViewMut::new(d_bf, 0),
                            ViewMut::new(d_bi, 0),
                            desc,
                        )
                        .unwrap();
                }
                {
                    let [d_state, d_z, d_f, d_i, d_bf, d_bi] = &mut f[..] else { unreachable!() };
                    fast.gate_lstm_backward(
                        View::new(&xf, 1),
                        View::new(&zf, 0),
                        View::new(&ff, 0),
                        View::new(&inf, 0),
                        WeightView::new(&bf, 0),
                        WeightView::new(&bf, dim),
                        ViewMut::new(d_state, 0),
                        ViewMut::new(d_z, 0),
                        ViewMut::new(d_f, 0),
                        ViewMut::new(d_i, 0),
                        ViewMut::new(d_bf, 0),
                        ViewMut::new(d_bi, 0),
                        desc,
                    )
                    .unwrap();
                }
                for (label, (a, e)) in ["d_state", "d_z", "d_forget", "d_input", "d_forget_bias", "d_input_bias"]
                    .iter()
                    .zip(f.iter().zip(&r))
                {
                    worst.add(close(a, e, 2e-5, &format!("{what}: gate_lstm {label}")));
                }

                // add_positions: positions x batch rows.
                let batch = if rows % 5 == 0 { 5 } else { 1 };
                let pdesc = Positions::new(rows / batch, batch, dim).unwrap();
                let (mut tr, mut tf) = tensors(&mut reference, &mut fast, &ds0.repeat(rows / batch));
                reference.add_positions_backward(View::new(&dyr, 2), ViewMut::new(&mut tr, 0), pdesc).unwrap();
                fast.add_positions_backward(View::new(&dyf, 2), ViewMut::new(&mut tf, 0), pdesc).unwrap();
                worst.add(close(&tf, &tr, 2e-5, &format!("{what}: add_positions")));

                // add_assign and gather_runs_add.
                let (mut ar, mut af) = tensors(&mut reference, &mut fast, &dx0);
                reference.add_assign(View::new(&dyr, 2), ViewMut::new(&mut ar, 0), len).unwrap();
                fast.add_assign(View::new(&dyf, 2), ViewMut::new(&mut af, 0), len).unwrap();
                worst.add(close(&af, &ar, 1e-6, &format!("{what}: add_assign")));
                let runs = Strided::new(rows, dim / 2 + 1, dim).unwrap();
                let (mut gr, mut gf) = tensors(&mut reference, &mut fast, &dx0[..runs.total()]);
                reference.gather_runs_add(View::new(&dyr, 2), ViewMut::new(&mut gr, 0), runs).unwrap();
                fast.gather_runs_add(View::new(&dyf, 2), ViewMut::new(&mut gf, 0), runs).unwrap();
                worst.add(close(&gf, &gr, 1e-6, &format!("{what}: gather_runs_add")));
            }
        }
    }
}

#[test]
fn embed_backward_matches_reference_with_repeated_ids_and_rejects_bad_ids() {
    let mut worst = Worst("embed_backward", 0.0);
    let mut rng = SplitMix64::new(16);
    for (name, mut fast) in backends() {
        let mut reference = Ref::new(Heap);
        for &(count, vocab, dim) in &[(1, 1, 1), (7, 3, 5), (300, 260, 257), (1000, 11, 64)] {
            let ids: Vec<u32> = (0..count + 2).map(|_| (rng.next_u64() % vocab as u64) as u32).collect();
            let mut tr = reference.alloc_tokens(ids.len()).unwrap();
            reference.write_tokens(&mut tr, 0, &ids).unwrap();
            let mut tf = fast.alloc_tokens(ids.len()).unwrap();
            fast.write_tokens(&mut tf, 0, &ids).unwrap();
            let dy = random(&mut rng, count * dim, 1.0);
            let table0 = random(&mut rng, vocab * dim, 1.0);
            let (dyr, dyf) = tensors(&mut reference, &mut fast, &dy);
            let (mut gr, mut gf) = tensors(&mut reference, &mut fast, &table0);
            let desc = Embed::new(count, vocab, dim).unwrap();
            reference.embed_backward(&tr, 2, View::new(&dyr, 0), ViewMut::new(&mut gr, 0), desc).unwrap();
            fast.embed_backward(&tf, 2, View::new(&dyf, 0), ViewMut::new(&mut gf, 0), desc).unwrap();
            worst.add(close(&gf, &gr, 1e-6, &format!("{name} embed_backward {count} ids, {vocab}x{dim}")));
        }
        // An id outside the vocabulary is an error, and nothing is written.
        let mut t = fast.alloc_tokens(3).unwrap();
        fast.write_tokens(&mut t, 0, &[0, 1, 9]).unwrap();
        let dy = fast.alloc_tensor(6).unwrap();
        let mut table = fast.alloc_tensor(8).unwrap();
        let e = fast
            .embed_backward(&t, 0, View::new(&dy, 0), ViewMut::new(&mut table, 0), Embed::new(3, 4, 2).unwrap())
            .unwrap_err();
        assert!(matches!(e, CpuError::Core(CoreError::TokenOutOfRange { index: 2, id: 9, vocab: 4 })), "{e}");
        assert!(table.iter().all(|&v| v == 0.0));
    }
}

#[test]
fn too_small_buffers_and_mismatched_arguments_are_errors_not_panics() {
    let mut k = Cpu::with_options(Heap, Options { max_head_dim: 8, ..Options::default() }).unwrap();
    let small = |k: &mut Fast, n| k.alloc_tensor(n).unwrap();
    let x = small(&mut k, 12);
    let out = small(&mut k, 12);
    let mut d_out = small(&mut k, 12);
    let mut d_x = small(&mut k, 12);
    let mut d_w = small(&mut k, 8); // needs 16
    let mut w = k.alloc_weights(16, WeightDtype::F16).unwrap();
    k.write_weights(&mut w, 0, brt_core::WeightData::F32(&[0.5; 16])).unwrap();
    let desc = Matmul::new(3, 4, 4).unwrap();
    let e = k
        .matmul_backward(
            View::new(&x, 0),
            WeightView::new(&w, 0),
            View::new(&out, 0),
            ViewMut::new(&mut d_out, 0),
            Some(ViewMut::new(&mut d_x, 0)),
            Some(ViewMut::new(&mut d_w, 0)),
            desc,
        )
        .unwrap_err();
    assert!(matches!(e, CpuError::Core(CoreError::BufferTooSmall { needed: 16, available: 8, .. })), "{e}");

    // A bias without its gradient, and a head wider than the backend was built for.
    let att = Attention::new(1, 2, 3, 1, 4, Mask::Window { offset: 1, window: 1 }, false).unwrap();
    let t = small(&mut k, 64);
    let mut g: Vec<Vec<f32>> = (0..4).map(|_| small(&mut k, 64)).collect();
    let mut params = k.alloc_weights(1 + T5_BUCKETS, WeightDtype::F32).unwrap();
    k.write_weights(&mut params, 0, brt_core::WeightData::F32(&[0.1; 1 + T5_BUCKETS])).unwrap();
    let [dq, dk, dv, ds] = &mut g[..] else { unreachable!() };
    let e = k
        .attention_backward(
            View::new(&t, 0),
            View::new(&t, 0),
            View::new(&t, 0),
            WeightView::new(&params, 0),
            Some(WeightView::new(&params, 1)),
            View::new(&t, 0),
            ViewMut::new(dq, 0),
            ViewMut::new(dk, 0),
            ViewMut::new(dv, 0),
            ViewMut::new(ds, 0),
            None,
            att,
        )
        .unwrap_err();
    assert!(matches!(e, CpuError::Core(CoreError::InvalidShape { .. })), "{e}");
    let wide = Attention::new(1, 2, 2, 1, 16, Mask::None, false).unwrap();
    let e = k
        .attention_backward(
            View::new(&t, 0),
            View::new(&t, 0),
            View::new(&t, 0),
            WeightView::new(&params, 0),
            None,
            View::new(&t, 0),
            ViewMut::new(dq, 0),
            ViewMut::new(dk, 0),
            ViewMut::new(dv, 0),
            ViewMut::new(ds, 0),
            None,
            wide,
        )
        .unwrap_err();
    assert!(matches!(e, CpuError::Capacity { needed: 16, limit: 8, .. }), "{e}");
    let lin = LinearAttention::new(1, 4, 1, 4, false).unwrap();
    let e = k
        .linear_attention_backward(
            View::new(&t, 60),
            View::new(&t, 0),
            View::new(&t, 0),
            WeightView::new(&params, 0),
            View::new(&t, 0),
            View::new(&t, 0),
            ViewMut::new(dq, 0),
            ViewMut::new(dk, 0),
            ViewMut::new(dv, 0),
            ViewMut::new(ds, 0),
            ViewMut::new(&mut d_x, 0),
            lin,
        )
        .unwrap_err();
    assert!(matches!(e, CpuError::Core(CoreError::BufferTooSmall { .. })), "{e}");
}
