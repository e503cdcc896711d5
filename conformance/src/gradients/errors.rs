//! Error paths of the backward kernels: a buffer one element too small, or a
//! view whose offset pushes it past the end, gives `BufferTooSmall` naming the
//! exact sizes for that buffer (no panic, no overrun); an id outside the
//! vocabulary gives `TokenOutOfRange`; a position bias without its gradient (or
//! the other way round), or with an unmasked attention, gives `InvalidShape`.

use crate::backend::Backend;
use crate::checks::errors::{buffers_with_one_too_small, expect_error, expect_too_small, Buffers, Role, Shortfall};
use crate::failure::Failure;
use crate::gen::Rng;
use crate::io::{tensor, tokens, weights};
use crate::runner::{run_cases, Options};
use brt_core::desc::{Attention, Embed, Heads, LinearAttention, Mask, Matmul, Positions, Rows, Strided};
use brt_core::params::T5_BUCKETS;
use brt_core::{CoreError, Gradients, Storage, View, ViewMut, WeightView};
use proptest::prelude::*;
use std::cell::RefCell;

/// The backward kernels whose extent checks are exercised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackwardKind {
    /// `embed_backward`.
    Embed,
    /// `rms_norm_backward`.
    RmsNorm,
    /// `add_positions_backward`.
    AddPositions,
    /// `l2_normalize_backward`.
    L2Normalize,
    /// `matmul_backward` (`transposed` picks the weight order).
    Matmul {
        /// Weight stored `(n, k)`.
        transposed: bool,
    },
    /// `attention_backward` with the window and the T5 bias.
    AttentionWindow,
    /// `attention_backward` without a mask.
    AttentionFull,
    /// `linear_attention_backward`.
    LinearAttention,
    /// `gate_fixed_backward`.
    GateFixed,
    /// `gate_lstm_backward`.
    GateLstm,
    /// `add_assign`.
    AddAssign,
    /// `gather_runs_add`.
    GatherRunsAdd,
    /// `copy_to_tape`.
    CopyToTape,
}

/// A backward call whose argument `short` (modulo the number of its buffer
/// arguments) is too small.
#[derive(Clone, Debug)]
pub struct GradShortCase {
    kind: BackwardKind,
    rows: usize,
    dim: usize,
    heads: usize,
    head_dim: usize,
    batch: usize,
    short: usize,
    shortfall: Shortfall,
    seed: u64,
}

fn window(c: &GradShortCase) -> Result<Attention, Failure> {
    let w = c.dim.min(4);
    Ok(Attention::new(c.batch, c.rows, w + c.rows, c.heads, c.head_dim, Mask::Window { offset: w, window: w }, false)?)
}

fn full(c: &GradShortCase) -> Result<Attention, Failure> {
    Ok(Attention::new(c.batch, c.rows, c.dim, c.heads, c.head_dim, Mask::None, true)?)
}

fn linear(c: &GradShortCase) -> Result<LinearAttention, Failure> {
    Ok(LinearAttention::new(c.batch, c.rows, c.heads, c.head_dim, false)?)
}

fn runs(c: &GradShortCase) -> Result<Strided, Failure> {
    Ok(Strided::new(c.rows, c.dim, c.dim + c.batch)?)
}

/// Every buffer argument of the call: role and extent, in call order.
fn arguments(c: &GradShortCase) -> Result<Vec<(Role, usize)>, Failure> {
    use Role::*;
    let (r, d, hd, h) = (c.rows, c.dim, c.heads * c.head_dim, c.heads);
    Ok(match c.kind {
        BackwardKind::Embed => vec![(Tokens, r), (Input, r * d), (Output, 3 * d)],
        BackwardKind::RmsNorm => vec![(Input, r * d), (Weights, d), (Input, r * d), (Output, r * d), (Output, d)],
        BackwardKind::AddPositions => vec![(Input, r * c.batch * d), (Output, r * d)],
        BackwardKind::L2Normalize => vec![(Input, r * hd), (Output, r * hd)],
        BackwardKind::Matmul { .. } => vec![
            (Input, r * d),
            (Weights, d * hd),
            (Input, r * hd),
            (Output, r * hd),
            (Output, r * d),
            (Output, d * hd),
        ],
        BackwardKind::AttentionWindow | BackwardKind::AttentionFull => {
            let (a, biased) = match c.kind {
                BackwardKind::AttentionWindow => (window(c)?, true),
                _ => (full(c)?, false),
            };
            let (q, k) = (a.query_len(), a.key_len());
            let mut args = vec![(Input, q), (Input, k), (Input, k), (Weights, h)];
            if biased {
                args.push((Weights, h * T5_BUCKETS));
            }
            args.extend([(Input, q), (Output, q), (Output, k), (Output, k), (Output, h)]);
            if biased {
                args.push((Output, h * T5_BUCKETS));
            }
            args
        }
        BackwardKind::LinearAttention => {
            let l = linear(c)?;
            let (n, s) = (l.token_len(), l.state_len());
            vec![
                (Input, n),
                (Input, n),
                (Input, n),
                (Weights, h),
                (Input, s),
                (Input, n),
                (Output, s),
                (Output, n),
                (Output, n),
                (Output, n),
                (Output, h),
            ]
        }
        BackwardKind::GateFixed => {
            vec![(Input, r * d), (Input, r * d), (Weights, d), (Output, r * d), (Output, r * d), (Output, d)]
        }
        BackwardKind::GateLstm => {
            let mut args = vec![(Input, r * d); 4];
            args.extend([(Weights, d), (Weights, d)]);
            args.extend([(Output, r * d); 4]);
            args.extend([(Output, d), (Output, d)]);
            args
        }
        BackwardKind::AddAssign | BackwardKind::CopyToTape => vec![(Input, r * d), (Output, r * d)],
        BackwardKind::GatherRunsAdd => vec![(Input, runs(c)?.extent()), (Output, runs(c)?.total())],
    })
}

/// Runs the call with `b`'s buffers.
fn invoke<K: Gradients>(k: &mut K, c: &GradShortCase, b: &mut Buffers<K>) -> Result<Result<(), K::Error>, Failure> {
    let (r, d, hd) = (c.rows, c.dim, c.heads * c.head_dim);
    let Buffers { inputs, outputs, weights, tokens } = b;
    let i = |n: usize| View::new(&inputs[n].0, inputs[n].1);
    let w = |n: usize| WeightView::new(&weights[n].0, weights[n].1);
    let mut outs = outputs.iter_mut().map(|(t, o)| ViewMut::new(t, *o));
    let mut o = || outs.next().ok_or(Failure::Property("internal: missing output buffer".into()));
    Ok(match c.kind {
        BackwardKind::Embed => k.embed_backward(&tokens[0].0, tokens[0].1, i(0), o()?, Embed::new(r, 3, d)?),
        BackwardKind::RmsNorm => k.rms_norm_backward(i(0), w(0), i(1), o()?, o()?, Rows::new(r, d)?),
        BackwardKind::AddPositions => k.add_positions_backward(i(0), o()?, Positions::new(r, c.batch, d)?),
        BackwardKind::L2Normalize => k.l2_normalize_backward(i(0), o()?, Heads::new(r, c.heads, c.head_dim)?),
        BackwardKind::Matmul { transposed } => {
            let m = Matmul::new(r, d, hd)?;
            let desc = if transposed { m.transposed_weight() } else { m };
            k.matmul_backward(i(0), w(0), i(1), o()?, Some(o()?), Some(o()?), desc)
        }
        BackwardKind::AttentionWindow => k.attention_backward(
            i(0),
            i(1),
            i(2),
            w(0),
            Some(w(1)),
            i(3),
            o()?,
            o()?,
            o()?,
            o()?,
            Some(o()?),
            window(c)?,
        ),
        BackwardKind::AttentionFull => {
            k.attention_backward(i(0), i(1), i(2), w(0), None, i(3), o()?, o()?, o()?, o()?, None, full(c)?)
        }
        BackwardKind::LinearAttention => {
            k.linear_attention_backward(i(0), i(1), i(2), w(0), i(3), i(4), o()?, o()?, o()?, o()?, o()?, linear(c)?)
        }
        BackwardKind::GateFixed => k.gate_fixed_backward(i(0), i(1), w(0), o()?, o()?, o()?, Rows::new(r, d)?),
        BackwardKind::GateLstm => k.gate_lstm_backward(
            i(0),
            i(1),
            i(2),
            i(3),
            w(0),
            w(1),
            o()?,
            o()?,
            o()?,
            o()?,
            o()?,
            o()?,
            Rows::new(r, d)?,
        ),
        BackwardKind::AddAssign => k.add_assign(i(0), o()?, r * d),
        BackwardKind::GatherRunsAdd => k.gather_runs_add(i(0), o()?, runs(c)?),
        BackwardKind::CopyToTape => k.copy_to_tape(i(0), o()?, r * d),
    })
}

fn short_case() -> impl Strategy<Value = GradShortCase> {
    let kind = prop_oneof![
        Just(BackwardKind::Embed),
        Just(BackwardKind::RmsNorm),
        Just(BackwardKind::AddPositions),
        Just(BackwardKind::L2Normalize),
        any::<bool>().prop_map(|transposed| BackwardKind::Matmul { transposed }),
        Just(BackwardKind::AttentionWindow),
        Just(BackwardKind::AttentionFull),
        Just(BackwardKind::LinearAttention),
        Just(BackwardKind::GateFixed),
        Just(BackwardKind::GateLstm),
        Just(BackwardKind::AddAssign),
        Just(BackwardKind::GatherRunsAdd),
        Just(BackwardKind::CopyToTape),
    ];
    let shortfall = prop_oneof![Just(Shortfall::Length), Just(Shortfall::Offset)];
    ((kind, 1usize..=4, 1usize..=7, 1usize..=2, 1usize..=5, 1usize..=2), (0usize..12, shortfall), any::<u64>())
        .prop_map(|((kind, rows, dim, heads, head_dim, batch), (short, shortfall), seed)| GradShortCase {
            kind,
            rows,
            dim,
            heads,
            head_dim,
            batch,
            short,
            shortfall,
            seed,
        })
}

/// Error path: every backward kernel, each of its buffers in turn one element
/// too small (shorter, or viewed from one element too far): the kernel returns
/// `BufferTooSmall { needed: offset + extent, available: length }` for that
/// buffer, and does not panic.
pub fn grad_error_paths<B: Backend>(k: &mut B::Kernels, options: &Options) -> Result<(), Failure>
where
    B::Kernels: Gradients,
{
    let dtype = B::weight_dtype();
    let k = RefCell::new(k);
    run_cases("grad_error_paths", 256, options, short_case(), |case| {
        let k = &mut **k.borrow_mut();
        let args = arguments(case)?;
        let target = case.short % args.len();
        let (mut buffers, expected) = buffers_with_one_too_small(k, &args, target, case.shortfall, case.seed, dtype)?;
        let result = invoke(k, case, &mut buffers)?;
        let core = result.as_ref().err().and_then(B::core_error);
        expect_too_small(case.kind, target, args[target].0, &result, core, expected)
    })
}

/// Wrong arguments that are not sizes: `embed_backward` with an id outside the
/// vocabulary (`TokenOutOfRange` naming its index and id); `attention_backward`
/// with a position bias but no bias gradient, a bias gradient but no bias, or a
/// bias with an unmasked attention (`InvalidShape` each).
pub fn grad_error_arguments<B: Backend>(k: &mut B::Kernels, options: &Options) -> Result<(), Failure>
where
    B::Kernels: Gradients,
{
    let dtype = B::weight_dtype();
    let k = RefCell::new(k);
    let strategy = (1usize..=6, 1usize..=5, 1usize..=4, 1usize..=2, 1usize..=4, any::<u64>());
    run_cases("grad_error_arguments", 32, options, strategy, |&(count, vocab, dim, heads, head_dim, seed)| {
        let k = &mut **k.borrow_mut();
        let mut rng = Rng::new(seed);
        let index = rng.below(count);
        let mut ids = rng.tokens(count, vocab);
        ids[index] = vocab as u32;
        let ids = tokens(k, &ids)?;
        let d_out = tensor(k, &rng.normals(count * dim, 1.0))?;
        let mut d_table = tensor(k, &rng.normals(vocab * dim, 1.0))?;
        expect_error::<B, _>(
            "embed_backward with an id outside the vocabulary",
            &format!("TokenOutOfRange {{ index: {index}, id: {vocab}, vocab: {vocab} }}"),
            k.embed_backward(
                &ids,
                0,
                View::new(&d_out, 0),
                ViewMut::new(&mut d_table, 0),
                Embed::new(count, vocab, dim)?,
            ),
            |e| matches!(e, CoreError::TokenOutOfRange { index: i, id, vocab: v } if i == index && id as usize == vocab && v == vocab),
        )?;

        let window = Attention::new(1, 2, 4, heads, head_dim, Mask::Window { offset: 2, window: 2 }, false)?;
        let full = Attention::new(1, 2, 4, heads, head_dim, Mask::None, false)?;
        let len = window.key_len();
        let x = tensor(k, &rng.normals(len, 1.0))?;
        let params = weights(k, &rng.normals(heads * (1 + T5_BUCKETS), 1.0), dtype)?;
        let mut g: Vec<K<B>> = Vec::new();
        for _ in 0..5 {
            g.push(tensor(k, &vec![0.0; heads * T5_BUCKETS + len])?);
        }
        let [dq, dk, dv, ds, db] = &mut g[..] else {
            return Err(Failure::Property("internal: five gradient buffers".into()));
        };
        let scale = WeightView::new(&params, 0);
        let bias = WeightView::new(&params, heads);
        let invalid = |e: CoreError| matches!(e, CoreError::InvalidShape { .. });
        for (what, desc, with_bias, with_d_bias) in [
            ("attention_backward with a bias but no bias gradient", window, true, false),
            ("attention_backward with a bias gradient but no bias", window, false, true),
            ("attention_backward with a bias and no mask", full, true, true),
        ] {
            let r = k.attention_backward(
                View::new(&x, 0),
                View::new(&x, 0),
                View::new(&x, 0),
                scale,
                with_bias.then_some(bias),
                View::new(&x, 0),
                ViewMut::new(dq, 0),
                ViewMut::new(dk, 0),
                ViewMut::new(dv, 0),
                ViewMut::new(ds, 0),
                with_d_bias.then(|| ViewMut::new(&mut *db, 0)),
                desc,
            );
            expect_error::<B, _>(what, "InvalidShape", r, invalid)?;
        }
        Ok(())
    })
}

/// A backend's activation buffer.
type K<B> = <<B as Backend>::Kernels as Storage>::Tensor;
