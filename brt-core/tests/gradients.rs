//! Every backward kernel of the reference against central finite differences of
//! the forward kernel, both in f64.
//!
//! For a forward `out = f(inputs)` and a random direction `g`, the backward
//! kernel must give the gradient of `L = g . out` with respect to every input.

use brt_core::desc::{Activation, Attention, Embed, Heads, LinearAttention, Mask, Matmul, Positions, Rows, Strided};
use brt_core::init::SplitMix64;
use brt_core::{Arena, Gradients, Kernels, Reference64, Storage, View, ViewMut, WeightView};

type K<'m> = Reference64<Arena<'m>>;
type Buf<'m> = &'m mut [f64];

/// Runs `f` on a double-precision reference over fresh pools.
fn with_k<T>(f: impl FnOnce(&mut K<'_>) -> T) -> T {
    let mut f64s = vec![0f64; 1 << 16];
    let mut u32s = vec![0u32; 256];
    let mut k = Reference64::new_f64(Arena::new(&mut [], &mut [], &mut u32s).with_f64(&mut f64s));
    f(&mut k)
}

fn buf<'m>(k: &mut K<'m>, values: &[f64]) -> Buf<'m> {
    let mut b = k.alloc_tensor(values.len()).unwrap();
    k.write_exact(&mut b, 0, values).unwrap();
    b
}

fn random(rng: &mut SplitMix64, n: usize, scale: f64) -> Vec<f64> {
    (0..n).map(|_| (rng.uniform() * 2.0 - 1.0) * scale).collect()
}

/// Checks `analytic` (one gradient per input) against central differences of
/// `loss(inputs)`, on every element.
fn check(name: &str, inputs: &[Vec<f64>], loss: &dyn Fn(&[Vec<f64>]) -> f64, analytic: &[Vec<f64>]) {
    let eps = 1e-6;
    let mut worst = 0f64;
    for (n, input) in inputs.iter().enumerate() {
        assert_eq!(input.len(), analytic[n].len(), "{name}: gradient {n} has the wrong length");
        for i in 0..input.len() {
            let mut plus = inputs.to_vec();
            plus[n][i] += eps;
            let mut minus = inputs.to_vec();
            minus[n][i] -= eps;
            let numeric = (loss(&plus) - loss(&minus)) / (2.0 * eps);
            let err = (numeric - analytic[n][i]).abs() / (1.0 + numeric.abs());
            worst = worst.max(err);
            assert!(err < 1e-6, "{name}: input {n}[{i}]: finite difference {numeric}, backward {}", analytic[n][i]);
        }
    }
    println!("{name}: worst relative error {worst:.1e}");
}

fn dotv(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn rms_norm() {
    let mut rng = SplitMix64::new(1);
    let desc = Rows::new(3, 5).unwrap();
    let inputs = vec![random(&mut rng, 15, 2.0), random(&mut rng, 5, 1.5)];
    let g = random(&mut rng, 15, 1.0);
    let loss = |inp: &[Vec<f64>]| {
        with_k(|k| {
            let x = buf(k, &inp[0]);
            let s = buf(k, &inp[1]);
            let mut out = k.alloc_tensor(15).unwrap();
            k.rms_norm(View::new(&x, 0), WeightView::new(&s, 0), ViewMut::new(&mut out, 0), desc).unwrap();
            dotv(out, &g)
        })
    };
    let grads = with_k(|k| {
        let x = buf(k, &inputs[0]);
        let s = buf(k, &inputs[1]);
        let d_out = buf(k, &g);
        let mut dx = k.alloc_tensor(15).unwrap();
        let mut ds = k.alloc_tensor(5).unwrap();
        k.rms_norm_backward(
            View::new(&x, 0),
            WeightView::new(&s, 0),
            View::new(&d_out, 0),
            ViewMut::new(&mut dx, 0),
            ViewMut::new(&mut ds, 0),
            desc,
        )
        .unwrap();
        vec![dx.to_vec(), ds.to_vec()]
    });
    check("rms_norm", &inputs, &loss, &grads);
}

#[test]
fn l2_normalize_and_add_positions() {
    let mut rng = SplitMix64::new(2);
    let desc = Heads::new(2, 3, 4).unwrap();
    let inputs = vec![random(&mut rng, 24, 1.0)];
    let g = random(&mut rng, 24, 1.0);
    let loss = |inp: &[Vec<f64>]| {
        with_k(|k| {
            let mut x = buf(k, &inp[0]);
            k.l2_normalize(ViewMut::new(&mut x, 0), desc).unwrap();
            dotv(x, &g)
        })
    };
    let grads = with_k(|k| {
        let x = buf(k, &inputs[0]);
        let mut dx = buf(k, &g);
        k.l2_normalize_backward(View::new(&x, 0), ViewMut::new(&mut dx, 0), desc).unwrap();
        vec![dx.to_vec()]
    });
    check("l2_normalize", &inputs, &loss, &grads);

    let desc = Positions::new(3, 2, 4).unwrap();
    let inputs = vec![random(&mut rng, 24, 1.0), random(&mut rng, 12, 1.0)];
    let loss = |inp: &[Vec<f64>]| {
        with_k(|k| {
            let mut x = buf(k, &inp[0]);
            let t = buf(k, &inp[1]);
            k.add_positions(ViewMut::new(&mut x, 0), WeightView::new(&t, 0), desc).unwrap();
            dotv(x, &g)
        })
    };
    let grads = with_k(|k| {
        let dx = buf(k, &g);
        let mut dt = k.alloc_tensor(12).unwrap();
        k.add_positions_backward(View::new(&dx, 0), ViewMut::new(&mut dt, 0), desc).unwrap();
        vec![g.clone(), dt.to_vec()]
    });
    check("add_positions", &inputs, &loss, &grads);
}

#[test]
fn matmul_in_every_form() {
    let mut rng = SplitMix64::new(3);
    let (m, kk, n) = (3, 4, 5);
    for transposed in [false, true] {
        for accumulate in [false, true] {
            for activation in [Activation::Identity, Activation::Relu, Activation::Tanh] {
                let mut desc = Matmul::new(m, kk, n).unwrap().alpha(0.7).activation(activation);
                if transposed {
                    desc = desc.transposed_weight();
                }
                if accumulate {
                    desc = desc.accumulate();
                }
                let inputs =
                    vec![random(&mut rng, m * kk, 1.0), random(&mut rng, kk * n, 1.0), random(&mut rng, m * n, 1.0)];
                let g = random(&mut rng, m * n, 1.0);
                let forward = |k: &mut K<'_>, inp: &[Vec<f64>]| {
                    let x = buf(k, &inp[0]);
                    let w = buf(k, &inp[1]);
                    let mut out = buf(k, &inp[2]);
                    k.matmul(View::new(&x, 0), WeightView::new(&w, 0), ViewMut::new(&mut out, 0), desc).unwrap();
                    out.to_vec()
                };
                let loss = |inp: &[Vec<f64>]| with_k(|k| dotv(&forward(k, inp), &g));
                let grads = with_k(|k| {
                    let out = forward(k, &inputs);
                    let x = buf(k, &inputs[0]);
                    let w = buf(k, &inputs[1]);
                    let out = buf(k, &out);
                    let mut d_out = buf(k, &g);
                    let mut dx = k.alloc_tensor(m * kk).unwrap();
                    let mut dw = k.alloc_tensor(kk * n).unwrap();
                    k.matmul_backward(
                        View::new(&x, 0),
                        WeightView::new(&w, 0),
                        View::new(&out, 0),
                        ViewMut::new(&mut d_out, 0),
                        Some(ViewMut::new(&mut dx, 0)),
                        Some(ViewMut::new(&mut dw, 0)),
                        desc,
                    )
                    .unwrap();
                    let d_before = if accumulate { d_out.to_vec() } else { vec![0.0; m * n] };
                    vec![dx.to_vec(), dw.to_vec(), d_before]
                });
                check(
                    &format!("matmul transposed={transposed} accumulate={accumulate} {activation:?}"),
                    &inputs,
                    &loss,
                    &grads,
                );
            }
        }
    }
}

#[test]
fn attention_windowed_and_full() {
    let mut rng = SplitMix64::new(4);
    let (batch, heads, dh) = (2, 2, 3);
    let cases = [
        ("full", Mask::None, 2, 3, false, false),
        ("full, abs scale", Mask::None, 2, 4, true, false),
        ("window with T5 bias", Mask::Window { offset: 2, window: 2 }, 3, 5, false, true),
        ("window, abs scale", Mask::Window { offset: 3, window: 2 }, 2, 5, true, true),
    ];
    for (name, mask, queries, keys, abs, with_bias) in cases {
        let desc = Attention::new(batch, queries, keys, heads, dh, mask, abs).unwrap();
        let width = heads * dh;
        let mut inputs = vec![
            random(&mut rng, queries * batch * width, 1.0),
            random(&mut rng, keys * batch * width, 1.0),
            random(&mut rng, keys * batch * width, 1.0),
            random(&mut rng, heads, 3.0),
        ];
        if with_bias {
            inputs.push(random(&mut rng, heads * 32, 0.5));
        }
        let g = random(&mut rng, queries * batch * width, 1.0);
        let loss = |inp: &[Vec<f64>]| {
            with_k(|k| {
                let (q, kk, v, s) = (buf(k, &inp[0]), buf(k, &inp[1]), buf(k, &inp[2]), buf(k, &inp[3]));
                let b = inp.get(4).map(|b| buf(k, b));
                let mut out = k.alloc_tensor(g.len()).unwrap();
                let bias = b.as_ref().map(|b| WeightView::new(b, 0));
                k.attention(
                    View::new(&q, 0),
                    View::new(&kk, 0),
                    View::new(&v, 0),
                    WeightView::new(&s, 0),
                    bias,
                    ViewMut::new(&mut out, 0),
                    desc,
                )
                .unwrap();
                dotv(out, &g)
            })
        };
        let grads = with_k(|k| {
            let (q, kk, v, s) = (buf(k, &inputs[0]), buf(k, &inputs[1]), buf(k, &inputs[2]), buf(k, &inputs[3]));
            let b = inputs.get(4).map(|b| buf(k, b));
            let d_out = buf(k, &g);
            let mut dq = k.alloc_tensor(inputs[0].len()).unwrap();
            let mut dk = k.alloc_tensor(inputs[1].len()).unwrap();
            let mut dv = k.alloc_tensor(inputs[2].len()).unwrap();
            let mut ds = k.alloc_tensor(heads).unwrap();
            let mut db = k.alloc_tensor(heads * 32).unwrap();
            let bias = b.as_ref().map(|b| WeightView::new(b, 0));
            let d_bias = if with_bias { Some(ViewMut::new(&mut db, 0)) } else { None };
            k.attention_backward(
                View::new(&q, 0),
                View::new(&kk, 0),
                View::new(&v, 0),
                WeightView::new(&s, 0),
                bias,
                View::new(&d_out, 0),
                ViewMut::new(&mut dq, 0),
                ViewMut::new(&mut dk, 0),
                ViewMut::new(&mut dv, 0),
                ViewMut::new(&mut ds, 0),
                d_bias,
                desc,
            )
            .unwrap();
            let mut grads = vec![dq.to_vec(), dk.to_vec(), dv.to_vec(), ds.to_vec()];
            if with_bias {
                grads.push(db.to_vec());
            }
            grads
        });
        check(&format!("attention ({name})"), &inputs, &loss, &grads);
    }
}

#[test]
fn linear_attention_with_carried_sums() {
    let mut rng = SplitMix64::new(5);
    for abs in [false, true] {
        let desc = LinearAttention::new(2, 3, 2, 3, abs).unwrap();
        let n = desc.token_len();
        // Carried sums as a real stream leaves them: positive key features.
        let mut state = random(&mut rng, desc.state_len(), 1.0);
        for s in state.iter_mut() {
            *s = s.abs() + 0.5;
        }
        let inputs = vec![
            random(&mut rng, n, 1.0),
            random(&mut rng, n, 1.0),
            random(&mut rng, n, 1.0),
            random(&mut rng, 2, 2.0),
            state,
        ];
        let g_out = random(&mut rng, n, 1.0);
        let g_state = random(&mut rng, desc.state_len(), 0.3);
        let loss = |inp: &[Vec<f64>]| {
            with_k(|k| {
                let (q, kk, v, s) = (buf(k, &inp[0]), buf(k, &inp[1]), buf(k, &inp[2]), buf(k, &inp[3]));
                let mut st = buf(k, &inp[4]);
                let mut out = k.alloc_tensor(n).unwrap();
                k.linear_attention(
                    View::new(&q, 0),
                    View::new(&kk, 0),
                    View::new(&v, 0),
                    WeightView::new(&s, 0),
                    ViewMut::new(&mut st, 0),
                    ViewMut::new(&mut out, 0),
                    desc,
                )
                .unwrap();
                dotv(out, &g_out) + dotv(st, &g_state)
            })
        };
        let grads = with_k(|k| {
            let (q, kk, v, s, st) =
                (buf(k, &inputs[0]), buf(k, &inputs[1]), buf(k, &inputs[2]), buf(k, &inputs[3]), buf(k, &inputs[4]));
            let d_out = buf(k, &g_out);
            let mut d_state = buf(k, &g_state);
            let mut dq = k.alloc_tensor(n).unwrap();
            let mut dk = k.alloc_tensor(n).unwrap();
            let mut dv = k.alloc_tensor(n).unwrap();
            let mut ds = k.alloc_tensor(2).unwrap();
            k.linear_attention_backward(
                View::new(&q, 0),
                View::new(&kk, 0),
                View::new(&v, 0),
                WeightView::new(&s, 0),
                View::new(&st, 0),
                View::new(&d_out, 0),
                ViewMut::new(&mut d_state, 0),
                ViewMut::new(&mut dq, 0),
                ViewMut::new(&mut dk, 0),
                ViewMut::new(&mut dv, 0),
                ViewMut::new(&mut ds, 0),
                desc,
            )
            .unwrap();
            vec![dq.to_vec(), dk.to_vec(), dv.to_vec(), ds.to_vec(), d_state.to_vec()]
        });
        check(&format!("linear attention abs={abs}"), &inputs, &loss, &grads);
    }
}

#[test]
fn gates() {
    let mut rng = SplitMix64::new(6);
    let desc = Rows::new(3, 4).unwrap();
    let inputs = vec![random(&mut rng, 12, 1.0), random(&mut rng, 12, 1.0), random(&mut rng, 4, 2.0)];
    let g = random(&mut rng, 12, 1.0);
    let loss = |inp: &[Vec<f64>]| {
        with_k(|k| {
            let mut s = buf(k, &inp[0]);
            let (z, b) = (buf(k, &inp[1]), buf(k, &inp[2]));
            k.gate_fixed(ViewMut::new(&mut s, 0), View::new(&z, 0), WeightView::new(&b, 0), desc).unwrap();
            dotv(s, &g)
        })
    };
    let grads = with_k(|k| {
        let (s, z, b) = (buf(k, &inputs[0]), buf(k, &inputs[1]), buf(k, &inputs[2]));
        let mut ds = buf(k, &g);
        let mut dz = k.alloc_tensor(12).unwrap();
        let mut db = k.alloc_tensor(4).unwrap();
        k.gate_fixed_backward(
            View::new(&s, 0),
            View::new(&z, 0),
            WeightView::new(&b, 0),
            ViewMut::new(&mut ds, 0),
            ViewMut::new(&mut dz, 0),
            ViewMut::new(&mut db, 0),
            desc,
        )
        .unwrap();
        vec![ds.to_vec(), dz.to_vec(), db.to_vec()]
    });
    check("fixed gate", &inputs, &loss, &grads);

    let inputs = vec![
        random(&mut rng, 12, 1.0),
        random(&mut rng, 12, 1.0),
        random(&mut rng, 12, 2.0),
        random(&mut rng, 12, 2.0),
        random(&mut rng, 4, 1.0),
        random(&mut rng, 4, 1.0),
    ];
    let loss = |inp: &[Vec<f64>]| {
        with_k(|k| {
            let mut s = buf(k, &inp[0]);
            let (z, f, i, bf, bi) =
                (buf(k, &inp[1]), buf(k, &inp[2]), buf(k, &inp[3]), buf(k, &inp[4]), buf(k, &inp[5]));
            k.gate_lstm(
                ViewMut::new(&mut s, 0),
                View::new(&z, 0),
                View::new(&f, 0),
                View::new(&i, 0),
                WeightView::new(&bf, 0),
                WeightView::new(&bi, 0),
                desc,
            )
            .unwrap();
            dotv(s, &g)
        })
    };
    let grads = with_k(|k| {
        let (s, z, f, i, bf, bi) = (
            buf(k, &inputs[0]),
            buf(k, &inputs[1]),
            buf(k, &inputs[2]),
            buf(k, &inputs[3]),
            buf(k, &inputs[4]),
            buf(k, &inputs[5]),
        );
        let mut ds = buf(k, &g);
        let mut dz = k.alloc_tensor(12).unwrap();
        let mut df = k.alloc_tensor(12).unwrap();
        let mut di = k.alloc_tensor(12).unwrap();
        let mut dbf = k.alloc_tensor(4).unwrap();
        let mut dbi = k.alloc_tensor(4).unwrap();
        k.gate_lstm_backward(
            View::new(&s, 0),
            View::new(&z, 0),
            View::new(&f, 0),
            View::new(&i, 0),
            WeightView::new(&bf, 0),
            WeightView::new(&bi, 0),
            ViewMut::new(&mut ds, 0),
            ViewMut::new(&mut dz, 0),
            ViewMut::new(&mut df, 0),
            ViewMut::new(&mut di, 0),
            ViewMut::new(&mut dbf, 0),
            ViewMut::new(&mut dbi, 0),
            desc,
        )
        .unwrap();
        vec![ds.to_vec(), dz.to_vec(), df.to_vec(), di.to_vec(), dbf.to_vec(), dbi.to_vec()]
    });
    check("lstm gate", &inputs, &loss, &grads);
}

#[test]
fn embedding_and_weight_copies() {
    let mut rng = SplitMix64::new(7);
    let desc = Embed::new(4, 5, 3).unwrap();
    let ids = [2u32, 0, 2, 4];
    let inputs = vec![random(&mut rng, 15, 1.0)];
    let g = random(&mut rng, 12, 1.0);
    let loss = |inp: &[Vec<f64>]| {
        with_k(|k| {
            let table = buf(k, &inp[0]);
            let mut tokens = k.alloc_tokens(4).unwrap();
            k.write_tokens(&mut tokens, 0, &ids).unwrap();
            let mut out = k.alloc_tensor(12).unwrap();
            k.embed(&tokens, 0, WeightView::new(&table, 0), ViewMut::new(&mut out, 0), desc).unwrap();
            dotv(out, &g)
        })
    };
    let grads = with_k(|k| {
        let mut tokens = k.alloc_tokens(4).unwrap();
        k.write_tokens(&mut tokens, 0, &ids).unwrap();
        let d_out = buf(k, &g);
        let mut dt = k.alloc_tensor(15).unwrap();
        k.embed_backward(&tokens, 0, View::new(&d_out, 0), ViewMut::new(&mut dt, 0), desc).unwrap();
        vec![dt.to_vec()]
    });
    check("embed", &inputs, &loss, &grads);

    let runs = Strided::new(3, 2, 5).unwrap();
    let inputs = vec![random(&mut rng, 6, 1.0)];
    let g = random(&mut rng, runs.extent(), 1.0);
    let loss = |inp: &[Vec<f64>]| {
        with_k(|k| {
            let src = buf(k, &inp[0]);
            let mut dst = k.alloc_tensor(runs.extent()).unwrap();
            k.copy_weights(WeightView::new(&src, 0), ViewMut::new(&mut dst, 0), runs).unwrap();
            dotv(dst, &g)
        })
    };
    let grads = with_k(|k| {
        let d_dst = buf(k, &g);
        let mut d_src = k.alloc_tensor(6).unwrap();
        k.gather_runs_add(View::new(&d_dst, 0), ViewMut::new(&mut d_src, 0), runs).unwrap();
        vec![d_src.to_vec()]
    });
    check("copy_weights", &inputs, &loss, &grads);
}
