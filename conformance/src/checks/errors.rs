//! Error paths: a kernel handed a buffer one element too small, or a view whose
//! offset pushes it past the end, returns `BufferTooSmall` naming the exact
//! sizes (no panic, no overrun); transfers out of range, wrong lengths, too many
//! tokens, ids outside the vocabulary and resets inside a block give the right
//! error, and a rejected call leaves the stream as it was.

use super::models::{model_case, stream_document, upload_model, ModelCase, Variant};
use crate::backend::Backend;
use crate::failure::Failure;
use crate::gen::Rng;
use crate::io::{call, read_state, tensor, tokens, weights};
use crate::runner::{run_cases, Options};
use crate::tolerance::{compare, Tolerance};
use brt_core::desc::{Attention, Embed, Heads, LinearAttention, Mask, Matmul, Positions, Rows, Strided};
use brt_core::params::T5_BUCKETS;
use brt_core::{CoreError, Kernels, Plan, Storage, Stream, View, ViewMut, WeightDtype, WeightView};
use proptest::prelude::*;
use std::cell::RefCell;

/// The kernels whose extent checks are exercised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelKind {
    /// `embed`.
    Embed,
    /// `rms_norm`.
    RmsNorm,
    /// `add_positions`.
    AddPositions,
    /// `l2_normalize`.
    L2Normalize,
    /// `matmul` (`transposed` picks the weight order).
    Matmul {
        /// Weight stored `(n, k)`.
        transposed: bool,
    },
    /// Windowed attention with the T5 bias.
    AttentionWindow,
    /// Unmasked attention.
    AttentionFull,
    /// `linear_attention`.
    LinearAttention,
    /// `gate_fixed`.
    GateFixed,
    /// `gate_lstm`.
    GateLstm,
    /// `copy`.
    Copy,
    /// `fill`.
    Fill,
    /// `copy_weights`.
    CopyWeights,
}

/// The kind of buffer an argument is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Input,
    Output,
    Weights,
    Tokens,
}

/// How the chosen argument is made too small.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shortfall {
    /// The buffer is one element shorter than offset + extent.
    Length,
    /// The view's offset is one element too far.
    Offset,
}

/// A kernel call whose argument `short` (counted over the call's buffer
/// arguments, modulo their number) is too small.
#[derive(Clone, Debug)]
pub struct ShortCase {
    kind: KernelKind,
    rows: usize,
    dim: usize,
    heads: usize,
    head_dim: usize,
    batch: usize,
    short: usize,
    shortfall: Shortfall,
    seed: u64,
}

/// Every buffer argument of the call: role and extent, in call order.
fn arguments(c: &ShortCase) -> Result<Vec<(Role, usize)>, Failure> {
    use Role::*;
    let (r, d, hd) = (c.rows, c.dim, c.heads * c.head_dim);
    Ok(match c.kind {
        KernelKind::Embed => vec![(Tokens, r), (Weights, 3 * d), (Output, r * d)],
        KernelKind::RmsNorm => vec![(Input, r * d), (Weights, d), (Output, r * d)],
        KernelKind::AddPositions => vec![(Output, r * c.batch * d), (Weights, r * d)],
        KernelKind::L2Normalize => vec![(Output, r * hd)],
        KernelKind::Matmul { .. } => vec![(Input, r * d), (Weights, d * hd), (Output, r * hd)],
        KernelKind::AttentionWindow => {
            let a = window(c)?;
            vec![
                (Input, a.query_len()),
                (Input, a.key_len()),
                (Input, a.key_len()),
                (Weights, c.heads),
                (Weights, c.heads * T5_BUCKETS),
                (Output, a.query_len()),
            ]
        }
        KernelKind::AttentionFull => {
            let a = full(c)?;
            vec![
                (Input, a.query_len()),
                (Input, a.key_len()),
                (Input, a.key_len()),
                (Weights, c.heads),
                (Output, a.query_len()),
            ]
        }
        KernelKind::LinearAttention => {
            let l = linear(c)?;
            vec![
                (Input, l.token_len()),
                (Input, l.token_len()),
                (Input, l.token_len()),
                (Weights, c.heads),
                (Output, l.state_len()),
                (Output, l.token_len()),
            ]
        }
        KernelKind::GateFixed => vec![(Output, r * d), (Input, r * d), (Weights, d)],
        KernelKind::GateLstm => {
            vec![(Output, r * d), (Input, r * d), (Input, r * d), (Input, r * d), (Weights, d), (Weights, d)]
        }
        KernelKind::Copy => vec![(Input, r * d), (Output, r * d)],
        KernelKind::Fill => vec![(Output, runs(c)?.extent())],
        KernelKind::CopyWeights => vec![(Weights, runs(c)?.total()), (Output, runs(c)?.extent())],
    })
}

fn window(c: &ShortCase) -> Result<Attention, Failure> {
    let w = c.dim.min(4);
    Ok(Attention::new(c.batch, c.rows, w + c.rows, c.heads, c.head_dim, Mask::Window { offset: w, window: w }, false)?)
}

fn full(c: &ShortCase) -> Result<Attention, Failure> {
    Ok(Attention::new(c.batch, c.rows, c.dim, c.heads, c.head_dim, Mask::None, true)?)
}

fn linear(c: &ShortCase) -> Result<LinearAttention, Failure> {
    Ok(LinearAttention::new(c.batch, c.rows, c.heads, c.head_dim, false)?)
}

fn runs(c: &ShortCase) -> Result<Strided, Failure> {
    Ok(Strided::new(c.rows, c.dim, c.dim + c.batch)?)
}

/// The buffers of a call and the offsets of its views, by role, in call order.
pub(crate) struct Buffers<K: Storage> {
    pub inputs: Vec<(K::Tensor, usize)>,
    pub outputs: Vec<(K::Tensor, usize)>,
    pub weights: Vec<(K::Weights, usize)>,
    pub tokens: Vec<(K::Tokens, usize)>,
}

/// Buffers for a call's arguments (`(role, extent)` in call order), each with
/// random values (ids 0) at an offset of 0 to 2 with a tail of 0 to 2, except
/// argument `target`, one element too small by `shortfall`. Returns them with the
/// `(needed, available)` sizes the kernel's `BufferTooSmall` must name.
pub(crate) fn buffers_with_one_too_small<K: Storage>(
    k: &mut K,
    args: &[(Role, usize)],
    target: usize,
    shortfall: Shortfall,
    seed: u64,
    dtype: WeightDtype,
) -> Result<(Buffers<K>, (usize, usize)), Failure> {
    let mut rng = Rng::new(seed);
    let mut buffers = Buffers::<K> { inputs: vec![], outputs: vec![], weights: vec![], tokens: vec![] };
    let mut expected = (0, 0);
    for (n, &(role, extent)) in args.iter().enumerate() {
        let (mut offset, tail) = (rng.below(3), rng.below(3));
        let mut len = offset + extent + tail;
        if n == target {
            match shortfall {
                Shortfall::Length => len = offset + extent - 1,
                Shortfall::Offset => offset = len - extent + 1,
            }
            expected = (offset + extent, len);
        }
        let values: Vec<f32> = (0..len).map(|_| rng.normal()).collect();
        match role {
            Role::Input => buffers.inputs.push((tensor(k, &values)?, offset)),
            Role::Output => buffers.outputs.push((tensor(k, &values)?, offset)),
            Role::Weights => buffers.weights.push((weights(k, &values, dtype)?, offset)),
            Role::Tokens => buffers.tokens.push((tokens(k, &vec![0u32; len])?, offset)),
        }
    }
    Ok((buffers, expected))
}

/// `Ok` when the call of `kind` whose argument `target` (a `role` buffer) was
/// too small returned `BufferTooSmall` with exactly the `(needed, available)`
/// sizes; else a failure naming what it returned (`core`: its core error).
pub(crate) fn expect_too_small<E: std::fmt::Display>(
    kind: impl std::fmt::Debug,
    target: usize,
    role: Role,
    result: &Result<(), E>,
    core: Option<CoreError>,
    (needed, available): (usize, usize),
) -> Result<(), Failure> {
    match core {
        Some(CoreError::BufferTooSmall { needed: n, available: a, .. }) if n == needed && a == available => Ok(()),
        _ => Err(Failure::WrongError {
            call: format!("{kind:?} with argument {target} ({role:?}) too small"),
            expected: format!("BufferTooSmall {{ needed: {needed}, available: {available} }}"),
            got: describe(result, core),
        }),
    }
}

/// Runs the call with `b`'s buffers.
fn invoke<K: Kernels>(k: &mut K, c: &ShortCase, b: &mut Buffers<K>) -> Result<Result<(), K::Error>, Failure> {
    let (r, d, hd) = (c.rows, c.dim, c.heads * c.head_dim);
    let Buffers { inputs, outputs, weights, tokens } = b;
    let i = |n: usize| View::new(&inputs[n].0, inputs[n].1);
    let w = |n: usize| WeightView::new(&weights[n].0, weights[n].1);
    let mut outs = outputs.iter_mut().map(|(t, o)| ViewMut::new(t, *o));
    let mut o = || outs.next().ok_or(Failure::Property("internal: missing output buffer".into()));
    Ok(match c.kind {
        KernelKind::Embed => k.embed(&tokens[0].0, tokens[0].1, w(0), o()?, Embed::new(r, 3, d)?),
        KernelKind::RmsNorm => k.rms_norm(i(0), w(0), o()?, Rows::new(r, d)?),
        KernelKind::AddPositions => k.add_positions(o()?, w(0), Positions::new(r, c.batch, d)?),
        KernelKind::L2Normalize => k.l2_normalize(o()?, Heads::new(r, c.heads, c.head_dim)?),
        KernelKind::Matmul { transposed } => {
            let m = Matmul::new(r, d, hd)?;
            k.matmul(i(0), w(0), o()?, if transposed { m.transposed_weight() } else { m })
        }
        KernelKind::AttentionWindow => k.attention(i(0), i(1), i(2), w(0), Some(w(1)), o()?, window(c)?),
        KernelKind::AttentionFull => k.attention(i(0), i(1), i(2), w(0), None, o()?, full(c)?),
        KernelKind::LinearAttention => {
            let state = o()?;
            k.linear_attention(i(0), i(1), i(2), w(0), state, o()?, linear(c)?)
        }
        KernelKind::GateFixed => k.gate_fixed(o()?, i(0), w(0), Rows::new(r, d)?),
        KernelKind::GateLstm => k.gate_lstm(o()?, i(0), i(1), i(2), w(0), w(1), Rows::new(r, d)?),
        KernelKind::Copy => k.copy(i(0), o()?, r * d),
        KernelKind::Fill => k.fill(o()?, runs(c)?, 0.5),
        KernelKind::CopyWeights => k.copy_weights(w(0), o()?, runs(c)?),
    })
}

/// What a call returned, for a failure: `Ok`, its core error, or its own error.
pub(crate) fn describe<E: std::fmt::Display>(r: &Result<(), E>, core: Option<CoreError>) -> String {
    match (r, core) {
        (Ok(()), _) => "Ok(())".into(),
        (Err(e), Some(c)) => format!("{c:?} ({e})"),
        (Err(e), None) => format!("a non-core error: {e}"),
    }
}

fn short_case() -> impl Strategy<Value = ShortCase> {
    let kind = prop_oneof![
        Just(KernelKind::Embed),
        Just(KernelKind::RmsNorm),
        Just(KernelKind::AddPositions),
        Just(KernelKind::L2Normalize),
        any::<bool>().prop_map(|transposed| KernelKind::Matmul { transposed }),
        Just(KernelKind::AttentionWindow),
        Just(KernelKind::AttentionFull),
        Just(KernelKind::LinearAttention),
        Just(KernelKind::GateFixed),
        Just(KernelKind::GateLstm),
        Just(KernelKind::Copy),
        Just(KernelKind::Fill),
        Just(KernelKind::CopyWeights),
    ];
    let shortfall = prop_oneof![Just(Shortfall::Length), Just(Shortfall::Offset)];
    ((kind, 1usize..=4, 1usize..=7, 1usize..=2, 1usize..=5, 1usize..=2), (0usize..6, shortfall), any::<u64>()).prop_map(
        |((kind, rows, dim, heads, head_dim, batch), (short, shortfall), seed)| ShortCase {
            kind,
            rows,
            dim,
            heads,
            head_dim,
            batch,
            short,
            shortfall,
            seed,
        },
    )
}

/// Error path: every kernel, each of its buffers in turn one element too small
/// (shorter, or viewed from one element too far): the kernel returns
/// `BufferTooSmall { needed: offset + extent, available: length }` for that
/// buffer, and does not panic.
pub fn error_paths_kernels<B: Backend>(k: &mut B::Kernels, options: &Options) -> Result<(), Failure> {
    let dtype = B::weight_dtype();
    let k = RefCell::new(k);
    run_cases("error_paths_kernels", 256, options, short_case(), |case| {
        let k = &mut **k.borrow_mut();
        let args = arguments(case)?;
        let target = case.short % args.len();
        let (mut buffers, expected) = buffers_with_one_too_small(k, &args, target, case.shortfall, case.seed, dtype)?;
        let result = invoke(k, case, &mut buffers)?;
        let core = result.as_ref().err().and_then(B::core_error);
        expect_too_small(case.kind, target, args[target].0, &result, core, expected)
    })
}

/// Checks that `result` is an error whose core error satisfies `ok`.
pub(crate) fn expect_error<B: Backend, T>(
    call: &str,
    expected: &str,
    result: Result<T, <B::Kernels as Storage>::Error>,
    ok: impl Fn(CoreError) -> bool,
) -> Result<(), Failure> {
    match result {
        Err(e) if B::core_error(&e).is_some_and(&ok) => Ok(()),
        Err(e) => {
            let core = B::core_error(&e);
            Err(Failure::WrongError { call: call.into(), expected: expected.into(), got: describe(&Err(e), core) })
        }
        Ok(_) => Err(Failure::WrongError { call: call.into(), expected: expected.into(), got: "Ok".into() }),
    }
}

/// Error paths of transfers and of the stream on this backend: writes and reads
/// past the end of a buffer (`BufferTooSmall` with the exact sizes), an absurd
/// allocation (an error, not an abort), a parameter buffer of the wrong length,
/// tokens not a multiple of the batch, more tokens than planned, an id outside
/// the vocabulary, resets of the wrong length or inside a block, a logits buffer
/// or saved state of the wrong length. After all of them the stream goes on
/// exactly as if they had never been attempted.
pub fn error_paths_stream<B: Backend>(k: &mut B::Kernels, options: &Options) -> Result<(), Failure> {
    let dtype = B::weight_dtype();
    let k = RefCell::new(k);
    run_cases("error_paths_stream", 32, options, model_case(Variant::Any, 1..=3, 1), |case| {
        let k = &mut **k.borrow_mut();
        transfers::<B>(k, case.seed, dtype)?;
        stream_errors::<B>(k, case, dtype)
    })
}

fn transfers<B: Backend>(k: &mut B::Kernels, seed: u64, dtype: WeightDtype) -> Result<(), Failure> {
    let mut rng = Rng::new(seed);
    let len = 1 + rng.below(9);
    let n = 1 + rng.below(len);
    let data: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
    let past = len - n + 1;
    let too_small = |c: CoreError| matches!(c, CoreError::BufferTooSmall { needed, available, .. } if needed == len + 1 && available == len);
    let expected = format!("BufferTooSmall {{ needed: {}, available: {len} }}", len + 1);

    let mut t = call("alloc_tensor", k.alloc_tensor(len))?;
    expect_error::<B, _>("write_tensor past the end", &expected, k.write_tensor(&mut t, past, &data), too_small)?;
    let mut out = vec![0f32; n];
    expect_error::<B, _>("read_tensor past the end", &expected, k.read_tensor(&t, past, &mut out), too_small)?;
    let mut w = call("alloc_weights", k.alloc_weights(len, dtype))?;
    let wrote = crate::io::with_weight_data(dtype, &data, |d| k.write_weights(&mut w, past, d));
    expect_error::<B, _>("write_weights past the end", &expected, wrote, too_small)?;
    let mut tk = call("alloc_tokens", k.alloc_tokens(len))?;
    let ids = vec![0u32; n];
    expect_error::<B, _>("write_tokens past the end", &expected, k.write_tokens(&mut tk, past, &ids), too_small)?;
    match k.alloc_tensor(usize::MAX / 2) {
        Err(_) => Ok(()),
        Ok(_) => Err(Failure::WrongError {
            call: "alloc_tensor(usize::MAX / 2)".into(),
            expected: "an error (no machine has that much memory)".into(),
            got: "Ok".into(),
        }),
    }
}

fn stream_errors<B: Backend>(k: &mut B::Kernels, case: &ModelCase, dtype: WeightDtype) -> Result<(), Failure> {
    let c = case.config;
    let (batch, vocab, w) = (case.batch, c.vocab, c.window);
    let flat = case.weights(dtype)?;
    let short = &flat[..flat.len() - 1];
    let model = crate::io::with_weight_data(dtype, short, |d| brt_core::Model::from_flat(k, &c, dtype, d));
    let expected = format!("LengthMismatch {{ expected: {}, actual: {} }}", flat.len(), short.len());
    expect_error::<B, _>(
        "Model::from_flat with one parameter missing",
        &expected,
        model,
        |e| matches!(e, CoreError::LengthMismatch { expected, actual, .. } if expected == flat.len() && actual == short.len()),
    )?;
    let model = upload_model(k, &c, &flat, dtype)?;
    let max = 2 * w + 1;
    let mut rng = Rng::new(case.seed ^ 0x0065_7272_6f72);
    let first = rng.tokens(batch, vocab);
    let rest = rng.tokens(2 * w * batch, vocab);

    let plan = Plan::new(&c, batch, max)?;
    let mut stream = call("Stream::new", Stream::new(k, &model, plan))?;
    call("Stream::forward", stream.forward(k, &model, &first, &[]))?;

    if batch > 1 {
        let ids = rng.tokens(batch + 1, vocab);
        expect_error::<B, _>(
            "forward with tokens not a multiple of the batch",
            "LengthMismatch",
            stream.forward(k, &model, &ids, &[]),
            |e| matches!(e, CoreError::LengthMismatch { actual, .. } if actual == batch + 1),
        )?;
    }
    let ids = rng.tokens((max + 1) * batch, vocab);
    expect_error::<B, _>(
        "forward with more tokens than planned",
        &format!("TooManyTokens {{ tokens: {}, max: {max} }}", max + 1),
        stream.forward(k, &model, &ids, &[]),
        |e| matches!(e, CoreError::TooManyTokens { tokens, max: m } if tokens == max + 1 && m == max),
    )?;
    let mut ids = rng.tokens(batch, vocab);
    let index = rng.below(batch);
    ids[index] = vocab as u32;
    expect_error::<B, _>(
        "forward with an id outside the vocabulary",
        &format!("TokenOutOfRange {{ index: {index}, id: {vocab}, vocab: {vocab} }}"),
        stream.forward(k, &model, &ids, &[]),
        |e| matches!(e, CoreError::TokenOutOfRange { index: i, id, vocab: v } if i == index && id as usize == vocab && v == vocab),
    )?;
    let ids = rng.tokens(batch, vocab);
    expect_error::<B, _>(
        "forward with resets of the wrong length",
        "LengthMismatch",
        stream.forward(k, &model, &ids, &vec![true; batch + 1]),
        |e| matches!(e, CoreError::LengthMismatch { expected, actual, .. } if expected == batch && actual == batch + 1),
    )?;
    if batch > 1 && w > 1 {
        let mut resets = vec![false; batch];
        resets[0] = true;
        expect_error::<B, _>(
            "forward resetting one row inside a block",
            "UnalignedReset { position_in_block: 1 }",
            stream.forward(k, &model, &ids, &resets),
            |e| matches!(e, CoreError::UnalignedReset { position_in_block: 1 }),
        )?;
    }
    let mut logits = vec![0f32; batch * vocab + 1];
    expect_error::<B, _>(
        "read_logits into a buffer of the wrong length",
        "LengthMismatch",
        stream.read_logits(k, &mut logits),
        |e| matches!(e, CoreError::LengthMismatch { expected, actual, .. } if expected == batch * vocab && actual == batch * vocab + 1),
    )?;
    let saved = vec![0f32; stream.plan().saved_state_len() + 1];
    expect_error::<B, _>(
        "restore of a state of the wrong length",
        "LengthMismatch",
        stream.restore(k, &saved, 0),
        |e| matches!(e, CoreError::LengthMismatch { .. }),
    )?;

    // The rejected calls changed nothing: the stream continues like an untouched one.
    let mut last = vec![0f32; batch * vocab];
    call("Stream::read_logits", stream.read_logits(k, &mut last))?;
    call("Stream::forward", stream.forward(k, &model, &rest, &[]))?;
    let mut after = vec![0f32; rest.len() * vocab];
    call("Stream::read_logits", stream.read_logits(k, &mut after))?;
    let state = read_state(k, &stream)?;
    let clean = stream_document(k, &model, batch, max, &[first, rest], &[])?;
    compare("logits of the first call, after the rejected calls", &last, &clean.logits[0], Tolerance::EXACT)?;
    compare("logits after the rejected calls vs an untouched stream", &after, &clean.logits[1], Tolerance::EXACT)?;
    compare("stream state after the rejected calls vs an untouched stream", &state, &clean.state, Tolerance::EXACT)
}
