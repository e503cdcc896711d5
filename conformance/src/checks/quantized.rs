//! 8-bit weights (Q8_0, see `brt_core::encoding`): a backend that reads them
//! computes their products as the core defines them (the inputs quantized in
//! blocks of 32 along the summed dimension, integer block sums scaled by both
//! blocks' scales, `brt_core::encoding::quantize_activations`), and one that
//! does not refuses them with an error.
//!
//! [`q8_0_matmul`] checks single products, where the backend and the reference
//! see the same inputs and so quantize them identically, with the f32 product
//! tolerance; [`q8_0_models`] checks whole models.
//!
//! Models are drawn as in `checks::models` (every variant, several calls, resets)
//! but with widths that are whole blocks of 32 (`d`, `H*dh`, `F`), so their
//! matrices are quantized, and some that are not (those matrices stay f32). The
//! Q8_0 tensor data is built by the core's encoder, and the backend loads it
//! its own way ([`Backend::q8_0_weights`]: in place on the CPU).

use crate::backend::{Backend, TensorData};
use crate::checks::kernels::{activation, pads, Alpha, Pads};
use crate::checks::models::{model_case, stream_document, upload_model, ModelCase, Variant};
use crate::failure::Failure;
use crate::gen::{seed, Rng};
use crate::io::{call, read, tensor};
use crate::runner::{run_cases, Options};
use crate::tolerance::{compare, tolerance, Check, Tolerance};
use brt_core::desc::{Activation, Matmul};
use brt_core::{ByteLayout, Config, Kernels, LayerParam, Model, Param, Reference, Storage, TensorType};
use brt_core::{View, ViewMut, WeightData, WeightDtype, WeightLayout, WeightView};
use brt_cpu::{Heap, SharedBytes};
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

/// `Some(verdict)` when the backend does not read Q8_0 (no
/// [`Backend::q8_0_weights`]): it passes when it refuses to allocate such
/// weights with an error that names them.
fn refuses_q8_0<B: Backend>(k: &mut B::Kernels) -> Result<Option<Result<(), Failure>>, Failure> {
    let probe = ByteLayout::new(&Config::plain(4, 32, 1, 32, 32, 1, 2), WeightDtype::Q8_0, 32)?;
    let probe_data = TensorData::encode(&probe, WeightData::F32(&vec![0.5; probe.layout().len()]))?;
    if B::q8_0_weights(k, &probe, &probe_data).is_some() {
        return Ok(None);
    }
    Ok(Some(match k.alloc_weights(probe.layout().len(), WeightDtype::Q8_0) {
        Err(e) if e.to_string().contains("q8_0") => Ok(()),
        Err(e) => {
            Err(Failure::Property(format!("{}: refusing q8_0 weights, the error should name them: `{e}`", B::NAME)))
        }
        Ok(_) => Err(Failure::Property(format!(
            "{} does not read q8_0 weights (no `q8_0_weights`) but allocated a buffer for them",
            B::NAME
        ))),
    }))
}

/// A parameter buffer of kernels `K` and one of the reference.
type BothWeights<K> = (<K as Storage>::Weights, <Reference<Heap> as Storage>::Weights);

/// The buffers of the Q8_0 tensor data `data` on the backend (read its way)
/// and on the reference (in place).
fn q8_0_buffers<B: Backend>(
    k: &mut B::Kernels,
    reference: &mut Reference<Heap>,
    layout: &ByteLayout,
    data: &TensorData,
) -> Result<BothWeights<B::Kernels>, Failure> {
    let weights = match call("q8_0_weights", B::q8_0_weights(k, layout, data).transpose())? {
        Some(w) => w,
        None => return Err(Failure::Property("q8_0_weights answered once and not again".into())),
    };
    let oracle =
        call("reference weights in place", reference.weights_in_place(SharedBytes::new(data.clone()), layout))?;
    Ok((weights, oracle))
}

/// One product with Q8_0 weights: `m` rows of `k` inputs times the MLP input
/// kernel of a one-layer model with `d = k` (whole blocks, so it is quantized)
/// and `F = n`, with the descriptor's options.
#[derive(Clone, Debug)]
pub struct Q8MatmulCase {
    m: usize,
    k: usize,
    n: usize,
    alpha: Alpha,
    accumulate: bool,
    activation: Activation,
    /// Inputs of magnitude 1e-4 (small scales).
    tiny: bool,
    /// The first block of the first row all zeros (a scale of 0).
    zero_block: bool,
    pads: Pads,
    seed: u64,
}

impl Q8MatmulCase {
    /// The product's output on `k`, whose buffer of the model's weights is
    /// `weights` (tensor data laid out as `layout`).
    fn run<K: Kernels>(&self, k: &mut K, weights: &K::Weights, layout: &ByteLayout) -> Result<Vec<f32>, Failure> {
        let (m, kk, n, p) = (self.m, self.k, self.n, self.pads);
        let mut rng = Rng::new(self.seed);
        let f = if self.tiny { 1e-4 } else { 1.0 };
        let mut x = rng.placed(p.before[0], m * kk, p.after[0], |r| r.normal() * f);
        if self.zero_block && m > 0 {
            x.values[x.offset..x.offset + 32].fill(0.0);
        }
        let out = rng.placed(p.before[2], m * n, p.after[2], |r| r.normal());
        let alpha = self.alpha.value(&mut rng);
        let mut desc = Matmul::new(m, kk, n)?.alpha(alpha).activation(self.activation);
        if self.accumulate {
            desc = desc.accumulate();
        }
        let offset = mlp_in(layout)?;
        let xt = tensor(k, &x.values)?;
        let mut o = tensor(k, &out.values)?;
        call(
            "matmul",
            k.matmul(
                View::new(&xt, x.offset),
                WeightView::new(weights, offset),
                ViewMut::new(&mut o, out.offset),
                desc,
            ),
        )?;
        read(k, &o)
    }

    fn config(&self) -> Config {
        Config::plain(4, self.k, 1, 8, self.n, 1, 1)
    }
}

/// Where the MLP input kernel of layer 0 starts.
fn mlp_in(layout: &ByteLayout) -> Result<usize, Failure> {
    let mlp_in = Param::Layer(0, LayerParam::MlpIn);
    match layout.tensors().find(|t| t.spec.param == mlp_in) {
        Some(t) if t.ty == TensorType::Q8_0 => Ok(t.spec.offset),
        _ => Err(Failure::Property("the case's MLP input kernel is not quantized (generator bug)".into())),
    }
}

fn q8_matmul_case() -> impl Strategy<Value = Q8MatmulCase> {
    let (alpha, activation) = (Alpha::strategy(), activation());
    let inner = prop_oneof![Just(32usize), Just(64), Just(96), Just(128), Just(288)];
    // Rows for the one-row and few-row paths and across a micro-tile, a few
    // past the CPU backend's blocking (144 rows of `A`, `B` panels of 256 steps,
    // 512 with AVX-512), one-row products wider than a column run, and few-row
    // products whose inputs take more than one pass of the CPU backend's
    // quantized GEMV (4096 values of all rows at a time).
    let shape = prop_oneof![
        30 => (0usize..=13, inner, 1usize..=40),
        1 => (143usize..=150, prop_oneof![Just(288usize), Just(544)], 1usize..=40),
        1 => (1usize..=2, Just(32usize), 4090usize..=4200),
        1 => (1usize..=4, Just(4128usize), 1usize..=24),
    ];
    let flags = (alpha, any::<bool>(), activation, prop::bool::weighted(0.15), prop::bool::weighted(0.15));
    (shape, flags, pads(), seed()).prop_map(
        |((m, k, n), (alpha, accumulate, activation, tiny, zero_block), pads, seed)| Q8MatmulCase {
            m,
            k,
            n,
            alpha,
            accumulate,
            activation,
            tiny,
            zero_block,
            pads,
            seed,
        },
    )
}

/// `matmul` with Q8_0 weights against the reference on the same inputs, with
/// the f32 product tolerance: both quantize the inputs identically
/// (`quantize_activations` on the same f32 values), so only the order of the
/// f32 sums differs. A backend that does not read Q8_0 must refuse such weights.
pub fn q8_0_matmul<B: Backend>(k: &mut B::Kernels, options: &Options) -> Result<(), Failure> {
    if let Some(refusal) = refuses_q8_0::<B>(k)? {
        return refusal;
    }
    let tol = tolerance(Check::Matmul, WeightDtype::F32);
    let k = RefCell::new(k);
    run_cases("q8_0_matmul", 128, options, q8_matmul_case(), |case| {
        let config = case.config();
        let layout = ByteLayout::new(&config, WeightDtype::Q8_0, 32)?;
        let mut values = vec![0f32; WeightLayout::new(&config)?.len()];
        brt_core::init::initialize(&config, case.seed, &mut values)?;
        let data = TensorData::encode(&layout, WeightData::F32(&values))?;
        let k = &mut **k.borrow_mut();
        let mut reference = Reference::new(Heap);
        let (weights, oracle) = q8_0_buffers::<B>(k, &mut reference, &layout, &data)?;
        let got = case.run(k, &weights, &layout)?;
        let want = case.run(&mut reference, &oracle, &layout)?;
        compare("matmul output", &got, &want, tol)
    })
}

/// Q8_0 models on the backend against the reference running the same tensor
/// data in place (its products implement the 8-bit arithmetic plainly, in
/// f64). The tolerance is the f32 model tolerance plus four times the largest
/// change that quantizing the products' inputs makes to the call's logits: the
/// backend computes each product's inputs in f32 and the reference in f64, so
/// now and then an input lies on the other side of a quantization step (x/d
/// within a few ulps of a half), and that one step moves the logits downstream
/// by a share of the whole quantization effect that has no fixed bound (the
/// whole effect is a sum of roundings of both signs). Measured: in 1,000 cases
/// on each of two CPU factories, one call in 25 moved by more than the f32
/// tolerance and one in 600 by more than that plus the whole effect, at most
/// 1.17 times it; 1,000 cases on every CPU factory on another seed met one case
/// that needed about 1.9 times it. Everywhere else the logits agree to about
/// 1e-6. A backend that skipped quantizing the inputs would stay within even
/// one effect: that it quantizes them, and exactly as the core says, is checked
/// where the inputs are the same for both, in [`q8_0_matmul`]; this check is
/// for whole models (tensor offsets, scales, every product reading Q8_0). A
/// backend that does not read Q8_0 must refuse to allocate such weights.
pub fn q8_0_models<B: Backend>(k: &mut B::Kernels, options: &Options) -> Result<(), Failure> {
    if let Some(refusal) = refuses_q8_0::<B>(k)? {
        return refusal;
    }
    let tol = tolerance(Check::Q8Model, WeightDtype::F32);
    let k = RefCell::new(k);
    run_cases("q8_0_models", 24, options, quantized_case(), |case| {
        let config = case.config;
        let layout = ByteLayout::new(&config, WeightDtype::Q8_0, 32)?;
        if !layout.tensors().any(|t| t.ty == TensorType::Q8_0) {
            return Err(Failure::Property("the case has no quantized tensor (generator bug)".into()));
        }
        let data = TensorData::encode(&layout, WeightData::F32(&case.weights(WeightDtype::F32)?))?;
        let (tokens, calls) = (case.tokens(), case.max_call());
        let k = &mut **k.borrow_mut();
        let mut reference = Reference::new(Heap);
        let (weights, oracle) = q8_0_buffers::<B>(k, &mut reference, &layout, &data)?;
        let quantized = call("Model::with_layout", Model::with_layout(*layout.layout(), WeightDtype::Q8_0, weights))?;
        let got = stream_document(k, &quantized, case.batch, calls, &tokens, &case.resets)?;
        let oracle = call("Model::with_layout", Model::with_layout(*layout.layout(), WeightDtype::Q8_0, oracle))?;
        let want = stream_document(&mut reference, &oracle, case.batch, calls, &tokens, &case.resets)?;
        // The same weight values with unquantized inputs: how far quantizing the
        // inputs moves each call's logits.
        let decoded = upload_model(&mut reference, &config, &data.decode(&layout)?, WeightDtype::F32)?;
        let unquantized = stream_document(&mut reference, &decoded, case.batch, calls, &tokens, &case.resets)?;
        for (c, ((g, w), u)) in got.logits.iter().zip(&want.logits).zip(&unquantized.logits).enumerate() {
            let effect = w.iter().zip(u).map(|(w, u)| (w - u).abs()).fold(0.0, f32::max);
            let tol = Tolerance::new(tol.abs + 4.0 * effect, tol.rel);
            compare(&format!("logits of call {c}, against the reference's 8-bit products"), g, w, tol)?;
        }
        Ok(())
    })
}
