//! Reading GGUF's little-endian structures from a byte slice, every length checked
//! against the bytes that are there before anything is trusted.

use crate::error::GgufError;

/// GGUF metadata value types (the `gguf_metadata_value_type` enumeration).
///
/// A metadata value of any other type makes a file unreadable:
///
/// ```
/// let plain = brt_gguf::include_model!("../tests/data/plain.gguf");
/// // The first entry: the key (a u64 length, the bytes), the value's type, the value.
/// let key = brt_gguf::keys::ARCHITECTURE.as_bytes();
/// let at = plain.windows(key.len()).position(|w| w == key).unwrap() + key.len();
/// assert_eq!(plain[at..at + 4], brt_gguf::value_type::STRING.to_le_bytes());
/// let mut bytes = plain.to_vec();
/// bytes[at..at + 4].copy_from_slice(&13u32.to_le_bytes());
/// let error = brt_gguf::ModelFile::parse(&bytes).unwrap_err();
/// assert!(matches!(error, brt_gguf::GgufError::Malformed { offset, .. } if offset == at + 4));
/// ```
pub mod value_type {
    /// `u8`.
    ///
    /// brt writes no `u8`, but reads one that another tool put in a file (here
    /// `plain.gguf` with its name entry replaced by one, `demo.value…`):
    ///
    /// ```
    /// use brt_gguf::{value_type, Value};
    /// assert_eq!(value_type::UINT8, 0); // GGUF_METADATA_VALUE_TYPE_UINT8 in the GGUF specification
    /// # /// plain.gguf with its `general.name` entry replaced, in as many bytes, by a
    /// # /// key `demo.value…` of type `ty` holding `value`, at an aligned address.
    /// # fn plain_with(ty: u32, value: &[u8]) -> &'static [u8] {
    /// #     let plain = brt_gguf::include_model!("../tests/data/plain.gguf");
    /// #     let at = plain.windows(12).position(|w| w == b"general.name").unwrap() - 8;
    /// #     let key = format!("{:_<1$}", "demo.value", 25 - value.len());
    /// #     let entry = [&(key.len() as u64).to_le_bytes()[..], key.as_bytes(), &ty.to_le_bytes(), value].concat();
    /// #     let bytes = [&plain[..at], &entry[..], &plain[at + entry.len()..]].concat();
    /// #     let words = Vec::leak(vec![0u64; bytes.len().div_ceil(8)]);
    /// #     bytemuck::cast_slice_mut::<u64, u8>(words)[..bytes.len()].copy_from_slice(&bytes);
    /// #     let words: &'static [u64] = words;
    /// #     &bytemuck::cast_slice(words)[..bytes.len()]
    /// # }
    /// let file = brt_gguf::ModelFile::parse(plain_with(value_type::UINT8, &u8::to_le_bytes(200)))?;
    /// let value = file.metadata().find(|(key, _)| key.starts_with("demo.")).map(|(_, v)| v);
    /// assert_eq!(value, Some(Value::Uint(200)));
    /// # Ok::<(), brt_gguf::GgufError>(())
    /// ```
    pub const UINT8: u32 = 0;
    /// `i8`.
    ///
    /// brt writes no `i8`, but reads one that another tool put in a file (here
    /// `plain.gguf` with its name entry replaced by one, `demo.value…`):
    ///
    /// ```
    /// use brt_gguf::{value_type, Value};
    /// assert_eq!(value_type::INT8, 1); // GGUF_METADATA_VALUE_TYPE_INT8 in the GGUF specification
    /// # /// plain.gguf with its `general.name` entry replaced, in as many bytes, by a
    /// # /// key `demo.value…` of type `ty` holding `value`, at an aligned address.
    /// # fn plain_with(ty: u32, value: &[u8]) -> &'static [u8] {
    /// #     let plain = brt_gguf::include_model!("../tests/data/plain.gguf");
    /// #     let at = plain.windows(12).position(|w| w == b"general.name").unwrap() - 8;
    /// #     let key = format!("{:_<1$}", "demo.value", 25 - value.len());
    /// #     let entry = [&(key.len() as u64).to_le_bytes()[..], key.as_bytes(), &ty.to_le_bytes(), value].concat();
    /// #     let bytes = [&plain[..at], &entry[..], &plain[at + entry.len()..]].concat();
    /// #     let words = Vec::leak(vec![0u64; bytes.len().div_ceil(8)]);
    /// #     bytemuck::cast_slice_mut::<u64, u8>(words)[..bytes.len()].copy_from_slice(&bytes);
    /// #     let words: &'static [u64] = words;
    /// #     &bytemuck::cast_slice(words)[..bytes.len()]
    /// # }
    /// let file = brt_gguf::ModelFile::parse(plain_with(value_type::INT8, &i8::to_le_bytes(-100)))?;
    /// let value = file.metadata().find(|(key, _)| key.starts_with("demo.")).map(|(_, v)| v);
    /// assert_eq!(value, Some(Value::Int(-100)));
    /// # Ok::<(), brt_gguf::GgufError>(())
    /// ```
    pub const INT8: u32 = 1;
    /// `u16`.
    ///
    /// brt writes no `u16`, but reads one that another tool put in a file (here
    /// `plain.gguf` with its name entry replaced by one, `demo.value…`):
    ///
    /// ```
    /// use brt_gguf::{value_type, Value};
    /// assert_eq!(value_type::UINT16, 2); // GGUF_METADATA_VALUE_TYPE_UINT16 in the GGUF specification
    /// # /// plain.gguf with its `general.name` entry replaced, in as many bytes, by a
    /// # /// key `demo.value…` of type `ty` holding `value`, at an aligned address.
    /// # fn plain_with(ty: u32, value: &[u8]) -> &'static [u8] {
    /// #     let plain = brt_gguf::include_model!("../tests/data/plain.gguf");
    /// #     let at = plain.windows(12).position(|w| w == b"general.name").unwrap() - 8;
    /// #     let key = format!("{:_<1$}", "demo.value", 25 - value.len());
    /// #     let entry = [&(key.len() as u64).to_le_bytes()[..], key.as_bytes(), &ty.to_le_bytes(), value].concat();
    /// #     let bytes = [&plain[..at], &entry[..], &plain[at + entry.len()..]].concat();
    /// #     let words = Vec::leak(vec![0u64; bytes.len().div_ceil(8)]);
    /// #     bytemuck::cast_slice_mut::<u64, u8>(words)[..bytes.len()].copy_from_slice(&bytes);
    /// #     let words: &'static [u64] = words;
    /// #     &bytemuck::cast_slice(words)[..bytes.len()]
    /// # }
    /// let file = brt_gguf::ModelFile::parse(plain_with(value_type::UINT16, &u16::to_le_bytes(60_000)))?;
    /// let value = file.metadata().find(|(key, _)| key.starts_with("demo.")).map(|(_, v)| v);
    /// assert_eq!(value, Some(Value::Uint(60_000)));
    /// # Ok::<(), brt_gguf::GgufError>(())
    /// ```
    pub const UINT16: u32 = 2;
    /// `i16`.
    ///
    /// brt writes no `i16`, but reads one that another tool put in a file (here
    /// `plain.gguf` with its name entry replaced by one, `demo.value…`):
    ///
    /// ```
    /// use brt_gguf::{value_type, Value};
    /// assert_eq!(value_type::INT16, 3); // GGUF_METADATA_VALUE_TYPE_INT16 in the GGUF specification
    /// # /// plain.gguf with its `general.name` entry replaced, in as many bytes, by a
    /// # /// key `demo.value…` of type `ty` holding `value`, at an aligned address.
    /// # fn plain_with(ty: u32, value: &[u8]) -> &'static [u8] {
    /// #     let plain = brt_gguf::include_model!("../tests/data/plain.gguf");
    /// #     let at = plain.windows(12).position(|w| w == b"general.name").unwrap() - 8;
    /// #     let key = format!("{:_<1$}", "demo.value", 25 - value.len());
    /// #     let entry = [&(key.len() as u64).to_le_bytes()[..], key.as_bytes(), &ty.to_le_bytes(), value].concat();
    /// #     let bytes = [&plain[..at], &entry[..], &plain[at + entry.len()..]].concat();
    /// #     let words = Vec::leak(vec![0u64; bytes.len().div_ceil(8)]);
    /// #     bytemuck::cast_slice_mut::<u64, u8>(words)[..bytes.len()].copy_from_slice(&bytes);
    /// #     let words: &'static [u64] = words;
    /// #     &bytemuck::cast_slice(words)[..bytes.len()]
    /// # }
    /// let file = brt_gguf::ModelFile::parse(plain_with(value_type::INT16, &i16::to_le_bytes(-30_000)))?;
    /// let value = file.metadata().find(|(key, _)| key.starts_with("demo.")).map(|(_, v)| v);
    /// assert_eq!(value, Some(Value::Int(-30_000)));
    /// # Ok::<(), brt_gguf::GgufError>(())
    /// ```
    pub const INT16: u32 = 3;
    /// `u32`.
    ///
    /// brt writes the alignment as a `u32`, read as [`crate::Value::Uint`]:
    ///
    /// ```
    /// use brt_gguf::{keys, value_type, Value};
    /// assert_eq!(value_type::UINT32, 4); // GGUF_METADATA_VALUE_TYPE_UINT32 in the GGUF specification
    /// let plain = brt_gguf::include_model!("../tests/data/plain.gguf");
    /// // An entry: the key (a u64 length, the bytes), the value's type, the value.
    /// let key = keys::ALIGNMENT.as_bytes();
    /// let at = plain.windows(key.len()).position(|w| w == key).unwrap() + key.len();
    /// assert_eq!(plain[at..at + 4], value_type::UINT32.to_le_bytes());
    /// let file = brt_gguf::ModelFile::parse(plain)?;
    /// let value = file.metadata().find(|&(k, _)| k == keys::ALIGNMENT).map(|(_, v)| v);
    /// assert_eq!(value, Some(Value::Uint(file.alignment() as u64)));
    /// # Ok::<(), brt_gguf::GgufError>(())
    /// ```
    pub const UINT32: u32 = 4;
    /// `i32`.
    ///
    /// brt writes no `i32`, but reads one that another tool put in a file (here
    /// `plain.gguf` with its name entry replaced by one, `demo.value…`):
    ///
    /// ```
    /// use brt_gguf::{value_type, Value};
    /// assert_eq!(value_type::INT32, 5); // GGUF_METADATA_VALUE_TYPE_INT32 in the GGUF specification
    /// # /// plain.gguf with its `general.name` entry replaced, in as many bytes, by a
    /// # /// key `demo.value…` of type `ty` holding `value`, at an aligned address.
    /// # fn plain_with(ty: u32, value: &[u8]) -> &'static [u8] {
    /// #     let plain = brt_gguf::include_model!("../tests/data/plain.gguf");
    /// #     let at = plain.windows(12).position(|w| w == b"general.name").unwrap() - 8;
    /// #     let key = format!("{:_<1$}", "demo.value", 25 - value.len());
    /// #     let entry = [&(key.len() as u64).to_le_bytes()[..], key.as_bytes(), &ty.to_le_bytes(), value].concat();
    /// #     let bytes = [&plain[..at], &entry[..], &plain[at + entry.len()..]].concat();
    /// #     let words = Vec::leak(vec![0u64; bytes.len().div_ceil(8)]);
    /// #     bytemuck::cast_slice_mut::<u64, u8>(words)[..bytes.len()].copy_from_slice(&bytes);
    /// #     let words: &'static [u64] = words;
    /// #     &bytemuck::cast_slice(words)[..bytes.len()]
    /// # }
    /// let file = brt_gguf::ModelFile::parse(plain_with(value_type::INT32, &i32::to_le_bytes(-2_000_000_000)))?;
    /// let value = file.metadata().find(|(key, _)| key.starts_with("demo.")).map(|(_, v)| v);
    /// assert_eq!(value, Some(Value::Int(-2_000_000_000)));
    /// # Ok::<(), brt_gguf::GgufError>(())
    /// ```
    pub const INT32: u32 = 5;
    /// `f32`.
    ///
    /// brt writes no `f32`, but reads one that another tool put in a file (here
    /// `plain.gguf` with its name entry replaced by one, `demo.value…`):
    ///
    /// ```
    /// use brt_gguf::{value_type, Value};
    /// assert_eq!(value_type::FLOAT32, 6); // GGUF_METADATA_VALUE_TYPE_FLOAT32 in the GGUF specification
    /// # /// plain.gguf with its `general.name` entry replaced, in as many bytes, by a
    /// # /// key `demo.value…` of type `ty` holding `value`, at an aligned address.
    /// # fn plain_with(ty: u32, value: &[u8]) -> &'static [u8] {
    /// #     let plain = brt_gguf::include_model!("../tests/data/plain.gguf");
    /// #     let at = plain.windows(12).position(|w| w == b"general.name").unwrap() - 8;
    /// #     let key = format!("{:_<1$}", "demo.value", 25 - value.len());
    /// #     let entry = [&(key.len() as u64).to_le_bytes()[..], key.as_bytes(), &ty.to_le_bytes(), value].concat();
    /// #     let bytes = [&plain[..at], &entry[..], &plain[at + entry.len()..]].concat();
    /// #     let words = Vec::leak(vec![0u64; bytes.len().div_ceil(8)]);
    /// #     bytemuck::cast_slice_mut::<u64, u8>(words)[..bytes.len()].copy_from_slice(&bytes);
    /// #     let words: &'static [u64] = words;
    /// #     &bytemuck::cast_slice(words)[..bytes.len()]
    /// # }
    /// let file = brt_gguf::ModelFile::parse(plain_with(value_type::FLOAT32, &f32::to_le_bytes(0.25)))?;
    /// let value = file.metadata().find(|(key, _)| key.starts_with("demo.")).map(|(_, v)| v);
    /// assert_eq!(value, Some(Value::Float(0.25)));
    /// # Ok::<(), brt_gguf::GgufError>(())
    /// ```
    pub const FLOAT32: u32 = 6;
    /// A byte, 0 or 1.
    ///
    /// brt writes the feedback flag as a boolean:
    ///
    /// ```
    /// use brt_gguf::{keys, value_type, Value};
    /// assert_eq!(value_type::BOOL, 7); // GGUF_METADATA_VALUE_TYPE_BOOL in the GGUF specification
    /// let plain = brt_gguf::include_model!("../tests/data/plain.gguf");
    /// // An entry: the key (a u64 length, the bytes), the value's type, the value.
    /// let key = keys::FEEDBACK.as_bytes();
    /// let at = plain.windows(key.len()).position(|w| w == key).unwrap() + key.len();
    /// assert_eq!(plain[at..at + 4], value_type::BOOL.to_le_bytes());
    /// let file = brt_gguf::ModelFile::parse(plain)?;
    /// let value = file.metadata().find(|&(k, _)| k == keys::FEEDBACK).map(|(_, v)| v);
    /// assert_eq!(value, Some(Value::Bool(file.config().feedback)));
    /// # Ok::<(), brt_gguf::GgufError>(())
    /// ```
    pub const BOOL: u32 = 7;
    /// A `u64` length and UTF-8 bytes.
    ///
    /// brt writes the architecture as a string:
    ///
    /// ```
    /// use brt_gguf::{keys, value_type, Value};
    /// assert_eq!(value_type::STRING, 8); // GGUF_METADATA_VALUE_TYPE_STRING in the GGUF specification
    /// let plain = brt_gguf::include_model!("../tests/data/plain.gguf");
    /// // An entry: the key (a u64 length, the bytes), the value's type, the value.
    /// let key = keys::ARCHITECTURE.as_bytes();
    /// let at = plain.windows(key.len()).position(|w| w == key).unwrap() + key.len();
    /// assert_eq!(plain[at..at + 4], value_type::STRING.to_le_bytes());
    /// let file = brt_gguf::ModelFile::parse(plain)?;
    /// let value = file.metadata().find(|&(k, _)| k == keys::ARCHITECTURE).map(|(_, v)| v);
    /// assert_eq!(value, Some(Value::Str("brt")));
    /// # Ok::<(), brt_gguf::GgufError>(())
    /// ```
    pub const STRING: u32 = 8;
    /// An element type, a `u64` count and the elements.
    ///
    /// brt writes the recurrent layers as an array of `u32` (an element type, a count, the elements):
    ///
    /// ```
    /// use brt_gguf::{keys, value_type, Value};
    /// assert_eq!(value_type::ARRAY, 9); // GGUF_METADATA_VALUE_TYPE_ARRAY in the GGUF specification
    /// let plain = brt_gguf::include_model!("../tests/data/plain.gguf");
    /// // An entry: the key (a u64 length, the bytes), the value's type, the value.
    /// let key = keys::RECURRENT.as_bytes();
    /// let at = plain.windows(key.len()).position(|w| w == key).unwrap() + key.len();
    /// assert_eq!(plain[at..at + 4], value_type::ARRAY.to_le_bytes());
    /// assert_eq!(plain[at + 4..at + 8], value_type::UINT32.to_le_bytes());
    /// let file = brt_gguf::ModelFile::parse(plain)?;
    /// let value = file.metadata().find(|&(k, _)| k == keys::RECURRENT).map(|(_, v)| v);
    /// assert!(matches!(value, Some(Value::Array(a)) if a.element_type() == value_type::UINT32));
    /// # Ok::<(), brt_gguf::GgufError>(())
    /// ```
    pub const ARRAY: u32 = 9;
    /// `u64`.
    ///
    /// brt writes the sizes in the configuration as `u64`:
    ///
    /// ```
    /// use brt_gguf::{keys, value_type, Value};
    /// assert_eq!(value_type::UINT64, 10); // GGUF_METADATA_VALUE_TYPE_UINT64 in the GGUF specification
    /// let plain = brt_gguf::include_model!("../tests/data/plain.gguf");
    /// // An entry: the key (a u64 length, the bytes), the value's type, the value.
    /// let key = keys::VOCAB.as_bytes();
    /// let at = plain.windows(key.len()).position(|w| w == key).unwrap() + key.len();
    /// assert_eq!(plain[at..at + 4], value_type::UINT64.to_le_bytes());
    /// let file = brt_gguf::ModelFile::parse(plain)?;
    /// let value = file.metadata().find(|&(k, _)| k == keys::VOCAB).map(|(_, v)| v);
    /// assert_eq!(value, Some(Value::Uint(file.config().vocab as u64)));
    /// # Ok::<(), brt_gguf::GgufError>(())
    /// ```
    pub const UINT64: u32 = 10;
    /// `i64`.
    ///
    /// brt writes no `i64`, but reads one that another tool put in a file (here
    /// `plain.gguf` with its name entry replaced by one, `demo.value…`):
    ///
    /// ```
    /// use brt_gguf::{value_type, Value};
    /// assert_eq!(value_type::INT64, 11); // GGUF_METADATA_VALUE_TYPE_INT64 in the GGUF specification
    /// # /// plain.gguf with its `general.name` entry replaced, in as many bytes, by a
    /// # /// key `demo.value…` of type `ty` holding `value`, at an aligned address.
    /// # fn plain_with(ty: u32, value: &[u8]) -> &'static [u8] {
    /// #     let plain = brt_gguf::include_model!("../tests/data/plain.gguf");
    /// #     let at = plain.windows(12).position(|w| w == b"general.name").unwrap() - 8;
    /// #     let key = format!("{:_<1$}", "demo.value", 25 - value.len());
    /// #     let entry = [&(key.len() as u64).to_le_bytes()[..], key.as_bytes(), &ty.to_le_bytes(), value].concat();
    /// #     let bytes = [&plain[..at], &entry[..], &plain[at + entry.len()..]].concat();
    /// #     let words = Vec::leak(vec![0u64; bytes.len().div_ceil(8)]);
    /// #     bytemuck::cast_slice_mut::<u64, u8>(words)[..bytes.len()].copy_from_slice(&bytes);
    /// #     let words: &'static [u64] = words;
    /// #     &bytemuck::cast_slice(words)[..bytes.len()]
    /// # }
    /// let file = brt_gguf::ModelFile::parse(plain_with(value_type::INT64, &i64::to_le_bytes(i64::MIN)))?;
    /// let value = file.metadata().find(|(key, _)| key.starts_with("demo.")).map(|(_, v)| v);
    /// assert_eq!(value, Some(Value::Int(i64::MIN)));
    /// # Ok::<(), brt_gguf::GgufError>(())
    /// ```
    pub const INT64: u32 = 11;
    /// `f64`.
    ///
    /// brt writes no `f64`, but reads one that another tool put in a file (here
    /// `plain.gguf` with its name entry replaced by one, `demo.value…`):
    ///
    /// ```
    /// use brt_gguf::{value_type, Value};
    /// assert_eq!(value_type::FLOAT64, 12); // GGUF_METADATA_VALUE_TYPE_FLOAT64 in the GGUF specification
    /// # /// plain.gguf with its `general.name` entry replaced, in as many bytes, by a
    /// # /// key `demo.value…` of type `ty` holding `value`, at an aligned address.
    /// # fn plain_with(ty: u32, value: &[u8]) -> &'static [u8] {
    /// #     let plain = brt_gguf::include_model!("../tests/data/plain.gguf");
    /// #     let at = plain.windows(12).position(|w| w == b"general.name").unwrap() - 8;
    /// #     let key = format!("{:_<1$}", "demo.value", 25 - value.len());
    /// #     let entry = [&(key.len() as u64).to_le_bytes()[..], key.as_bytes(), &ty.to_le_bytes(), value].concat();
    /// #     let bytes = [&plain[..at], &entry[..], &plain[at + entry.len()..]].concat();
    /// #     let words = Vec::leak(vec![0u64; bytes.len().div_ceil(8)]);
    /// #     bytemuck::cast_slice_mut::<u64, u8>(words)[..bytes.len()].copy_from_slice(&bytes);
    /// #     let words: &'static [u64] = words;
    /// #     &bytemuck::cast_slice(words)[..bytes.len()]
    /// # }
    /// let file = brt_gguf::ModelFile::parse(plain_with(value_type::FLOAT64, &f64::to_le_bytes(0.1)))?;
    /// let value = file.metadata().find(|(key, _)| key.starts_with("demo.")).map(|(_, v)| v);
    /// assert_eq!(value, Some(Value::Float(0.1)));
    /// # Ok::<(), brt_gguf::GgufError>(())
    /// ```
    pub const FLOAT64: u32 = 12;
}

/// How deeply arrays may nest (GGUF allows arrays of arrays; brt writes none).
const MAX_DEPTH: u32 = 4;

/// A metadata value, borrowed from the file.
///
/// A brt model file holds strings, integers, booleans and arrays:
///
/// ```
/// use brt_gguf::{keys, Value};
/// let file = brt_gguf::ModelFile::parse(brt_gguf::include_model!("../tests/data/plain.gguf"))?;
/// let value = |wanted: &str| file.metadata().find(|&(key, _)| key == wanted).map(|(_, v)| v);
/// assert_eq!(value(keys::ARCHITECTURE), Some(Value::Str("brt")));
/// assert_eq!(value(keys::D_MODEL), Some(Value::Uint(file.config().d_model as u64)));
/// assert_eq!(value(keys::FEEDBACK), Some(Value::Bool(file.config().feedback)));
/// assert!(matches!(value(keys::RECURRENT), Some(Value::Array(_))));
/// # Ok::<(), brt_gguf::GgufError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    /// Any unsigned integer type.
    Uint(u64),
    /// Any signed integer type.
    Int(i64),
    /// `f32` or `f64`.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A string.
    Str(&'a str),
    /// An array (its elements were checked when the file was read).
    Array(Array<'a>),
}

impl Value<'_> {
    /// The value as an unsigned integer, if it is a non-negative integer.
    ///
    /// ```
    /// use brt_gguf::Value;
    /// assert_eq!(Value::Uint(7).as_u64(), Some(7));
    /// assert_eq!(Value::Int(7).as_u64(), Some(7));
    /// assert_eq!(Value::Int(-1).as_u64(), None);
    /// assert_eq!(Value::Str("7").as_u64(), None);
    /// ```
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::Uint(v) => Some(v),
            Value::Int(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }
}

/// An array value: its element type, count and encoded elements.
///
/// A model without recurrent layers lists none of them, in an empty array of `u32`:
///
/// ```
/// use brt_gguf::{keys, value_type, Value};
/// let file = brt_gguf::ModelFile::parse(brt_gguf::include_model!("../tests/data/plain.gguf"))?;
/// assert!(file.config().recurrent.is_empty());
/// let recurrent = file.metadata().find(|&(key, _)| key == keys::RECURRENT);
/// let Some((_, Value::Array(layers))) = recurrent else { unreachable!() };
/// assert_eq!((layers.element_type(), layers.len()), (value_type::UINT32, 0));
/// assert_eq!(layers.iter().count(), 0);
/// # Ok::<(), brt_gguf::GgufError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Array<'a> {
    element_type: u32,
    len: u64,
    /// The encoded elements, exactly.
    encoded: &'a [u8],
    /// File offset of `encoded`, for messages.
    offset: usize,
    depth: u32,
}

impl<'a> Array<'a> {
    /// The GGUF type of the elements (see [`value_type`]).
    ///
    /// ```
    /// # use brt_core::{Config, LayerSet, WeightData, WeightLayout};
    /// # let config = Config { states: 2, recurrent: LayerSet::EMPTY.with(1), ..Config::plain(16, 8, 2, 4, 16, 2, 4) };
    /// # let values = vec![0.5f32; WeightLayout::new(&config)?.len()];
    /// # let bytes = brt_gguf::write(&config, None, WeightData::F32(&values))?;
    /// # let mut aligned = vec![0u64; bytes.len().div_ceil(8)];
    /// # bytemuck::cast_slice_mut::<u64, u8>(&mut aligned)[..bytes.len()].copy_from_slice(&bytes);
    /// # let file = brt_gguf::ModelFile::parse(&bytemuck::cast_slice(&aligned)[..bytes.len()])?;
    /// // The recurrent layers of a model with one, layer 1.
    /// let recurrent = file.metadata().find(|(key, _)| *key == brt_gguf::keys::RECURRENT);
    /// let Some((_, brt_gguf::Value::Array(layers))) = recurrent else { unreachable!() };
    /// assert_eq!(layers.element_type(), brt_gguf::value_type::UINT32);
    /// # Ok::<(), brt_gguf::GgufError>(())
    /// ```
    pub fn element_type(&self) -> u32 {
        self.element_type
    }

    /// Number of elements.
    ///
    /// ```
    /// # use brt_core::{Config, LayerSet, WeightData, WeightLayout};
    /// # let config = Config { states: 2, recurrent: LayerSet::EMPTY.with(1), ..Config::plain(16, 8, 2, 4, 16, 2, 4) };
    /// # let values = vec![0.5f32; WeightLayout::new(&config)?.len()];
    /// # let bytes = brt_gguf::write(&config, None, WeightData::F32(&values))?;
    /// # let mut aligned = vec![0u64; bytes.len().div_ceil(8)];
    /// # bytemuck::cast_slice_mut::<u64, u8>(&mut aligned)[..bytes.len()].copy_from_slice(&bytes);
    /// # let file = brt_gguf::ModelFile::parse(&bytemuck::cast_slice(&aligned)[..bytes.len()])?;
    /// // The recurrent layers of a model with one, layer 1.
    /// let recurrent = file.metadata().find(|(key, _)| *key == brt_gguf::keys::RECURRENT);
    /// let Some((_, brt_gguf::Value::Array(layers))) = recurrent else { unreachable!() };
    /// assert_eq!(layers.len(), 1);
    /// # Ok::<(), brt_gguf::GgufError>(())
    /// ```
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the array has no elements.
    ///
    /// ```
    /// # use brt_core::{Config, LayerSet, WeightData, WeightLayout};
    /// # let config = Config { states: 2, recurrent: LayerSet::EMPTY.with(1), ..Config::plain(16, 8, 2, 4, 16, 2, 4) };
    /// # let values = vec![0.5f32; WeightLayout::new(&config)?.len()];
    /// # let bytes = brt_gguf::write(&config, None, WeightData::F32(&values))?;
    /// # let mut aligned = vec![0u64; bytes.len().div_ceil(8)];
    /// # bytemuck::cast_slice_mut::<u64, u8>(&mut aligned)[..bytes.len()].copy_from_slice(&bytes);
    /// # let file = brt_gguf::ModelFile::parse(&bytemuck::cast_slice(&aligned)[..bytes.len()])?;
    /// // The recurrent layers of a model with one, layer 1.
    /// let recurrent = file.metadata().find(|(key, _)| *key == brt_gguf::keys::RECURRENT);
    /// let Some((_, brt_gguf::Value::Array(layers))) = recurrent else { unreachable!() };
    /// assert!(!layers.is_empty());
    /// # Ok::<(), brt_gguf::GgufError>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The elements in order.
    ///
    /// ```
    /// # use brt_core::{Config, LayerSet, WeightData, WeightLayout};
    /// # let config = Config { states: 2, recurrent: LayerSet::EMPTY.with(1), ..Config::plain(16, 8, 2, 4, 16, 2, 4) };
    /// # let values = vec![0.5f32; WeightLayout::new(&config)?.len()];
    /// # let bytes = brt_gguf::write(&config, None, WeightData::F32(&values))?;
    /// # let mut aligned = vec![0u64; bytes.len().div_ceil(8)];
    /// # bytemuck::cast_slice_mut::<u64, u8>(&mut aligned)[..bytes.len()].copy_from_slice(&bytes);
    /// # let file = brt_gguf::ModelFile::parse(&bytemuck::cast_slice(&aligned)[..bytes.len()])?;
    /// // The recurrent layers of a model with one, layer 1.
    /// let recurrent = file.metadata().find(|(key, _)| *key == brt_gguf::keys::RECURRENT);
    /// let Some((_, brt_gguf::Value::Array(layers))) = recurrent else { unreachable!() };
    /// assert_eq!(layers.iter().map(|v| v.as_u64()).collect::<Vec<_>>(), [Some(1)]);
    /// # Ok::<(), brt_gguf::GgufError>(())
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = Value<'a>> + 'a {
        let mut cursor = Cursor { bytes: self.encoded, pos: 0, base: self.offset };
        let (ty, depth) = (self.element_type, self.depth);
        // The elements were all read once when the array was; they read again.
        (0..self.len).map_while(move |_| cursor.value(ty, depth).ok())
    }
}

/// A position in the file.
#[derive(Clone, Debug)]
pub(crate) struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// File offset of `bytes[0]` (for messages).
    base: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `bytes`, which start at file offset `base`.
    pub(crate) fn new(bytes: &'a [u8], base: usize) -> Self {
        Cursor { bytes, pos: 0, base }
    }

    /// File offset of the next byte.
    pub(crate) fn offset(&self) -> usize {
        self.base + self.pos
    }

    /// Bytes left.
    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], GgufError> {
        if n > self.remaining() {
            return Err(GgufError::Truncated { what, offset: self.offset() });
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], GgufError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A count of items of at least `min_size` bytes each, checked against the
    /// bytes left so that no loop over it can run past the file.
    pub(crate) fn count(&mut self, what: &'static str, min_size: usize) -> Result<u64, GgufError> {
        let at = self.offset();
        let n = self.u64(what)?;
        let fits = usize::try_from(n).ok().and_then(|n| n.checked_mul(min_size)).is_some_and(|b| b <= self.remaining());
        if !fits {
            return Err(GgufError::Malformed { what: "a count larger than the rest of the file", offset: at });
        }
        Ok(n)
    }

    /// A GGUF string: a `u64` length and UTF-8 bytes.
    pub(crate) fn string(&mut self, what: &'static str) -> Result<&'a str, GgufError> {
        let at = self.offset();
        let len = self.u64(what)?;
        let len = usize::try_from(len).map_err(|_| GgufError::Truncated { what, offset: at })?;
        let bytes = self.take(len, what)?;
        core::str::from_utf8(bytes).map_err(|_| GgufError::Malformed { what: "a string that is not UTF-8", offset: at })
    }

    /// A value of type `ty`; arrays are read whole (so that they can be skipped)
    /// and handed out as [`Array`].
    pub(crate) fn value(&mut self, ty: u32, depth: u32) -> Result<Value<'a>, GgufError> {
        use value_type::*;
        const WHAT: &str = "metadata value";
        Ok(match ty {
            UINT8 => Value::Uint(self.array::<1>(WHAT)?[0] as u64),
            INT8 => Value::Int(i8::from_le_bytes(self.array(WHAT)?) as i64),
            UINT16 => Value::Uint(u16::from_le_bytes(self.array(WHAT)?) as u64),
            INT16 => Value::Int(i16::from_le_bytes(self.array(WHAT)?) as i64),
            UINT32 => Value::Uint(self.u32(WHAT)? as u64),
            INT32 => Value::Int(i32::from_le_bytes(self.array(WHAT)?) as i64),
            UINT64 => Value::Uint(self.u64(WHAT)?),
            INT64 => Value::Int(i64::from_le_bytes(self.array(WHAT)?)),
            FLOAT32 => Value::Float(f32::from_le_bytes(self.array(WHAT)?) as f64),
            FLOAT64 => Value::Float(f64::from_le_bytes(self.array(WHAT)?)),
            BOOL => {
                let at = self.offset();
                match self.array::<1>(WHAT)?[0] {
                    0 => Value::Bool(false),
                    1 => Value::Bool(true),
                    _ => return Err(GgufError::Malformed { what: "a boolean that is neither 0 nor 1", offset: at }),
                }
            }
            STRING => Value::Str(self.string(WHAT)?),
            ARRAY => {
                let at = self.offset();
                if depth >= MAX_DEPTH {
                    return Err(GgufError::Malformed { what: "arrays nested too deeply", offset: at });
                }
                let element_type = self.u32("array element type")?;
                let min = min_size(element_type)
                    .ok_or(GgufError::Malformed { what: "an unknown array element type", offset: at })?;
                let len = self.count("array length", min)?;
                let start = self.pos;
                for _ in 0..len {
                    self.value(element_type, depth + 1)?;
                }
                Value::Array(Array {
                    element_type,
                    len,
                    encoded: &self.bytes[start..self.pos],
                    offset: self.base + start,
                    depth: depth + 1,
                })
            }
            _ => return Err(GgufError::Malformed { what: "an unknown metadata value type", offset: self.offset() }),
        })
    }
}

/// The fewest bytes a value of type `ty` takes, or `None` for an unknown type.
fn min_size(ty: u32) -> Option<usize> {
    use value_type::*;
    Some(match ty {
        UINT8 | INT8 | BOOL => 1,
        UINT16 | INT16 => 2,
        UINT32 | INT32 | FLOAT32 => 4,
        UINT64 | INT64 | FLOAT64 | STRING => 8,
        ARRAY => 12,
        _ => return None,
    })
}
