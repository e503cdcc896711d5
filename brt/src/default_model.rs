//! The default model, built into the program: a byte-level Block-Recurrent
//! Transformer (the `small` configuration: width 256, 4 layers, the third
//! recurrent with 64 states, window 64, fixed gate, skip layout) trained by
//! `brt train` on Shakespeare's plays, stored as f16. The README gives its
//! training command, time and held-out bits per byte.
//!
//! The built-in model reads bytes: its vocabulary is the 260 ids of
//! [`Tokenizer::Bytes`](crate::tokenizer::Tokenizer::Bytes), and it predicts
//! a next token for any text.
//!
//! ```
//! use brt::runtime::EngineBuilder;
//! use brt::tokenizer::Tokenizer;
//! use brt::BackendKind;
//!
//! let weights = brt::default_model()?;
//! assert_eq!(Tokenizer::Bytes.vocab_size(), Some(weights.config().vocab));
//! let mut engine = EngineBuilder::new().backend(BackendKind::Reference).build(&weights)?;
//! let mut session = engine.session(1, 8)?;
//! engine.feed(&mut session, &Tokenizer::Bytes.encode(b"ROMEO:")?)?;
//! assert!(session.last_logits(0).unwrap().iter().all(|v| v.is_finite()));
//! # Ok::<(), brt::Error>(())
//! ```

use crate::error::{Error, Result};
use crate::format;
use crate::weights::ModelWeights;

/// The default model's file, as written by `brt train --save-dtype f16`.
///
/// The bytes are a brt safetensors file, which [`crate::format::from_bytes`]
/// reads (as [`default_model`] does).
///
/// ```
/// use brt::default_model::DEFAULT_MODEL;
///
/// assert!(brt::format::looks_like_safetensors(DEFAULT_MODEL));
/// let weights = brt::format::from_bytes(DEFAULT_MODEL).expect("the built-in model reads");
/// assert_eq!(weights.config().vocab, 260);
/// ```
pub const DEFAULT_MODEL: &[u8] = include_bytes!("../assets/default-model.safetensors");

/// The default model.
///
/// It is the byte-level `small` configuration (width 256, 4 layers, one of
/// them recurrent), stored as f16.
///
/// ```
/// use brt_core::WeightDtype;
///
/// let model = brt::default_model()?;
/// let config = model.config();
/// assert_eq!((config.vocab, config.d_model, config.layers), (260, 256, 4));
/// assert_eq!(config.recurrent.iter().count(), 1);
/// assert_eq!(model.dtype(), WeightDtype::F16);
/// # Ok::<(), brt::Error>(())
/// ```
pub fn default_model() -> Result<ModelWeights> {
    format::from_bytes(DEFAULT_MODEL).map_err(|m| Error::Invalid(format!("the built-in default model: {m}")))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_default_model_loads_and_is_byte_level() {
        let model = super::default_model().unwrap();
        assert_eq!(model.config().vocab, 260);
        assert_eq!(model.dtype(), brt_core::WeightDtype::F16);
        assert!(!model.config().recurrent.is_empty());
    }
}
