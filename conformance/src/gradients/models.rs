//! Whole-model gradients for every variant of the configuration: the parameter
//! gradient that `brt::autodiff::Recorder` computes over the backend against the
//! one it computes over the f64 reference (which [`super::oracle`] checks
//! against finite differences of the loss).
//!
//! A case is a model and a document (the forward suite's generator: random
//! sizes, official-style weights perturbed like trained ones, rounded to the
//! backend's storage type). Every call but the last runs on the f64 reference
//! without recording; the carried state it leaves (caches, states, sums, the
//! position in the block) is restored into both recorders, which record the
//! last call, with its document resets, and back-propagate the loss
//! `direction . logits` (truncated back-propagation through one segment, as
//! training does).

use super::KernelError;
use crate::backend::Backend;
use crate::checks::models::{legal_resets, model_case, nudged, upload_model, ModelCase, Variant};
use crate::failure::Failure;
use crate::gen::Rng;
use crate::io::{call, read_state};
use crate::runner::{run_cases, Options};
use crate::tolerance::{tolerance, Check, NUDGE};
use brt::autodiff::Recorder;
use brt_core::{Config, GateKind, Gradients, Plan, Reference64, StateLayout, Stream, WeightDtype};
use brt_cpu::Heap;
use proptest::prelude::*;

/// The recorded segment of a case: the state carried into it, its tokens, resets
/// and the loss direction.
pub(crate) struct Segment {
    /// The carried state and the position in the block. A fresh stream's too:
    /// restored rather than made by the stream, it is a constant of the loss like
    /// any carried state (the recorder does not see how it was made).
    pub carried: (Vec<f32>, usize),
    /// Tokens of the recorded call, position-major.
    pub tokens: Vec<u32>,
    /// Its document resets (empty: none).
    pub resets: Vec<bool>,
    /// `d loss / d logits`: exactly representable values in [-1, 1].
    pub direction: Vec<f32>,
    /// Tokens per row the stream is planned for.
    pub max_tokens: usize,
}

/// Runs every call of `case` but the last on the f64 reference and returns the
/// last call as the segment to differentiate.
pub(crate) fn segment(case: &ModelCase, flat: &[f32], dtype: WeightDtype) -> Result<Segment, Failure> {
    let config = case.config;
    let tokens = case.tokens();
    let max_tokens = case.max_call();
    let last = tokens.len().saturating_sub(1);
    let k = &mut Reference64::new_f64(Heap);
    let model = upload_model(k, &config, flat, dtype)?;
    let plan = Plan::new(&config, case.batch, max_tokens)?;
    let mut stream = call("Stream::new", Stream::new(k, &model, plan))?;
    for (c, ids) in tokens[..last].iter().enumerate() {
        let resets = case.resets.get(c).map_or(&[][..], |r| &r[..]);
        call("Stream::forward", stream.forward(k, &model, ids, resets))?;
    }
    let state = read_state(k, &stream)?;
    let carried = (state, stream.position_in_block());
    let tokens_last = tokens.get(last).cloned().unwrap_or_default();
    let mut rng = Rng::new(case.seed ^ 0x6772_6164_6965_6e74);
    let direction = (0..tokens_last.len() * config.vocab).map(|_| (rng.below(17) as f32 - 8.0) / 8.0).collect();
    Ok(Segment {
        carried,
        tokens: tokens_last,
        resets: case.resets.get(last).cloned().unwrap_or_default(),
        direction,
        max_tokens,
    })
}

/// The parameter gradient of `segment`'s loss by the recorder over `k`, for the
/// model of `config` with parameters `flat` stored as `dtype`.
pub(crate) fn model_gradient<K: Gradients>(
    k: K,
    config: &Config,
    batch: usize,
    flat: &[f32],
    dtype: WeightDtype,
    segment: &Segment,
) -> Result<Vec<f32>, Failure>
where
    brt::Error: From<K::Error>,
{
    let r = &mut Recorder::new(k);
    let model = upload_model(r, config, flat, dtype)?;
    let plan = Plan::new(config, batch, segment.max_tokens)?;
    let mut stream = call("Stream::new", Stream::new(r, &model, plan))?;
    let (state, position) = &segment.carried;
    call("Stream::restore", stream.restore(r, state, *position))?;
    r.start();
    let forward = stream.forward(r, &model, &segment.tokens, &segment.resets);
    r.stop();
    call("Stream::forward (recorded)", forward)?;
    call("Recorder::backward", r.backward(model.weights(), stream.logits(), 0, &segment.direction))?;
    let mut gradient = vec![0f32; flat.len()];
    call("Recorder::weight_gradient", r.weight_gradient(model.weights(), &mut gradient))?;
    Ok(gradient)
}

/// [`model_gradient`] over the f64 reference. (A function of its own: inside a
/// function bounded by `brt::Error: From<backend error>`, the compiler would look
/// for the reference's error conversion in that bound only.)
pub(crate) fn reference_gradient(
    config: &Config,
    batch: usize,
    flat: &[f32],
    dtype: WeightDtype,
    segment: &Segment,
) -> Result<Vec<f32>, Failure> {
    model_gradient(Reference64::new_f64(Heap), config, batch, flat, dtype, segment)
}

/// Cases of `variant`: up to three calls of one to three batch rows, the last one
/// recorded; in one case of two, that call starts new documents (some rows at a
/// block boundary, else all rows) when it can.
pub(crate) fn grad_model_case(variant: Variant) -> impl Strategy<Value = ModelCase> {
    (model_case(variant, 1..=3, 3), any::<bool>(), any::<u8>()).prop_map(|(mut case, reset_last, rows)| {
        let last = case.calls.len() - 1;
        if reset_last && last > 0 {
            // Bits: 0x80 (reset), 0x40 (all rows when not at a boundary), rows.
            let mut bits = vec![0u8; case.calls.len()];
            for (c, r) in case.resets.iter().enumerate().take(last) {
                bits[c] = if r.is_empty() {
                    0
                } else if r.iter().all(|&x| x) {
                    0xff
                } else {
                    0x80 | r.iter().enumerate().fold(0u8, |b, (i, &x)| b | ((x as u8) << i))
                };
            }
            bits[last] = 0xc0 | ((rows | 1) & 0x07);
            case.resets = legal_resets(&case.config, case.batch, &case.calls, &bits);
        }
        case
    })
}

/// Compares two parameter gradients parameter by parameter, as vectors: the
/// Euclidean norm of the difference must be within the tolerance's absolute part
/// times the norm of the expected gradient of that parameter (but at least a
/// hundredth of the largest parameter's, so that parameters barely touched by
/// this segment are not held to their own rounding noise), plus that
/// parameter's allowance in `kinks` (see [`kink_allowance`]; none when empty).
///
/// Norms rather than elements: through a whole model in f32, a ReLU argument or
/// a softmax near a tie can land on the other side of a kink than in f64, which
/// moves a few elements by their own size; a wrongly wired gradient moves the
/// whole vector.
pub(crate) fn compare_gradients(
    config: &Config,
    got: &[f32],
    want: &[f32],
    tol: crate::Tolerance,
    kinks: &[f64],
) -> Result<(), Failure> {
    let spans = param_spans(config)?;
    let largest = spans.iter().fold(0f64, |m, (_, r)| m.max(norm(&want[r.clone()], None)));
    for (p, (param, range)) in spans.into_iter().enumerate() {
        let (g, w) = (&got[range.clone()], &want[range]);
        let own = norm(w, None);
        let error = norm(g, Some(w));
        let scale = own.max(largest / 100.0).max(f64::MIN_POSITIVE);
        let kink = kinks.get(p).copied().unwrap_or(0.0);
        let what = format!(
            "norm of the error of the gradient of {param:?} (want: norm 0; expected gradient's norm {own:.4e}; \
             allowance for kinks {kink:.4e})"
        );
        let tol = crate::Tolerance { abs: tol.abs + (kink / scale) as f32, rel: tol.rel };
        crate::tolerance::compare_f64(&what, &[error], &[0.0], tol, scale)?;
    }
    Ok(())
}

/// Every parameter's name and span in the flat parameter vector.
fn param_spans(config: &Config) -> Result<Vec<(brt_core::Param, std::ops::Range<usize>)>, Failure> {
    let layout = brt_core::WeightLayout::new(config)?;
    Ok(layout.params().map(|spec| (spec.param, spec.offset..spec.offset + spec.span.len())).collect())
}

/// The Euclidean norm of `v`, or of `v - minus`.
fn norm(v: &[f32], minus: Option<&[f32]>) -> f64 {
    let diff = |i: usize, x: f32| x as f64 - minus.map_or(0.0, |m| m[i] as f64);
    v.iter().enumerate().map(|(i, &x)| diff(i, x).powi(2)).sum::<f64>().sqrt()
}

/// How far a kink near the case's weights can move each parameter's gradient:
/// twice the larger move of the f64 reference's gradient when every weight is
/// nudged by 2^-13 of itself one way at random, and when nudged the opposite
/// way.
///
/// A ReLU argument within f32's rounding of zero takes the other branch in f32
/// than in f64, and every gradient upstream of it jumps by the unit's share (seen
/// at 1,000 cases: 6% of the embedding's gradient in a 9-wide model, the f32
/// reference and every f32 backend alike). The two opposite nudges move that
/// argument both ways, so one of them crosses the kink too and measures the jump;
/// away from kinks they move a gradient by about 2^-13 of itself, far below the
/// tolerance. Only a case that fails without the allowance pays for the two runs.
fn kink_allowance(case: &ModelCase, flat: &[f32], segment: &Segment, want: &[f32]) -> Result<Vec<f64>, Failure> {
    let spans = param_spans(&case.config)?;
    let mut allowance = vec![0f64; spans.len()];
    for nudge in [NUDGE, -NUDGE] {
        let moved = nudged(flat, case.seed, nudge);
        let gradient = reference_gradient(&case.config, case.batch, &moved, WeightDtype::F32, segment)?;
        for (a, (_, range)) in allowance.iter_mut().zip(&spans) {
            *a = a.max(2.0 * norm(&gradient[range.clone()], Some(&want[range.clone()])));
        }
    }
    Ok(allowance)
}

/// Runs model-gradient cases of `variant` on the backend and the f64 reference.
fn against_reference<B: Backend>(
    options: &Options,
    name: &'static str,
    variant: Variant,
    cases: u32,
) -> Result<(), Failure>
where
    B::Kernels: Gradients,
    brt::Error: From<KernelError<B>>,
{
    let dtype = B::weight_dtype();
    let tol = tolerance(Check::GradModel, dtype);
    run_cases(name, cases, options, grad_model_case(variant), |case| {
        let flat = case.weights(dtype)?;
        let segment = segment(case, &flat, dtype)?;
        // The recorder owns its backend: a fresh one per case (the factory already
        // made one for this check, so it can).
        let kernels = B::create().map_err(|skip| Failure::backend("Backend::create", skip))?;
        let got = model_gradient(kernels, &case.config, case.batch, &flat, dtype, &segment)?;
        let want = reference_gradient(&case.config, case.batch, &flat, dtype, &segment)?;
        if want.iter().all(|&g| g == 0.0) {
            return Err(Failure::Property("the reference's gradient is zero: the case checks nothing".into()));
        }
        compare_gradients(&case.config, &got, &want, tol, &[]).or_else(|_| {
            let kinks = kink_allowance(case, &flat, &segment, &want)?;
            compare_gradients(&case.config, &got, &want, tol, &kinks)
        })
    })
}

macro_rules! model_checks {
    ($($(#[$doc:meta])* $name:ident => $variant:expr, $cases:expr;)*) => {$(
        $(#[$doc])*
        pub fn $name<B: Backend>(_k: &mut B::Kernels, options: &Options) -> Result<(), Failure>
        where
            B::Kernels: Gradients,
            brt::Error: From<KernelError<B>>,
        {
            against_reference::<B>(options, stringify!($name), $variant, $cases)
        }
    )*};
}

model_checks! {
    /// Parameter gradients of the non-recurrent stack ("Slide") of 1 to 3 layers.
    grad_model_plain => Variant::Plain, 24;
    /// Parameter gradients with a recurrent layer, fixed gate, skip layout.
    grad_model_fixed_skip => Variant::Recurrent(GateKind::Fixed, StateLayout::Skip), 16;
    /// Parameter gradients with a recurrent layer, fixed gate, single layout.
    grad_model_fixed_single => Variant::Recurrent(GateKind::Fixed, StateLayout::Single), 16;
    /// Parameter gradients with a recurrent layer, fixed gate, dual layout.
    grad_model_fixed_dual => Variant::Recurrent(GateKind::Fixed, StateLayout::Dual), 16;
    /// Parameter gradients with a recurrent layer, LSTM gates, skip layout.
    grad_model_lstm_skip => Variant::Recurrent(GateKind::Lstm, StateLayout::Skip), 16;
    /// Parameter gradients with a recurrent layer, LSTM gates, single layout.
    grad_model_lstm_single => Variant::Recurrent(GateKind::Lstm, StateLayout::Single), 16;
    /// Parameter gradients with a recurrent layer, LSTM gates, dual layout.
    grad_model_lstm_dual => Variant::Recurrent(GateKind::Lstm, StateLayout::Dual), 16;
    /// Parameter gradients in feedback mode (every layer cross-attends to the
    /// state entering the block).
    grad_model_feedback => Variant::Feedback, 16;
    /// Parameter gradients with two recurrent layers, each with its own state,
    /// with and without feedback.
    grad_model_two_recurrent => Variant::TwoRecurrent, 16;
    /// Parameter gradients of stacks with linear-attention layers (plain or
    /// recurrent; the carried sums restored into the recorded call).
    grad_model_linear => Variant::Linear, 16;
}
