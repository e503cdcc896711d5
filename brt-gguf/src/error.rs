//! What can be wrong with a model file: a small `Copy` value that says where and
//! what, for messages that tell the user what to do.

use brt_core::CoreError;
use core::fmt;

/// Everything the reader can refuse.
///
/// Each problem says what and where, and its message what to do; the writer
/// reports an invalid configuration as [`GgufError::Config`]:
///
/// ```
/// use brt_core::{Config, WeightData};
/// use brt_gguf::{GgufError, ModelFile};
/// let plain = brt_gguf::include_model!("../tests/data/plain.gguf");
/// // Cut short after the magic bytes and the version (4 bytes each).
/// let error = ModelFile::parse(&plain[..10]).unwrap_err();
/// assert!(matches!(error, GgufError::Truncated { offset: 8, .. }));
/// assert!(error.to_string().contains("cut short"));
/// let no_layers = Config::plain(16, 8, 2, 4, 16, 0, 4);
/// let error = brt_gguf::write(&no_layers, None, WeightData::F32(&[])).unwrap_err();
/// assert!(matches!(error, GgufError::Config(_)));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GgufError {
    /// The file does not start with the GGUF magic bytes.
    NotGguf,
    /// A GGUF version other than the one brt reads.
    UnsupportedVersion {
        /// The version in the file.
        found: u32,
    },
    /// The file ends inside something it announces.
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Byte offset where it starts.
        offset: usize,
    },
    /// A structure is invalid (a count larger than the file, a bad UTF-8 string,
    /// an unknown value type, nesting too deep).
    Malformed {
        /// What is wrong.
        what: &'static str,
        /// Byte offset where it was found.
        offset: usize,
    },
    /// A metadata key brt needs is missing, repeated, or has the wrong type or value.
    Metadata {
        /// The key.
        key: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The file is a GGUF file for another architecture (not `brt`).
    OtherArchitecture,
    /// A brt file of a format version this reader does not know.
    UnsupportedFormatVersion {
        /// The version in the file.
        found: u32,
    },
    /// A Q8_0 model file of format version 1, whose 8-bit kernels are laid out
    /// (and were computed) the way brt no longer does.
    OldQ8_0,
    /// The configuration in the metadata is invalid.
    Config(CoreError),
    /// A tensor does not match what the configuration needs at its place.
    Tensor {
        /// Index of the tensor in the file's table.
        index: usize,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The file has another number of tensors than the configuration needs.
    TensorCount {
        /// Tensors the configuration needs.
        expected: usize,
        /// Tensors in the file.
        found: u64,
    },
    /// The bytes after the tensor table do not match the tensors: too few, or more
    /// than the last tensor needs.
    DataSize {
        /// Bytes the tensors need (data section start + tensors).
        expected: usize,
        /// Bytes in the file.
        found: usize,
    },
    /// The weights are not aligned in memory for their type.
    Misaligned {
        /// The alignment the weights need, in bytes.
        needed: usize,
    },
    /// The tensor data does not have the checksum the file states.
    Checksum {
        /// The stored CRC-32.
        stored: u32,
        /// The CRC-32 of the data as read.
        computed: u32,
    },
    /// A parameter holds NaN or an infinity.
    NonFinite {
        /// Index of the tensor in the file's table.
        index: usize,
        /// Element inside the tensor.
        element: usize,
    },
}

impl From<CoreError> for GgufError {
    fn from(e: CoreError) -> Self {
        GgufError::Config(e)
    }
}

impl fmt::Display for GgufError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            GgufError::NotGguf => f.write_str("not a GGUF file (it does not start with `GGUF`)"),
            GgufError::UnsupportedVersion { found } => {
                write!(f, "GGUF version {found}; brt reads version 3 (convert the model again with `brt convert`)")
            }
            GgufError::Truncated { what, offset } => {
                write!(f, "the file ends inside the {what} that starts at byte {offset}; it is cut short (copy it again)")
            }
            GgufError::Malformed { what, offset } => {
                write!(f, "{what} (at byte {offset}); the file is cut short or corrupt")
            }
            GgufError::Metadata { key, problem } => write!(f, "metadata `{key}`: {problem}"),
            GgufError::OtherArchitecture => f.write_str(
                "a GGUF model of another architecture (`general.architecture` is not `brt`); brt runs only its own models",
            ),
            GgufError::UnsupportedFormatVersion { found } => write!(
                f,
                "brt model file version {found}; this brt reads versions {} to {} (use a matching brt, or convert again)",
                crate::OLDEST_FORMAT_VERSION,
                crate::FORMAT_VERSION
            ),
            GgufError::OldQ8_0 => f.write_str(
                "a q8_0 model file of brt format version 1, whose 8-bit kernels are stored the other way round: \
                 convert the model again from its original file (`brt convert IN OUT.gguf --dtype q8_0`)",
            ),
            GgufError::Config(e) => write!(f, "the configuration in the file is invalid: {e}"),
            GgufError::Tensor { index, problem } => write!(f, "tensor {index}: {problem}"),
            GgufError::TensorCount { expected, found } => {
                write!(f, "the file has {found} tensors, the configuration needs {expected}")
            }
            GgufError::DataSize { expected, found } => write!(
                f,
                "the tensors need a file of {expected} bytes, the file has {found} (cut short, or something appended)"
            ),
            GgufError::Misaligned { needed } => write!(
                f,
                "the weights are not at a multiple of {needed} bytes in memory; place the file's bytes at an aligned \
                 address (e.g. with `brt_gguf::include_model!`)"
            ),
            GgufError::Checksum { stored, computed } => write!(
                f,
                "the tensor data is corrupt: its CRC-32 is {computed:#010x}, the file says {stored:#010x} (copy it again)"
            ),
            GgufError::NonFinite { index, element } => write!(
                f,
                "tensor {index} has a non-finite value (NaN or infinity) at element {element}; the weights are corrupt"
            ),
        }
    }
}
