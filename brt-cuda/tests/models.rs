//! Whole models through the core's `Stream` on the CUDA backend against the same
//! stream on the reference backend: every configuration variant (plain Slide,
//! fixed/LSTM gates x skip/single/dual layouts x feedback on/off, two recurrent
//! layers, linear attention, abs scale, 16-bit weights), batch 2, calls that
//! split blocks unevenly, a row reset at a block boundary and a reset of all
//! rows mid-block. Also: a running stream allocates nothing.

mod common;

use brt_core::init::{initialize, SplitMix64};
use brt_core::{
    Config, GateKind, Kernels, LayerParam, LayerSet, Model, Param, Plan, StateLayout, Storage, Stream, WeightData,
    WeightDtype, WeightLayout,
};
use common::*;

fn variants() -> Vec<(String, Config)> {
    // V = 37, d = 16, H = 2, dh = 8, F = 24, 3 layers, W = 4.
    let base = Config::plain(37, 16, 2, 8, 24, 3, 4);
    let mut all = vec![("slide".to_string(), base)];
    for gate in [GateKind::Fixed, GateKind::Lstm] {
        for layout in [StateLayout::Skip, StateLayout::Single, StateLayout::Dual] {
            for feedback in [false, true] {
                let config = Config { states: 3, recurrent: LayerSet::EMPTY.with(1), gate, layout, feedback, ..base };
                all.push((format!("{gate:?}/{layout:?}/feedback={feedback}"), config));
            }
        }
    }
    let two = Config {
        states: 2,
        recurrent: LayerSet::EMPTY.with(0).with(2),
        gate: GateKind::Lstm,
        layout: StateLayout::Dual,
        feedback: true,
        ..base
    };
    all.push(("two recurrent layers, feedback".into(), two));
    let linear = Config { states: 3, recurrent: LayerSet::EMPTY.with(1), linear: LayerSet::EMPTY.with(0), ..base };
    all.push(("linear attention in layer 0".into(), linear));
    let linear_recurrent =
        Config { states: 3, recurrent: LayerSet::EMPTY.with(1), linear: LayerSet::EMPTY.with(1), ..base };
    all.push(("linear attention in the recurrent layer".into(), linear_recurrent));
    let abs = Config { states: 3, recurrent: LayerSet::EMPTY.with(2), abs_attention_scale: true, ..base };
    all.push(("abs attention scale".into(), abs));
    all
}

/// Official-style random weights, with what initialisation leaves at 1 made
/// to matter: attention scales of either sign up to 5, norm scales in [0.5, 1.5]
/// with a few negated.
fn model_weights(config: &Config, seed: u64) -> Vec<f32> {
    let layout = WeightLayout::new(config).unwrap();
    let mut flat = vec![0f32; layout.len()];
    initialize(config, seed, &mut flat).unwrap();
    let mut rng = SplitMix64::new(seed ^ 0xabc);
    for spec in layout.params() {
        let values = &mut flat[spec.offset..spec.offset + spec.span.len()];
        use LayerParam::*;
        match spec.param {
            Param::Layer(_, AttnScale | AttnScale2 | StateScale | StateScale2) => {
                for v in values {
                    *v = ((rng.uniform() * 2.0 - 1.0) * 5.0) as f32;
                }
            }
            Param::FinalNorm | Param::Layer(_, AttnNorm | MlpNorm | StateNorm | StateMlpNorm) => {
                for v in values {
                    let sign = if rng.uniform() < 0.15 { -1.0 } else { 1.0 };
                    *v = (sign * (0.5 + rng.uniform())) as f32;
                }
            }
            _ => {}
        }
    }
    flat
}

/// The calls of a run: (tokens per row, resets).
const SCHEDULE: [(usize, &[bool]); 5] = [(9, &[]), (3, &[]), (0, &[false, true]), (5, &[]), (7, &[true, true])];
const BATCH: usize = 2;
const MAX_TOKENS: usize = 9;

/// Runs the schedule; returns the logits of every call, then the final state.
fn run<K: Kernels>(k: &mut K, config: &Config, dtype: WeightDtype, flat: &[f32], seed: u64) -> Vec<Vec<f32>> {
    let converted_f16: Vec<_>;
    let converted_bf16: Vec<_>;
    let data = match dtype {
        WeightDtype::F32 | WeightDtype::Q8_0 => WeightData::F32(flat),
        WeightDtype::F16 => {
            converted_f16 = flat.iter().map(|&x| brt_core::half::f16::from_f32(x)).collect();
            WeightData::F16(&converted_f16)
        }
        WeightDtype::Bf16 => {
            converted_bf16 = flat.iter().map(|&x| brt_core::half::bf16::from_f32(x)).collect();
            WeightData::Bf16(&converted_bf16)
        }
    };
    let model = Model::from_flat(k, config, dtype, data).unwrap();
    let plan = Plan::new(config, BATCH, MAX_TOKENS).unwrap();
    let mut stream = Stream::new(k, &model, plan).unwrap();
    let mut rng = SplitMix64::new(seed);
    let mut results = Vec::new();
    for (n, resets) in SCHEDULE {
        let tokens: Vec<u32> = (0..n * BATCH).map(|_| (rng.next_u64() % config.vocab as u64) as u32).collect();
        stream.forward(k, &model, &tokens, resets).unwrap();
        let mut logits = vec![0f32; n * BATCH * config.vocab];
        stream.read_logits(k, &mut logits).unwrap();
        results.push(logits);
    }
    let mut state = vec![0f32; plan.saved_state_len()];
    stream.read_state(k, &mut state).unwrap();
    results.push(state);
    results
}

#[test]
fn every_configuration_variant_matches_the_reference_stream() {
    for (name, mut cuda) in backends("models") {
        for (i, (variant, config)) in variants().into_iter().enumerate() {
            let flat = model_weights(&config, 10 + i as u64);
            let (expected, actual) = on_both!(&mut cuda, |k| run(k, &config, WeightDtype::F32, &flat, 77));
            for (call, (a, e)) in actual.iter().zip(&expected).enumerate() {
                let what = if call < SCHEDULE.len() { format!("logits of call {call}") } else { "final state".into() };
                assert_close(&format!("{name}: {variant}: {what}"), a, e, 1e-4, 1e-4);
            }
        }
    }
}

#[test]
fn sixteen_bit_weights_match_the_reference_holding_the_same_values() {
    for (name, mut cuda) in backends("models f16/bf16") {
        let config = Config {
            states: 3,
            recurrent: LayerSet::EMPTY.with(1),
            gate: GateKind::Lstm,
            layout: StateLayout::Dual,
            ..Config::plain(37, 16, 2, 8, 24, 3, 4)
        };
        let flat = model_weights(&config, 5);
        for dtype in [WeightDtype::F16, WeightDtype::Bf16] {
            let (expected, actual) = on_both!(&mut cuda, |k| run(k, &config, dtype, &flat, 78));
            for (call, (a, e)) in actual.iter().zip(&expected).enumerate() {
                assert_close(&format!("{name}: {dtype:?}: output {call}"), a, e, 1e-4, 1e-4);
            }
        }
    }
}

#[test]
fn a_running_stream_allocates_no_device_memory() {
    for (name, mut cuda) in backends("no allocation") {
        let config = Config {
            states: 3,
            recurrent: LayerSet::EMPTY.with(1),
            linear: LayerSet::EMPTY.with(0),
            gate: GateKind::Lstm,
            layout: StateLayout::Dual,
            feedback: true,
            ..Config::plain(37, 16, 2, 8, 24, 3, 4)
        };
        let flat = model_weights(&config, 6);
        let k = &mut cuda;
        let model = Model::from_flat(k, &config, WeightDtype::F32, WeightData::F32(&flat)).unwrap();
        let mut stream = Stream::new(k, &model, Plan::new(&config, BATCH, MAX_TOKENS).unwrap()).unwrap();
        // Warm-up: the first call compiles and loads the attention kernels.
        stream.forward(k, &model, &[1; 2 * MAX_TOKENS], &[]).unwrap();
        let after_warm_up = k.allocations();
        let mut logits = vec![0f32; 3 * BATCH * config.vocab];
        for (n, resets) in [(3, &[][..]), (4, &[]), (0, &[false, true]), (1, &[]), (3, &[true, true])] {
            stream.forward(k, &model, &vec![2; n * BATCH], resets).unwrap();
            if n == 3 {
                stream.read_logits(k, &mut logits).unwrap();
            }
        }
        k.sync().unwrap();
        assert_eq!(k.allocations(), after_warm_up, "{name}: allocations after warm-up");
        assert!(after_warm_up > 0, "{name}: the counter counts");
    }
}
