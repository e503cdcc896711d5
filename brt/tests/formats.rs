//! brt weight files round-trip exactly in every storage type, and a model stored
//! in 16 bits still computes in f32 (its logits stay close to the f32 model's).

mod common;

use brt::logits::{LogitsJob, TokenBatch};
use brt::meliad::ImportOptions;
use brt::model_file::LoadedModel;
use brt::{format, load_model, run_on, BackendKind};
use brt_core::WeightDtype;
use common::*;

#[test]
fn every_storage_type_round_trips_and_computes_in_f32() {
    let dir = tempfile::tempdir().unwrap();
    let official = load_model(&case_dir("lstm_dual").join("checkpoint_0"), ImportOptions::default()).unwrap();
    let (docs, vocab) = documents("lstm_dual");
    let tokens = TokenBatch::new(1, 64, docs[0].tokens[..64].to_vec()).unwrap();
    let reference = run_on(
        BackendKind::Reference,
        LogitsJob { weights: &LoadedModel::InMemory(official.clone()), tokens: &tokens, chunk: 64 },
    )
    .unwrap();
    for dtype in [WeightDtype::F32, WeightDtype::F16, WeightDtype::Bf16] {
        let weights = official.with_dtype(dtype).unwrap();
        let size = dtype.size().unwrap();
        let path = dir.path().join(format!("{}.safetensors", dtype.name()));
        format::save(&weights, &path).unwrap();
        let bytes = std::fs::metadata(&path).unwrap().len() as usize;
        let loaded = load_model(&path, ImportOptions::default()).unwrap();
        assert_eq!(loaded, weights, "{} round trip", dtype.name());
        assert!(bytes >= weights.layout().len() * size && bytes < weights.layout().len() * size + 16384);
        let logits = run_on(
            BackendKind::Reference,
            LogitsJob { weights: &LoadedModel::InMemory(loaded.clone()), tokens: &tokens, chunk: 64 },
        )
        .unwrap();
        let (err, _) = max_abs_diff(&logits, &reference, vocab);
        println!("{}: file {bytes} bytes, max abs logit difference to f32 {err:.2e}", dtype.name());
        let bound = match dtype {
            WeightDtype::F32 => 0.0,
            WeightDtype::F16 => 2e-2,
            WeightDtype::Bf16 => 1e-1,
            WeightDtype::Q8_0 => unreachable!("model files (tests/gguf.rs) hold q8_0, not safetensors"),
        };
        assert!(err <= bound, "{}: {err}", dtype.name());
    }
}

#[test]
fn the_same_model_session_and_checkpoint_give_the_same_bytes() {
    use brt::train::data::Corpus;
    use brt::train::optim::{Decay, Schedule};
    use brt::train::{TrainOptions, Trainer};
    use brt_core::{Config, Reference};
    use brt_heap::Heap;
    // safetensors writes its metadata in a HashMap's order, which differs
    // between maps: without sorting, eight saves of a weight file differed.
    let config = Config::plain(16, 8, 2, 4, 16, 1, 4);
    let model = brt::bench::random_model(&config, WeightDtype::F32, 1).unwrap();
    let weights: Vec<Vec<u8>> = (0..8).map(|_| brt::format::to_bytes(&model).unwrap()).collect();
    assert!(weights.windows(2).all(|pair| pair[0] == pair[1]), "weight files differ");

    let mut engine = brt::Engine::new(Reference::new(Heap), &model).unwrap();
    let mut session = engine.session(1, 8).unwrap();
    session.feed(&mut engine, &[1, 2, 3]).unwrap();
    let sessions: Vec<Vec<u8>> = (0..8).map(|_| session.to_bytes(&mut engine).unwrap()).collect();
    assert!(sessions.windows(2).all(|pair| pair[0] == pair[1]), "session files differ");

    let dir = tempfile::tempdir().unwrap();
    let schedule = Schedule { peak: 1e-2, floor: 1e-3, warmup: 1, total: 2, decay: Decay::Cosine };
    let options = TrainOptions { batch: 1, segment: 4, steps: 2, schedule, clip: 1.0, weight_decay: 0.0, seed: 1 };
    let mut trainer = Trainer::new(Reference::new(Heap), &model, options).unwrap();
    trainer.step(&Corpus { documents: vec![(1..12).collect()], names: vec!["a".into()] }).unwrap();
    let checkpoints: Vec<Vec<u8>> = (0..8)
        .map(|i| {
            let path = dir.path().join(format!("{i}.ckpt"));
            trainer.save_checkpoint(&path).unwrap();
            std::fs::read(path).unwrap()
        })
        .collect();
    assert!(checkpoints.windows(2).all(|pair| pair[0] == pair[1]), "checkpoints differ");
}
