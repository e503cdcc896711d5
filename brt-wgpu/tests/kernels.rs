//! Every kernel against the scalar reference (`brt_core::Reference`) on small
//! shapes chosen to hit tile edges, odd offsets (packed half-precision weights),
//! every option of each descriptor, and the error paths.

mod common;

use brt_core::desc::{Activation, Attention, Embed, Heads, LinearAttention, Mask, Matmul, Positions, Rows, Strided};
use brt_core::init::SplitMix64;
use brt_core::{CoreError, Kernels, Reference, View, ViewMut, WeightDtype, WeightView};
use brt_cpu::Heap;
use brt_wgpu::WgpuError;
use common::{assert_close, random, read, tensor, weights, with_gpu};

const DTYPES: [WeightDtype; 3] = [WeightDtype::F32, WeightDtype::F16, WeightDtype::Bf16];

fn reference() -> Reference<Heap> {
    Reference::new(Heap)
}

/// Runs `case` on the reference and on the GPU and compares the outputs.
macro_rules! compare {
    ($name:expr, $atol:expr, $rtol:expr, $case:ident ( $($arg:expr),* )) => {{
        let mut r = reference();
        let want = $case(&mut r, $($arg),*);
        let mut worst = 0f32;
        with_gpu($name, |k| {
            let got = $case(k, $($arg),*);
            worst = assert_close($name, &got, &want, $atol, $rtol);
        });
        worst
    }};
}

fn matmul_case<K: Kernels>(k: &mut K, desc: Matmul, dtype: WeightDtype, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed);
    let (xo, wo, oo) = (5, 3, 7);
    let x = tensor(k, &random(&mut rng, xo + desc.m() * desc.k(), 1.0));
    let w = weights(k, &random(&mut rng, wo + desc.k() * desc.n(), 0.5), dtype);
    let mut out = tensor(k, &random(&mut rng, oo + desc.m() * desc.n() + 2, 1.0));
    k.matmul(View::new(&x, xo), WeightView::new(&w, wo), ViewMut::new(&mut out, oo), desc).unwrap();
    read(k, &out)
}

#[test]
fn matmul_matches_reference_in_every_order_option_and_dtype() {
    // Up to 4 rows take the matrix-vector kernel, more the tiled one.
    let shapes =
        [(1, 8, 8), (70, 37, 65), (3, 130, 17), (64, 16, 64), (0, 4, 4), (4, 200, 33), (5, 9, 70), (2, 16, 300)];
    let mut seed = 1;
    for (m, kk, n) in shapes {
        for dtype in DTYPES {
            let base = Matmul::new(m, kk, n).unwrap();
            let variants = [
                base,
                base.transposed_weight(),
                base.accumulate().alpha(0.25).activation(Activation::Relu),
                base.transposed_weight().accumulate().activation(Activation::Tanh),
                base.alpha(40.0).activation(Activation::Tanh),
            ];
            for desc in variants {
                seed += 1;
                let name = format!("matmul {m}x{kk}x{n} {dtype:?} {desc:?}");
                compare!(&name, 2e-5, 2e-5, matmul_case(desc, dtype, seed));
            }
        }
    }
}

fn rms_case<K: Kernels>(k: &mut K, rows: usize, dim: usize, dtype: WeightDtype) -> Vec<f32> {
    let mut rng = SplitMix64::new(11);
    let x = tensor(k, &random(&mut rng, 3 + rows * dim, 2.0));
    let s = weights(k, &random(&mut rng, 1 + dim, 1.0), dtype);
    let mut out = tensor(k, &vec![9.0; 4 + rows * dim]);
    k.rms_norm(View::new(&x, 3), WeightView::new(&s, 1), ViewMut::new(&mut out, 2), Rows::new(rows, dim).unwrap())
        .unwrap();
    read(k, &out)
}

#[test]
fn rms_norm_matches_reference() {
    for (rows, dim) in [(1, 1), (5, 7), (3, 64), (2, 300), (0, 4)] {
        for dtype in DTYPES {
            compare!(&format!("rms_norm {rows}x{dim} {dtype:?}"), 1e-5, 1e-5, rms_case(rows, dim, dtype));
        }
    }
}

fn l2_case<K: Kernels>(k: &mut K, rows: usize, heads: usize, dh: usize) -> Vec<f32> {
    let mut rng = SplitMix64::new(12);
    let mut x = tensor(k, &random(&mut rng, 2 + rows * heads * dh + 3, 1.5));
    k.l2_normalize(ViewMut::new(&mut x, 2), Heads::new(rows, heads, dh).unwrap()).unwrap();
    read(k, &x)
}

#[test]
fn l2_normalize_matches_reference() {
    for (rows, heads, dh) in [(4, 3, 8), (2, 1, 100), (1, 2, 1), (3, 2, 65)] {
        compare!(&format!("l2_normalize {rows}x{heads}x{dh}"), 1e-6, 1e-5, l2_case(rows, heads, dh));
    }
}

fn positions_case<K: Kernels>(k: &mut K, positions: usize, batch: usize, dim: usize, dtype: WeightDtype) -> Vec<f32> {
    let mut rng = SplitMix64::new(13);
    let mut x = tensor(k, &random(&mut rng, 1 + positions * batch * dim, 1.0));
    let table = weights(k, &random(&mut rng, 3 + positions * dim, 1.0), dtype);
    let desc = Positions::new(positions, batch, dim).unwrap();
    k.add_positions(ViewMut::new(&mut x, 1), WeightView::new(&table, 3), desc).unwrap();
    read(k, &x)
}

#[test]
fn add_positions_matches_reference() {
    for dtype in DTYPES {
        compare!("add_positions", 0.0, 0.0, positions_case(5, 3, 7, dtype));
    }
}

#[allow(clippy::too_many_arguments)]
fn attention_case<K: Kernels>(
    k: &mut K,
    desc: Attention,
    bias: bool,
    scale_range: (f32, f32),
    dtype: WeightDtype,
    seed: u64,
) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed);
    let normalized = |n: usize, rng: &mut SplitMix64| {
        // Queries and keys are l2-normalised per head in the model.
        let mut v = random(rng, n, 1.0);
        for head in v.chunks_mut(desc.head_dim()) {
            let norm = head.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-3);
            head.iter_mut().for_each(|x| *x /= norm);
        }
        v
    };
    let q = tensor(k, &[vec![0.0; 4], normalized(desc.query_len(), &mut rng)].concat());
    let keys = tensor(k, &normalized(desc.key_len(), &mut rng));
    let v = tensor(k, &[vec![0.0; 1], random(&mut rng, desc.key_len(), 1.0)].concat());
    let (lo, hi) = scale_range;
    let scales: Vec<f32> = (0..desc.heads()).map(|_| lo + (hi - lo) * rng.uniform() as f32).collect();
    let table = random(&mut rng, desc.heads() * 32, 1.0);
    let params = weights(k, &[vec![0.5; 3], scales, table].concat(), dtype);
    let bias_view = bias.then(|| WeightView::new(&params, 3 + desc.heads()));
    let mut out = tensor(k, &vec![7.0; desc.query_len() + 5]);
    k.attention(
        View::new(&q, 4),
        View::new(&keys, 0),
        View::new(&v, 1),
        WeightView::new(&params, 3),
        bias_view,
        ViewMut::new(&mut out, 5),
        desc,
    )
    .unwrap();
    read(k, &out)
}

#[test]
fn window_attention_with_t5_bias_matches_reference() {
    // (batch, queries, window, heads, head_dim): a full block (W x 2W tile), a
    // partial block, a window wider than the exact T5 buckets (distances up to
    // 40 reach the logarithmic ones), more queries than one tile, odd head widths.
    let cases = [(2, 8, 8, 2, 8), (1, 3, 8, 3, 4), (2, 20, 40, 2, 8), (1, 17, 16, 1, 200), (3, 9, 5, 2, 3)];
    let mut seed = 100;
    for (batch, queries, window, heads, dh) in cases {
        for dtype in DTYPES {
            for abs in [false, true] {
                seed += 1;
                let mask = Mask::Window { offset: window, window };
                let desc = Attention::new(batch, queries, window + queries, heads, dh, mask, abs).unwrap();
                let name = format!("window attention {desc:?} {dtype:?}");
                compare!(&name, 2e-5, 1e-4, attention_case(desc, true, (-8.0, 8.0), dtype, seed));
            }
        }
    }
    // A window mask whose cached keys extend further back than the window (a
    // recurrent layer's 2W cache) and no bias.
    let desc = Attention::new(2, 6, 3 * 6, 2, 8, Mask::Window { offset: 12, window: 6 }, false).unwrap();
    compare!("window attention, deep cache", 2e-5, 1e-4, attention_case(desc, false, (0.5, 8.0), WeightDtype::F32, 7));
}

#[test]
fn state_attention_matches_reference() {
    // Unmasked attention of S states to S states, of S states to 2W tokens, and of
    // W tokens to S states; key counts beyond one 64-key chunk.
    for (batch, queries, keys, heads, dh) in [(2, 4, 4, 2, 8), (1, 8, 70, 3, 8), (2, 16, 5, 2, 6), (1, 3, 130, 1, 33)] {
        for dtype in [WeightDtype::F32, WeightDtype::F16] {
            let desc = Attention::new(batch, queries, keys, heads, dh, Mask::None, false).unwrap();
            compare!(
                &format!("state attention {desc:?} {dtype:?}"),
                2e-5,
                1e-4,
                attention_case(desc, false, (0.5, 8.0), dtype, 3)
            );
        }
    }
}

#[test]
fn safe_softmax_floor_matches_reference() {
    // Scales near and far beyond the -1000 floor of the official safe softmax: the
    // extra exp(-1000 - max) term decides the output there.
    let desc = Attention::new(2, 5, 13, 2, 4, Mask::Window { offset: 8, window: 8 }, false).unwrap();
    for range in [(-1003.0, -997.0), (-5000.0, -3000.0), (995.0, 1005.0)] {
        compare!(
            &format!("safe softmax {range:?}"),
            2e-5,
            1e-4,
            attention_case(desc, false, range, WeightDtype::F32, 5)
        );
    }
}

fn linear_case<K: Kernels>(k: &mut K, desc: LinearAttention, calls: usize, dtype: WeightDtype) -> Vec<f32> {
    let mut rng = SplitMix64::new(21);
    let q = tensor(k, &random(&mut rng, desc.token_len(), 1.0));
    let keys = tensor(k, &random(&mut rng, desc.token_len(), 1.0));
    let v = tensor(k, &random(&mut rng, desc.token_len(), 1.0));
    let scale = weights(k, &[-1.5, 0.75, 2.0, 1.0], dtype);
    // A carried state as the sums of earlier tokens leave it: positive z.
    let init: Vec<f32> = (0..desc.state_len()).map(|_| rng.uniform() as f32).collect();
    let mut state = tensor(k, &[vec![0.0; 2], init].concat());
    let mut out = tensor(k, &vec![0.0; desc.token_len()]);
    let mut outputs = Vec::new();
    for _ in 0..calls {
        k.linear_attention(
            View::new(&q, 0),
            View::new(&keys, 0),
            View::new(&v, 0),
            WeightView::new(&scale, 0),
            ViewMut::new(&mut state, 2),
            ViewMut::new(&mut out, 0),
            desc,
        )
        .unwrap();
        outputs.extend(read(k, &out));
    }
    outputs.extend(read(k, &state));
    outputs
}

#[test]
fn chunked_linear_attention_matches_the_recurrent_reference() {
    // Token counts below, at and beyond one chunk; two calls carry the state.
    for (batch, tokens, heads, dh, abs) in [(2, 5, 2, 8, false), (1, 37, 3, 8, true), (2, 16, 1, 70, false)] {
        for dtype in [WeightDtype::F32, WeightDtype::Bf16] {
            let desc = LinearAttention::new(batch, tokens, heads, dh, abs).unwrap();
            compare!(&format!("linear attention {desc:?} {dtype:?}"), 1e-4, 1e-4, linear_case(desc, 2, dtype));
        }
    }
}

fn gates_case<K: Kernels>(k: &mut K, rows: usize, dim: usize, lstm: bool, dtype: WeightDtype) -> Vec<f32> {
    let mut rng = SplitMix64::new(31);
    let n = rows * dim;
    let mut state = tensor(k, &random(&mut rng, n + 1, 1.0));
    let z = tensor(k, &random(&mut rng, n, 1.0));
    let f = tensor(k, &random(&mut rng, n + 2, 3.0));
    let i = tensor(k, &random(&mut rng, n, 3.0));
    let mut b = random(&mut rng, 2 * dim + 1, 2.0);
    b[0] = 60.0; // gate extremes: sigmoid saturates
    b[1] = -60.0;
    let bias = weights(k, &b, dtype);
    let desc = Rows::new(rows, dim).unwrap();
    if lstm {
        k.gate_lstm(
            ViewMut::new(&mut state, 1),
            View::new(&z, 0),
            View::new(&f, 2),
            View::new(&i, 0),
            WeightView::new(&bias, 0),
            WeightView::new(&bias, dim + 1),
            desc,
        )
        .unwrap();
    } else {
        k.gate_fixed(ViewMut::new(&mut state, 1), View::new(&z, 0), WeightView::new(&bias, 1), desc).unwrap();
    }
    read(k, &state)
}

#[test]
fn gates_match_reference() {
    for dtype in DTYPES {
        for lstm in [false, true] {
            compare!(&format!("gate lstm={lstm} {dtype:?}"), 1e-6, 1e-5, gates_case(6, 9, lstm, dtype));
        }
    }
}

fn memory_case<K: Kernels>(k: &mut K, dtype: WeightDtype) -> Vec<f32> {
    let mut rng = SplitMix64::new(41);
    let (vocab, dim) = (11, 6);
    let table = weights(k, &random(&mut rng, 1 + vocab * dim, 1.0), dtype);
    let mut ids = k.alloc_tokens(9).unwrap();
    k.write_tokens(&mut ids, 2, &[0, 10, 3, 3, 7]).unwrap();
    let mut out = tensor(k, &vec![0.0; 100]);
    k.embed(&ids, 2, WeightView::new(&table, 1), ViewMut::new(&mut out, 3), Embed::new(5, vocab, dim).unwrap())
        .unwrap();
    let src = tensor(k, &random(&mut rng, 20, 1.0));
    k.copy(View::new(&src, 4), ViewMut::new(&mut out, 40), 13).unwrap();
    k.fill(ViewMut::new(&mut out, 55), Strided::new(4, 3, 5).unwrap(), -2.5).unwrap();
    k.copy_weights(WeightView::new(&table, 5), ViewMut::new(&mut out, 76), Strided::new(3, 4, 7).unwrap()).unwrap();
    read(k, &out)
}

#[test]
fn embed_copy_fill_and_copy_weights_match_reference() {
    for dtype in DTYPES {
        compare!(&format!("memory ops {dtype:?}"), 0.0, 0.0, memory_case(dtype));
    }
}

#[test]
fn half_precision_writes_keep_the_neighbouring_half() {
    // Writes into packed f16/bf16 storage that start or end inside a 32-bit word.
    fn case<K: Kernels>(k: &mut K, dtype: WeightDtype) -> Vec<f32> {
        let mut w = weights(k, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], dtype);
        k.write_weights(&mut w, 1, brt_core::WeightData::F32(&[-2.0, -3.0])).unwrap();
        k.write_weights(&mut w, 4, brt_core::WeightData::F32(&[-5.0])).unwrap();
        k.write_weights(&mut w, 6, brt_core::WeightData::F32(&[-7.0])).unwrap();
        let mut out = tensor(k, &[0.0; 7]);
        k.copy_weights(WeightView::new(&w, 0), ViewMut::new(&mut out, 0), Strided::contiguous(7)).unwrap();
        read(k, &out)
    }
    for dtype in [WeightDtype::F16, WeightDtype::Bf16] {
        compare!(&format!("partial writes {dtype:?}"), 0.0, 0.0, case(dtype));
    }
}

/// The error of a call on a backend, as text, after the same setup.
fn too_small_case<K: Kernels>(k: &mut K, which: usize) -> String
where
    K::Error: std::fmt::Display,
{
    let x = k.alloc_tensor(10).unwrap();
    let w = k.alloc_weights(12, WeightDtype::F32).unwrap();
    let mut out = k.alloc_tensor(10).unwrap();
    let mut small = k.alloc_tensor(1).unwrap();
    let mut ids = k.alloc_tokens(4).unwrap();
    k.write_tokens(&mut ids, 0, &[1, 2, 3, 9]).unwrap();
    let result = match which {
        0 => {
            k.matmul(View::new(&x, 0), WeightView::new(&w, 0), ViewMut::new(&mut out, 0), Matmul::new(3, 4, 4).unwrap())
        }
        1 => {
            k.matmul(View::new(&x, 2), WeightView::new(&w, 0), ViewMut::new(&mut out, 0), Matmul::new(2, 5, 2).unwrap())
        }
        2 => k.rms_norm(View::new(&x, 0), WeightView::new(&w, 10), ViewMut::new(&mut out, 0), Rows::new(2, 5).unwrap()),
        3 => k.copy(View::new(&x, 5), ViewMut::new(&mut out, 0), 6),
        4 => k.fill(ViewMut::new(&mut out, 1), Strided::new(3, 2, 4).unwrap(), 0.0),
        5 => k.attention(
            View::new(&x, 0),
            View::new(&x, 0),
            View::new(&x, 0),
            WeightView::new(&w, 0),
            None,
            ViewMut::new(&mut out, 0),
            Attention::new(1, 2, 3, 2, 2, Mask::None, false).unwrap(),
        ),
        6 => k.embed(&ids, 0, WeightView::new(&w, 0), ViewMut::new(&mut out, 0), Embed::new(4, 6, 2).unwrap()),
        7 => k.embed(&ids, 1, WeightView::new(&w, 0), ViewMut::new(&mut out, 0), Embed::new(4, 6, 2).unwrap()),
        _ => k.linear_attention(
            View::new(&x, 0),
            View::new(&x, 0),
            View::new(&x, 0),
            WeightView::new(&w, 0),
            ViewMut::new(&mut out, 0),
            ViewMut::new(&mut small, 0),
            LinearAttention::new(1, 1, 1, 2, false).unwrap(),
        ),
    };
    match result {
        Ok(()) => "ok".into(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn too_small_buffers_and_bad_ids_are_the_reference_errors() {
    for which in 0..9 {
        let mut r = reference();
        let want = too_small_case(&mut r, which);
        assert_ne!(want, "ok", "case {which} must fail on the reference");
        with_gpu("errors", |k| {
            let dispatches = k.counters().dispatches;
            assert_eq!(too_small_case(k, which), want, "case {which}");
            assert_eq!(k.counters().dispatches, dispatches, "case {which}: a failed call recorded a kernel");
        });
    }
}

#[test]
fn a_bias_without_a_window_is_rejected() {
    with_gpu("bias without window", |k| {
        let x = tensor(k, &[0.0; 8]);
        let w = weights(k, &[1.0; 64], WeightDtype::F32);
        let mut out = tensor(k, &[0.0; 8]);
        let err = k
            .attention(
                View::new(&x, 0),
                View::new(&x, 0),
                View::new(&x, 0),
                WeightView::new(&w, 0),
                Some(WeightView::new(&w, 0)),
                ViewMut::new(&mut out, 0),
                Attention::new(1, 2, 2, 2, 2, Mask::None, false).unwrap(),
            )
            .unwrap_err();
        assert!(matches!(err, WgpuError::Core(CoreError::InvalidShape { .. })), "{err}");
    });
}

#[test]
fn reductions_match_reference_with_and_without_subgroups() {
    // Both shader variants of the reductions on this adapter (the subgroup one
    // only where the adapter offers subgroup operations).
    let want_rms = rms_case(&mut reference(), 7, 300, WeightDtype::F32);
    let want_l2 = l2_case(&mut reference(), 3, 2, 100);
    let matvec = Matmul::new(3, 150, 21).unwrap().transposed_weight().accumulate();
    let want_matvec = matmul_case(&mut reference(), matvec, WeightDtype::F16, 8);
    for subgroups in [true, false] {
        let options = brt_wgpu::WgpuOptions { subgroups, ..brt_wgpu::WgpuOptions::from_env() };
        let opened = brt_wgpu::testing::decide("subgroup variants", brt_wgpu::Wgpu::with_options(&options));
        let Some(mut k) = opened.unwrap_or_else(|message| panic!("{message}")) else { return };
        assert!(subgroups || !k.adapter().subgroups);
        println!("subgroups requested {subgroups}, in use {}", k.adapter().subgroups);
        assert_close("rms variant", &rms_case(&mut k, 7, 300, WeightDtype::F32), &want_rms, 1e-5, 1e-5);
        assert_close("l2 variant", &l2_case(&mut k, 3, 2, 100), &want_l2, 1e-6, 1e-5);
        let got = matmul_case(&mut k, matvec, WeightDtype::F16, 8);
        assert_close("matvec variant", &got, &want_matvec, 2e-5, 2e-5);
    }
}
