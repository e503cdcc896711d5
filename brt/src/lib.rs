//! # brt
//!
//! Block-Recurrent Transformers (Hutchins et al., 2022), faithful to the official
//! code: import official checkpoints, run them on any backend, stream documents.
#![warn(missing_docs)]

pub mod error;
pub mod meliad;
mod msgpack;
pub mod weights;

pub use error::{Error, Result};
pub use weights::{ModelWeights, WeightBuffer};
