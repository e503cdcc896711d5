//! 8-bit weights (Q8_0, see `brt_core::encoding`): a backend that reads them
//! computes with exactly the values the blocks stand for, and one that does not
//! refuses them with an error.
//!
//! Models are drawn as in `checks::models` (every variant, several calls, resets)
//! but with widths that are whole blocks of 32 (`d`, `H*dh`, `F`), so their
//! matrices are quantized, and some that are not (those matrices stay f32). The
//! Q8_0 tensor data is built by the core's encoder, and the backend loads it
//! its own way ([`Backend::q8_0_weights`]: in place on the CPU).

use crate::backend::{Backend, TensorData};
use crate::checks::models::{model_case, stream_document, upload_model, ModelCase, Variant};
use crate::failure::Failure;
use crate::io::call;
use crate::runner::{run_cases, Options};
use crate::tolerance::{compare, tolerance, Check, Tolerance};
use brt_core::{ByteLayout, Model, Reference, Storage, TensorType, WeightData, WeightDtype};
use brt_cpu::Heap;
use proptest::prelude::*;
use std::cell::RefCell;

/// Model cases whose widths are mostly whole Q8_0 blocks.
fn quantized_case() -> impl Strategy<Value = ModelCase> {
    // (d, heads, head width, F): H*dh of 32 or 64 (quantized) or 24 (f32), F of
    // 32, 64, 96 (quantized) or 40 (f32).
    let widths = (
        prop_oneof![Just(32usize), Just(64)],
        prop_oneof![Just((1usize, 32usize)), Just((2, 16)), Just((4, 8)), Just((2, 32)), Just((3, 8))],
        prop_oneof![Just(32usize), Just(64), Just(96), Just(40)],
    );
    (model_case(Variant::Any, 1..=3, 4), widths).prop_map(|(mut case, (d, (heads, head_dim), mlp))| {
        case.config.d_model = d;
        case.config.heads = heads;
        case.config.head_dim = head_dim;
        case.config.mlp_hidden = mlp;
        case
    })
}

/// Q8_0 models on the backend against (1) the same backend running the decoded
/// values as an f32 model: bit-identical, since the blocks are read as the exact
/// values they stand for and then used as f32 weights are; and (2) the
/// reference on the decoded values, with the f32 model tolerance. A backend that
/// does not read Q8_0 must refuse to allocate such weights.
pub fn q8_0_models<B: Backend>(k: &mut B::Kernels, options: &Options) -> Result<(), Failure> {
    let probe = ByteLayout::new(&brt_core::Config::plain(4, 32, 1, 32, 32, 1, 2), WeightDtype::Q8_0, 32)?;
    let probe_data = TensorData::encode(&probe, WeightData::F32(&vec![0.5; probe.layout().len()]))?;
    if B::q8_0_weights(k, &probe, &probe_data).is_none() {
        return match k.alloc_weights(probe.layout().len(), WeightDtype::Q8_0) {
            Err(e) if e.to_string().contains("q8_0") => Ok(()),
            Err(e) => {
                Err(Failure::Property(format!("{}: refusing q8_0 weights, the error should name them: `{e}`", B::NAME)))
            }
            Ok(_) => Err(Failure::Property(format!(
                "{} does not read q8_0 weights (no `q8_0_weights`) but allocated a buffer for them",
                B::NAME
            ))),
        };
    }
    let tol = tolerance(Check::Model, WeightDtype::F32);
    let k = RefCell::new(k);
    run_cases("q8_0_models", 24, options, quantized_case(), |case| {
        let config = case.config;
        let layout = ByteLayout::new(&config, WeightDtype::Q8_0, 32)?;
        if !layout.tensors().any(|t| t.ty == TensorType::Q8_0) {
            return Err(Failure::Property("the case has no quantized tensor (generator bug)".into()));
        }
        let data = TensorData::encode(&layout, WeightData::F32(&case.weights(WeightDtype::F32)?))?;
        let decoded = data.decode(&layout)?;
        let run = |k: &mut B::Kernels, model: &Model<B::Kernels>| {
            stream_document(k, model, case.batch, case.max_call(), &case.tokens(), &case.resets)
        };
        let k = &mut **k.borrow_mut();
        let weights = call("q8_0_weights", B::q8_0_weights(k, &layout, &data).transpose())?;
        let quantized = match weights {
            Some(w) => call("Model::with_layout", Model::with_layout(*layout.layout(), WeightDtype::Q8_0, w))?,
            None => return Err(Failure::Property("q8_0_weights answered once and not again".into())),
        };
        let got = run(k, &quantized)?;
        let as_f32 = upload_model(k, &config, &decoded, WeightDtype::F32)?;
        let same = run(k, &as_f32)?;
        let mut reference = Reference::new(Heap);
        let oracle = upload_model(&mut reference, &config, &decoded, WeightDtype::F32)?;
        let want = stream_document(&mut reference, &oracle, case.batch, case.max_call(), &case.tokens(), &case.resets)?;
        for (c, ((g, s), w)) in got.logits.iter().zip(&same.logits).zip(&want.logits).enumerate() {
            compare(&format!("logits of call {c}, against the decoded values as f32 weights"), g, s, Tolerance::EXACT)?;
            compare(&format!("logits of call {c}, against the reference"), g, w, tol)?;
        }
        Ok(())
    })
}
