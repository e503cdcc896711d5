//! Loading a model from either format, detected from the file's content.

use crate::error::{Error, Result};
use crate::format;
use crate::meliad::{self, ImportOptions};
use crate::weights::ModelWeights;
use std::path::Path;

/// The format a model file is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelFormat {
    /// brt's own safetensors weights.
    Brt,
    /// An official Meliad msgpack checkpoint.
    Meliad,
}

/// Detects the format of a model file from its first bytes.
pub fn detect(bytes: &[u8]) -> Option<ModelFormat> {
    if format::looks_like_safetensors(bytes) {
        Some(ModelFormat::Brt)
    } else if meliad::looks_like_checkpoint(bytes) {
        Some(ModelFormat::Meliad)
    } else {
        None
    }
}

/// Loads a model in either format. `options` apply to official checkpoints; for
/// brt files only `abs_attention_scale` can be switched on.
pub fn load_model(path: &Path, options: ImportOptions) -> Result<ModelWeights> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let mut weights = match detect(&bytes) {
        Some(ModelFormat::Brt) => format::from_bytes(&bytes).map_err(|m| Error::format(path, m))?,
        Some(ModelFormat::Meliad) => meliad::import(&bytes, options).map_err(|m| Error::format(path, m))?,
        None if bytes.is_empty() => return Err(Error::format(path, "the file is empty")),
        None => {
            return Err(Error::format(
                path,
                "neither brt weights (safetensors) nor an official Meliad checkpoint (msgpack)",
            ))
        }
    };
    if options.abs_attention_scale {
        weights.set_abs_attention_scale(true);
    }
    Ok(weights)
}
