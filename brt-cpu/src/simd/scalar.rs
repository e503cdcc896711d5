//! The portable level: one lane, plain Rust arithmetic (the compiler may still
//! vectorise what it can for the baseline target).

use super::{micro_generic, Epilogue, Simd};

/// Portable lane operations.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Scalar;

impl Simd for Scalar {
    const LANES: usize = 1;
    const MR: usize = 4;
    const NR: usize = 4;
    type V = f32;

    #[inline(always)]
    unsafe fn zero() -> f32 {
        0.0
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> f32 {
        x
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> f32 {
        // SAFETY: the caller makes `p` valid for one read.
        unsafe { p.read_unaligned() }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: f32) {
        // SAFETY: the caller makes `p` valid for one write.
        unsafe { p.write_unaligned(v) }
    }
    #[inline(always)]
    unsafe fn load_f16(p: *const u16) -> f32 {
        // SAFETY: the caller makes `p` valid for one read.
        half::f16::from_bits(unsafe { p.read_unaligned() }).to_f32()
    }
    #[inline(always)]
    unsafe fn load_bf16(p: *const u16) -> f32 {
        // SAFETY: the caller makes `p` valid for one read.
        half::bf16::from_bits(unsafe { p.read_unaligned() }).to_f32()
    }
    #[inline(always)]
    unsafe fn dot_q8(w: *const i8, x: *const i8) -> f32 {
        // SAFETY: the caller makes `w` and `x` valid for 32 reads.
        let (w, x) = unsafe { (core::slice::from_raw_parts(w, 32), core::slice::from_raw_parts(x, 32)) };
        w.iter().zip(x).map(|(&w, &x)| w as i32 * x as i32).sum::<i32>() as f32
    }
    #[inline(always)]
    unsafe fn add(a: f32, b: f32) -> f32 {
        a + b
    }
    #[inline(always)]
    unsafe fn sub(a: f32, b: f32) -> f32 {
        a - b
    }
    #[inline(always)]
    unsafe fn mul(a: f32, b: f32) -> f32 {
        a * b
    }
    #[inline(always)]
    unsafe fn fma(a: f32, b: f32, c: f32) -> f32 {
        a * b + c
    }
    #[inline(always)]
    unsafe fn max(a: f32, b: f32) -> f32 {
        a.max(b)
    }
    #[inline(always)]
    unsafe fn exp(x: f32) -> f32 {
        libm::expf(x)
    }
    #[inline(always)]
    unsafe fn hsum(v: f32) -> f32 {
        v
    }
    #[inline(always)]
    unsafe fn hmax(v: f32) -> f32 {
        v
    }
    #[inline(always)]
    unsafe fn micro(kc: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, ep: Epilogue) {
        // SAFETY: forwarded contract.
        unsafe { micro_generic::<Scalar, 4, 4>(kc, a, b, c, ldc, ep) }
    }
}
