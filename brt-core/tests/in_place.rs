//! The reference backend computes from a model's tensor data where it lies
//! (`Reference::weights_in_place`), decoding each value as it reads it: for every
//! storage type, exactly what the decoded values give as held f32 weights.

use brt_core::init::initialize;
use brt_core::{
    Arena, ByteLayout, Config, LayerSet, Model, Plan, Reference, Storage, Stream, WeightData, WeightDtype, WeightLayout,
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

#[test]
fn weights_used_in_place_compute_exactly_what_their_decoded_values_give() {
    let config = config();
    let mut flat = vec![0f32; WeightLayout::new(&config).unwrap().len()];
    initialize(&config, 7, &mut flat).unwrap();
    for dtype in [WeightDtype::F32, WeightDtype::F16, WeightDtype::Bf16, WeightDtype::Q8_0] {
        let layout = ByteLayout::new(&config, dtype, 32).unwrap();
        let mut bytes = vec![0u8; layout.len()];
        layout.encode(WeightData::F32(&flat), &mut bytes).unwrap();
        let mut decoded = vec![0f32; flat.len()];
        layout.decode(&bytes, &mut decoded).unwrap();

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
        assert_eq!(got, want, "{} weights in place", dtype.name());
        let mut w = k.weights_in_place(&bytes, &layout).unwrap();
        assert!(k.write_weights(&mut w, 0, WeightData::F32(&[1.0])).is_err(), "in-place weights are read-only");
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
