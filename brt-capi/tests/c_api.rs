//! The C functions called as C calls them: every null pointer, a misaligned or
//! too small region, and a whole run that gives the Rust API's logits.

use brt_capi::c::*;
use brt_capi::{Runner, Sizes};
use brt_core::init::initialize;
use brt_core::{Config, LayerSet, WeightData, WeightLayout};
use std::ffi::CStr;
use std::ptr::{null, null_mut};

fn model_file() -> (Vec<u64>, usize) {
    let config = Config { states: 2, recurrent: LayerSet::EMPTY.with(0), ..Config::plain(30, 8, 2, 4, 16, 2, 3) };
    let mut flat = vec![0f32; WeightLayout::new(&config).unwrap().len()];
    initialize(&config, 3, &mut flat).unwrap();
    let bytes = brt_gguf::write(&config, None, WeightData::F32(&flat)).unwrap();
    let mut words = vec![0u64; bytes.len().div_ceil(8)];
    bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..bytes.len()].copy_from_slice(&bytes);
    (words, bytes.len())
}

/// A region of `bytes` bytes at an address aligned to 64, `offset` bytes in.
fn region(bytes: usize, offset: usize) -> (Vec<u64>, usize) {
    let words = vec![0u64; (bytes + offset + 64) / 8 + 1];
    let start = (words.as_ptr() as usize).next_multiple_of(64) - words.as_ptr() as usize + offset;
    (words, start)
}

#[test]
fn sizes_are_the_rust_sizes_plus_the_runner_in_one_aligned_region() {
    let (words, len) = model_file();
    let model = bytemuck::cast_slice::<u64, u8>(&words).as_ptr();
    let mut sizes = brt_sizes::default();
    // SAFETY: `model` holds `len` bytes; `sizes` is a live local.
    assert_eq!(unsafe { brt_memory_sizes(model, len, 6, &mut sizes) }, BRT_OK);
    let rust = Sizes::for_model(&bytemuck::cast_slice(&words)[..len], 6).unwrap();
    assert_eq!((sizes.f32s, sizes.u32s), (rust.f32s, rust.u32s));
    assert_eq!(sizes.runner_bytes, std::mem::size_of::<brt_runner>());
    assert_eq!(sizes.align, std::mem::align_of::<brt_runner>());
    assert!(sizes.align.is_power_of_two() && sizes.align >= 4);
    assert_eq!(sizes.bytes, (sizes.runner_bytes + 4 * (sizes.f32s + sizes.u32s)).next_multiple_of(sizes.align));
    // SAFETY: as above; each call has one null pointer, which is refused.
    unsafe {
        assert_eq!(brt_memory_sizes(null(), len, 6, &mut sizes), BRT_ERROR_NULL_POINTER);
        assert_eq!(brt_memory_sizes(model, len, 6, null_mut()), BRT_ERROR_NULL_POINTER);
        assert_eq!(brt_memory_sizes(model, len, 0, &mut sizes), BRT_ERROR_TOKENS_PER_CALL);
        assert_eq!(brt_memory_sizes(model, len - 1, 6, &mut sizes), BRT_ERROR_MODEL);
    }
}

#[test]
fn a_c_run_gives_the_logits_of_the_rust_runner_and_every_misuse_is_a_code() {
    let (words, len) = model_file();
    let model_bytes = &bytemuck::cast_slice::<u64, u8>(&words)[..len];
    let model = model_bytes.as_ptr();
    let mut sizes = brt_sizes::default();
    // SAFETY: `model` holds `len` bytes; `sizes` is a live local.
    assert_eq!(unsafe { brt_memory_sizes(model, len, 4, &mut sizes) }, BRT_OK);
    let (mut memory, start) = region(sizes.bytes, 0);
    let base = bytemuck::cast_slice_mut::<u64, u8>(&mut memory).as_mut_ptr();
    let tokens: Vec<u32> = (0..10).map(|i| i * 11 % 30).collect();
    let mut runner: *mut brt_runner = null_mut();
    let mut logits = vec![0f32; 30];
    // SAFETY: `base + start` is inside `memory` with `sizes.bytes + 64` bytes after
    // it; the model and the region outlive the runner, which is closed at the end;
    // every other pointer is a live local of the length passed.
    unsafe {
        let at = base.add(start).cast();
        assert_eq!(brt_open(null(), len, 4, at, sizes.bytes, &mut runner), BRT_ERROR_NULL_POINTER);
        assert_eq!(brt_open(model, len, 4, null_mut(), sizes.bytes, &mut runner), BRT_ERROR_NULL_POINTER);
        assert_eq!(brt_open(model, len, 4, at, sizes.bytes, null_mut()), BRT_ERROR_NULL_POINTER);
        assert_eq!(brt_open(model, len, 4, at, sizes.bytes - 1, &mut runner), BRT_ERROR_MEMORY_TOO_SMALL);
        assert_eq!(brt_open(model, len, 4, base.add(start + 4).cast(), sizes.bytes, &mut runner), {
            if sizes.align > 4 {
                BRT_ERROR_MISALIGNED_MEMORY
            } else {
                BRT_OK
            }
        });
        assert_eq!(brt_open(model, len, 0, at, sizes.bytes, &mut runner), BRT_ERROR_TOKENS_PER_CALL);
        assert_eq!(brt_open(model.add(1), len - 1, 4, at, sizes.bytes, &mut runner), BRT_ERROR_MODEL);
        assert!(runner.is_null() || sizes.align == 4, "no handle is written on an error");
        assert_eq!(brt_open(model, len, 4, at, sizes.bytes, &mut runner), BRT_OK);
        assert_eq!(runner.cast::<u8>(), base.add(start), "the runner lies at the start of the region");
        assert_eq!(brt_vocab(runner), 30);
        assert_eq!(brt_vocab(null()), 0);

        assert_eq!(brt_logits(runner, logits.as_mut_ptr(), 30), BRT_ERROR_NO_LOGITS);
        assert_eq!(brt_feed(null_mut(), tokens.as_ptr(), 10), BRT_ERROR_NULL_POINTER);
        assert_eq!(brt_feed(runner, null(), 10), BRT_ERROR_NULL_POINTER);
        assert_eq!(brt_feed(runner, [30u32].as_ptr(), 1), BRT_ERROR_TOKEN_OUT_OF_RANGE);
        assert_eq!(brt_feed(runner, tokens.as_ptr(), 10), BRT_OK);
        assert_eq!(brt_position(runner), 10);
        assert_eq!(brt_position(null()), 0);
        assert_eq!(brt_logits(null(), logits.as_mut_ptr(), 30), BRT_ERROR_NULL_POINTER);
        assert_eq!(brt_logits(runner, null_mut(), 30), BRT_ERROR_NULL_POINTER);
        assert_eq!(brt_logits(runner, logits.as_mut_ptr(), 31), BRT_ERROR_LOGITS_LENGTH);
        assert_eq!(brt_logits(runner, logits.as_mut_ptr(), 30), BRT_OK);
    }

    let rust = Sizes::for_model(model_bytes, 4).unwrap();
    let (mut f32s, mut u32s) = (vec![0f32; rust.f32s], vec![0u32; rust.u32s]);
    let mut expected = Runner::open(model_bytes, &mut f32s, &mut u32s, 4).unwrap();
    expected.feed(&tokens).unwrap();
    let mut want = vec![0f32; 30];
    expected.logits(&mut want).unwrap();
    assert_eq!(logits, want);

    // SAFETY: `runner` is the live runner opened above; closed once, at the end.
    unsafe {
        assert_eq!(brt_reset(null_mut()), BRT_ERROR_NULL_POINTER);
        assert_eq!(brt_reset(runner), BRT_OK);
        assert_eq!(brt_position(runner), 0);
        assert_eq!(brt_logits(runner, logits.as_mut_ptr(), 30), BRT_ERROR_NO_LOGITS);
        assert_eq!(brt_feed(runner, tokens.as_ptr(), 10), BRT_OK);
        assert_eq!(brt_logits(runner, logits.as_mut_ptr(), 30), BRT_OK);
        brt_close(runner);
        brt_close(null_mut());
    }
    assert_eq!(logits, want, "a reset starts the same document again");
}

#[test]
fn every_code_has_a_static_message_and_unknown_codes_too() {
    for code in -2..=brt_capi::Error::MAX_CODE + 2 {
        // SAFETY: `brt_error_message` returns a static NUL-terminated string.
        let message = unsafe { CStr::from_ptr(brt_error_message(code)) }.to_str().unwrap();
        assert_eq!(message, brt_capi::message(code));
        let known = (0..=brt_capi::Error::MAX_CODE).contains(&code);
        assert_eq!(message == "unknown brt error code", !known, "{code}: {message}");
    }
    // SAFETY: as above.
    assert_eq!(unsafe { CStr::from_ptr(brt_error_message(BRT_OK)) }.to_str().unwrap(), "success");
}
