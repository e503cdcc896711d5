//! # brt-gguf
//!
//! brt's deployable model file, and a reader for it that needs neither `std` nor
//! an allocator.
//!
//! The file is [GGUF] (version 3), the format of ggml and llama.cpp, so existing
//! tools read it (the `gguf` Python package reads brt's files in brt's tests):
//!
//! - metadata: `general.architecture = "brt"`, `general.alignment`, the brt format
//!   version, the configuration under `brt.*` (see [`keys`]) and a CRC-32 of the
//!   tensor data;
//! - one tensor per parameter, named as brt names them (`embed`, `final_norm`,
//!   `layers.3.query`, ...), in the canonical order, all of one storage type
//!   (f32, f16 or bf16) or, in an 8-bit model, Q8_0 for the matrices (kernels
//!   stored one row of blocks per output) and f32 for the rest, each starting at
//!   the next multiple of the alignment (32 bytes).
//!
//! Because the tensors follow one another in canonical order, the data section
//! *is* a weight buffer in the aligned layout ([`brt_core::WeightLayout::aligned`]):
//! [`ModelFile::weights`] hands it out where it lies (flash, ROM, an mmap), with
//! no copy. [`ModelFile::parse`] checks everything first and returns an error,
//! never panics.
//!
//! ```
//! # fn main() -> Result<(), brt_gguf::GgufError> {
//! use brt_core::{Config, WeightData, WeightLayout};
//! let config = Config::plain(16, 8, 2, 4, 16, 1, 4);
//! let weights = vec![0.5f32; WeightLayout::new(&config)?.len()];
//! let bytes = brt_gguf::write(&config, Some("demo"), WeightData::F32(&weights))?;
//! // A Vec<u8> is only byte-aligned; copy into f32s for an aligned address.
//! let mut aligned = vec![0f32; bytes.len().div_ceil(4)];
//! bytemuck::cast_slice_mut::<f32, u8>(&mut aligned)[..bytes.len()].copy_from_slice(&bytes);
//! let file = brt_gguf::ModelFile::parse(&bytemuck::cast_slice(&aligned)[..bytes.len()])?;
//! assert_eq!(file.config(), &config);
//! assert_eq!(file.name(), Some("demo"));
//! assert_eq!(file.weights().map(|w| w.len()), Some(file.layout().len()));
//! # Ok(())
//! # }
//! ```
//!
//! [GGUF]: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md
#![no_std]

#[cfg(feature = "alloc")]
extern crate alloc;

mod error;
mod file;
pub mod keys;
mod reader;
#[cfg(feature = "alloc")]
mod writer;

pub use error::GgufError;
pub use file::{weight_data, ModelFile};
pub use reader::{value_type, Array, Value};
#[cfg(feature = "alloc")]
pub use writer::{write, write_as, write_tagged};

/// The bytes every GGUF file starts with.
///
/// A model file starts with them, and bytes that do not are refused:
///
/// ```
/// use brt_gguf::{GgufError, ModelFile, MAGIC};
/// assert_eq!(&MAGIC, b"GGUF");
/// let plain = brt_gguf::include_model!("../tests/data/plain.gguf");
/// assert_eq!(plain[..4], MAGIC);
/// assert_eq!(ModelFile::parse(b"GGML, not GGUF").unwrap_err(), GgufError::NotGguf);
/// ```
pub const MAGIC: [u8; 4] = *b"GGUF";
/// The GGUF version brt writes and reads.
///
/// A model file states it after the magic bytes, and a file of another version is
/// refused:
///
/// ```
/// use brt_gguf::{GgufError, ModelFile, GGUF_VERSION};
/// let plain = brt_gguf::include_model!("../tests/data/plain.gguf");
/// assert_eq!(plain[4..8], GGUF_VERSION.to_le_bytes());
/// let mut bytes = plain.to_vec();
/// bytes[4..8].copy_from_slice(&2u32.to_le_bytes());
/// assert_eq!(ModelFile::parse(&bytes).unwrap_err(), GgufError::UnsupportedVersion { found: 2 });
/// ```
pub const GGUF_VERSION: u32 = 3;
/// The version of brt's use of GGUF (keys, tensor names and order) that brt
/// writes. Version 2 stores a Q8_0 kernel transposed, one row of blocks per
/// output, for products that quantize their inputs (`brt_core::encoding`);
/// version 1 stored Q8_0 kernels by inputs and computed with their decoded
/// values. Files of either version are read, except version 1 files with Q8_0
/// tensors ([`GgufError::OldQ8_0`]).
///
/// The writer records this version, and the reader refuses a newer one:
///
/// ```
/// use brt_gguf::{keys, GgufError, ModelFile, FORMAT_VERSION};
/// let plain = brt_gguf::include_model!("../tests/data/plain.gguf");
/// assert_eq!(ModelFile::parse(plain)?.format_version(), FORMAT_VERSION);
/// // The version's place in the file: after its key and its type (a u32).
/// let key = keys::FORMAT_VERSION.as_bytes();
/// let at = plain.windows(key.len()).position(|w| w == key).unwrap() + key.len() + 4;
/// let mut bytes = plain.to_vec();
/// bytes[at..at + 4].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
/// let error = ModelFile::parse(&bytes).unwrap_err();
/// assert_eq!(error, GgufError::UnsupportedFormatVersion { found: FORMAT_VERSION + 1 });
/// # Ok::<(), GgufError>(())
/// ```
pub const FORMAT_VERSION: u32 = 2;
/// The oldest format version read.
///
/// A file of this version is read (an f32 one here), and one of the version
/// before it is refused:
///
/// ```
/// use brt_gguf::{keys, GgufError, ModelFile, OLDEST_FORMAT_VERSION};
/// let plain = brt_gguf::include_model!("../tests/data/plain.gguf");
/// // The version's place in the file: after its key and its type (a u32).
/// let key = keys::FORMAT_VERSION.as_bytes();
/// let at = plain.windows(key.len()).position(|w| w == key).unwrap() + key.len() + 4;
/// // A copy at an 8-byte aligned address, for the weights to be used in place.
/// let mut words = vec![0u64; plain.len().div_ceil(8)];
/// let bytes = &mut bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..plain.len()];
/// bytes.copy_from_slice(plain);
/// bytes[at..at + 4].copy_from_slice(&OLDEST_FORMAT_VERSION.to_le_bytes());
/// assert_eq!(ModelFile::parse(bytes)?.format_version(), OLDEST_FORMAT_VERSION);
/// bytes[at..at + 4].copy_from_slice(&(OLDEST_FORMAT_VERSION - 1).to_le_bytes());
/// let error = ModelFile::parse(bytes).unwrap_err();
/// assert_eq!(error, GgufError::UnsupportedFormatVersion { found: OLDEST_FORMAT_VERSION - 1 });
/// # Ok::<(), GgufError>(())
/// ```
pub const OLDEST_FORMAT_VERSION: u32 = 1;
/// Alignment of tensor data when the file does not say (GGUF's default).
///
/// GGUF's default of 32 bytes is what a file without `general.alignment` is read
/// with (here `plain.gguf` with that key renamed to one brt does not read):
///
/// ```
/// use brt_gguf::{keys, ModelFile, DEFAULT_ALIGNMENT};
/// assert_eq!(DEFAULT_ALIGNMENT, 32);
/// let plain = brt_gguf::include_model!("../tests/data/plain.gguf");
/// let key = keys::ALIGNMENT.as_bytes();
/// let at = plain.windows(key.len()).position(|w| w == key).unwrap();
/// // A copy at an 8-byte aligned address, for the weights to be used in place.
/// let mut words = vec![0u64; plain.len().div_ceil(8)];
/// let bytes = &mut bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..plain.len()];
/// bytes.copy_from_slice(plain);
/// bytes[at..at + key.len()].copy_from_slice(b"other.key.ignored");
/// let file = ModelFile::parse(bytes)?;
/// assert!(file.metadata().all(|(key, _)| key != keys::ALIGNMENT));
/// assert_eq!(file.alignment(), DEFAULT_ALIGNMENT);
/// # Ok::<(), brt_gguf::GgufError>(())
/// ```
pub const DEFAULT_ALIGNMENT: usize = 32;
/// The largest alignment the reader accepts.
///
/// A file that states a larger alignment is refused for it; one that states this
/// alignment passes that check (and fails a later one here, as its tensors are
/// placed for 32 bytes):
///
/// ```
/// use brt_gguf::{keys, GgufError, ModelFile, MAX_ALIGNMENT};
/// let plain = brt_gguf::include_model!("../tests/data/plain.gguf");
/// // The alignment's place in the file: after its key and its type (a u32).
/// let key = keys::ALIGNMENT.as_bytes();
/// let at = plain.windows(key.len()).position(|w| w == key).unwrap() + key.len() + 4;
/// let refused_for_alignment = |alignment: usize| {
///     let mut bytes = plain.to_vec();
///     bytes[at..at + 4].copy_from_slice(&(alignment as u32).to_le_bytes());
///     matches!(ModelFile::parse(&bytes), Err(GgufError::Metadata { key, .. }) if key == keys::ALIGNMENT)
/// };
/// assert!(refused_for_alignment(2 * MAX_ALIGNMENT));
/// assert!(!refused_for_alignment(MAX_ALIGNMENT));
/// ```
pub const MAX_ALIGNMENT: usize = 1 << 16;

/// Includes a model file in the program, aligned for in-place use (a plain
/// `include_bytes!` is only byte-aligned). Evaluates to `&'static [u8]`.
///
/// ```
/// // The path is relative to the file that includes it.
/// static MODEL: &[u8] = brt_gguf::include_model!("../tests/data/plain.gguf");
/// assert_eq!(MODEL.as_ptr() as usize % 32, 0);
/// let file = brt_gguf::ModelFile::parse(MODEL)?;
/// assert_eq!(file.weight_bytes().as_ptr(), MODEL[file.data_offset()..].as_ptr());
/// # Ok::<(), brt_gguf::GgufError>(())
/// ```
#[macro_export]
macro_rules! include_model {
    ($path:expr) => {{
        #[repr(C, align(32))]
        struct Aligned<B: ?Sized>(B);
        static ALIGNED: &Aligned<[u8]> = &Aligned(*include_bytes!($path));
        &ALIGNED.0
    }};
}
