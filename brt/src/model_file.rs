//! Loading a model in any format brt reads, detected from the file's content.

use crate::error::{Error, Result};
use crate::format;
use crate::gguf::{self, MappedModel};
use crate::meliad::{self, ImportOptions};
use crate::weights::ModelWeights;
use brt_core::{Config, WeightDtype};
use std::io::Read;
use std::path::Path;

/// The format a model file is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelFormat {
    /// brt's own safetensors weights.
    Brt,
    /// An official Meliad msgpack checkpoint.
    Meliad,
    /// brt's deployable model file (GGUF), used in place.
    Gguf,
}

/// Detects the format of a model file from its first bytes.
pub fn detect(bytes: &[u8]) -> Option<ModelFormat> {
    if gguf::looks_like_gguf(bytes) {
        Some(ModelFormat::Gguf)
    } else if format::looks_like_safetensors(bytes) {
        Some(ModelFormat::Brt)
    } else if meliad::looks_like_checkpoint(bytes) {
        Some(ModelFormat::Meliad)
    } else {
        None
    }
}

/// A model ready to run: in memory, or a model file mapped and used in place.
#[derive(Clone, Debug)]
pub enum LoadedModel {
    /// Parameters in memory, in the canonical layout.
    InMemory(ModelWeights),
    /// A model file mapped into memory.
    Mapped(MappedModel),
}

impl LoadedModel {
    /// The configuration.
    pub fn config(&self) -> &Config {
        match self {
            LoadedModel::InMemory(w) => w.config(),
            LoadedModel::Mapped(m) => m.config(),
        }
    }

    /// How the parameters are stored.
    pub fn dtype(&self) -> WeightDtype {
        match self {
            LoadedModel::InMemory(w) => w.dtype(),
            LoadedModel::Mapped(m) => m.dtype(),
        }
    }

    /// The tokenizer the model was trained with, if its file records it.
    pub fn tokenizer(&self) -> Option<&str> {
        match self {
            LoadedModel::InMemory(w) => w.tokenizer(),
            LoadedModel::Mapped(m) => m.tokenizer(),
        }
    }

    /// The parameters in memory (a copy for a mapped file).
    pub fn to_weights(&self) -> Result<ModelWeights> {
        match self {
            LoadedModel::InMemory(w) => Ok(w.clone()),
            LoadedModel::Mapped(m) => m.to_weights(),
        }
    }
}

/// Whether the file at `path` is a model file (GGUF), from its first bytes.
fn is_gguf(path: &Path) -> Result<bool> {
    crate::files::regular_file(path)?;
    let mut head = [0u8; 4];
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut got = 0;
    while got < head.len() {
        match file.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io(path, e)),
        }
    }
    Ok(gguf::looks_like_gguf(&head[..got]))
}

/// Loads a model for running: a model file (GGUF) is mapped and used in place;
/// the other formats are read into memory as [`load_model`] does.
pub fn open_model(path: &Path, options: ImportOptions) -> Result<LoadedModel> {
    if is_gguf(path)? {
        let mut mapped = MappedModel::open(path)?;
        if options.abs_attention_scale {
            mapped.set_abs_attention_scale(true);
        }
        Ok(LoadedModel::Mapped(mapped))
    } else {
        load_model(path, options).map(LoadedModel::InMemory)
    }
}

/// Loads a model in any format into memory. `options` apply to official
/// checkpoints; for brt files only `abs_attention_scale` can be switched on.
pub fn load_model(path: &Path, options: ImportOptions) -> Result<ModelWeights> {
    if is_gguf(path)? {
        return open_model(path, options)?.to_weights();
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let mut weights = match detect(&bytes) {
        Some(ModelFormat::Gguf) => MappedModel::open(path)?.to_weights()?,
        Some(ModelFormat::Brt) => format::from_bytes(&bytes).map_err(|m| Error::format(path, m))?,
        Some(ModelFormat::Meliad) => meliad::import(&bytes, options).map_err(|m| Error::format(path, m))?,
        None if bytes.is_empty() => return Err(Error::format(path, "the file is empty")),
        None => return Err(Error::format(
            path,
            "neither brt weights (safetensors), a brt model file (GGUF) nor an official Meliad checkpoint (msgpack)",
        )),
    };
    if options.abs_attention_scale {
        weights.set_abs_attention_scale(true);
    }
    Ok(weights)
}
