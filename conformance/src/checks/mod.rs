//! The checks of the suite. Each is a function generic over a [`Backend`] that
//! takes the backend's kernels and returns `Ok` or the [`Failure`] it found, so
//! the suite's own tests can run it against deliberately broken kernels.
//!
//! - [`kernels`], [`attention`], [`linear`], [`gates`]: every kernel against the
//!   reference on generated shapes and values;
//! - [`models`]: whole layers and whole models against the reference, for every
//!   variant of the configuration;
//! - [`properties`], [`locality`]: properties of one backend on its own;
//! - [`errors`]: wrong lengths and too-small buffers give the right error.

pub mod attention;
pub mod errors;
pub mod gates;
pub mod kernels;
pub mod linear;
pub mod locality;
pub mod models;
pub mod properties;
pub mod quantized;

use crate::backend::Backend;
use crate::failure::Failure;
use crate::runner::{run_cases, Options};
use crate::tolerance::{compare, compare_terms, tolerance, Check};
use brt_core::{Kernels, Reference, WeightDtype};
use brt_cpu::Heap;
use proptest::strategy::Strategy;
use std::cell::RefCell;
use std::fmt::Debug;

/// One generated kernel call that can run on any backend.
pub(crate) trait KernelCase: Debug {
    /// Runs the call on `k` with parameters stored as `dtype` and returns every
    /// buffer it may write, read back whole (padding included), with its name.
    fn run<K: Kernels>(&self, k: &mut K, dtype: WeightDtype) -> Result<Vec<(&'static str, Vec<f32>)>, Failure>;

    /// For calls whose outputs are long sums whose terms may cancel: for each
    /// buffer [`run`](KernelCase::run) returns, the magnitude of the terms summed
    /// into each element (zero outside the extent), which the relative tolerance
    /// then follows (see [`compare_terms`]). `None`: the outputs' own magnitudes.
    fn terms(&self, _dtype: WeightDtype) -> Result<Option<Vec<Vec<f32>>>, Failure> {
        Ok(None)
    }
}

/// Runs the cases of `strategy` on the backend and on the reference and compares
/// every output under the tolerance of `check`.
pub(crate) fn against_reference<B: Backend, C: KernelCase>(
    k: &mut B::Kernels,
    options: &Options,
    name: &'static str,
    cases: u32,
    check: Check,
    strategy: impl Strategy<Value = C>,
) -> Result<(), Failure> {
    let dtype = B::weight_dtype();
    let tol = tolerance(check, dtype);
    let k = RefCell::new(k);
    run_cases(name, cases, options, strategy, |case| {
        let got = case.run(&mut **k.borrow_mut(), dtype)?;
        let want = case.run(&mut Reference::new(Heap), dtype)?;
        let terms = case.terms(dtype)?;
        for (i, ((what, g), (_, w))) in got.iter().zip(&want).enumerate() {
            match terms.as_ref().and_then(|t| t.get(i)) {
                Some(terms) => compare_terms(what, g, w, tol, terms)?,
                None => compare(what, g, w, tol)?,
            }
        }
        Ok(())
    })
}
