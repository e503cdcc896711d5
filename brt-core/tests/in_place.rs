//! The reference backend computes from a model's tensor data where it lies
//! (`Reference::weights_in_place`), decoding each value as it reads it: for f32,
//! f16 and bf16, exactly what the decoded values give as held f32 weights; for
//! Q8_0, products that quantize their inputs too, as the core defines them.

use brt_core::desc::Matmul;
use brt_core::encoding::{q8_0_scale, quantize_activations, Q8_0_BLOCK, Q8_0_BLOCK_BYTES};
use brt_core::init::initialize;
use brt_core::{
    Arena, ByteLayout, Config, Kernels, LayerParam, LayerSet, Model, Param, Plan, Reference, Storage, Stream,
    TensorType, View, ViewMut, WeightData, WeightDtype, WeightLayout, WeightView,
};

/// A recurrent model whose matrices are whole Q8_0 blocks wide.
fn config() -> Config {
    Config { states: 2, recurrent: LayerSet::EMPTY.with(1), ..Config::plain(40, 32, 2, 16, 64, 2, 4) }
}

/// The logits of two calls (9 then 3 tokens) of a fresh stream over `model`.
fn logits<'m>(k: &mut Reference<Arena<'m>>, model: &Model<Reference<Arena<'m>>>) -> Vec<f32> {
    let plan = Plan::new(model.config(), 1, 9).expect("plan");
    let mut stream = Stream::new(k, model, plan).expect("stream");
    let mut all = Vec::new();
    for tokens in [&[1u32, 5, 9, 2, 33, 7, 7, 0, 12][..], &[39, 4, 18]] {
        stream.forward(k, model, tokens, &[]).expect("forward");
        let mut out = vec![0f32; tokens.len() * model.config().vocab];
        stream.read_logits(k, &mut out).expect("logits");
        all.extend(out);
    }
    all
}

/// `config()`'s initial weights, encoded as `dtype`, and the values those bytes
/// stand for.
fn encoded(dtype: WeightDtype) -> (ByteLayout, Vec<u8>, Vec<f32>) {
    let config = config();
    let mut flat = vec![0f32; WeightLayout::new(&config).unwrap().len()];
    initialize(&config, 7, &mut flat).unwrap();
    let layout = ByteLayout::new(&config, dtype, 32).unwrap();
    let mut bytes = vec![0u8; layout.len()];
    layout.encode(WeightData::F32(&flat), &mut bytes).unwrap();
    let mut decoded = vec![0f32; flat.len()];
    layout.decode(&bytes, &mut decoded).unwrap();
    (layout, bytes, decoded)
}

#[test]
fn weights_used_in_place_compute_exactly_what_their_decoded_values_give() {
    let config = config();
    for dtype in [WeightDtype::F32, WeightDtype::F16, WeightDtype::Bf16, WeightDtype::Q8_0] {
        let (layout, bytes, decoded) = encoded(dtype);

        let (mut f32s, mut ids) = (vec![0f32; 1 << 20], vec![0u32; 64]);
        let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
        let held = Model::from_flat(&mut k, &config, WeightDtype::F32, WeightData::F32(&decoded)).unwrap();
        let want = logits(&mut k, &held);

        let (mut f32s, mut ids) = (vec![0f32; 1 << 20], vec![0u32; 64]);
        let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
        let before = k.memory().remaining();
        let weights = k.weights_in_place(&bytes, &layout).unwrap();
        assert_eq!(k.memory().remaining(), before, "in place, the weights take no memory");
        let in_place = Model::with_layout(*layout.layout(), dtype, weights).unwrap();
        let got = logits(&mut k, &in_place);

        assert!(want.iter().all(|v| v.is_finite()));
        if dtype == WeightDtype::Q8_0 {
            // Its products quantize their inputs as well: a small change, not none.
            let moved = got.iter().zip(&want).map(|(g, w)| (g - w).abs()).fold(0.0, f32::max);
            assert!(moved > 1e-6 && moved < 0.1, "quantized inputs moved the logits by {moved}");
        } else {
            assert_eq!(got, want, "{} weights in place", dtype.name());
        }
        let mut w = k.weights_in_place(&bytes, &layout).unwrap();
        assert!(k.write_weights(&mut w, 0, WeightData::F32(&[1.0])).is_err(), "in-place weights are read-only");
    }
}

#[test]
fn q8_0_products_sum_integer_products_of_blocks_scaled_by_both_blocks_scales() {
    // The MLP input kernel (d = 32 inputs, F = 64 outputs), stored as one row
    // of one block per output: y_j = d_x d_wj sum_t q_x[t] q_wj[t], the sum in
    // integers.
    let (layout, bytes, _) = encoded(WeightDtype::Q8_0);
    let kernel = layout.tensors().find(|t| t.spec.param == Param::Layer(0, LayerParam::MlpIn)).unwrap();
    assert!(kernel.ty == TensorType::Q8_0 && kernel.is_transposed());
    let (k, n) = (config().d_model, config().mlp_hidden);
    assert_eq!(k, Q8_0_BLOCK);
    let x: Vec<f32> = (0..k).map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0).collect();
    let mut qx = [0i8; Q8_0_BLOCK];
    let dx = quantize_activations(&x, &mut qx);
    let want: Vec<f64> = (0..n)
        .map(|j| {
            let block = &bytes[kernel.offset + j * Q8_0_BLOCK_BYTES..][..Q8_0_BLOCK_BYTES];
            let sum: i32 = block[2..].iter().zip(&qx).map(|(&w, &x)| (w as i8) as i32 * x as i32).sum();
            dx as f64 * q8_0_scale(block) as f64 * sum as f64
        })
        .collect();

    let (mut f32s, mut ids) = (vec![0f32; 1 << 12], vec![0u32; 1]);
    let mut r = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
    let weights = r.weights_in_place(&bytes, &layout).unwrap();
    let mut input = r.alloc_tensor(k).unwrap();
    r.write_tensor(&mut input, 0, &x).unwrap();
    let mut out = r.alloc_tensor(n).unwrap();
    let desc = Matmul::new(1, k, n).unwrap();
    let w = WeightView::new(&weights, kernel.spec.offset);
    r.matmul(View::new(&input, 0), w, ViewMut::new(&mut out, 0), desc).unwrap();
    let mut got = vec![0f32; n];
    r.read_tensor(&out, 0, &mut got).unwrap();
    for (j, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!((*g as f64 - w).abs() <= 1e-6 * w.abs().max(1e-3), "output {j}: {g} against {w}");
    }
}

#[test]
fn tensor_data_of_the_wrong_length_is_refused() {
    let layout = ByteLayout::new(&config(), WeightDtype::F16, 32).unwrap();
    let bytes = vec![0u8; layout.len() - 1];
    let mut ids = [0u32; 1];
    let k = Reference::new(Arena::new(&mut [], &mut [], &mut ids));
    assert!(k.weights_in_place(&bytes, &layout).is_err());
}
