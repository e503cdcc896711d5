//! brt's deployable model file (GGUF; the `brt-gguf` crate reads and writes it)
//! on a host: mapped into memory rather than read into it, checked whole once,
//! and used in place by the CPU backend, so loading costs no copy and no memory
//! for the weights beyond the pages the system maps.

use crate::engine::Fingerprint;
use crate::error::{Error, Result};
use crate::files::write_atomically;
use crate::weights::{ModelWeights, WeightBuffer};
use brt_core::{Config, WeightData, WeightDtype, WeightLayout};
use brt_cpu::SharedBytes;
use brt_gguf::ModelFile;
use std::ops::Range;
use std::path::Path;

/// A checked model file mapped into memory.
#[derive(Clone, Debug)]
pub struct MappedModel {
    file: SharedBytes,
    config: Config,
    dtype: WeightDtype,
    /// The aligned layout the tensors lie in.
    layout: WeightLayout,
    /// The tensor data inside the file.
    data: Range<usize>,
    fingerprint: u64,
    alignment: usize,
    crc32: u32,
    name: Option<String>,
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
        for spec in parsed.layout().params() {
            let size = parsed.dtype().size();
            fingerprint.bytes(&parsed.weight_bytes()[spec.offset * size..(spec.offset + spec.span.len()) * size]);
        }
        Ok(MappedModel {
            config: *parsed.config(),
            dtype: parsed.dtype(),
            layout: *parsed.layout(),
            data,
            fingerprint: fingerprint.finish(),
            alignment: parsed.alignment(),
            crc32: parsed.crc32(),
            name: parsed.name().map(str::to_owned),
            file: bytes.clone(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// How the weights are stored.
    pub fn dtype(&self) -> WeightDtype {
        self.dtype
    }

    /// Where each parameter lies in [`MappedModel::weights`] (aligned layout).
    pub fn layout(&self) -> &WeightLayout {
        &self.layout
    }

    /// The weights in place, in [`MappedModel::layout`].
    pub fn weights(&self) -> WeightData<'_> {
        // Checked when the file was opened: aligned, whole values.
        brt_gguf::weight_data(&self.file[self.data.clone()], self.dtype).unwrap_or(WeightData::F32(&[]))
    }

    /// The bytes of [`MappedModel::weights`], shared (for the CPU backend to use
    /// in place).
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
        self.alignment
    }

    /// The CRC-32 of the tensor data (checked when opened).
    pub fn crc32(&self) -> u32 {
        self.crc32
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
        if let Ok(layout) = WeightLayout::aligned(&self.config, self.layout.align()) {
            self.layout = layout;
        }
    }

    /// A copy of the model in memory, in the canonical layout.
    pub fn to_weights(&self) -> Result<ModelWeights> {
        let canonical = WeightLayout::new(&self.config)?;
        let source = self.weights();
        let mut values = Vec::with_capacity(canonical.len());
        for spec in self.layout.params() {
            values.extend((spec.offset..spec.offset + spec.span.len()).map(|i| source.get(i).unwrap_or(0.0)));
        }
        let buffer = match self.dtype {
            WeightDtype::F32 => WeightBuffer::F32(values),
            other => WeightBuffer::F32(values).convert(other),
        };
        ModelWeights::new(self.config, buffer)
    }
}

/// Whether `bytes` start like a GGUF file.
pub fn looks_like_gguf(bytes: &[u8]) -> bool {
    bytes.starts_with(&brt_gguf::MAGIC)
}

/// The model file's bytes for `weights`.
pub fn to_bytes(weights: &ModelWeights, name: Option<&str>) -> Result<Vec<u8>> {
    brt_gguf::write(weights.config(), name, weights.buffer().data())
        .map_err(|e| Error::Invalid(format!("model file: {e}")))
}

/// Writes `weights` to `path` as a model file, atomically.
pub fn save(weights: &ModelWeights, path: &Path) -> Result<()> {
    let name = path.file_stem().map(|s| s.to_string_lossy().into_owned());
    write_atomically(path, &to_bytes(weights, name.as_deref())?)
}
