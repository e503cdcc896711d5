//! The gradient contract: the checks a backend with [`brt_core::Gradients`]
//! must pass, and the checks of the oracle itself.
//!
//! The backward kernels are vector-Jacobian products that *add* into gradient
//! buffers; in-place forwards (gates, `l2_normalize`, linear attention's sums)
//! turn the gradient after into the gradient before; `matmul_backward` replaces
//! `d_out` by `d_z`. Every check here holds a backend to exactly that:
//!
//! - [`kernels`], [`matmul`], [`attention`], [`linear`]: every backward kernel
//!   against the f64 reference's backward kernel (`brt_core::Reference64`, fed
//!   the same f32 inputs, which are exact in f64; [`oracle`] checks it against
//!   finite differences of its forward) on generated
//!   shapes (edge sizes, offsets, junk padding that must stay untouched, gradient
//!   buffers that start from random values so that `+=` is checked);
//! - [`blocking`]: fixed lists of large shapes that cross a backend's blocking
//!   boundaries (micro-tiles, `kc`, attention tiles, linear-attention chunks,
//!   threaded rows), every one on every run, and the same call twice
//!   bit-identical;
//! - [`models`]: whole-model parameter gradients by `brt::autodiff::Recorder`
//!   over the backend, against the recorder over the f64 reference, for every
//!   configuration variant;
//! - [`errors`]: too-small buffers give `BufferTooSmall` with the exact sizes,
//!   bad ids and mismatched bias arguments give their error, no panic;
//! - [`oracle`]: the f64 reference itself against central finite differences of
//!   its forward kernels and of whole models (not backend-generic: it is about
//!   the oracle the other checks trust).

pub mod attention;
pub mod blocking;
pub mod errors;
pub mod kernels;
pub mod linear;
pub mod matmul;
pub mod models;
pub mod oracle;

use crate::backend::Backend;
use crate::failure::Failure;
use crate::gen::{Placed, Rng};
use crate::io::{read, tensor};
use crate::runner::{run_cases, run_list, Options};
use crate::tolerance::{compare, compare_scaled, tolerance, Check, Tolerance};
use brt_core::{Gradients, Reference64, Storage, WeightDtype};
use brt_cpu::Heap;
use proptest::strategy::Strategy;
use std::cell::RefCell;
use std::fmt::Debug;

/// The error type of a backend's kernels.
pub type KernelError<B> = <<B as Backend>::Kernels as Storage>::Error;

/// A buffer a backward call wrote, read back whole (padding included).
#[derive(Clone, Debug)]
pub(crate) struct Written {
    /// What it holds, for messages.
    pub what: &'static str,
    /// The whole buffer.
    pub values: Vec<f32>,
    /// Where the kernel's extent starts.
    pub offset: usize,
    /// The kernel's extent.
    pub extent: usize,
    /// The magnitude of the largest terms summed into the values, where the case
    /// knows them to exceed the values (cancellation): the comparison's scale is
    /// at least this. 0 when the values themselves are the scale.
    pub terms: f64,
}

impl Written {
    /// The same buffer with the magnitude of its largest terms.
    pub fn with_terms(mut self, terms: f64) -> Written {
        self.terms = terms;
        self
    }
}

/// A gradient buffer on a backend: uploaded from host values, read back after the
/// call.
pub(crate) struct Grad<K: Storage> {
    pub what: &'static str,
    pub t: K::Tensor,
    pub offset: usize,
    pub extent: usize,
}

impl<K: Storage> Grad<K> {
    /// Uploads `p` (its data part is `extent` long).
    pub fn new(k: &mut K, what: &'static str, p: &Placed, extent: usize) -> Result<Grad<K>, Failure> {
        Ok(Grad { what, t: tensor(k, &p.values)?, offset: p.offset, extent })
    }

    /// Reads the whole buffer back.
    pub fn read(&self, k: &mut K) -> Result<Written, Failure> {
        Ok(Written { what: self.what, values: read(k, &self.t)?, offset: self.offset, extent: self.extent, terms: 0.0 })
    }
}

/// One generated backward call that can run on any backend with gradients.
pub(crate) trait GradCase: Debug {
    /// Runs the call on `k` with parameters stored as `dtype` and returns every
    /// buffer it may write.
    fn run<K: Gradients>(&self, k: &mut K, dtype: WeightDtype) -> Result<Vec<Written>, Failure>;
}

/// A padding length: none half the time, else 1 to 3 elements.
pub(crate) fn pad(rng: &mut Rng) -> usize {
    if rng.chance(0.5) {
        0
    } else {
        1 + rng.below(3)
    }
}

/// Host values for a buffer of `extent` elements at a random offset, with junk
/// padding around.
pub(crate) fn placed(rng: &mut Rng, extent: usize, value: impl FnMut(&mut Rng) -> f32) -> Placed {
    let (before, after) = (pad(rng), pad(rng));
    rng.placed(before, extent, after, value)
}

/// Compares one written buffer: the padding must be bit-identical (nothing
/// outside the extent is written), the extent agrees under `tol` with the
/// absolute part scaled by the largest of 1, the largest expected magnitude
/// there and the magnitude of the largest terms the case summed into it.
pub(crate) fn compare_written(got: &Written, want: &Written, tol: Tolerance) -> Result<(), Failure> {
    if got.values.len() != want.values.len() {
        return Err(Failure::Length { what: got.what.into(), got: got.values.len(), want: want.values.len() });
    }
    let (start, end) = (want.offset, want.offset + want.extent);
    let pad_got: Vec<f32> = got.values[..start].iter().chain(&got.values[end..]).copied().collect();
    let pad_want: Vec<f32> = want.values[..start].iter().chain(&want.values[end..]).copied().collect();
    compare(&format!("{} (padding around the extent)", got.what), &pad_got, &pad_want, Tolerance::EXACT)?;
    let data = &want.values[start..end];
    let scale = data.iter().fold(1f64, |m, &v| if v.is_finite() { m.max(v.abs() as f64) } else { m });
    compare_scaled(got.what, &got.values[start..end], data, tol, scale.max(want.terms))
}

/// Runs `case` on the backend and on the f64 reference (inputs are f32 values,
/// exact in f64; its results are rounded to f32 once, on reading) and compares
/// every buffer.
pub(crate) fn compare_case<K: Gradients, C: GradCase>(
    k: &mut K,
    case: &C,
    dtype: WeightDtype,
    tol: Tolerance,
) -> Result<(), Failure> {
    let got = case.run(k, dtype)?;
    let want = case.run(&mut Reference64::new_f64(Heap), dtype)?;
    if got.len() != want.len() {
        return Err(Failure::Length { what: "buffers written".into(), got: got.len(), want: want.len() });
    }
    for (g, w) in got.iter().zip(&want) {
        compare_written(g, w, tol)?;
    }
    Ok(())
}

/// Runs the cases of `strategy` on the backend and on the reference and compares
/// every buffer under the tolerance of `check`.
pub(crate) fn against_reference<B: Backend, C: GradCase>(
    k: &mut B::Kernels,
    options: &Options,
    name: &'static str,
    cases: u32,
    check: Check,
    strategy: impl Strategy<Value = C>,
) -> Result<(), Failure>
where
    B::Kernels: Gradients,
{
    let dtype = B::weight_dtype();
    let tol = tolerance(check, dtype);
    let k = RefCell::new(k);
    run_cases(name, cases, options, strategy, |case| compare_case(&mut **k.borrow_mut(), case, dtype, tol))
}

/// Runs every case of a fixed list on the backend twice (bit-identical results)
/// and on the reference (agreement under the tolerance of `check`).
pub(crate) fn list_against_reference<B: Backend, C: GradCase>(
    k: &mut B::Kernels,
    name: &'static str,
    check: Check,
    cases: &[C],
) -> Result<(), Failure>
where
    B::Kernels: Gradients,
{
    let dtype = B::weight_dtype();
    let tol = tolerance(check, dtype);
    let same = tolerance(Check::GradDeterminism, dtype);
    let k = RefCell::new(k);
    run_list(name, cases, |case| {
        let k = &mut **k.borrow_mut();
        let first = case.run(k, dtype)?;
        let second = case.run(k, dtype)?;
        for (a, b) in first.iter().zip(&second) {
            compare(&format!("{} (the same call twice)", a.what), &b.values, &a.values, same)?;
        }
        let want = case.run(&mut Reference64::new_f64(Heap), dtype)?;
        if first.len() != want.len() {
            return Err(Failure::Length { what: "buffers written".into(), got: first.len(), want: want.len() });
        }
        for (g, w) in first.iter().zip(&want) {
            compare_written(g, w, tol)?;
        }
        Ok(())
    })
}
