//! A bounded, zero-copy walk over a flax msgpack checkpoint (SPEC section 8).
//!
//! `rmp` classifies the markers; this module checks every claimed length against
//! the bytes that are really there before it is used, so a corrupted or hostile
//! file costs at most its own size in memory and never panics. Only numeric arrays
//! (msgpack ext type 1, payload `[shape, dtype name, raw C-order bytes]`) are kept,
//! by their `/`-joined path; everything else is walked over.

use rmp::Marker;
use std::collections::BTreeMap;

/// Nesting deeper than this is rejected (real checkpoints nest about 10 deep).
const MAX_DEPTH: usize = 64;

/// The stored paths may take at most this many bytes per byte of the file, plus
/// [`PATH_ALLOWANCE`]. Every array is stored under its full path, so long keys
/// above many small arrays would otherwise cost memory quadratic in the file's
/// size; real checkpoints use a small fraction of this.
const PATH_BYTES_PER_FILE_BYTE: usize = 4;
/// See [`PATH_BYTES_PER_FILE_BYTE`].
const PATH_ALLOWANCE: usize = 1 << 20;

/// An element type of a stored array.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ArrayDtype {
    /// float32.
    F32,
    /// float16.
    F16,
    /// bfloat16.
    Bf16,
    /// float64.
    F64,
    /// Any other numpy type (kept so shapes can still be read).
    Other(usize),
}

impl ArrayDtype {
    fn parse(name: &str) -> Option<ArrayDtype> {
        Some(match name {
            "float32" | "<f4" => ArrayDtype::F32,
            "float16" | "<f2" => ArrayDtype::F16,
            "bfloat16" => ArrayDtype::Bf16,
            "float64" | "<f8" => ArrayDtype::F64,
            "int32" | "uint32" | "<i4" | "<u4" => ArrayDtype::Other(4),
            "int64" | "uint64" | "<i8" | "<u8" => ArrayDtype::Other(8),
            "int8" | "uint8" | "bool" | "|b1" | "|i1" | "|u1" => ArrayDtype::Other(1),
            "int16" | "uint16" => ArrayDtype::Other(2),
            _ => return None,
        })
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            ArrayDtype::F32 => 4,
            ArrayDtype::F16 | ArrayDtype::Bf16 => 2,
            ArrayDtype::F64 => 8,
            ArrayDtype::Other(n) => n,
        }
    }
}

/// A stored array, borrowing its bytes from the file.
#[derive(Clone, Debug)]
pub struct RawArray<'a> {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Element type.
    pub dtype: ArrayDtype,
    /// Little-endian element bytes, exactly `product(shape) * size` of them.
    pub data: &'a [u8],
}

impl RawArray<'_> {
    /// The values as f32 (float types only).
    pub fn to_f32(&self) -> Option<Vec<f32>> {
        let chunks = self.data.chunks_exact(self.dtype.size());
        Some(match self.dtype {
            ArrayDtype::F32 => chunks.map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            ArrayDtype::F16 => chunks.map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
            ArrayDtype::Bf16 => chunks.map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
            ArrayDtype::F64 => {
                chunks.map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32).collect()
            }
            ArrayDtype::Other(_) => return None,
        })
    }
}

/// Every array of a checkpoint, by path (`optimizer/target/decoder/embed/embedding`).
pub type Arrays<'a> = BTreeMap<String, RawArray<'a>>;

/// Reads all arrays of a msgpack document. Errors say at which byte and why.
pub fn read_arrays(bytes: &[u8]) -> Result<Arrays<'_>, String> {
    let budget = bytes.len().saturating_mul(PATH_BYTES_PER_FILE_BYTE).saturating_add(PATH_ALLOWANCE);
    let mut reader = Reader { buf: bytes, pos: 0, path_budget: budget };
    let mut arrays = Arrays::new();
    let mut path = String::new();
    reader.value(&mut path, 0, &mut arrays)?;
    if reader.pos != bytes.len() {
        return Err(format!("{} unexpected bytes after the end of the checkpoint", bytes.len() - reader.pos));
    }
    Ok(arrays)
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Bytes of paths that may still be stored.
    path_budget: usize,
}

impl<'a> Reader<'a> {
    fn fail<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("{what} at byte {}", self.pos))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        match self.pos.checked_add(n) {
            Some(end) if end <= self.buf.len() => {
                let s = &self.buf[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            _ => self.fail(&format!("truncated: {n} bytes claimed, {} left", self.buf.len() - self.pos)),
        }
    }

    fn be(&mut self, n: usize) -> Result<usize, String> {
        let bytes = self.take(n)?;
        Ok(bytes.iter().fold(0usize, |acc, &b| (acc << 8) | b as usize))
    }

    fn marker(&mut self) -> Result<Marker, String> {
        Ok(Marker::from_u8(self.take(1)?[0]))
    }

    /// A string (map keys are strings in flax checkpoints; integers are accepted).
    fn key(&mut self) -> Result<String, String> {
        let marker = self.marker()?;
        let len = match marker {
            Marker::FixStr(n) => n as usize,
            Marker::Str8 => self.be(1)?,
            Marker::Str16 => self.be(2)?,
            Marker::Str32 => self.be(4)?,
            Marker::FixPos(n) => return Ok(n.to_string()),
            Marker::U8 => return Ok(self.be(1)?.to_string()),
            Marker::U16 => return Ok(self.be(2)?.to_string()),
            Marker::U32 => return Ok(self.be(4)?.to_string()),
            _ => return self.fail("map key is not a string"),
        };
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).or_else(|_| self.fail("map key is not UTF-8"))
    }

    /// Number of elements of a container, checked against the bytes left (every
    /// element takes at least `min_bytes`).
    fn count(&mut self, len_bytes: usize, min_bytes: usize) -> Result<usize, String> {
        let n = self.be(len_bytes)?;
        if n.saturating_mul(min_bytes) > self.buf.len() - self.pos {
            return self.fail(&format!("container claims {n} entries, more than the file holds"));
        }
        Ok(n)
    }

    fn value(&mut self, path: &mut String, depth: usize, out: &mut Arrays<'a>) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return self.fail("nesting too deep");
        }
        let marker = self.marker()?;
        match marker {
            Marker::FixPos(_) | Marker::FixNeg(_) | Marker::Null | Marker::True | Marker::False => {}
            Marker::U8 | Marker::I8 => drop(self.take(1)?),
            Marker::U16 | Marker::I16 => drop(self.take(2)?),
            Marker::U32 | Marker::I32 | Marker::F32 => drop(self.take(4)?),
            Marker::U64 | Marker::I64 | Marker::F64 => drop(self.take(8)?),
            Marker::FixStr(n) => drop(self.take(n as usize)?),
            Marker::Str8 | Marker::Bin8 => {
                let n = self.be(1)?;
                self.take(n)?;
            }
            Marker::Str16 | Marker::Bin16 => {
                let n = self.be(2)?;
                self.take(n)?;
            }
            Marker::Str32 | Marker::Bin32 => {
                let n = self.be(4)?;
                self.take(n)?;
            }
            Marker::FixArray(n) => self.array(n as usize, path, depth, out)?,
            Marker::Array16 => {
                let n = self.count(2, 1)?;
                self.array(n, path, depth, out)?
            }
            Marker::Array32 => {
                let n = self.count(4, 1)?;
                self.array(n, path, depth, out)?
            }
            Marker::FixMap(n) => self.map(n as usize, path, depth, out)?,
            Marker::Map16 => {
                let n = self.count(2, 2)?;
                self.map(n, path, depth, out)?
            }
            Marker::Map32 => {
                let n = self.count(4, 2)?;
                self.map(n, path, depth, out)?
            }
            Marker::FixExt1 => self.ext(1, path, out)?,
            Marker::FixExt2 => self.ext(2, path, out)?,
            Marker::FixExt4 => self.ext(4, path, out)?,
            Marker::FixExt8 => self.ext(8, path, out)?,
            Marker::FixExt16 => self.ext(16, path, out)?,
            Marker::Ext8 => {
                let n = self.be(1)?;
                self.ext(n, path, out)?
            }
            Marker::Ext16 => {
                let n = self.be(2)?;
                self.ext(n, path, out)?
            }
            Marker::Ext32 => {
                let n = self.be(4)?;
                self.ext(n, path, out)?
            }
            Marker::Reserved => return self.fail("reserved msgpack marker"),
        }
        Ok(())
    }

    fn array(&mut self, n: usize, path: &mut String, depth: usize, out: &mut Arrays<'a>) -> Result<(), String> {
        for i in 0..n {
            let len = path.len();
            push(path, &i.to_string());
            self.value(path, depth + 1, out)?;
            path.truncate(len);
        }
        Ok(())
    }

    fn map(&mut self, n: usize, path: &mut String, depth: usize, out: &mut Arrays<'a>) -> Result<(), String> {
        for _ in 0..n {
            let key = self.key()?;
            let len = path.len();
            push(path, &key);
            self.value(path, depth + 1, out)?;
            path.truncate(len);
        }
        Ok(())
    }

    fn ext(&mut self, len: usize, path: &str, out: &mut Arrays<'a>) -> Result<(), String> {
        let kind = self.take(1)?[0] as i8;
        let payload = self.take(len)?;
        if kind != 1 {
            return Ok(()); // numpy scalars (type 3) and others carry no parameters
        }
        let array = parse_array(payload).map_err(|e| format!("array `{path}`: {e}"))?;
        self.path_budget = match self.path_budget.checked_sub(path.len()) {
            Some(left) => left,
            None => return self.fail("the array paths are too long for the size of the file (corrupt nesting)"),
        };
        if out.insert(path.to_string(), array).is_some() {
            return self.fail(&format!("array `{path}` appears twice"));
        }
        Ok(())
    }
}

fn push(path: &mut String, key: &str) {
    if !path.is_empty() {
        path.push('/');
    }
    path.push_str(key);
}

/// Parses the ext-1 payload `[shape, dtype name, bytes]`.
fn parse_array(payload: &[u8]) -> Result<RawArray<'_>, String> {
    let mut r = Reader { buf: payload, pos: 0, path_budget: 0 };
    let outer = match r.marker()? {
        Marker::FixArray(n) => n as usize,
        _ => return Err("payload is not a [shape, dtype, data] list".into()),
    };
    if outer != 3 {
        return Err(format!("payload list has {outer} items, expected 3"));
    }
    let dims = match r.marker()? {
        Marker::FixArray(n) => n as usize,
        Marker::Array16 => r.count(2, 1)?,
        _ => return Err("shape is not a list".into()),
    };
    let mut shape = Vec::with_capacity(dims.min(16));
    for _ in 0..dims {
        let d = match r.marker()? {
            Marker::FixPos(n) => n as usize,
            Marker::U8 => r.be(1)?,
            Marker::U16 => r.be(2)?,
            Marker::U32 => r.be(4)?,
            Marker::U64 => r.be(8)?,
            _ => return Err("shape entry is not a non-negative integer".into()),
        };
        shape.push(d);
    }
    let name = r.key().map_err(|_| "dtype is not a string".to_string())?;
    let dtype = ArrayDtype::parse(&name).ok_or_else(|| format!("unsupported dtype `{name}`"))?;
    let len = match r.marker()? {
        Marker::Bin8 => r.be(1)?,
        Marker::Bin16 => r.be(2)?,
        Marker::Bin32 => r.be(4)?,
        _ => return Err("data is not a byte string".into()),
    };
    let data = r.take(len)?;
    let elements = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .and_then(|n| n.checked_mul(dtype.size()))
        .ok_or("shape overflows")?;
    if elements != data.len() {
        return Err(format!("shape {shape:?} of {name} needs {elements} bytes, the file has {}", data.len()));
    }
    Ok(RawArray { shape, dtype, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A msgpack ext-1 array as flax writes it.
    fn ext_array(shape: &[u8], dtype: &str, data: &[u8]) -> Vec<u8> {
        let mut payload = vec![0x93, 0x90 | shape.len() as u8];
        payload.extend_from_slice(shape);
        payload.push(0xa0 | dtype.len() as u8);
        payload.extend_from_slice(dtype.as_bytes());
        payload.push(0xc4);
        payload.push(data.len() as u8);
        payload.extend_from_slice(data);
        let mut out = vec![0xc7, payload.len() as u8, 1];
        out.extend(payload);
        out
    }

    #[test]
    fn reads_nested_arrays_by_path() {
        let arr = ext_array(&[2], "float32", &[0, 0, 128, 63, 0, 0, 0, 64]);
        let mut doc = vec![0x82, 0xa1, b'a', 0x81, 0xa1, b'b'];
        doc.extend(&arr);
        doc.extend([0xa1, b'c', 0x05]);
        let arrays = read_arrays(&doc).unwrap();
        assert_eq!(arrays["a/b"].to_f32().unwrap(), vec![1.0, 2.0]);
        assert_eq!(arrays.len(), 1);
    }

    #[test]
    fn rejects_truncation_and_lying_lengths_without_panicking() {
        let arr = ext_array(&[2], "float32", &[0, 0, 128, 63, 0, 0, 0, 64]);
        let mut doc = vec![0x81, 0xa1, b'a'];
        doc.extend(&arr);
        for cut in 0..doc.len() {
            assert!(read_arrays(&doc[..cut]).is_err(), "cut at {cut}");
        }
        // A map claiming four billion entries.
        assert!(read_arrays(&[0xdf, 0xff, 0xff, 0xff, 0xff]).unwrap_err().contains("more than the file holds"));
        // Shape that disagrees with the data.
        let bad = ext_array(&[3], "float32", &[0; 8]);
        assert!(read_arrays(&bad).unwrap_err().contains("needs 12 bytes"));
        // Deep nesting.
        assert!(read_arrays(&[0x91; 100]).unwrap_err().contains("too deep"));
    }
}
