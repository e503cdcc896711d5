//! Incremental decoding gives the block forward's logits; sessions save and
//! restore bit-identically and refuse what does not belong to them.

mod common;

use brt::generate::generate;
use brt::logits::{LogitsJob, TokenBatch};
use brt::model_file::LoadedModel;
use brt::sample::{Sampler, SamplingOptions};
use brt::{run_on, BackendKind, Engine, Session};
use brt_core::Reference;
use brt_heap::Heap;
use common::*;
use std::ops::ControlFlow;

#[test]
fn incremental_decoding_equals_the_block_forward() {
    let dir = tempfile::tempdir().unwrap();
    for (i, config) in [small_config(), brt_core::Config { feedback: true, ..small_config() }].into_iter().enumerate() {
        let (_, weights) = small_model(dir.path(), &format!("m{i}"), config);
        let mut engine = Engine::new(Reference::new(Heap), &weights).unwrap();
        let mut session = engine.session(1, 16).unwrap();
        let prompt: Vec<u32> = (0..10).map(|t| 3 + t * 5).collect();
        // Record the logits that chose each generated token.
        let mut sampler = Sampler::new(SamplingOptions { seed: 5, ..Default::default() }).unwrap();
        let generated = generate(&mut engine, &mut session, &prompt, 13, &mut sampler, None, &mut |_| {
            Ok(ControlFlow::Continue(()))
        })
        .unwrap();
        assert_eq!(generated.len(), 13);
        let all: Vec<u32> = prompt.iter().chain(&generated).copied().collect();
        let batch = TokenBatch::new(1, all.len(), all.clone()).unwrap();
        let whole = run_on(
            BackendKind::Reference,
            LogitsJob { weights: &LoadedModel::InMemory(weights.clone()), tokens: &batch, chunk: 64 },
        )
        .unwrap();
        // Replay one token at a time and compare every position.
        let mut replay = engine.session(1, 1).unwrap();
        for (t, &token) in all.iter().enumerate() {
            replay.feed(&mut engine, &[token]).unwrap();
            let (err, _) = max_abs_diff(replay.last_logits(0).unwrap(), &whole[t * 260..(t + 1) * 260], 260);
            assert!(err <= 1e-6, "config {i}, position {t}: incremental differs by {err}");
        }
    }
}

#[test]
fn a_restored_session_continues_bit_identically() {
    let dir = tempfile::tempdir().unwrap();
    let (_, weights) = small_model(dir.path(), "m", small_config());
    let mut engine = Engine::new(Reference::new(Heap), &weights).unwrap();
    let text: Vec<u32> = (0..37).map(|t| 3 + (t * 11 % 250)).collect();
    let mut session = engine.session(1, 8).unwrap();
    session.feed(&mut engine, &text[..23]).unwrap(); // ends inside a block
    let path = dir.path().join("s.session");
    session.save(&mut engine, &path).unwrap();
    assert_eq!(
        std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".tmp"))
            .count(),
        0
    );
    session.feed(&mut engine, &text[23..]).unwrap();
    let expected = session.last_logits(0).unwrap().to_vec();

    // A fresh engine (another backend instance) restores and continues.
    let mut other = Engine::new(Reference::new(Heap), &weights).unwrap();
    let mut restored = Session::load(&mut other, &path, 5).unwrap();
    assert_eq!(restored.tokens_seen(), 23);
    assert_eq!(restored.position_in_block(), 23 % 4);
    restored.feed(&mut other, &text[23..]).unwrap();
    assert_eq!(restored.last_logits(0).unwrap(), &expected[..], "bit-identical continuation");
}

#[test]
fn sessions_refuse_other_models_and_versions() {
    let dir = tempfile::tempdir().unwrap();
    let (_, weights) = small_model(dir.path(), "m", small_config());
    let mut engine = Engine::new(Reference::new(Heap), &weights).unwrap();
    let mut session = engine.session(1, 8).unwrap();
    session.feed(&mut engine, &[5, 6, 7]).unwrap();
    let path = dir.path().join("s.session");
    session.save(&mut engine, &path).unwrap();

    // Same configuration, other weights.
    let mut other_weights = weights.clone();
    if let brt::WeightBuffer::F32(v) = other_weights.buffer_mut() {
        v[0] += 1.0;
    }
    let mut other = Engine::new(Reference::new(Heap), &other_weights).unwrap();
    let err = Session::load(&mut other, &path, 8).unwrap_err().to_string();
    assert!(err.contains("other model weights"), "{err}");
    // Another configuration.
    let (_, plain) = small_model(dir.path(), "p", brt_core::Config::plain(260, 16, 2, 5, 24, 2, 4));
    let mut plain = Engine::new(Reference::new(Heap), &plain).unwrap();
    let err = Session::load(&mut plain, &path, 8).unwrap_err().to_string();
    assert!(err.contains("another configuration"), "{err}");
    // A session used with another engine.
    assert!(session.feed(&mut other, &[1]).unwrap_err().to_string().contains("another model"));
    // Another format version.
    let bytes = std::fs::read(&path).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    let at = text.find("\"format_version\":\"1\"").unwrap();
    let mut bad = bytes.clone();
    bad[at + 18] = b'7';
    std::fs::write(&path, &bad).unwrap();
    let err = Session::load(&mut engine, &path, 8).unwrap_err().to_string();
    assert!(err.contains("session format version 7"), "{err}");
    // Not a session at all, and a truncated one.
    std::fs::write(&path, b"hello").unwrap();
    assert!(Session::load(&mut engine, &path, 8).is_err());
    std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
    assert!(Session::load(&mut engine, &path, 8).is_err());
}

#[test]
fn read_a_book_then_continue_it_from_the_program() {
    let dir = tempfile::tempdir().unwrap();
    let (model, _) = small_model(dir.path(), "m", small_config());
    let book = dir.path().join("book.txt");
    std::fs::write(&book, "Call me Ishmael. Some years ago, never mind how long precisely. ".repeat(4)).unwrap();
    let session = dir.path().join("book.session");
    let (code, _, err) = run_brt(&[
        "eval".as_ref(),
        "--model".as_ref(),
        model.as_os_str(),
        book.as_os_str(),
        "--save-session".as_ref(),
        session.as_os_str(),
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run_brt(&[
        "generate".as_ref(),
        "--model".as_ref(),
        model.as_os_str(),
        "--resume".as_ref(),
        session.as_os_str(),
        "--max-tokens".as_ref(),
        "10".as_ref(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(!out.is_empty());
}

#[test]
#[cfg(feature = "cpu")]
fn a_session_moves_between_backends() {
    let dir = tempfile::tempdir().unwrap();
    let (_, weights) = small_model(dir.path(), "m", small_config());
    let text: Vec<u32> = (0..30).map(|t| 3 + (t * 13 % 250)).collect();
    let mut reference = Engine::new(Reference::new(Heap), &weights).unwrap();
    let mut session = reference.session(1, 8).unwrap();
    session.feed(&mut reference, &text[..17]).unwrap();
    let path = dir.path().join("s.session");
    session.save(&mut reference, &path).unwrap();
    session.feed(&mut reference, &text[17..]).unwrap();
    let expected = session.last_logits(0).unwrap().to_vec();

    let mut cpu = Engine::new(brt_cpu::Cpu::new(Heap).unwrap(), &weights).unwrap();
    let mut moved = Session::load(&mut cpu, &path, 8).unwrap();
    moved.feed(&mut cpu, &text[17..]).unwrap();
    let (err, _) = max_abs_diff(moved.last_logits(0).unwrap(), &expected, 260);
    assert!(err < 1e-4, "continued on the CPU backend: differs from the reference by {err}");
}

/// A GPU that is lost mid-stream: the next call is a clear error (not a panic),
/// and the session saved before it continues on the CPU backend to the logits a
/// stream that never stopped gives. Without a wgpu adapter it says so and
/// passes, unless `BRT_REQUIRE_GPU=1`.
#[test]
#[cfg(all(feature = "wgpu", feature = "cpu"))]
fn a_session_outlives_a_lost_gpu() {
    let gpu = match brt_wgpu::Wgpu::new() {
        Ok(gpu) => gpu,
        Err(e) if !brt_core::requires_gpu(std::env::var(brt_core::REQUIRE_GPU_VAR).ok().as_deref()) => {
            eprintln!("SKIPPED: no wgpu adapter here ({e}); set BRT_REQUIRE_GPU=1 to fail instead");
            return;
        }
        Err(e) => panic!("wgpu: {e}"),
    };
    let dir = tempfile::tempdir().unwrap();
    let (_, weights) = small_model(dir.path(), "m", small_config());
    let text: Vec<u32> = (0..40).map(|t| 3 + (t * 17 % 250)).collect();
    let mut reference = Engine::new(Reference::new(Heap), &weights).unwrap();
    let mut whole = reference.session(1, 8).unwrap();
    whole.feed(&mut reference, &text).unwrap();
    let expected = whole.last_logits(0).unwrap().to_vec();

    let mut engine = Engine::new(gpu, &weights).unwrap();
    let mut session = engine.session(1, 8).unwrap();
    session.feed(&mut engine, &text[..21]).unwrap();
    let path = dir.path().join("s.session");
    session.save(&mut engine, &path).unwrap();
    engine.kernels().destroy();
    let err = session.feed(&mut engine, &text[21..]).unwrap_err().to_string();
    assert!(err.contains("device was lost"), "{err}");
    // A save that fails leaves the earlier file whole (it is loaded below).
    let err = session.save(&mut engine, &path).unwrap_err().to_string();
    assert!(err.contains("device was lost"), "{err}");

    let mut cpu = Engine::new(brt_cpu::Cpu::new(Heap).unwrap(), &weights).unwrap();
    let mut moved = Session::load(&mut cpu, &path, 8).unwrap();
    moved.feed(&mut cpu, &text[21..]).unwrap();
    let (err, _) = max_abs_diff(moved.last_logits(0).unwrap(), &expected, 260);
    assert!(err < 1e-4, "continued on the CPU after the GPU was lost: differs from an unbroken stream by {err}");
}

/// On every backend (wgpu where there is an adapter), and whatever the calls'
/// sizes (which decide where the KV window lies on its runway), a restored
/// session gives bit for bit the logits the saved one goes on to give, at every
/// position after the restore.
#[test]
fn a_restored_session_continues_bit_identically_on_every_backend() {
    let dir = tempfile::tempdir().unwrap();
    let config = brt_core::Config { states: 5, ..brt_core::Config::plain(260, 48, 2, 24, 64, 3, 16) };
    let config = brt_core::Config { recurrent: brt_core::LayerSet::EMPTY.with(1), ..config };
    let (_, weights) = small_model(dir.path(), "m", config);
    let text: Vec<u32> = (0..150).map(|t| 3 + (t * 37 % 250)).collect();
    #[allow(unused_mut)] // without wgpu compiled in
    let mut backends = vec![BackendKind::Reference, BackendKind::Cpu];
    #[cfg(feature = "wgpu")]
    match brt_wgpu::Wgpu::new() {
        Ok(_) => backends.push(BackendKind::Wgpu),
        Err(e) if !brt_core::requires_gpu(std::env::var(brt_core::REQUIRE_GPU_VAR).ok().as_deref()) => {
            eprintln!("SKIPPED for wgpu: no adapter here ({e}); set BRT_REQUIRE_GPU=1 to fail instead")
        }
        Err(e) => panic!("wgpu: {e}"),
    }
    for backend in backends {
        for (chunk, split) in [(2, 23), (3, 50), (1, 37), (16, 70)] {
            let mut engine = brt::runtime::EngineBuilder::new().backend(backend).threads(1).build(&weights).unwrap();
            let mut session = engine.session(1, chunk).unwrap();
            engine.feed(&mut session, &text[..split]).unwrap();
            let saved = engine.session_bytes(&session).unwrap();
            let want = engine.logits(&mut session, &[&text[split..]]).unwrap();
            let mut restored = engine.session_from_bytes(&saved, chunk).unwrap();
            let got = engine.logits(&mut restored, &[&text[split..]]).unwrap();
            let first = got.iter().zip(&want).position(|(a, b)| a.to_bits() != b.to_bits());
            assert_eq!(first.map(|i| split + i / 260), None, "{backend}, chunk {chunk}: first position that differs");
        }
    }
}
