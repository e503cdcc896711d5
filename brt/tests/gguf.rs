//! The deployable model file (GGUF) from the outside: `brt convert` writes it,
//! ggml's own Python reader (the `gguf` package, which brt did not write) reads
//! the same names, shapes, types, values and configuration, and every command
//! runs it, mapped and used in place, to the logits of the model in memory.

mod common;

use brt::backend::{run_on, BackendKind};
use brt::gguf::MappedModel;
use brt::logits::{LogitsJob, TokenBatch};
use brt::model_file::{open_model, LoadedModel};
use brt::ModelWeights;
use brt_core::{GateKind, LayerSet, StateLayout};
use common::*;
use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

fn config() -> brt_core::Config {
    // Every kind of parameter: LSTM gates in the dual layout, linear attention.
    brt_core::Config {
        linear: LayerSet::EMPTY.with(0),
        gate: GateKind::Lstm,
        layout: StateLayout::Dual,
        ..small_config()
    }
}

fn convert(input: &Path, output: &Path, dtype: &str) {
    let (code, _, err) = run_brt(&[
        OsStr::new("convert"),
        input.as_os_str(),
        output.as_os_str(),
        OsStr::new("--dtype"),
        OsStr::new(dtype),
    ]);
    assert_eq!(code, 0, "brt convert: {err}");
    assert!(err.contains("model file (GGUF)"), "{err}");
}

/// The output of scripts/gguf_read.py for `path`, or `None` (said loudly) when
/// Python or its `gguf` package is missing outside CI.
fn read_with_python(path: &Path) -> Option<serde_json::Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/gguf_read.py");
    let out = Command::new("python3").arg(&script).arg(path).output();
    match out {
        Ok(out) if out.status.success() => Some(serde_json::from_slice(&out.stdout).unwrap()),
        other => {
            let why = match other {
                Ok(out) => String::from_utf8_lossy(&out.stderr).into_owned(),
                Err(e) => e.to_string(),
            };
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must run the interoperability check (`pip install gguf`); python3 failed: {why}"
            );
            eprintln!("SKIPPED: ggml's Python reader is not available here (`pip install gguf`): {why}");
            None
        }
    }
}

/// Widths of whole Q8_0 blocks (d = 32, H*dh = 32, F = 64), the rest as
/// [`config`], so a q8_0 file has both block and f32 tensors.
fn block_config() -> brt_core::Config {
    brt_core::Config { d_model: 32, heads: 2, head_dim: 16, mlp_hidden: 64, ..config() }
}

#[test]
fn ggmls_python_reader_reads_brts_files() {
    let dir = tempfile::tempdir().unwrap();
    for (dtype, c) in [("f32", config()), ("f16", config()), ("bf16", config()), ("q8_0", block_config())] {
        let (source, weights) = small_model(dir.path(), &format!("model-{dtype}"), c);
        let path = dir.path().join(format!("model-{dtype}.gguf"));
        convert(&source, &path, dtype);
        let Some(found) = read_with_python(&path) else { return };
        let storage = match dtype {
            "f32" => brt_core::WeightDtype::F32,
            "f16" => brt_core::WeightDtype::F16,
            "bf16" => brt_core::WeightDtype::Bf16,
            _ => brt_core::WeightDtype::Q8_0,
        };
        // The values the file stands for (Q8_0: decoded by brt).
        let stored = weights.with_dtype(storage).unwrap();
        assert_eq!(found["gguf_version"], 3);
        let meta = &found["metadata"];
        assert_eq!(meta["general.architecture"], "brt");
        assert_eq!(meta["general.alignment"], 32);
        assert_eq!(meta["brt.vocab_size"], c.vocab);
        assert_eq!(meta["brt.embedding_length"], c.d_model);
        assert_eq!(meta["brt.attention.head_count"], c.heads);
        assert_eq!(meta["brt.attention.key_length"], c.head_dim);
        assert_eq!(meta["brt.feed_forward_length"], c.mlp_hidden);
        assert_eq!(meta["brt.block_count"], c.layers);
        assert_eq!(meta["brt.window"], c.window);
        assert_eq!(meta["brt.state_count"], c.states);
        assert_eq!(meta["brt.recurrent_layers"], serde_json::json!([1]));
        assert_eq!(meta["brt.linear_layers"], serde_json::json!([0]));
        assert_eq!(meta["brt.gate"], "lstm");
        assert_eq!(meta["brt.state_layout"], "dual");
        assert_eq!(meta["brt.feedback"], false);
        // The checksum, recomputed by zlib over the data the reader found.
        assert_eq!(meta["brt.data_crc32"], found["data_crc32"]);

        let tensors = found["tensors"].as_array().unwrap();
        let placed = brt_core::ByteLayout::new(&c, storage, 32).unwrap();
        assert_eq!(tensors.len(), placed.tensors().count());
        let mut blocks = 0;
        for (t, tensor) in tensors.iter().zip(placed.tensors()) {
            let spec = tensor.spec;
            assert_eq!(t["name"], spec.param.to_string());
            // numpy's shape, outermost first; a Q8_0 kernel is stored
            // transposed, one row of blocks per output (ggml's own layout).
            let (rows, cols) = (spec.span.rows, spec.span.cols);
            let shape = match () {
                _ if spec.param.is_vector() => vec![cols],
                _ if tensor.is_transposed() => vec![cols, rows],
                _ => vec![rows, cols],
            };
            assert_eq!(t["shape"], serde_json::json!(shape), "{}", spec.param);
            assert_eq!(t["type"], tensor.ty.name().to_uppercase(), "{}", spec.param);
            blocks += usize::from(tensor.ty == brt_core::TensorType::Q8_0);
            // ggml's own dequantization of the blocks gives brt's values, in
            // the order they are stored.
            let canonical = stored.param_f32(spec.param).unwrap();
            let mut want = vec![0f32; canonical.len()];
            canonical.iter().enumerate().for_each(|(e, &v)| want[tensor.stored_index(e)] = v);
            let got: Vec<f32> = t["values"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
            assert_eq!(got, want, "{} {dtype}", spec.param);
        }
        assert_eq!(blocks > 0, dtype == "q8_0", "{dtype}: {blocks} tensors in blocks");
    }
}

#[test]
fn a_q8_0_model_file_runs_to_the_reference_s_8_bit_products_on_the_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let (source, weights) = small_model(dir.path(), "blocks", block_config());
    let path = dir.path().join("blocks-q8_0.gguf");
    convert(&source, &path, "q8_0");
    let mapped = open_model(&path, Default::default()).unwrap();
    assert_eq!(mapped.dtype(), brt_core::WeightDtype::Q8_0);
    // Both read the blocks where they lie and quantize the products' inputs:
    // f32 against f64 arithmetic on the same 8-bit products.
    let (cpu, reference) = (logits(BackendKind::Cpu, &mapped), logits(BackendKind::Reference, &mapped));
    let worst = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    assert!(worst(&cpu, &reference) <= 1e-5, "the CPU is {} from the reference", worst(&cpu, &reference));
    // The values the blocks stand for, as f32 weights in memory: the products'
    // inputs are not quantized, a small difference.
    let values = LoadedModel::InMemory(weights.with_dtype(brt_core::WeightDtype::Q8_0).unwrap());
    let moved = worst(&logits(BackendKind::Reference, &values), &reference);
    assert!(moved > 1e-6 && moved < 0.1, "quantizing the inputs moved the logits by {moved}");
}

fn logits(kind: BackendKind, model: &LoadedModel) -> Vec<f32> {
    let rows: Vec<Vec<u32>> =
        vec![(0..23).map(|i| (i * 37 % 260) as u32).collect(), (0..23).map(|i| (i * 11 % 260) as u32).collect()];
    let tokens = TokenBatch::new(2, 23, rows.concat()).unwrap();
    run_on(kind, LogitsJob { weights: model, tokens: &tokens, chunk: 7 }).unwrap()
}

#[test]
fn a_mapped_model_file_runs_to_the_logits_of_the_model_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let (source, weights) = small_model(dir.path(), "model", config());
    for dtype in ["f32", "f16", "bf16"] {
        let path = dir.path().join(format!("model-{dtype}.gguf"));
        convert(&source, &path, dtype);
        let LoadedModel::Mapped(mapped) = open_model(&path, Default::default()).unwrap() else {
            panic!("a model file is mapped")
        };
        let in_memory: ModelWeights = mapped.to_weights().unwrap();
        assert_eq!(in_memory, weights.with_dtype(in_memory.dtype()).unwrap());
        // Sessions move between formats: the same model has the same fingerprint.
        assert_eq!(mapped.fingerprint(), brt::engine::fingerprint(&in_memory));
        let mapped = LoadedModel::Mapped(mapped);
        let in_memory = LoadedModel::InMemory(in_memory);
        for kind in [BackendKind::Reference, BackendKind::Cpu] {
            assert_eq!(logits(kind, &mapped), logits(kind, &in_memory), "{kind} {dtype}");
        }
    }
}

#[test]
fn every_command_reads_a_model_file() {
    let dir = tempfile::tempdir().unwrap();
    let (source, _) = small_model(dir.path(), "model", config());
    let gguf = dir.path().join("model.gguf");
    convert(&source, &gguf, "f16");
    let text = dir.path().join("text.txt");
    std::fs::write(&text, "A text to score, then to continue.").unwrap();
    let os = |s: &'static str| OsStr::new(s);
    let (code, out, err) = run_brt(&[os("info"), gguf.as_os_str()]);
    assert_eq!(code, 0, "{err}");
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains("model file (GGUF 3") && out.contains("(checked)"), "{out}");
    let (code, _, err) = run_brt(&[os("eval"), os("--model"), gguf.as_os_str(), text.as_os_str()]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) =
        run_brt(&[os("generate"), os("--model"), gguf.as_os_str(), os("Once"), os("--max-tokens"), os("5")]);
    assert_eq!(code, 0, "{err}");
    assert!(!out.is_empty());
    // Back to safetensors, and the values survive the trip.
    let back = dir.path().join("back.safetensors");
    let (code, _, err) = run_brt(&[os("convert"), gguf.as_os_str(), back.as_os_str()]);
    assert_eq!(code, 0, "{err}");
    let a = brt::load_model(&back, Default::default()).unwrap();
    let b = MappedModel::open(&gguf).unwrap().to_weights().unwrap();
    assert_eq!(a, b);
}
