//! Official Meliad checkpoints (SPEC section 8): read the flax msgpack file
//! directly, infer the whole configuration from the parameter paths, shapes and
//! cached keys, and map every parameter onto the core's layout.

use crate::error::{Error, Result};
use crate::msgpack::{read_arrays, ArrayDtype, Arrays, RawArray};
use crate::weights::{param_name, ModelWeights, WeightBuffer};
use brt_core::half::{bf16, f16};
use brt_core::{Config, GateKind, GateSite, LayerParam, LayerSet, Param, StateLayout, WeightLayout};
use std::collections::BTreeSet;
use std::path::Path;

const PARAMS: &str = "optimizer/target/decoder/";
const CACHES: &str = "state/state/decoder/";

/// Choices an official checkpoint cannot tell.
///
/// By default, scales are used as they are and the window is read from the
/// checkpoint's cached keys; a window given explicitly overrides it:
///
/// ```
/// use brt::meliad::{import_file, ImportOptions};
/// let path = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/meliad/fixed_skip/checkpoint_0"));
/// assert_eq!(import_file(path, ImportOptions::default())?.config().window, 16);
/// let options = ImportOptions { window: Some(8), abs_attention_scale: true };
/// let config = *import_file(path, options)?.config();
/// assert_eq!(config.window, 8);
/// assert!(config.abs_attention_scale);
/// # Ok::<(), brt::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct ImportOptions {
    /// Use `abs(a)` on learned attention scales, as later official code does.
    pub abs_attention_scale: bool,
    /// The window `W`, when the checkpoint carries no cached keys to read it from.
    pub window: Option<usize>,
}

/// Whether `bytes` look like a msgpack checkpoint (a map at the top).
///
/// ```
/// use brt::meliad::looks_like_checkpoint;
/// let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/meliad/fixed_skip/checkpoint_0"))?;
/// assert!(looks_like_checkpoint(&bytes));
/// assert!(!looks_like_checkpoint(brt::default_model::DEFAULT_MODEL));
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn looks_like_checkpoint(bytes: &[u8]) -> bool {
    matches!(bytes.first(), Some(0x80..=0x8f | 0xde | 0xdf))
}

/// The official path of a parameter, below `optimizer/target/decoder/`.
///
/// ```
/// use brt::meliad::official_path;
/// use brt_core::{LayerParam, Param};
/// assert_eq!(official_path(Param::Embedding), "embed/embedding");
/// assert_eq!(official_path(Param::Layer(2, LayerParam::Query)), "transformer2/tbase/_kvq/queries_layer/kernel");
/// ```
pub fn official_path(param: Param) -> String {
    use GateSite::Attention;
    use LayerParam::*;
    let (layer, p) = match param {
        Param::Embedding => return "embed/embedding".into(),
        Param::FinalNorm => return "final_layernorm/scale".into(),
        Param::Layer(l, p) => (l, p),
    };
    let site = |s: GateSite| if s == Attention { "post_attn_mlp" } else { "ffn" };
    let tail = match p {
        AttnNorm => "tbase/_kvq/pre_attn_layernorm/scale".into(),
        Query => "tbase/_kvq/queries_layer/kernel".into(),
        Key => "tbase/_kvq/keys_layer/kernel".into(),
        Value => "tbase/_kvq/values_layer/kernel".into(),
        AttnScale => "tbase/_kvq/attention_scale".into(),
        RelBias => "relative_positions/rel_embedding".into(),
        Query2 => "tbase/_kvq/queries2_layer/kernel".into(),
        AttnScale2 => "tbase/attention_scale2".into(),
        Out => "tbase/post_attn_mlp/output_layer/kernel".into(),
        MlpNorm => "tbase/pre_ffn_layernorm/scale".into(),
        MlpIn => "tbase/ffn/hidden0/kernel".into(),
        MlpOut => "tbase/ffn/output_layer/kernel".into(),
        InitialState => "recurrent_initial_state".into(),
        StateNorm => "recurrent_tbase/_kvq/pre_attn_layernorm/scale".into(),
        StateIds => "recurrent_tbase/_kvq/position_embeddings".into(),
        StateQuery => "recurrent_tbase/_kvq/queries_layer/kernel".into(),
        StateKey => "recurrent_tbase/_kvq/keys_layer/kernel".into(),
        StateValue => "recurrent_tbase/_kvq/values_layer/kernel".into(),
        StateQuery2 => "recurrent_tbase/_kvq/queries2_layer/kernel".into(),
        StateScale => "recurrent_tbase/_kvq/attention_scale".into(),
        StateScale2 => "recurrent_tbase/attention_scale2".into(),
        StateOut => "recurrent_tbase/post_attn_mlp/output_layer/kernel".into(),
        StateMlpNorm => "recurrent_tbase/pre_ffn_layernorm/scale".into(),
        StateMlpIn => "recurrent_tbase/ffn/hidden0/kernel".into(),
        StateMlpOut => "recurrent_tbase/ffn/output_layer/kernel".into(),
        GateBias(s) => format!("recurrent_tbase/{}/gate_bias", site(s)),
        InputGateKernel(s) => format!("recurrent_tbase/{}/input_gate/kernel", site(s)),
        InputGateBias(s) => format!("recurrent_tbase/{}/input_gate/bias", site(s)),
        ForgetGateKernel(s) => format!("recurrent_tbase/{}/forget_gate/kernel", site(s)),
        ForgetGateBias(s) => format!("recurrent_tbase/{}/forget_gate/bias", site(s)),
    };
    format!("transformer{layer}/{tail}")
}

/// Reads an official checkpoint file.
///
/// The official test case is recurrent in layer 2 of 4, with 8 states; an error
/// names the file:
///
/// ```
/// use brt::meliad::{import_file, ImportOptions};
/// let path = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/meliad/fixed_skip/checkpoint_0"));
/// let model = import_file(path, ImportOptions::default())?;
/// assert_eq!((model.config().layers, model.config().states), (4, 8));
/// assert!(model.config().is_recurrent(2));
/// let missing = std::path::Path::new("no-such-checkpoint");
/// assert!(import_file(missing, ImportOptions::default()).unwrap_err().to_string().contains("no-such-checkpoint"));
/// # Ok::<(), brt::Error>(())
/// ```
pub fn import_file(path: &Path, options: ImportOptions) -> Result<ModelWeights> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    import(&bytes, options).map_err(|message| Error::format(path, message))
}

/// Reads an official checkpoint from its bytes; the error says what is wrong.
///
/// A checkpoint cut short, or a map with no decoder parameters, is refused:
///
/// ```
/// use brt::meliad::{import, ImportOptions};
/// let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/meliad/fixed_skip/checkpoint_0"))?;
/// assert_eq!(import(&bytes, ImportOptions::default())?.config().vocab, 260);
/// assert!(import(&bytes[..bytes.len() / 2], ImportOptions::default()).is_err());
/// assert!(import(&[0x80], ImportOptions::default()).unwrap_err().contains("no parameters"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn import(bytes: &[u8], options: ImportOptions) -> Result<ModelWeights, String> {
    let arrays = read_arrays(bytes).map_err(|e| format!("not a readable Meliad checkpoint: {e}"))?;
    let params: Arrays<'_> =
        arrays.iter().filter_map(|(k, v)| k.strip_prefix(PARAMS).map(|p| (p.to_string(), v.clone()))).collect();
    if params.is_empty() {
        return Err(format!("no parameters under `{PARAMS}`: not a Meliad decoder checkpoint"));
    }
    let config = infer_config(&arrays, &params, options)?;
    config.validate().map_err(|e| format!("inferred configuration is invalid: {e}"))?;
    let layout = WeightLayout::new(&config).map_err(|e| e.to_string())?;

    let mut expected = BTreeSet::new();
    let dtypes: BTreeSet<_> = params.values().map(|a| a.dtype).collect();
    let storage = match dtypes.iter().collect::<Vec<_>>().as_slice() {
        [ArrayDtype::F16] => ArrayDtype::F16,
        [ArrayDtype::Bf16] => ArrayDtype::Bf16,
        _ => ArrayDtype::F32,
    };
    // Every parameter is found with its shape before anything is allocated, so the
    // buffer is never larger than the arrays the file really holds (a size read
    // from an empty array, e.g. a `[0, n]` kernel, could claim anything).
    let mut found = Vec::with_capacity(params.len());
    for spec in layout.params() {
        let path = official_path(spec.param);
        let array = params.get(&path).ok_or_else(|| {
            format!("missing parameter `{path}` ({} of the inferred configuration)", param_name(spec.param))
        })?;
        let want: Vec<usize> =
            if spec.param.is_vector() { vec![spec.span.cols] } else { vec![spec.span.rows, spec.span.cols] };
        if array.shape != want {
            return Err(format!("parameter `{path}` has shape {:?}, expected {want:?}", array.shape));
        }
        found.push((path, array));
    }
    let mut flat = Vec::with_capacity(layout.len());
    for (path, array) in found {
        let values = array.to_f32().ok_or_else(|| format!("parameter `{path}` is not a float array"))?;
        flat.extend(values);
        expected.insert(path);
    }
    if let Some(extra) = params.keys().find(|k| !expected.contains(*k)) {
        return Err(format!(
            "unexpected parameter `{extra}`: this checkpoint has a part brt does not implement \
             (only the Block-Recurrent Transformer of Meliad e8af054 is supported)"
        ));
    }
    let buffer = match storage {
        ArrayDtype::F16 => WeightBuffer::F16(flat.iter().map(|&x| f16::from_f32(x)).collect()),
        ArrayDtype::Bf16 => WeightBuffer::Bf16(flat.iter().map(|&x| bf16::from_f32(x)).collect()),
        _ => WeightBuffer::F32(flat),
    };
    ModelWeights::new(config, buffer).map_err(|e| e.to_string())
}

fn shape<'p>(params: &'p Arrays<'_>, path: &str) -> Option<&'p [usize]> {
    params.get(path).map(|a: &RawArray<'_>| a.shape.as_slice())
}

fn need<'p>(params: &'p Arrays<'_>, path: &str) -> Result<&'p [usize], String> {
    shape(params, path).ok_or_else(|| format!("missing parameter `{path}`"))
}

fn dims<const N: usize>(params: &Arrays<'_>, path: &str) -> Result<[usize; N], String> {
    let s = need(params, path)?;
    s.try_into().map_err(|_| format!("parameter `{path}` has shape {s:?}, expected {N} dimensions"))
}

fn infer_config(arrays: &Arrays<'_>, params: &Arrays<'_>, options: ImportOptions) -> Result<Config, String> {
    let [vocab, d_model] = dims(params, "embed/embedding")?;
    // Layer numbers in one pass over the paths (a hostile file can hold many
    // thousands of them; probing each number against every path would be quadratic).
    let numbers: BTreeSet<usize> = params
        .keys()
        .filter_map(|k| {
            let digits = k.strip_prefix("transformer")?.split_once('/')?.0;
            let n: usize = digits.parse().ok()?;
            (n.to_string() == digits).then_some(n)
        })
        .collect();
    let layers = (0..).take_while(|l| numbers.contains(l)).count();
    if layers == 0 {
        return Err("no `transformer0/...` layer in the checkpoint".into());
    }
    let [heads] = dims(params, "transformer0/tbase/_kvq/attention_scale")?;
    let [_, qkv] = dims(params, "transformer0/tbase/_kvq/keys_layer/kernel")?;
    if heads == 0 {
        return Err("`transformer0/tbase/_kvq/attention_scale` is empty: a model needs at least one head".into());
    }
    if qkv % heads != 0 {
        return Err(format!("key width {qkv} is not a multiple of {heads} heads"));
    }
    let [_, mlp_hidden] = dims(params, "transformer0/tbase/ffn/hidden0/kernel")?;
    let recurrent: Vec<i64> = (0..layers)
        .filter(|l| params.contains_key(&format!("transformer{l}/recurrent_initial_state")))
        .map(|l| l as i64)
        .collect();
    let recurrent = LayerSet::from_indices(&recurrent, layers).map_err(|e| e.to_string())?;
    let mut states = 0;
    let mut gate = GateKind::Fixed;
    let mut layout = StateLayout::Skip;
    if let Some(first) = recurrent.iter().next() {
        let base = format!("transformer{first}/recurrent_tbase");
        states = dims::<2>(params, &format!("transformer{first}/recurrent_initial_state"))?[0];
        let has = |p: &str| params.keys().any(|k| k.starts_with(&format!("{base}/{p}")));
        layout = match (has("post_attn_mlp/output_layer"), has("ffn/output_layer")) {
            (true, false) => StateLayout::Skip,
            (true, true) => StateLayout::Dual,
            (false, true) => StateLayout::Single,
            (false, false) => return Err(format!("recurrent layer {first} has neither `post_attn_mlp` nor `ffn`")),
        };
        gate = if has("post_attn_mlp/gate_bias") || has("ffn/gate_bias") {
            GateKind::Fixed
        } else if has("post_attn_mlp/input_gate") || has("ffn/input_gate") {
            GateKind::Lstm
        } else {
            return Err(format!("recurrent layer {first}: no `gate_bias` or `input_gate`; gates `residual` and `full` are not supported"));
        };
    }
    let feedback = (0..layers).any(|l| {
        !recurrent.contains(l) && params.contains_key(&format!("transformer{l}/tbase/_kvq/queries2_layer/kernel"))
    });
    let window = match options.window {
        Some(w) => w,
        None => {
            let cached = arrays
                .iter()
                .find(|(k, _)| k.starts_with(CACHES) && k.ends_with("previous_keys_test"))
                .or_else(|| arrays.iter().find(|(k, _)| k.starts_with(CACHES) && k.contains("previous_keys")));
            match cached {
                // An empty array (a zero dimension) holds no data to back its window.
                Some((_, a)) if a.shape.len() == 4 && !a.shape.contains(&0) => a.shape[1],
                Some((path, a)) => {
                    return Err(format!(
                        "cached keys `{path}` have shape {:?}, expected (B, W, H, dh) with no zero dimension",
                        a.shape
                    ))
                }
                None => return Err(
                    "the checkpoint has no cached keys to read the window from; give the window explicitly (--window)"
                        .into(),
                ),
            }
        }
    };
    Ok(Config {
        vocab,
        d_model,
        heads,
        head_dim: qkv / heads,
        mlp_hidden,
        layers,
        window,
        states,
        recurrent,
        linear: LayerSet::EMPTY,
        gate,
        layout,
        feedback,
        abs_attention_scale: options.abs_attention_scale,
    })
}
