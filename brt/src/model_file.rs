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
///
/// Each of brt's formats is told by its first bytes:
///
/// ```
/// use brt::model_file::{detect, ModelFormat};
/// use brt_core::WeightDtype;
/// let model = brt::bench::random_model(&brt_core::Config::plain(16, 8, 2, 4, 16, 1, 4), WeightDtype::F16, 1)?;
/// assert_eq!(detect(&brt::format::to_bytes(&model)?), Some(ModelFormat::Brt));
/// assert_eq!(detect(&brt::gguf::to_bytes(&model, None, WeightDtype::F16)?), Some(ModelFormat::Gguf));
/// assert_eq!(detect(&[0x80]), Some(ModelFormat::Meliad)); // an empty msgpack map
/// # Ok::<(), brt::Error>(())
/// ```
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
///
/// Text is no model file:
///
/// ```
/// use brt::model_file::{detect, ModelFormat};
/// assert_eq!(detect(brt::default_model::DEFAULT_MODEL), Some(ModelFormat::Brt));
/// assert_eq!(detect(b"hello"), None);
/// assert_eq!(detect(b""), None);
/// ```
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
///
/// Both kinds answer for the model they hold:
///
/// ```
/// use brt::gguf::MappedModel;
/// use brt::model_file::LoadedModel;
/// use brt_core::WeightDtype;
/// let weights = brt::bench::random_model(&brt_core::Config::plain(16, 8, 2, 4, 16, 1, 4), WeightDtype::F16, 1)?;
/// let bytes = brt::gguf::to_bytes(&weights, None, WeightDtype::F16)?;
/// let mapped = MappedModel::from_bytes(brt_heap::SharedBytes::copy_aligned(&bytes))?;
/// for model in [LoadedModel::InMemory(weights.clone()), LoadedModel::Mapped(mapped)] {
///     assert_eq!(model.config(), weights.config());
///     assert_eq!(model.to_weights()?, weights);
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub enum LoadedModel {
    /// Parameters in memory, in the canonical layout.
    InMemory(ModelWeights),
    /// A model file mapped into memory.
    Mapped(MappedModel),
}

impl LoadedModel {
    /// The configuration.
    ///
    /// ```
    /// use brt::model_file::LoadedModel;
    /// let model = LoadedModel::InMemory(brt::default_model()?);
    /// assert_eq!(model.config().vocab, 260);
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn config(&self) -> &Config {
        match self {
            LoadedModel::InMemory(w) => w.config(),
            LoadedModel::Mapped(m) => m.config(),
        }
    }

    /// How the parameters are stored.
    ///
    /// ```
    /// use brt::model_file::LoadedModel;
    /// let model = LoadedModel::InMemory(brt::default_model()?);
    /// assert_eq!(model.dtype(), brt_core::WeightDtype::F16);
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn dtype(&self) -> WeightDtype {
        match self {
            LoadedModel::InMemory(w) => w.dtype(),
            LoadedModel::Mapped(m) => m.dtype(),
        }
    }

    /// The tokenizer the model was trained with, if its file records it.
    ///
    /// ```
    /// use brt::model_file::LoadedModel;
    /// let mut weights = brt::default_model()?;
    /// weights.set_tokenizer(Some("bytes".into()));
    /// assert_eq!(LoadedModel::InMemory(weights).tokenizer(), Some("bytes"));
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn tokenizer(&self) -> Option<&str> {
        match self {
            LoadedModel::InMemory(w) => w.tokenizer(),
            LoadedModel::Mapped(m) => m.tokenizer(),
        }
    }

    /// The parameters in memory (a copy for a mapped file).
    ///
    /// A Q8_0 file gives the f32 values its blocks stand for:
    ///
    /// ```
    /// use brt::gguf::MappedModel;
    /// use brt::model_file::LoadedModel;
    /// use brt_core::{Config, WeightDtype};
    /// let weights = brt::bench::random_model(&Config::plain(64, 32, 2, 16, 64, 1, 4), WeightDtype::F32, 1)?;
    /// let bytes = brt::gguf::to_bytes(&weights, None, WeightDtype::Q8_0)?;
    /// let model = LoadedModel::Mapped(MappedModel::from_bytes(brt_heap::SharedBytes::copy_aligned(&bytes))?);
    /// assert_eq!(model.dtype(), WeightDtype::Q8_0);
    /// assert_eq!(model.to_weights()?, weights.with_dtype(WeightDtype::Q8_0)?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
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
///
/// A GGUF file is mapped, brt weights are read:
///
/// ```
/// use brt::model_file::{open_model, LoadedModel};
/// use brt_core::WeightDtype;
/// let model = brt::bench::random_model(&brt_core::Config::plain(16, 8, 2, 4, 16, 1, 4), WeightDtype::F16, 1)?;
/// let dir = tempfile::tempdir()?;
/// let (gguf, brt_file) = (dir.path().join("m.gguf"), dir.path().join("m.safetensors"));
/// brt::gguf::save(&model, &gguf, WeightDtype::F16)?;
/// brt::format::save(&model, &brt_file)?;
/// assert!(matches!(open_model(&gguf, Default::default())?, LoadedModel::Mapped(_)));
/// assert!(matches!(open_model(&brt_file, Default::default())?, LoadedModel::InMemory(_)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
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
///
/// An official checkpoint and brt's own formats all load; an empty file is
/// refused:
///
/// ```
/// use brt::meliad::ImportOptions;
/// let checkpoint = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/meliad/fixed_skip/checkpoint_0"));
/// let official = brt::load_model(checkpoint, ImportOptions::default())?;
/// assert_eq!((official.config().d_model, official.config().window), (32, 16));
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("converted.gguf");
/// brt::gguf::save(&official, &path, brt_core::WeightDtype::F32)?;
/// let abs = ImportOptions { abs_attention_scale: true, ..ImportOptions::default() };
/// let reloaded = brt::load_model(&path, abs)?;
/// assert!(reloaded.config().abs_attention_scale);
/// assert_eq!(reloaded.buffer(), official.buffer());
/// std::fs::write(&path, b"")?;
/// assert!(brt::load_model(&path, ImportOptions::default()).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
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
