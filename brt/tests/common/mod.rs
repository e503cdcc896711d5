//! Helpers shared by the integration tests.
#![allow(dead_code)]

use safetensors::SafeTensors;
use std::path::PathBuf;

/// The folder of an official Meliad test case.
pub fn case_dir(case: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/meliad").join(case)
}

/// The official test cases.
pub const CASES: [&str; 2] = ["fixed_skip", "lstm_dual"];

/// One document rebuilt from the segments of a test case, with the official
/// logits of each of its positions.
pub struct Document {
    pub row: usize,
    pub first_segment: usize,
    pub tokens: Vec<u32>,
    pub logits: Vec<f32>,
}

/// Rebuilds every document of a case from `tokens` [N, B, L], `start_of_sequence`
/// [N, B] and `logits` [N, B, L, V] of `vectors.safetensors`: a row's document runs
/// from a segment flagged as a start to the segment before the next start.
pub fn documents(case: &str) -> (Vec<Document>, usize) {
    let bytes = std::fs::read(case_dir(case).join("vectors.safetensors")).expect("test vectors are readable");
    let st = SafeTensors::deserialize(&bytes).expect("test vectors are valid safetensors");
    let tokens = st.tensor("tokens").unwrap();
    let &[segments, batch, len] = tokens.shape() else { panic!("tokens shape") };
    let tokens: Vec<u32> =
        tokens.data().chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().unwrap()) as u32).collect();
    let starts = st.tensor("start_of_sequence").unwrap().data().to_vec();
    let logits_view = st.tensor("logits").unwrap();
    let vocab = logits_view.shape()[3];
    let logits: Vec<f32> =
        logits_view.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
    let mut docs: Vec<Document> = Vec::new();
    for row in 0..batch {
        let mut current: Option<Document> = None;
        for seg in 0..segments {
            if starts[seg * batch + row] != 0 {
                docs.extend(current.take());
                current = Some(Document { row, first_segment: seg, tokens: vec![], logits: vec![] });
            }
            let doc = current.as_mut().expect("every row starts with a document");
            let at = (seg * batch + row) * len;
            doc.tokens.extend_from_slice(&tokens[at..at + len]);
            doc.logits.extend_from_slice(&logits[at * vocab..(at + len) * vocab]);
        }
        docs.extend(current);
    }
    (docs, vocab)
}

/// Largest absolute difference (NaN when either side holds one), with the
/// position (index / vocab) where it is.
pub fn max_abs_diff(a: &[f32], b: &[f32], vocab: usize) -> (f32, usize) {
    assert_eq!(a.len(), b.len());
    let d = brt::compare::largest_difference(a, b);
    (d.value, d.index / vocab)
}

/// Path of the built `brt` program.
pub fn brt_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_brt"))
}

/// Writes a `tokens` [B, T] int32 safetensors file.
pub fn write_tokens(path: &std::path::Path, rows: &[Vec<u32>]) {
    let len = rows[0].len();
    let data: Vec<i32> = rows.iter().flat_map(|r| r.iter().map(|&t| t as i32)).collect();
    let view = safetensors::tensor::TensorView::new(
        safetensors::Dtype::I32,
        vec![rows.len(), len],
        bytemuck::cast_slice(&data),
    )
    .unwrap();
    let bytes = safetensors::serialize([("tokens", view)], None).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// Reads `logits` of a safetensors file.
pub fn read_logits(path: &std::path::Path) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let view = st.tensor("logits").unwrap();
    (view.shape().to_vec(), view.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect())
}

/// A small random byte-level model (V = 260) with one recurrent layer, written
/// to `dir/name.safetensors`.
pub fn small_model(dir: &std::path::Path, name: &str, config: brt_core::Config) -> (PathBuf, brt::ModelWeights) {
    let layout = brt_core::WeightLayout::new(&config).unwrap();
    let mut flat = vec![0f32; layout.len()];
    brt_core::init::initialize(&config, 11, &mut flat).unwrap();
    let weights = brt::ModelWeights::new(config, brt::WeightBuffer::F32(flat)).unwrap();
    let path = dir.join(format!("{name}.safetensors"));
    brt::format::save(&weights, &path).unwrap();
    (path, weights)
}

/// The configuration of [`small_model`]'s usual model.
pub fn small_config() -> brt_core::Config {
    brt_core::Config {
        states: 3,
        recurrent: brt_core::LayerSet::EMPTY.with(1),
        gate: brt_core::GateKind::Lstm,
        layout: brt_core::StateLayout::Dual,
        ..brt_core::Config::plain(260, 16, 2, 5, 24, 2, 4)
    }
}

/// Runs `brt` with `args`; returns (exit code, stdout, stderr) and checks it did
/// not panic.
pub fn run_brt(args: &[&std::ffi::OsStr]) -> (i32, Vec<u8>, String) {
    let out = std::process::Command::new(brt_bin()).args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "brt panicked: {stderr}");
    (out.status.code().unwrap_or(-1), out.stdout, stderr)
}
