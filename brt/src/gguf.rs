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
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// How the weights are stored.
    pub fn dtype(&self) -> WeightDtype {
        self.layout.dtype()
    }

    /// Where each parameter's values lie (the aligned layout of
    /// [`MappedModel::weights`]; for Q8_0 the canonical one, mapped to bytes by
    /// [`MappedModel::byte_layout`]).
    pub fn layout(&self) -> &WeightLayout {
        self.layout.layout()
    }

    /// Where each tensor lies in [`MappedModel::weight_bytes`] and how it is
    /// stored.
    pub fn byte_layout(&self) -> &ByteLayout {
        &self.layout
    }

    /// The weights in place, in [`MappedModel::layout`], for a model stored in
    /// one type; `None` for Q8_0 (see [`MappedModel::decode`]).
    pub fn weights(&self) -> Option<WeightData<'_>> {
        // Checked when the file was opened: aligned, whole values.
        brt_gguf::weight_data(&self.file[self.data.clone()], self.dtype())
    }

    /// Every weight as the f32 value it stands for, in the canonical layout.
    pub fn decode(&self) -> Result<Vec<f32>> {
        let mut values = vec![0f32; WeightLayout::new(&self.config)?.len()];
        self.layout.decode(&self.file[self.data.clone()], &mut values)?;
        Ok(values)
    }

    /// The tensor data, shared (for the CPU backend to use in place).
    pub fn weight_bytes(&self) -> SharedBytes {
        self.file.slice(self.data.clone()).unwrap_or_else(|| SharedBytes::new(Vec::new()))
    }

    /// The model's fingerprint: that of the same model in memory
    /// ([`crate::engine::fingerprint`]), so sessions move between formats.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// Alignment of the tensor data in bytes.
    pub fn alignment(&self) -> usize {
        self.layout.align()
    }

    /// The CRC-32 of the tensor data (checked when opened).
    pub fn crc32(&self) -> u32 {
        self.crc32
    }

    /// The brt format version the file was written in.
    pub fn format_version(&self) -> u32 {
        self.format_version
    }

    /// The tokenizer the model was trained with, if the file records it.
    pub fn tokenizer(&self) -> Option<&str> {
        self.tokenizer.as_deref()
    }

    /// The name the file gives the model, if any.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Bytes of the whole file.
    pub fn file_len(&self) -> usize {
        self.file.len()
    }

    /// Sets whether learned attention scales are used as `abs(a)`.
    pub fn set_abs_attention_scale(&mut self, abs: bool) {
        self.config.abs_attention_scale = abs;
        // The flag changes no shape, so the layout stays valid.
        if let Ok(layout) = ByteLayout::new(&self.config, self.dtype(), self.alignment()) {
            self.layout = layout;
        }
    }

    /// A copy of the model in memory, in the canonical layout, in its storage
    /// type; a Q8_0 model becomes the f32 values its blocks stand for.
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
pub fn looks_like_gguf(bytes: &[u8]) -> bool {
    bytes.starts_with(&brt_gguf::MAGIC)
}

/// The model file's bytes for `weights`, stored as `dtype` (rounded, or
/// quantized for Q8_0).
pub fn to_bytes(weights: &ModelWeights, name: Option<&str>, dtype: WeightDtype) -> Result<Vec<u8>> {
    brt_gguf::write_tagged(weights.config(), name, weights.tokenizer(), weights.buffer().data(), dtype)
        .map_err(|e| Error::Invalid(format!("model file: {e}")))
}

/// Writes `weights` to `path` as a model file stored as `dtype`, atomically.
pub fn save(weights: &ModelWeights, path: &Path, dtype: WeightDtype) -> Result<()> {
    let name = path.file_stem().map(|s| s.to_string_lossy().into_owned());
    write_atomically(path, &to_bytes(weights, name.as_deref(), dtype)?)
}
