//! Whole models through the core's `Stream` on the CPU backend against the same
//! models on the scalar reference: every configuration variant, every SIMD level,
//! two threads, 16-bit weight storage, and one big call against block-by-block
//! calls.

mod common;

use brt_core::init::{initialize, SplitMix64};
use brt_core::{
    Config, GateKind, LayerParam, LayerSet, Model, Param, Plan, StateLayout, Stream, WeightData, WeightDtype,
    WeightLayout,
};
use brt_cpu::{Cpu, Heap, Options};
use common::*;

fn base() -> Config {
    Config { states: 6, recurrent: LayerSet::EMPTY.with(2), ..Config::plain(50, 32, 2, 16, 64, 4, 8) }
}

/// Every variant of SPEC sections 4, 5 and 7 on a small model.
fn variants() -> Vec<(&'static str, Config)> {
    let b = base();
    vec![
        ("slide (no recurrent layer)", Config::plain(50, 32, 2, 16, 64, 3, 8)),
        ("fixed skip", b),
        ("lstm skip", Config { gate: GateKind::Lstm, ..b }),
        ("fixed single", Config { layout: StateLayout::Single, ..b }),
        ("lstm single", Config { gate: GateKind::Lstm, layout: StateLayout::Single, ..b }),
        ("fixed dual", Config { layout: StateLayout::Dual, ..b }),
        ("lstm dual", Config { gate: GateKind::Lstm, layout: StateLayout::Dual, ..b }),
        ("feedback", Config { feedback: true, recurrent: LayerSet::EMPTY.with(1), ..b }),
        ("linear attention", Config { linear: LayerSet::EMPTY.with(0).with(3), ..b }),
        ("two recurrent layers", Config { recurrent: LayerSet::EMPTY.with(1).with(3), gate: GateKind::Lstm, ..b }),
        (
            "feedback, two recurrent layers, abs scales, odd head width",
            Config {
                feedback: true,
                recurrent: LayerSet::EMPTY.with(0).with(2),
                abs_attention_scale: true,
                heads: 3,
                head_dim: 12,
                layout: StateLayout::Dual,
                ..b
            },
        ),
    ]
}

/// Official-style initial weights, with attention scales spread out so that the
/// softmaxes are far from uniform.
fn weights(config: &Config, seed: u64) -> Vec<f32> {
    let layout = WeightLayout::new(config).unwrap();
    let mut flat = vec![0f32; layout.len()];
    initialize(config, seed, &mut flat).unwrap();
    let mut rng = SplitMix64::new(seed ^ 0x5eed);
    for spec in layout.params() {
        if let Param::Layer(
            _,
            LayerParam::AttnScale | LayerParam::AttnScale2 | LayerParam::StateScale | LayerParam::StateScale2,
        ) = spec.param
        {
            for v in &mut flat[spec.offset..spec.offset + spec.span.len()] {
                *v = (rng.uniform() * 5.0 - 1.0) as f32;
            }
        }
    }
    flat
}

/// Token calls: (tokens per row, reset every row first).
const CALLS: [(usize, bool); 7] =
    [(5, false), (8, false), (20, false), (3, false), (1, true), (11, false), (16, false)];

/// Streams `CALLS` through a backend and returns every call's logits.
fn stream_logits<K: brt_core::Kernels>(
    k: &mut K,
    config: &Config,
    data: WeightData<'_>,
    dtype: WeightDtype,
) -> Vec<Vec<f32>> {
    let batch = 2;
    let model = Model::from_flat(k, config, dtype, data).unwrap();
    let plan = Plan::new(config, batch, 20).unwrap();
    let mut stream = Stream::new(k, &model, plan).unwrap();
    let mut rng = SplitMix64::new(99);
    let mut out = Vec::new();
    for (n, reset) in CALLS {
        let tokens: Vec<u32> = (0..n * batch).map(|_| (rng.next_u64() % config.vocab as u64) as u32).collect();
        let resets = if reset { vec![true; batch] } else { vec![] };
        stream.forward(k, &model, &tokens, &resets).unwrap();
        let mut logits = vec![0f32; n * batch * config.vocab];
        stream.read_logits(k, &mut logits).unwrap();
        out.push(logits);
    }
    out
}

#[test]
fn every_variant_matches_the_reference_at_every_level() {
    for (variant, config) in variants() {
        let flat = weights(&config, 7);
        let expected = stream_logits(&mut Ref::new(Heap), &config, WeightData::F32(&flat), WeightDtype::F32);
        for (name, mut fast) in backends() {
            let actual = stream_logits(&mut fast, &config, WeightData::F32(&flat), WeightDtype::F32);
            for (call, (a, e)) in actual.iter().zip(&expected).enumerate() {
                assert_close(a, e, 1e-4, &format!("{variant} on {name}, call {call}"));
            }
        }
    }
}

#[test]
fn sixteen_bit_weights_match_the_reference_fed_the_same_values() {
    let config = Config { gate: GateKind::Lstm, layout: StateLayout::Dual, ..base() };
    let flat = weights(&config, 11);
    for dtype in [WeightDtype::F16, WeightDtype::Bf16] {
        let stored = Stored::new(&flat, dtype);
        // The reference widens the 16-bit values exactly, so both compute on the
        // same numbers.
        let expected = stream_logits(&mut Ref::new(Heap), &config, stored.data(), dtype);
        for (name, mut fast) in backends() {
            let actual = stream_logits(&mut fast, &config, stored.data(), dtype);
            for (call, (a, e)) in actual.iter().zip(&expected).enumerate() {
                assert_close(a, e, 1e-4, &format!("{dtype:?} on {name}, call {call}"));
            }
        }
        let mut k = Cpu::new(Heap).unwrap();
        let model = Model::from_flat(&mut k, &config, dtype, stored.data()).unwrap();
        assert_eq!(model.weights().bytes(), flat.len() * 2, "{dtype:?} storage is 2 bytes a value");
    }
}

#[test]
fn threads_do_not_change_the_logits() {
    // Every product computes each output element with the same operations in
    // the same order whatever the task split, so the logits are bit-identical.
    let config = Config { gate: GateKind::Lstm, layout: StateLayout::Dual, ..base() };
    let flat = weights(&config, 13);
    let one = stream_logits(&mut Cpu::new(Heap).unwrap(), &config, WeightData::F32(&flat), WeightDtype::F32);
    let two = stream_logits(
        &mut Cpu::with_options(Heap, Options::threads(2)).unwrap(),
        &config,
        WeightData::F32(&flat),
        WeightDtype::F32,
    );
    assert_eq!(one, two);
}

/// Logits of `total` tokens per row streamed in calls of `call` tokens.
fn chunked(config: &Config, flat: &[f32], total: usize, call: usize) -> Vec<f32> {
    let batch = 2;
    let mut k = Cpu::new(Heap).unwrap();
    let model = Model::from_flat(&mut k, config, WeightDtype::F32, WeightData::F32(flat)).unwrap();
    let mut stream = Stream::new(&mut k, &model, Plan::new(config, batch, call).unwrap()).unwrap();
    let mut rng = SplitMix64::new(5);
    let tokens: Vec<u32> = (0..total * batch).map(|_| (rng.next_u64() % config.vocab as u64) as u32).collect();
    let mut logits = Vec::new();
    for piece in tokens.chunks(call * batch) {
        stream.forward(&mut k, &model, piece, &[]).unwrap();
        let mut out = vec![0f32; piece.len() * config.vocab];
        stream.read_logits(&mut k, &mut out).unwrap();
        logits.extend(out);
    }
    logits
}

#[test]
fn one_big_call_equals_block_by_block_calls() {
    // Without feedback the stack runs layer by layer over a whole call (larger
    // products); the logits must be those of block-sized calls. Products give
    // identical elements whatever their row count; attention tiles its keys from
    // the first query of a tile, so the two differ only by float rounding.
    for config in [base(), Config { recurrent: LayerSet::EMPTY.with(0).with(3), ..base() }] {
        let flat = weights(&config, 17);
        let w = config.window;
        let whole = chunked(&config, &flat, 12 * w, 12 * w);
        let blocks = chunked(&config, &flat, 12 * w, w);
        let odd = chunked(&config, &flat, 12 * w, 5);
        assert_close(&whole, &blocks, 2e-6, "one call vs block by block");
        assert_close(&odd, &blocks, 2e-6, "calls of 5 tokens vs block by block");
    }
}
