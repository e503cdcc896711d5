//! Reading GGUF's little-endian structures from a byte slice, every length checked
//! against the bytes that are there before anything is trusted.

use crate::error::GgufError;

/// GGUF metadata value types (the `gguf_metadata_value_type` enumeration).
pub mod value_type {
    /// `u8`.
    pub const UINT8: u32 = 0;
    /// `i8`.
    pub const INT8: u32 = 1;
    /// `u16`.
    pub const UINT16: u32 = 2;
    /// `i16`.
    pub const INT16: u32 = 3;
    /// `u32`.
    pub const UINT32: u32 = 4;
    /// `i32`.
    pub const INT32: u32 = 5;
    /// `f32`.
    pub const FLOAT32: u32 = 6;
    /// A byte, 0 or 1.
    pub const BOOL: u32 = 7;
    /// A `u64` length and UTF-8 bytes.
    pub const STRING: u32 = 8;
    /// An element type, a `u64` count and the elements.
    pub const ARRAY: u32 = 9;
    /// `u64`.
    pub const UINT64: u32 = 10;
    /// `i64`.
    pub const INT64: u32 = 11;
    /// `f64`.
    pub const FLOAT64: u32 = 12;
}

/// How deeply arrays may nest (GGUF allows arrays of arrays; brt writes none).
const MAX_DEPTH: u32 = 4;

/// A metadata value, borrowed from the file.
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
