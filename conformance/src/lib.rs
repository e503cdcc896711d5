//! # conformance
//!
//! The contract every brt backend must pass: one property-based suite
//! (`proptest`), generic over [`brt_core::Kernels`], that compares a backend with
//! the scalar reference ([`brt_core::Reference`]) kernel by kernel and model by
//! model, and checks the properties the engine relies on (streaming invariance,
//! document resets, independent batch rows, window locality, linear attention's
//! two forms, gate extremes, determinism, error paths).
//!
//! A backend joins with one line in a test file:
//!
//! ```ignore
//! conformance::suite!(cpu, my_crate::CpuFactory);
//! ```
//!
//! where `CpuFactory` implements [`Backend`]. That expands to one `#[test]` per
//! check (see [`all_checks`] for the list), named `cpu::<check>`.
//!
//! Every check is also a plain function, `checks::<module>::<check>::<B>(kernels,
//! options) -> Result<(), Failure>`, so the suite's own tests can run it against
//! deliberately broken kernels and assert that it fails.
//!
//! Data only crosses into a backend through [`brt_core::Storage`] (`alloc_*`,
//! `write_*`, `read_tensor`): nothing assumes host memory.
//!
//! A backend that also implements [`brt_core::Gradients`] (training) joins the
//! gradient contract with a second line:
//!
//! ```ignore
//! conformance::gradient_suite!(cpu_grad, my_crate::CpuFactory);
//! ```
//!
//! which expands to one `#[test]` per gradient check ([`all_gradient_checks`]):
//! every backward kernel against the f64 reference's, on generated shapes and on
//! large shapes that cross blocking boundaries, whole-model gradients of every
//! configuration variant by `brt::autodiff::Recorder`, and the error paths. The
//! oracle those checks trust, the f64 reference, is itself checked against
//! finite differences by [`gradient_oracle!`] (see [`gradients::oracle`]).
#![warn(missing_docs)]

pub mod backend;
pub mod checks;
pub mod failure;
pub mod gen;
pub mod gradients;
pub mod io;
pub mod runner;
pub mod tolerance;

pub use backend::{gpu_required, report_skip, shared_device, Backend, ReferenceBackend, Skip, TensorData};
pub use failure::{Failure, Mismatch};
pub use gradients::oracle::{all_oracle_checks, OracleFn};
pub use gradients::KernelError;
pub use runner::{run, run_oracle, CheckFn, Options, CI_SEED};
pub use tolerance::{compare, compare_f64, compare_scaled, tolerance, Check, Precision, Tolerance, TOLERANCES};

/// The list of checks, in one place: expands to tests or to a vector.
#[doc(hidden)]
#[macro_export]
macro_rules! __each_check {
    ($mode:ident $backend:ty) => {
        $crate::__each_check! {@expand $mode $backend;
            kernels::embed,
            kernels::rms_norm,
            kernels::add_positions,
            kernels::l2_normalize,
            kernels::matmul,
            kernels::copies,
            attention::attention_window,
            attention::attention_full,
            attention::attention_large_logits,
            linear::linear_attention,
            gates::gate_fixed,
            gates::gate_lstm,
            models::one_layer,
            models::model_plain,
            models::model_fixed_skip,
            models::model_fixed_single,
            models::model_fixed_dual,
            models::model_lstm_skip,
            models::model_lstm_single,
            models::model_lstm_dual,
            models::model_feedback,
            models::model_two_recurrent,
            models::model_linear,
            quantized::q8_0_matmul,
            quantized::q8_0_models,
            properties::streaming_invariance,
            properties::kv_runway,
            properties::document_reset,
            properties::batch_independence,
            locality::window_locality_kernel,
            locality::window_locality_model,
            linear::linear_chunked_equals_recurrent,
            gates::gate_extremes,
            properties::determinism,
            errors::error_paths_kernels,
            errors::error_paths_stream,
        }
    };
    (@expand tests $backend:ty; $($module:ident::$check:ident),* $(,)?) => {
        $(
            #[test]
            fn $check() {
                $crate::run::<$backend>(stringify!($check), $crate::checks::$module::$check::<$backend>);
            }
        )*
    };
    (@expand list $backend:ty; $($module:ident::$check:ident),* $(,)?) => {
        vec![$((stringify!($check), $crate::checks::$module::$check::<$backend> as $crate::CheckFn<$backend>)),*]
    };
}

/// Instantiates the whole suite for a backend: `suite!(name, Factory)` expands to
/// a module `name` with one `#[test]` per check, each running that check on
/// `Factory::create()`'s kernels (or reporting the skip).
#[macro_export]
macro_rules! suite {
    ($name:ident, $backend:ty) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            $crate::__each_check!(tests $backend);
        }
    };
}

/// Every check of the suite for backend `B`, with its name.
pub fn all_checks<B: Backend>() -> Vec<(&'static str, CheckFn<B>)> {
    __each_check!(list B)
}

/// The list of gradient checks, in one place: expands to tests or to a vector.
#[doc(hidden)]
#[macro_export]
macro_rules! __each_gradient_check {
    ($mode:ident $backend:ty) => {
        $crate::__each_gradient_check! {@expand $mode $backend;
            kernels::grad_embed,
            kernels::grad_rms_norm,
            kernels::grad_add_positions,
            kernels::grad_l2_normalize,
            kernels::grad_copies,
            kernels::grad_gate_fixed,
            kernels::grad_gate_lstm,
            matmul::grad_matmul,
            attention::grad_attention_window,
            attention::grad_attention_full,
            attention::grad_attention_large_logits,
            linear::grad_linear_attention,
            blocking::grad_matmul_blocking,
            blocking::grad_attention_blocking,
            blocking::grad_linear_blocking,
            blocking::grad_rows_blocking,
            models::grad_model_plain,
            models::grad_model_fixed_skip,
            models::grad_model_fixed_single,
            models::grad_model_fixed_dual,
            models::grad_model_lstm_skip,
            models::grad_model_lstm_single,
            models::grad_model_lstm_dual,
            models::grad_model_feedback,
            models::grad_model_two_recurrent,
            models::grad_model_linear,
            errors::grad_error_paths,
            errors::grad_error_arguments,
        }
    };
    (@expand tests $backend:ty; $($module:ident::$check:ident),* $(,)?) => {
        $(
            #[test]
            fn $check() {
                $crate::run::<$backend>(
                    stringify!($check),
                    $crate::gradients::$module::$check::<$backend>,
                );
            }
        )*
    };
    (@expand list $backend:ty; $($module:ident::$check:ident),* $(,)?) => {
        vec![$((
            stringify!($check),
            $crate::gradients::$module::$check::<$backend> as $crate::CheckFn<$backend>,
        )),*]
    };
}

/// Instantiates the gradient contract for a backend whose kernels implement
/// [`brt_core::Gradients`]: `gradient_suite!(name, Factory)` expands to a module
/// `name` with one `#[test]` per gradient check. The backend's error must convert
/// into `brt::Error` (for `brt::autodiff::Recorder`).
#[macro_export]
macro_rules! gradient_suite {
    ($name:ident, $backend:ty) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            $crate::__each_gradient_check!(tests $backend);
        }
    };
}

/// Every gradient check for backend `B`, with its name.
pub fn all_gradient_checks<B: Backend>() -> Vec<(&'static str, CheckFn<B>)>
where
    B::Kernels: brt_core::Gradients,
    brt::Error: From<KernelError<B>>,
{
    __each_gradient_check!(list B)
}

/// The list of the oracle's checks (the f64 reference against finite
/// differences), in one place.
#[doc(hidden)]
#[macro_export]
macro_rules! __each_oracle_check {
    ($mode:ident) => {
        $crate::__each_oracle_check! {@expand $mode;
            fd_embed,
            fd_rms_norm,
            fd_add_positions,
            fd_l2_normalize,
            fd_copies,
            fd_matmul,
            fd_attention,
            fd_linear_attention,
            fd_gate_fixed,
            fd_gate_lstm,
            fd_model_plain,
            fd_model_fixed_skip,
            fd_model_fixed_single,
            fd_model_fixed_dual,
            fd_model_lstm_skip,
            fd_model_lstm_single,
            fd_model_lstm_dual,
            fd_model_feedback,
            fd_model_two_recurrent,
            fd_model_linear,
        }
    };
    (@expand tests; $($check:ident),* $(,)?) => {
        $(
            #[test]
            fn $check() {
                $crate::run_oracle(stringify!($check), $crate::gradients::oracle::$check);
            }
        )*
    };
    (@expand list; $($check:ident),* $(,)?) => {
        vec![$((stringify!($check), $crate::gradients::oracle::$check as $crate::OracleFn)),*]
    };
}

/// Instantiates the oracle's checks: `gradient_oracle!(name)` expands to a module
/// `name` with one `#[test]` per check of the f64 reference against finite
/// differences (kernel by kernel and whole models of every variant).
#[macro_export]
macro_rules! gradient_oracle {
    ($name:ident) => {
        mod $name {
            $crate::__each_oracle_check!(tests);
        }
    };
}
