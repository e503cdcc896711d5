//! Whole layers and whole models against the reference, for every variant of the
//! configuration: gates fixed and LSTM, layouts skip, single and dual, feedback,
//! several recurrent layers, linear attention.
//!
//! Weights come from the official-style initialisation, then are perturbed the
//! way trained Meliad checkpoints look (norm scales partly negative, attention
//! scales in [0.5, 8], gate biases shifted) and rounded to the backend's storage
//! type. A document is streamed in several calls that end anywhere inside a
//! block, with document resets at block boundaries; the logits of every call and
//! the carried state at the end are compared with the reference's.

use crate::backend::Backend;
use crate::failure::Failure;
use crate::gen::{seed, Rng};
use crate::io::{call, read_state, round_to, with_weight_data};
use crate::runner::{run_cases, Options};
use crate::tolerance::{compare, conditioned, tolerance, Check, Tolerance, NUDGE};
use brt_core::init::initialize;
use brt_core::{
    Config, GateKind, Kernels, LayerParam, LayerSet, Model, Param, Plan, Reference, StateLayout, Stream, WeightDtype,
    WeightLayout,
};
use brt_cpu::Heap;
use proptest::prelude::*;
use std::cell::RefCell;

/// Which kind of stack a case draws.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// No recurrent layer ("Slide"), 1 to 3 layers.
    Plain,
    /// One recurrent layer with this gate and layout among 1 to 3 layers.
    Recurrent(GateKind, StateLayout),
    /// Feedback mode, 2 or 3 layers, one recurrent.
    Feedback,
    /// Two recurrent layers among 2 or 3, each with its own state.
    TwoRecurrent,
    /// Some layers with linear attention (plain or recurrent).
    Linear,
    /// A single layer of any kind: a whole layer on its own.
    OneLayer,
    /// Any of the above.
    Any,
}

/// A model and a document stream: the configuration, the batch, the calls.
#[derive(Clone, Debug)]
pub struct ModelCase {
    /// The configuration.
    pub config: Config,
    /// Batch rows.
    pub batch: usize,
    /// Tokens per row of each call.
    pub calls: Vec<usize>,
    /// Document resets of each call (empty: none). Only at block boundaries,
    /// unless every row resets.
    pub resets: Vec<Vec<bool>>,
    /// Seed of the weights and the tokens.
    pub seed: u64,
}

/// Sizes drawn for a configuration.
#[derive(Clone, Copy, Debug)]
struct Dims {
    vocab: usize,
    d_model: usize,
    heads: usize,
    head_dim: usize,
    mlp_hidden: usize,
    window: usize,
    states: usize,
}

/// Mostly tiny models (edge sizes: one head, dh = 2, `H*dh != d`, W = 1, S = 1,
/// odd V), one in four wide enough for vector loops and their tails (d up to 40,
/// head widths up to 17, F up to 64), and one in 32 with long blocks
/// (W up to 70, S up to 24).
fn dims() -> impl Strategy<Value = Dims> {
    // Head widths from 2: with dh = 1 the l2 normalisation of a query or key is a
    // sign function, and rounding noise near zero flips whole keys in any
    // implementation. The kernel checks cover dh = 1.
    // Widths from 4 for the same reason: with d = 1 or 2 the RMS norm of a row
    // near zero is nearly a sign function too, and the logits inherit it.
    let small = (2usize..=33, 4usize..=12, 1usize..=3, prop_oneof![4 => 2usize..=6, 1 => 7usize..=9], 1usize..=16);
    let wide = (17usize..=67, 13usize..=40, 1usize..=4, 5usize..=17, 17usize..=64);
    let sizes = prop_oneof![3 => small, 1 => wide];
    // Short windows mostly (calls of up to 2W + 1 tokens cross block ends often),
    // and one case in 32 long enough to cross every backend's blocking with
    // a whole model: calls of up to 261 tokens (the CPU's 64-token linear chunks,
    // its 192-query attention tiles, products past 144 rows with the batch), and
    // up to 130 cached keys of a layer plus the call's (past the CPU's 384-key
    // tiles).
    let blocks = prop_oneof![31 => (1usize..=4, 1usize..=4), 1 => (17usize..=130, 5usize..=24)];
    (sizes, blocks).prop_map(|((vocab, d_model, heads, head_dim, mlp_hidden), (window, states))| Dims {
        vocab,
        d_model,
        heads,
        head_dim,
        mlp_hidden,
        window,
        states,
    })
}

fn gate() -> impl Strategy<Value = GateKind> {
    prop_oneof![Just(GateKind::Fixed), Just(GateKind::Lstm)]
}

fn layout() -> impl Strategy<Value = StateLayout> {
    prop_oneof![Just(StateLayout::Skip), Just(StateLayout::Single), Just(StateLayout::Dual)]
}

/// The layer structure of a variant: (layers, recurrent, linear, feedback).
fn structure(variant: Variant) -> BoxedStrategy<(usize, LayerSet, LayerSet, bool)> {
    let set = |bits: u32, layers: usize| LayerSet::from_bits((bits as u128) & ((1u128 << layers) - 1));
    match variant {
        Variant::Plain => (1usize..=3).prop_map(|l| (l, LayerSet::EMPTY, LayerSet::EMPTY, false)).boxed(),
        Variant::Recurrent(..) => (1usize..=3)
            .prop_flat_map(|l| (Just(l), 0..l))
            .prop_map(|(l, r)| (l, LayerSet::EMPTY.with(r), LayerSet::EMPTY, false))
            .boxed(),
        Variant::Feedback => (2usize..=3)
            .prop_flat_map(|l| (Just(l), 0..l))
            .prop_map(|(l, r)| (l, LayerSet::EMPTY.with(r), LayerSet::EMPTY, true))
            .boxed(),
        Variant::TwoRecurrent => (2usize..=3)
            .prop_flat_map(|l| (Just(l), 0..l, 0..l - 1, any::<bool>()))
            .prop_map(|(l, a, b, feedback)| {
                let b = if b >= a { b + 1 } else { b };
                (l, LayerSet::EMPTY.with(a).with(b), LayerSet::EMPTY, feedback)
            })
            .boxed(),
        Variant::Linear => (1usize..=3)
            .prop_flat_map(move |l| (Just(l), 1u32..(1 << l), any::<u32>(), prop::bool::weighted(0.4)))
            .prop_map(move |(l, linear, rec, with_recurrent)| {
                let recurrent = if with_recurrent { LayerSet::EMPTY.with(rec as usize % l) } else { LayerSet::EMPTY };
                (l, recurrent, set(linear, l), false)
            })
            .boxed(),
        Variant::OneLayer => prop_oneof![
            Just((1, LayerSet::EMPTY, LayerSet::EMPTY, false)),
            Just((1, LayerSet::EMPTY.with(0), LayerSet::EMPTY, false)),
            Just((1, LayerSet::EMPTY, LayerSet::EMPTY.with(0), false)),
            Just((1, LayerSet::EMPTY.with(0), LayerSet::EMPTY.with(0), false)),
        ]
        .boxed(),
        Variant::Any => prop_oneof![
            structure(Variant::Plain),
            structure(Variant::Recurrent(GateKind::Fixed, StateLayout::Skip)),
            structure(Variant::Feedback),
            structure(Variant::TwoRecurrent),
            structure(Variant::Linear),
        ]
        .boxed(),
    }
}

/// Model cases of `variant`: sizes, structure, batch rows in `batch`, and up to
/// `max_calls` calls of up to `2W + 1` tokens per row.
pub(crate) fn model_case(
    variant: Variant,
    batch: std::ops::RangeInclusive<usize>,
    max_calls: usize,
) -> impl Strategy<Value = ModelCase> {
    let gate_layout = match variant {
        Variant::Recurrent(g, l) => (Just(g), Just(l)).boxed(),
        _ => (gate(), layout()).boxed(),
    };
    (dims(), structure(variant), gate_layout, any::<bool>(), batch, seed())
        .prop_flat_map(move |(d, (layers, recurrent, linear, feedback), (gate, layout), abs, batch, seed)| {
            let config = Config {
                vocab: d.vocab,
                d_model: d.d_model,
                heads: d.heads,
                head_dim: d.head_dim,
                mlp_hidden: d.mlp_hidden,
                layers,
                window: d.window,
                states: d.states,
                recurrent,
                linear,
                gate,
                layout,
                feedback,
                abs_attention_scale: abs,
            };
            let calls = prop::collection::vec(1..=2 * d.window + 1, 1..=max_calls);
            let resets = prop::collection::vec(any::<u8>(), max_calls);
            (Just(config), Just(batch), calls, resets, Just(seed))
        })
        .prop_map(|(config, batch, calls, reset_bits, seed)| {
            let resets = legal_resets(&config, batch, &calls, &reset_bits);
            ModelCase { config, batch, calls, resets, seed }
        })
}

/// Turns random bits into resets the stream accepts: none on the first call (the
/// stream starts fresh), any rows at block boundaries, elsewhere all or none (all
/// rows starting over also starts a new block).
pub(crate) fn legal_resets(config: &Config, batch: usize, calls: &[usize], bits: &[u8]) -> Vec<Vec<bool>> {
    let mut position = 0;
    let mut resets = Vec::with_capacity(calls.len());
    for (c, &n) in calls.iter().enumerate() {
        let b = bits.get(c).copied().unwrap_or(0);
        let rows: Vec<bool> = (0..batch).map(|r| b & (1 << r) != 0).collect();
        let any = rows.iter().any(|&r| r);
        let flags = if c == 0 || !any || b & 0x80 == 0 {
            // Most calls continue every document.
            Vec::new()
        } else if position % config.window == 0 {
            rows
        } else if b & 0x40 != 0 {
            vec![true; batch]
        } else {
            Vec::new()
        };
        if !flags.is_empty() && flags.iter().all(|&r| r) {
            // Every row starting over starts a new block too.
            position = 0;
        }
        resets.push(flags);
        position += n;
    }
    resets
}

impl ModelCase {
    /// Token ids of each call, position-major (`T x B`).
    pub fn tokens(&self) -> Vec<Vec<u32>> {
        let mut rng = Rng::new(self.seed ^ 0x746f_6b65_6e73);
        self.calls.iter().map(|&n| rng.tokens(n * self.batch, self.config.vocab)).collect()
    }

    /// Tokens per row of the longest call.
    pub fn max_call(&self) -> usize {
        self.calls.iter().copied().max().unwrap_or(1).max(1)
    }

    /// The flat parameters, perturbed like a trained model and rounded to `dtype`.
    pub fn weights(&self, dtype: WeightDtype) -> Result<Vec<f32>, Failure> {
        model_weights(&self.config, self.seed, dtype)
    }
}

/// Official-style initial weights of `config`, perturbed like a trained Meliad
/// model (norm scales partly negative, attention scales in [0.5, 8], gate biases
/// shifted), rounded to `dtype`.
pub fn model_weights(config: &Config, seed: u64, dtype: WeightDtype) -> Result<Vec<f32>, Failure> {
    let layout = WeightLayout::new(config)?;
    let mut flat = vec![0f32; layout.len()];
    initialize(config, seed, &mut flat)?;
    let mut rng = Rng::new(seed ^ 0x0070_6572_7475_7262);
    for spec in layout.params() {
        let values = &mut flat[spec.offset..spec.offset + spec.span.len()];
        use LayerParam::*;
        match spec.param {
            Param::FinalNorm | Param::Layer(_, AttnNorm | MlpNorm | StateNorm | StateMlpNorm) => {
                for v in values {
                    let sign = if rng.chance(0.25) { -1.0 } else { 1.0 };
                    *v = sign * rng.uniform(0.5, 2.0);
                }
            }
            Param::Layer(_, AttnScale | AttnScale2 | StateScale | StateScale2) => {
                for v in values {
                    let sign = if config.abs_attention_scale && rng.chance(0.3) { -1.0 } else { 1.0 };
                    *v = sign * rng.uniform(0.5, 8.0);
                }
            }
            Param::Layer(_, GateBias(_) | InputGateBias(_) | ForgetGateBias(_)) => {
                for v in values {
                    *v += rng.uniform(-2.0, 2.0);
                }
            }
            _ => {}
        }
    }
    round_to(dtype, &mut flat);
    Ok(flat)
}

/// A model of `config` on `k` with parameters `flat` stored as `dtype`.
pub fn upload_model<K: Kernels>(
    k: &mut K,
    config: &Config,
    flat: &[f32],
    dtype: WeightDtype,
) -> Result<Model<K>, Failure> {
    call("Model::from_flat", with_weight_data(dtype, flat, |data| Model::from_flat(k, config, dtype, data)))
}

/// What a streamed document produced: the logits of every call and the carried
/// state at the end.
pub struct Streamed {
    /// Logits of each call, `T x B x V`.
    pub logits: Vec<Vec<f32>>,
    /// The stream state after the last call (layout of the plan).
    pub state: Vec<f32>,
}

/// Streams `tokens` (one entry per call) through `model` with `resets`, in a
/// stream planned for `max_tokens` tokens per call.
pub fn stream_document<K: Kernels>(
    k: &mut K,
    model: &Model<K>,
    batch: usize,
    max_tokens: usize,
    tokens: &[Vec<u32>],
    resets: &[Vec<bool>],
) -> Result<Streamed, Failure> {
    stream_planned(k, model, Plan::new(model.config(), batch, max_tokens)?, tokens, resets)
}

/// [`stream_document`] in a stream of `plan` (one with a KV runway, say).
pub fn stream_planned<K: Kernels>(
    k: &mut K,
    model: &Model<K>,
    plan: Plan,
    tokens: &[Vec<u32>],
    resets: &[Vec<bool>],
) -> Result<Streamed, Failure> {
    let config = *model.config();
    let mut stream = call("Stream::new", Stream::new(k, model, plan))?;
    let mut logits = Vec::with_capacity(tokens.len());
    for (c, ids) in tokens.iter().enumerate() {
        let flags = resets.get(c).map_or(&[][..], |r| &r[..]);
        call("Stream::forward", stream.forward(k, model, ids, flags))?;
        let mut out = vec![0f32; ids.len() * config.vocab];
        call("Stream::read_logits", stream.read_logits(k, &mut out))?;
        logits.push(out);
    }
    let state = read_state(k, &stream)?;
    Ok(Streamed { logits, state })
}

/// Streams `case`'s document (`tokens`, its calls) on `k` through a model of the
/// parameters `flat` stored as `dtype`.
pub fn run_case<K: Kernels>(
    k: &mut K,
    case: &ModelCase,
    flat: &[f32],
    dtype: WeightDtype,
    tokens: &[Vec<u32>],
) -> Result<Streamed, Failure> {
    let model = upload_model(k, &case.config, flat, dtype)?;
    stream_document(k, &model, case.batch, case.max_call(), tokens, &case.resets)
}

/// Runs model cases of `variant` on the backend and the reference and compares
/// every call's logits and the carried state at the end, each within the
/// tolerance its own conditioning allows ([`conditioned`]).
fn against_reference<B: Backend>(
    k: &mut B::Kernels,
    options: &Options,
    name: &'static str,
    variant: Variant,
    cases: u32,
) -> Result<(), Failure> {
    let dtype = B::weight_dtype();
    let floor = tolerance(Check::Model, dtype);
    let k = RefCell::new(k);
    run_cases(name, cases, options, model_case(variant, 1..=3, 4), |case| {
        let (flat, tokens) = (case.weights(dtype)?, case.tokens());
        let got = run_case(&mut **k.borrow_mut(), case, &flat, dtype, &tokens)?;
        let (want, nudged) =
            reference_conditioning(&case.config, case.seed, (&flat, dtype), case.batch, &tokens, &case.resets)?;
        for (c, ((g, w), n)) in got.logits.iter().zip(&want.logits).zip(&nudged.logits).enumerate() {
            compare(&format!("logits of call {c}"), g, w, conditioned(floor, w, n))?;
        }
        compare_state(&case.config, case.batch, &got.state, &want.state, &nudged.state, floor)
    })
}

/// The reference's results for a document of `tokens` on `batch` rows (with
/// `resets`) through the parameters `flat` stored as `dtype`, and the same with
/// every weight nudged: each result's conditioning, for [`conditioned`]. The
/// model checks use it, and so do the properties comparing a backend with
/// itself under other call shapes:
/// each of the two runs is within the growth [`conditioned`] measures of the
/// exact result, so their difference is within twice that, which its margin
/// covers (the measured growth is a fifth of what it allows).
pub(crate) fn reference_conditioning(
    config: &Config,
    seed: u64,
    (flat, dtype): (&[f32], WeightDtype),
    batch: usize,
    tokens: &[Vec<u32>],
    resets: &[Vec<bool>],
) -> Result<(Streamed, Streamed), Failure> {
    let max_call = tokens.iter().map(|ids| ids.len() / batch).max().unwrap_or(1).max(1);
    let mut reference = Reference::new(Heap);
    let model = upload_model(&mut reference, config, flat, dtype)?;
    let want = stream_document(&mut reference, &model, batch, max_call, tokens, resets)?;
    // The nudged weights are stored as f32, which keeps the nudge (the
    // reference computes in f64 either way): how far a small relative change
    // of the inputs moves each result.
    let model = upload_model(&mut reference, config, &nudged(flat, seed, NUDGE), WeightDtype::F32)?;
    let moved = stream_document(&mut reference, &model, batch, max_call, tokens, resets)?;
    Ok((want, moved))
}

/// `flat` with every weight scaled by `1 + nudge` or `1 - nudge` at random
/// (the same draw for the same `seed`: `-nudge` moves every weight the other way).
pub(crate) fn nudged(flat: &[f32], seed: u64, nudge: f32) -> Vec<f32> {
    let mut rng = Rng::new(seed ^ 0x6e75_6467_6564);
    flat.iter().map(|&x| if rng.chance(0.5) { x * (1.0 + nudge) } else { x * (1.0 - nudge) }).collect()
}

/// Compares two saved stream states (the layout of [`Plan::layer_states`] without
/// runway) part by part, each part within the tolerance its conditioning allows
/// (`nudged`: the reference's state with its weights nudged, see
/// [`conditioned`]): every layer's cached values, linear-attention sums and
/// recurrent state. Left out are the normalised keys (cached keys and the
/// state's keys: a key is the l2 normalisation of a projection that can be near
/// zero, whose direction is rounding noise in any implementation) and the
/// state's values (a projection of the RMS norm of a state row, which can be
/// near zero too). Both are functions of what is compared, made by kernels the
/// logits of every call already check.
pub fn compare_state(
    config: &Config,
    batch: usize,
    got: &[f32],
    want: &[f32],
    nudged: &[f32],
    floor: Tolerance,
) -> Result<(), Failure> {
    if got.len() != want.len() || nudged.len() != want.len() {
        return Err(Failure::Length { what: "saved state".into(), got: got.len(), want: want.len() });
    }
    let plan = Plan::new(config, batch, 1)?;
    let kv_row = batch * config.qkv_width();
    for (layer, ls) in plan.layer_states().enumerate() {
        let mut parts = vec![("cached values", ls.values, ls.kv_positions * kv_row)];
        if let Some(sums) = ls.linear {
            parts.push(("linear-attention sums", sums, batch * config.heads * config.head_dim * (config.head_dim + 1)));
        }
        if let Some(r) = ls.recurrent {
            parts.push(("recurrent state", r.state, r.keys - r.state));
        }
        for (what, at, len) in parts {
            let span = at..at + len;
            let tol = conditioned(floor, &want[span.clone()], &nudged[span.clone()]);
            compare(&format!("{what} of layer {layer} after the last call"), &got[span.clone()], &want[span], tol)?;
        }
    }
    Ok(())
}

/// A single layer of every kind (window, linear, recurrent with any gate and
/// layout, linear recurrent) against the reference: a whole layer on its own.
pub fn one_layer<B: Backend>(k: &mut B::Kernels, options: &Options) -> Result<(), Failure> {
    against_reference::<B>(k, options, "one_layer", Variant::OneLayer, 96)
}

/// The non-recurrent stack ("Slide") of 1 to 3 layers against the reference.
pub fn model_plain<B: Backend>(k: &mut B::Kernels, options: &Options) -> Result<(), Failure> {
    against_reference::<B>(k, options, "model_plain", Variant::Plain, 48)
}

/// A recurrent stack with the fixed gate and the skip layout against the reference.
pub fn model_fixed_skip<B: Backend>(k: &mut B::Kernels, options: &Options) -> Result<(), Failure> {
    against_reference::<B>(k, options, "model_fixed_skip", Variant::Recurrent(GateKind::Fixed, StateLayout::Skip), 48)
}

/// A recurrent stack with the fixed gate and the single layout against the reference.
pub fn model_fixed_single<B: Backend>(k: &mut B::Kernels, options: &Options) -> Result<(), Failure> {
    let variant = Variant::Recurrent(GateKind::Fixed, StateLayout::Single);
    against_reference::<B>(k, options, "model_fixed_single", variant, 48)
}

/// A recurrent stack with the fixed gate and the dual layout against the reference.
pub fn model_fixed_dual<B: Backend>(k: &mut B::Kernels, options: &Options) -> Result<(), Failure> {
    against_reference::<B>(k, options, "model_fixed_dual", Variant::Recurrent(GateKind::Fixed, StateLayout::Dual), 48)
}

/// A recurrent stack with LSTM gates and the skip layout against the reference.
pub fn model_lstm_skip<B: Backend>(k: &mut B::Kernels, options: &Options) -> Result<(), Failure> {
    against_reference::<B>(k, options, "model_lstm_skip", Variant::Recurrent(GateKind::Lstm, StateLayout::Skip), 48)
}

/// A recurrent stack with LSTM gates and the single layout against the reference.
pub fn model_lstm_single<B: Backend>(k: &mut B::Kernels, options: &Options) -> Result<(), Failure> {
    let variant = Variant::Recurrent(GateKind::Lstm, StateLayout::Single);
    against_reference::<B>(k, options, "model_lstm_single", variant, 48)
}

/// A recurrent stack with LSTM gates and the dual layout against the reference.
pub fn model_lstm_dual<B: Backend>(k: &mut B::Kernels, options: &Options) -> Result<(), Failure> {
    against_reference::<B>(k, options, "model_lstm_dual", Variant::Recurrent(GateKind::Lstm, StateLayout::Dual), 48)
}

/// Feedback mode (every layer cross-attends to the state entering the block)
/// against the reference.
pub fn model_feedback<B: Backend>(k: &mut B::Kernels, options: &Options) -> Result<(), Failure> {
    against_reference::<B>(k, options, "model_feedback", Variant::Feedback, 48)
}

/// Two recurrent layers, each with its own state (with and without feedback),
/// against the reference.
pub fn model_two_recurrent<B: Backend>(k: &mut B::Kernels, options: &Options) -> Result<(), Failure> {
    against_reference::<B>(k, options, "model_two_recurrent", Variant::TwoRecurrent, 48)
}

/// Stacks with linear-attention layers (plain or recurrent) against the reference.
pub fn model_linear<B: Backend>(k: &mut B::Kernels, options: &Options) -> Result<(), Failure> {
    against_reference::<B>(k, options, "model_linear", Variant::Linear, 48)
}
