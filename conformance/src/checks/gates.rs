//! The state gates (SPEC 4, "Gates") against the reference, with gate inputs from
//! ordinary to saturated, and the gate-extremes property: a gate that keeps
//! everything leaves the state unchanged, one that lets everything through
//! replaces it with the update.

use super::kernels::{pads, param_values, Pads};
use super::{against_reference, KernelCase};
use crate::backend::Backend;
use crate::failure::Failure;
use crate::gen::{seed, Placed, Rng};
use crate::io::{call, read, round_to, tensor, weights};
use crate::runner::{run_cases, Options};
use crate::tolerance::{compare, tolerance, Check};
use brt_core::desc::Rows;
use brt_core::{Kernels, View, ViewMut, WeightDtype, WeightView};
use proptest::prelude::*;
use std::cell::RefCell;

/// How far gate pre-activations go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GateInputs {
    /// About 1: both terms matter.
    Ordinary,
    /// Magnitudes 20 to 100 of either sign: the sigmoids saturate at 0 or 1.
    Saturated,
    /// Some of each.
    Mixed,
}

fn gate_value(rng: &mut Rng, inputs: GateInputs) -> f32 {
    let saturated = match inputs {
        GateInputs::Ordinary => false,
        GateInputs::Saturated => true,
        GateInputs::Mixed => rng.chance(0.5),
    };
    if saturated {
        rng.sign() * rng.uniform(20.0, 100.0)
    } else {
        rng.normal() * 1.5
    }
}

fn gate_inputs() -> impl Strategy<Value = GateInputs> {
    prop_oneof![2 => Just(GateInputs::Ordinary), 1 => Just(GateInputs::Saturated), 1 => Just(GateInputs::Mixed)]
}

/// A gate call: `rows x dim` state updated in place.
#[derive(Clone, Debug)]
pub struct GateCase {
    rows: usize,
    dim: usize,
    lstm: bool,
    inputs: GateInputs,
    pads: Pads,
    seed: u64,
}

/// Host values of a gate call.
struct GateData {
    state: Placed,
    z: Placed,
    forget: Placed,
    input: Placed,
    /// The fixed gate's bias, or the LSTM forget-gate bias.
    bias: Placed,
    input_bias: Placed,
}

impl GateCase {
    fn data(&self, dtype: WeightDtype) -> GateData {
        let (n, d, p) = (self.rows * self.dim, self.dim, self.pads);
        let mut rng = Rng::new(self.seed);
        let inputs = self.inputs;
        let state = rng.placed(p.before[0], n, p.after[0], |r| r.normal());
        let z = rng.placed(p.before[1], n, p.after[1], |r| r.normal() * 2.0);
        let forget = rng.placed(p.before[2], n, p.after[2], |r| gate_value(r, inputs));
        let input = rng.placed(p.before[3], n, p.after[3], |r| gate_value(r, inputs));
        let mut bias = rng.placed(p.before[1], d, p.after[2], |r| gate_value(r, inputs));
        round_to(dtype, &mut bias.values);
        let input_bias = param_values(&mut rng, p.before[2], d, p.after[3], 0.5, dtype);
        GateData { state, z, forget, input, bias, input_bias }
    }

    fn run_data<K: Kernels>(&self, k: &mut K, d: &GateData, dtype: WeightDtype) -> Result<Vec<f32>, Failure> {
        let rows = Rows::new(self.rows, self.dim)?;
        let mut state = tensor(k, &d.state.values)?;
        let z = tensor(k, &d.z.values)?;
        let bias = weights(k, &d.bias.values, dtype)?;
        if self.lstm {
            let forget = tensor(k, &d.forget.values)?;
            let input = tensor(k, &d.input.values)?;
            let input_bias = weights(k, &d.input_bias.values, dtype)?;
            call(
                "gate_lstm",
                k.gate_lstm(
                    ViewMut::new(&mut state, d.state.offset),
                    View::new(&z, d.z.offset),
                    View::new(&forget, d.forget.offset),
                    View::new(&input, d.input.offset),
                    WeightView::new(&bias, d.bias.offset),
                    WeightView::new(&input_bias, d.input_bias.offset),
                    rows,
                ),
            )?;
        } else {
            call(
                "gate_fixed",
                k.gate_fixed(
                    ViewMut::new(&mut state, d.state.offset),
                    View::new(&z, d.z.offset),
                    WeightView::new(&bias, d.bias.offset),
                    rows,
                ),
            )?;
        }
        read(k, &state)
    }
}

impl KernelCase for GateCase {
    fn run<K: Kernels>(&self, k: &mut K, dtype: WeightDtype) -> Result<Vec<(&'static str, Vec<f32>)>, Failure> {
        let data = self.data(dtype);
        Ok(vec![("gated state", self.run_data(k, &data, dtype)?)])
    }
}

fn case(lstm: bool) -> impl Strategy<Value = GateCase> {
    (0usize..=6, 1usize..=17, gate_inputs(), pads(), seed()).prop_map(move |(rows, dim, inputs, pads, seed)| GateCase {
        rows,
        dim,
        lstm,
        inputs,
        pads,
        seed,
    })
}

/// `gate_fixed` against the reference: `s*g + z*(1-g)`, `g = sigmoid(b)`, with
/// biases from ordinary to saturated.
pub fn gate_fixed<B: Backend>(k: &mut B::Kernels, options: &Options) -> Result<(), Failure> {
    against_reference::<B, _>(k, options, "gate_fixed", 192, Check::GateFixed, case(false))
}

/// `gate_lstm` against the reference: forget gate `sigmoid(f + bf + 1)`, input
/// gate `sigmoid(i + bi - 1)`, products from ordinary to saturated.
pub fn gate_lstm<B: Backend>(k: &mut B::Kernels, options: &Options) -> Result<(), Failure> {
    against_reference::<B, _>(k, options, "gate_lstm", 192, Check::GateLstm, case(true))
}

/// Property: a gate driven to keep everything leaves the state as it was; one
/// driven to let everything through replaces it with the update `z`. For the
/// fixed gate the bias is +-(30..100); for the LSTM gate the forget and input
/// products are driven to opposite extremes (the biases stay ordinary).
pub fn gate_extremes<B: Backend>(k: &mut B::Kernels, options: &Options) -> Result<(), Failure> {
    let dtype = B::weight_dtype();
    let tol = tolerance(Check::GateExtremes, dtype);
    let k = RefCell::new(k);
    let strategy = (case(false), any::<bool>(), any::<bool>()).prop_map(|(mut case, lstm, keep)| {
        case.lstm = lstm;
        (case, keep)
    });
    run_cases("gate_extremes", 128, options, strategy, |(case, keep)| {
        let k = &mut **k.borrow_mut();
        let mut data = case.data(dtype);
        let mut rng = Rng::new(case.seed ^ 0x5eed);
        let n = case.rows * case.dim;
        // Keep: forget/bias towards +inf (g = 1), input towards -inf (i = 0).
        let towards = if *keep { 1.0 } else { -1.0 };
        for v in data.bias.data_mut(case.dim) {
            *v = towards * rng.uniform(30.0, 100.0);
        }
        round_to(dtype, &mut data.bias.values);
        for v in data.input_bias.data_mut(case.dim) {
            *v = rng.normal();
        }
        round_to(dtype, &mut data.input_bias.values);
        if case.lstm {
            // The forget product goes to the extreme, its bias stays ordinary.
            for v in data.bias.data_mut(case.dim) {
                *v = rng.normal();
            }
            round_to(dtype, &mut data.bias.values);
        }
        for v in data.forget.data_mut(n) {
            *v = towards * rng.uniform(30.0, 100.0);
        }
        for v in data.input.data_mut(n) {
            *v = -towards * rng.uniform(30.0, 100.0);
        }
        let got = case.run_data(k, &data, dtype)?;
        let source = if *keep { &data.state } else { &data.z };
        let what = if *keep { "state behind a closed gate vs the old state" } else { "state behind an open gate vs z" };
        let got = &got[data.state.offset..data.state.offset + n];
        compare(what, got, source.data(n), tol)
    })
}
