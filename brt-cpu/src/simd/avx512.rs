//! x86-64 AVX-512F: 16 lanes, a 12 x 32 micro-tile (24 of the 32 registers
//! accumulate).

use super::avx2::Avx2;
use super::{micro_generic, Epilogue, Simd, WithSimd};
use core::arch::x86_64::*;

/// AVX-512 lane operations.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx512;

/// Runs `task` compiled for AVX-512.
///
/// # Safety
/// The CPU must support AVX-512F, AVX2, FMA and F16C.
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
pub(crate) unsafe fn entry<T: WithSimd>(task: T) -> T::Output {
    task.with::<Avx512>()
}

impl Simd for Avx512 {
    const LANES: usize = 16;
    const MR: usize = 12;
    const NR: usize = 32;
    type V = __m512;

    #[inline(always)]
    unsafe fn zero() -> __m512 {
        // SAFETY: dispatch guarantees AVX-512F.
        unsafe { _mm512_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> __m512 {
        // SAFETY: dispatch guarantees AVX-512F.
        unsafe { _mm512_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m512 {
        // SAFETY: the caller makes `p` valid for 16 reads.
        unsafe { _mm512_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m512) {
        // SAFETY: the caller makes `p` valid for 16 writes.
        unsafe { _mm512_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn load_f16(p: *const u16) -> __m512 {
        // SAFETY: the caller makes `p` valid for 16 reads.
        unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(p as *const __m256i)) }
    }
    #[inline(always)]
    unsafe fn load_bf16(p: *const u16) -> __m512 {
        // SAFETY: the caller makes `p` valid for 16 reads. A bf16 is the upper half
        // of the f32 with the same bits.
        unsafe {
            let wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256(p as *const __m256i));
            _mm512_castsi512_ps(_mm512_slli_epi32::<16>(wide))
        }
    }
    #[inline(always)]
    unsafe fn dot_q8(w: *const i8, x: *const i8) -> __m512 {
        // SAFETY: forwarded contract; the entry enables AVX2 too. The block's 32
        // bytes make 8 partial sums (the upper 8 lanes are zero).
        unsafe { _mm512_zextps256_ps512(super::avx2::dot_q8(w, x)) }
    }
    #[inline(always)]
    unsafe fn splat_f16(bits: u16) -> __m512 {
        // SAFETY: dispatch guarantees AVX-512F (its conversion from f16 included).
        unsafe { _mm512_cvtph_ps(_mm256_set1_epi16(bits as i16)) }
    }
    #[inline(always)]
    unsafe fn add(a: __m512, b: __m512) -> __m512 {
        // SAFETY: dispatch guarantees AVX-512F.
        unsafe { _mm512_add_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn sub(a: __m512, b: __m512) -> __m512 {
        // SAFETY: dispatch guarantees AVX-512F.
        unsafe { _mm512_sub_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn mul(a: __m512, b: __m512) -> __m512 {
        // SAFETY: dispatch guarantees AVX-512F.
        unsafe { _mm512_mul_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn fma(a: __m512, b: __m512, c: __m512) -> __m512 {
        // SAFETY: dispatch guarantees AVX-512F.
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    unsafe fn max(a: __m512, b: __m512) -> __m512 {
        // SAFETY: dispatch guarantees AVX-512F.
        unsafe { _mm512_max_ps(a, b) }
    }
    // Cephes' coefficients as published (their f32 roundings are what is used).
    #[allow(clippy::excessive_precision)]
    #[inline(always)]
    unsafe fn exp(x: __m512) -> __m512 {
        // SAFETY: dispatch guarantees AVX-512F. Same algorithm as the AVX2 level.
        unsafe {
            let lo = _mm512_set1_ps(-87.336_55);
            let valid = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(x, lo);
            let x = _mm512_min_ps(_mm512_max_ps(x, lo), _mm512_set1_ps(88.0));
            let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm512_mul_ps(
                x,
                _mm512_set1_ps(core::f32::consts::LOG2_E),
            ));
            let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693_359_4), x);
            let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.121_944_4e-4), r);
            let mut p = _mm512_set1_ps(1.987_569_1e-4);
            p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.398_199_9e-3));
            p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.333_452e-3));
            p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.166_579_6e-2));
            p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.666_666_5e-1));
            p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.000_000_1e-1));
            let y = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0));
            let e = _mm512_slli_epi32::<23>(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)));
            _mm512_maskz_mov_ps(valid, _mm512_mul_ps(y, _mm512_castsi512_ps(e)))
        }
    }
    #[inline(always)]
    unsafe fn hsum(v: __m512) -> f32 {
        // SAFETY: dispatch guarantees AVX-512F.
        unsafe { _mm512_reduce_add_ps(v) }
    }
    #[inline(always)]
    unsafe fn hmax(v: __m512) -> f32 {
        // SAFETY: dispatch guarantees AVX-512F.
        unsafe { _mm512_reduce_max_ps(v) }
    }
    #[inline(always)]
    unsafe fn sqrt1(x: f32) -> f32 {
        // SAFETY: the entry enables the AVX2 set, whose form this is.
        unsafe { <Avx2 as Simd>::sqrt1(x) }
    }
    #[inline(always)]
    unsafe fn prefetch(p: *const f32) {
        // SAFETY: as above (a hint, which never faults).
        unsafe { <Avx2 as Simd>::prefetch(p) }
    }
    #[inline(always)]
    unsafe fn stream(p: *mut f32, v: __m512) {
        // SAFETY: the caller makes `p` valid for 16 writes and 64-byte aligned;
        // dispatch guarantees AVX-512F.
        unsafe { _mm512_stream_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn stream_fence() {
        // SAFETY: as above.
        unsafe { <Avx2 as Simd>::stream_fence() }
    }
    #[inline(always)]
    unsafe fn transpose4(rows: [*const f32; 4], len: usize, dst: *mut f32, stride: usize) {
        // SAFETY: forwarded contract; the entry enables AVX2 too. (A 512-bit form
        // would make as many 16-byte stores per value, and the stores bound this
        // loop; not tried.)
        unsafe { <Avx2 as Simd>::transpose4(rows, len, dst, stride) }
    }
    #[inline(always)]
    unsafe fn micro(kc: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, ep: Epilogue) {
        // SAFETY: forwarded contract.
        unsafe { micro_generic::<Avx512, 12, 2>(kc, a, b, c, ldc, ep) }
    }
}
