//! The default model, built into the program: a byte-level Block-Recurrent
//! Transformer (the `small` configuration: width 256, 4 layers, the third
//! recurrent with 64 states, window 64, fixed gate, skip layout) trained by
//! `brt train` on Shakespeare's plays, stored as f16. The README gives its
//! training command, time and held-out bits per byte.

use crate::error::{Error, Result};
use crate::format;
use crate::weights::ModelWeights;

/// The default model's file, as written by `brt train --save-dtype f16`.
pub const DEFAULT_MODEL: &[u8] = include_bytes!("../assets/default-model.safetensors");

/// The default model.
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
