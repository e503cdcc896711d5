//! The official test vectors: every document of both Meliad cases, rebuilt from
//! its segments, must give the official logits (max abs error <= 1e-5 at every
//! position) through the code paths of `brt logits`.

mod common;

use brt::logits::{LogitsJob, TokenBatch};
use brt::meliad::ImportOptions;
use brt::model_file::LoadedModel;
use brt::{load_model, run_on, BackendKind};
use common::*;

const TOLERANCE: f32 = 1e-5;

#[test]
fn official_logits_through_the_logits_job() {
    for case in CASES {
        let weights = load_model(&case_dir(case).join("checkpoint_0"), ImportOptions::default()).unwrap();
        let (docs, vocab) = documents(case);
        assert_eq!(docs.len(), 3, "two rows, one of which restarts");
        for doc in &docs {
            let tokens = TokenBatch::new(1, doc.tokens.len(), doc.tokens.clone()).unwrap();
            // A chunk shorter than the document and not a multiple of W: the
            // carried caches and state do the rest.
            let job = LogitsJob { weights: &LoadedModel::InMemory(weights.clone()), tokens: &tokens, chunk: 37 };
            let logits = run_on(BackendKind::Reference, job).unwrap();
            let (err, at) = max_abs_diff(&logits, &doc.logits, vocab);
            println!(
                "{case}: row {} from segment {} ({} tokens): max abs error {err:.3e} (at position {at})",
                doc.row,
                doc.first_segment,
                doc.tokens.len()
            );
            assert!(err <= TOLERANCE, "{case}: error {err} at position {at}");
        }
    }
}

#[test]
fn official_logits_through_the_program_and_both_formats() {
    let dir = tempfile::tempdir().unwrap();
    for case in CASES {
        let (docs, vocab) = documents(case);
        let doc = &docs[0];
        let input = dir.path().join("tokens.safetensors");
        write_tokens(&input, std::slice::from_ref(&doc.tokens));
        let converted = dir.path().join(format!("{case}.safetensors"));
        let status = std::process::Command::new(brt_bin())
            .args(["convert".as_ref(), case_dir(case).join("checkpoint_0").as_os_str(), converted.as_os_str()])
            .status()
            .unwrap();
        assert!(status.success());
        for model in [case_dir(case).join("checkpoint_0"), converted] {
            for backend in BackendKind::ALL
                .into_iter()
                .filter(|b| b.is_compiled() && matches!(b, BackendKind::Reference | BackendKind::Cpu))
            {
                let output = dir.path().join("logits.safetensors");
                let status = std::process::Command::new(brt_bin())
                    .arg("logits")
                    .args(["--model".as_ref(), model.as_os_str()])
                    .args(["--input".as_ref(), input.as_os_str()])
                    .args(["--output".as_ref(), output.as_os_str()])
                    .args(["--backend", backend.name()])
                    .status()
                    .unwrap();
                assert!(status.success());
                let (shape, logits) = read_logits(&output);
                assert_eq!(shape, vec![1, doc.tokens.len(), vocab]);
                let (err, at) = max_abs_diff(&logits, &doc.logits, vocab);
                println!(
                    "{case} via `brt logits --backend {backend} --model {}`: max abs error {err:.3e}",
                    model.display()
                );
                assert!(err <= TOLERANCE, "{case} on {backend}: error {err} at position {at}");
            }
        }
    }
}

#[test]
fn official_batch_with_a_row_reset_through_the_stream() {
    // The official run itself: both rows side by side, segment by segment, row 1
    // starting a new document at segment 2 while row 0 continues.
    use brt_core::{Model, Plan, Reference, Stream};
    for case in CASES {
        let weights = load_model(&case_dir(case).join("checkpoint_0"), ImportOptions::default()).unwrap();
        let (docs, vocab) = documents(case);
        let config = *weights.config();
        let mut k = Reference::new(brt_heap::Heap);
        let model = Model::from_flat(&mut k, &config, weights.dtype(), weights.buffer().data()).unwrap();
        let mut stream = Stream::new(&mut k, &model, Plan::new(&config, 2, 48).unwrap()).unwrap();
        let rows = [&docs[0], &docs[1], &docs[2]];
        for seg in 0..3 {
            // Row 0 is docs[0]; row 1 is docs[1] then docs[2].
            let (doc1, off1) = if seg < 2 { (rows[1], seg * 48) } else { (rows[2], 0) };
            let mut tokens = Vec::new();
            for t in 0..48 {
                tokens.push(rows[0].tokens[seg * 48 + t]);
                tokens.push(doc1.tokens[off1 + t]);
            }
            let resets = [seg == 0, seg != 1];
            stream.forward(&mut k, &model, &tokens, &resets).unwrap();
            let mut out = vec![0f32; 96 * vocab];
            stream.read_logits(&mut k, &mut out).unwrap();
            for t in 0..48 {
                for (b, (doc, off)) in [(rows[0], seg * 48), (doc1, off1)].into_iter().enumerate() {
                    let ours = &out[(t * 2 + b) * vocab..][..vocab];
                    let theirs = &doc.logits[(off + t) * vocab..][..vocab];
                    let (err, _) = max_abs_diff(ours, theirs, vocab);
                    assert!(err <= TOLERANCE, "{case} segment {seg} row {b} position {t}: {err}");
                }
            }
        }
    }
}

/// The GPU backends compiled into this build, through `brt logits`. Without a
/// device the test says so loudly and passes, unless `BRT_REQUIRE_GPU=1`.
#[test]
fn official_logits_on_gpu_backends() {
    let gpus: Vec<BackendKind> =
        [BackendKind::Wgpu, BackendKind::Cuda].into_iter().filter(|b| b.is_compiled()).collect();
    if gpus.is_empty() {
        println!("no GPU backend compiled in (features wgpu, cuda): nothing to check");
        return;
    }
    let required = brt_core::requires_gpu(std::env::var(brt_core::REQUIRE_GPU_VAR).ok().as_deref());
    let dir = tempfile::tempdir().unwrap();
    for backend in gpus {
        for case in CASES {
            let (docs, vocab) = documents(case);
            let doc = &docs[0];
            let input = dir.path().join("tokens.safetensors");
            write_tokens(&input, std::slice::from_ref(&doc.tokens));
            let output = dir.path().join("logits.safetensors");
            let out = std::process::Command::new(brt_bin())
                .arg("logits")
                .args(["--model".as_ref(), case_dir(case).join("checkpoint_0").as_os_str()])
                .args(["--input".as_ref(), input.as_os_str()])
                .args(["--output".as_ref(), output.as_os_str()])
                .args(["--backend", backend.name()])
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!stderr.contains("panicked"), "{stderr}");
            if !out.status.success() {
                let unavailable =
                    stderr.contains("no adapter") || stderr.contains("no CUDA") || stderr.contains("no GPU");
                assert!(unavailable && !required, "{backend}: {stderr}");
                eprintln!(
                    "SKIPPED: backend {backend} has no device here ({}); set BRT_REQUIRE_GPU=1 to fail instead",
                    stderr.trim()
                );
                break;
            }
            let (_, logits) = read_logits(&output);
            let (err, at) = max_abs_diff(&logits, &doc.logits, vocab);
            println!("{case} via `brt logits --backend {backend}`: max abs error {err:.3e}");
            assert!(err <= TOLERANCE, "{case} on {backend}: error {err} at position {at}");
        }
    }
}
