//! Properties of one backend on its own (no reference needed): streaming
//! invariance, document resets, independence of batch rows, determinism.

use super::models::{
    model_case, reference_conditioning, stream_document, stream_planned, upload_model, ModelCase, Variant,
};
use crate::backend::Backend;
use crate::failure::Failure;
use crate::gen::Rng;
use crate::io::{call, read_state};
use crate::runner::{run_cases, Options};
use crate::tolerance::{compare, conditioned, tolerance, Check, Tolerance};
use brt_core::{Kernels, Plan, Stream};
use proptest::prelude::*;
use std::cell::RefCell;

/// Token ids of `row` in position-major call tokens.
fn row_of(ids: &[u32], batch: usize, row: usize) -> Vec<u32> {
    ids.iter().skip(row).step_by(batch).copied().collect()
}

/// Logits of `row` in position-major `T x B x V` logits.
fn row_logits(logits: &[f32], batch: usize, vocab: usize, row: usize) -> Vec<f32> {
    logits.chunks_exact(vocab).skip(row).step_by(batch).flatten().copied().collect()
}

/// Property: any split of a document into calls gives the same logits. The same
/// tokens go through in one call and in the case's calls (which end anywhere
/// inside a block); every position's logits must agree within the rounding the
/// case's own conditioning allows (as the model checks: the reference's run of
/// the case against its run with every weight nudged).
pub fn streaming_invariance<B: Backend>(k: &mut B::Kernels, options: &Options) -> Result<(), Failure> {
    let dtype = B::weight_dtype();
    let floor = tolerance(Check::StreamSplit, dtype);
    let k = RefCell::new(k);
    run_cases("streaming_invariance", 64, options, model_case(Variant::Any, 1..=3, 5), |case| {
        let k = &mut **k.borrow_mut();
        let flat = case.weights(dtype)?;
        let model = upload_model(k, &case.config, &flat, dtype)?;
        let calls = case.tokens();
        let whole: Vec<u32> = calls.concat();
        let total = whole.len() / case.batch;
        let one = stream_document(k, &model, case.batch, total, &[whole], &[])?;
        let split = stream_document(k, &model, case.batch, case.max_call(), &calls, &[])?;
        let (want, moved) = reference_conditioning(&case.config, case.seed, (&flat, dtype), case.batch, &calls, &[])?;
        let tol = conditioned(floor, &want.logits.concat(), &moved.logits.concat());
        compare("logits of the document in pieces vs in one call", &split.logits.concat(), &one.logits.concat(), tol)
    })
}

/// Property: the KV runway moves where keys and values lie, never a result. A
/// document (with its resets) streamed without runway and with one (random, often
/// shorter than the calls, so windows both slide in place and move back) gives
/// bit-identical logits and saved state; and a state saved midway from the second
/// stream and restored into a third, with another runway and its window elsewhere,
/// continues the document bit-identically.
pub fn kv_runway<B: Backend>(k: &mut B::Kernels, options: &Options) -> Result<(), Failure> {
    let dtype = B::weight_dtype();
    let k = RefCell::new(k);
    let strategy = (model_case(Variant::Any, 1..=3, 5), 0usize..=24, 0usize..=24, any::<prop::sample::Index>());
    run_cases("kv_runway", 48, options, strategy, |(case, runway, other_runway, split)| {
        let k = &mut **k.borrow_mut();
        let flat = case.weights(dtype)?;
        let model = upload_model(k, &case.config, &flat, dtype)?;
        let (calls, max) = (case.tokens(), case.max_call());
        let plan = Plan::new(&case.config, case.batch, max)?;
        let without = stream_planned(k, &model, plan, &calls, &case.resets)?;
        let with = stream_planned(k, &model, plan.with_kv_runway(*runway)?, &calls, &case.resets)?;
        for (c, (w, wo)) in with.logits.iter().zip(&without.logits).enumerate() {
            compare(&format!("logits of call {c} with runway {runway} vs none"), w, wo, Tolerance::EXACT)?;
        }
        compare("saved state with the runway vs none", &with.state, &without.state, Tolerance::EXACT)?;

        let mid = split.index(calls.len());
        let reset = |c: usize| case.resets.get(c).map_or(&[][..], |r| &r[..]);
        let mut saving = call("Stream::new", Stream::new(k, &model, plan.with_kv_runway(*runway)?))?;
        for (c, ids) in calls[..mid].iter().enumerate() {
            call("Stream::forward", saving.forward(k, &model, ids, reset(c)))?;
        }
        let saved = read_state(k, &saving)?;
        // The restoring stream has moved its windows and filled its runway first.
        let mut restored = call("Stream::new", Stream::new(k, &model, plan.with_kv_runway(*other_runway)?))?;
        for ids in calls.iter().rev().take(2) {
            call("Stream::forward", restored.forward(k, &model, ids, &[]))?;
        }
        call("Stream::restore", restored.restore(k, &saved, saving.position_in_block()))?;
        for (c, ids) in calls.iter().enumerate().skip(mid) {
            call("Stream::forward", restored.forward(k, &model, ids, reset(c)))?;
            let mut logits = vec![0f32; ids.len() * case.config.vocab];
            call("Stream::read_logits", restored.read_logits(k, &mut logits))?;
            let what = format!("logits of call {c} after a restore at call {mid} (runways {runway}, {other_runway})");
            compare(&what, &logits, &without.logits[c], Tolerance::EXACT)?;
        }
        Ok(())
    })
}

/// A stream whose rows start over at a block boundary: a prefix of whole blocks,
/// then the resets, then the rest in calls.
#[derive(Clone, Debug)]
pub struct ResetCase {
    model: ModelCase,
    /// Whole blocks fed before the reset.
    prefix_blocks: usize,
    /// Rows that start a new document (bit per row; at least one).
    reset_rows: u8,
}

/// Property: a row that starts a new document behaves exactly like a fresh run,
/// whatever its neighbours (which continue their own documents) and its own past
/// hold. After a prefix of whole blocks, some rows reset; their logits from then
/// on must be bit-identical to those of a fresh stream of the same shape whose
/// other rows hold different documents.
pub fn document_reset<B: Backend>(k: &mut B::Kernels, options: &Options) -> Result<(), Failure> {
    let dtype = B::weight_dtype();
    let tol = tolerance(Check::Reset, dtype);
    let k = RefCell::new(k);
    let strategy =
        (model_case(Variant::Any, 2..=3, 3), 1usize..=2, 1u8..=7).prop_map(|(mut model, prefix_blocks, bits)| {
            model.resets.clear();
            let all = (1u8 << model.batch) - 1;
            let reset_rows = if bits & all == 0 { 1 } else { bits & all };
            ResetCase { model, prefix_blocks, reset_rows }
        });
    run_cases("document_reset", 64, options, strategy, |case| {
        let k = &mut **k.borrow_mut();
        let m = &case.model;
        let (batch, vocab, w) = (m.batch, m.config.vocab, m.config.window);
        let flat = m.weights(dtype)?;
        let model = upload_model(k, &m.config, &flat, dtype)?;
        let mut rng = Rng::new(m.seed ^ 0x0072_6573_6574);
        let prefix = rng.tokens(case.prefix_blocks * w * batch, vocab);
        let after = m.tokens();
        let resets: Vec<bool> = (0..batch).map(|r| case.reset_rows & (1 << r) != 0).collect();

        // Prefix, then the reset on the first call after it.
        let mut calls = vec![prefix];
        calls.extend(after.iter().cloned());
        let mut flags = vec![Vec::new(), resets.clone()];
        flags.resize(calls.len(), Vec::new());
        let max = m.max_call().max(case.prefix_blocks * w);
        let continued = stream_document(k, &model, batch, max, &calls, &flags)?;

        // A fresh stream: the reset rows get the same tokens, the others new ones.
        let fresh_tokens: Vec<Vec<u32>> = after
            .iter()
            .map(|ids| {
                ids.iter()
                    .enumerate()
                    .map(|(i, &id)| if resets[i % batch] { id } else { rng.below(vocab) as u32 })
                    .collect()
            })
            .collect();
        let fresh = stream_document(k, &model, batch, max, &fresh_tokens, &[])?;

        for (c, (got, want)) in continued.logits[1..].iter().zip(&fresh.logits).enumerate() {
            for row in (0..batch).filter(|&r| resets[r]) {
                compare(
                    &format!("logits of reset row {row}, call {c} after the reset, vs a fresh run"),
                    &row_logits(got, batch, vocab, row),
                    &row_logits(want, batch, vocab, row),
                    tol,
                )?;
            }
        }
        Ok(())
    })
}

/// Property: batch rows are independent. A row's logits do not change when the
/// other rows hold other documents (same shapes: bit-identical), and equal those
/// of the same row run alone in a batch of one (other shapes: within the
/// rounding the row's own conditioning allows, measured as in
/// [`streaming_invariance`]).
pub fn batch_independence<B: Backend>(k: &mut B::Kernels, options: &Options) -> Result<(), Failure> {
    let dtype = B::weight_dtype();
    let same = tolerance(Check::Neighbours, dtype);
    let floor = tolerance(Check::BatchAlone, dtype);
    let k = RefCell::new(k);
    let strategy = (model_case(Variant::Any, 2..=3, 3), 0usize..3).prop_map(|(mut m, row)| {
        m.resets.clear();
        let row = row % m.batch;
        (m, row)
    });
    run_cases("batch_independence", 64, options, strategy, |(m, row)| {
        let k = &mut **k.borrow_mut();
        let (batch, vocab) = (m.batch, m.config.vocab);
        let flat = m.weights(dtype)?;
        let model = upload_model(k, &m.config, &flat, dtype)?;
        let calls = m.tokens();
        let base = stream_document(k, &model, batch, m.max_call(), &calls, &[])?;

        let mut rng = Rng::new(m.seed ^ 0x006e_6569_6768);
        let others: Vec<Vec<u32>> = calls
            .iter()
            .map(|ids| {
                ids.iter()
                    .enumerate()
                    .map(|(i, &id)| if i % batch == *row { id } else { rng.below(vocab) as u32 })
                    .collect()
            })
            .collect();
        let changed = stream_document(k, &model, batch, m.max_call(), &others, &[])?;

        let single: Vec<Vec<u32>> = calls.iter().map(|ids| row_of(ids, batch, *row)).collect();
        let solo = stream_document(k, &model, 1, m.max_call(), &single, &[])?;
        let (want, moved) = reference_conditioning(&m.config, m.seed, (&flat, dtype), 1, &single, &[])?;

        for (c, ((b, ch), s)) in base.logits.iter().zip(&changed.logits).zip(&solo.logits).enumerate() {
            let mine = row_logits(b, batch, vocab, *row);
            compare(
                &format!("logits of row {row}, call {c}, with other neighbours"),
                &row_logits(ch, batch, vocab, *row),
                &mine,
                same,
            )?;
            let alone = conditioned(floor, &want.logits[c], &moved.logits[c]);
            compare(&format!("logits of row {row}, call {c}, alone in a batch of one"), s, &mine, alone)?;
        }
        Ok(())
    })
}

/// Property: the same input twice gives bit-identical output on the same backend:
/// two fresh streams over two uploads of the same model.
pub fn determinism<B: Backend>(k: &mut B::Kernels, options: &Options) -> Result<(), Failure> {
    let dtype = B::weight_dtype();
    let k = RefCell::new(k);
    run_cases("determinism", 48, options, model_case(Variant::Any, 1..=3, 4), |case| {
        let k = &mut **k.borrow_mut();
        let flat = case.weights(dtype)?;
        let tokens = case.tokens();
        let first = run_twice_part(k, case, &flat, dtype, &tokens)?;
        let second = run_twice_part(k, case, &flat, dtype, &tokens)?;
        for (c, (a, b)) in first.logits.iter().zip(&second.logits).enumerate() {
            compare(&format!("logits of call {c}, second run vs first"), b, a, Tolerance::EXACT)?;
        }
        compare("stream state, second run vs first", &second.state, &first.state, Tolerance::EXACT)
    })
}

fn run_twice_part<K: Kernels>(
    k: &mut K,
    case: &ModelCase,
    flat: &[f32],
    dtype: brt_core::WeightDtype,
    tokens: &[Vec<u32>],
) -> Result<super::models::Streamed, Failure> {
    let model = upload_model(k, &case.config, flat, dtype)?;
    stream_document(k, &model, case.batch, case.max_call(), tokens, &case.resets)
}
