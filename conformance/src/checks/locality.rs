//! Window locality: in one attention call, keys outside a query's window have no
//! effect and the keys at both ends of it do; in a stack of `L` window layers with
//! no recurrence, a token more than `L*W` positions back has no effect on the
//! logits, and one exactly `L*W` back does.

use super::attention::{run_attention, window_mask, AttentionCase, Logits, MaskCase};
use super::kernels::pads;
use super::models::{model_case, stream_document, upload_model, Variant};
use crate::backend::Backend;
use crate::failure::Failure;
use crate::gen::{head_dim, seed, Rng};
use crate::io::round_to;
use crate::runner::{run_cases, Options};
use crate::tolerance::{compare, tolerance, Check};
use brt_core::params::T5_BUCKETS;
use brt_core::{LayerParam, Param, WeightLayout};
use proptest::prelude::*;
use std::cell::RefCell;

/// Output rows of query `i` (every batch row), from a whole output buffer.
fn query_rows(out: &[f32], offset: usize, i: usize, batch: usize, width: usize) -> Vec<f32> {
    out[offset + i * batch * width..offset + (i + 1) * batch * width].to_vec()
}

/// Property (one layer): for a query `i` of a windowed attention, replacing the
/// keys and values it must not see (its own among them) leaves its output
/// bit-identical, while changing the value of the oldest visible key (`W` back)
/// or of the newest (1 back) changes it.
pub fn window_locality_kernel<B: Backend>(k: &mut B::Kernels, options: &Options) -> Result<(), Failure> {
    let dtype = B::weight_dtype();
    let tol = tolerance(Check::Locality, dtype);
    let k = RefCell::new(k);
    let strategy =
        ((1usize..=3, 1usize..=5, 1usize..=3, head_dim()), (window_mask(), any::<bool>()), pads(), seed(), 0usize..5)
            .prop_map(|((batch, queries, heads, head_dim), (mask, abs_scale), pads, seed, query)| {
                let case = AttentionCase {
                    batch,
                    queries,
                    heads,
                    head_dim,
                    mask,
                    bias: true,
                    abs_scale,
                    logits: Logits::Normal,
                    pads,
                    seed,
                };
                (case, query % queries)
            });
    run_cases("window_locality_kernel", 128, options, strategy, |(case, i)| {
        let k = &mut **k.borrow_mut();
        let (i, batch, width) = (*i, case.batch, case.heads * case.head_dim);
        let MaskCase::Window { window, .. } = case.mask else {
            return Err(Failure::Property("window locality needs a window mask".into()));
        };
        let mut data = case.data(dtype)?;
        // Moderate scales and biases (logits within +-4) so that every visible key
        // keeps a weight of at least about e^-8 / (W + 1).
        let mut rng = Rng::new(case.seed ^ 0x006c_6f63_616c);
        for s in data.scale.data_mut(case.heads) {
            *s = rng.uniform(0.5, 2.0);
        }
        round_to(dtype, &mut data.scale.values);
        if let Some(bias) = &mut data.bias {
            for b in bias.data_mut(case.heads * T5_BUCKETS) {
                *b = rng.uniform(-1.0, 1.0);
            }
            round_to(dtype, &mut bias.values);
        }
        let visible = data.desc.visible_keys(i);
        let (k_at, v_at) = (data.k.offset, data.v.offset);
        let out_at = data.out.offset;
        let base = query_rows(&run_attention(k, &data, dtype)?, out_at, i, batch, width);

        // Every key position outside the window, replaced in every row and head.
        let mut outside = AttentionDataEdit::new(&data);
        for j in (0..data.desc.keys()).filter(|j| !visible.contains(j)) {
            for e in j * batch * width..(j + 1) * batch * width {
                outside.k[k_at + e] = rng.normal();
                outside.v[v_at + e] = 10.0 * rng.normal();
            }
        }
        let changed = outside.run(k, &mut data, dtype)?;
        compare(
            &format!("output of query {i} after replacing the keys outside its window"),
            &query_rows(&changed, out_at, i, batch, width),
            &base,
            tol,
        )?;

        // The keys at both ends of the window matter.
        for (j, which) in [(visible.start, "oldest (W back)"), (visible.end - 1, "newest (1 back)")] {
            let mut edge = AttentionDataEdit::new(&data);
            for e in j * batch * width..(j + 1) * batch * width {
                edge.v[v_at + e] += 100.0;
            }
            let changed = edge.run(k, &mut data, dtype)?;
            if query_rows(&changed, out_at, i, batch, width) == base {
                return Err(Failure::Property(format!(
                    "the output of query {i} (window {window}) ignores a change of the value of the {which} key it \
                     must see (key position {j})"
                )));
            }
        }
        Ok(())
    })
}

/// A modified copy of the keys and values of an attention call.
struct AttentionDataEdit {
    k: Vec<f32>,
    v: Vec<f32>,
}

impl AttentionDataEdit {
    fn new(d: &super::attention::AttentionData) -> Self {
        AttentionDataEdit { k: d.k.values.clone(), v: d.v.values.clone() }
    }

    /// Runs the call with these keys and values, restoring the originals after.
    fn run<K: brt_core::Kernels>(
        self,
        k: &mut K,
        d: &mut super::attention::AttentionData,
        dtype: brt_core::WeightDtype,
    ) -> Result<Vec<f32>, Failure> {
        let keys = std::mem::replace(&mut d.k.values, self.k);
        let values = std::mem::replace(&mut d.v.values, self.v);
        let out = run_attention(k, d, dtype);
        d.k.values = keys;
        d.v.values = values;
        out
    }
}

/// Property (a stack): with `L` window layers and no recurrent layer, changing
/// the token at position `p` of one row leaves the logits at positions past
/// `p + L*W` bit-identical (and every other row entirely), while the logits at
/// exactly `p + L*W` change: the receptive field is exactly `L*W` tokens.
pub fn window_locality_model<B: Backend>(k: &mut B::Kernels, options: &Options) -> Result<(), Failure> {
    let dtype = B::weight_dtype();
    let tol = tolerance(Check::Locality, dtype);
    let k = RefCell::new(k);
    let strategy = (model_case(Variant::Plain, 1..=2, 1), 0usize..=6, any::<u64>()).prop_map(|(m, extra, pick)| {
        let span = m.config.layers * m.config.window;
        (m, span + 1 + extra, pick)
    });
    run_cases("window_locality_model", 64, options, strategy, |(m, n, pick)| {
        let k = &mut **k.borrow_mut();
        let (batch, vocab, n) = (m.batch, m.config.vocab, *n);
        let span = m.config.layers * m.config.window;
        let mut flat = m.weights(dtype)?;
        // Moderate attention scales, so that a key W back keeps a visible weight
        // through every layer (the positive half of the check).
        let layout = WeightLayout::new(&m.config)?;
        let mut rng = Rng::new(*pick);
        for spec in layout.params() {
            if let Param::Layer(_, LayerParam::AttnScale) = spec.param {
                for v in &mut flat[spec.offset..spec.offset + spec.span.len()] {
                    *v = rng.uniform(0.5, 1.5);
                }
            }
        }
        round_to(dtype, &mut flat);
        let model = upload_model(k, &m.config, &flat, dtype)?;

        let tokens = rng.tokens(n * batch, vocab);
        let p = rng.below(n - span);
        let row = rng.below(batch);
        let mut changed = tokens.clone();
        let old = changed[p * batch + row] as usize;
        changed[p * batch + row] = ((old + 1 + rng.below(vocab - 1)) % vocab) as u32;

        let a = stream_document(k, &model, batch, n, &[tokens], &[])?;
        let b = stream_document(k, &model, batch, n, &[changed], &[])?;
        let (a, b) = (&a.logits[0], &b.logits[0]);
        let at = |t: usize, r: usize| (t * batch + r) * vocab;
        for t in 0..n {
            for r in 0..batch {
                let (x, y) = (&a[at(t, r)..at(t, r) + vocab], &b[at(t, r)..at(t, r) + vocab]);
                if r != row || t > p + span {
                    let what = if r != row {
                        format!("logits of row {r} (not the changed row {row}) at position {t}")
                    } else {
                        format!("logits at position {t}, more than L*W = {span} after the changed token at {p}")
                    };
                    compare(&what, y, x, tol)?;
                } else if t == p + span && x == y {
                    return Err(Failure::Property(format!(
                        "the logits at position {t} ignore the token at {p}, exactly L*W = {span} back, which is \
                         inside the receptive field of {} window layers of W = {}",
                        m.config.layers, m.config.window
                    )));
                }
            }
        }
        Ok(())
    })
}
