//! Small cases checked by hand against the SPEC formulas.

use super::*;
use crate::desc::{Activation, Attention, Heads, LinearAttention, Mask, Matmul, Rows, Strided};
use crate::kernels::{Kernels, Storage};
use crate::memory::Arena;

/// Runs `f` with a reference backend over a stack arena.
fn with_reference<R>(f: impl FnOnce(&mut Reference<Arena<'_>>) -> R) -> R {
    let mut f32s = [0f32; 4096];
    let mut u32s = [0u32; 64];
    let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut u32s));
    f(&mut k)
}

fn tensor<'m>(k: &mut Reference<Arena<'m>>, values: &[f32]) -> &'m mut [f32] {
    let t = k.alloc_tensor(values.len()).unwrap();
    t.copy_from_slice(values);
    t
}

/// Parameters holding `values`.
fn params<'m>(k: &mut Reference<Arena<'m>>, values: &[f32]) -> RefWeights<&'m mut [f32], &'m [u8]> {
    RefWeights::Values(tensor(k, values))
}

#[test]
fn window_mask_sees_exactly_the_w_previous_tokens() {
    // W = 2, two cached positions then 3 tokens. All keys are zero, so every
    // visible key gets the same weight; value j is the one-hot of j, so the
    // output row shows which keys were visible.
    with_reference(|k| {
        let (w, n, keys) = (2, 3, 5);
        let q = tensor(k, &[0.0; 3 * 5]);
        let zero_keys = tensor(k, &[0.0; 5 * 5]);
        let mut one_hot = [0f32; 25];
        for j in 0..keys {
            one_hot[j * 5 + j] = 1.0;
        }
        let v = tensor(k, &one_hot);
        let scale = params(k, &[1.0]);
        let mut out = k.alloc_tensor(n * 5).unwrap();
        let desc = Attention::new(1, n, keys, 1, 5, Mask::Window { offset: w, window: w }, false).unwrap();
        k.attention(
            View::new(&q, 0),
            View::new(&zero_keys, 0),
            View::new(&v, 0),
            WeightView::new(&scale, 0),
            None,
            ViewMut::new(&mut out, 0),
            desc,
        )
        .unwrap();
        // Query i (position i + 2 in the tile) sees keys i and i + 1 only:
        // never itself (i + 2), never anything older.
        for i in 0..n {
            for j in 0..keys {
                let expected = if j == i || j == i + 1 { 0.5 } else { 0.0 };
                assert!((out[i * 5 + j] - expected).abs() < 1e-6, "query {i} key {j}: {}", out[i * 5 + j]);
            }
        }
    });
}

#[test]
fn zero_cache_at_a_document_start_gives_zero_output() {
    // The first token sees only the W zero cached keys/values: they take
    // probability mass (unmasked) but contribute zero values.
    with_reference(|k| {
        let q = tensor(k, &[0.3, -0.7]);
        let keys = tensor(k, &[0.0, 0.0, 0.0, 0.0, 0.6, 0.8]);
        let values = tensor(k, &[0.0, 0.0, 0.0, 0.0, 5.0, 7.0]);
        let scale = params(k, &[3.0]);
        let bias = params(k, &[0.5; 32]);
        let mut out = k.alloc_tensor(2).unwrap();
        let desc = Attention::new(1, 1, 3, 1, 2, Mask::Window { offset: 2, window: 2 }, false).unwrap();
        k.attention(
            View::new(&q, 0),
            View::new(&keys, 0),
            View::new(&values, 0),
            WeightView::new(&scale, 0),
            Some(WeightView::new(&bias, 0)),
            ViewMut::new(&mut out, 0),
            desc,
        )
        .unwrap();
        assert_eq!(&out[..], &[0.0, 0.0]);
    });
}

#[test]
fn bias_is_added_before_the_scale() {
    // Two visible keys with q.k = 0 and biases 0 (distance 2) and 1 (distance 1):
    // logits a*(0 + bias) = (0, a), so the weights are softmax(0, a).
    with_reference(|k| {
        let q = tensor(k, &[0.0, 0.0]);
        let keys = tensor(k, &[0.0; 6]);
        let values = tensor(k, &[1.0, 0.0, 0.0, 1.0, 9.0, 9.0]);
        let a = 3.0f32;
        let scale = params(k, &[a]);
        let mut table = [0f32; 32];
        table[1] = 1.0; // bucket of distance 1
        let bias = params(k, &table);
        let mut out = k.alloc_tensor(2).unwrap();
        let desc = Attention::new(1, 1, 3, 1, 2, Mask::Window { offset: 2, window: 2 }, false).unwrap();
        k.attention(
            View::new(&q, 0),
            View::new(&keys, 0),
            View::new(&values, 0),
            WeightView::new(&scale, 0),
            Some(WeightView::new(&bias, 0)),
            ViewMut::new(&mut out, 0),
            desc,
        )
        .unwrap();
        let e = libm::expf(a);
        assert!((out[0] - 1.0 / (1.0 + e)).abs() < 1e-6);
        assert!((out[1] - e / (1.0 + e)).abs() < 1e-6);
    });
}

#[test]
fn safe_softmax_attends_to_nothing_far_below_the_floor() {
    with_reference(|k| {
        let q = tensor(k, &[1.0, 0.0]);
        let keys = tensor(k, &[-1.0, 0.0]);
        let values = tensor(k, &[4.0, 2.0]);
        let mut out = k.alloc_tensor(2).unwrap();
        let desc = Attention::new(1, 1, 1, 1, 2, Mask::None, false).unwrap();
        // a = 2000: the only logit is -2000 < -1000, so the floor term wins.
        let scale = params(k, &[2000.0]);
        k.attention(
            View::new(&q, 0),
            View::new(&keys, 0),
            View::new(&values, 0),
            WeightView::new(&scale, 0),
            None,
            ViewMut::new(&mut out, 0),
            desc,
        )
        .unwrap();
        assert_eq!(&out[..], &[0.0, 0.0]);
        // abs(a) with a = -1: logit -1, one key: weight 1 (the floor is negligible).
        let scale = params(k, &[-1.0]);
        let desc = Attention::new(1, 1, 1, 1, 2, Mask::None, true).unwrap();
        k.attention(
            View::new(&q, 0),
            View::new(&keys, 0),
            View::new(&values, 0),
            WeightView::new(&scale, 0),
            None,
            ViewMut::new(&mut out, 0),
            desc,
        )
        .unwrap();
        assert_eq!(&out[..], &[4.0, 2.0]);
    });
}

#[test]
fn gate_formulas() {
    with_reference(|k| {
        // Fixed: b = 0 gives g = 1/2, so s' = (s + z) / 2.
        let mut s = tensor(k, &[2.0, -4.0]);
        let z = tensor(k, &[6.0, 0.0]);
        let b = params(k, &[0.0, 0.0]);
        k.gate_fixed(ViewMut::new(&mut s, 0), View::new(&z, 0), WeightView::new(&b, 0), Rows::new(1, 2).unwrap())
            .unwrap();
        assert_eq!(&s[..], &[4.0, -2.0]);
        // LSTM: forget input -1 with bias 0 gives sigmoid(0) = 1/2 (the +1);
        // input 1 with bias 0 gives sigmoid(0) = 1/2 (the -1).
        let mut s = tensor(k, &[2.0, -4.0]);
        let forget = tensor(k, &[-1.0, -1.0]);
        let input = tensor(k, &[1.0, 1.0]);
        k.gate_lstm(
            ViewMut::new(&mut s, 0),
            View::new(&z, 0),
            View::new(&forget, 0),
            View::new(&input, 0),
            WeightView::new(&b, 0),
            WeightView::new(&b, 0),
            Rows::new(1, 2).unwrap(),
        )
        .unwrap();
        assert_eq!(&s[..], &[4.0, -2.0]);
    });
}

#[test]
fn norms() {
    with_reference(|k| {
        let x = tensor(k, &[3.0, 4.0]);
        let scale = params(k, &[1.0, -2.0]);
        let mut out = k.alloc_tensor(2).unwrap();
        k.rms_norm(View::new(&x, 0), WeightView::new(&scale, 0), ViewMut::new(&mut out, 0), Rows::new(1, 2).unwrap())
            .unwrap();
        // Computed in f64, rounded once.
        let inv = 1.0 / libm::sqrt(12.5 + 1e-6f32 as f64);
        assert_eq!(&out[..], &[(3.0 * inv) as f32, (4.0 * inv * -2.0) as f32]);
        let mut heads = tensor(k, &[3.0, 4.0, 0.0, 0.0]);
        k.l2_normalize(ViewMut::new(&mut heads, 0), Heads::new(1, 2, 2).unwrap()).unwrap();
        let inv = 1.0 / libm::sqrt(25.0 + 1e-6f32 as f64);
        assert_eq!(&heads[..], &[(3.0 * inv) as f32, (4.0 * inv) as f32, 0.0, 0.0]);
    });
}

#[test]
fn matmul_orders_accumulation_and_activation() {
    with_reference(|k| {
        let x = tensor(k, &[1.0, 2.0]);
        let w = params(k, &[1.0, -1.0, 3.0, 0.5, 1.0, -2.0]); // (2, 3) in-out
        let mut out = tensor(k, &[10.0, 10.0, 10.0]);
        k.matmul(View::new(&x, 0), WeightView::new(&w, 0), ViewMut::new(&mut out, 0), Matmul::new(1, 2, 3).unwrap())
            .unwrap();
        assert_eq!(&out[..], &[2.0, 1.0, -1.0]);
        let desc = Matmul::new(1, 2, 3).unwrap().accumulate().activation(Activation::Relu).alpha(2.0);
        k.matmul(View::new(&x, 0), WeightView::new(&w, 0), ViewMut::new(&mut out, 0), desc).unwrap();
        assert_eq!(&out[..], &[6.0, 3.0, 0.0]);
        // Read as (n=2, k=3) out-in: rows are outputs.
        let x3 = tensor(k, &[1.0, 1.0, 1.0]);
        let mut out2 = k.alloc_tensor(2).unwrap();
        k.matmul(
            View::new(&x3, 0),
            WeightView::new(&w, 0),
            ViewMut::new(&mut out2, 0),
            Matmul::new(1, 3, 2).unwrap().transposed_weight(),
        )
        .unwrap();
        assert_eq!(&out2[..], &[3.0, -0.5]);
    });
}

#[test]
fn linear_attention_of_a_first_token_returns_its_value() {
    // One token: S = phi(k)^T v, z = phi(k), so y = (phi(q).phi(k)) v / (phi(q).phi(k)) = v.
    with_reference(|k| {
        let q = tensor(k, &[0.2, -0.9]);
        let keys = tensor(k, &[-0.4, 0.7]);
        let v = tensor(k, &[3.0, -5.0]);
        let scale = params(k, &[2.0]);
        let desc = LinearAttention::new(1, 1, 1, 2, false).unwrap();
        let mut state = k.alloc_tensor(desc.state_len()).unwrap();
        let mut out = k.alloc_tensor(2).unwrap();
        k.linear_attention(
            View::new(&q, 0),
            View::new(&keys, 0),
            View::new(&v, 0),
            WeightView::new(&scale, 0),
            ViewMut::new(&mut state, 0),
            ViewMut::new(&mut out, 0),
            desc,
        )
        .unwrap();
        assert!((out[0] - 3.0).abs() < 1e-6 && (out[1] + 5.0).abs() < 1e-6, "{:?}", &out[..]);
    });
}

#[test]
fn too_small_buffers_are_errors() {
    with_reference(|k| {
        let x = tensor(k, &[1.0; 3]);
        let scale = params(k, &[1.0; 2]);
        let mut out = k.alloc_tensor(4).unwrap();
        let err = k.rms_norm(
            View::new(&x, 0),
            WeightView::new(&scale, 0),
            ViewMut::new(&mut out, 0),
            Rows::new(2, 2).unwrap(),
        );
        assert_eq!(err, Err(CoreError::BufferTooSmall { what: "rms_norm input", needed: 4, available: 3 }));
        let err = k.copy(View::new(&x, 2), ViewMut::new(&mut out, 0), 2);
        assert_eq!(err, Err(CoreError::BufferTooSmall { what: "copy source", needed: 4, available: 3 }));
        let err = k.fill(ViewMut::new(&mut out, usize::MAX), Strided::contiguous(2), 0.0);
        assert!(matches!(err, Err(CoreError::BufferTooSmall { .. })));
    });
}
