//! Every kernel of the CUDA backend against the scalar reference of brt-core
//! (`Reference<Heap>`), on small shapes chosen to cross tile and block edges,
//! with views at non-zero offsets and every parameter storage type.
//!
//! Runs on the GPU when there is one (a loud skip otherwise; a failure under
//! `BRT_REQUIRE_GPU=1`) and, with the `emulator` feature, on the kernel
//! emulator in both product paths and two thread orders.

mod common;

use brt_core::desc::{Activation, Attention, Embed, Heads, LinearAttention, Mask, Matmul, Positions, Rows, Strided};
use brt_core::{CoreError, Kernels, Storage, View, ViewMut, WeightDtype, WeightView};
use brt_cuda::CudaError;
use common::*;

/// Sums in f32 (GPU) vs f64 (reference): a few ulps of the sizes involved.
const ABS: f32 = 2e-5;
const REL: f32 = 2e-5;

#[test]
fn embed_gathers_table_rows_from_a_token_offset() {
    for (name, mut cuda) in backends("embed") {
        for dtype in DTYPES {
            for (vocab, dim, count) in [(11, 7, 13), (5, 300, 3), (3, 1, 1)] {
                let table = random(1, vocab * dim, 1.0);
                let ids: Vec<u32> = (0..count + 2).map(|i| ((i * 7 + 3) % vocab) as u32).collect();
                let (expected, actual) = on_both!(&mut cuda, |k| {
                    let w = weights(k, &table, dtype);
                    let t = tokens(k, &ids);
                    let mut out = tensor(k, &vec![9.0; count * dim + 5]);
                    let desc = Embed::new(count, vocab, dim).unwrap();
                    k.embed(&t, 2, WeightView::new(&w, 0), ViewMut::new(&mut out, 3), desc).unwrap();
                    read(k, &out)
                });
                assert_close(&format!("{name}: embed {dtype:?} {vocab}x{dim}"), &actual, &expected, 0.0, 0.0);
            }
        }
    }
}

#[test]
fn rms_norm_matches_the_reference_for_narrow_and_wide_rows() {
    for (name, mut cuda) in backends("rms_norm") {
        for dtype in DTYPES {
            for (rows, dim) in [(0, 4), (1, 1), (5, 7), (33, 32), (3, 100), (2, 300), (2, 1024)] {
                let x = random(2, rows * dim + 3, 2.0);
                let scale = random(3, dim + 1, 1.5);
                let (expected, actual) = on_both!(&mut cuda, |k| {
                    let xt = tensor(k, &x);
                    let s = weights(k, &scale, dtype);
                    let mut out = tensor(k, &vec![7.0; rows * dim + 2]);
                    let desc = Rows::new(rows, dim).unwrap();
                    k.rms_norm(View::new(&xt, 3), WeightView::new(&s, 1), ViewMut::new(&mut out, 1), desc).unwrap();
                    read(k, &out)
                });
                assert_close(&format!("{name}: rms_norm {dtype:?} {rows}x{dim}"), &actual, &expected, ABS, REL);
            }
        }
    }
}

#[test]
fn l2_normalize_normalises_each_head_in_place() {
    for (name, mut cuda) in backends("l2_normalize") {
        for (rows, heads, dh) in [(0, 2, 3), (1, 1, 1), (9, 3, 5), (4, 2, 64), (3, 2, 300)] {
            let x = random(4, rows * heads * dh + 2, 3.0);
            let (expected, actual) = on_both!(&mut cuda, |k| {
                let mut xt = tensor(k, &x);
                k.l2_normalize(ViewMut::new(&mut xt, 2), Heads::new(rows, heads, dh).unwrap()).unwrap();
                read(k, &xt)
            });
            assert_close(&format!("{name}: l2_normalize {rows}x{heads}x{dh}"), &actual, &expected, ABS, REL);
        }
    }
}

#[test]
fn add_positions_adds_a_row_per_position_to_every_batch_row() {
    for (name, mut cuda) in backends("add_positions") {
        for dtype in DTYPES {
            let (positions, batch, dim) = (5, 3, 7);
            let x = random(5, positions * batch * dim + 1, 1.0);
            let table = random(6, positions * dim + 4, 1.0);
            let (expected, actual) = on_both!(&mut cuda, |k| {
                let mut xt = tensor(k, &x);
                let t = weights(k, &table, dtype);
                let desc = Positions::new(positions, batch, dim).unwrap();
                k.add_positions(ViewMut::new(&mut xt, 1), WeightView::new(&t, 4), desc).unwrap();
                read(k, &xt)
            });
            assert_close(&format!("{name}: add_positions {dtype:?}"), &actual, &expected, ABS, REL);
        }
    }
}

#[test]
fn matmul_matches_the_reference_in_every_order_mode_and_storage_type() {
    let activations = [Activation::Identity, Activation::Relu, Activation::Tanh];
    for (name, mut cuda) in backends("matmul") {
        for (m, kdim, n) in [(0, 3, 4), (1, 1, 1), (5, 7, 3), (65, 33, 70), (130, 17, 129)] {
            for dtype in DTYPES {
                for transposed in [false, true] {
                    for accumulate in [false, true] {
                        for (i, &activation) in activations.iter().enumerate() {
                            let x = random(7, m * kdim + 2, 1.0);
                            let w = random(8 + i as u64, kdim * n + 3, 0.5);
                            let out0 = random(9, m * n + 1, 1.0);
                            let alpha = if i == 1 { 0.37 } else { 1.0 };
                            let mut desc = Matmul::new(m, kdim, n).unwrap().activation(activation).alpha(alpha);
                            if transposed {
                                desc = desc.transposed_weight();
                            }
                            if accumulate {
                                desc = desc.accumulate();
                            }
                            let (expected, actual) = on_both!(&mut cuda, |k| {
                                let xt = tensor(k, &x);
                                let wt = weights(k, &w, dtype);
                                let mut out = tensor(k, &out0);
                                k.matmul(View::new(&xt, 2), WeightView::new(&wt, 3), ViewMut::new(&mut out, 1), desc)
                                    .unwrap();
                                read(k, &out)
                            });
                            let what = format!(
                                "{name}: matmul {m}x{kdim}x{n} {dtype:?} transposed={transposed} \
                                 accumulate={accumulate} {activation:?}"
                            );
                            assert_close(&what, &actual, &expected, ABS * 4.0, REL * 4.0);
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn matmul_without_accumulation_ignores_nan_in_the_destination() {
    for (name, mut cuda) in backends("matmul NaN destination") {
        let (m, kdim, n) = (3, 4, 5);
        let x = random(10, m * kdim, 1.0);
        let w = random(11, kdim * n, 1.0);
        let (expected, actual) = on_both!(&mut cuda, |k| {
            let xt = tensor(k, &x);
            let wt = weights(k, &w, WeightDtype::F32);
            let mut out = tensor(k, &vec![f32::NAN; m * n]);
            k.matmul(
                View::new(&xt, 0),
                WeightView::new(&wt, 0),
                ViewMut::new(&mut out, 0),
                Matmul::new(m, kdim, n).unwrap(),
            )
            .unwrap();
            read(k, &out)
        });
        assert!(actual.iter().all(|v| v.is_finite()), "{name}: {actual:?}");
        assert_close(&format!("{name}: matmul over NaN"), &actual, &expected, ABS, REL);
    }
}

/// One attention case: shapes, mask, bias, abs scale.
#[derive(Clone, Copy, Debug)]
struct Case {
    batch: usize,
    heads: usize,
    dh: usize,
    queries: usize,
    keys: usize,
    mask: Mask,
    bias: bool,
    abs: bool,
}

fn attention_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    // Sliding windows: W previous tokens, cached block in front (offset W), or
    // the recurrent layer's 2W cache (offset 2W, keys before the window unused).
    for (batch, heads, dh, window, queries, offset) in [
        (1, 1, 1, 1, 1, 1),
        (2, 2, 5, 3, 7, 3),
        (3, 2, 8, 4, 4, 8),
        (1, 4, 8, 16, 16, 16),
        (2, 1, 32, 16, 40, 16),
        (1, 2, 64, 33, 35, 66),
        (1, 1, 128, 24, 3, 24),
    ] {
        for (bias, abs) in [(true, false), (false, false), (true, true)] {
            let mask = Mask::Window { offset, window };
            cases.push(Case { batch, heads, dh, queries, keys: offset + queries, mask, bias, abs });
        }
        // Keys beyond the last query's window exist in the recurrent layer's cache.
        let mask = Mask::Window { offset, window };
        cases.push(Case { batch, heads, dh, queries, keys: offset + queries + 5, mask, bias: true, abs: false });
    }
    // Full attention (state self- and cross-attention).
    for (batch, heads, dh, queries, keys) in [(1, 1, 1, 1, 1), (2, 2, 8, 8, 8), (2, 3, 5, 40, 33), (1, 2, 16, 3, 70)] {
        for abs in [false, true] {
            cases.push(Case { batch, heads, dh, queries, keys, mask: Mask::None, bias: false, abs });
        }
    }
    cases
}

#[test]
fn attention_matches_the_reference_for_windows_full_attention_bias_and_abs_scale() {
    for (name, mut cuda) in backends("attention") {
        for (n, case) in attention_cases().into_iter().enumerate() {
            if !runs_head_dim(&name, case.dh) {
                continue;
            }
            for dtype in DTYPES {
                let Case { batch, heads, dh, queries, keys, mask, bias, abs } = case;
                let width = heads * dh;
                let seed = 100 + n as u64;
                let q = random(seed, queries * batch * width + 1, 0.6);
                let kk = random(seed + 1, keys * batch * width + 2, 0.6);
                let v = random(seed + 2, keys * batch * width + 3, 1.0);
                // Scales of either sign and up to 6: logits of several units.
                let scale = random(seed + 3, heads, 6.0);
                let table = random(seed + 4, heads * 32, 1.0);
                let desc = Attention::new(batch, queries, keys, heads, dh, mask, abs).unwrap();
                let (expected, actual) = on_both!(&mut cuda, |k| {
                    let qt = tensor(k, &q);
                    let kt = tensor(k, &kk);
                    let vt = tensor(k, &v);
                    let st = weights(k, &scale, dtype);
                    let bt = weights(k, &table, dtype);
                    let mut out = tensor(k, &vec![5.0; queries * batch * width + 2]);
                    let bias_view = if bias { Some(WeightView::new(&bt, 0)) } else { None };
                    k.attention(
                        View::new(&qt, 1),
                        View::new(&kt, 2),
                        View::new(&vt, 3),
                        WeightView::new(&st, 0),
                        bias_view,
                        ViewMut::new(&mut out, 2),
                        desc,
                    )
                    .unwrap();
                    read(k, &out)
                });
                assert_close(&format!("{name}: attention {case:?} {dtype:?}"), &actual, &expected, 2e-5, 1e-4);
            }
        }
    }
}

#[test]
fn attention_near_and_below_the_safe_softmax_floor() {
    // One key dimension, q = k = 1, so every logit is the scale a. With a near
    // -1000 the extra exp(-1000 - M) term of the denominator is comparable to
    // the weights; far below it the output vanishes.
    for (name, mut cuda) in backends("attention floor") {
        for a in [-998.0f32, -1000.0, -1003.0, -1500.0, 3.0] {
            let (queries, keys) = (3, 4);
            let v = random(31, keys, 1.0);
            let desc = Attention::new(1, queries, keys, 1, 1, Mask::None, false).unwrap();
            let (expected, actual) = on_both!(&mut cuda, |k| {
                let qt = tensor(k, &vec![1.0; queries]);
                let kt = tensor(k, &vec![1.0; keys]);
                let vt = tensor(k, &v);
                let st = weights(k, &[a], WeightDtype::F32);
                let mut out = tensor(k, &vec![0.0; queries]);
                k.attention(
                    View::new(&qt, 0),
                    View::new(&kt, 0),
                    View::new(&vt, 0),
                    WeightView::new(&st, 0),
                    None,
                    ViewMut::new(&mut out, 0),
                    desc,
                )
                .unwrap();
                read(k, &out)
            });
            // Independent value: sum(v) e^{a-M} / (keys e^{a-M} + e^{-1000-M}), M = max(a, -1000).
            let m = a.max(-1000.0) as f64;
            let w = ((a as f64) - m).exp();
            let by_hand = v.iter().map(|&x| x as f64).sum::<f64>() * w / (keys as f64 * w + (-1000.0 - m).exp());
            for value in &expected {
                assert!((*value as f64 - by_hand).abs() < 1e-6, "reference {value} vs {by_hand} for a = {a}");
            }
            assert_close(&format!("{name}: attention with logits {a}"), &actual, &expected, 1e-6, 1e-5);
        }
    }
}

#[test]
fn linear_attention_matches_the_recurrent_form_across_two_calls() {
    for (name, mut cuda) in backends("linear_attention") {
        for (batch, tokens, heads, dh, abs) in [(1, 1, 1, 1, false), (2, 7, 2, 4, false), (2, 20, 3, 8, true)] {
            if !runs_head_dim(&name, dh) {
                continue;
            }
            let desc = LinearAttention::new(batch, tokens, heads, dh, abs).unwrap();
            let len = desc.token_len();
            let q = random(40, 2 * len, 1.0);
            let kk = random(41, 2 * len, 1.0);
            let v = random(42, 2 * len, 1.0);
            let scale = random(43, heads, 2.0);
            let (expected, actual) = on_both!(&mut cuda, |k| {
                let qt = tensor(k, &q);
                let kt = tensor(k, &kk);
                let vt = tensor(k, &v);
                let st = weights(k, &scale, WeightDtype::F32);
                let mut state = tensor(k, &vec![0.0; desc.state_len() + 1]);
                let mut out = tensor(k, &vec![0.0; 2 * len]);
                // Two calls: the second continues from the state the first left.
                for call in 0..2 {
                    k.linear_attention(
                        View::new(&qt, call * len),
                        View::new(&kt, call * len),
                        View::new(&vt, call * len),
                        WeightView::new(&st, 0),
                        ViewMut::new(&mut state, 1),
                        ViewMut::new(&mut out, call * len),
                        desc,
                    )
                    .unwrap();
                }
                let mut all = read(k, &out);
                all.extend(read(k, &state));
                all
            });
            let what = format!("{name}: linear attention b{batch} t{tokens} h{heads} dh{dh} abs={abs}");
            assert_close(&what, &actual, &expected, 1e-5, 1e-4);
        }
    }
}

#[test]
fn gates_update_the_state_in_place() {
    for (name, mut cuda) in backends("gates") {
        for dtype in DTYPES {
            let (rows, dim) = (5, 7);
            let len = rows * dim;
            let s = random(50, len + 2, 1.0);
            let z = random(51, len + 1, 1.0);
            let f = random(52, len, 3.0);
            let i = random(53, len + 4, 3.0);
            let bf = random(54, dim, 2.0);
            let bi = random(55, dim + 1, 2.0);
            let desc = Rows::new(rows, dim).unwrap();
            let (expected, actual) = on_both!(&mut cuda, |k| {
                let mut st = tensor(k, &s);
                let zt = tensor(k, &z);
                let ft = tensor(k, &f);
                let it = tensor(k, &i);
                let bft = weights(k, &bf, dtype);
                let bit = weights(k, &bi, dtype);
                k.gate_fixed(ViewMut::new(&mut st, 2), View::new(&zt, 1), WeightView::new(&bft, 0), desc).unwrap();
                let after_fixed = read(k, &st);
                k.gate_lstm(
                    ViewMut::new(&mut st, 0),
                    View::new(&zt, 0),
                    View::new(&ft, 0),
                    View::new(&it, 4),
                    WeightView::new(&bft, 0),
                    WeightView::new(&bit, 1),
                    desc,
                )
                .unwrap();
                let mut all = after_fixed;
                all.extend(read(k, &st));
                all
            });
            assert_close(&format!("{name}: gates {dtype:?}"), &actual, &expected, 1e-6, 1e-5);
        }
    }
}

#[test]
fn copy_fill_and_copy_weights_touch_exactly_their_runs() {
    for (name, mut cuda) in backends("copy/fill") {
        for dtype in DTYPES {
            let base = random(60, 64, 1.0);
            let params = random(61, 30, 1.0);
            let (expected, actual) = on_both!(&mut cuda, |k| {
                let src = tensor(k, &random(62, 40, 1.0));
                let mut dst = tensor(k, &base);
                k.copy(View::new(&src, 3), ViewMut::new(&mut dst, 5), 17).unwrap();
                k.copy(View::new(&src, 0), ViewMut::new(&mut dst, 0), 0).unwrap();
                k.fill(ViewMut::new(&mut dst, 1), Strided::new(4, 3, 7).unwrap(), -2.5).unwrap();
                k.fill(ViewMut::new(&mut dst, 1), Strided::new(0, 3, 7).unwrap(), 9.0).unwrap();
                let w = weights(k, &params, dtype);
                k.copy_weights(WeightView::new(&w, 2), ViewMut::new(&mut dst, 30), Strided::new(3, 5, 9).unwrap())
                    .unwrap();
                read(k, &dst)
            });
            assert_close(&format!("{name}: copy/fill/copy_weights {dtype:?}"), &actual, &expected, 0.0, 0.0);
        }
    }
}

#[test]
fn storage_round_trips_and_converts_parameters() {
    for (name, mut cuda) in backends("storage") {
        let data = random(70, 10, 3.0);
        let mut t = cuda.alloc_tensor(12).unwrap();
        assert_eq!(read(&mut cuda, &t), vec![0.0; 12], "{name}: new tensors are zero");
        cuda.write_tensor(&mut t, 2, &data).unwrap();
        let mut part = vec![0f32; 4];
        cuda.read_tensor(&t, 5, &mut part).unwrap();
        assert_eq!(part, data[3..7], "{name}");
        for dtype in DTYPES {
            // f32 values written into f16/bf16 storage round to nearest, as `half` does.
            let mut w = cuda.alloc_weights(10, dtype).unwrap();
            cuda.write_weights(&mut w, 0, brt_core::WeightData::F32(&data)).unwrap();
            let mut out = cuda.alloc_tensor(10).unwrap();
            cuda.copy_weights(WeightView::new(&w, 0), ViewMut::new(&mut out, 0), Strided::contiguous(10)).unwrap();
            let rounded: Vec<f32> = match dtype {
                WeightDtype::F32 | WeightDtype::Q8_0 => data.clone(),
                WeightDtype::F16 => data.iter().map(|&x| brt_core::half::f16::from_f32(x).to_f32()).collect(),
                WeightDtype::Bf16 => data.iter().map(|&x| brt_core::half::bf16::from_f32(x).to_f32()).collect(),
            };
            assert_eq!(read(&mut cuda, &out), rounded, "{name}: {dtype:?}");
        }
        // Out of range transfers are errors, not overruns.
        let too_long = cuda.write_tensor(&mut t, 3, &data);
        assert!(matches!(too_long, Err(CudaError::Core(CoreError::BufferTooSmall { .. }))), "{name}: {too_long:?}");
        let mut big = vec![0f32; 13];
        assert!(cuda.read_tensor(&t, 0, &mut big).is_err(), "{name}");
        let mut ids = cuda.alloc_tokens(3).unwrap();
        assert!(cuda.write_tokens(&mut ids, 1, &[1, 2, 3]).is_err(), "{name}");
        // Empty buffers are fine.
        let empty = cuda.alloc_tensor(0).unwrap();
        cuda.read_tensor(&empty, 0, &mut []).unwrap();
    }
}

#[test]
fn buffers_of_another_backend_are_refused() {
    for (name, mut cuda) in backends("foreign buffers") {
        let mut other = another(&name);
        let foreign = other.alloc_tensor(4).unwrap();
        let mut own = cuda.alloc_tensor(4).unwrap();
        let refused = cuda.copy(View::new(&foreign, 0), ViewMut::new(&mut own, 0), 4);
        assert!(matches!(refused, Err(CudaError::Core(CoreError::Mismatch { .. }))), "{name}: {refused:?}");
    }
}

#[test]
fn too_small_buffers_give_the_same_error_as_the_reference() {
    for (name, mut cuda) in backends("buffer errors") {
        let (expected, actual) = on_both!(&mut cuda, |k| {
            let x = tensor(k, &[1.0; 6]);
            let mut small = tensor(k, &[0.0; 5]);
            let w = weights(k, &[1.0; 40], WeightDtype::F32);
            let ids = tokens(k, &[0, 1]);
            let rows = Rows::new(2, 3).unwrap();
            let mut errors = Vec::new();
            let mut push = |e: Result<(), _>| errors.push(format!("{:?}", e.err().map(|e| format!("{e}"))));
            push(k.rms_norm(View::new(&x, 0), WeightView::new(&w, 0), ViewMut::new(&mut small, 0), rows));
            push(k.rms_norm(View::new(&x, 1), WeightView::new(&w, 0), ViewMut::new(&mut small, 0), rows));
            push(k.rms_norm(View::new(&x, 0), WeightView::new(&w, 10), ViewMut::new(&mut small, 0), rows));
            push(k.matmul(
                View::new(&x, 0),
                WeightView::new(&w, 0),
                ViewMut::new(&mut small, 0),
                Matmul::new(2, 3, 3).unwrap(),
            ));
            push(k.embed(&ids, 1, WeightView::new(&w, 0), ViewMut::new(&mut small, 0), Embed::new(2, 4, 3).unwrap()));
            push(k.l2_normalize(ViewMut::new(&mut small, 0), Heads::new(2, 1, 3).unwrap()));
            push(k.copy(View::new(&x, 2), ViewMut::new(&mut small, 0), 5));
            push(k.fill(ViewMut::new(&mut small, usize::MAX), Strided::contiguous(2), 0.0));
            push(k.gate_fixed(ViewMut::new(&mut small, 0), View::new(&x, 0), WeightView::new(&w, 0), rows));
            let desc = Attention::new(1, 2, 3, 1, 3, Mask::None, false).unwrap();
            push(k.attention(
                View::new(&x, 0),
                View::new(&x, 0),
                View::new(&x, 0),
                WeightView::new(&w, 0),
                None,
                ViewMut::new(&mut small, 0),
                desc,
            ));
            // A bias with no window is refused too.
            let desc = Attention::new(1, 1, 1, 1, 3, Mask::None, false).unwrap();
            push(k.attention(
                View::new(&x, 0),
                View::new(&x, 0),
                View::new(&x, 0),
                WeightView::new(&w, 0),
                Some(WeightView::new(&w, 0)),
                ViewMut::new(&mut small, 0),
                desc,
            ));
            errors
        });
        for (i, (e, a)) in expected.iter().zip(&actual).enumerate() {
            assert!(e != "None", "case {i} should fail: {e}");
            assert_eq!(a, e, "{name}: case {i}");
        }
    }
}
