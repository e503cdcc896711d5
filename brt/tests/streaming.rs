//! Streaming invariance: a document gives the same logits whether it is fed whole,
//! one block at a time, or in random splits, for every model variant (the carried
//! caches, sums and states make up the difference).

mod common;

use brt::load_model;
use brt::meliad::ImportOptions;
use brt::weights::{ModelWeights, WeightBuffer};
use brt_core::init::{initialize, SplitMix64};
use brt_core::{Config, GateKind, LayerSet, Model, Plan, Reference, StateLayout, Stream, WeightLayout};
use brt_heap::Heap;
use common::*;

/// Logits of `tokens` (one document) fed in calls of the given lengths.
fn logits_in_calls(weights: &ModelWeights, tokens: &[u32], calls: &[usize]) -> Vec<f32> {
    let config = *weights.config();
    let max = *calls.iter().max().unwrap();
    let mut k = Reference::new(Heap);
    let model = Model::from_flat(&mut k, &config, weights.dtype(), weights.buffer().data()).unwrap();
    let mut stream = Stream::new(&mut k, &model, Plan::new(&config, 1, max).unwrap()).unwrap();
    let mut out = Vec::new();
    let mut at = 0;
    for &n in calls {
        stream.forward(&mut k, &model, &tokens[at..at + n], &[]).unwrap();
        let mut part = vec![0f32; n * config.vocab];
        stream.read_logits(&mut k, &mut part).unwrap();
        out.extend(part);
        at += n;
    }
    assert_eq!(at, tokens.len());
    out
}

fn random_calls(total: usize, max: usize, rng: &mut SplitMix64) -> Vec<usize> {
    let mut calls = Vec::new();
    let mut left = total;
    while left > 0 {
        let n = 1 + (rng.next_u64() as usize % max.min(left));
        calls.push(n);
        left -= n;
    }
    calls
}

fn check_invariance(name: &str, weights: &ModelWeights, tokens: &[u32], seed: u64) {
    let w = weights.config().window;
    let whole = logits_in_calls(weights, tokens, &[tokens.len()]);
    let mut by_block = vec![w; tokens.len() / w];
    if tokens.len() % w != 0 {
        by_block.push(tokens.len() % w);
    }
    let mut rng = SplitMix64::new(seed);
    let mut splits =
        vec![("one block per call".to_string(), by_block), ("one token per call".into(), vec![1; tokens.len()])];
    for i in 0..3 {
        splits.push((format!("random splits #{i}"), random_calls(tokens.len(), 3 * w, &mut rng)));
    }
    for (how, calls) in splits {
        let got = logits_in_calls(weights, tokens, &calls);
        let (err, at) = max_abs_diff(&got, &whole, weights.config().vocab);
        assert!(err <= 1e-6, "{name}, {how} ({calls:?}): differs from the whole document by {err} at position {at}");
    }
}

/// A random model of `config` whose scales and biases are perturbed like the
/// official test cases (norm scales partly negative, attention scales up to 8).
fn random_model(config: Config, seed: u64) -> ModelWeights {
    let layout = WeightLayout::new(&config).unwrap();
    let mut flat = vec![0f32; layout.len()];
    initialize(&config, seed, &mut flat).unwrap();
    let mut rng = SplitMix64::new(seed ^ 0xabcdef);
    for v in flat.iter_mut() {
        if *v == 1.0 {
            *v = (0.5 + 7.5 * rng.uniform()) as f32 * if rng.uniform() < 0.15 { -1.0 } else { 1.0 };
        }
    }
    ModelWeights::new(config, WeightBuffer::F32(flat)).unwrap()
}

fn variants() -> Vec<(String, Config)> {
    let base = Config { states: 3, ..Config::plain(23, 12, 2, 5, 16, 3, 4) };
    let mut out = vec![("plain sliding window".to_string(), base)];
    for gate in [GateKind::Fixed, GateKind::Lstm] {
        for layout in [StateLayout::Skip, StateLayout::Single, StateLayout::Dual] {
            for feedback in [false, true] {
                let c = Config { recurrent: LayerSet::EMPTY.with(1), gate, layout, feedback, ..base };
                out.push((format!("{gate:?}/{layout:?}/feedback={feedback}"), c));
            }
        }
    }
    let two = LayerSet::EMPTY.with(0).with(2);
    out.push(("two recurrent layers".into(), Config { recurrent: two, ..base }));
    out.push(("two recurrent layers with feedback".into(), Config { recurrent: two, feedback: true, ..base }));
    let linear = LayerSet::EMPTY.with(0).with(1);
    out.push(("linear attention".into(), Config { linear, ..base }));
    out.push((
        "linear attention in a recurrent layer".into(),
        Config { linear, recurrent: LayerSet::EMPTY.with(1), ..base },
    ));
    out.push((
        "abs attention scales".into(),
        Config { recurrent: LayerSet::EMPTY.with(2), abs_attention_scale: true, ..base },
    ));
    out
}

#[test]
fn every_variant_streams_invariantly() {
    for (i, (name, config)) in variants().into_iter().enumerate() {
        let weights = random_model(config, i as u64);
        let mut rng = SplitMix64::new(100 + i as u64);
        let tokens: Vec<u32> = (0..27).map(|_| (rng.next_u64() % config.vocab as u64) as u32).collect();
        check_invariance(&name, &weights, &tokens, i as u64);
    }
}

#[test]
fn official_checkpoints_stream_invariantly() {
    for case in CASES {
        let weights = load_model(&case_dir(case).join("checkpoint_0"), ImportOptions::default()).unwrap();
        let (docs, _) = documents(case);
        check_invariance(case, &weights, &docs[0].tokens[..100], 7);
    }
}
