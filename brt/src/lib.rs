//! # brt
//!
//! Block-Recurrent Transformers (Hutchins et al., 2022), faithful to the official
//! code: import official checkpoints, run them on any backend, stream documents.
//!
//! - [`model_file::load_model`] reads brt weights or an official Meliad checkpoint;
//! - [`format`] writes and reads brt's own safetensors weights;
//! - [`gguf`] maps brt's deployable model file (GGUF) and uses it in place;
//! - [`runtime`] holds a model on a backend chosen at run time ([`runtime::EngineBuilder`]);
//! - [`backend`] runs generic work on a backend chosen at run time;
//! - [`logits`] computes the logits of whole documents.
//!
//! The built-in model continues a text on a backend chosen at run time (the
//! reference backend here), choosing the most likely next byte, which completes the quotation:
//!
//! ```
//! use brt::runtime::EngineBuilder;
//! use brt::sample::{Sampler, SamplingOptions};
//! use brt::tokenizer::Tokenizer;
//! use brt::BackendKind;
//!
//! let mut engine = EngineBuilder::new().backend(BackendKind::Reference).build(&brt::default_model()?)?;
//! let mut session = engine.session(1, 16)?;
//! engine.feed(&mut session, &Tokenizer::Bytes.encode(b"To be, or not to b")?)?;
//! let mut greedy = Sampler::new(SamplingOptions { temperature: 0.0, ..Default::default() })?;
//! let next = greedy.sample(session.last_logits(0).unwrap())?;
//! assert_eq!(Tokenizer::Bytes.decode(&[next])?, b"e");
//! # Ok::<(), brt::Error>(())
//! ```
#![warn(missing_docs)]

pub mod autodiff;
pub mod backend;
pub mod bench;
pub mod compare;
pub mod config_file;
pub mod default_model;
pub mod engine;
pub mod error;
pub mod eval;
mod files;
pub mod format;
pub mod generate;
pub mod gguf;
pub mod logits;
pub mod meliad;
pub mod model_file;
mod msgpack;
#[cfg(feature = "cli")]
pub mod plot;
pub mod recall;
pub mod runtime;
pub mod sample;
pub mod tokenizer;
pub mod train;
pub mod weights;

pub use backend::{run_on, BackendJob, BackendKind};
pub use default_model::default_model;
pub use engine::{Engine, Session};
pub use error::{Error, Result};
pub use files::{list_files, refuse_to_overwrite_inputs, regular_file, write_atomically};
pub use model_file::load_model;
pub use weights::{ModelWeights, WeightBuffer};
