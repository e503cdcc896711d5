//! brt's deployable model file (GGUF; the `brt-gguf` crate reads and writes it)
//! on a host: mapped into memory rather than read into it, checked whole once,
//! and used in place by the CPU backend, so loading costs no copy and no memory
//! for the weights beyond the pages the system maps.

use crate::engine::Fingerprint;
use crate::error::{Error, Result};
use crate::files::write_atomically;
use crate::weights::{ModelWeights, WeightBuffer};
use brt_core::{ByteLayout, Config, WeightData, WeightDtype, WeightLayout};
use brt_gguf::ModelFile;
use brt_heap::SharedBytes;
use std::ops::Range;
use std::path::Path;

/// A checked model file mapped into memory.
///
/// A model file written as f16 (here held in memory, as a mapping would hold it)
/// is the same model as its f16 weights:
///
/// ```
/// # use brt::gguf::{self, MappedModel};
/// # use brt_core::{Config, WeightDtype};
/// # use brt_heap::SharedBytes;
/// # let model = brt::bench::random_model(&Config::plain(10, 8, 2, 4, 16, 1, 4), WeightDtype::F32, 1)?;
/// # let bytes = gguf::to_bytes(&model, Some("tiny"), WeightDtype::F16)?;
/// # let mapped = MappedModel::from_bytes(SharedBytes::copy_aligned(&bytes))?;
/// assert_eq!((mapped.config(), mapped.dtype()), (model.config(), WeightDtype::F16));
/// assert_eq!(mapped.to_weights()?, model.with_dtype(WeightDtype::F16)?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct MappedModel {
    file: SharedBytes,
    config: Config,
    /// Where the tensors lie in the tensor data and how they are stored.
    layout: ByteLayout,
    /// The tensor data inside the file.
    data: Range<usize>,
    fingerprint: u64,
    crc32: u32,
    format_version: u32,
    name: Option<String>,
    tokenizer: Option<String>,
}

/// The file's mapping: the bytes of the file as the system pages them in.
struct Mapping(memmap2::Mmap);

impl AsRef<[u8]> for Mapping {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl MappedModel {
    /// Maps `path` and checks it (structure, configuration, every tensor, the
    /// checksum, finite values).
    ///
    /// A saved model file opens to the same model; a file that is not one is
    /// refused:
    ///
    /// ```
    /// # use brt::gguf::{self, MappedModel};
    /// # use brt_core::{Config, WeightDtype};
    /// # let model = brt::bench::random_model(&Config::plain(10, 8, 2, 4, 16, 1, 4), WeightDtype::F32, 1)?;
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("tiny.gguf");
    /// gguf::save(&model, &path, WeightDtype::F32)?;
    /// let opened = MappedModel::open(&path)?;
    /// assert_eq!(opened.to_weights()?, model);
    /// assert_eq!(opened.name(), Some("tiny"));
    /// std::fs::write(&path, b"GGUF, but no more")?;
    /// assert!(MappedModel::open(&path).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(path: &Path) -> Result<MappedModel> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let meta = file.metadata().map_err(|e| Error::io(path, e))?;
        if !meta.is_file() {
            return Err(Error::format(path, "not a regular file; give the path of a model file"));
        }
        // SAFETY: a mapping is only sound while no one changes or truncates the
        // file. brt never writes a file in place: every writer (files.rs) writes a
        // new file and renames it over the old one, which leaves this mapping on
        // the old file. Changing a model file in place while a brt program runs
        // it is outside what brt supports (README, "Model files"), as for any
        // program that maps its inputs; the bytes are read only.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        MappedModel::from_bytes(SharedBytes::new(Mapping(map))).map_err(|m| Error::format(path, m))
    }

    /// Checks a model file held in `bytes` (which must be aligned for its weights,
    /// as a mapping or `brt_gguf::include_model!` is).
    ///
    /// A copy to aligned memory is checked as a mapped file is; a changed byte of
    /// the tensor data fails the checksum:
    ///
    /// ```
    /// # use brt::gguf::{self, MappedModel};
    /// # use brt_core::{Config, WeightDtype};
    /// # use brt_heap::SharedBytes;
    /// # let model = brt::bench::random_model(&Config::plain(10, 8, 2, 4, 16, 1, 4), WeightDtype::F32, 1)?;
    /// # let bytes = gguf::to_bytes(&model, Some("tiny"), WeightDtype::F16)?;
    /// # let mapped = MappedModel::from_bytes(SharedBytes::copy_aligned(&bytes))?;
    /// let ok = MappedModel::from_bytes(SharedBytes::copy_aligned(&bytes))?;
    /// assert_eq!(ok.file_len(), bytes.len());
    /// let mut corrupt = bytes.clone();
    /// *corrupt.last_mut().unwrap() ^= 1;
    /// assert!(MappedModel::from_bytes(SharedBytes::copy_aligned(&corrupt)).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_bytes(bytes: SharedBytes) -> std::result::Result<MappedModel, String> {
        let parsed = ModelFile::parse(&bytes).map_err(|e| e.to_string())?;
        let data = parsed.data_offset()..parsed.data_offset() + parsed.weight_bytes().len();
        let mut fingerprint = Fingerprint::new(parsed.config());
        for tensor in parsed.byte_layout().tensors() {
            fingerprint.bytes(&parsed.weight_bytes()[tensor.offset..tensor.offset + tensor.bytes]);
        }
        Ok(MappedModel {
            config: *parsed.config(),
            layout: *parsed.byte_layout(),
            data,
            fingerprint: fingerprint.finish(),
            crc32: parsed.crc32(),
            format_version: parsed.format_version(),
            name: parsed.name().map(str::to_owned),
            tokenizer: parsed.tokenizer().map(str::to_owned),
            file: bytes.clone(),
        })
    }

    /// The configuration.
    ///
    /// ```
    /// # use brt::gguf::{self, MappedModel};
    /// # use brt_core::{Config, WeightDtype};
    /// # use brt_heap::SharedBytes;
    /// # let model = brt::bench::random_model(&Config::plain(10, 8, 2, 4, 16, 1, 4), WeightDtype::F32, 1)?;
    /// # let bytes = gguf::to_bytes(&model, Some("tiny"), WeightDtype::F16)?;
    /// # let mapped = MappedModel::from_bytes(SharedBytes::copy_aligned(&bytes))?;
    /// assert_eq!(mapped.config(), model.config());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// How the weights are stored.
    ///
    /// ```
    /// # use brt::gguf::{self, MappedModel};
    /// # use brt_core::{Config, WeightDtype};
    /// # use brt_heap::SharedBytes;
    /// # let model = brt::bench::random_model(&Config::plain(10, 8, 2, 4, 16, 1, 4), WeightDtype::F32, 1)?;
    /// # let bytes = gguf::to_bytes(&model, Some("tiny"), WeightDtype::F16)?;
    /// # let mapped = MappedModel::from_bytes(SharedBytes::copy_aligned(&bytes))?;
    /// assert_eq!(mapped.dtype(), WeightDtype::F16);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn dtype(&self) -> WeightDtype {
        self.layout.dtype()
    }

    /// Where each parameter's values lie (the aligned layout of
    /// [`MappedModel::weights`]; for Q8_0 the canonical one, mapped to bytes by
    /// [`MappedModel::byte_layout`]).
    ///
    /// Every parameter is in it, at an aligned place (so the layout may be longer
    /// than the canonical one):
    ///
    /// ```
    /// # use brt::gguf::{self, MappedModel};
    /// # use brt_core::{Config, WeightDtype};
    /// # use brt_heap::SharedBytes;
    /// # let model = brt::bench::random_model(&Config::plain(10, 8, 2, 4, 16, 1, 4), WeightDtype::F32, 1)?;
    /// # let bytes = gguf::to_bytes(&model, Some("tiny"), WeightDtype::F16)?;
    /// # let mapped = MappedModel::from_bytes(SharedBytes::copy_aligned(&bytes))?;
    /// use brt_core::{Param, WeightLayout};
    /// let canonical = WeightLayout::new(mapped.config())?;
    /// assert!(mapped.layout().len() >= canonical.len());
    /// assert!(mapped.layout().span(Param::FinalNorm).is_some());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn layout(&self) -> &WeightLayout {
        self.layout.layout()
    }

    /// Where each tensor lies in [`MappedModel::weight_bytes`] and how it is
    /// stored.
    ///
    /// Its tensors lie inside the tensor data:
    ///
    /// ```
    /// # use brt::gguf::{self, MappedModel};
    /// # use brt_core::{Config, WeightDtype};
    /// # use brt_heap::SharedBytes;
    /// # let model = brt::bench::random_model(&Config::plain(10, 8, 2, 4, 16, 1, 4), WeightDtype::F32, 1)?;
    /// # let bytes = gguf::to_bytes(&model, Some("tiny"), WeightDtype::F16)?;
    /// # let mapped = MappedModel::from_bytes(SharedBytes::copy_aligned(&bytes))?;
    /// let data = mapped.weight_bytes().len();
    /// assert!(mapped.byte_layout().tensors().all(|t| t.offset + t.bytes <= data));
    /// assert_eq!(mapped.byte_layout().dtype(), mapped.dtype());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn byte_layout(&self) -> &ByteLayout {
        &self.layout
    }

    /// The weights in place, in [`MappedModel::layout`], for a model stored in
    /// one type; `None` for Q8_0 (see [`MappedModel::decode`]).
    ///
    /// An f16 file gives its f16 values in place; a Q8_0 file gives none:
    ///
    /// ```
    /// # use brt::gguf::{self, MappedModel};
    /// # use brt_core::{Config, WeightDtype};
    /// # use brt_heap::SharedBytes;
    /// # let model = brt::bench::random_model(&Config::plain(10, 8, 2, 4, 16, 1, 4), WeightDtype::F32, 1)?;
    /// # let bytes = gguf::to_bytes(&model, Some("tiny"), WeightDtype::F16)?;
    /// # let mapped = MappedModel::from_bytes(SharedBytes::copy_aligned(&bytes))?;
    /// use brt_core::WeightData;
    /// assert!(matches!(mapped.weights(), Some(WeightData::F16(v)) if v.len() == mapped.layout().len()));
    /// let q8 = gguf::to_bytes(&model, None, WeightDtype::Q8_0)?;
    /// assert!(MappedModel::from_bytes(SharedBytes::copy_aligned(&q8))?.weights().is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn weights(&self) -> Option<WeightData<'_>> {
        // Checked when the file was opened: aligned, whole values.
        brt_gguf::weight_data(&self.file[self.data.clone()], self.dtype())
    }

    /// Every weight as the f32 value it stands for, in the canonical layout.
    ///
    /// The values of a Q8_0 file are those [`crate::ModelWeights::with_dtype`]
    /// rounds to:
    ///
    /// ```
    /// # use brt::gguf::{self, MappedModel};
    /// # use brt_core::{Config, WeightDtype};
    /// # use brt_heap::SharedBytes;
    /// # let model = brt::bench::random_model(&Config::plain(10, 8, 2, 4, 16, 1, 4), WeightDtype::F32, 1)?;
    /// # let bytes = gguf::to_bytes(&model, Some("tiny"), WeightDtype::F16)?;
    /// # let mapped = MappedModel::from_bytes(SharedBytes::copy_aligned(&bytes))?;
    /// let q8 = gguf::to_bytes(&model, None, WeightDtype::Q8_0)?;
    /// let values = MappedModel::from_bytes(SharedBytes::copy_aligned(&q8))?.decode()?;
    /// let rounded = model.with_dtype(WeightDtype::Q8_0)?;
    /// assert_eq!(values, rounded.buffer().to_f32(0..values.len()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn decode(&self) -> Result<Vec<f32>> {
        let mut values = vec![0f32; WeightLayout::new(&self.config)?.len()];
        self.layout.decode(&self.file[self.data.clone()], &mut values)?;
        Ok(values)
    }

    /// The tensor data, shared (for the CPU backend to use in place).
    ///
    /// f16 values take two bytes each (and the data ends aligned):
    ///
    /// ```
    /// # use brt::gguf::{self, MappedModel};
    /// # use brt_core::{Config, WeightDtype};
    /// # use brt_heap::SharedBytes;
    /// # let model = brt::bench::random_model(&Config::plain(10, 8, 2, 4, 16, 1, 4), WeightDtype::F32, 1)?;
    /// # let bytes = gguf::to_bytes(&model, Some("tiny"), WeightDtype::F16)?;
    /// # let mapped = MappedModel::from_bytes(SharedBytes::copy_aligned(&bytes))?;
    /// assert!(mapped.weight_bytes().len() >= 2 * model.buffer().len());
    /// assert!(mapped.weight_bytes().len() < mapped.file_len());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn weight_bytes(&self) -> SharedBytes {
        self.file.slice(self.data.clone()).unwrap_or_else(|| SharedBytes::new(Vec::new()))
    }

    /// The model's fingerprint: that of the same model in memory
    /// ([`crate::engine::fingerprint`]), so sessions move between formats.
    ///
    /// ```
    /// # use brt::gguf::{self, MappedModel};
    /// # use brt_core::{Config, WeightDtype};
    /// # use brt_heap::SharedBytes;
    /// # let model = brt::bench::random_model(&Config::plain(10, 8, 2, 4, 16, 1, 4), WeightDtype::F32, 1)?;
    /// # let bytes = gguf::to_bytes(&model, Some("tiny"), WeightDtype::F16)?;
    /// # let mapped = MappedModel::from_bytes(SharedBytes::copy_aligned(&bytes))?;
    /// assert_eq!(mapped.fingerprint(), brt::engine::fingerprint(&mapped.to_weights()?));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// Alignment of the tensor data in bytes.
    ///
    /// brt writes files with the default alignment of GGUF:
    ///
    /// ```
    /// # use brt::gguf::{self, MappedModel};
    /// # use brt_core::{Config, WeightDtype};
    /// # use brt_heap::SharedBytes;
    /// # let model = brt::bench::random_model(&Config::plain(10, 8, 2, 4, 16, 1, 4), WeightDtype::F32, 1)?;
    /// # let bytes = gguf::to_bytes(&model, Some("tiny"), WeightDtype::F16)?;
    /// # let mapped = MappedModel::from_bytes(SharedBytes::copy_aligned(&bytes))?;
    /// assert_eq!(mapped.alignment(), brt_gguf::DEFAULT_ALIGNMENT);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn alignment(&self) -> usize {
        self.layout.align()
    }

    /// The CRC-32 of the tensor data (checked when opened).
    ///
    /// It is the one the file records; other weights have another:
    ///
    /// ```
    /// # use brt::gguf::{self, MappedModel};
    /// # use brt_core::{Config, WeightDtype};
    /// # use brt_heap::SharedBytes;
    /// # let model = brt::bench::random_model(&Config::plain(10, 8, 2, 4, 16, 1, 4), WeightDtype::F32, 1)?;
    /// # let bytes = gguf::to_bytes(&model, Some("tiny"), WeightDtype::F16)?;
    /// # let mapped = MappedModel::from_bytes(SharedBytes::copy_aligned(&bytes))?;
    /// assert_eq!(mapped.crc32(), brt_gguf::ModelFile::parse(&bytes).map_err(|e| e.to_string())?.crc32());
    /// let other = brt::bench::random_model(model.config(), WeightDtype::F32, 2)?;
    /// let other = MappedModel::from_bytes(SharedBytes::copy_aligned(&gguf::to_bytes(&other, None, WeightDtype::F16)?))?;
    /// assert_ne!(mapped.crc32(), other.crc32());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn crc32(&self) -> u32 {
        self.crc32
    }

    /// The brt format version the file was written in.
    ///
    /// A file this brt writes has the newest version:
    ///
    /// ```
    /// # use brt::gguf::{self, MappedModel};
    /// # use brt_core::{Config, WeightDtype};
    /// # use brt_heap::SharedBytes;
    /// # let model = brt::bench::random_model(&Config::plain(10, 8, 2, 4, 16, 1, 4), WeightDtype::F32, 1)?;
    /// # let bytes = gguf::to_bytes(&model, Some("tiny"), WeightDtype::F16)?;
    /// # let mapped = MappedModel::from_bytes(SharedBytes::copy_aligned(&bytes))?;
    /// assert_eq!(mapped.format_version(), brt_gguf::FORMAT_VERSION);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn format_version(&self) -> u32 {
        self.format_version
    }

    /// The tokenizer the model was trained with, if the file records it.
    ///
    /// ```
    /// # use brt::gguf::{self, MappedModel};
    /// # use brt_core::{Config, WeightDtype};
    /// # use brt_heap::SharedBytes;
    /// # let model = brt::bench::random_model(&Config::plain(10, 8, 2, 4, 16, 1, 4), WeightDtype::F32, 1)?;
    /// # let bytes = gguf::to_bytes(&model, Some("tiny"), WeightDtype::F16)?;
    /// # let mapped = MappedModel::from_bytes(SharedBytes::copy_aligned(&bytes))?;
    /// assert_eq!(mapped.tokenizer(), None);
    /// let mut named = model.clone();
    /// named.set_tokenizer(Some("bytes".into()));
    /// let bytes = gguf::to_bytes(&named, None, WeightDtype::F32)?;
    /// assert_eq!(MappedModel::from_bytes(SharedBytes::copy_aligned(&bytes))?.tokenizer(), Some("bytes"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn tokenizer(&self) -> Option<&str> {
        self.tokenizer.as_deref()
    }

    /// The name the file gives the model, if any.
    ///
    /// ```
    /// # use brt::gguf::{self, MappedModel};
    /// # use brt_core::{Config, WeightDtype};
    /// # use brt_heap::SharedBytes;
    /// # let model = brt::bench::random_model(&Config::plain(10, 8, 2, 4, 16, 1, 4), WeightDtype::F32, 1)?;
    /// # let bytes = gguf::to_bytes(&model, Some("tiny"), WeightDtype::F16)?;
    /// # let mapped = MappedModel::from_bytes(SharedBytes::copy_aligned(&bytes))?;
    /// assert_eq!(mapped.name(), Some("tiny"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Bytes of the whole file.
    ///
    /// ```
    /// # use brt::gguf::{self, MappedModel};
    /// # use brt_core::{Config, WeightDtype};
    /// # use brt_heap::SharedBytes;
    /// # let model = brt::bench::random_model(&Config::plain(10, 8, 2, 4, 16, 1, 4), WeightDtype::F32, 1)?;
    /// # let bytes = gguf::to_bytes(&model, Some("tiny"), WeightDtype::F16)?;
    /// # let mapped = MappedModel::from_bytes(SharedBytes::copy_aligned(&bytes))?;
    /// assert_eq!(mapped.file_len(), bytes.len());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn file_len(&self) -> usize {
        self.file.len()
    }

    /// Sets whether learned attention scales are used as `abs(a)`.
    ///
    /// ```
    /// # use brt::gguf::{self, MappedModel};
    /// # use brt_core::{Config, WeightDtype};
    /// # use brt_heap::SharedBytes;
    /// # let model = brt::bench::random_model(&Config::plain(10, 8, 2, 4, 16, 1, 4), WeightDtype::F32, 1)?;
    /// # let bytes = gguf::to_bytes(&model, Some("tiny"), WeightDtype::F16)?;
    /// # let mapped = MappedModel::from_bytes(SharedBytes::copy_aligned(&bytes))?;
    /// let mut mapped = mapped;
    /// mapped.set_abs_attention_scale(true);
    /// assert!(mapped.config().abs_attention_scale);
    /// assert!(mapped.to_weights()?.config().abs_attention_scale);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_abs_attention_scale(&mut self, abs: bool) {
        self.config.abs_attention_scale = abs;
        // The flag changes no shape, so the layout stays valid.
        if let Ok(layout) = ByteLayout::new(&self.config, self.dtype(), self.alignment()) {
            self.layout = layout;
        }
    }

    /// A copy of the model in memory, in the canonical layout, in its storage
    /// type; a Q8_0 model becomes the f32 values its blocks stand for.
    ///
    /// ```
    /// # use brt::gguf::{self, MappedModel};
    /// # use brt_core::{Config, WeightDtype};
    /// # use brt_heap::SharedBytes;
    /// # let model = brt::bench::random_model(&Config::plain(10, 8, 2, 4, 16, 1, 4), WeightDtype::F32, 1)?;
    /// # let bytes = gguf::to_bytes(&model, Some("tiny"), WeightDtype::F16)?;
    /// # let mapped = MappedModel::from_bytes(SharedBytes::copy_aligned(&bytes))?;
    /// let weights = mapped.to_weights()?;
    /// assert_eq!((weights.dtype(), weights.buffer().len()), (WeightDtype::F16, model.buffer().len()));
    /// let q8 = gguf::to_bytes(&model, None, WeightDtype::Q8_0)?;
    /// assert_eq!(MappedModel::from_bytes(SharedBytes::copy_aligned(&q8))?.to_weights()?.dtype(), WeightDtype::F32);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn to_weights(&self) -> Result<ModelWeights> {
        let values = self.decode()?;
        let buffer = match self.dtype() {
            WeightDtype::F32 | WeightDtype::Q8_0 => WeightBuffer::F32(values),
            other => WeightBuffer::F32(values).convert(other),
        };
        let mut weights = ModelWeights::new(self.config, buffer)?;
        weights.set_tokenizer(self.tokenizer.clone());
        Ok(weights)
    }
}

/// Whether `bytes` start like a GGUF file.
///
/// ```
/// use brt::gguf::looks_like_gguf;
/// assert!(looks_like_gguf(b"GGUF\x03\0\0\0"));
/// assert!(!looks_like_gguf(brt::default_model::DEFAULT_MODEL));
/// ```
pub fn looks_like_gguf(bytes: &[u8]) -> bool {
    bytes.starts_with(&brt_gguf::MAGIC)
}

/// The model file's bytes for `weights`, stored as `dtype` (rounded, or
/// quantized for Q8_0).
///
/// Q8_0 stores the matrices in about a byte per value, so a model of wide
/// matrices takes less than half of f32's four bytes a value:
///
/// ```
/// # use brt::gguf;
/// # use brt_core::{Config, WeightDtype};
/// let model = brt::bench::random_model(&Config::plain(64, 64, 2, 32, 128, 1, 8), WeightDtype::F32, 1)?;
/// let f32_file = gguf::to_bytes(&model, None, WeightDtype::F32)?;
/// let q8_file = gguf::to_bytes(&model, None, WeightDtype::Q8_0)?;
/// assert!(gguf::looks_like_gguf(&q8_file));
/// assert!(2 * q8_file.len() < f32_file.len());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn to_bytes(weights: &ModelWeights, name: Option<&str>, dtype: WeightDtype) -> Result<Vec<u8>> {
    brt_gguf::write_tagged(weights.config(), name, weights.tokenizer(), weights.buffer().data(), dtype)
        .map_err(|e| Error::Invalid(format!("model file: {e}")))
}

/// Writes `weights` to `path` as a model file stored as `dtype`, atomically.
///
/// The file names the model after itself:
///
/// ```
/// # use brt::gguf::{self, MappedModel};
/// # use brt_core::{Config, WeightDtype};
/// # let model = brt::bench::random_model(&Config::plain(10, 8, 2, 4, 16, 1, 4), WeightDtype::F32, 1)?;
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("shakespeare.gguf");
/// gguf::save(&model, &path, WeightDtype::Bf16)?;
/// let opened = MappedModel::open(&path)?;
/// assert_eq!((opened.name(), opened.dtype()), (Some("shakespeare"), WeightDtype::Bf16));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn save(weights: &ModelWeights, path: &Path, dtype: WeightDtype) -> Result<()> {
    let name = path.file_stem().map(|s| s.to_string_lossy().into_owned());
    write_atomically(path, &to_bytes(weights, name.as_deref(), dtype)?)
}
