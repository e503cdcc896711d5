//! Every kernel of the CPU backend against the scalar reference, at every SIMD
//! level this machine supports (scalar included) and on two threads, on shapes
//! that cross the blocking boundaries of the products and attention tiles.

mod common;

use brt_core::desc::{Activation, Attention, Embed, Heads, LinearAttention, Mask, Matmul, Positions, Rows, Strided};
use brt_core::init::SplitMix64;
use brt_core::{CoreError, Kernels, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
use brt_cpu::{Cpu, CpuError, Heap, Options, SimdLevel};
use common::*;

/// Uploads `values` as a tensor on both backends.
fn tensors(r: &mut Ref, f: &mut Fast, values: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let mut a = r.alloc_tensor(values.len()).unwrap();
    r.write_tensor(&mut a, 0, values).unwrap();
    let mut b = f.alloc_tensor(values.len()).unwrap();
    f.write_tensor(&mut b, 0, values).unwrap();
    (a, b)
}

fn weights(
    r: &mut Ref,
    f: &mut Fast,
    values: &[f32],
    dtype: WeightDtype,
) -> (<Ref as Storage>::Weights, <Fast as Storage>::Weights) {
    let stored = Stored::new(values, dtype);
    let mut a = r.alloc_weights(values.len(), dtype).unwrap();
    r.write_weights(&mut a, 0, stored.data()).unwrap();
    let mut b = f.alloc_weights(values.len(), dtype).unwrap();
    f.write_weights(&mut b, 0, stored.data()).unwrap();
    (a, b)
}

#[test]
fn matmul_matches_reference_for_every_shape_order_epilogue_and_dtype() {
    let shapes = [
        (1, 1, 1),
        (3, 5, 7),
        (4, 300, 1100),
        (2, 33, 517),
        (5, 40, 70),
        (7, 13, 33),
        (37, 300, 70),
        (150, 257, 40),
        (13, 64, 1100),
        (7, 20, 4200),
        (290, 70, 50),
    ];
    let mut rng = SplitMix64::new(1);
    for (name, mut fast) in backends() {
        let mut reference = Ref::new(Heap);
        for &(m, k, n) in &shapes {
            for dtype in [WeightDtype::F32, WeightDtype::F16, WeightDtype::Bf16] {
                for (variant, transposed) in [(0, false), (1, true), (2, false), (3, true)] {
                    let x = random(&mut rng, 3 + m * k, 1.0);
                    let w = random(&mut rng, 5 + k * n, 1.0);
                    let y0 = random(&mut rng, 2 + m * n, 1.0);
                    let mut desc = Matmul::new(m, k, n).unwrap();
                    if transposed {
                        desc = desc.transposed_weight();
                    }
                    desc = match variant {
                        0 => desc,
                        1 => desc.alpha(0.37).activation(Activation::Relu),
                        2 => desc.accumulate().activation(Activation::Tanh).alpha(0.05),
                        _ => desc.accumulate().alpha(-1.5),
                    };
                    let (xr, xf) = tensors(&mut reference, &mut fast, &x);
                    let (wr, wf) = weights(&mut reference, &mut fast, &w, dtype);
                    let (mut yr, mut yf) = tensors(&mut reference, &mut fast, &y0);
                    reference
                        .matmul(View::new(&xr, 3), WeightView::new(&wr, 5), ViewMut::new(&mut yr, 2), desc)
                        .unwrap();
                    fast.matmul(View::new(&xf, 3), WeightView::new(&wf, 5), ViewMut::new(&mut yf, 2), desc).unwrap();
                    let what = format!("{name} matmul {m}x{k}x{n} {dtype:?} variant {variant} transposed {transposed}");
                    assert_eq!(&yf[..2], &y0[..2], "{what}: wrote before the view");
                    assert_close(&yf, &yr, 2e-5 * (k as f32).sqrt(), &what);
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn run_attention(
    fast: &mut Fast,
    reference: &mut Ref,
    rng: &mut SplitMix64,
    desc: Attention,
    with_bias: bool,
    dtype: WeightDtype,
    scale_range: f32,
    what: &str,
) {
    let heads = desc.heads();
    let mut q = random(rng, desc.query_len(), 1.0);
    let mut k = random(rng, desc.key_len(), 1.0);
    if scale_range > 100.0 {
        // Huge scales amplify any rounding of q.k: use quarters, whose dot
        // products are exact in f32, so both sides see the same logits.
        for x in q.iter_mut().chain(k.iter_mut()) {
            *x = (*x * 4.0).round() / 4.0;
        }
    }
    let v = random(rng, desc.key_len(), 1.0);
    let mut params = random(rng, heads + heads * 32, scale_range);
    for b in &mut params[heads..] {
        *b /= scale_range; // bias table values in [-1, 1]
    }
    let (qr, qf) = tensors(reference, fast, &q);
    let (kr, kf) = tensors(reference, fast, &k);
    let (vr, vf) = tensors(reference, fast, &v);
    let (pr, pf) = weights(reference, fast, &params, dtype);
    let (mut or, mut of) = tensors(reference, fast, &vec![0.0; desc.query_len()]);
    let bias_r = with_bias.then(|| WeightView::new(&pr, heads));
    let bias_f = with_bias.then(|| WeightView::new(&pf, heads));
    reference
        .attention(
            View::new(&qr, 0),
            View::new(&kr, 0),
            View::new(&vr, 0),
            WeightView::new(&pr, 0),
            bias_r,
            ViewMut::new(&mut or, 0),
            desc,
        )
        .unwrap();
    fast.attention(
        View::new(&qf, 0),
        View::new(&kf, 0),
        View::new(&vf, 0),
        WeightView::new(&pf, 0),
        bias_f,
        ViewMut::new(&mut of, 0),
        desc,
    )
    .unwrap();
    assert_close(&of, &or, 2e-5, what);
}

#[test]
fn window_attention_matches_reference() {
    let mut rng = SplitMix64::new(2);
    // (batch, queries, window, heads, head_dim)
    let cases = [(1, 1, 1, 1, 1), (2, 5, 4, 3, 8), (1, 64, 64, 4, 64), (2, 200, 32, 2, 20), (1, 130, 300, 2, 100)];
    for (name, mut fast) in backends() {
        let mut reference = Ref::new(Heap);
        for &(batch, n, w, heads, dh) in &cases {
            for (abs, dtype) in [(false, WeightDtype::F32), (true, WeightDtype::Bf16)] {
                let desc =
                    Attention::new(batch, n, w + n, heads, dh, Mask::Window { offset: w, window: w }, abs).unwrap();
                let what = format!("{name} window attention B{batch} n{n} W{w} H{heads} dh{dh} abs {abs}");
                run_attention(&mut fast, &mut reference, &mut rng, desc, true, dtype, 4.0, &what);
            }
        }
        // A larger offset than the window (cached keys in front), no bias.
        let desc = Attention::new(2, 40, 100, 2, 16, Mask::Window { offset: 50, window: 20 }, false).unwrap();
        run_attention(
            &mut fast,
            &mut reference,
            &mut rng,
            desc,
            false,
            WeightDtype::F32,
            4.0,
            &format!("{name} offset window"),
        );
    }
}

#[test]
fn full_attention_matches_reference_including_the_safe_softmax_floor() {
    let mut rng = SplitMix64::new(3);
    // (batch, queries, keys, heads, head_dim)
    let cases = [(1, 1, 1, 1, 4), (2, 64, 128, 4, 64), (1, 100, 450, 3, 33), (3, 7, 9, 2, 128)];
    for (name, mut fast) in backends() {
        let mut reference = Ref::new(Heap);
        for &(batch, n, keys, heads, dh) in &cases {
            let desc = Attention::new(batch, n, keys, heads, dh, Mask::None, false).unwrap();
            let what = format!("{name} full attention B{batch} n{n} keys{keys} H{heads} dh{dh}");
            run_attention(&mut fast, &mut reference, &mut rng, desc, false, WeightDtype::F32, 4.0, &what);
            // Huge scales push some rows' logits far below the floor of -1000: those
            // rows attend to (almost) nothing, exactly as the reference says.
            run_attention(
                &mut fast,
                &mut reference,
                &mut rng,
                desc,
                false,
                WeightDtype::F32,
                5000.0,
                &format!("{what} floor"),
            );
        }
    }
}

#[test]
fn bias_without_window_is_an_error() {
    let mut fast = Cpu::new(Heap).unwrap();
    let t = fast.alloc_tensor(64).unwrap();
    let mut o = fast.alloc_tensor(64).unwrap();
    let w = fast.alloc_weights(64, WeightDtype::F32).unwrap();
    let desc = Attention::new(1, 2, 2, 1, 4, Mask::None, false).unwrap();
    let r = fast.attention(
        View::new(&t, 0),
        View::new(&t, 0),
        View::new(&t, 0),
        WeightView::new(&w, 0),
        Some(WeightView::new(&w, 1)),
        ViewMut::new(&mut o, 0),
        desc,
    );
    assert!(matches!(r, Err(CpuError::Core(CoreError::InvalidShape { .. }))), "{r:?}");
}

#[test]
fn linear_attention_matches_the_recurrent_reference_across_calls() {
    let mut rng = SplitMix64::new(4);
    for (name, mut fast) in backends() {
        let mut reference = Ref::new(Heap);
        for &(batch, heads, dh, calls) in &[(1, 1, 1, &[1usize][..]), (2, 3, 8, &[5, 70, 1]), (1, 2, 64, &[130, 64])] {
            let d0 = LinearAttention::new(batch, 1, heads, dh, true).unwrap();
            let (mut sr, mut sf) = tensors(&mut reference, &mut fast, &vec![0.0; d0.state_len()]);
            let scale = random(&mut rng, heads, 2.0);
            let (wr, wf) = weights(&mut reference, &mut fast, &scale, WeightDtype::F32);
            for &tokens in calls {
                let desc = LinearAttention::new(batch, tokens, heads, dh, false).unwrap();
                let q = random(&mut rng, desc.token_len(), 1.0);
                let k = random(&mut rng, desc.token_len(), 1.0);
                let v = random(&mut rng, desc.token_len(), 1.0);
                let (qr, qf) = tensors(&mut reference, &mut fast, &q);
                let (kr, kf) = tensors(&mut reference, &mut fast, &k);
                let (vr, vf) = tensors(&mut reference, &mut fast, &v);
                let (mut or, mut of) = tensors(&mut reference, &mut fast, &vec![0.0; desc.token_len()]);
                reference
                    .linear_attention(
                        View::new(&qr, 0),
                        View::new(&kr, 0),
                        View::new(&vr, 0),
                        WeightView::new(&wr, 0),
                        ViewMut::new(&mut sr, 0),
                        ViewMut::new(&mut or, 0),
                        desc,
                    )
                    .unwrap();
                fast.linear_attention(
                    View::new(&qf, 0),
                    View::new(&kf, 0),
                    View::new(&vf, 0),
                    WeightView::new(&wf, 0),
                    ViewMut::new(&mut sf, 0),
                    ViewMut::new(&mut of, 0),
                    desc,
                )
                .unwrap();
                let what = format!("{name} linear attention B{batch} H{heads} dh{dh} tokens {tokens}");
                assert_close(&of, &or, 2e-5, &what);
                assert_close(&sf, &sr, 2e-6, &format!("{what} state"));
            }
        }
    }
}

#[test]
fn row_kernels_match_reference() {
    let mut rng = SplitMix64::new(5);
    for (name, mut fast) in backends() {
        let mut reference = Ref::new(Heap);
        for dtype in [WeightDtype::F32, WeightDtype::F16, WeightDtype::Bf16] {
            for &(rows, dim) in &[(1, 1), (3, 7), (5, 300), (2, 1024)] {
                let what = format!("{name} {dtype:?} {rows}x{dim}");
                let x = random(&mut rng, rows * dim + 1, 3.0);
                let w = random(&mut rng, (rows + 4) * dim + 2, 1.5);
                let (xr, xf) = tensors(&mut reference, &mut fast, &x);
                let (wr, wf) = weights(&mut reference, &mut fast, &w, dtype);
                let desc = Rows::new(rows, dim).unwrap();

                let (mut or, mut of) = tensors(&mut reference, &mut fast, &vec![0.0; rows * dim]);
                reference.rms_norm(View::new(&xr, 1), WeightView::new(&wr, 2), ViewMut::new(&mut or, 0), desc).unwrap();
                fast.rms_norm(View::new(&xf, 1), WeightView::new(&wf, 2), ViewMut::new(&mut of, 0), desc).unwrap();
                assert_close(&of, &or, 1e-6, &format!("{what} rms_norm"));

                // l2 per head: dim split into heads when it divides.
                let (heads, dh) = if dim % 4 == 0 { (4, dim / 4) } else { (1, dim) };
                let (mut lr, mut lf) = tensors(&mut reference, &mut fast, &x);
                let hd = Heads::new(rows, heads, dh).unwrap();
                reference.l2_normalize(ViewMut::new(&mut lr, 1), hd).unwrap();
                fast.l2_normalize(ViewMut::new(&mut lf, 1), hd).unwrap();
                assert_close(&lf, &lr, 1e-6, &format!("{what} l2_normalize"));

                // State ids: positions x batch rows.
                if rows > 1 {
                    let pd = Positions::new(rows, 1, dim).unwrap();
                    let (mut pr, mut pf) = tensors(&mut reference, &mut fast, &x);
                    reference.add_positions(ViewMut::new(&mut pr, 1), WeightView::new(&wr, 1), pd).unwrap();
                    fast.add_positions(ViewMut::new(&mut pf, 1), WeightView::new(&wf, 1), pd).unwrap();
                    assert_close(&pf, &pr, 1e-6, &format!("{what} add_positions"));
                }

                // Gates.
                let z = random(&mut rng, rows * dim, 2.0);
                let (zr, zf) = tensors(&mut reference, &mut fast, &z);
                let (mut gr, mut gf) = tensors(&mut reference, &mut fast, &x);
                reference
                    .gate_fixed(ViewMut::new(&mut gr, 1), View::new(&zr, 0), WeightView::new(&wr, 0), desc)
                    .unwrap();
                fast.gate_fixed(ViewMut::new(&mut gf, 1), View::new(&zf, 0), WeightView::new(&wf, 0), desc).unwrap();
                assert_close(&gf, &gr, 1e-6, &format!("{what} gate_fixed"));
                let (mut gr, mut gf) = tensors(&mut reference, &mut fast, &x);
                reference
                    .gate_lstm(
                        ViewMut::new(&mut gr, 1),
                        View::new(&zr, 0),
                        View::new(&xr, 0),
                        View::new(&xr, 1),
                        WeightView::new(&wr, 0),
                        WeightView::new(&wr, 3),
                        desc,
                    )
                    .unwrap();
                fast.gate_lstm(
                    ViewMut::new(&mut gf, 1),
                    View::new(&zf, 0),
                    View::new(&xf, 0),
                    View::new(&xf, 1),
                    WeightView::new(&wf, 0),
                    WeightView::new(&wf, 3),
                    desc,
                )
                .unwrap();
                assert_close(&gf, &gr, 1e-6, &format!("{what} gate_lstm"));

                // Strided copies of parameters and fills.
                let runs = Strided::new(rows, dim / 2 + 1, dim + 1).unwrap();
                let (mut cr, mut cf) = tensors(&mut reference, &mut fast, &x);
                reference.copy_weights(WeightView::new(&wr, 1), ViewMut::new(&mut cr, 0), runs).unwrap();
                fast.copy_weights(WeightView::new(&wf, 1), ViewMut::new(&mut cf, 0), runs).unwrap();
                assert_eq!(cf, cr, "{what} copy_weights");
                reference.fill(ViewMut::new(&mut cr, 0), runs, 0.5).unwrap();
                fast.fill(ViewMut::new(&mut cf, 0), runs, 0.5).unwrap();
                assert_eq!(cf, cr, "{what} fill");
                reference.copy(View::new(&xr, 0), ViewMut::new(&mut cr, 1), rows * dim).unwrap();
                fast.copy(View::new(&xf, 0), ViewMut::new(&mut cf, 1), rows * dim).unwrap();
                assert_eq!(cf, cr, "{what} copy");
            }
        }
    }
}

#[test]
fn embed_matches_reference_and_rejects_bad_ids() {
    let mut rng = SplitMix64::new(6);
    for dtype in [WeightDtype::F32, WeightDtype::F16, WeightDtype::Bf16] {
        let mut fast = Cpu::new(Heap).unwrap();
        let mut reference = Ref::new(Heap);
        let (vocab, dim) = (11, 6);
        let table = random(&mut rng, vocab * dim, 1.0);
        let (wr, wf) = weights(&mut reference, &mut fast, &table, dtype);
        let ids = [3u32, 0, 10, 10, 7];
        let mut tr = reference.alloc_tokens(6).unwrap();
        reference.write_tokens(&mut tr, 1, &ids).unwrap();
        let mut tf = fast.alloc_tokens(6).unwrap();
        fast.write_tokens(&mut tf, 1, &ids).unwrap();
        let desc = Embed::new(5, vocab, dim).unwrap();
        let (mut or, mut of) = tensors(&mut reference, &mut fast, &vec![0.0; 5 * dim]);
        reference.embed(&tr, 1, WeightView::new(&wr, 0), ViewMut::new(&mut or, 0), desc).unwrap();
        fast.embed(&tf, 1, WeightView::new(&wf, 0), ViewMut::new(&mut of, 0), desc).unwrap();
        assert_eq!(of, or);
        fast.write_tokens(&mut tf, 2, &[11]).unwrap();
        let r = fast.embed(&tf, 1, WeightView::new(&wf, 0), ViewMut::new(&mut of, 0), desc);
        assert!(matches!(r, Err(CpuError::Core(CoreError::TokenOutOfRange { index: 1, id: 11, vocab: 11 }))), "{r:?}");
    }
}

#[test]
fn too_small_buffers_are_errors_not_panics() {
    let mut k = Cpu::new(Heap).unwrap();
    let small = k.alloc_tensor(10).unwrap();
    let mut out = k.alloc_tensor(10).unwrap();
    let w = k.alloc_weights(10, WeightDtype::F16).unwrap();
    let too_small = |r: Result<(), CpuError>| matches!(r, Err(CpuError::Core(CoreError::BufferTooSmall { .. })));
    let mm = Matmul::new(2, 3, 4).unwrap();
    assert!(too_small(k.matmul(View::new(&small, 0), WeightView::new(&w, 0), ViewMut::new(&mut out, 0), mm)));
    let mm = Matmul::new(2, 2, 2).unwrap();
    assert!(too_small(k.matmul(View::new(&small, 7), WeightView::new(&w, 0), ViewMut::new(&mut out, 0), mm)));
    assert!(too_small(k.matmul(View::new(&small, 0), WeightView::new(&w, 8), ViewMut::new(&mut out, 0), mm)));
    assert!(too_small(k.matmul(View::new(&small, 0), WeightView::new(&w, 0), ViewMut::new(&mut out, 9), mm)));
    assert!(too_small(k.rms_norm(
        View::new(&small, 0),
        WeightView::new(&w, 0),
        ViewMut::new(&mut out, 0),
        Rows::new(3, 4).unwrap()
    )));
    assert!(too_small(k.l2_normalize(ViewMut::new(&mut out, 5), Heads::new(2, 2, 2).unwrap())));
    let att = Attention::new(1, 3, 3, 1, 4, Mask::None, false).unwrap();
    assert!(too_small(k.attention(
        View::new(&small, 0),
        View::new(&small, 0),
        View::new(&small, 0),
        WeightView::new(&w, 0),
        None,
        ViewMut::new(&mut out, 0),
        att
    )));
    let lin = LinearAttention::new(1, 2, 1, 4, false).unwrap();
    let mut state = k.alloc_tensor(100).unwrap();
    assert!(too_small(k.linear_attention(
        View::new(&small, 0),
        View::new(&small, 0),
        View::new(&small, 0),
        WeightView::new(&w, 0),
        ViewMut::new(&mut out, 0),
        ViewMut::new(&mut state, 0),
        lin
    )));
    assert!(too_small(k.copy(View::new(&small, 5), ViewMut::new(&mut out, 0), 6)));
    assert!(too_small(k.fill(ViewMut::new(&mut out, 1), Strided::new(3, 2, 4).unwrap(), 1.0)));
    assert!(too_small(k.copy_weights(WeightView::new(&w, 9), ViewMut::new(&mut out, 0), Strided::contiguous(2))));
    let mut tokens = k.alloc_tokens(2).unwrap();
    assert!(too_small(k.write_tokens(&mut tokens, 1, &[1, 2])));
    let mut w2 = k.alloc_weights(4, WeightDtype::Bf16).unwrap();
    assert!(too_small(k.write_weights(&mut w2, 3, WeightData::F32(&[1.0, 2.0]))));
}

#[test]
fn head_widths_above_the_capacity_are_errors() {
    let mut k = Cpu::with_options(Heap, Options { max_head_dim: 8, ..Options::default() }).unwrap();
    let t = k.alloc_tensor(64).unwrap();
    let mut o = k.alloc_tensor(64).unwrap();
    let w = k.alloc_weights(4, WeightDtype::F32).unwrap();
    let att = Attention::new(1, 2, 2, 1, 16, Mask::None, false).unwrap();
    let r = k.attention(
        View::new(&t, 0),
        View::new(&t, 0),
        View::new(&t, 0),
        WeightView::new(&w, 0),
        None,
        ViewMut::new(&mut o, 0),
        att,
    );
    assert!(matches!(r, Err(CpuError::Capacity { needed: 16, limit: 8, .. })), "{r:?}");
    let huge = Options { max_head_dim: usize::MAX, ..Options::default() };
    assert!(matches!(Cpu::with_options(Heap, huge), Err(CpuError::Capacity { .. })));
}

#[test]
fn levels_can_be_forced_and_unsupported_ones_are_refused() {
    for level in SimdLevel::ALL {
        let r = Cpu::with_level(Heap, level);
        if level.is_supported() {
            assert_eq!(r.unwrap().level(), level);
        } else {
            assert!(matches!(r, Err(CpuError::UnsupportedLevel { level: l }) if l == level));
        }
        assert_eq!(SimdLevel::from_name(level.name()), Some(level));
    }
    assert!(SimdLevel::Scalar.is_supported());
    assert_eq!(Cpu::new(Heap).unwrap().level(), SimdLevel::detect());
    assert!(matches!(Cpu::with_options(Heap, Options::threads(0)), Err(CpuError::Threads { .. })));
}

#[test]
fn f16_weights_take_half_the_memory_of_f32() {
    let mut k = Cpu::new(Heap).unwrap();
    let a = k.alloc_weights(1000, WeightDtype::F32).unwrap();
    let b = k.alloc_weights(1000, WeightDtype::F16).unwrap();
    let c = k.alloc_weights(1000, WeightDtype::Bf16).unwrap();
    assert_eq!(a.bytes(), 4000);
    assert_eq!(b.bytes(), 2000);
    assert_eq!(c.bytes(), 2000);
}

#[test]
fn safe_softmax_floor_term_is_exact() {
    // One head, 3 keys with identical key vectors: every logit equals
    // a * (q.k). With a*(q.k) = -1000 the three keys and the floor term weigh the
    // same, so the output is sum(v) / 4; at -3000 every weight underflows and the
    // output is 0 (the official "safe" softmax of an all-masked row).
    for (name, mut fast) in backends() {
        let mut reference = Ref::new(Heap);
        for (a, expected_scale) in [(-1000.0f32, 0.25f32), (-3000.0, 0.0)] {
            let desc = Attention::new(1, 1, 3, 1, 4, Mask::None, false).unwrap();
            let q = [1.0, 0.0, 0.0, 0.0];
            let k = [1.0, 0.5, 0.0, 0.0].repeat(3);
            let v = [1.0, 2.0, 3.0, 4.0, 0.5, 0.5, 0.5, 0.5, -1.0, 0.0, 1.0, 2.0];
            let (qr, qf) = tensors(&mut reference, &mut fast, &q);
            let (kr, kf) = tensors(&mut reference, &mut fast, &k);
            let (vr, vf) = tensors(&mut reference, &mut fast, &v);
            let (wr, wf) = weights(&mut reference, &mut fast, &[a], WeightDtype::F32);
            let (mut or, mut of) = tensors(&mut reference, &mut fast, &[9.0; 4]);
            reference
                .attention(
                    View::new(&qr, 0),
                    View::new(&kr, 0),
                    View::new(&vr, 0),
                    WeightView::new(&wr, 0),
                    None,
                    ViewMut::new(&mut or, 0),
                    desc,
                )
                .unwrap();
            fast.attention(
                View::new(&qf, 0),
                View::new(&kf, 0),
                View::new(&vf, 0),
                WeightView::new(&wf, 0),
                None,
                ViewMut::new(&mut of, 0),
                desc,
            )
            .unwrap();
            let expected: Vec<f32> = (0..4).map(|c| (v[c] + v[4 + c] + v[8 + c]) * expected_scale).collect();
            assert_close(&or, &expected, 1e-6, &format!("reference at a = {a}"));
            assert_close(&of, &expected, 1e-6, &format!("{name} at a = {a}"));
        }
    }
}
