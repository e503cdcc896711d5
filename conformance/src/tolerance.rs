//! Tolerances as data: one row per check, one column per weight precision, and
//! the comparison that reports the worst error.
//!
//! A value `got` agrees with `want` when both have the same bits, or when both are
//! finite and `|got - want| <= abs + rel * |want|` under a tolerance other than
//! [`Tolerance::EXACT`] (which asks for the same bits: `-0.0` is not `+0.0`). The
//! reference accumulates in f64; a backend computes in f32, so its results differ
//! by rounding, which grows with the length of the reductions and with the
//! magnitude of the logits (for long sums whose terms cancel, with the magnitude
//! of the terms: [`compare_terms`]). The rows below were sized for the shapes
//! this suite generates (reductions of at most a few dozen terms, see each check)
//! and checked against an independent f32 implementation with a different
//! summation order (the suite's own tests) and against the SIMD CPU backend; a
//! real bug is orders of magnitude larger.

use crate::failure::Mismatch;
use brt_core::WeightDtype;
use std::cell::RefCell;

/// Allowed difference: `abs + rel * |want|`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    /// Absolute part.
    pub abs: f32,
    /// Relative part (times the expected value's magnitude).
    pub rel: f32,
}

impl Tolerance {
    /// Bit-identical results only (NaN payloads aside, every bit must agree).
    pub const EXACT: Tolerance = Tolerance { abs: 0.0, rel: 0.0 };

    /// A tolerance of `abs` and `rel`.
    pub const fn new(abs: f32, rel: f32) -> Tolerance {
        Tolerance { abs, rel }
    }

    /// The error allowed around `want`.
    pub fn allowed(&self, want: f32) -> f64 {
        self.abs as f64 + self.rel as f64 * (want as f64).abs()
    }
}

/// How the backend under test stores parameters; picks the tolerance column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    /// f32 parameters.
    Full,
    /// f16 or bf16 parameters. The suite rounds every generated parameter to the
    /// backend's storage type before giving it to the reference too, so only the
    /// computation differs; this column allows for backends that convert on the
    /// fly in a different order.
    Half,
}

impl Precision {
    /// The column for a storage type.
    pub const fn of(dtype: WeightDtype) -> Precision {
        match dtype {
            // Q8_0 weights are read as the exact f32 values they stand for.
            WeightDtype::F32 | WeightDtype::Q8_0 => Precision::Full,
            WeightDtype::F16 | WeightDtype::Bf16 => Precision::Half,
        }
    }
}

/// Every comparison the suite makes, each with its own tolerance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Check {
    /// Embedding gather: a copy, so exact.
    Embed,
    /// RMS norm of rows of up to 33 elements.
    RmsNorm,
    /// One addition per element: exact.
    AddPositions,
    /// Per-head l2 normalisation.
    L2Normalize,
    /// Dense products with inner dimension up to 70.
    Matmul,
    /// Windowed attention with the T5 bias, logits up to about 8 * (1 + |bias|).
    AttentionWindow,
    /// Unmasked attention (state attentions), logits up to about 8.
    AttentionFull,
    /// Attention with logits in the hundreds and below the safe-softmax floor.
    AttentionLargeLogits,
    /// Linear attention output and carried state.
    LinearAttention,
    /// Fixed gate, including saturated gates.
    GateFixed,
    /// LSTM gate, including saturated gates.
    GateLstm,
    /// `copy`, `fill`, `copy_weights`: exact.
    Copy,
    /// Logits and carried state of whole models (one to three layers) against the
    /// reference: the floor under each result's own conditioned tolerance (see
    /// [`conditioned`]).
    Model,
    /// Logits of whole models with 8-bit weights against the reference's 8-bit
    /// products, on top of the effect of quantizing the inputs (see
    /// `q8_0_models`). The recurrence over blocks with attention scales up to 8
    /// amplifies rounding, hence a loose row.
    Q8Model,
    /// The same document split into different calls on the same backend (logits
    /// of whole models, like [`Check::Model`]).
    StreamSplit,
    /// Linear attention over a block in one call against token by token.
    LinearSplit,
    /// A row alone (batch of one) against the same row inside a larger batch.
    BatchAlone,
    /// A row whose neighbours hold other documents, same shapes: exact.
    Neighbours,
    /// A row after a document reset against a fresh run, same shapes: exact.
    Reset,
    /// Logits and outputs that tokens or keys outside the receptive field must not
    /// change: exact.
    Locality,
    /// A saturated gate keeps or replaces the state.
    GateExtremes,
    /// `embed_backward`: rows of the output gradient summed into the table's
    /// (in call order in the reference; a backend may sum repeated ids in another).
    GradEmbed,
    /// `add_positions_backward`: batch rows summed per position.
    GradAddPositions,
    /// `add_assign`, `gather_runs_add` and `copy_to_tape`: one addition or copy per element, exact.
    GradCopies,
    /// `rms_norm_backward` on rows of up to 33 elements.
    GradRmsNorm,
    /// `l2_normalize_backward` per head.
    GradL2Normalize,
    /// `matmul_backward` with reductions (`d_x`: over `n`; `d_w`: over `m`) of up
    /// to 70 terms.
    GradMatmul,
    /// `attention_backward` with normalised queries and keys (window with the T5
    /// bias, or every key).
    GradAttention,
    /// `attention_backward` with logits in the hundreds, below the floor, or
    /// around the floor of -1000 where its term competes with the keys.
    GradAttentionLargeLogits,
    /// `linear_attention_backward` from a zero or warm carried state.
    GradLinearAttention,
    /// `gate_fixed_backward` and `gate_lstm_backward`.
    GradGates,
    /// Every backward kernel on large shapes that cross a backend's blocking
    /// boundaries (products with reductions of up to 4200 terms, 800 keys, 130
    /// tokens of linear attention, rows of 1030).
    GradBlocking,
    /// Parameter gradients of whole models (one recorded call after a carried
    /// state) against the f64 reference's: the norm of the error per parameter
    /// against the norm of its gradient.
    GradModel,
    /// The same backward call twice on one backend: bit-identical.
    GradDeterminism,
    /// The f64 reference's backward kernels against central finite differences of
    /// its forward kernels (both in f64): `|fd - backward| <= abs + rel * |fd|`.
    FiniteDifferenceKernel,
    /// The f64 reference's whole-model gradients (by the recorder) against
    /// central finite differences of the loss.
    FiniteDifferenceModel,
}

/// The table: `(check, f32 weights, f16/bf16 weights)`.
pub const TOLERANCES: &[(Check, Tolerance, Tolerance)] = &[
    (Check::Embed, Tolerance::EXACT, Tolerance::EXACT),
    (Check::RmsNorm, Tolerance::new(1e-5, 1e-5), Tolerance::new(1e-5, 1e-5)),
    (Check::AddPositions, Tolerance::EXACT, Tolerance::EXACT),
    (Check::L2Normalize, Tolerance::new(1e-6, 1e-5), Tolerance::new(1e-6, 1e-5)),
    (Check::Matmul, Tolerance::new(5e-5, 1e-5), Tolerance::new(1e-4, 1e-4)),
    (Check::AttentionWindow, Tolerance::new(5e-5, 1e-4), Tolerance::new(1e-4, 1e-4)),
    (Check::AttentionFull, Tolerance::new(5e-5, 1e-4), Tolerance::new(1e-4, 1e-4)),
    (Check::AttentionLargeLogits, Tolerance::new(5e-4, 5e-4), Tolerance::new(5e-4, 5e-4)),
    (Check::LinearAttention, Tolerance::new(1e-5, 1e-4), Tolerance::new(1e-5, 1e-4)),
    (Check::GateFixed, Tolerance::new(4e-6, 2e-6), Tolerance::new(4e-6, 2e-6)),
    (Check::GateLstm, Tolerance::new(4e-6, 2e-6), Tolerance::new(4e-6, 2e-6)),
    (Check::Copy, Tolerance::EXACT, Tolerance::EXACT),
    // The floor under the conditioned tolerance: a few roundings of the result
    // itself, for results the nudge cannot move (a zero weight stays zero).
    (Check::Model, Tolerance::new(1e-6, 1e-6), Tolerance::new(1e-6, 1e-6)),
    // Not conditioned: a quantization step that f32 and f64 inputs round to
    // differently moves the logits downstream by more than the whole effect of
    // quantizing (up to 1.4 times it: a conditioned floor plus that effect
    // failed on nine CPU factories in 1,000 cases each).
    (Check::Q8Model, Tolerance::new(2e-3, 8e-3), Tolerance::new(2e-3, 8e-3)),
    // Same backend, other call shapes: a backend may pick other algorithms for
    // other shapes (a GEMV for few rows, other tiles), so whole models differ by
    // rounding as much as two implementations do: the floor under the
    // conditioned tolerance, as for `Model`.
    (Check::StreamSplit, Tolerance::new(1e-6, 1e-6), Tolerance::new(1e-6, 1e-6)),
    (Check::LinearSplit, Tolerance::new(1e-5, 1e-4), Tolerance::new(1e-5, 1e-4)),
    (Check::BatchAlone, Tolerance::new(1e-6, 1e-6), Tolerance::new(1e-6, 1e-6)),
    (Check::Neighbours, Tolerance::EXACT, Tolerance::EXACT),
    (Check::Reset, Tolerance::EXACT, Tolerance::EXACT),
    (Check::Locality, Tolerance::EXACT, Tolerance::EXACT),
    (Check::GateExtremes, Tolerance::new(4e-6, 2e-6), Tolerance::new(4e-6, 2e-6)),
    // Gradients (the `gradients` module). The absolute part is relative to the
    // largest expected magnitude in the buffer (at least 1, see `compare_scaled`):
    // a gradient is a sum whose rounding follows its largest terms, not its value.
    (Check::GradEmbed, Tolerance::new(1e-6, 0.0), Tolerance::new(1e-6, 0.0)),
    (Check::GradAddPositions, Tolerance::new(1e-6, 0.0), Tolerance::new(1e-6, 0.0)),
    (Check::GradCopies, Tolerance::EXACT, Tolerance::EXACT),
    (Check::GradRmsNorm, Tolerance::new(1e-5, 0.0), Tolerance::new(1e-5, 0.0)),
    (Check::GradL2Normalize, Tolerance::new(1e-5, 0.0), Tolerance::new(1e-5, 0.0)),
    (Check::GradMatmul, Tolerance::new(1e-5, 0.0), Tolerance::new(1e-5, 0.0)),
    (Check::GradAttention, Tolerance::new(5e-5, 0.0), Tolerance::new(5e-5, 0.0)),
    (Check::GradAttentionLargeLogits, Tolerance::new(5e-4, 0.0), Tolerance::new(5e-4, 0.0)),
    (Check::GradLinearAttention, Tolerance::new(5e-5, 0.0), Tolerance::new(5e-5, 0.0)),
    (Check::GradGates, Tolerance::new(1e-5, 0.0), Tolerance::new(1e-5, 0.0)),
    (Check::GradBlocking, Tolerance::new(1e-4, 0.0), Tolerance::new(1e-4, 0.0)),
    (Check::GradModel, Tolerance::new(5e-3, 0.0), Tolerance::new(5e-3, 0.0)),
    (Check::GradDeterminism, Tolerance::EXACT, Tolerance::EXACT),
    // The oracle, in f64 on both sides: only the finite difference's own error
    // (truncation eps^2 |L3| with L3 the third derivative, plus rounding
    // 1e-16 |L| / eps; eps = 1e-6)
    // separates them.
    (Check::FiniteDifferenceKernel, Tolerance::new(1e-6, 1e-6), Tolerance::new(1e-6, 1e-6)),
    (Check::FiniteDifferenceModel, Tolerance::new(1e-5, 1e-5), Tolerance::new(1e-5, 1e-5)),
];

/// The relative change of every weight in the nudged run of [`conditioned`]:
/// 2^-13, large enough that the reference's f32 results resolve what it moves
/// (2^10 times one rounding), small enough to stay in the linear regime of
/// well-conditioned models.
pub const NUDGE: f32 = 1.0 / 8192.0;

/// How much a backend's f32 rounding may move a whole model's result, as a
/// fraction of what the nudge moved it (see [`conditioned`]). Measured: at most
/// 0.096 over 1,500 cases of every model check on every CPU factory (scalar,
/// AVX2, AVX-512, threads, smallest tiles, f16, bf16; about 200,000 cases, long
/// blocks included), i.e. f32 rounding moves a result as much as a relative
/// change of the weights of about 1.2e-5 (200 roundings); five times that.
pub const CONDITIONED_GROWTH: f64 = 0.5;

/// The tolerance of one result of a whole model, from its own conditioning:
/// `floor` plus [`CONDITIONED_GROWTH`] times the largest change that scaling
/// every weight by `1 +- NUDGE` made to the reference's result (`nudged`
/// against `want`).
///
/// Why: rounding in f32 is a perturbation of relative size 2^-24 at every
/// operation, and a model amplifies it by its condition number, which the
/// generated models vary over orders of magnitude (attention scales up to 8 that
/// sharpen softmaxes, norms of rows near zero, state carried over blocks). A
/// fixed tolerance must allow the worst-conditioned case and is then loose for
/// every other; the nudged run measures the amplification of the case at hand.
pub fn conditioned(floor: Tolerance, want: &[f32], nudged: &[f32]) -> Tolerance {
    let moved = want.iter().zip(nudged).map(|(&w, &n)| (w as f64 - n as f64).abs()).fold(0.0, f64::max);
    Tolerance { abs: floor.abs + (CONDITIONED_GROWTH * moved) as f32, rel: floor.rel }
}

/// The tolerance of `check` for parameters stored as `dtype`.
pub fn tolerance(check: Check, dtype: WeightDtype) -> Tolerance {
    let row = TOLERANCES.iter().find(|(c, _, _)| *c == check);
    match (row, Precision::of(dtype)) {
        (Some((_, full, _)), Precision::Full) => *full,
        (Some((_, _, half)), Precision::Half) => *half,
        // Every check has a row (a unit test keeps it so); exact is the safe default.
        (None, _) => Tolerance::EXACT,
    }
}

/// The largest error seen by [`compare`] on this thread since the last
/// [`take_worst`], as a fraction of what was allowed, with its label.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Worst {
    /// `|error| / allowed` (0 when every comparison was exact).
    pub ratio: f64,
    /// The largest absolute error.
    pub error: f64,
    /// What was being compared when the worst ratio was seen.
    pub what: String,
}

thread_local! {
    static WORST: RefCell<Worst> = RefCell::new(Worst::default());
}

/// Returns and clears the worst agreement recorded on this thread.
pub fn take_worst() -> Worst {
    WORST.with(|w| std::mem::take(&mut *w.borrow_mut()))
}

/// Compares `got` with `want` element by element; on failure reports how many
/// elements are outside the tolerance and the worst one.
pub fn compare(what: &str, got: &[f32], want: &[f32], tolerance: Tolerance) -> Result<(), crate::Failure> {
    compare_scaled(what, got, want, tolerance, 1.0)
}

/// As [`compare`], with the absolute part of the tolerance multiplied by `scale`:
/// a value agrees when `|got - want| <= abs * scale + rel * |want|`. Gradient
/// checks pass the largest expected magnitude of the buffer (at least 1), since
/// a gradient is a sum whose rounding follows its largest terms.
pub fn compare_scaled(
    what: &str,
    got: &[f32],
    want: &[f32],
    tolerance: Tolerance,
    scale: f64,
) -> Result<(), crate::Failure> {
    if got.len() != want.len() {
        return Err(crate::Failure::Length { what: what.to_string(), got: got.len(), want: want.len() });
    }
    let pairs =
        got.iter().zip(want).map(|(&g, &w)| (g as f64, w as f64, same_bits(g as f64, w as f64), (w as f64).abs()));
    compare_values(what, pairs, tolerance, scale)
}

/// As [`compare`] for sums whose terms may cancel: the relative part applies to
/// the larger of the expected value and `terms[i]`, the magnitude of the terms
/// summed into element `i` (rounding follows the terms, not their sum).
pub fn compare_terms(
    what: &str,
    got: &[f32],
    want: &[f32],
    tolerance: Tolerance,
    terms: &[f32],
) -> Result<(), crate::Failure> {
    if got.len() != want.len() {
        return Err(crate::Failure::Length { what: what.to_string(), got: got.len(), want: want.len() });
    }
    if terms.len() != want.len() {
        return Err(crate::Failure::Length { what: format!("{what} (terms)"), got: terms.len(), want: want.len() });
    }
    let pairs = got
        .iter()
        .zip(want)
        .zip(terms)
        .map(|((&g, &w), &t)| (g as f64, w as f64, same_bits(g as f64, w as f64), (w as f64).abs().max(t as f64)));
    compare_values(what, pairs, tolerance, 1.0)
}

/// The same result bit for bit (any NaN matches any NaN). Widening an f32 to f64
/// keeps it apart from every other f32, `-0.0` included, so one test serves both.
fn same_bits(g: f64, w: f64) -> bool {
    g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan())
}

/// As [`compare_scaled`] for values in f64 (the finite-difference oracle).
pub fn compare_f64(
    what: &str,
    got: &[f64],
    want: &[f64],
    tolerance: Tolerance,
    scale: f64,
) -> Result<(), crate::Failure> {
    if got.len() != want.len() {
        return Err(crate::Failure::Length { what: what.to_string(), got: got.len(), want: want.len() });
    }
    let pairs = got.iter().zip(want).map(|(&g, &w)| (g, w, same_bits(g, w), w.abs()));
    compare_values(what, pairs, tolerance, scale)
}

/// The comparison behind [`compare`], [`compare_scaled`] and [`compare_f64`]:
/// `(got, want, identical, magnitude the relative part applies to)` for each element.
fn compare_values(
    what: &str,
    pairs: impl Iterator<Item = (f64, f64, bool, f64)>,
    tolerance: Tolerance,
    scale: f64,
) -> Result<(), crate::Failure> {
    let mut bad = 0usize;
    let mut len = 0usize;
    // (index, ratio, error, allowed, got, want)
    let mut worst: Option<(usize, f64, f64, f64, f64, f64)> = None;
    let mut worst_ok = (0f64, 0f64);
    for (i, (g, w, identical, magnitude)) in pairs.enumerate() {
        len += 1;
        if identical {
            continue;
        }
        let allowed = tolerance.abs as f64 * scale + tolerance.rel as f64 * magnitude;
        let error = if g.is_finite() && w.is_finite() { (g - w).abs() } else { f64::INFINITY };
        // EXACT asks for the bits: -0.0 for +0.0 is a different result at no distance.
        let agrees = error <= allowed && tolerance != Tolerance::EXACT;
        let ratio = if agrees {
            if allowed > 0.0 {
                error / allowed
            } else {
                0.0
            }
        } else {
            bad += 1;
            if allowed > 0.0 {
                error / allowed
            } else {
                f64::INFINITY
            }
        };
        if agrees {
            if ratio > worst_ok.0 {
                worst_ok = (ratio, error);
            }
        } else if worst.is_none_or(|(_, r, e, _, _, _)| ratio > r || (ratio == r && error > e)) {
            worst = Some((i, ratio, error, allowed, g, w));
        }
    }
    match worst {
        None => {
            WORST.with(|cell| {
                let mut cell = cell.borrow_mut();
                if worst_ok.0 > cell.ratio || (cell.what.is_empty() && worst_ok.1 > 0.0) {
                    *cell = Worst { ratio: worst_ok.0, error: worst_ok.1, what: what.to_string() };
                }
            });
            Ok(())
        }
        Some((index, _, error, allowed, got, want)) => Err(Mismatch {
            what: what.to_string(),
            len,
            bad,
            index,
            got: got as f32,
            want: want as f32,
            error,
            allowed,
            tolerance,
        }
        .into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_check_has_exactly_one_row() {
        use Check::*;
        let all = [
            Embed,
            RmsNorm,
            AddPositions,
            L2Normalize,
            Matmul,
            AttentionWindow,
            AttentionFull,
            AttentionLargeLogits,
            LinearAttention,
            GateFixed,
            GateLstm,
            Copy,
            Model,
            Q8Model,
            StreamSplit,
            LinearSplit,
            BatchAlone,
            Neighbours,
            Reset,
            Locality,
            GateExtremes,
            GradEmbed,
            GradAddPositions,
            GradCopies,
            GradRmsNorm,
            GradL2Normalize,
            GradMatmul,
            GradAttention,
            GradAttentionLargeLogits,
            GradLinearAttention,
            GradGates,
            GradBlocking,
            GradModel,
            GradDeterminism,
            FiniteDifferenceKernel,
            FiniteDifferenceModel,
        ];
        for check in all {
            assert_eq!(TOLERANCES.iter().filter(|(c, _, _)| *c == check).count(), 1, "{check:?}");
        }
        assert_eq!(TOLERANCES.len(), all.len());
    }

    #[test]
    fn compare_reports_the_worst_element() {
        let tol = Tolerance::new(0.1, 0.0);
        assert!(compare("x", &[1.0, 2.0], &[1.05, 2.0], tol).is_ok());
        let err = compare("x", &[1.0, 2.0, 3.0], &[1.5, 2.0, 3.2], tol).unwrap_err();
        let crate::Failure::Mismatch(m) = err else { panic!("not a mismatch: {err}") };
        assert_eq!((m.bad, m.index, m.got, m.want), (2, 0, 1.0, 1.5));
        assert!(compare("x", &[f32::NAN], &[1.0], tol).is_err(), "NaN never agrees with a number");
        assert!(compare("x", &[f32::INFINITY], &[f32::INFINITY], Tolerance::EXACT).is_ok());
        assert!(compare("x", &[1.0], &[1.0, 2.0], tol).is_err(), "lengths must agree");
        assert!(compare("x", &[1.0 + f32::EPSILON], &[1.0], Tolerance::EXACT).is_err());
    }

    #[test]
    fn exact_tells_the_zeros_apart_and_other_tolerances_do_not() {
        assert!(compare("x", &[0.0], &[-0.0], Tolerance::EXACT).is_err(), "-0.0 + 0.0 past an extent must show");
        assert!(compare("x", &[-0.0], &[-0.0], Tolerance::EXACT).is_ok());
        assert!(compare("x", &[0.0], &[-0.0], Tolerance::new(1e-6, 0.0)).is_ok());
    }

    #[test]
    fn scale_multiplies_the_absolute_part_only() {
        let tol = Tolerance::new(1e-3, 0.0);
        assert!(compare_scaled("x", &[0.05], &[0.0], tol, 100.0).is_ok());
        assert!(compare_scaled("x", &[0.2], &[0.0], tol, 100.0).is_err());
        assert!(compare_f64("x", &[1.0 + 1e-9], &[1.0], Tolerance::new(1e-8, 0.0), 1.0).is_ok());
        assert!(compare_f64("x", &[1.0 + 1e-7], &[1.0], Tolerance::new(1e-8, 0.0), 1.0).is_err());
    }

    #[test]
    fn relative_part_scales_with_the_expected_value() {
        let tol = Tolerance::new(0.0, 1e-3);
        assert!(compare("x", &[1000.5], &[1000.0], tol).is_ok());
        assert!(compare("x", &[1.5], &[1.0], tol).is_err());
    }
}
