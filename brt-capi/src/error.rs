//! What can go wrong, as a small `Copy` value with a stable number for C.

use crate::c;
use brt_core::CoreError;
use brt_cpu::CpuError;
use brt_gguf::GgufError;
use core::ffi::CStr;
use core::fmt;

/// Everything the runner can refuse. Each variant has a stable number
/// ([`Error::code`], the `BRT_ERROR_*` constants of the C header) and a static
/// message; the fields and [`fmt::Display`] give the details in Rust.
///
/// The display is the static message, then the details:
///
/// ```
/// use brt_capi::Error;
/// let err = Error::MemoryTooSmall { what: "f32 pool", needed: 200, available: 199 };
/// assert_eq!(err.code(), brt_capi::c::BRT_ERROR_MEMORY_TOO_SMALL);
/// assert_eq!(err.to_string(), format!("{} (f32 pool: 200 needed, 199 given)", err.message()));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// A pointer argument of a C function was null.
    NullPointer,
    /// The bytes are not a valid brt model file (the reader says what is wrong).
    Model(GgufError),
    /// `tokens_per_call` is zero, or so large that sizes overflow.
    TokensPerCall(CoreError),
    /// The caller's memory is smaller than [`crate::Sizes`] says.
    MemoryTooSmall {
        /// Which memory: the f32 pool, the u32 pool or the one region.
        what: &'static str,
        /// Elements (bytes for the region) needed.
        needed: usize,
        /// Elements (bytes for the region) given.
        available: usize,
    },
    /// The caller's memory region does not start at a multiple of its alignment.
    MisalignedMemory {
        /// The alignment needed, in bytes.
        needed: usize,
    },
    /// A token id is not below the vocabulary size; nothing was fed.
    TokenOutOfRange {
        /// Its index in the tokens given.
        index: usize,
        /// The id.
        id: u32,
        /// The vocabulary size.
        vocab: usize,
    },
    /// The logits output does not hold exactly one value per vocabulary entry.
    LogitsLength {
        /// The vocabulary size.
        expected: usize,
        /// The output's length.
        actual: usize,
    },
    /// Logits were asked for before any token was fed (since opening or the last
    /// reset).
    NoLogits,
    /// The CPU backend failed (e.g. a big-endian machine, which cannot use the
    /// little-endian weights in place).
    Backend(CpuError),
}

/// One row of the table of codes: the number, its C name and its message.
struct Code {
    code: i32,
    name: &'static str,
    message: &'static CStr,
}

/// Every code, in order; code 0 is success. Numbers never change meaning: new
/// errors get new numbers (the constants are in [`crate::c`], and the C header).
const CODES: [Code; 10] = [
    Code { code: c::BRT_OK, name: "BRT_OK", message: c"success" },
    Code { code: c::BRT_ERROR_NULL_POINTER, name: "BRT_ERROR_NULL_POINTER", message: c"a pointer argument is null" },
    Code {
        code: c::BRT_ERROR_MODEL,
        name: "BRT_ERROR_MODEL",
        message: c"not a valid brt model file (write one with `brt convert`; read it whole, aligned to 4 bytes)",
    },
    Code {
        code: c::BRT_ERROR_TOKENS_PER_CALL,
        name: "BRT_ERROR_TOKENS_PER_CALL",
        message: c"tokens per call must be positive and small enough for the sizes to fit in memory",
    },
    Code {
        code: c::BRT_ERROR_MEMORY_TOO_SMALL,
        name: "BRT_ERROR_MEMORY_TOO_SMALL",
        message: c"the memory given is smaller than brt_memory_sizes says",
    },
    Code {
        code: c::BRT_ERROR_MISALIGNED_MEMORY,
        name: "BRT_ERROR_MISALIGNED_MEMORY",
        message: c"the memory does not start at a multiple of the alignment brt_memory_sizes gives",
    },
    Code {
        code: c::BRT_ERROR_TOKEN_OUT_OF_RANGE,
        name: "BRT_ERROR_TOKEN_OUT_OF_RANGE",
        message: c"a token id is not below the vocabulary size; nothing was fed",
    },
    Code {
        code: c::BRT_ERROR_LOGITS_LENGTH,
        name: "BRT_ERROR_LOGITS_LENGTH",
        message: c"the logits output must hold exactly one value per vocabulary entry (brt_vocab)",
    },
    Code {
        code: c::BRT_ERROR_NO_LOGITS,
        name: "BRT_ERROR_NO_LOGITS",
        message: c"no token has been fed since opening or the last reset",
    },
    Code { code: c::BRT_ERROR_BACKEND, name: "BRT_ERROR_BACKEND", message: c"the CPU backend failed" },
];

/// The message of an unknown code.
const UNKNOWN: &CStr = c"unknown brt error code";

impl Error {
    /// The stable number of this error (never 0, which is success).
    ///
    /// The numbers of the C header's constants:
    ///
    /// ```
    /// use brt_capi::{c, Error};
    /// assert_eq!(Error::NullPointer.code(), c::BRT_ERROR_NULL_POINTER);
    /// assert_eq!(Error::NoLogits.code(), c::BRT_ERROR_NO_LOGITS);
    /// assert_eq!(Error::MisalignedMemory { needed: 8 }.code(), c::BRT_ERROR_MISALIGNED_MEMORY);
    /// assert_ne!(Error::NoLogits.code(), c::BRT_OK);
    /// ```
    pub const fn code(&self) -> i32 {
        match self {
            Error::NullPointer => c::BRT_ERROR_NULL_POINTER,
            Error::Model(_) => c::BRT_ERROR_MODEL,
            Error::TokensPerCall(_) => c::BRT_ERROR_TOKENS_PER_CALL,
            Error::MemoryTooSmall { .. } => c::BRT_ERROR_MEMORY_TOO_SMALL,
            Error::MisalignedMemory { .. } => c::BRT_ERROR_MISALIGNED_MEMORY,
            Error::TokenOutOfRange { .. } => c::BRT_ERROR_TOKEN_OUT_OF_RANGE,
            Error::LogitsLength { .. } => c::BRT_ERROR_LOGITS_LENGTH,
            Error::NoLogits => c::BRT_ERROR_NO_LOGITS,
            Error::Backend(_) => c::BRT_ERROR_BACKEND,
        }
    }

    /// The static message of this error's code.
    ///
    /// The same for every error of a variant, whatever its fields:
    ///
    /// ```
    /// use brt_capi::Error;
    /// let (a, b) = (Error::MisalignedMemory { needed: 4 }, Error::MisalignedMemory { needed: 64 });
    /// assert_eq!(a.message(), b.message());
    /// assert_eq!(a.message(), brt_capi::message(a.code()));
    /// assert_ne!(a.to_string(), b.to_string());
    /// ```
    pub fn message(&self) -> &'static str {
        message(self.code())
    }

    /// The largest code in use.
    ///
    /// Every code from `BRT_OK` (0) to it has a name, the next one none:
    ///
    /// ```
    /// use brt_capi::{code_name, Error};
    /// assert!((0..=Error::MAX_CODE).all(|code| code_name(code).is_some()));
    /// assert_eq!(code_name(Error::MAX_CODE + 1), None);
    /// assert_eq!(Error::MAX_CODE, brt_capi::c::BRT_ERROR_BACKEND);
    /// ```
    pub const MAX_CODE: i32 = CODES.len() as i32 - 1;
}

/// The message of `code` as a C string (0 is success; an unknown code has a
/// message too).
pub fn c_message(code: i32) -> &'static CStr {
    CODES.iter().find(|c| c.code == code).map_or(UNKNOWN, |c| c.message)
}

/// The message of `code` (0 is success; an unknown code has a message too).
///
/// Every known code has its own; unknown ones share one:
///
/// ```
/// use brt_capi::{message, Error};
/// assert_eq!(message(0), "success");
/// assert_eq!(message(Error::NoLogits.code()), Error::NoLogits.message());
/// assert_eq!(message(-1), message(Error::MAX_CODE + 1));
/// assert!((0..=Error::MAX_CODE).all(|code| message(code) != message(-1)));
/// ```
pub fn message(code: i32) -> &'static str {
    // The messages are ASCII, so the conversion cannot fail.
    c_message(code).to_str().unwrap_or("")
}

/// The C name of `code` (`BRT_OK`, `BRT_ERROR_...`), if it is one.
///
/// The name of the constant of that number:
///
/// ```
/// use brt_capi::{c, code_name};
/// assert_eq!(code_name(c::BRT_OK), Some("BRT_OK"));
/// assert_eq!(code_name(c::BRT_ERROR_TOKEN_OUT_OF_RANGE), Some("BRT_ERROR_TOKEN_OUT_OF_RANGE"));
/// assert_eq!(code_name(-1), None);
/// ```
pub fn code_name(code: i32) -> Option<&'static str> {
    CODES.iter().find(|c| c.code == code).map(|c| c.name)
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())?;
        match self {
            Error::NullPointer | Error::NoLogits => Ok(()),
            Error::Model(e) => write!(f, ": {e}"),
            Error::TokensPerCall(e) => write!(f, ": {e}"),
            Error::Backend(e) => write!(f, ": {e}"),
            Error::MemoryTooSmall { what, needed, available } => {
                write!(f, " ({what}: {needed} needed, {available} given)")
            }
            Error::MisalignedMemory { needed } => write!(f, " ({needed} bytes)"),
            Error::TokenOutOfRange { index, id, vocab } => write!(f, " (token {index} is {id}, vocabulary {vocab})"),
            Error::LogitsLength { expected, actual } => write!(f, " ({expected} needed, {actual} given)"),
        }
    }
}

impl From<GgufError> for Error {
    fn from(e: GgufError) -> Self {
        Error::Model(e)
    }
}

impl From<CpuError> for Error {
    fn from(e: CpuError) -> Self {
        match e {
            CpuError::Core(CoreError::OutOfMemory { what, requested, available }) => {
                Error::MemoryTooSmall { what, needed: requested, available }
            }
            e => Error::Backend(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_numbered_in_order_and_every_error_has_its_own() {
        for (i, c) in CODES.iter().enumerate() {
            assert_eq!(c.code, i as i32);
            assert!(c.message.to_str().unwrap().is_ascii() && !c.message.is_empty());
        }
        let all = [
            Error::NullPointer,
            Error::Model(GgufError::NotGguf),
            Error::TokensPerCall(CoreError::SizeOverflow { what: "x" }),
            Error::MemoryTooSmall { what: "x", needed: 2, available: 1 },
            Error::MisalignedMemory { needed: 8 },
            Error::TokenOutOfRange { index: 0, id: 9, vocab: 9 },
            Error::LogitsLength { expected: 2, actual: 1 },
            Error::NoLogits,
            Error::Backend(CpuError::WorkerPanicked),
        ];
        assert_eq!(all.len() as i32, Error::MAX_CODE);
        for (i, e) in all.iter().enumerate() {
            assert_eq!(e.code(), i as i32 + 1);
            assert_eq!(e.message(), message(e.code()));
        }
        assert_eq!(message(-1), "unknown brt error code");
        assert_eq!(message(Error::MAX_CODE + 1), "unknown brt error code");
        assert_eq!(code_name(0), Some("BRT_OK"));
        assert_eq!(code_name(99), None);
    }
}
