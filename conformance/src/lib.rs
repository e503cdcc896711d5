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
#![warn(missing_docs)]

pub mod backend;
pub mod checks;
pub mod failure;
pub mod gen;
pub mod io;
pub mod runner;
pub mod tolerance;

pub use backend::{gpu_required, report_skip, shared_device, Backend, ReferenceBackend, Skip};
pub use failure::{Failure, Mismatch};
pub use runner::{run, CheckFn, Options, CI_SEED};
pub use tolerance::{compare, tolerance, Check, Precision, Tolerance, TOLERANCES};

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
            properties::streaming_invariance,
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
