//! Numerical safety: norms, softmax attention and gates stay finite for extreme
//! activations, and so does a whole model whose weights push activations to
//! extremes. Each check is written once, generic over the backend; the list at
//! the bottom instantiates every check for every backend (one line each).
//!
//! Documented behaviour (SPEC, as the official f32 code): a row whose mean square
//! overflows f32 (|x| above about 1.8e19) is normalised to zero by `rms_norm`
//! (x * rsqrt(inf) = 0), and likewise a head by `l2_normalize`; a tiny row is
//! scaled by at most 1/sqrt(1e-6) = 1000. Softmax attention of finite logits,
//! however large, is a weighted average of the values (the "safe" floor term
//! only lowers the weights), so it is bounded by the largest value.

mod common;
mod hostile_support;

use brt::{Engine, ModelWeights, WeightBuffer};
use brt_core::desc::{Attention, Heads, Mask, Rows};
use brt_core::{Kernels, LayerParam, Param, View, ViewMut, WeightData, WeightDtype, WeightView};
use common::*;
use hostile_support::random_weights;
use std::fmt::Debug;

/// Rows of extreme values, each `DIM` wide.
const DIM: usize = 8;

fn extreme_rows() -> Vec<(&'static str, [f32; DIM])> {
    vec![
        ("1e30", [1e30; DIM]),
        ("-1e30 and 1e30", [1e30, -1e30, 1e30, -1e30, 1e30, -1e30, 1e30, -1e30]),
        ("f32::MAX", [f32::MAX; DIM]),
        ("one huge value", [0.0, 0.0, 3e38, 0.0, 0.0, 0.0, 0.0, 0.0]),
        ("1e19 (square just fits)", [1e19; DIM]),
        ("1e15", [1e15, -2e15, 3e15, 1e15, 0.0, 5e14, -1e15, 1e15]),
        ("1e-30", [1e-30; DIM]),
        ("smallest subnormal", [f32::from_bits(1); DIM]),
        ("zeros", [0.0; DIM]),
        ("mixed 1e30 and 1e-30", [1e30, 1e-30, -1e-30, 1.0, -1.0, 1e-30, 1e30, 0.0]),
    ]
}

/// The exact RMS norm in f64 (SPEC 1).
fn rms_norm_exact(x: &[f32], eps: f64) -> Vec<f64> {
    let mean = x.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / x.len() as f64;
    x.iter().map(|&v| v as f64 / (mean + eps).sqrt()).collect()
}

fn upload<K: Kernels>(k: &mut K, values: &[f32]) -> K::Tensor
where
    K::Error: Debug,
{
    let mut t = k.alloc_tensor(values.len()).unwrap();
    k.write_tensor(&mut t, 0, values).unwrap();
    t
}

fn weights<K: Kernels>(k: &mut K, values: &[f32]) -> K::Weights
where
    K::Error: Debug,
{
    let mut w = k.alloc_weights(values.len(), WeightDtype::F32).unwrap();
    k.write_weights(&mut w, 0, WeightData::F32(values)).unwrap();
    w
}

fn download<K: Kernels>(k: &mut K, t: &K::Tensor, len: usize) -> Vec<f32>
where
    K::Error: Debug,
{
    let mut out = vec![0f32; len];
    k.read_tensor(t, 0, &mut out).unwrap();
    out
}

/// `rms_norm` gives finite rows bounded by sqrt(dim) * |scale| (a normalised row
/// has RMS at most 1), exact where the square of the row fits in f32.
fn rms_norm_stays_finite<K: Kernels>(mut k: K)
where
    K::Error: Debug,
{
    let rows = extreme_rows();
    let x: Vec<f32> = rows.iter().flat_map(|(_, r)| *r).collect();
    let scale = [1.0, -2.0, 0.5, 1e-30, 3.0, 1.0, -1.0, 2.0];
    let input = upload(&mut k, &x);
    let w = weights(&mut k, &scale);
    let mut out = k.alloc_tensor(x.len()).unwrap();
    let desc = Rows::new(rows.len(), DIM).unwrap();
    k.rms_norm(View::new(&input, 0), WeightView::new(&w, 0), ViewMut::new(&mut out, 0), desc).unwrap();
    let y = download(&mut k, &out, x.len());
    for (r, (name, row)) in rows.iter().enumerate() {
        let got = &y[r * DIM..][..DIM];
        // A backend summing squares in f32 overflows to infinity and gives zeros
        // (as the official f32 code does); one summing in wider precision gives
        // the exact value. Anything else is wrong.
        let sum_fits_f32 = row.iter().map(|&v| v as f64 * v as f64).sum::<f64>() < f32::MAX as f64;
        for (i, &v) in got.iter().enumerate() {
            assert!(v.is_finite(), "rms_norm of {name}: element {i} is {v}");
            let bound = (DIM as f32).sqrt() * scale[i].abs() * 1.0001;
            assert!(v.abs() <= bound, "rms_norm of {name}: element {i} = {v} exceeds {bound}");
        }
        let exact: Vec<f64> = rms_norm_exact(row, 1e-6).iter().zip(scale).map(|(e, s)| e * s as f64).collect();
        let is_exact = got.iter().zip(&exact).all(|(&v, &e)| (v as f64 - e).abs() <= 1e-5 * e.abs().max(1e-30));
        let is_zero = got.iter().all(|&v| v == 0.0);
        if sum_fits_f32 {
            assert!(is_exact, "rms_norm of {name}: {got:?}, exact {exact:?}");
        } else {
            assert!(is_exact || is_zero, "rms_norm of {name} (sum of squares overflows f32): {got:?}, exact {exact:?}");
        }
    }
}

/// `l2_normalize` gives finite heads of norm at most 1.
fn l2_normalize_stays_finite<K: Kernels>(mut k: K)
where
    K::Error: Debug,
{
    let rows = extreme_rows();
    let x: Vec<f32> = rows.iter().flat_map(|(_, r)| *r).collect();
    let mut t = upload(&mut k, &x);
    let desc = Heads::new(rows.len(), 2, DIM / 2).unwrap();
    k.l2_normalize(ViewMut::new(&mut t, 0), desc).unwrap();
    let y = download(&mut k, &t, x.len());
    for (r, (name, _)) in rows.iter().enumerate() {
        for head in y[r * DIM..][..DIM].chunks(DIM / 2) {
            assert!(head.iter().all(|v| v.is_finite()), "l2_normalize of {name}: {head:?}");
            let norm = head.iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt();
            assert!(norm <= 1.0 + 1e-5, "l2_normalize of {name}: norm {norm}");
        }
    }
}

/// Softmax attention with logits of ±1e30 (and up to ±3e38): outputs are finite
/// weighted averages of the values; all logits far below the floor give zero.
fn softmax_of_extreme_logits_stays_finite<K: Kernels>(mut k: K)
where
    K::Error: Debug,
{
    // One query, four keys, one head of width 2; q.k is 1, -1, 0.5 and 0 for the
    // keys, so each logit is the scale times that.
    let q = [1.0f32, 0.0];
    let keys = [1.0f32, 0.0, -1.0, 0.0, 0.5, 0.0, 0.0, 0.0];
    let values = [1.0f32, -2.0, 3.0, 4.0, -5.0, 6.0, 0.25, -0.5];
    let (q_t, k_t, v_t) = (upload(&mut k, &q), upload(&mut k, &keys), upload(&mut k, &values));
    let largest = values.iter().fold(0f32, |m, v| m.max(v.abs()));
    for scale in [1e30f32, -1e30, 3e38, -3e38, 1e-30, 0.0] {
        let w = weights(&mut k, &[scale]);
        let mut out = k.alloc_tensor(2).unwrap();
        let desc = Attention::new(1, 1, 4, 1, 2, Mask::None, false).unwrap();
        k.attention(
            View::new(&q_t, 0),
            View::new(&k_t, 0),
            View::new(&v_t, 0),
            WeightView::new(&w, 0),
            None,
            ViewMut::new(&mut out, 0),
            desc,
        )
        .unwrap();
        let y = download(&mut k, &out, 2);
        assert!(y.iter().all(|v| v.is_finite() && v.abs() <= largest), "scale {scale}: {y:?}");
        if scale == 1e30 || scale == 3e38 {
            // All weight on the key with q.k = 1.
            assert_eq!(y, vec![1.0, -2.0], "scale {scale}");
        }
        if scale == -1e30 || scale == -3e38 {
            // A negative scale turns q.k = -1 into the largest logit.
            assert_eq!(y, vec![3.0, 4.0], "scale {scale}");
        }
    }
    // Every logit at -1e30: far below the safe softmax's floor, so no weight.
    let w = weights(&mut k, &[1e30]);
    let negative = upload(&mut k, &[-1.0f32, 0.0, -1.0, 0.0, -1.0, 0.0, -1.0, 0.0]);
    let mut out = k.alloc_tensor(2).unwrap();
    let desc = Attention::new(1, 1, 4, 1, 2, Mask::None, false).unwrap();
    k.attention(
        View::new(&q_t, 0),
        View::new(&negative, 0),
        View::new(&v_t, 0),
        WeightView::new(&w, 0),
        None,
        ViewMut::new(&mut out, 0),
        desc,
    )
    .unwrap();
    assert_eq!(download(&mut k, &out, 2), vec![0.0, 0.0]);
}

/// Gates with biases and inputs of ±1e30 keep the state finite.
fn gates_of_extreme_inputs_stay_finite<K: Kernels>(mut k: K)
where
    K::Error: Debug,
{
    let state0 = [1.0f32, -2.0, 3.0, 1e30, -1e30, 1e-30, 0.0, 5.0];
    let z = [2.0f32, 2.0, -1.0, 1e30, 1e30, 1e-30, -3.0, 0.0];
    let bias = [1e30f32, -1e30, 0.0, 1e30, -1e30, 1e-30, f32::MAX, -f32::MAX];
    let desc = Rows::new(1, DIM).unwrap();
    let z_t = upload(&mut k, &z);
    let b = weights(&mut k, &bias);
    let mut s = upload(&mut k, &state0);
    k.gate_fixed(ViewMut::new(&mut s, 0), View::new(&z_t, 0), WeightView::new(&b, 0), desc).unwrap();
    let fixed = download(&mut k, &s, DIM);
    assert!(fixed.iter().all(|v| v.is_finite()), "fixed gate: {fixed:?}");
    let inputs = upload(&mut k, &[1e30f32, -1e30, 1e30, -1e30, 0.0, 1e-30, -3e38, 3e38]);
    let mut s = upload(&mut k, &state0);
    k.gate_lstm(
        ViewMut::new(&mut s, 0),
        View::new(&z_t, 0),
        View::new(&inputs, 0),
        View::new(&inputs, 0),
        WeightView::new(&b, 0),
        WeightView::new(&b, 0),
        desc,
    )
    .unwrap();
    let lstm = download(&mut k, &s, DIM);
    // s*f + z*i with f, i in [0, 1]: finite as long as the sum does not
    // overflow, which |s| + |z| <= 2e30 guarantees here.
    assert!(lstm.iter().all(|v| v.is_finite()), "LSTM gate: {lstm:?}");
}

/// Multiplies every value of the parameters `which` selects by `factor`.
fn scaled(weights: &ModelWeights, which: impl Fn(Param) -> bool, factor: f32) -> ModelWeights {
    let mut out = weights.clone();
    let spans: Vec<_> = out.layout().params().filter(|s| which(s.param)).map(|s| (s.offset, s.span.len())).collect();
    assert!(!spans.is_empty());
    let WeightBuffer::F32(values) = out.buffer_mut() else { panic!("f32 weights") };
    for (offset, len) in spans {
        for v in &mut values[offset..offset + len] {
            *v *= factor;
        }
    }
    out
}

fn layer_param(p: Param, pick: impl Fn(LayerParam) -> bool) -> bool {
    matches!(p, Param::Layer(_, lp) if pick(lp))
}

/// A whole model with extreme weights: logits stay finite over three blocks,
/// through the carried caches and recurrent states.
fn models_with_extreme_weights_stay_finite<K: Kernels>(make: impl Fn() -> K)
where
    brt::Error: From<K::Error>,
{
    let config = brt_core::Config { feedback: true, ..small_config() };
    let base = random_weights(config, 31, WeightDtype::F32);
    use LayerParam::*;
    let is_scale = |p| layer_param(p, |lp| matches!(lp, AttnScale | AttnScale2 | StateScale | StateScale2));
    let is_norm =
        |p| p == Param::FinalNorm || layer_param(p, |lp| matches!(lp, AttnNorm | MlpNorm | StateNorm | StateMlpNorm));
    let is_gate = |p| layer_param(p, |lp| matches!(lp, GateBias(_) | InputGateBias(_) | ForgetGateBias(_)));
    let cases = [
        ("embedding x 1e20", scaled(&base, |p| p == Param::Embedding, 1e20)),
        ("embedding x 1e30", scaled(&base, |p| p == Param::Embedding, 1e30)),
        ("embedding x 1e-20", scaled(&base, |p| p == Param::Embedding, 1e-20)),
        ("attention scales x 1e30", scaled(&base, is_scale, 1e30)),
        ("attention scales x -1e30", scaled(&base, is_scale, -1e30)),
        ("norm scales x 1e-30", scaled(&base, is_norm, 1e-30)),
        ("norm scales x 1e15", scaled(&base, is_norm, 1e15)),
        ("gate biases x 1e30", scaled(&base, is_gate, 1e30)),
        ("gate biases x -1e30", scaled(&base, is_gate, -1e30)),
        ("initial state x 1e30", scaled(&base, |p| layer_param(p, |lp| lp == InitialState), 1e30)),
    ];
    let tokens: Vec<u32> = (0..12).map(|t| 3 + t * 17).collect(); // three blocks of W = 4
    for (name, weights) in cases {
        let mut engine = Engine::new(make(), &weights).unwrap();
        let mut session = engine.session(1, 4).unwrap();
        let mut all = Vec::new();
        session
            .feed_rows(
                &mut engine,
                &[&tokens],
                &[],
                Some(&mut |_, logits: &[f32]| {
                    all.extend_from_slice(logits);
                    Ok(())
                }),
            )
            .unwrap();
        assert_eq!(all.len(), tokens.len() * 260);
        if let Some(i) = all.iter().position(|v| !v.is_finite()) {
            panic!("{name}: logit {} of position {} is {}", i % 260, i / 260, all[i]);
        }
    }
}

/// Instantiates every check for each backend: `name => expression giving
/// `Some(backend)`, or `None` when this machine has no such device` (said loudly).
macro_rules! on_every_backend {
    ($($backend:ident => $make:expr),* $(,)?) => {$(
        mod $backend {
            use super::*;

            #[test]
            fn rms_norm_of_extreme_rows_is_finite() {
                if let Some(k) = $make { rms_norm_stays_finite(k) }
            }
            #[test]
            fn l2_normalize_of_extreme_heads_is_finite() {
                if let Some(k) = $make { l2_normalize_stays_finite(k) }
            }
            #[test]
            fn softmax_of_extreme_logits_is_finite() {
                if let Some(k) = $make { softmax_of_extreme_logits_stays_finite(k) }
            }
            #[test]
            fn gates_of_extreme_inputs_are_finite() {
                if let Some(k) = $make { gates_of_extreme_inputs_stay_finite(k) }
            }
            #[test]
            fn models_with_extreme_weights_give_finite_logits() {
                if $make.is_some() { models_with_extreme_weights_stay_finite(|| $make.unwrap()) }
            }
        }
    )*};
}

/// The CPU backend at `level`, or `None` (said loudly) when this CPU lacks it.
#[cfg(feature = "cpu")]
fn cpu_at(level: brt_cpu::SimdLevel) -> Option<brt_cpu::Cpu<brt_cpu::Heap>> {
    if !level.is_supported() {
        eprintln!("SKIPPED: this CPU has no {level:?}");
        return None;
    }
    let options = brt_cpu::Options { level: Some(level), threads: 2, ..Default::default() };
    Some(brt_cpu::Cpu::with_options(brt_cpu::Heap, options).unwrap())
}

/// A GPU backend, or `None` when this machine has no device for it (said
/// loudly; a failure instead under `BRT_REQUIRE_GPU=1`).
#[cfg(any(feature = "wgpu", feature = "cuda"))]
fn gpu_or_skip<K, E: std::fmt::Display>(name: &str, made: Result<K, E>, unavailable: impl Fn(&E) -> bool) -> Option<K> {
    match made {
        Ok(k) => Some(k),
        Err(e)
            if unavailable(&e) && !brt_core::requires_gpu(std::env::var(brt_core::REQUIRE_GPU_VAR).ok().as_deref()) =>
        {
            eprintln!("SKIPPED: no {name} device here ({e}); set BRT_REQUIRE_GPU=1 to fail instead");
            None
        }
        Err(e) => panic!("{name}: {e}"),
    }
}

on_every_backend! {
    reference => Some(brt_core::Reference::new(brt_heap::Heap)),
}

#[cfg(feature = "cpu")]
on_every_backend! {
    cpu_scalar => cpu_at(brt_cpu::SimdLevel::Scalar),
    cpu_avx2 => cpu_at(brt_cpu::SimdLevel::Avx2),
    cpu_avx512 => cpu_at(brt_cpu::SimdLevel::Avx512),
    cpu_neon => cpu_at(brt_cpu::SimdLevel::Neon),
}

#[cfg(feature = "wgpu")]
on_every_backend! {
    wgpu => gpu_or_skip("wgpu", brt_wgpu::Wgpu::new(), |e| matches!(e, brt_wgpu::WgpuError::NoAdapter { .. })),
}

#[cfg(feature = "cuda")]
on_every_backend! {
    cuda => gpu_or_skip("CUDA", brt_cuda::Cuda::new(), brt_cuda::CudaError::is_unavailable),
}
