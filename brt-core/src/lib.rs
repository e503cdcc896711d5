//! # brt-core
//!
//! The portable heart of brt, a Block-Recurrent Transformer engine (Hutchins et al.,
//! 2022) that follows the official Meliad code to the last detail
//! (`shared/docs/SPEC.md` is the numerical contract; section numbers below refer to
//! it).
//!
//! `#![no_std]` and allocation-free: the caller (or a backend) provides every
//! buffer, sized exactly by a [`Plan`]. What is here:
//!
//! - [`Config`]: every model variant, validated without panics;
//! - [`params`]: the parameters, their shapes and the flat weight layout;
//! - [`Kernels`] and [`Storage`]: what a backend supplies, destination-passing;
//! - [`desc`]: the validated shape descriptors kernels receive;
//! - [`Stream`]: the cell algebra, streaming blocks of tokens through the stack
//!   with per-row document resets;
//! - [`Reference`]: the scalar reference kernels, the oracle of every backend;
//! - [`Arena`]: caller-provided memory for host backends.
#![no_std]
#![warn(missing_docs)]

pub mod cell;
pub mod config;
pub mod desc;
pub mod encoding;
pub mod error;
pub mod gradients;
pub mod init;
pub mod kernels;
pub mod memory;
pub mod model;
pub mod params;
pub mod plan;
pub mod primitives;
pub mod reference;

pub use cell::{pieces, Piece, Scratch, Stream};
pub use config::{Config, GateKind, GateSite, LayerSet, StateLayout, TokenAttention, MAX_LAYERS};
pub use encoding::{ByteLayout, StoredTensor, TensorType};
pub use error::{CoreError, CoreResult};
pub use gradients::Gradients;
pub use kernels::{KResult, Kernels, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
pub use memory::{Arena, HostMemory, Real};
pub use model::Model;
pub use params::{LayerParam, Param, Span, WeightLayout};
pub use plan::Plan;
pub use reference::{RefWeights, Reference, Reference64};

/// Re-exported so backends and users name the same half-precision types.
pub use half;

/// The environment variable that makes a missing GPU (or a skipped GPU test) a
/// failure instead of a loud skip.
pub const REQUIRE_GPU_VAR: &str = "BRT_REQUIRE_GPU";

/// Whether a value of [`REQUIRE_GPU_VAR`] asks for a GPU: exactly `1`,
/// surrounding whitespace ignored; anything else, or no variable, lets GPU tests
/// skip loudly. The one reading of the variable every test suite shares (the
/// core has no environment: callers pass `std::env::var(REQUIRE_GPU_VAR).ok()`).
pub fn requires_gpu(value: Option<&str>) -> bool {
    value.is_some_and(|v| v.trim() == "1")
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_one_asks_for_a_gpu() {
        assert!(super::requires_gpu(Some("1")) && super::requires_gpu(Some(" 1\n")));
        for other in [None, Some(""), Some("0"), Some("true"), Some("yes"), Some("11")] {
            assert!(!super::requires_gpu(other), "{other:?}");
        }
    }
}
