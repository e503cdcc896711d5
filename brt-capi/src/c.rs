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

/// Success.
///
/// What every call that succeeds returns:
///
/// ```
/// # use brt_capi::c::*;
/// # use std::ptr::{null, null_mut};
/// # static MODEL: &[u8] = brt_gguf::include_model!("../../brt-gguf/tests/data/plain.gguf");
/// let mut sizes = brt_sizes::default();
/// // SAFETY: MODEL is readable for its length; `sizes` is a live local.
/// assert_eq!(unsafe { brt_memory_sizes(MODEL.as_ptr(), MODEL.len(), 4, &mut sizes) }, BRT_OK);
/// assert!(sizes.bytes > 0);
/// assert_eq!(brt_capi::message(BRT_OK), "success");
/// ```
pub const BRT_OK: i32 = 0;
/// A pointer argument is null.
///
/// A null runner, or a null pointer among the arguments:
///
/// ```
/// # use brt_capi::c::*;
/// # use std::ptr::{null, null_mut};
/// # static MODEL: &[u8] = brt_gguf::include_model!("../../brt-gguf/tests/data/plain.gguf");
/// // SAFETY: every function checks its pointers for null first.
/// unsafe {
///     assert_eq!(brt_reset(null_mut()), BRT_ERROR_NULL_POINTER);
///     assert_eq!(brt_feed(null_mut(), [1u32].as_ptr(), 1), BRT_ERROR_NULL_POINTER);
///     assert_eq!(brt_memory_sizes(null(), 0, 4, &mut brt_sizes::default()), BRT_ERROR_NULL_POINTER);
/// }
/// assert_eq!(brt_capi::Error::NullPointer.code(), BRT_ERROR_NULL_POINTER);
/// ```
pub const BRT_ERROR_NULL_POINTER: i32 = 1;
/// Not a valid brt model file (or not aligned to 4 bytes).
///
/// Bytes that are not a model file, or a file cut short:
///
/// ```
/// # use brt_capi::c::*;
/// # use std::ptr::{null, null_mut};
/// # static MODEL: &[u8] = brt_gguf::include_model!("../../brt-gguf/tests/data/plain.gguf");
/// let mut sizes = brt_sizes::default();
/// let junk = b"not a model";
/// // SAFETY: both byte strings are readable for the lengths given; `sizes` is a live local.
/// unsafe {
///     assert_eq!(brt_memory_sizes(junk.as_ptr(), junk.len(), 4, &mut sizes), BRT_ERROR_MODEL);
///     assert_eq!(brt_memory_sizes(MODEL.as_ptr(), MODEL.len() - 1, 4, &mut sizes), BRT_ERROR_MODEL);
/// }
/// assert_eq!(sizes, brt_sizes::default(), "nothing is written on an error");
/// ```
pub const BRT_ERROR_MODEL: i32 = 2;
/// Tokens per call is zero, or so large that sizes overflow.
///
/// Zero tokens per call, or too many:
///
/// ```
/// # use brt_capi::c::*;
/// # use std::ptr::{null, null_mut};
/// # static MODEL: &[u8] = brt_gguf::include_model!("../../brt-gguf/tests/data/plain.gguf");
/// let mut sizes = brt_sizes::default();
/// // SAFETY: MODEL is readable for its length; `sizes` is a live local.
/// unsafe {
///     assert_eq!(brt_memory_sizes(MODEL.as_ptr(), MODEL.len(), 0, &mut sizes), BRT_ERROR_TOKENS_PER_CALL);
///     assert_eq!(brt_memory_sizes(MODEL.as_ptr(), MODEL.len(), usize::MAX, &mut sizes), BRT_ERROR_TOKENS_PER_CALL);
/// }
/// ```
pub const BRT_ERROR_TOKENS_PER_CALL: i32 = 3;
/// The memory is smaller than `brt_memory_sizes` says.
///
/// One byte less than `brt_memory_sizes` says is refused:
///
/// ```
/// # use brt_capi::c::*;
/// # use std::ptr::{null, null_mut};
/// # static MODEL: &[u8] = brt_gguf::include_model!("../../brt-gguf/tests/data/plain.gguf");
/// # let mut sizes = brt_sizes::default();
/// # // SAFETY: MODEL is readable for its length; `sizes` is a live local.
/// # assert_eq!(unsafe { brt_memory_sizes(MODEL.as_ptr(), MODEL.len(), 4, &mut sizes) }, BRT_OK);
/// let layout = std::alloc::Layout::from_size_align(sizes.bytes, sizes.align).unwrap();
/// // SAFETY: the layout's size is not zero.
/// let memory = unsafe { std::alloc::alloc(layout) };
/// assert!(!memory.is_null());
/// let mut runner = null_mut();
/// // SAFETY: MODEL is static; `memory` is writable for more than the length
/// // given; `runner` is a live local. Nothing is opened, so `memory` is freed at once.
/// unsafe {
///     let refused = brt_open(MODEL.as_ptr(), MODEL.len(), 4, memory.cast(), sizes.bytes - 1, &mut runner);
///     assert_eq!(refused, BRT_ERROR_MEMORY_TOO_SMALL);
///     std::alloc::dealloc(memory, layout);
/// }
/// assert!(runner.is_null(), "no handle is written on an error");
/// ```
pub const BRT_ERROR_MEMORY_TOO_SMALL: i32 = 4;
/// The memory does not start at a multiple of `brt_sizes.align`.
///
/// A region one byte past an aligned address (`align` is at least 4):
///
/// ```
/// # use brt_capi::c::*;
/// # use std::ptr::{null, null_mut};
/// # static MODEL: &[u8] = brt_gguf::include_model!("../../brt-gguf/tests/data/plain.gguf");
/// # let mut sizes = brt_sizes::default();
/// # // SAFETY: MODEL is readable for its length; `sizes` is a live local.
/// # assert_eq!(unsafe { brt_memory_sizes(MODEL.as_ptr(), MODEL.len(), 4, &mut sizes) }, BRT_OK);
/// let layout = std::alloc::Layout::from_size_align(sizes.bytes + sizes.align, sizes.align).unwrap();
/// // SAFETY: the layout's size is not zero.
/// let memory = unsafe { std::alloc::alloc(layout) };
/// assert!(!memory.is_null());
/// let mut runner = null_mut();
/// // SAFETY: MODEL is static; `memory + 1` is writable for `sizes.bytes` bytes
/// // (one alignment more was allocated); `runner` is a live local. Nothing is
/// // opened, so `memory` is freed at once.
/// unsafe {
///     let refused = brt_open(MODEL.as_ptr(), MODEL.len(), 4, memory.add(1).cast(), sizes.bytes, &mut runner);
///     assert_eq!(refused, BRT_ERROR_MISALIGNED_MEMORY);
///     std::alloc::dealloc(memory, layout);
/// }
/// ```
pub const BRT_ERROR_MISALIGNED_MEMORY: i32 = 5;
/// A token id is not below the vocabulary size; nothing was fed.
///
/// The vocabulary size itself is out of range, and the tokens before it are not fed:
///
/// ```
/// # use brt_capi::c::*;
/// # use std::ptr::{null, null_mut};
/// # static MODEL: &[u8] = brt_gguf::include_model!("../../brt-gguf/tests/data/plain.gguf");
/// # let mut sizes = brt_sizes::default();
/// # // SAFETY: MODEL is readable for its length; `sizes` is a live local.
/// # assert_eq!(unsafe { brt_memory_sizes(MODEL.as_ptr(), MODEL.len(), 4, &mut sizes) }, BRT_OK);
/// # let layout = std::alloc::Layout::from_size_align(sizes.bytes, sizes.align).unwrap();
/// # // SAFETY: the layout's size is not zero (the region holds the runner).
/// # let memory = unsafe { std::alloc::alloc(layout) };
/// # assert!(!memory.is_null());
/// # let mut runner = null_mut();
/// # // SAFETY: MODEL is static; `memory` is `sizes.bytes` bytes aligned to
/// # // `sizes.align`, used only through the runner until freed after `brt_close`;
/// # // `runner` is a live local.
/// # let opened = unsafe { brt_open(MODEL.as_ptr(), MODEL.len(), 4, memory.cast(), sizes.bytes, &mut runner) };
/// # assert_eq!(opened, BRT_OK);
/// // SAFETY: `runner` is live (opened above); the array holds 2 ids.
/// unsafe {
///     let vocab = brt_vocab(runner) as u32;
///     assert_eq!(brt_feed(runner, [0, vocab].as_ptr(), 2), BRT_ERROR_TOKEN_OUT_OF_RANGE);
///     assert_eq!(brt_position(runner), 0);
/// }
/// # // SAFETY: `runner` is live and closed once; `memory` came from `alloc` with `layout`.
/// # unsafe { brt_close(runner); std::alloc::dealloc(memory, layout) };
/// ```
pub const BRT_ERROR_TOKEN_OUT_OF_RANGE: i32 = 6;
/// The logits output does not hold exactly `brt_vocab` values.
///
/// One value more than the vocabulary is refused too:
///
/// ```
/// # use brt_capi::c::*;
/// # use std::ptr::{null, null_mut};
/// # static MODEL: &[u8] = brt_gguf::include_model!("../../brt-gguf/tests/data/plain.gguf");
/// # let mut sizes = brt_sizes::default();
/// # // SAFETY: MODEL is readable for its length; `sizes` is a live local.
/// # assert_eq!(unsafe { brt_memory_sizes(MODEL.as_ptr(), MODEL.len(), 4, &mut sizes) }, BRT_OK);
/// # let layout = std::alloc::Layout::from_size_align(sizes.bytes, sizes.align).unwrap();
/// # // SAFETY: the layout's size is not zero (the region holds the runner).
/// # let memory = unsafe { std::alloc::alloc(layout) };
/// # assert!(!memory.is_null());
/// # let mut runner = null_mut();
/// # // SAFETY: MODEL is static; `memory` is `sizes.bytes` bytes aligned to
/// # // `sizes.align`, used only through the runner until freed after `brt_close`;
/// # // `runner` is a live local.
/// # let opened = unsafe { brt_open(MODEL.as_ptr(), MODEL.len(), 4, memory.cast(), sizes.bytes, &mut runner) };
/// # assert_eq!(opened, BRT_OK);
/// // SAFETY: `runner` is live (opened above); `logits` holds `vocab + 1` floats.
/// unsafe {
///     let vocab = brt_vocab(runner);
///     let mut logits = vec![0f32; vocab + 1];
///     assert_eq!(brt_feed(runner, [1u32].as_ptr(), 1), BRT_OK);
///     assert_eq!(brt_logits(runner, logits.as_mut_ptr(), vocab + 1), BRT_ERROR_LOGITS_LENGTH);
///     assert_eq!(brt_logits(runner, logits.as_mut_ptr(), vocab), BRT_OK);
/// }
/// # // SAFETY: `runner` is live and closed once; `memory` came from `alloc` with `layout`.
/// # unsafe { brt_close(runner); std::alloc::dealloc(memory, layout) };
/// ```
pub const BRT_ERROR_LOGITS_LENGTH: i32 = 7;
/// No token has been fed since opening or the last reset.
///
/// Right after opening, and after a reset:
///
/// ```
/// # use brt_capi::c::*;
/// # use std::ptr::{null, null_mut};
/// # static MODEL: &[u8] = brt_gguf::include_model!("../../brt-gguf/tests/data/plain.gguf");
/// # let mut sizes = brt_sizes::default();
/// # // SAFETY: MODEL is readable for its length; `sizes` is a live local.
/// # assert_eq!(unsafe { brt_memory_sizes(MODEL.as_ptr(), MODEL.len(), 4, &mut sizes) }, BRT_OK);
/// # let layout = std::alloc::Layout::from_size_align(sizes.bytes, sizes.align).unwrap();
/// # // SAFETY: the layout's size is not zero (the region holds the runner).
/// # let memory = unsafe { std::alloc::alloc(layout) };
/// # assert!(!memory.is_null());
/// # let mut runner = null_mut();
/// # // SAFETY: MODEL is static; `memory` is `sizes.bytes` bytes aligned to
/// # // `sizes.align`, used only through the runner until freed after `brt_close`;
/// # // `runner` is a live local.
/// # let opened = unsafe { brt_open(MODEL.as_ptr(), MODEL.len(), 4, memory.cast(), sizes.bytes, &mut runner) };
/// # assert_eq!(opened, BRT_OK);
/// // SAFETY: `runner` is live (opened above); `logits` holds `vocab` floats.
/// unsafe {
///     let vocab = brt_vocab(runner);
///     let mut logits = vec![0f32; vocab];
///     assert_eq!(brt_logits(runner, logits.as_mut_ptr(), vocab), BRT_ERROR_NO_LOGITS);
///     assert_eq!(brt_feed(runner, [1u32].as_ptr(), 1), BRT_OK);
///     assert_eq!(brt_reset(runner), BRT_OK);
///     assert_eq!(brt_logits(runner, logits.as_mut_ptr(), vocab), BRT_ERROR_NO_LOGITS);
/// }
/// # // SAFETY: `runner` is live and closed once; `memory` came from `alloc` with `layout`.
/// # unsafe { brt_close(runner); std::alloc::dealloc(memory, layout) };
/// ```
pub const BRT_ERROR_NO_LOGITS: i32 = 8;
/// The CPU backend failed.
///
/// The code of every backend error, the largest in use (a little-endian CPU's backend does not fail on a valid model, so it is shown here through the Rust error):
///
/// ```
/// # use brt_capi::c::*;
/// use brt_capi::Error;
/// assert_eq!(Error::Backend(brt_cpu::CpuError::WorkerPanicked).code(), BRT_ERROR_BACKEND);
/// assert_eq!(BRT_ERROR_BACKEND, Error::MAX_CODE);
/// assert_eq!(brt_capi::code_name(BRT_ERROR_BACKEND), Some("BRT_ERROR_BACKEND"));
/// ```
pub const BRT_ERROR_BACKEND: i32 = 9;

/// What a runner needs, from `brt_memory_sizes`. Give `brt_open` one region of
/// `bytes` bytes at an address that is a multiple of `align` (e.g. from
/// `aligned_alloc(align, bytes)`, or a static `_Alignas` array); it holds the
/// runner (`runner_bytes`), then `f32s` floats, then `u32s` 32-bit token ids:
/// `bytes = runner_bytes + 4 * (f32s + u32s)` rounded up to a multiple of `align`.
///
/// The parts add up to `bytes`, and the pools are the Rust API's [`Sizes`]:
///
/// ```
/// # use brt_capi::c::*;
/// # use std::ptr::{null, null_mut};
/// # static MODEL: &[u8] = brt_gguf::include_model!("../../brt-gguf/tests/data/plain.gguf");
/// let mut sizes = brt_sizes::default();
/// // SAFETY: MODEL is readable for its length; `sizes` is a live local.
/// assert_eq!(unsafe { brt_memory_sizes(MODEL.as_ptr(), MODEL.len(), 4, &mut sizes) }, BRT_OK);
/// let rust = brt_capi::Sizes::for_model(MODEL, 4)?;
/// assert_eq!((sizes.f32s, sizes.u32s), (rust.f32s, rust.u32s));
/// assert_eq!(sizes.bytes, (sizes.runner_bytes + 4 * (sizes.f32s + sizes.u32s)).next_multiple_of(sizes.align));
/// assert!(sizes.align.is_power_of_two() && sizes.align >= 4);
/// # Ok::<(), brt_capi::Error>(())
/// ```
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
///
/// The handle is the start of the region, and the runner takes `runner_bytes` there:
///
/// ```
/// # use brt_capi::c::*;
/// # use std::ptr::{null, null_mut};
/// # static MODEL: &[u8] = brt_gguf::include_model!("../../brt-gguf/tests/data/plain.gguf");
/// # let mut sizes = brt_sizes::default();
/// # // SAFETY: MODEL is readable for its length; `sizes` is a live local.
/// # assert_eq!(unsafe { brt_memory_sizes(MODEL.as_ptr(), MODEL.len(), 4, &mut sizes) }, BRT_OK);
/// # let layout = std::alloc::Layout::from_size_align(sizes.bytes, sizes.align).unwrap();
/// # // SAFETY: the layout's size is not zero (the region holds the runner).
/// # let memory = unsafe { std::alloc::alloc(layout) };
/// # assert!(!memory.is_null());
/// # let mut runner = null_mut();
/// # // SAFETY: MODEL is static; `memory` is `sizes.bytes` bytes aligned to
/// # // `sizes.align`, used only through the runner until freed after `brt_close`;
/// # // `runner` is a live local.
/// # let opened = unsafe { brt_open(MODEL.as_ptr(), MODEL.len(), 4, memory.cast(), sizes.bytes, &mut runner) };
/// # assert_eq!(opened, BRT_OK);
/// assert_eq!(runner.cast::<u8>(), memory);
/// assert_eq!(std::mem::size_of::<brt_runner>(), sizes.runner_bytes);
/// assert_eq!(std::mem::align_of::<brt_runner>(), sizes.align);
/// # // SAFETY: `runner` is live and closed once; `memory` came from `alloc` with `layout`.
/// # unsafe { brt_close(runner); std::alloc::dealloc(memory, layout) };
/// ```
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
///
/// The sizes of the Rust API for the same tokens per call; nothing is written on an error:
///
/// ```
/// # use brt_capi::c::*;
/// # use std::ptr::{null, null_mut};
/// # static MODEL: &[u8] = brt_gguf::include_model!("../../brt-gguf/tests/data/plain.gguf");
/// let mut sizes = brt_sizes::default();
/// // SAFETY: MODEL is readable for its length; `sizes` is a live local, and a
/// // null `out` is refused before any write.
/// unsafe {
///     assert_eq!(brt_memory_sizes(MODEL.as_ptr(), MODEL.len(), 0, &mut sizes), BRT_ERROR_TOKENS_PER_CALL);
///     assert_eq!(sizes, brt_sizes::default());
///     assert_eq!(brt_memory_sizes(MODEL.as_ptr(), MODEL.len(), 8, null_mut()), BRT_ERROR_NULL_POINTER);
///     assert_eq!(brt_memory_sizes(MODEL.as_ptr(), MODEL.len(), 8, &mut sizes), BRT_OK);
/// }
/// let rust = brt_capi::Sizes::for_model(MODEL, 8)?;
/// assert_eq!((sizes.f32s, sizes.u32s, sizes.u32s), (rust.f32s, rust.u32s, 8));
/// # Ok::<(), brt_capi::Error>(())
/// ```
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
///
/// A handle into the region, written only when the region is large enough:
///
/// ```
/// # use brt_capi::c::*;
/// # use std::ptr::{null, null_mut};
/// # static MODEL: &[u8] = brt_gguf::include_model!("../../brt-gguf/tests/data/plain.gguf");
/// let mut sizes = brt_sizes::default();
/// // SAFETY: MODEL is readable for its length; `sizes` is a live local.
/// assert_eq!(unsafe { brt_memory_sizes(MODEL.as_ptr(), MODEL.len(), 4, &mut sizes) }, BRT_OK);
/// let layout = std::alloc::Layout::from_size_align(sizes.bytes, sizes.align).unwrap();
/// // SAFETY: the layout's size is not zero (the region holds the runner).
/// let memory = unsafe { std::alloc::alloc(layout) };
/// assert!(!memory.is_null());
/// let mut runner = null_mut();
/// // SAFETY: MODEL is static; `memory` is `sizes.bytes` bytes aligned to
/// // `sizes.align`, used only through the runner until freed after `brt_close`;
/// // `runner` is a live local.
/// unsafe {
///     let short = brt_open(MODEL.as_ptr(), MODEL.len(), 4, memory.cast(), sizes.bytes - 1, &mut runner);
///     assert_eq!((short, runner), (BRT_ERROR_MEMORY_TOO_SMALL, null_mut()));
///     assert_eq!(brt_open(MODEL.as_ptr(), MODEL.len(), 4, memory.cast(), sizes.bytes, &mut runner), BRT_OK);
///     assert_eq!(runner.cast::<u8>(), memory);
///     assert_eq!(brt_position(runner), 0);
/// }
/// // SAFETY: `runner` is live and closed once; `memory` came from `alloc` with `layout`.
/// unsafe { brt_close(runner); std::alloc::dealloc(memory, layout) };
/// ```
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
///
/// Ten tokens with 4 per call go in three calls; zero tokens feed nothing:
///
/// ```
/// # use brt_capi::c::*;
/// # use std::ptr::{null, null_mut};
/// # static MODEL: &[u8] = brt_gguf::include_model!("../../brt-gguf/tests/data/plain.gguf");
/// # let mut sizes = brt_sizes::default();
/// # // SAFETY: MODEL is readable for its length; `sizes` is a live local.
/// # assert_eq!(unsafe { brt_memory_sizes(MODEL.as_ptr(), MODEL.len(), 4, &mut sizes) }, BRT_OK);
/// # let layout = std::alloc::Layout::from_size_align(sizes.bytes, sizes.align).unwrap();
/// # // SAFETY: the layout's size is not zero (the region holds the runner).
/// # let memory = unsafe { std::alloc::alloc(layout) };
/// # assert!(!memory.is_null());
/// # let mut runner = null_mut();
/// # // SAFETY: MODEL is static; `memory` is `sizes.bytes` bytes aligned to
/// # // `sizes.align`, used only through the runner until freed after `brt_close`;
/// # // `runner` is a live local.
/// # let opened = unsafe { brt_open(MODEL.as_ptr(), MODEL.len(), 4, memory.cast(), sizes.bytes, &mut runner) };
/// # assert_eq!(opened, BRT_OK);
/// let tokens: Vec<u32> = (1..=10).collect();
/// // SAFETY: `runner` is live (opened above); `tokens` holds 10 ids.
/// unsafe {
///     assert_eq!(brt_feed(runner, tokens.as_ptr(), 10), BRT_OK);
///     assert_eq!(brt_feed(runner, tokens.as_ptr(), 0), BRT_OK);
///     assert_eq!(brt_position(runner), 10);
/// }
/// # // SAFETY: `runner` is live and closed once; `memory` came from `alloc` with `layout`.
/// # unsafe { brt_close(runner); std::alloc::dealloc(memory, layout) };
/// ```
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
///
/// The logits of the Rust API's [`Runner`](crate::Runner) fed the same tokens:
///
/// ```
/// # use brt_capi::c::*;
/// # use std::ptr::{null, null_mut};
/// # static MODEL: &[u8] = brt_gguf::include_model!("../../brt-gguf/tests/data/plain.gguf");
/// # let mut sizes = brt_sizes::default();
/// # // SAFETY: MODEL is readable for its length; `sizes` is a live local.
/// # assert_eq!(unsafe { brt_memory_sizes(MODEL.as_ptr(), MODEL.len(), 4, &mut sizes) }, BRT_OK);
/// # let layout = std::alloc::Layout::from_size_align(sizes.bytes, sizes.align).unwrap();
/// # // SAFETY: the layout's size is not zero (the region holds the runner).
/// # let memory = unsafe { std::alloc::alloc(layout) };
/// # assert!(!memory.is_null());
/// # let mut runner = null_mut();
/// # // SAFETY: MODEL is static; `memory` is `sizes.bytes` bytes aligned to
/// # // `sizes.align`, used only through the runner until freed after `brt_close`;
/// # // `runner` is a live local.
/// # let opened = unsafe { brt_open(MODEL.as_ptr(), MODEL.len(), 4, memory.cast(), sizes.bytes, &mut runner) };
/// # assert_eq!(opened, BRT_OK);
/// let tokens = [3u32, 1, 4, 1, 5, 9];
/// let mut logits = vec![0f32; 0];
/// // SAFETY: `runner` is live (opened above); `tokens` holds 6 ids and
/// // `logits` `brt_vocab` floats.
/// unsafe {
///     logits.resize(brt_vocab(runner), 0.0);
///     assert_eq!(brt_feed(runner, tokens.as_ptr(), tokens.len()), BRT_OK);
///     assert_eq!(brt_logits(runner, logits.as_mut_ptr(), logits.len()), BRT_OK);
/// }
/// let rust = brt_capi::Sizes::for_model(MODEL, 4)?;
/// let (mut f32s, mut u32s) = (vec![0f32; rust.f32s], vec![0u32; rust.u32s]);
/// let mut expected = brt_capi::Runner::open(MODEL, &mut f32s, &mut u32s, 4)?;
/// expected.feed(&tokens)?;
/// let mut want = vec![0f32; expected.vocab()];
/// expected.logits(&mut want)?;
/// assert_eq!(logits, want);
/// # // SAFETY: `runner` is live and closed once; `memory` came from `alloc` with `layout`.
/// # unsafe { brt_close(runner); std::alloc::dealloc(memory, layout) };
/// # Ok::<(), brt_capi::Error>(())
/// ```
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
///
/// The same tokens after a reset give the same logits as the first time:
///
/// ```
/// # use brt_capi::c::*;
/// # use std::ptr::{null, null_mut};
/// # static MODEL: &[u8] = brt_gguf::include_model!("../../brt-gguf/tests/data/plain.gguf");
/// # let mut sizes = brt_sizes::default();
/// # // SAFETY: MODEL is readable for its length; `sizes` is a live local.
/// # assert_eq!(unsafe { brt_memory_sizes(MODEL.as_ptr(), MODEL.len(), 4, &mut sizes) }, BRT_OK);
/// # let layout = std::alloc::Layout::from_size_align(sizes.bytes, sizes.align).unwrap();
/// # // SAFETY: the layout's size is not zero (the region holds the runner).
/// # let memory = unsafe { std::alloc::alloc(layout) };
/// # assert!(!memory.is_null());
/// # let mut runner = null_mut();
/// # // SAFETY: MODEL is static; `memory` is `sizes.bytes` bytes aligned to
/// # // `sizes.align`, used only through the runner until freed after `brt_close`;
/// # // `runner` is a live local.
/// # let opened = unsafe { brt_open(MODEL.as_ptr(), MODEL.len(), 4, memory.cast(), sizes.bytes, &mut runner) };
/// # assert_eq!(opened, BRT_OK);
/// let tokens = [2u32, 7, 1, 8];
/// // SAFETY: `runner` is live (opened above); `tokens` holds 4 ids and each
/// // logits vector `brt_vocab` floats.
/// unsafe {
///     let vocab = brt_vocab(runner);
///     let (mut first, mut again) = (vec![0f32; vocab], vec![0f32; vocab]);
///     assert_eq!(brt_feed(runner, tokens.as_ptr(), 4), BRT_OK);
///     assert_eq!(brt_logits(runner, first.as_mut_ptr(), vocab), BRT_OK);
///     assert_eq!(brt_reset(runner), BRT_OK);
///     assert_eq!(brt_position(runner), 0);
///     assert_eq!(brt_feed(runner, tokens.as_ptr(), 4), BRT_OK);
///     assert_eq!(brt_logits(runner, again.as_mut_ptr(), vocab), BRT_OK);
///     assert_eq!(first, again);
/// }
/// # // SAFETY: `runner` is live and closed once; `memory` came from `alloc` with `layout`.
/// # unsafe { brt_close(runner); std::alloc::dealloc(memory, layout) };
/// ```
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
///
/// The model file's vocabulary, and 0 for null:
///
/// ```
/// # use brt_capi::c::*;
/// # use std::ptr::{null, null_mut};
/// # static MODEL: &[u8] = brt_gguf::include_model!("../../brt-gguf/tests/data/plain.gguf");
/// # let mut sizes = brt_sizes::default();
/// # // SAFETY: MODEL is readable for its length; `sizes` is a live local.
/// # assert_eq!(unsafe { brt_memory_sizes(MODEL.as_ptr(), MODEL.len(), 4, &mut sizes) }, BRT_OK);
/// # let layout = std::alloc::Layout::from_size_align(sizes.bytes, sizes.align).unwrap();
/// # // SAFETY: the layout's size is not zero (the region holds the runner).
/// # let memory = unsafe { std::alloc::alloc(layout) };
/// # assert!(!memory.is_null());
/// # let mut runner = null_mut();
/// # // SAFETY: MODEL is static; `memory` is `sizes.bytes` bytes aligned to
/// # // `sizes.align`, used only through the runner until freed after `brt_close`;
/// # // `runner` is a live local.
/// # let opened = unsafe { brt_open(MODEL.as_ptr(), MODEL.len(), 4, memory.cast(), sizes.bytes, &mut runner) };
/// # assert_eq!(opened, BRT_OK);
/// let config = *brt_gguf::ModelFile::parse(MODEL)?.config();
/// // SAFETY: `runner` is live (opened above); null is allowed.
/// unsafe {
///     assert_eq!(brt_vocab(runner), config.vocab);
///     assert_eq!(brt_vocab(null()), 0);
/// }
/// # // SAFETY: `runner` is live and closed once; `memory` came from `alloc` with `layout`.
/// # unsafe { brt_close(runner); std::alloc::dealloc(memory, layout) };
/// # Ok::<(), brt_capi::Error>(())
/// ```
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
///
/// Every token fed counts until a reset; a null runner is at 0:
///
/// ```
/// # use brt_capi::c::*;
/// # use std::ptr::{null, null_mut};
/// # static MODEL: &[u8] = brt_gguf::include_model!("../../brt-gguf/tests/data/plain.gguf");
/// # let mut sizes = brt_sizes::default();
/// # // SAFETY: MODEL is readable for its length; `sizes` is a live local.
/// # assert_eq!(unsafe { brt_memory_sizes(MODEL.as_ptr(), MODEL.len(), 4, &mut sizes) }, BRT_OK);
/// # let layout = std::alloc::Layout::from_size_align(sizes.bytes, sizes.align).unwrap();
/// # // SAFETY: the layout's size is not zero (the region holds the runner).
/// # let memory = unsafe { std::alloc::alloc(layout) };
/// # assert!(!memory.is_null());
/// # let mut runner = null_mut();
/// # // SAFETY: MODEL is static; `memory` is `sizes.bytes` bytes aligned to
/// # // `sizes.align`, used only through the runner until freed after `brt_close`;
/// # // `runner` is a live local.
/// # let opened = unsafe { brt_open(MODEL.as_ptr(), MODEL.len(), 4, memory.cast(), sizes.bytes, &mut runner) };
/// # assert_eq!(opened, BRT_OK);
/// // SAFETY: `runner` is live (opened above); the arrays hold the ids passed.
/// unsafe {
///     assert_eq!(brt_feed(runner, [1u32, 2, 3].as_ptr(), 3), BRT_OK);
///     assert_eq!(brt_feed(runner, [4u32, 5].as_ptr(), 2), BRT_OK);
///     assert_eq!(brt_position(runner), 5);
///     assert_eq!(brt_reset(runner), BRT_OK);
///     assert_eq!(brt_position(runner), 0);
///     assert_eq!(brt_position(null()), 0);
/// }
/// # // SAFETY: `runner` is live and closed once; `memory` came from `alloc` with `layout`.
/// # unsafe { brt_close(runner); std::alloc::dealloc(memory, layout) };
/// ```
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
///
/// After closing, the same region opens a new runner; closing null does nothing:
///
/// ```
/// # use brt_capi::c::*;
/// # use std::ptr::{null, null_mut};
/// # static MODEL: &[u8] = brt_gguf::include_model!("../../brt-gguf/tests/data/plain.gguf");
/// # let mut sizes = brt_sizes::default();
/// # // SAFETY: MODEL is readable for its length; `sizes` is a live local.
/// # assert_eq!(unsafe { brt_memory_sizes(MODEL.as_ptr(), MODEL.len(), 4, &mut sizes) }, BRT_OK);
/// # let layout = std::alloc::Layout::from_size_align(sizes.bytes, sizes.align).unwrap();
/// # // SAFETY: the layout's size is not zero (the region holds the runner).
/// # let memory = unsafe { std::alloc::alloc(layout) };
/// # assert!(!memory.is_null());
/// # let mut runner = null_mut();
/// # // SAFETY: MODEL is static; `memory` is `sizes.bytes` bytes aligned to
/// # // `sizes.align`, used only through the runner until freed after `brt_close`;
/// # // `runner` is a live local.
/// # let opened = unsafe { brt_open(MODEL.as_ptr(), MODEL.len(), 4, memory.cast(), sizes.bytes, &mut runner) };
/// # assert_eq!(opened, BRT_OK);
/// // SAFETY: `runner` is live (opened above) and closed once; after that the
/// // region is reused for a second runner, closed once too; null is allowed.
/// unsafe {
///     assert_eq!(brt_feed(runner, [1u32].as_ptr(), 1), BRT_OK);
///     brt_close(runner);
///     brt_close(null_mut());
///     let mut second = null_mut();
///     assert_eq!(brt_open(MODEL.as_ptr(), MODEL.len(), 4, memory.cast(), sizes.bytes, &mut second), BRT_OK);
///     assert_eq!(brt_position(second), 0);
///     brt_close(second);
///     std::alloc::dealloc(memory, layout);
/// }
/// ```
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
///
/// The Rust API's message of each code, as a C string:
///
/// ```
/// # use brt_capi::c::*;
/// use std::ffi::CStr;
/// for code in [BRT_OK, BRT_ERROR_NO_LOGITS, -1, 1000] {
///     // SAFETY: the pointer is to a static NUL-terminated string, never null.
///     let message = unsafe { CStr::from_ptr(brt_error_message(code)) };
///     assert_eq!(message.to_str().unwrap(), brt_capi::message(code));
/// }
/// ```
#[no_mangle]
pub extern "C" fn brt_error_message(code: i32) -> *const c_char {
    crate::error::c_message(code).as_ptr()
}
