//! Text generation: several prompts at once write what each writes alone, the
//! log-probabilities are the model's, and the ends (length, stop string, end of
//! sequence) are kept per row.

use brt::generate::{Finish, GenerateOptions};
use brt::runtime::EngineBuilder;
use brt::sample::SamplingOptions;
use brt::tokenizer::Tokenizer;
use brt::{default_model, BackendKind};
use std::ops::ControlFlow;

fn options(seed: u64, max_tokens: usize, stop: &[&str]) -> GenerateOptions {
    GenerateOptions {
        max_tokens,
        sampling: SamplingOptions { temperature: 0.9, top_p: 0.95, seed, ..Default::default() },
        stop: stop.iter().map(|s| s.to_string()).collect(),
        stop_at_eos: true,
    }
}

#[test]
fn a_batch_of_prompts_writes_what_each_prompt_writes_alone() {
    let weights = default_model().unwrap();
    let prompts = ["ROMEO.", "KING HENRY. Once more unto the breach", "O", "JULIET. Wherefore"];
    let tokenizer = Tokenizer::Bytes;
    let ids: Vec<Vec<u32>> = prompts.iter().map(|p| tokenizer.encode(p.as_bytes()).unwrap()).collect();
    for backend in [BackendKind::Reference, BackendKind::Cpu] {
        let mut engine = EngineBuilder::new().backend(backend).threads(1).build(&weights).unwrap();
        // Row 1 stops at a string it writes; the others run to their length.
        let alone_1 = {
            let mut session = engine.session(1, 64).unwrap();
            let opts = options(8, 24, &[]);
            engine
                .generate_text(&mut session, &tokenizer, &ids[1], &opts, &mut |_| Ok(ControlFlow::Continue(())))
                .unwrap()
        };
        let stop = String::from_utf8(alone_1.text[5..8].to_vec()).unwrap();
        let opts = options(7, 24, &[&stop]);
        let mut session = engine.session(prompts.len(), 64).unwrap();
        let mut streamed = vec![Vec::new(); prompts.len()];
        let batch = engine
            .generate_batch(&mut session, &tokenizer, &ids, &opts, &mut |row, piece| {
                streamed[row].extend_from_slice(piece);
                Ok(ControlFlow::Continue(()))
            })
            .unwrap();
        for (row, got) in batch.iter().enumerate() {
            let mut alone = engine.session(1, 64).unwrap();
            let seeded = options(7 + row as u64, 24, &[&stop]);
            let want = engine
                .generate_text(&mut alone, &tokenizer, &ids[row], &seeded, &mut |_| Ok(ControlFlow::Continue(())))
                .unwrap();
            // The reference's products are exact per row; the CPU backend's may
            // round in other places for a batch (its packed products).
            let tolerance = if backend == BackendKind::Reference { 0.0 } else { 1e-5 };
            assert_eq!(
                (&got.tokens, &got.text, got.finish),
                (&want.tokens, &want.text, want.finish),
                "{backend}: row {row}"
            );
            let worst = got.logprobs.iter().zip(&want.logprobs).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            assert!(worst <= tolerance, "{backend}: row {row}'s log-probabilities differ by {worst}");
            assert_eq!(streamed[row], got.text, "{backend}: row {row}'s pieces are its text");
        }
        assert_eq!(batch[1].finish, Finish::Stop, "{backend}");
        assert_eq!(batch[1].text, alone_1.text[..5], "{backend}: row 1 ends before its stop string");
        assert_eq!(batch[0].finish, Finish::Length, "{backend}");
    }
}

#[test]
fn log_probabilities_are_the_models_and_greedy_picks_the_most_likely() {
    let weights = default_model().unwrap();
    let mut engine = EngineBuilder::new().backend(BackendKind::Cpu).threads(1).build(&weights).unwrap();
    let tokenizer = Tokenizer::Bytes;
    let prompt = tokenizer.encode(b"MACBETH. Is this a dagger").unwrap();
    let greedy = GenerateOptions {
        max_tokens: 12,
        sampling: SamplingOptions { temperature: 0.0, ..Default::default() },
        ..Default::default()
    };
    let mut session = engine.session(1, 64).unwrap();
    let got = engine
        .generate_text(&mut session, &tokenizer, &prompt, &greedy, &mut |_| Ok(ControlFlow::Continue(())))
        .unwrap();
    assert_eq!(got.tokens.len(), 12);
    // Replay in one call: each token's log-probability is log softmax of the
    // logits before it (to rounding: the replay's calls are longer), and it is
    // the largest.
    let mut replay = engine.session(1, 64).unwrap();
    let text: Vec<u32> = prompt.iter().chain(&got.tokens).copied().collect();
    let logits = engine.logits(&mut replay, &[&text]).unwrap();
    for (i, (&token, &logprob)) in got.tokens.iter().zip(&got.logprobs).enumerate() {
        let row = &logits[(prompt.len() + i - 1) * 260..(prompt.len() + i) * 260];
        let max = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
        let log_sum = row.iter().map(|&v| (v as f64 - max).exp()).sum::<f64>().ln() + max;
        assert!((logprob - (row[token as usize] as f64 - log_sum)).abs() < 1e-5, "token {i}");
        assert!(row.iter().all(|&v| v <= row[token as usize] + 1e-5), "token {i} is not the most likely");
    }
}

#[test]
fn a_batch_refuses_empty_prompts_and_a_wrong_count() {
    let weights = default_model().unwrap();
    let mut engine = EngineBuilder::new().backend(BackendKind::Reference).build(&weights).unwrap();
    let mut session = engine.session(2, 8).unwrap();
    let opts = GenerateOptions::default();
    let mut ignore = |_: usize, _: &[u8]| Ok(ControlFlow::Continue(()));
    let err =
        engine.generate_batch(&mut session, &Tokenizer::Bytes, &[vec![5], vec![]], &opts, &mut ignore).unwrap_err();
    assert!(err.to_string().contains("at least one token"), "{err}");
    let err = engine.generate_batch(&mut session, &Tokenizer::Bytes, &[vec![5]], &opts, &mut ignore).unwrap_err();
    assert!(err.to_string().contains("1 prompts for a session of 2"), "{err}");
}
