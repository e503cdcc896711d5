//! Training: a tiny model learns a short text by heart, and a resumed run is
//! bit-identical to an uninterrupted one.

mod common;

use brt::tokenizer::Tokenizer;
use brt::train::data::Corpus;
use brt::train::optim::{Decay, Schedule};
use brt::train::{TrainOptions, Trainer};
use brt_core::{Config, GateKind, LayerSet, Reference, StateLayout};
use brt_heap::Heap;
use common::*;

fn tiny() -> Config {
    Config {
        states: 4,
        recurrent: LayerSet::EMPTY.with(1),
        gate: GateKind::Fixed,
        layout: StateLayout::Skip,
        ..Config::plain(260, 32, 2, 16, 64, 2, 8)
    }
}

fn options(steps: u64) -> TrainOptions {
    TrainOptions {
        batch: 2,
        segment: 16,
        steps,
        schedule: Schedule { peak: 1e-2, floor: 1e-3, warmup: 10, total: steps, decay: Decay::Cosine },
        clip: 1.0,
        weight_decay: 0.0,
        seed: 7,
    }
}

fn corpus(dir: &std::path::Path) -> Corpus {
    let file = dir.join("verse.txt");
    std::fs::write(&file, "Shall I compare thee to a summer's day? Thou art more lovely and more temperate.").unwrap();
    Corpus::read(&[file], &Tokenizer::Bytes).unwrap()
}

#[test]
fn a_tiny_model_learns_a_short_text_by_heart() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = corpus(dir.path());
    let (_, weights) = small_model(dir.path(), "start", tiny());
    let steps = 400;
    let mut trainer = Trainer::new(Reference::new(Heap), &weights, options(steps)).unwrap();
    let mut first = None;
    let mut last = 0.0;
    for _ in 0..steps {
        let report = trainer.step(&corpus).unwrap();
        first.get_or_insert(report.loss);
        last = report.loss;
    }
    let first = first.unwrap();
    println!("loss {first:.3} nats/token at step 1, {last:.4} at step {steps}");
    assert!(first > 4.0, "an untrained byte model is near ln(260) = 5.6 nats");
    assert!(last < 0.05, "the text is learnt by heart: loss {last}");
}

#[test]
fn a_resumed_run_is_bit_identical() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = corpus(dir.path());
    let (_, weights) = small_model(dir.path(), "start", tiny());
    let mut straight = Trainer::new(Reference::new(Heap), &weights, options(8)).unwrap();
    for _ in 0..8 {
        straight.step(&corpus).unwrap();
    }
    let mut first_half = Trainer::new(Reference::new(Heap), &weights, options(8)).unwrap();
    for _ in 0..5 {
        first_half.step(&corpus).unwrap();
    }
    let checkpoint = dir.path().join("run.ckpt");
    first_half.save_checkpoint(&checkpoint).unwrap();
    drop(first_half);
    let mut resumed = Trainer::resume(Reference::new(Heap), &checkpoint).unwrap();
    assert_eq!(resumed.step_count(), 5);
    for _ in 0..3 {
        resumed.step(&corpus).unwrap();
    }
    assert_eq!(resumed.history, straight.history, "same losses, learning rates and norms");
    assert_eq!(resumed.weights().unwrap(), straight.weights().unwrap(), "bit-identical parameters");
}

#[test]
fn a_segment_with_an_id_outside_the_vocabulary_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = corpus(dir.path());
    let (_, weights) = small_model(dir.path(), "start", tiny());
    let mut straight = Trainer::new(Reference::new(Heap), &weights, options(4)).unwrap();
    for _ in 0..4 {
        straight.step(&corpus).unwrap();
    }
    // The same documents with every id past the vocabulary (260): only the
    // segment is checked, so a refusal must leave the data position where it
    // was.
    let mut bad = corpus.clone();
    bad.documents.iter_mut().flatten().for_each(|id| *id = 300);
    let mut refused = Trainer::new(Reference::new(Heap), &weights, options(4)).unwrap();
    for step in 0..4 {
        if step == 2 {
            let error = refused.step(&bad).expect_err("id 300 is outside a vocabulary of 260").to_string();
            assert!(error.contains("token id 300"), "{error}");
        }
        refused.step(&corpus).unwrap();
    }
    assert_eq!(refused.history, straight.history, "same segments, losses, learning rates and norms");
    assert_eq!(refused.weights().unwrap(), straight.weights().unwrap(), "bit-identical parameters");
}
