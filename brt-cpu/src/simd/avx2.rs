//! x86-64 AVX2 + FMA + F16C: 8 lanes, a 6 x 16 micro-tile (12 accumulators).

use super::{micro_generic, Epilogue, Simd, WithSimd};
use core::arch::x86_64::*;

/// AVX2 lane operations.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx2;

/// Runs `task` compiled for AVX2.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn entry<T: WithSimd>(task: T) -> T::Output {
    task.with::<Avx2>()
}

impl Simd for Avx2 {
    const LANES: usize = 8;
    const MR: usize = 6;
    const NR: usize = 16;
    type V = __m256;

    #[inline(always)]
    unsafe fn zero() -> __m256 {
        // SAFETY: dispatch guarantees AVX.
        unsafe { _mm256_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> __m256 {
        // SAFETY: dispatch guarantees AVX.
        unsafe { _mm256_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m256 {
        // SAFETY: the caller makes `p` valid for 8 reads; dispatch guarantees AVX.
        unsafe { _mm256_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m256) {
        // SAFETY: the caller makes `p` valid for 8 writes; dispatch guarantees AVX.
        unsafe { _mm256_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn load_f16(p: *const u16) -> __m256 {
        // SAFETY: the caller makes `p` valid for 8 reads; dispatch guarantees F16C.
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i)) }
    }
    #[inline(always)]
    unsafe fn load_bf16(p: *const u16) -> __m256 {
        // SAFETY: the caller makes `p` valid for 8 reads; dispatch guarantees AVX2.
        // A bf16 is the upper half of the f32 with the same bits.
        unsafe {
            let wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(p as *const __m128i));
            _mm256_castsi256_ps(_mm256_slli_epi32::<16>(wide))
        }
    }
    #[inline(always)]
    unsafe fn dot_q8(w: *const i8, x: *const i8) -> __m256 {
        // SAFETY: forwarded contract.
        unsafe { dot_q8(w, x) }
    }
    #[inline(always)]
    unsafe fn splat_f16(bits: u16) -> __m256 {
        // SAFETY: dispatch guarantees AVX and F16C.
        unsafe { _mm256_cvtph_ps(_mm_set1_epi16(bits as i16)) }
    }
    #[inline(always)]
    unsafe fn add(a: __m256, b: __m256) -> __m256 {
        // SAFETY: dispatch guarantees AVX.
        unsafe { _mm256_add_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn sub(a: __m256, b: __m256) -> __m256 {
        // SAFETY: dispatch guarantees AVX.
        unsafe { _mm256_sub_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn mul(a: __m256, b: __m256) -> __m256 {
        // SAFETY: dispatch guarantees AVX.
        unsafe { _mm256_mul_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn fma(a: __m256, b: __m256, c: __m256) -> __m256 {
        // SAFETY: dispatch guarantees FMA.
        unsafe { _mm256_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    unsafe fn max(a: __m256, b: __m256) -> __m256 {
        // SAFETY: dispatch guarantees AVX.
        unsafe { _mm256_max_ps(a, b) }
    }
    // Cephes' coefficients as published (their f32 roundings are what is used).
    #[allow(clippy::excessive_precision)]
    #[inline(always)]
    unsafe fn exp(x: __m256) -> __m256 {
        // SAFETY: dispatch guarantees AVX2 and FMA. Cephes' expf: x = n ln2 + r with
        // |r| <= ln2/2, a degree-6 polynomial for exp(r), 2^n built in the exponent
        // field. Inputs below the smallest normal's log give exactly 0.
        unsafe {
            let lo = _mm256_set1_ps(-87.336_55);
            let valid = _mm256_cmp_ps::<_CMP_GE_OQ>(x, lo);
            let x = _mm256_min_ps(_mm256_max_ps(x, lo), _mm256_set1_ps(88.0));
            let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
                x,
                _mm256_set1_ps(core::f32::consts::LOG2_E),
            ));
            let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693_359_4), x);
            let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.121_944_4e-4), r);
            let mut p = _mm256_set1_ps(1.987_569_1e-4);
            p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.398_199_9e-3));
            p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.333_452e-3));
            p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.166_579_6e-2));
            p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.666_666_5e-1));
            p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.000_000_1e-1));
            let y = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0));
            let e = _mm256_slli_epi32::<23>(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)));
            _mm256_and_ps(_mm256_mul_ps(y, _mm256_castsi256_ps(e)), valid)
        }
    }
    #[inline(always)]
    unsafe fn hsum(v: __m256) -> f32 {
        // SAFETY: dispatch guarantees AVX.
        unsafe {
            let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps::<1>(s, s)))
        }
    }
    #[inline(always)]
    unsafe fn hmax(v: __m256) -> f32 {
        // SAFETY: dispatch guarantees AVX.
        unsafe {
            let s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
            let s = _mm_max_ps(s, _mm_movehl_ps(s, s));
            _mm_cvtss_f32(_mm_max_ss(s, _mm_shuffle_ps::<1>(s, s)))
        }
    }
    #[inline(always)]
    unsafe fn sqrt1(x: f32) -> f32 {
        // SAFETY: SSE, part of every x86-64 CPU (VEX-encoded in this level's code).
        unsafe { _mm_cvtss_f32(_mm_sqrt_ss(_mm_set_ss(x))) }
    }
    #[inline(always)]
    unsafe fn prefetch(p: *const f32) {
        // SAFETY: SSE, part of every x86-64 CPU; a prefetch never faults.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p as *const i8) }
    }
    #[inline(always)]
    unsafe fn stream(p: *mut f32, v: __m256) {
        // SAFETY: the caller makes `p` valid for 8 writes and 32-byte aligned;
        // dispatch guarantees AVX.
        unsafe { _mm256_stream_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn stream_fence() {
        // SAFETY: SSE, part of every x86-64 CPU.
        unsafe { _mm_sfence() }
    }
    #[inline(always)]
    unsafe fn transpose4(rows: [*const f32; 4], len: usize, dst: *mut f32, stride: usize) {
        // SAFETY: forwarded contract.
        unsafe { transpose4(rows, len, dst, stride) }
    }
    #[inline(always)]
    unsafe fn micro(kc: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, ep: Epilogue) {
        // SAFETY: forwarded contract.
        unsafe { micro_generic::<Avx2, 6, 2>(kc, a, b, c, ldc, ep) }
    }
}

/// [`Simd::dot_q8`] in 8 lanes (shared with the AVX-512 level): the unsigned
/// by signed byte product (`vpmaddubsw`) takes `|w|` and `x` with `w`'s sign,
/// so each 16-bit pair sum is at most 2 * 128 * 127 = 32,512 and never
/// saturates; the pairs are then summed to 32 bits (`vpmaddwd` by ones), four
/// products a lane.
///
/// # Safety
/// `w` and `x` must be valid for 32 reads; the CPU must support AVX2.
#[inline(always)]
pub(crate) unsafe fn dot_q8(w: *const i8, x: *const i8) -> __m256 {
    // SAFETY: the caller's contract (two unaligned 256-bit loads).
    unsafe {
        let w = _mm256_loadu_si256(w as *const __m256i);
        let x = _mm256_loadu_si256(x as *const __m256i);
        let magnitude = _mm256_sign_epi8(w, w);
        let signed_x = _mm256_sign_epi8(x, w);
        let pairs = _mm256_maddubs_epi16(magnitude, signed_x);
        _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)))
    }
}

/// [`Simd::transpose4`] eight steps at a time: four 8-value rows become eight
/// 4-value steps through 8 in-lane shuffles (each 256-bit result holds step `p`
/// in its low half and `p + 4` in its high half), then 16-byte stores.
///
/// # Safety
/// As [`Simd::transpose4`]; the CPU must support AVX.
#[inline(always)]
pub(crate) unsafe fn transpose4(rows: [*const f32; 4], len: usize, dst: *mut f32, stride: usize) {
    // SAFETY: every load reads steps `p .. p + 8 <= len` of a row, and every
    // store writes the 4 values `r < 4` of a step `< len` (the caller's contract).
    unsafe {
        let mut p = 0;
        while p + 8 <= len {
            let [r0, r1, r2, r3] = rows.map(|row| _mm256_loadu_ps(row.add(p)));
            let (t0, t1) = (_mm256_unpacklo_ps(r0, r1), _mm256_unpackhi_ps(r0, r1));
            let (t2, t3) = (_mm256_unpacklo_ps(r2, r3), _mm256_unpackhi_ps(r2, r3));
            let steps = [
                _mm256_shuffle_ps::<0x44>(t0, t2),
                _mm256_shuffle_ps::<0xee>(t0, t2),
                _mm256_shuffle_ps::<0x44>(t1, t3),
                _mm256_shuffle_ps::<0xee>(t1, t3),
            ];
            let out = dst.add(p * stride);
            for (i, s) in steps.into_iter().enumerate() {
                _mm_storeu_ps(out.add(i * stride), _mm256_castps256_ps128(s));
                _mm_storeu_ps(out.add((i + 4) * stride), _mm256_extractf128_ps::<1>(s));
            }
            p += 8;
        }
        super::transpose4_copies(rows, p..len, dst, stride);
    }
}
