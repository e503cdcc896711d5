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
//!
//! The whole path on the reference backend, in caller memory: a tiny recurrent
//! configuration with random weights streams two documents of three tokens
//! and yields one row of logits per token and document.
//!
//! ```
//! use brt_core::{init::initialize, Arena, Config, LayerSet, Model, Plan, Reference, Stream, WeightData, WeightDtype};
//! let config = Config { states: 2, recurrent: LayerSet::EMPTY.with(1), ..Config::plain(11, 4, 1, 3, 5, 2, 2) };
//! let plan = Plan::new(&config, 2, 3)?; // 2 documents, at most 3 tokens a call
//! let mut weights = vec![0f32; plan.weights_len()];
//! initialize(&config, 7, &mut weights)?;
//! let (mut f32s, mut ids) = (vec![0f32; 1 << 14], vec![0u32; 64]);
//! let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
//! let model = Model::from_flat(&mut k, &config, WeightDtype::F32, WeightData::F32(&weights))?;
//! let mut stream = Stream::new(&mut k, &model, plan)?;
//! stream.forward(&mut k, &model, &[1, 2, 3, 4, 5, 6], &[])?; // tokens[t * 2 + b]
//! let mut logits = vec![0f32; 3 * 2 * config.vocab];
//! stream.read_logits(&mut k, &mut logits)?;
//! assert!(logits.iter().all(|x| x.is_finite()));
//! assert_eq!(stream.position_in_block(), 1); // 3 tokens into blocks of 2
//! # Ok::<(), brt_core::CoreError>(())
//! ```
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
///
/// GPU test suites read it from the environment and hand the value to
/// [`requires_gpu`]; unset, a missing GPU is a skip.
///
/// ```
/// use brt_core::{requires_gpu, REQUIRE_GPU_VAR};
/// assert_eq!(REQUIRE_GPU_VAR, "BRT_REQUIRE_GPU");
/// let strict = requires_gpu(std::env::var(REQUIRE_GPU_VAR).ok().as_deref());
/// assert_eq!(strict, std::env::var(REQUIRE_GPU_VAR).is_ok_and(|v| v.trim() == "1"));
/// ```
pub const REQUIRE_GPU_VAR: &str = "BRT_REQUIRE_GPU";

/// Whether a value of [`REQUIRE_GPU_VAR`] asks for a GPU: exactly `1`,
/// surrounding whitespace ignored; anything else, or no variable, lets GPU tests
/// skip loudly. The one reading of the variable every test suite shares (the
/// core has no environment: callers pass `std::env::var(REQUIRE_GPU_VAR).ok()`).
///
/// Only `1` (whitespace aside) asks for a GPU; `0`, `true` or no variable do not.
///
/// ```
/// use brt_core::requires_gpu;
/// assert!(requires_gpu(Some("1")) && requires_gpu(Some(" 1\n")));
/// assert!(!requires_gpu(None) && !requires_gpu(Some("0")) && !requires_gpu(Some("true")));
/// ```
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
