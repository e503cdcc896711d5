//! The C interface (`include/brt.h`, generated from this module by cbindgen).
//!
//! One region of caller memory holds everything: the runner itself (the handle
//! points into the region), then the f32 pool, then the u32 pool. Functions
//! return `BRT_OK` (0) or a `BRT_ERROR_*` code, check every pointer for null,
//! and never panic into C.
//!
//! The contract C callers keep (besides what each function says): the model
//! bytes and the memory region stay valid and unchanged, other than through
//! these functions, from `brt_open` until `brt_close` or their last use; a
//! runner is used by one thread at a time.
//!
//! A document's run as a C program makes it, in one region of memory that holds
//! the runner at its start:
//!
//! ```
//! # use brt_capi::c::*;
//! # use std::ptr::{null, null_mut};
//! # static MODEL: &[u8] = brt_gguf::include_model!("../../brt-gguf/tests/data/plain.gguf");
//! let mut sizes = brt_sizes::default();
//! // SAFETY: MODEL is readable for its length; `sizes` is a live local.
//! assert_eq!(unsafe { brt_memory_sizes(MODEL.as_ptr(), MODEL.len(), 4, &mut sizes) }, BRT_OK);
//! let layout = std::alloc::Layout::from_size_align(sizes.bytes, sizes.align).unwrap();
//! // SAFETY: the layout's size is not zero (the region holds the runner).
//! let memory = unsafe { std::alloc::alloc(layout) };
//! assert!(!memory.is_null());
//! let mut runner = null_mut();
//! // SAFETY: MODEL is static; `memory` is `sizes.bytes` bytes aligned to
//! // `sizes.align`, used only through the runner until freed after `brt_close`;
//! // `runner` is a live local.
//! let opened = unsafe { brt_open(MODEL.as_ptr(), MODEL.len(), 4, memory.cast(), sizes.bytes, &mut runner) };
//! assert_eq!(opened, BRT_OK);
//! assert_eq!(runner.cast::<u8>(), memory, "the handle points to the region's start");
//! let tokens = [1u32, 2, 3, 4, 5, 6];
//! // SAFETY: `runner` is live (opened above); `tokens` holds 6 ids.
//! unsafe {
//!     assert_eq!(brt_feed(runner, tokens.as_ptr(), tokens.len()), BRT_OK);
//!     assert_eq!(brt_position(runner), 6);
//!     assert_eq!(brt_reset(runner), BRT_OK);
//!     assert_eq!(brt_position(runner), 0);
//! }
//! // SAFETY: `runner` is live and closed once; `memory` came from `alloc` with `layout`.
//! unsafe { brt_close(runner); std::alloc::dealloc(memory, layout) };
//! ```
#![allow(non_camel_case_types)]

use crate::{Error, Runner, Sizes};
use brt_gguf::ModelFile;
use core::ffi::{c_char, c_void};
use core::mem::{align_of, size_of};

// Each item's Rust example lives in `c/examples/<item>.md`, brought in with
// `#[doc = include_str!(..)]`: cbindgen copies only literal doc comments into
// the C header, so the header keeps the C-facing text and not Rust code.

/// Success.
#[doc = include_str!("c/examples/BRT_OK.md")]
pub const BRT_OK: i32 = 0;
/// A pointer argument is null.
#[doc = include_str!("c/examples/BRT_ERROR_NULL_POINTER.md")]
pub const BRT_ERROR_NULL_POINTER: i32 = 1;
/// Not a valid brt model file (or not aligned to 4 bytes).
#[doc = include_str!("c/examples/BRT_ERROR_MODEL.md")]
pub const BRT_ERROR_MODEL: i32 = 2;
/// Tokens per call is zero, or so large that sizes overflow.
#[doc = include_str!("c/examples/BRT_ERROR_TOKENS_PER_CALL.md")]
pub const BRT_ERROR_TOKENS_PER_CALL: i32 = 3;
/// The memory is smaller than `brt_memory_sizes` says.
#[doc = include_str!("c/examples/BRT_ERROR_MEMORY_TOO_SMALL.md")]
pub const BRT_ERROR_MEMORY_TOO_SMALL: i32 = 4;
/// The memory does not start at a multiple of `brt_sizes.align`.
#[doc = include_str!("c/examples/BRT_ERROR_MISALIGNED_MEMORY.md")]
pub const BRT_ERROR_MISALIGNED_MEMORY: i32 = 5;
/// A token id is not below the vocabulary size; nothing was fed.
#[doc = include_str!("c/examples/BRT_ERROR_TOKEN_OUT_OF_RANGE.md")]
pub const BRT_ERROR_TOKEN_OUT_OF_RANGE: i32 = 6;
/// The logits output does not hold exactly `brt_vocab` values.
#[doc = include_str!("c/examples/BRT_ERROR_LOGITS_LENGTH.md")]
pub const BRT_ERROR_LOGITS_LENGTH: i32 = 7;
/// No token has been fed since opening or the last reset.
#[doc = include_str!("c/examples/BRT_ERROR_NO_LOGITS.md")]
pub const BRT_ERROR_NO_LOGITS: i32 = 8;
/// The CPU backend failed.
#[doc = include_str!("c/examples/BRT_ERROR_BACKEND.md")]
pub const BRT_ERROR_BACKEND: i32 = 9;

/// What a runner needs, from `brt_memory_sizes`. Give `brt_open` one region of
/// `bytes` bytes at an address that is a multiple of `align` (e.g. from
/// `aligned_alloc(align, bytes)`, or a static `_Alignas` array); it holds the
/// runner (`runner_bytes`), then `f32s` floats, then `u32s` 32-bit token ids:
/// `bytes = runner_bytes + 4 * (f32s + u32s)` rounded up to a multiple of `align`.
#[doc = include_str!("c/examples/brt_sizes.md")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct brt_sizes {
    /// Bytes of the whole region (a multiple of `align`).
    pub bytes: usize,
    /// Alignment of the region, in bytes.
    pub align: usize,
    /// Bytes of the runner at the start of the region.
    pub runner_bytes: usize,
    /// f32 values after it: CPU scratch, stream state and the activations of one call.
    pub f32s: usize,
    /// u32 values after those: the token ids of one call.
    pub u32s: usize,
}

/// A runner: opaque to C, it lies at the start of the caller's memory region.
#[doc = include_str!("c/examples/brt_runner.md")]
pub struct brt_runner(Runner<'static>);

/// Bytes of a runner at the start of the region.
const RUNNER_BYTES: usize = size_of::<brt_runner>();
/// The region's alignment: the runner's, which also aligns the pools after it.
const ALIGN: usize = align_of::<brt_runner>();
// The pools follow the runner directly, so they are aligned for f32 and u32.
const _: () = assert!(ALIGN.is_multiple_of(4) && RUNNER_BYTES.is_multiple_of(4));

impl brt_sizes {
    /// The region for pools of `sizes`.
    fn new(sizes: Sizes) -> Result<brt_sizes, Error> {
        let bytes = sizes
            .bytes()
            .and_then(|b| b.checked_add(RUNNER_BYTES))
            .and_then(|b| b.checked_next_multiple_of(ALIGN))
            .ok_or(crate::OVERFLOW)?;
        Ok(brt_sizes { bytes, align: ALIGN, runner_bytes: RUNNER_BYTES, f32s: sizes.f32s, u32s: sizes.u32s })
    }
}

/// The code of a result.
fn status(result: Result<(), Error>) -> i32 {
    match result {
        Ok(()) => BRT_OK,
        Err(e) => e.code(),
    }
}

/// Checks the model file `model` (`model_len` bytes) completely and writes the
/// memory a runner for it needs, for calls of at most `tokens_per_call` tokens,
/// to `*out`.
///
/// # Safety
/// `model` must be readable for `model_len` bytes and `out` writable, or null
/// (an error).
#[doc = include_str!("c/examples/brt_memory_sizes.md")]
#[no_mangle]
pub unsafe extern "C" fn brt_memory_sizes(
    model: *const u8,
    model_len: usize,
    tokens_per_call: usize,
    out: *mut brt_sizes,
) -> i32 {
    if model.is_null() || out.is_null() {
        return BRT_ERROR_NULL_POINTER;
    }
    // SAFETY: `model` is non-null (checked) and readable for `model_len` bytes
    // (the caller's contract), so it is one allocation of at most isize::MAX bytes;
    // u8 needs no alignment; the slice only lives during this call.
    let model = unsafe { core::slice::from_raw_parts(model, model_len) };
    status(Sizes::for_model(model, tokens_per_call).and_then(brt_sizes::new).map(|sizes| {
        // SAFETY: `out` is non-null (checked) and writable (the caller's contract);
        // `brt_sizes` is `repr(C)` of `usize`s, whose alignment the caller's C
        // type has too.
        unsafe { out.write(sizes) }
    }))
}

/// Opens the model file `model` (`model_len` bytes, at an address aligned to 4
/// bytes; its weights are used where they lie, never copied) for calls of at
/// most `tokens_per_call` tokens, on the region `memory` of `memory_len` bytes
/// (at least `brt_memory_sizes`'s `bytes`, aligned to its `align`), and writes
/// the runner's handle, which points into `memory`, to `*out` (left as it was
/// on an error).
///
/// # Safety
/// `model` must be readable for `model_len` bytes, `memory` writable for
/// `memory_len` bytes, `out` writable, or any of them null (an error). `model`
/// and `memory` must not overlap; both must stay valid, and `memory` be used
/// only through the runner, until `brt_close` or the runner's last use.
#[doc = include_str!("c/examples/brt_open.md")]
#[no_mangle]
pub unsafe extern "C" fn brt_open(
    model: *const u8,
    model_len: usize,
    tokens_per_call: usize,
    memory: *mut c_void,
    memory_len: usize,
    out: *mut *mut brt_runner,
) -> i32 {
    if model.is_null() || memory.is_null() || out.is_null() {
        return BRT_ERROR_NULL_POINTER;
    }
    // SAFETY: as in `brt_memory_sizes`; the caller keeps the bytes valid and
    // unchanged for as long as the runner is used, which is what the `'static`
    // lifetime given to the runner stands for.
    let model: &'static [u8] = unsafe { core::slice::from_raw_parts(model, model_len) };
    let opened = ModelFile::parse(model).map_err(Error::Model).and_then(|file| {
        let sizes = brt_sizes::new(Sizes::for_config(file.config(), tokens_per_call)?)?;
        if !memory.cast::<brt_runner>().is_aligned() {
            return Err(Error::MisalignedMemory { needed: ALIGN });
        }
        if memory_len < sizes.bytes {
            return Err(Error::MemoryTooSmall {
                what: "memory region (bytes)",
                needed: sizes.bytes,
                available: memory_len,
            });
        }
        // SAFETY: `memory` is non-null (checked), writable for `memory_len` bytes
        // and not aliased by `model` or anything else while the runner lives (the
        // caller's contract, which the `'static` lifetime stands for); u8 needs no
        // alignment.
        let region: &'static mut [u8] = unsafe { core::slice::from_raw_parts_mut(memory.cast::<u8>(), memory_len) };
        let (head, pools) = region.split_at_mut(RUNNER_BYTES);
        let runner = Runner::open_file_in(file, pools, tokens_per_call)?;
        let at = head.as_mut_ptr().cast::<brt_runner>();
        // SAFETY: `head` is `RUNNER_BYTES = size_of::<brt_runner>()` writable bytes
        // (split off above; `memory_len >= sizes.bytes >= RUNNER_BYTES`) at the
        // region's start, which is aligned to `ALIGN = align_of::<brt_runner>()`
        // (checked), and disjoint from the pools the runner borrows.
        unsafe { at.write(brt_runner(runner)) };
        Ok(at)
    });
    status(opened.map(|at| {
        // SAFETY: `out` is non-null (checked) and writable (the caller's contract).
        unsafe { out.write(at) }
    }))
}

/// Feeds `n` tokens (`tokens[0..n]`, ids below `brt_vocab`) to the runner's
/// document; any number, in calls of at most `tokens_per_call`. An id out of
/// range feeds nothing. After any other error, call `brt_reset`.
///
/// # Safety
/// `runner` must come from `brt_open` and not be closed, or be null (an error);
/// `tokens` must be readable for `n` values, or null (an error).
#[doc = include_str!("c/examples/brt_feed.md")]
#[no_mangle]
pub unsafe extern "C" fn brt_feed(runner: *mut brt_runner, tokens: *const u32, n: usize) -> i32 {
    if runner.is_null() || tokens.is_null() {
        return BRT_ERROR_NULL_POINTER;
    }
    // SAFETY: `tokens` is non-null (checked), readable for `n` u32 values and
    // aligned for them (the caller's contract).
    let tokens = unsafe { core::slice::from_raw_parts(tokens, n) };
    // SAFETY: `runner` is non-null (checked) and points to a runner `brt_open`
    // wrote and `brt_close` has not dropped, used by this thread alone (the
    // caller's contract); the tokens are the caller's memory, not the runner's.
    let runner = unsafe { &mut (*runner).0 };
    status(runner.feed(tokens))
}

/// Writes the logits after the last token fed (`out_len` values, which must be
/// `brt_vocab`) to `out`.
///
/// # Safety
/// `runner` as for `brt_feed`; `out` must be writable for `out_len` floats, or
/// null (an error).
#[doc = include_str!("c/examples/brt_logits.md")]
#[no_mangle]
pub unsafe extern "C" fn brt_logits(runner: *const brt_runner, out: *mut f32, out_len: usize) -> i32 {
    if runner.is_null() || out.is_null() {
        return BRT_ERROR_NULL_POINTER;
    }
    // SAFETY: `out` is non-null (checked), writable for `out_len` aligned f32
    // values (the caller's contract) and not part of the runner's memory.
    let out = unsafe { core::slice::from_raw_parts_mut(out, out_len) };
    // SAFETY: as in `brt_feed`; only read here.
    let runner = unsafe { &(*runner).0 };
    status(runner.logits(out))
}

/// Starts a new document: empty caches, the learned initial recurrent state.
///
/// # Safety
/// `runner` as for `brt_feed`.
#[doc = include_str!("c/examples/brt_reset.md")]
#[no_mangle]
pub unsafe extern "C" fn brt_reset(runner: *mut brt_runner) -> i32 {
    if runner.is_null() {
        return BRT_ERROR_NULL_POINTER;
    }
    // SAFETY: as in `brt_feed`.
    let runner = unsafe { &mut (*runner).0 };
    status(runner.reset())
}

/// The vocabulary size (token ids are below it; logits have this many values),
/// or 0 for a null runner.
///
/// # Safety
/// `runner` as for `brt_feed`.
#[doc = include_str!("c/examples/brt_vocab.md")]
#[no_mangle]
pub unsafe extern "C" fn brt_vocab(runner: *const brt_runner) -> usize {
    if runner.is_null() {
        return 0;
    }
    // SAFETY: as in `brt_feed`; only read here.
    unsafe { (*runner).0.vocab() }
}

/// Tokens fed since opening or the last reset, or 0 for a null runner.
///
/// # Safety
/// `runner` as for `brt_feed`.
#[doc = include_str!("c/examples/brt_position.md")]
#[no_mangle]
pub unsafe extern "C" fn brt_position(runner: *const brt_runner) -> u64 {
    if runner.is_null() {
        return 0;
    }
    // SAFETY: as in `brt_feed`; only read here.
    unsafe { (*runner).0.position() }
}

/// Ends the runner (null does nothing); its memory and the model bytes may then
/// be reused or freed, and the handle must not be used again.
///
/// # Safety
/// `runner` as for `brt_feed`.
#[doc = include_str!("c/examples/brt_close.md")]
#[no_mangle]
pub unsafe extern "C" fn brt_close(runner: *mut brt_runner) {
    if !runner.is_null() {
        // SAFETY: as in `brt_feed`: a live runner that `brt_open` wrote in place,
        // dropped once (the caller does not use the handle again).
        unsafe { core::ptr::drop_in_place(runner) }
    }
}

/// The message of a code (`BRT_OK` or `BRT_ERROR_*`), a static NUL-terminated
/// string; never null, also for an unknown code.
#[doc = include_str!("c/examples/brt_error_message.md")]
#[no_mangle]
pub extern "C" fn brt_error_message(code: i32) -> *const c_char {
    crate::error::c_message(code).as_ptr()
}
