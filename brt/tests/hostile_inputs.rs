//! The table of bad inputs (docs/bad-inputs.md): every case runs the `brt`
//! program and must end with the documented exit status and a message naming the
//! problem, without a panic, and without changing anything on disk: inputs stay
//! as they were, and no output or temporary file appears.
//!
//! Truncation is also checked at every byte offset through the library, and
//! writes are interrupted (by a file size limit and by `kill -9`) to show that no
//! partial output is ever visible under the destination's name.

mod common;
mod hostile_support;

use brt::meliad::ImportOptions;
use brt::{Engine, ModelWeights, WeightBuffer};
use brt_core::{Config, GateKind, LayerSet, Reference, StateLayout, WeightDtype};
use brt_heap::Heap;
use common::*;
use hostile_support::*;
use safetensors::Dtype;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A model in the official layout with V = 260 (the byte vocabulary): a
/// recurrent layer with the fixed gate and the skip layout, as the paper's best.
fn official_config() -> Config {
    Config {
        states: 2,
        recurrent: LayerSet::EMPTY.with(1),
        gate: GateKind::Fixed,
        layout: StateLayout::Skip,
        ..Config::plain(260, 8, 2, 4, 16, 2, 4)
    }
}

fn official_weights() -> ModelWeights {
    random_weights(official_config(), 21, WeightDtype::F32)
}

/// brt weights of [`small_config`] (LSTM gates, dual layout).
fn brt_weights() -> ModelWeights {
    random_weights(small_config(), 22, WeightDtype::F32)
}

/// A session of `weights` after a few tokens (inside the second block).
fn session_bytes(weights: &ModelWeights) -> Vec<u8> {
    let mut engine = Engine::new(Reference::new(Heap), weights).unwrap();
    let mut session = engine.session(1, 4).unwrap();
    session.feed(&mut engine, &[5, 6, 7, 8, 9, 10]).unwrap();
    session.to_bytes(&mut engine).unwrap()
}

fn tokens_bytes(dtype: Dtype, shape: Vec<usize>, data: &[u8]) -> Vec<u8> {
    let view = safetensors::tensor::TensorView::new(dtype, shape, data).unwrap();
    safetensors::serialize([("tokens", view)], None).unwrap()
}

fn i32_bytes(values: &[i32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// One row of the table.
struct Case {
    name: String,
    args: Vec<OsString>,
    /// Expected exit status: 1 for bad input, 2 for a malformed command line.
    code: i32,
    /// A piece of the expected message.
    message: String,
}

/// The table under construction, with its files in `root`.
struct Table {
    root: PathBuf,
    shared: PathBuf,
    cases: Vec<Case>,
}

impl Table {
    fn new(root: &Path) -> Table {
        let shared = root.join("shared");
        std::fs::create_dir_all(&shared).unwrap();
        Table { root: root.to_path_buf(), shared, cases: Vec::new() }
    }

    /// Writes a shared input file.
    fn shared(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.shared.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// Writes an input file of case `case`.
    fn file(&self, case: &str, name: &str, bytes: &[u8]) -> PathBuf {
        let dir = self.root.join(case);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// An output path of case `case` (which must not appear).
    fn output(&self, case: &str, name: &str) -> PathBuf {
        let dir = self.root.join(case);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    fn add(&mut self, name: &str, args: &[&OsStr], code: i32, message: &str) {
        assert!(!self.cases.iter().any(|c| c.name == name), "two cases named {name}");
        self.cases.push(Case {
            name: name.into(),
            args: args.iter().map(|a| a.to_os_string()).collect(),
            code,
            message: message.into(),
        });
    }

    /// `brt info MODEL` must fail with `message`.
    fn info(&mut self, name: &str, model: &[u8], message: &str) {
        let path = self.file(name, "model", model);
        self.add(name, &[os("info"), path.as_os_str()], 1, message);
    }
}

/// The program under test: this build's `brt`, or the one `BRT_HOSTILE_BIN`
/// names (to run the table against another build, e.g. a release one).
fn program() -> PathBuf {
    std::env::var_os("BRT_HOSTILE_BIN").map(PathBuf::from).unwrap_or_else(brt_bin)
}

fn os(s: &str) -> &OsStr {
    s.as_ref()
}

/// Official checkpoint cases: `edit` changes the arrays of a good one.
fn official_case(table: &mut Table, name: &str, edit: impl FnOnce(&mut Arrays), message: &str) {
    let mut arrays = official_arrays(&official_weights(), true);
    edit(&mut arrays);
    table.info(name, &checkpoint_bytes(&arrays), message);
}

/// brt weight cases: `edit` changes the tensors and metadata of good weights.
fn weights_case(table: &mut Table, name: &str, edit: impl FnOnce(&mut Parts), message: &str) {
    let mut parts = Parts::of(&brt::format::to_bytes(&brt_weights()).unwrap());
    edit(&mut parts);
    table.info(name, &parts.bytes(), message);
}

/// `bytes` with `new` written at `at`.
fn patched(bytes: &[u8], at: usize, new: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[at..at + new.len()].copy_from_slice(new);
    out
}

/// Where the value of metadata `key` starts in a model file (after its type).
fn gguf_value_at(bytes: &[u8], key: &str) -> usize {
    let mut pattern = (key.len() as u64).to_le_bytes().to_vec();
    pattern.extend_from_slice(key.as_bytes());
    bytes.windows(pattern.len()).position(|w| w == pattern).unwrap() + pattern.len() + 4
}

fn f32_array(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn build_table(root: &Path) -> Table {
    let mut t = Table::new(root);
    let official = checkpoint_bytes(&official_arrays(&official_weights(), true));
    let official_path = t.shared("official.msgpack", &official);
    let weights = brt_weights();
    let weights_file = brt::format::to_bytes(&weights).unwrap();
    let model = t.shared("model.safetensors", &weights_file);
    let session = session_bytes(&weights);
    let tokens = t.shared("tokens.safetensors", &tokens_bytes(Dtype::I32, vec![1, 4], &i32_bytes(&[5, 9, 1, 3])));
    let text = t.shared("text.txt", b"Some text to score.\n");

    // --- Files cut short, empty or of another kind.
    t.info("empty model file", b"", "the file is empty");
    t.info("official checkpoint cut in its first map", &official[..3], "truncated");
    t.info("official checkpoint cut inside an array", &official[..official.len() / 2], "truncated");
    t.info("official checkpoint missing its last byte", &official[..official.len() - 1], "truncated");
    t.info("brt weights cut in the header length", &weights_file[..5], "neither brt weights");
    t.info("brt weights cut inside the header", &weights_file[..40], "truncated: the header is");
    t.info("brt weights cut inside the data", &weights_file[..weights_file.len() - 3], "truncated or corrupt");
    t.info("text file as a model", b"hello, world", "neither brt weights");
    let tokens_file = std::fs::read(&tokens).unwrap();
    t.info("token file as a model", &tokens_file, "not brt weights");
    t.info("session file as a model", &session, "not brt weights");

    // --- Model files (GGUF): cut, misplaced, lying sizes, other versions.
    let gguf = brt::gguf::to_bytes(&weights, Some("hostile"), weights.dtype()).unwrap();
    let table_at = gguf.windows(9).position(|w| w == b"\x05\0\0\0\0\0\0\0e").unwrap();
    t.info("model file cut in its header", &gguf[..10], "cut short");
    t.info("model file cut inside the tensor table", &gguf[..table_at + 20], "cut short");
    t.info("model file cut inside the data", &gguf[..gguf.len() - 3], "the tensors need a file of");
    t.info("model file with bytes appended", &[&gguf[..], &[0u8; 64]].concat(), "something appended");
    t.info(
        "model file of GGUF version 2",
        &patched(&gguf, 4, &2u32.to_le_bytes()),
        "GGUF version 2; brt reads version 3",
    );
    t.info(
        "model file of a later brt format",
        &patched(&gguf, gguf_value_at(&gguf, brt_gguf::keys::FORMAT_VERSION), &9u32.to_le_bytes()),
        "brt model file version 9",
    );
    let arch = gguf_value_at(&gguf, brt_gguf::keys::ARCHITECTURE) + 8;
    t.info("model file of another architecture", &patched(&gguf, arch, b"gpt"), "another architecture");
    t.info("model file claiming 2^64 - 1 tensors", &patched(&gguf, 8, &u64::MAX.to_le_bytes()), "a count larger");
    t.info("model file key longer than the file", &patched(&gguf, 24, &(1u64 << 40).to_le_bytes()), "cut short");
    let alignment = gguf_value_at(&gguf, brt_gguf::keys::ALIGNMENT);
    t.info(
        "model file with a misaligned layout",
        &patched(&gguf, alignment, &64u32.to_le_bytes()),
        "not where the layout",
    );
    t.info(
        "model file with an alignment of 24",
        &patched(&gguf, alignment, &24u32.to_le_bytes()),
        "not a power of two",
    );
    let width = gguf_value_at(&gguf, brt_gguf::keys::D_MODEL);
    t.info("model file whose width lies", &patched(&gguf, width, &7u64.to_le_bytes()), "shape is not the one");
    t.info("model file with a changed weight", &patched(&gguf, gguf.len() - 6, &[0x5a]), "the tensor data is corrupt");
    let mut nan = weights.clone();
    if let WeightBuffer::F32(v) = nan.buffer_mut() {
        v[7] = f32::NAN;
    }
    let nan_file = brt_gguf::write(nan.config(), None, nan.buffer().data()).unwrap();
    t.info("model file with a NaN weight", &nan_file, "non-finite value");
    // Q8_0: matrices in blocks, vectors in f32; each tensor's type is fixed.
    let blocks = random_weights(Config::plain(12, 32, 1, 32, 32, 1, 2), 3, WeightDtype::F32);
    let q8 = brt::gguf::to_bytes(&blocks, None, WeightDtype::Q8_0).unwrap();
    let embed_type = q8.windows(13).position(|w| w == b"\x05\0\0\0\0\0\0\0embed").unwrap() + 13 + 4 + 16;
    t.info(
        "q8_0 model file with a block tensor declared f32",
        &patched(&q8, embed_type, &0u32.to_le_bytes()),
        "not the one a q8_0 model has",
    );
    t.info(
        "q8_0 model file of brt format 1 (kernels stored by inputs)",
        &patched(&q8, gguf_value_at(&q8, brt_gguf::keys::FORMAT_VERSION), &1u32.to_le_bytes()),
        "convert the model again",
    );
    let missing = t.root.join("no-such-model");
    t.add("missing model file", &[os("info"), missing.as_os_str()], 1, "No such file");
    t.add("folder as a model", &[os("info"), t.shared.clone().as_os_str()], 1, "is a folder, not a file");
    t.add("device as a model", &[os("info"), os("/dev/zero")], 1, "not a regular file");

    // --- Official checkpoints: dtypes, values, shapes, sizes.
    official_case(
        &mut t,
        "official: integer parameter",
        |a| {
            let e = a.get_mut(&format!("{PARAMS}final_layernorm/scale")).unwrap();
            e.dtype = "int32".into();
        },
        "is not a float array",
    );
    official_case(
        &mut t,
        "official: unknown dtype",
        |a| a.get_mut(&format!("{PARAMS}final_layernorm/scale")).unwrap().dtype = "complex64".into(),
        "unsupported dtype `complex64`",
    );
    official_case(
        &mut t,
        "official: NaN weight",
        |a| {
            a.get_mut(&format!("{PARAMS}embed/embedding")).unwrap().data[8..12].copy_from_slice(&f32::NAN.to_le_bytes())
        },
        "non-finite value",
    );
    official_case(
        &mut t,
        "official: infinite weight",
        |a| {
            let e = a.get_mut(&format!("{PARAMS}transformer1/recurrent_tbase/post_attn_mlp/gate_bias")).unwrap();
            e.data[0..4].copy_from_slice(&f32::NEG_INFINITY.to_le_bytes());
        },
        "non-finite value",
    );
    official_case(
        &mut t,
        "official: shape overflows usize",
        |a| {
            let e = a.get_mut(&format!("{PARAMS}embed/embedding")).unwrap();
            e.shape = vec![1 << 40, 1 << 40];
            e.data.clear();
        },
        "shape overflows",
    );
    official_case(
        &mut t,
        "official: shape disagrees with the data",
        |a| a.get_mut(&format!("{PARAMS}final_layernorm/scale")).unwrap().shape = vec![9],
        "needs 36 bytes",
    );
    official_case(
        &mut t,
        "official: zero heads",
        |a| {
            let e = a.get_mut(&format!("{PARAMS}transformer0/tbase/_kvq/attention_scale")).unwrap();
            e.shape = vec![0];
            e.data.clear();
        },
        "a model needs at least one head",
    );
    official_case(
        &mut t,
        "official: zero window in the cached keys",
        |a| {
            for (_, e) in a.iter_mut().filter(|(k, _)| k.contains("previous_")) {
                e.shape[1] = 0;
                e.data.clear();
            }
        },
        "with no zero dimension",
    );
    official_case(
        &mut t,
        "official: empty cache claiming a huge window",
        |a| {
            for (_, e) in a.iter_mut().filter(|(k, _)| k.contains("previous_")) {
                e.shape = vec![0, 1 << 40, 2, 4];
                e.data.clear();
            }
        },
        "with no zero dimension",
    );
    official_case(
        &mut t,
        "official: empty kernel claiming a huge width",
        |a| {
            let e = a.get_mut(&format!("{PARAMS}transformer0/tbase/_kvq/keys_layer/kernel")).unwrap();
            e.shape = vec![0, 1 << 28];
            e.data.clear();
        },
        "has shape [8, 8], expected [8, 268435456]",
    );
    official_case(
        &mut t,
        "official: zero states",
        |a| {
            let e = a.get_mut(&format!("{PARAMS}transformer1/recurrent_initial_state")).unwrap();
            e.shape = vec![0, 8];
            e.data.clear();
        },
        "needs at least one state vector",
    );
    official_case(
        &mut t,
        "official: recurrent layer above the top layer",
        |a| {
            let e = a[&format!("{PARAMS}transformer1/recurrent_initial_state")].clone();
            a.insert(format!("{PARAMS}transformer5/recurrent_initial_state"), e);
        },
        "unexpected parameter `transformer5/recurrent_initial_state`",
    );
    official_case(
        &mut t,
        "official: missing parameter",
        |a| drop(a.remove(&format!("{PARAMS}transformer0/tbase/ffn/output_layer/kernel"))),
        "missing parameter `transformer0/tbase/ffn/output_layer/kernel`",
    );
    official_case(
        &mut t,
        "official: no parameters",
        |a| a.retain(|k, _| !k.starts_with(PARAMS)),
        "not a Meliad decoder checkpoint",
    );
    official_case(
        &mut t,
        "official: no cached keys to read the window from",
        |a| a.retain(|k, _| !k.contains("previous_")),
        "give the window explicitly (--window)",
    );
    let no_cache =
        t.file("official: zero --window", "model", &checkpoint_bytes(&official_arrays(&official_weights(), false)));
    t.add(
        "official: zero --window",
        &[os("info"), no_cache.as_os_str(), os("--window"), os("0")],
        1,
        "window (block length) must be positive",
    );
    t.add(
        "official: --window overflowing sizes",
        &[os("info"), no_cache.as_os_str(), os("--window"), os(&usize::MAX.to_string())],
        1,
        "overflows",
    );
    let mut lying = vec![0xdf, 0xff, 0xff, 0xff, 0xff];
    lying.extend(&official[1..64]);
    t.info("msgpack map claiming 4 billion entries", &lying, "more than the file holds");
    t.info("msgpack nested 100 deep", &[&[0x81, 0xa1, b'a'][..]; 100].concat(), "nesting too deep");

    // --- brt weights: metadata, dtypes, values, shapes, configuration.
    let config_edit = |from: &'static str, to: &'static str| move |p: &mut Parts| p.edit_meta("config", from, to);
    weights_case(
        &mut t,
        "weights: zero heads",
        config_edit("\"heads\":2", "\"heads\":0"),
        "number of heads must be positive",
    );
    weights_case(
        &mut t,
        "weights: zero width",
        config_edit("\"d_model\":16", "\"d_model\":0"),
        "model width must be positive",
    );
    weights_case(
        &mut t,
        "weights: zero window",
        config_edit("\"window\":4", "\"window\":0"),
        "window (block length) must be positive",
    );
    weights_case(
        &mut t,
        "weights: zero states",
        config_edit("\"states\":3", "\"states\":0"),
        "needs at least one state vector",
    );
    weights_case(
        &mut t,
        "weights: zero layers",
        config_edit("\"layers\":2", "\"layers\":0"),
        "number of layers must be positive",
    );
    weights_case(
        &mut t,
        "weights: 129 layers",
        config_edit("\"layers\":2", "\"layers\":129"),
        "at most 128 layers are supported",
    );
    weights_case(
        &mut t,
        "weights: 2^63 layers and a layer counted from the top",
        |p| {
            p.edit_meta("config", "\"layers\":2", "\"layers\":9223372036854775808");
            p.edit_meta("config", "\"recurrent_layers\":[1]", "\"recurrent_layers\":[-1]");
        },
        "at most 128 layers are supported",
    );
    weights_case(
        &mut t,
        "weights: zero vocabulary",
        config_edit("\"vocab\":260", "\"vocab\":0"),
        "vocabulary size must be positive",
    );
    weights_case(
        &mut t,
        "weights: more recurrent layers than layers",
        config_edit("\"recurrent_layers\":[1]", "\"recurrent_layers\":[0,1,2]"),
        "layer index out of range",
    );
    weights_case(
        &mut t,
        "weights: recurrent layer index below the bottom",
        config_edit("\"recurrent_layers\":[1]", "\"recurrent_layers\":[-3]"),
        "layer index out of range",
    );
    weights_case(
        &mut t,
        "weights: sizes overflowing usize",
        |p| {
            p.edit_meta("config", "\"vocab\":260", "\"vocab\":4294967295");
            p.edit_meta("config", "\"d_model\":16", "\"d_model\":8589934592");
        },
        "the size of embedding table overflows",
    );
    weights_case(
        &mut t,
        "weights: vocabulary beyond token ids",
        config_edit("\"vocab\":260", "\"vocab\":1099511627776"),
        "vocabulary size must fit token ids in u32",
    );
    weights_case(
        &mut t,
        "weights: unknown gate",
        config_edit("\"gate\":\"lstm\"", "\"gate\":\"full\""),
        "unknown gate `full`",
    );
    weights_case(&mut t, "weights: configuration not JSON", config_edit("{", "{{"), "configuration JSON");
    weights_case(
        &mut t,
        "weights: configuration of another model",
        config_edit("\"d_model\":16", "\"d_model\":12"),
        "has shape",
    );
    weights_case(
        &mut t,
        "weights: other format version",
        |p| drop(p.metadata.insert("format_version".into(), "2".into())),
        "format version 2",
    );
    weights_case(&mut t, "weights: no configuration", |p| drop(p.metadata.remove("config")), "without a configuration");
    weights_case(
        &mut t,
        "weights: NaN weight",
        |p| p.tensor("layers.0.query").3[4..8].copy_from_slice(&f32::NAN.to_le_bytes()),
        "non-finite value",
    );
    weights_case(
        &mut t,
        "weights: infinite weight",
        |p| p.tensor("final_norm").3[0..4].copy_from_slice(&f32::INFINITY.to_le_bytes()),
        "non-finite value",
    );
    weights_case(&mut t, "weights: integer tensor", |p| p.tensor("embed").1 = Dtype::I32, "must be F32, F16 or BF16");
    weights_case(
        &mut t,
        "weights: float64 tensor",
        |p| {
            let e = p.tensor("final_norm");
            e.1 = Dtype::F64;
            e.2 = vec![8];
        },
        "must be F32, F16 or BF16",
    );
    weights_case(
        &mut t,
        "weights: mixed dtypes",
        |p| {
            let e = p.tensor("final_norm");
            e.1 = Dtype::F16;
            e.2 = vec![32];
        },
        "while others are",
    );
    weights_case(
        &mut t,
        "weights: wrong shape",
        |p| p.tensor("final_norm").2 = vec![4, 4],
        "tensor `final_norm` has shape [4, 4], expected [16]",
    );
    weights_case(
        &mut t,
        "weights: missing tensor",
        |p| p.tensors.retain(|e| e.0 != "layers.1.mlp_in"),
        "missing tensor `layers.1.mlp_in`",
    );
    weights_case(
        &mut t,
        "weights: extra tensor",
        |p| {
            let e = p.tensor("final_norm").clone();
            p.tensors.push(("layers.9.query".into(), e.1, e.2, e.3));
        },
        "not a parameter of the configuration",
    );
    let header_overflow = raw_safetensors(
        r#"{"__metadata__":{"format":"brt"},"a":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,0]}}"#,
        &[],
    );
    t.info("safetensors shape overflowing usize", &header_overflow, "not a valid safetensors file");
    let header_lie = raw_safetensors(
        r#"{"__metadata__":{"format":"brt"},"a":{"dtype":"U8","shape":[1099511627776],"data_offsets":[0,1099511627776]}}"#,
        &[0; 16],
    );
    t.info("safetensors tensor claiming a terabyte", &header_lie, "claims data up to byte 1099511627776");
    // Eight tensors whose claimed ends add up to 2^64 - 8: the `safetensors`
    // crate's own size check overflows on this header.
    let n: u64 = (1 << 61) - 1;
    let entries: Vec<String> = (0..8u64)
        .map(|k| format!(r#""t{k}":{{"dtype":"U8","shape":[{n}],"data_offsets":[{},{}]}}"#, k * n, (k + 1) * n))
        .collect();
    t.info(
        "safetensors offsets adding up to 2^64",
        &raw_safetensors(&format!("{{{}}}", entries.join(",")), &[]),
        "claims data up to byte",
    );
    let mut huge_header = u64::MAX.to_le_bytes().to_vec();
    huge_header.extend(b"{}");
    t.info("safetensors header length of 2^64 - 1", &huge_header, "neither brt weights");
    let mut huge_header = (1u64 << 40).to_le_bytes().to_vec();
    huge_header.extend(b"{\"a\":1}");
    t.info("safetensors header length of a terabyte", &huge_header, "neither brt weights");

    // A configuration whose buffers are terabytes: refused, not allocated.
    let mut parts = Parts::of(&weights_file);
    parts.edit_meta("config", "\"window\":4", "\"window\":1099511627776");
    let huge_window = t.file("weights: window of 2^40 tokens", "model", &parts.bytes());
    let out = t.output("weights: window of 2^40 tokens", "logits.safetensors");
    t.add(
        "weights: window of 2^40 tokens",
        &[
            os("logits"),
            os("--model"),
            huge_window.as_os_str(),
            os("--input"),
            tokens.as_os_str(),
            os("--output"),
            out.as_os_str(),
        ],
        1,
        "exhausted",
    );

    // --- Session files (`generate --resume`).
    let resume = |t: &mut Table, name: &str, bytes: &[u8], message: &str| {
        let path = t.file(name, "s.session", bytes);
        t.add(
            name,
            &[
                os("generate"),
                os("--model"),
                model.as_os_str(),
                os("--resume"),
                path.as_os_str(),
                os("--max-tokens"),
                os("2"),
            ],
            1,
            message,
        );
    };
    let other_weights = brt::format::to_bytes(&random_weights(small_config(), 23, WeightDtype::F32)).unwrap();
    let other_model = t.shared("other.safetensors", &other_weights);
    let session_path = t.shared("good.session", &session);
    t.add(
        "session: made with other weights",
        &[os("generate"), os("--model"), other_model.as_os_str(), os("--resume"), session_path.as_os_str()],
        1,
        "other model weights",
    );
    let other_config = random_weights(Config { feedback: true, ..small_config() }, 22, WeightDtype::F32);
    resume(&mut t, "session: made with another configuration", &session_bytes(&other_config), "another configuration");
    let mut p = Parts::of(&session);
    p.metadata.insert("format_version".into(), "7".into());
    resume(&mut t, "session: other format version", &p.bytes(), "session format version 7");
    resume(&mut t, "session: weights file as a session", &weights_file, "not a brt session file");
    resume(&mut t, "session: cut short", &session[..session.len() - 5], "truncated or corrupt");
    resume(&mut t, "session: empty", b"", "truncated");
    let mut p = Parts::of(&session);
    p.metadata.insert("batch".into(), "1000000000".into());
    resume(&mut t, "session: batch of 10^9 documents", &p.bytes(), "`last_logits` should be 260000000000 f32 values");
    let mut p = Parts::of(&session);
    p.metadata.insert("batch".into(), "18446744073709551615".into());
    resume(&mut t, "session: batch overflowing usize", &p.bytes(), "overflows");
    let mut p = Parts::of(&session);
    p.tensor("state").3[0..4].copy_from_slice(&f32::NAN.to_le_bytes());
    resume(&mut t, "session: NaN in the state", &p.bytes(), "non-finite values");
    let mut p = Parts::of(&session);
    p.metadata.insert("position_in_block".into(), "4".into());
    resume(&mut t, "session: position outside the block", &p.bytes(), "not inside a block");
    let mut p = Parts::of(&session);
    let state = p.tensor("state");
    state.1 = Dtype::F16;
    state.2 = vec![state.3.len() / 2];
    resume(&mut t, "session: state stored as f16", &p.bytes(), "`state` should be");
    let mut p = Parts::of(&session);
    p.metadata.insert("has_logits".into(), "maybe".into());
    resume(&mut t, "session: has_logits not a boolean", &p.bytes(), "`has_logits` is `maybe`");
    let mut p = Parts::of(&session);
    p.metadata.insert("tokens_seen".into(), "-1".into());
    resume(&mut t, "session: negative token count", &p.bytes(), "`tokens_seen` is not a number");

    // --- Token files (`logits --input`).
    let logits = |t: &mut Table, name: &str, bytes: &[u8], message: &str| {
        let input = t.file(name, "tokens.safetensors", bytes);
        let out = t.output(name, "logits.safetensors");
        t.add(
            name,
            &[
                os("logits"),
                os("--model"),
                model.as_os_str(),
                os("--input"),
                input.as_os_str(),
                os("--output"),
                out.as_os_str(),
            ],
            1,
            message,
        );
    };
    logits(
        &mut t,
        "tokens: id beyond the vocabulary",
        &tokens_bytes(Dtype::I32, vec![1, 3], &i32_bytes(&[5, 260, 1])),
        "token id 260 (document 0, position 1) is not below the vocabulary size 260",
    );
    logits(
        &mut t,
        "tokens: negative id",
        &tokens_bytes(Dtype::I32, vec![1, 2], &i32_bytes(&[5, -3])),
        "token id -3 at index 1 is negative",
    );
    logits(
        &mut t,
        "tokens: float ids",
        &tokens_bytes(Dtype::F32, vec![1, 2], &f32_array(&[1.0, 2.0])),
        "it must be I32 or I64",
    );
    logits(&mut t, "tokens: no documents", &tokens_bytes(Dtype::I32, vec![0, 4], &[]), "empty input");
    logits(
        &mut t,
        "tokens: three dimensions",
        &tokens_bytes(Dtype::I32, vec![1, 1, 2], &i32_bytes(&[1, 2])),
        "it must be [documents, tokens]",
    );
    logits(
        &mut t,
        "tokens: shape overflowing usize",
        &raw_safetensors(r#"{"tokens":{"dtype":"I32","shape":[4294967296,4294967296],"data_offsets":[0,0]}}"#, &[]),
        "not a valid safetensors file",
    );
    let other = safetensors::tensor::TensorView::new(Dtype::I32, vec![1, 1], &[1, 0, 0, 0]).unwrap();
    logits(
        &mut t,
        "tokens: no `tokens` tensor",
        &safetensors::serialize([("ids", other)], None).unwrap(),
        "no tensor named `tokens`",
    );
    logits(&mut t, "tokens: cut short", &tokens_file[..tokens_file.len() - 2], "truncated or corrupt");

    // --- Text (`eval`).
    let eval = |t: &mut Table, name: &str, text: &[u8], tokenizer: &str, message: &str| {
        let input = t.file(name, "text", text);
        t.add(
            name,
            &[os("eval"), os("--model"), model.as_os_str(), input.as_os_str(), os("--tokenizer"), os(tokenizer)],
            1,
            message,
        );
    };
    eval(&mut t, "text: a word where an id should be", b"1 2 three 4", "ids", "`three` is not a token id");
    eval(
        &mut t,
        "text: an id beyond the vocabulary",
        b"1 2 999 4",
        "ids",
        "token id 999 is not below the model's vocabulary size 260",
    );
    eval(&mut t, "text: an id longer than any number", &[b'7'; 100_000], "ids", "is not a token id");
    eval(&mut t, "text: not UTF-8 for the ids tokenizer", b"1 2 \xff 4", "ids", "not UTF-8 (invalid byte at offset 4)");
    let tiny = t.shared(
        "tiny_vocab.safetensors",
        &brt::format::to_bytes(&random_weights(Config { vocab: 12, ..small_config() }, 3, WeightDtype::F32)).unwrap(),
    );
    let input = t.file("text: byte tokenizer with a 12-token model", "text", b"hello");
    t.add(
        "text: byte tokenizer with a 12-token model",
        &[os("eval"), os("--model"), tiny.as_os_str(), input.as_os_str()],
        1,
        "wrong tokenizer?",
    );
    t.add(
        "text: missing file",
        &[os("eval"), os("--model"), model.as_os_str(), missing.as_os_str()],
        1,
        "no such file",
    );
    t.add(
        "text: tokenizer.json that does not exist",
        &[os("eval"), os("--model"), model.as_os_str(), text.as_os_str(), os("--tokenizer"), missing.as_os_str()],
        1,
        "no-such-model",
    );

    // --- Flags.
    let with_model = |args: &[&str]| -> Vec<OsString> {
        let mut v: Vec<OsString> = args.iter().map(OsString::from).collect();
        let at = v.iter().position(|a| a == "MODEL").unwrap();
        v[at] = model.clone().into_os_string();
        v
    };
    let flags: Vec<(&str, Vec<OsString>, i32, &str)> = vec![
        (
            "flags: --chunk 0",
            with_model(&["eval", "--model", "MODEL", "--chunk", "0", text.to_str().unwrap()]),
            1,
            "--chunk must be positive",
        ),
        (
            "flags: --chunk -1",
            with_model(&["eval", "--model", "MODEL", "--chunk", "-1", text.to_str().unwrap()]),
            2,
            "unexpected argument '-1'",
        ),
        (
            "flags: --chunk beyond usize",
            with_model(&["eval", "--model", "MODEL", "--chunk", "99999999999999999999999", text.to_str().unwrap()]),
            2,
            "number too large",
        ),
        (
            "flags: --chunk of 2^40 tokens",
            with_model(&["eval", "--model", "MODEL", "--chunk", "1099511627776", text.to_str().unwrap()]),
            1,
            "exhausted",
        ),
        (
            "flags: --temperature NaN",
            with_model(&["generate", "--model", "MODEL", "hi", "--temperature", "NaN"]),
            1,
            "temperature must be 0 or positive, not NaN",
        ),
        (
            "flags: --temperature -1",
            with_model(&["generate", "--model", "MODEL", "hi", "--temperature=-1"]),
            1,
            "temperature must be 0 or positive",
        ),
        (
            "flags: --top-p 0",
            with_model(&["generate", "--model", "MODEL", "hi", "--top-p", "0"]),
            1,
            "top-p must be in (0, 1]",
        ),
        (
            "flags: --top-p 1.5",
            with_model(&["generate", "--model", "MODEL", "hi", "--top-p", "1.5"]),
            1,
            "top-p must be in (0, 1]",
        ),
        (
            "flags: --top-k not a number",
            with_model(&["generate", "--model", "MODEL", "hi", "--top-k", "many"]),
            2,
            "invalid digit",
        ),
        (
            "flags: unknown backend",
            with_model(&["generate", "--model", "MODEL", "hi", "--backend", "tpu"]),
            2,
            "unknown backend `tpu`",
        ),
        (
            "flags: backend not compiled in",
            with_model(&["generate", "--model", "MODEL", "hi", "--backend", "cuda"]),
            1,
            "not compiled into this brt",
        ),
        ("flags: no prompt", with_model(&["generate", "--model", "MODEL"]), 1, "give a prompt"),
        (
            "flags: unknown dtype",
            vec!["convert".into(), official_path.clone().into(), root.join("x").into(), "--dtype".into(), "f8".into()],
            2,
            "invalid value 'f8'",
        ),
        ("flags: unknown command", vec!["fly".into()], 2, "unrecognized subcommand 'fly'"),
        (
            "flags: train saving q8_0",
            vec![
                "train".into(),
                "--data".into(),
                text.clone().into(),
                "--holdout".into(),
                text.clone().into(),
                "--out".into(),
                root.join("never").into(),
                "--save-dtype".into(),
                "q8_0".into(),
            ],
            1,
            "--save-dtype q8_0: the trained model is saved as brt weights",
        ),
        (
            "flags: --save-session with two files",
            with_model(&[
                "eval",
                "--model",
                "MODEL",
                text.to_str().unwrap(),
                text.to_str().unwrap(),
                "--save-session",
                root.join("s").to_str().unwrap(),
            ]),
            1,
            "needs exactly one model and one file",
        ),
    ];
    for (name, args, code, message) in flags {
        let args: Vec<&OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        t.add(name, &args, code, message);
    }

    // --- Outputs that cannot be written: nothing appears, inputs stay.
    let folder = t.output("output: a folder", "out");
    std::fs::create_dir_all(&folder).unwrap();
    t.add("output: a folder", &[os("convert"), official_path.as_os_str(), folder.as_os_str()], 1, "Is a directory");
    let nowhere = t.output("output: in a missing folder", "missing/out.safetensors");
    t.add(
        "output: in a missing folder",
        &[os("convert"), official_path.as_os_str(), nowhere.as_os_str()],
        1,
        "No such file or directory",
    );
    let q8_weights = t.output("output: q8_0 as brt weights", "out.safetensors");
    t.add(
        "output: q8_0 as brt weights",
        &[os("convert"), official_path.as_os_str(), q8_weights.as_os_str(), os("--dtype"), os("q8_0")],
        1,
        "stored in model files only",
    );
    let file = t.file("output: below a file", "file", b"x");
    let below = file.join("out.safetensors");
    t.add("output: below a file", &[os("convert"), official_path.as_os_str(), below.as_os_str()], 1, "Not a directory");
    t.add(
        "output: the input itself",
        &[os("convert"), official_path.as_os_str(), official_path.as_os_str()],
        1,
        "same file",
    );
    t
}

/// Runs every case of `table`; returns the failures, and the table as Markdown
/// rows (case, command, exit status, message) with the folder's path left out.
fn run_table(table: &Table) -> (Vec<String>, Vec<String>) {
    let mut failures = Vec::new();
    let mut rows = Vec::new();
    let root = table.root.to_string_lossy().into_owned();
    for case in &table.cases {
        let before = snapshot(&table.root);
        let out = Command::new(program()).args(&case.args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let code = out.status.code();
        let after = snapshot(&table.root);
        let mut problems = Vec::new();
        if stderr.contains("panicked") {
            problems.push("panicked".to_string());
        }
        if code != Some(case.code) {
            problems.push(format!("exit status {code:?}, expected {}", case.code));
        }
        if !stderr.contains(&case.message) {
            problems.push(format!("message lacks `{}`", case.message));
        }
        let changed = changes(&before, &after);
        if !changed.is_empty() {
            problems.push(format!("files changed: {changed:?}"));
        }
        if !problems.is_empty() {
            failures.push(format!("{}: {}\n    stderr: {}", case.name, problems.join("; "), stderr.trim()));
        }
        let short = |text: &str| {
            let text = text.replace(&format!("{root}/shared/"), "").replace(&format!("{root}/{}/", case.name), "");
            text.replace(&format!("{root}/"), "").replace('|', "\\|")
        };
        let command: Vec<String> = case.args.iter().map(|a| short(&a.to_string_lossy())).collect();
        let message = stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        rows.push(format!(
            "| {} | `brt {}` | {} | {} |",
            case.name,
            command.join(" "),
            code.map_or("signal".into(), |c| c.to_string()),
            short(message.strip_prefix("error: ").unwrap_or(message))
        ));
    }
    (failures, rows)
}

/// Runs the table. With `BRT_BAD_INPUTS_TABLE=FILE`, also writes it as Markdown
/// rows to FILE (for docs/bad-inputs.md).
#[test]
fn every_bad_input_gets_its_error_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let table = build_table(dir.path());
    let (failures, rows) = run_table(&table);
    if let Some(path) = std::env::var_os("BRT_BAD_INPUTS_TABLE") {
        std::fs::write(path, rows.join("\n") + "\n").unwrap();
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), table.cases.len(), failures.join("\n"));
}

/// An output that is an input (by another spelling of its path, or a link) is
/// refused: writing it would replace the input.
#[test]
fn outputs_never_replace_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = Table::new(dir.path());
    let official_path = t.shared("official.msgpack", &checkpoint_bytes(&official_arrays(&official_weights(), true)));
    let model = t.shared("model.safetensors", &brt::format::to_bytes(&brt_weights()).unwrap());
    let tokens = t.shared("tokens.safetensors", &tokens_bytes(Dtype::I32, vec![1, 4], &i32_bytes(&[5, 9, 1, 3])));
    let text = t.shared("text.txt", b"Some text to score.\n");
    let dotted = official_path.parent().unwrap().join(".").join("official.msgpack");
    t.add(
        "output: the input by another path",
        &[os("convert"), official_path.as_os_str(), dotted.as_os_str()],
        1,
        "same file",
    );
    t.add(
        "output: logits over the token file",
        &[
            os("logits"),
            os("--model"),
            model.as_os_str(),
            os("--input"),
            tokens.as_os_str(),
            os("--output"),
            tokens.as_os_str(),
        ],
        1,
        "same file",
    );
    t.add(
        "output: logits over the model",
        &[
            os("logits"),
            os("--model"),
            model.as_os_str(),
            os("--input"),
            tokens.as_os_str(),
            os("--output"),
            model.as_os_str(),
        ],
        1,
        "same file",
    );
    t.add(
        "output: session over the model",
        &[os("eval"), os("--model"), model.as_os_str(), text.as_os_str(), os("--save-session"), model.as_os_str()],
        1,
        "same file",
    );
    #[cfg(unix)]
    {
        let link = dir.path().join("link.safetensors");
        std::os::unix::fs::symlink(&model, &link).unwrap();
        t.add(
            "output: session over the model through a symbolic link",
            &[os("generate"), os("--model"), model.as_os_str(), os("hello"), os("--save-session"), link.as_os_str()],
            1,
            "same file",
        );
    }
    let (failures, _) = run_table(&t);
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), t.cases.len(), failures.join("\n"));
}

/// Aligned bytes standing in for a mapped file.
struct Words(Vec<u64>);

impl AsRef<[u8]> for Words {
    fn as_ref(&self) -> &[u8] {
        bytemuck::cast_slice(&self.0)
    }
}

/// Every prefix of every kind of file is rejected with a message that says the
/// file is cut short (or empty), never a panic.
#[test]
fn files_cut_at_every_byte_are_rejected() {
    let official = checkpoint_bytes(&official_arrays(&official_weights(), true));
    for cut in 0..official.len() {
        let err = brt::meliad::import(&official[..cut], ImportOptions::default()).unwrap_err();
        assert!(err.contains("truncated"), "official checkpoint cut at {cut}: {err}");
    }
    let weights = brt_weights();
    let file = brt::format::to_bytes(&weights).unwrap();
    for cut in 0..file.len() {
        let err = brt::format::from_bytes(&file[..cut]).unwrap_err();
        assert!(err.contains("truncated"), "brt weights cut at {cut}: {err}");
    }
    let gguf = brt::gguf::to_bytes(&weights, None, weights.dtype()).unwrap();
    for cut in 4..gguf.len() {
        // Aligned like a mapping, as the weights are used in place.
        let mut words = vec![0u64; cut.div_ceil(8)];
        bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..cut].copy_from_slice(&gguf[..cut]);
        let bytes = brt_heap::SharedBytes::new(Words(words)).slice(0..cut).unwrap();
        let err = brt::gguf::MappedModel::from_bytes(bytes).unwrap_err();
        assert!(err.contains("cut short"), "model file cut at {cut}: {err}");
    }
    let session = session_bytes(&weights);
    let mut engine = Engine::new(Reference::new(Heap), &weights).unwrap();
    for cut in 0..session.len() {
        let err = brt::Session::from_bytes(&mut engine, &session[..cut], 4).unwrap_err().to_string();
        assert!(err.contains("truncated"), "session cut at {cut}: {err}");
    }
    let tokens = tokens_bytes(Dtype::I64, vec![2, 3], &[7u8; 48]);
    for cut in 0..tokens.len() {
        let err = brt::logits::tokens_from_bytes(&tokens[..cut]).unwrap_err();
        assert!(err.contains("truncated"), "token file cut at {cut}: {err}");
    }
}

/// The official test checkpoint cut at the start, the end and the middle of
/// every array it holds (its ext headers), through the library.
#[test]
fn the_official_checkpoint_cut_at_every_array_boundary() {
    let bytes = std::fs::read(case_dir("fixed_skip").join("checkpoint_0")).unwrap();
    // Arrays are ext type 1 (`c7/c8/c9 <length> 01 93`): find those headers.
    let mut offsets = vec![0, 1, bytes.len() - 1];
    for at in 0..bytes.len().saturating_sub(8) {
        let start = match bytes[at] {
            0xc7 => 2,
            0xc8 => 3,
            0xc9 => 5,
            _ => continue,
        };
        if bytes[at + start] == 1 && bytes[at + start + 1] == 0x93 {
            let len = bytes[at + 1..at + start].iter().fold(0usize, |a, &b| a << 8 | b as usize);
            offsets.extend([at, at + 1, at + start + 1, at + start + 1 + len / 2, at + start + len]);
        }
    }
    offsets.retain(|&o| o < bytes.len());
    assert!(offsets.len() > 500, "found only {} offsets", offsets.len());
    for cut in offsets {
        let err = brt::meliad::import(&bytes[..cut], ImportOptions::default()).unwrap_err();
        assert!(err.contains("truncated"), "official checkpoint cut at {cut}: {err}");
    }
}

/// A model whose write takes a while: `convert` writes about 13 MB of weights.
fn big_checkpoint(dir: &Path) -> PathBuf {
    let config = Config { vocab: 50_000, d_model: 64, ..official_config() };
    let path = dir.join("big.msgpack");
    std::fs::write(&path, checkpoint_bytes(&official_arrays(&random_weights(config, 1, WeightDtype::F32), true)))
        .unwrap();
    path
}

/// Files in `dir` other than `keep`.
fn others(dir: &Path, keep: &[&Path]) -> Vec<PathBuf> {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).filter(|p| !keep.contains(&p.as_path())).collect()
}

/// A write that fails half way (the file size limit `ulimit -f` is reached, with
/// SIGXFSZ ignored so that the write returns an error) reports the error, leaves
/// no output and removes its temporary file.
#[test]
fn a_failed_write_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let input = big_checkpoint(dir.path());
    let before = std::fs::read(&input).unwrap();
    let out = dir.path().join("out.safetensors");
    let script = "trap '' XFSZ; ulimit -f 1024; exec \"$0\" convert \"$1\" \"$2\"";
    let run = Command::new("sh").args(["-c", script]).arg(brt_bin()).arg(&input).arg(&out).output().unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("File too large"), "{stderr}");
    assert!(!out.exists(), "a partial output is visible");
    assert_eq!(others(dir.path(), &[&input]), Vec::<PathBuf>::new(), "leftover files");
    assert_eq!(std::fs::read(&input).unwrap(), before, "the input changed");
}

/// A process killed while writing (by SIGXFSZ at the size limit, in the middle
/// of its write) leaves no output under the destination's name. Its temporary
/// file, `.NAME.PID.tmp`, stays behind: nothing can remove it at that point.
#[test]
fn a_write_killed_half_way_leaves_no_output() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let input = big_checkpoint(dir.path());
    let before = std::fs::read(&input).unwrap();
    let out = dir.path().join("out.safetensors");
    let script = "ulimit -f 1024; exec \"$0\" convert \"$1\" \"$2\"";
    let run = Command::new("sh").args(["-c", script]).arg(brt_bin()).arg(&input).arg(&out).output().unwrap();
    assert_eq!(run.status.signal(), Some(25), "killed by SIGXFSZ: {:?}", run.status);
    assert!(!out.exists(), "a partial output is visible");
    let left = others(dir.path(), &[&input]);
    assert_eq!(left.len(), 1, "one temporary file: {left:?}");
    let name = left[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with(".out.safetensors.") && name.ends_with(".tmp"), "{name}");
    let size = std::fs::metadata(&left[0]).unwrap().len();
    assert!(size > 0 && size <= 1 << 20, "cut at the limit of 1024 blocks: {size} bytes");
    assert_eq!(std::fs::read(&input).unwrap(), before, "the input changed");
}

/// `kill -9` as soon as the temporary file appears: the destination never holds
/// a partial file (an earlier output stays as it was, or the new one is whole).
#[test]
fn kill_9_during_the_write_leaves_the_old_output() {
    let dir = tempfile::tempdir().unwrap();
    let input = big_checkpoint(dir.path());
    let before = std::fs::read(&input).unwrap();
    let out = dir.path().join("out.safetensors");
    std::fs::write(&out, b"an earlier output").unwrap();
    let mut child = Command::new(brt_bin()).arg("convert").arg(&input).arg(&out).spawn().unwrap();
    let started = std::time::Instant::now();
    let caught = loop {
        let temporary = others(dir.path(), &[&input, &out]);
        if !temporary.is_empty() {
            child.kill().unwrap(); // SIGKILL
            break true;
        }
        if child.try_wait().unwrap().is_some() || started.elapsed().as_secs() > 60 {
            break false;
        }
        std::thread::sleep(std::time::Duration::from_micros(100));
    };
    let status = child.wait().unwrap();
    assert!(caught, "the write finished before it could be interrupted ({status:?}); make the model bigger");
    // The kill lands while the temporary file is written, so the destination
    // keeps its earlier content; if the rename won the race, it holds the whole
    // new file. Never anything partial.
    let now = std::fs::read(&out).unwrap();
    assert!(
        now == b"an earlier output" || brt::format::from_bytes(&now).is_ok(),
        "the destination holds {} bytes of neither the old nor a whole new file",
        now.len()
    );
    assert_eq!(std::fs::read(&input).unwrap(), before, "the input changed");
}
