//! The seed corpora of the fuzz targets (`fuzz/corpus/<target>/`) and the model of
//! the `session_file` target (`fuzz/models/`).
//!
//! Normally this test checks that every committed seed is still what it should be:
//! a valid input that reaches the code behind the reader's first checks (a seed
//! the readers reject would leave the fuzzer at the door). With
//! `BRT_WRITE_FUZZ_SEEDS=1` it writes them first:
//!
//! ```text
//! BRT_WRITE_FUZZ_SEEDS=1 cargo test -p brt --test hostile_fuzz_seeds
//! ```
//!
//! The input layouts decoded here are those documented in each fuzz target.

mod common;
mod hostile_support;

use brt::config_file::ConfigFile;
use brt::meliad::{import, ImportOptions};
use brt::tokenizer::Tokenizer;
use brt::{Engine, ModelWeights, Session};
use brt_core::{Config, GateKind, LayerSet, Reference, StateLayout, WeightDtype};
use brt_heap::Heap;
use common::*;
use hostile_support::{checkpoint_bytes, official_arrays, random_weights};
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

fn writing() -> bool {
    std::env::var_os("BRT_WRITE_FUZZ_SEEDS").is_some_and(|v| v == "1")
}

/// The `session_file` target's model (see `fuzz/src/lib.rs`).
fn session_config() -> Config {
    Config {
        states: 2,
        recurrent: LayerSet::EMPTY.with(1),
        gate: GateKind::Lstm,
        layout: StateLayout::Dual,
        feedback: true,
        ..Config::plain(12, 8, 2, 4, 16, 2, 4)
    }
}

/// Small configurations covering the gates, layouts, feedback and linear layers.
fn weight_configs() -> Vec<(&'static str, Config, WeightDtype)> {
    vec![
        ("plain_f32", Config::plain(16, 8, 2, 4, 16, 1, 4), WeightDtype::F32),
        ("lstm_dual_feedback_f16", session_config(), WeightDtype::F16),
        (
            "fixed_skip_linear_bf16",
            Config {
                states: 3,
                recurrent: LayerSet::EMPTY.with(1),
                linear: LayerSet::EMPTY.with(0),
                ..Config::plain(10, 8, 2, 2, 8, 2, 3)
            },
            WeightDtype::Bf16,
        ),
        (
            "fixed_single_f32",
            Config {
                states: 2,
                recurrent: LayerSet::EMPTY.with(0),
                layout: StateLayout::Single,
                ..Config::plain(9, 4, 1, 4, 8, 1, 2)
            },
            WeightDtype::F32,
        ),
    ]
}

/// The framed form of a safetensors file: header JSON, 0x00, data.
fn frame(file: &[u8]) -> Vec<u8> {
    let n = u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
    let mut out = file[8..8 + n].to_vec();
    out.push(0);
    out.extend_from_slice(&file[8 + n..]);
    out
}

/// The file of a framed or raw safetensors-target input.
fn unframe(input: &[u8]) -> Vec<u8> {
    let rest = &input[1..];
    if input[0] & 1 == 0 {
        return rest.to_vec();
    }
    let at = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    let mut file = (at as u64).to_le_bytes().to_vec();
    file.extend_from_slice(&rest[..at]);
    file.extend_from_slice(rest.get(at + 1..).unwrap_or(&[]));
    file
}

/// Both framings of a safetensors file, with `extra` in the free bits of the first
/// byte.
fn both_framings(name: &str, file: &[u8], extra: u8) -> Vec<(String, Vec<u8>)> {
    let raw = [&[extra << 1][..], file].concat();
    let framed = [&[(extra << 1) | 1][..], &frame(file)].concat();
    vec![(format!("{name}_raw"), raw), (format!("{name}_framed"), framed)]
}

/// Seeds of the `meliad_checkpoint` target.
fn meliad_seeds() -> Vec<(String, Vec<u8>)> {
    let mut seeds = Vec::new();
    for (name, config, dtype) in weight_configs() {
        // Official checkpoints have no linear attention (a brt extension).
        let config = Config { linear: LayerSet::EMPTY, ..config };
        let name = name.replace("_linear", "");
        let weights = random_weights(config, 3, dtype);
        seeds.push((format!("{name}.msgpack"), checkpoint_bytes(&official_arrays(&weights, true))));
    }
    let plain = random_weights(Config::plain(6, 4, 1, 2, 4, 1, 2), 4, WeightDtype::F32);
    seeds.push(("plain_no_cache.msgpack".into(), checkpoint_bytes(&official_arrays(&plain, false))));
    // The real fixed_skip checkpoint's parameters (official values, no optimizer
    // moments) and the first bytes of the official file itself.
    let real = std::fs::read(case_dir("fixed_skip").join("checkpoint_0")).unwrap();
    let weights = import(&real, ImportOptions::default()).unwrap();
    seeds.push(("fixed_skip_official_params.msgpack".into(), checkpoint_bytes(&official_arrays(&weights, true))));
    seeds.push(("fixed_skip_official_first_16k.msgpack".into(), real[..16 << 10].to_vec()));
    seeds
}

fn brt_weight_seeds() -> Vec<(String, Vec<u8>)> {
    weight_configs()
        .into_iter()
        .flat_map(|(name, config, dtype)| {
            both_framings(name, &brt::format::to_bytes(&random_weights(config, 5, dtype)).unwrap(), 0)
        })
        .collect()
}

/// Seeds of the `gguf_model` target: every small configuration as a model file,
/// as it is and with the checksum fixed by the harness.
fn gguf_seeds() -> Vec<(String, Vec<u8>)> {
    // And one stored as Q8_0: widths of whole blocks, so it has both block and
    // f32 tensors.
    let q8 = ("plain_q8_0", Config::plain(6, 32, 1, 32, 32, 1, 2), WeightDtype::Q8_0);
    weight_configs()
        .into_iter()
        .chain([q8])
        .flat_map(|(name, config, dtype)| {
            let weights = random_weights(config, 6, WeightDtype::F32).with_dtype(dtype).unwrap();
            let file = brt::gguf::to_bytes(&weights, Some(name), dtype).unwrap();
            [
                (format!("{name}.gguf"), [&[0u8][..], &file].concat()),
                (format!("{name}_fix_crc.gguf"), [&[1u8][..], &file].concat()),
            ]
        })
        .collect()
}

fn session_model_bytes() -> Vec<u8> {
    brt::format::to_bytes(&random_weights(session_config(), 7, WeightDtype::F32)).unwrap()
}

fn session_seeds(model: &ModelWeights) -> Vec<(String, Vec<u8>)> {
    let mut engine = Engine::new(Reference::new(Heap), model).unwrap();
    let mut seeds = Vec::new();
    let fresh = engine.session(1, 4).unwrap();
    seeds.extend(both_framings("fresh", &fresh.to_bytes(&mut engine).unwrap(), 3));
    let mut mid = engine.session(1, 3).unwrap();
    mid.feed(&mut engine, &[1, 5, 9, 2, 11, 0, 7]).unwrap(); // 7 tokens: inside the second block
    seeds.extend(both_framings("mid_block", &mid.to_bytes(&mut engine).unwrap(), 2));
    let mut two = engine.session(2, 8).unwrap();
    two.feed_rows(&mut engine, &[&[1, 2, 3, 4, 5], &[6, 7, 8, 9, 10]], &[], None).unwrap();
    seeds.extend(both_framings("batch_two", &two.to_bytes(&mut engine).unwrap(), 7));
    seeds
}

fn tokens_file(dtype: safetensors::Dtype, shape: Vec<usize>, data: &[u8]) -> Vec<u8> {
    let view = safetensors::tensor::TensorView::new(dtype, shape, data).unwrap();
    safetensors::serialize([("tokens", view)], None).unwrap()
}

fn token_seeds() -> Vec<(String, Vec<u8>)> {
    let i32s: Vec<u8> = [5i32, 9, 0, 259, 3, 7, 7, 1, 2, 4].iter().flat_map(|v| v.to_le_bytes()).collect();
    let i64s: Vec<u8> = [3i64, 1, 258].iter().flat_map(|v| v.to_le_bytes()).collect();
    let example =
        std::fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/examples/tokens.safetensors"))
            .unwrap();
    let mut seeds = both_framings("i32_2x5", &tokens_file(safetensors::Dtype::I32, vec![2, 5], &i32s), 0);
    seeds.extend(both_framings("i64_1x3", &tokens_file(safetensors::Dtype::I64, vec![1, 3], &i64s), 0));
    seeds.extend(both_framings("readme_example", &example, 0));
    seeds
}

/// A word-level tokenizer.json, as the `tokenizers` crate writes it.
const WORD_TOKENIZER: &str = r#"{"version":"1.0","truncation":null,"padding":null,"added_tokens":[],"normalizer":null,"pre_tokenizer":{"type":"Whitespace"},"post_processor":null,"decoder":null,"model":{"type":"WordLevel","vocab":{"[UNK]":0,"hello":1,"world":2,"brt":3},"unk_token":"[UNK]"}}"#;

/// A byte-level BPE tokenizer.json with two merges.
const BPE_TOKENIZER: &str = r#"{"version":"1.0","truncation":null,"padding":null,"added_tokens":[],"normalizer":null,"pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true},"post_processor":null,"decoder":{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":true,"use_regex":true},"model":{"type":"BPE","dropout":null,"unk_token":null,"continuing_subword_prefix":null,"end_of_word_suffix":null,"fuse_unk":false,"byte_fallback":false,"ignore_merges":false,"vocab":{"a":0,"b":1,"c":2,"Ġ":3,"ab":4,"abc":5},"merges":["a b","ab c"]}}"#;

fn tokenizer_seeds() -> Vec<(String, Vec<u8>)> {
    let with = |kind: u8, cuts: &[u8], text: &[u8]| [&[kind, cuts.len() as u8][..], cuts, text].concat();
    vec![
        ("bytes_utf8".into(), with(0, &[40, 200], "Call me Ishmael. Héllo\n".as_bytes())),
        ("bytes_binary".into(), with(0, &[1, 128, 255], &[0, 0xff, 0xfe, 10, 13, 0x80, b'a'])),
        ("ids_lines".into(), with(1, &[10, 100, 101], b"12 7 400\n9 0 31\t4294967295 ")),
        ("ids_bad_word".into(), with(1, &[128], b"1 2 x3 4")),
        ("ids_leading_zeros".into(), with(1, &[64], b"0007 00000000000000000000000000000001 2")),
        ("hf_word".into(), with(2, &[128], &[WORD_TOKENIZER.as_bytes(), b"\0hello world\nbrt hello"].concat())),
        ("hf_bpe".into(), with(2, &[50, 200], &[BPE_TOKENIZER.as_bytes(), b"\0abc ab\ncab a"].concat())),
    ]
}

fn cli_seeds() -> Vec<(String, Vec<u8>)> {
    let mut seeds: Vec<(String, Vec<u8>)> = weight_configs()
        .into_iter()
        .map(|(name, config, _)| {
            (format!("config_{name}"), [&[0u8][..], ConfigFile::to_json(&config).as_bytes()].concat())
        })
        .collect();
    seeds.push(("backend_reference".into(), [&[1u8][..], b"reference"].concat()));
    seeds.push(("backend_cuda".into(), [&[1u8][..], b"cuda"].concat()));
    let mut sampling = vec![2u8];
    for v in [0.8f32, 0.95, f32::from_bits(5), f32::from_bits(42)] {
        sampling.extend(v.to_le_bytes());
    }
    for logit in [1.0f32, -2.0, 0.5, 3.0, 3.0, -1e30, 1e30] {
        sampling.extend(logit.to_le_bytes());
    }
    seeds.push(("sampling".into(), sampling));
    let mut greedy = vec![2u8];
    for v in [0.0f32, 1.0, 0.0, 0.0, 2.0, 1.0] {
        greedy.extend(v.to_le_bytes());
    }
    seeds.push(("sampling_greedy".into(), greedy));
    // The fuzzer's find: penalties (from the bytes after the options) that pushed
    // every seen logit to -inf in f32, and min-p then kept no token.
    seeds.push((
        "sampling_penalties_overflow".into(),
        vec![
            0x02, 0xcd, 0x00, 0x00, 0x2a, 0x00, 0xcc, 0x4c, 0x00, 0x00, 0x00, 0x00, 0x3f, 0x33, 0x33, 0x73, 0x3f, 0x05,
            0x00, 0x00, 0x00, 0x2a, 0x00, 0x00, 0x00, 0x33, 0x33, 0x73, 0x3f, 0x05, 0x00, 0x00, 0x00, 0x2a, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0, 0x00, 0x00, 0x49, 0xf1, 0xca, 0xf2, 0x49, 0x71,
        ],
    ));
    seeds
}

/// Writes the seeds of `target` (removing seeds no longer made) when asked, then
/// returns the committed seeds.
fn committed(target: &str, seeds: Vec<(String, Vec<u8>)>) -> Vec<(String, Vec<u8>)> {
    let dir = fuzz_dir().join("corpus").join(target);
    if writing() {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in &seeds {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
    let mut found: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}; write the seeds with BRT_WRITE_FUZZ_SEEDS=1", dir.display()))
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap())
        })
        .collect();
    found.sort();
    let mut names: Vec<&String> = seeds.iter().map(|(n, _)| n).collect();
    names.sort();
    assert_eq!(found.iter().map(|(n, _)| n).collect::<Vec<_>>(), names, "{target}: committed seeds are not those made");
    found
}

fn weights_model(path: &Path) -> ModelWeights {
    brt::format::from_bytes(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn meliad_seeds_import() {
    for (name, bytes) in committed("meliad_checkpoint", meliad_seeds()) {
        let result = import(&bytes, ImportOptions::default());
        match name.as_str() {
            "plain_no_cache.msgpack" => {
                let err = result.unwrap_err();
                assert!(err.contains("give the window explicitly"), "{name}: {err}");
                import(&bytes, ImportOptions { window: Some(4), ..Default::default() }).unwrap();
            }
            "fixed_skip_official_first_16k.msgpack" => assert!(result.unwrap_err().contains("truncated")),
            "fixed_skip_official_params.msgpack" => {
                // The writer is faithful: the same model as the official file.
                let real = std::fs::read(case_dir("fixed_skip").join("checkpoint_0")).unwrap();
                assert_eq!(result.unwrap(), import(&real, ImportOptions::default()).unwrap());
            }
            _ => {
                result.unwrap_or_else(|e| panic!("{name}: {e}"));
            }
        }
    }
}

#[test]
fn brt_weight_seeds_load() {
    for (name, bytes) in committed("brt_weights", brt_weight_seeds()) {
        brt::format::from_bytes(&unframe(&bytes)).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn gguf_seeds_read() {
    for (name, bytes) in committed("gguf_model", gguf_seeds()) {
        let file = &bytes[1..];
        let mut words = vec![0u64; file.len().div_ceil(8)];
        bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..file.len()].copy_from_slice(file);
        brt_gguf::ModelFile::parse(&bytemuck::cast_slice(&words)[..file.len()])
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn session_seeds_restore_on_the_fuzzing_model() {
    let model_path = fuzz_dir().join("models/session_model.safetensors");
    if writing() {
        std::fs::create_dir_all(model_path.parent().unwrap()).unwrap();
        std::fs::write(&model_path, session_model_bytes()).unwrap();
    }
    let model = weights_model(&model_path);
    assert_eq!(model.config(), &session_config(), "fuzz/models/session_model.safetensors is another model");
    let mut engine = Engine::new(Reference::new(Heap), &model).unwrap();
    for (name, bytes) in committed("session_file", session_seeds(&model)) {
        let chunk = ((bytes[0] >> 1) & 7) as usize + 1;
        Session::from_bytes(&mut engine, &unframe(&bytes), chunk).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn token_seeds_read() {
    for (name, bytes) in committed("token_file", token_seeds()) {
        brt::logits::tokens_from_bytes(&unframe(&bytes)).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn tokenizer_seeds_encode() {
    for (name, bytes) in committed("tokenizer_input", tokenizer_seeds()) {
        let cuts = bytes[1] as usize % 8;
        let text = &bytes[2 + cuts..];
        let result = match bytes[0] % 3 {
            0 => Tokenizer::Bytes.encode(text),
            1 => Tokenizer::Ids.encode(text),
            _ => continue, // checked by `hf_tokenizer_seeds_load` with the `hf` feature
        };
        assert_eq!(result.is_ok(), name != "ids_bad_word", "{name}: {result:?}");
    }
}

#[cfg(feature = "hf")]
#[test]
fn hf_tokenizer_seeds_load() {
    let dir = tempfile::tempdir().unwrap();
    for (name, json) in [("word", WORD_TOKENIZER), ("bpe", BPE_TOKENIZER)] {
        let path = dir.path().join(format!("{name}.json"));
        std::fs::write(&path, json).unwrap();
        let tokenizer = Tokenizer::from_spec(path.to_str().unwrap()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!tokenizer.encode(b"hello abc").unwrap().is_empty());
    }
}

#[test]
fn cli_seeds_parse() {
    for (name, bytes) in committed("cli_flags", cli_seeds()) {
        let rest = &bytes[1..];
        match bytes[0] % 3 {
            0 => drop(ConfigFile::parse(std::str::from_utf8(rest).unwrap()).unwrap_or_else(|e| panic!("{name}: {e}"))),
            1 => assert!(std::str::from_utf8(rest).unwrap().parse::<brt::BackendKind>().is_ok(), "{name}"),
            _ => {
                let f = |at: usize| f32::from_le_bytes(rest[at..at + 4].try_into().unwrap());
                let options = brt::sample::SamplingOptions {
                    temperature: f(0),
                    top_p: f(4),
                    top_k: f(8).to_bits() as usize,
                    seed: u64::from(f(12).to_bits()),
                    ..Default::default()
                };
                brt::sample::Sampler::new(options).unwrap_or_else(|e| panic!("{name}: {e}"));
            }
        }
    }
}
