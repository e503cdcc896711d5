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
