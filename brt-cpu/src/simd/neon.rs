//! aarch64 Advanced SIMD: 4 lanes, an 8 x 12 micro-tile (24 of the 32 registers
//! accumulate).
//!
//! f16 weights are widened lane by lane in software (the f16 vector conversions
//! of the `fp16` extension are not stable in Rust's `core::arch` yet); bf16 is a
//! shift.

use super::{micro_generic, Epilogue, Simd, WithSimd};
use core::arch::aarch64::*;

/// NEON lane operations.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Neon;

/// Runs `task` compiled for NEON.
///
/// # Safety
/// The CPU must support NEON (it is part of the aarch64 targets this level is
/// offered on).
#[target_feature(enable = "neon")]
pub(crate) unsafe fn entry<T: WithSimd>(task: T) -> T::Output {
    task.with::<Neon>()
}

impl Simd for Neon {
    const LANES: usize = 4;
    const MR: usize = 8;
    const NR: usize = 12;
    type V = float32x4_t;

    #[inline(always)]
    unsafe fn zero() -> float32x4_t {
        // SAFETY: dispatch guarantees NEON.
        unsafe { vdupq_n_f32(0.0) }
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> float32x4_t {
        // SAFETY: dispatch guarantees NEON.
        unsafe { vdupq_n_f32(x) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> float32x4_t {
        // SAFETY: the caller makes `p` valid for 4 reads.
        unsafe { vld1q_f32(p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: float32x4_t) {
        // SAFETY: the caller makes `p` valid for 4 writes.
        unsafe { vst1q_f32(p, v) }
    }
    #[inline(always)]
    unsafe fn load_f16(p: *const u16) -> float32x4_t {
        let mut wide = [0f32; 4];
        for (i, w) in wide.iter_mut().enumerate() {
            // SAFETY: the caller makes `p` valid for 4 reads.
            *w = half::f16::from_bits(unsafe { p.add(i).read_unaligned() }).to_f32();
        }
        // SAFETY: `wide` holds 4 values.
        unsafe { vld1q_f32(wide.as_ptr()) }
    }
    #[inline(always)]
    unsafe fn load_bf16(p: *const u16) -> float32x4_t {
        // SAFETY: the caller makes `p` valid for 4 reads. A bf16 is the upper half of
        // the f32 with the same bits.
        unsafe { vreinterpretq_f32_u32(vshll_n_u16::<16>(vld1_u16(p))) }
    }
    #[inline(always)]
    unsafe fn dot_q8(w: *const i8, x: *const i8) -> float32x4_t {
        // SAFETY: the caller makes `w` and `x` valid for 32 reads (two 128-bit
        // loads each). Byte products widen to 16 bits (at most 128 * 127), pairs
        // of them to 32 bits: exact.
        unsafe {
            let mut sum = vdupq_n_s32(0);
            for half in [0, 16] {
                let (w, x) = (vld1q_s8(w.add(half)), vld1q_s8(x.add(half)));
                sum = vpadalq_s16(sum, vmull_s8(vget_low_s8(w), vget_low_s8(x)));
                sum = vpadalq_s16(sum, vmull_high_s8(w, x));
            }
            vcvtq_f32_s32(sum)
        }
    }
    #[inline(always)]
    unsafe fn add(a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: dispatch guarantees NEON.
        unsafe { vaddq_f32(a, b) }
    }
    #[inline(always)]
    unsafe fn sub(a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: dispatch guarantees NEON.
        unsafe { vsubq_f32(a, b) }
    }
    #[inline(always)]
    unsafe fn mul(a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: dispatch guarantees NEON.
        unsafe { vmulq_f32(a, b) }
    }
    #[inline(always)]
    unsafe fn fma(a: float32x4_t, b: float32x4_t, c: float32x4_t) -> float32x4_t {
        // SAFETY: dispatch guarantees NEON; vfmaq_f32(c, a, b) = c + a*b.
        unsafe { vfmaq_f32(c, a, b) }
    }
    #[inline(always)]
    unsafe fn max(a: float32x4_t, b: float32x4_t) -> float32x4_t {
        // SAFETY: dispatch guarantees NEON.
        unsafe { vmaxq_f32(a, b) }
    }
    // Cephes' coefficients as published (their f32 roundings are what is used).
    #[allow(clippy::excessive_precision)]
    #[inline(always)]
    unsafe fn exp(x: float32x4_t) -> float32x4_t {
        // SAFETY: dispatch guarantees NEON. Same algorithm as the x86 levels.
        unsafe {
            let lo = vdupq_n_f32(-87.336_55);
            let valid = vcgeq_f32(x, lo);
            let x = vminq_f32(vmaxq_f32(x, lo), vdupq_n_f32(88.0));
            let ni = vcvtnq_s32_f32(vmulq_f32(x, vdupq_n_f32(core::f32::consts::LOG2_E)));
            let n = vcvtq_f32_s32(ni);
            let r = vfmsq_f32(x, n, vdupq_n_f32(0.693_359_4));
            let r = vfmsq_f32(r, n, vdupq_n_f32(-2.121_944_4e-4));
            let mut p = vdupq_n_f32(1.987_569_1e-4);
            p = vfmaq_f32(vdupq_n_f32(1.398_199_9e-3), p, r);
            p = vfmaq_f32(vdupq_n_f32(8.333_452e-3), p, r);
            p = vfmaq_f32(vdupq_n_f32(4.166_579_6e-2), p, r);
            p = vfmaq_f32(vdupq_n_f32(1.666_666_5e-1), p, r);
            p = vfmaq_f32(vdupq_n_f32(5.000_000_1e-1), p, r);
            let y = vaddq_f32(vfmaq_f32(r, p, vmulq_f32(r, r)), vdupq_n_f32(1.0));
            let e = vshlq_n_s32::<23>(vaddq_s32(ni, vdupq_n_s32(127)));
            let out = vmulq_f32(y, vreinterpretq_f32_s32(e));
            vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(out), valid))
        }
    }
    #[inline(always)]
    unsafe fn hsum(v: float32x4_t) -> f32 {
        // SAFETY: dispatch guarantees NEON.
        unsafe { vaddvq_f32(v) }
    }
    #[inline(always)]
    unsafe fn hmax(v: float32x4_t) -> f32 {
        // SAFETY: dispatch guarantees NEON.
        unsafe { vmaxvq_f32(v) }
    }
    #[inline(always)]
    unsafe fn micro(kc: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, ep: Epilogue) {
        // SAFETY: forwarded contract.
        unsafe { micro_generic::<Neon, 8, 3>(kc, a, b, c, ldc, ep) }
    }
}
