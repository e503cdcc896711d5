//! Helpers shared by the fuzz targets.
//!
//! Safetensors-based targets read their input in one of two framings, chosen by
//! the lowest bit of the first byte (the other bits are free for the target):
//!
//! - even: the rest is the file as is;
//! - odd: the rest is `header JSON, 0x00, data`, and the 8-byte length prefix is
//!   computed here. Mutations of the JSON then keep a consistent header length,
//!   so the fuzzer reaches the checks behind the header instead of stopping at it.
//!
//! The seed corpora are written (and checked) by `brt/tests/hostile_fuzz_seeds.rs`.
#![warn(missing_docs)]

use brt::ModelWeights;
use std::borrow::Cow;

/// The file bytes of a safetensors-target input (without its first byte).
pub fn safetensors_file(framed: bool, rest: &[u8]) -> Cow<'_, [u8]> {
    if !framed {
        return Cow::Borrowed(rest);
    }
    let (header, data) = match rest.iter().position(|&b| b == 0) {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, &[][..]),
    };
    let mut file = Vec::with_capacity(8 + rest.len());
    file.extend_from_slice(&(header.len() as u64).to_le_bytes());
    file.extend_from_slice(header);
    file.extend_from_slice(data);
    Cow::Owned(file)
}

/// The model whose sessions the `session_file` target restores (small, with a
/// recurrent layer, LSTM gates, the dual layout and feedback, so that a session
/// holds every kind of carried state). It is a committed brt weight file so that
/// the session seeds, made with the same model, stay valid.
pub fn session_model() -> ModelWeights {
    brt::format::from_bytes(include_bytes!("../models/session_model.safetensors"))
        .expect("fuzz/models/session_model.safetensors is a valid brt weight file")
}

/// Writes `value` as the `u32` value of metadata `key` wherever the GGUF bytes
/// hold that key followed by the `u32` type (a model file's checksum, so the
/// `gguf_model` target reaches the checks after it).
pub fn set_gguf_u32(bytes: &mut [u8], key: &str, value: u32) {
    let mut pattern = (key.len() as u64).to_le_bytes().to_vec();
    pattern.extend_from_slice(key.as_bytes());
    pattern.extend_from_slice(&brt_gguf::value_type::UINT32.to_le_bytes());
    let mut at = 0;
    while let Some(found) = bytes[at..].windows(pattern.len()).position(|w| w == pattern) {
        let value_at = at + found + pattern.len();
        if let Some(slot) = bytes.get_mut(value_at..value_at + 4) {
            slot.copy_from_slice(&value.to_le_bytes());
        }
        at = value_at;
    }
}
