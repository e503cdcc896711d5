//! The official Meliad test vectors (testdata/meliad, made by Google's code)
//! through the core's `Stream` on the CUDA backend: the official batch of two
//! rows, three segments of 48 tokens, row 1 starting a new document at segment
//! 2, must give the official logits to 1e-5 (max abs error). Each document is
//! also streamed alone in calls of 37 tokens, which split blocks.
//!
//! The vectors are read from `$BRT_TESTDATA/meliad` when that variable is set
//! (prebuilt test binaries run elsewhere, see scripts/gpu-check.sh), else from
//! the repository's `testdata/meliad`.

mod common;

use brt::meliad::ImportOptions;
use brt_core::{Model, Plan, Stream};
use common::*;
use safetensors::SafeTensors;
use std::path::PathBuf;

const TOLERANCE: f32 = 1e-5;
const CASES: [&str; 2] = ["fixed_skip", "lstm_dual"];

fn case_dir(case: &str) -> PathBuf {
    let testdata = std::env::var_os("BRT_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata"));
    testdata.join("meliad").join(case)
}

/// `tokens` [N, B, L], `start_of_sequence` [N, B], `logits` [N, B, L, V].
struct Vectors {
    segments: usize,
    batch: usize,
    len: usize,
    vocab: usize,
    tokens: Vec<u32>,
    starts: Vec<u8>,
    logits: Vec<f32>,
}

fn vectors(case: &str) -> Vectors {
    let bytes = std::fs::read(case_dir(case).join("vectors.safetensors")).expect("the test vectors are readable");
    let st = SafeTensors::deserialize(&bytes).expect("the test vectors are safetensors");
    let tokens = st.tensor("tokens").unwrap();
    let &[segments, batch, len] = tokens.shape() else { panic!("tokens shape {:?}", tokens.shape()) };
    let tokens = tokens.data().chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().unwrap()) as u32).collect();
    let starts = st.tensor("start_of_sequence").unwrap().data().to_vec();
    let logits = st.tensor("logits").unwrap();
    let vocab = logits.shape()[3];
    let logits = logits.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
    Vectors { segments, batch, len, vocab, tokens, starts, logits }
}

#[test]
fn official_batch_with_a_row_reset_gives_the_official_logits() {
    for (name, mut cuda) in backends("meliad") {
        for case in CASES {
            let weights = brt::load_model(&case_dir(case).join("checkpoint_0"), ImportOptions::default()).unwrap();
            let config = *weights.config();
            let v = vectors(case);
            let k = &mut cuda;
            let model = Model::from_flat(k, &config, weights.dtype(), weights.buffer().data()).unwrap();
            let mut stream = Stream::new(k, &model, Plan::new(&config, v.batch, v.len).unwrap()).unwrap();
            let mut worst = 0f32;
            for seg in 0..v.segments {
                // Position-major, batch-minor input; official start flags as resets.
                let mut tokens = Vec::with_capacity(v.batch * v.len);
                for t in 0..v.len {
                    for b in 0..v.batch {
                        tokens.push(v.tokens[(seg * v.batch + b) * v.len + t]);
                    }
                }
                let resets: Vec<bool> = (0..v.batch).map(|b| v.starts[seg * v.batch + b] != 0).collect();
                stream.forward(k, &model, &tokens, &resets).unwrap();
                let mut out = vec![0f32; v.len * v.batch * v.vocab];
                stream.read_logits(k, &mut out).unwrap();
                for t in 0..v.len {
                    for b in 0..v.batch {
                        let ours = &out[(t * v.batch + b) * v.vocab..][..v.vocab];
                        let theirs = &v.logits[((seg * v.batch + b) * v.len + t) * v.vocab..][..v.vocab];
                        let err = max_abs_diff(ours, theirs);
                        assert!(err <= TOLERANCE, "{name}: {case} segment {seg} row {b} position {t}: error {err}");
                        worst = worst.max(err);
                    }
                }
            }
            loud(&format!("{name}: Meliad {case}, official batch: max abs error {worst:.3e}"));
        }
    }
}

#[test]
fn each_official_document_streamed_in_uneven_calls_gives_the_official_logits() {
    for (name, mut cuda) in backends("meliad documents") {
        for case in CASES {
            let weights = brt::load_model(&case_dir(case).join("checkpoint_0"), ImportOptions::default()).unwrap();
            let config = *weights.config();
            let v = vectors(case);
            let k = &mut cuda;
            let model = Model::from_flat(k, &config, weights.dtype(), weights.buffer().data()).unwrap();
            const CHUNK: usize = 37;
            let mut stream = Stream::new(k, &model, Plan::new(&config, 1, CHUNK).unwrap()).unwrap();
            let mut worst = 0f32;
            for b in 0..v.batch {
                // A row's documents run from a start flag to the next one.
                let mut seg = 0;
                while seg < v.segments {
                    let mut end = seg + 1;
                    while end < v.segments && v.starts[end * v.batch + b] == 0 {
                        end += 1;
                    }
                    let doc: Vec<u32> = (seg..end)
                        .flat_map(|s| v.tokens[(s * v.batch + b) * v.len..][..v.len].iter().copied())
                        .collect();
                    let official: Vec<f32> = (seg..end)
                        .flat_map(|s| {
                            v.logits[(s * v.batch + b) * v.len * v.vocab..][..v.len * v.vocab].iter().copied()
                        })
                        .collect();
                    for (c, chunk) in doc.chunks(CHUNK).enumerate() {
                        stream.forward(k, &model, chunk, if c == 0 { &[true] } else { &[] }).unwrap();
                        let mut out = vec![0f32; chunk.len() * v.vocab];
                        stream.read_logits(k, &mut out).unwrap();
                        let theirs = &official[c * CHUNK * v.vocab..][..out.len()];
                        let err = max_abs_diff(&out, theirs);
                        assert!(
                            err <= TOLERANCE,
                            "{name}: {case} row {b} segments {seg}..{end} chunk {c}: error {err}"
                        );
                        worst = worst.max(err);
                    }
                    seg = end;
                }
            }
            loud(&format!("{name}: Meliad {case}, documents in calls of {CHUNK}: max abs error {worst:.3e}"));
        }
    }
}
