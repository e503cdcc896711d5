//! A long stream stays healthy (the default model, and a random one with
//! feedback): every logit finite and the carried state bounded
//! (its largest magnitude does not keep growing) over many blocks. The full
//! million-token run is `examples/long_stream.rs`, a benchmark, not a test.
#![cfg(feature = "cpu")]

mod common;

use brt::Engine;
use brt_cpu::{Cpu, Heap};
use common::*;

#[test]
fn twenty_thousand_tokens_stay_finite_and_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let config = brt_core::Config { feedback: true, ..small_config() };
    let (_, weights) = small_model(dir.path(), "m", config);
    stream_stays_healthy(&weights, 20_000);
}

#[test]
fn the_default_model_stays_finite_and_bounded() {
    stream_stays_healthy(&brt::default_model().unwrap(), 10_000);
}

/// Streams `tokens` tokens of the README (over and over, one document) through
/// `weights` on the CPU backend, checking every logit and the carried state.
fn stream_stays_healthy(weights: &brt::ModelWeights, tokens: usize) {
    let mut engine = Engine::new(Cpu::new(Heap).unwrap(), weights).unwrap();
    let mut session = engine.session(1, 500).unwrap();
    let text: Vec<u32> = std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
        .unwrap()
        .iter()
        .map(|&b| b as u32 + 3)
        .collect();
    let mut peaks = Vec::new();
    let mut fed = 0;
    while fed < tokens {
        let start = fed % text.len();
        let piece = &text[start..text.len().min(start + 500)];
        let mut check = |_: usize, logits: &[f32]| {
            assert!(logits.iter().all(|v| v.is_finite()), "non-finite logit near token {fed}");
            Ok(())
        };
        session.feed_rows(&mut engine, &[piece], &[], Some(&mut check)).unwrap();
        fed += piece.len();
        let state = session.export(&mut engine).unwrap().state;
        assert!(state.iter().all(|v| v.is_finite()));
        peaks.push(state.iter().fold(0f32, |m, v| m.max(v.abs())));
    }
    let early = peaks[..peaks.len() / 4].iter().copied().fold(0f32, f32::max);
    let late = peaks[3 * peaks.len() / 4..].iter().copied().fold(0f32, f32::max);
    println!("largest state magnitude: {early:.3} in the first quarter, {late:.3} in the last");
    assert!(late <= 2.0 * early + 1.0, "the state keeps growing: {early} then {late}");
}
