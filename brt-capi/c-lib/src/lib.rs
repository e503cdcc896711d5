//! `libbrt.a`: brt's C interface (the `brt_*` functions of `brt-capi`, declared
//! in `brt-capi/include/brt.h`) as a `no_std` static library with no allocator
//! and `panic = "abort"`.
//!
//! The functions are `brt-capi`'s own `#[no_mangle]` items; this crate only
//! links them in and supplies the panic handler a `no_std` library needs.
#![no_std]

// Links brt-capi, whose `#[no_mangle] extern "C"` functions are the library's
// exported symbols.
pub use brt_capi::c::*;

extern "C" {
    /// The C library's `abort`, which every C program links.
    fn abort() -> !;
}

/// brt-capi returns errors and is written not to panic; should a bug panic all
/// the same, the program stops here rather than unwinding into C.
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    // SAFETY: `abort` takes no arguments, has no preconditions and does not return.
    unsafe { abort() }
}
