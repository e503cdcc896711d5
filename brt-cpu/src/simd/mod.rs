//! Run-time SIMD dispatch.
//!
//! Every kernel body is written once, generic over [`Simd`] (a small set of lane
//! operations), and marked `#[inline(always)]`. Each level has one entry function
//! carrying `#[target_feature]`; the generic body is inlined into it, so the whole
//! kernel is compiled for that instruction set while the binary still runs on any
//! CPU of the architecture. [`SimdLevel::dispatch`] picks the entry at run time.

mod scalar;
pub(crate) use scalar::Scalar;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "x86_64")]
mod cpuid;
#[cfg(target_arch = "aarch64")]
mod neon;

/// An instruction-set level of the CPU backend.
///
/// Scalar code runs everywhere, and the level picked for this CPU is one it
/// supports:
///
/// ```
/// use brt_cpu::SimdLevel;
///
/// assert!(SimdLevel::Scalar.is_supported());
/// let level = SimdLevel::detect();
/// assert!(level.is_supported());
/// assert!(SimdLevel::available().any(|l| l == level));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SimdLevel {
    /// Portable Rust with no explicit vector instructions (any CPU).
    Scalar,
    /// x86-64 AVX2 with FMA and F16C (8 lanes).
    Avx2,
    /// x86-64 AVX-512F (16 lanes), plus the AVX2 set.
    Avx512,
    /// aarch64 Advanced SIMD (4 lanes).
    Neon,
}

impl SimdLevel {
    /// Every level, in the order of [`SimdLevel::available`].
    ///
    /// Each level appears once, scalar first:
    ///
    /// ```
    /// use brt_cpu::SimdLevel;
    ///
    /// assert_eq!(SimdLevel::ALL[0], SimdLevel::Scalar);
    /// for level in [SimdLevel::Scalar, SimdLevel::Avx2, SimdLevel::Avx512, SimdLevel::Neon] {
    ///     assert_eq!(SimdLevel::ALL.iter().filter(|&&l| l == level).count(), 1);
    /// }
    /// ```
    pub const ALL: [SimdLevel; 4] = [SimdLevel::Scalar, SimdLevel::Avx2, SimdLevel::Avx512, SimdLevel::Neon];

    /// The level's name as used on command lines (`scalar`, `avx2`, `avx512`, `neon`).
    ///
    /// The names are the documented ones, and `Display` prints the same:
    ///
    /// ```
    /// use brt_cpu::SimdLevel;
    ///
    /// assert_eq!(SimdLevel::Scalar.name(), "scalar");
    /// assert_eq!(SimdLevel::Avx512.name(), "avx512");
    /// assert_eq!(SimdLevel::Neon.to_string(), "neon");
    /// ```
    pub const fn name(self) -> &'static str {
        match self {
            SimdLevel::Scalar => "scalar",
            SimdLevel::Avx2 => "avx2",
            SimdLevel::Avx512 => "avx512",
            SimdLevel::Neon => "neon",
        }
    }

    /// Parses a name of [`SimdLevel::name`] (ASCII case-insensitive).
    ///
    /// Every level's name parses back to it, in any case; other names do not:
    ///
    /// ```
    /// use brt_cpu::SimdLevel;
    ///
    /// for level in SimdLevel::ALL {
    ///     assert_eq!(SimdLevel::from_name(level.name()), Some(level));
    /// }
    /// assert_eq!(SimdLevel::from_name("AVX2"), Some(SimdLevel::Avx2));
    /// assert_eq!(SimdLevel::from_name("sse2"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<SimdLevel> {
        SimdLevel::ALL.into_iter().find(|l| l.name().eq_ignore_ascii_case(name))
    }

    /// Whether this CPU (and operating system) can run the level.
    ///
    /// With the `std` feature, x86-64 features are detected by the standard
    /// library. Without it they are read with `cpuid`/`xgetbv` directly (the same
    /// check, including the operating system's support for the wide registers).
    /// NEON is part of the compilation target on aarch64.
    ///
    /// Scalar is always supported, and x86-64 and aarch64 levels never both are:
    ///
    /// ```
    /// use brt_cpu::SimdLevel;
    ///
    /// assert!(SimdLevel::Scalar.is_supported());
    /// assert!(!(SimdLevel::Neon.is_supported() && SimdLevel::Avx2.is_supported()));
    /// // AVX-512 comes with the AVX2 set.
    /// assert!(!SimdLevel::Avx512.is_supported() || SimdLevel::Avx2.is_supported());
    /// ```
    pub fn is_supported(self) -> bool {
        match self {
            SimdLevel::Scalar => true,
            SimdLevel::Avx2 => x86_has_avx2(),
            SimdLevel::Avx512 => x86_has_avx2() && x86_has_avx512(),
            SimdLevel::Neon => cfg!(all(target_arch = "aarch64", target_feature = "neon")),
        }
    }

    /// The fastest level this CPU supports: the widest, except that AVX2 is
    /// preferred to AVX-512 on AMD processors up to Zen 4 (family 19h), which run
    /// 512-bit instructions as two 256-bit halves; there the AVX-512 products
    /// measured about 10% slower than the AVX2 ones (`examples/gemm_shapes.rs`).
    /// Force [`SimdLevel::Avx512`] to use it anyway.
    ///
    /// The detected level is supported, and no supported level is wider except
    /// AVX-512 where AVX2 is preferred:
    ///
    /// ```
    /// use brt_cpu::SimdLevel;
    ///
    /// let level = SimdLevel::detect();
    /// assert!(level.is_supported());
    /// let widest = SimdLevel::available().max_by_key(|l| l.lanes()).unwrap();
    /// assert!(level == widest || (level, widest) == (SimdLevel::Avx2, SimdLevel::Avx512));
    /// ```
    pub fn detect() -> SimdLevel {
        let widest = SimdLevel::ALL.into_iter().rev().find(|l| l.is_supported()).unwrap_or(SimdLevel::Scalar);
        if widest == SimdLevel::Avx512 && half_width_avx512() {
            SimdLevel::Avx2
        } else {
            widest
        }
    }

    /// The levels this CPU supports, scalar first.
    ///
    /// They are exactly the levels of [`SimdLevel::ALL`] that pass
    /// [`SimdLevel::is_supported`]:
    ///
    /// ```
    /// use brt_cpu::SimdLevel;
    ///
    /// let available: Vec<SimdLevel> = SimdLevel::available().collect();
    /// assert_eq!(available[0], SimdLevel::Scalar);
    /// for level in SimdLevel::ALL {
    ///     assert_eq!(available.contains(&level), level.is_supported());
    /// }
    /// ```
    pub fn available() -> impl Iterator<Item = SimdLevel> {
        SimdLevel::ALL.into_iter().filter(|l| l.is_supported())
    }

    /// Lanes of one vector register at this level.
    ///
    /// The vector levels have the widths their descriptions give:
    ///
    /// ```
    /// use brt_cpu::SimdLevel;
    ///
    /// assert_eq!(SimdLevel::Avx2.lanes(), 8);
    /// assert_eq!(SimdLevel::Avx512.lanes(), 16);
    /// assert_eq!(SimdLevel::Neon.lanes(), 4);
    /// assert!(SimdLevel::Scalar.lanes() >= 1);
    /// ```
    pub const fn lanes(self) -> usize {
        match self {
            SimdLevel::Scalar => scalar::Scalar::LANES,
            SimdLevel::Avx2 => 8,
            SimdLevel::Avx512 => 16,
            SimdLevel::Neon => 4,
        }
    }

    /// The micro-kernel tile `(rows, columns)` of the matrix product at this
    /// level (`MR x NR`): the unit of most blocking sizes in [`crate::Tiles`].
    ///
    /// AVX2 multiplies 6 rows by 16 columns (two 8-lane vectors) at a time, and
    /// the smallest tiles of a level are one micro-tile ([`crate::Tiles::smallest`]):
    ///
    /// ```
    /// use brt_cpu::{SimdLevel, Tiles};
    ///
    /// assert_eq!(SimdLevel::Avx2.micro_tile(), (6, 16));
    /// for level in SimdLevel::ALL {
    ///     let (mr, nr) = level.micro_tile();
    ///     let tiles = Tiles::smallest(level);
    ///     assert_eq!((tiles.gemm_mc, tiles.gemm_nc), (mr, nr));
    /// }
    /// ```
    pub const fn micro_tile(self) -> (usize, usize) {
        match self {
            SimdLevel::Scalar => (scalar::Scalar::MR, scalar::Scalar::NR),
            SimdLevel::Avx2 => (6, 16),
            SimdLevel::Avx512 => (12, 32),
            SimdLevel::Neon => (8, 12),
        }
    }

    /// Runs `task` compiled for this level.
    ///
    /// Callers only hold levels that passed [`SimdLevel::is_supported`] (the backend
    /// checks at construction), which is what makes the entries below sound.
    #[inline]
    pub(crate) fn dispatch<T: WithSimd>(self, task: T) -> T::Output {
        match self {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: a `Cpu` only stores a level that `is_supported` confirmed, so
            // the CPU has AVX2, FMA and F16C.
            SimdLevel::Avx2 => unsafe { avx2::entry(task) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above, the CPU has AVX-512F and the AVX2 set.
            SimdLevel::Avx512 => unsafe { avx512::entry(task) },
            #[cfg(target_arch = "aarch64")]
            // SAFETY: NEON is enabled for the compilation target (checked by
            // `is_supported`).
            SimdLevel::Neon => unsafe { neon::entry(task) },
            _ => task.with::<Scalar>(),
        }
    }
}

impl core::fmt::Display for SimdLevel {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(all(target_arch = "x86_64", feature = "std"))]
fn x86_has_avx2() -> bool {
    std::is_x86_feature_detected!("avx2")
        && std::is_x86_feature_detected!("fma")
        && std::is_x86_feature_detected!("f16c")
}

#[cfg(all(target_arch = "x86_64", feature = "std"))]
fn x86_has_avx512() -> bool {
    std::is_x86_feature_detected!("avx512f")
}

#[cfg(all(target_arch = "x86_64", not(feature = "std")))]
fn x86_has_avx2() -> bool {
    cpuid::features().avx2
}

#[cfg(all(target_arch = "x86_64", not(feature = "std")))]
fn x86_has_avx512() -> bool {
    cpuid::features().avx512
}

#[cfg(target_arch = "x86_64")]
fn half_width_avx512() -> bool {
    cpuid::amd_family().is_some_and(|family| family <= 0x19)
}

#[cfg(not(target_arch = "x86_64"))]
fn half_width_avx512() -> bool {
    false
}

#[cfg(not(target_arch = "x86_64"))]
fn x86_has_avx2() -> bool {
    false
}

#[cfg(not(target_arch = "x86_64"))]
fn x86_has_avx512() -> bool {
    false
}

/// A body generic over the instruction set; implementations mark `with` as
/// `#[inline(always)]` so that it is compiled inside the level's entry.
pub(crate) trait WithSimd {
    /// What the body returns.
    type Output;
    /// Runs the body with lane operations `S`.
    fn with<S: Simd>(self) -> Self::Output;
}

/// How the micro-kernel writes its tile into the destination.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Epilogue {
    /// Scale of the product.
    pub alpha: f32,
    /// Add to what the destination holds instead of overwriting it.
    pub accumulate: bool,
    /// Clamp the result at zero (the last partial sum of a ReLU product).
    pub relu: bool,
}

/// Lane operations of one instruction set.
///
/// # Safety of the methods
/// Every method is `unsafe` because it may only run on a CPU with the level's
/// features (guaranteed by dispatch), and the pointer methods additionally read or
/// write `LANES` elements (the micro-kernel `MR*kc`, `NR*kc` and an `MR x NR` tile),
/// which the caller must make valid.
pub(crate) trait Simd: Copy {
    /// f32 lanes per vector.
    const LANES: usize;
    /// Rows of the matrix-product micro-tile.
    const MR: usize;
    /// Columns of the matrix-product micro-tile (a multiple of `LANES`).
    const NR: usize;
    /// A vector register.
    type V: Copy;

    /// All lanes zero.
    unsafe fn zero() -> Self::V;
    /// All lanes `x`.
    unsafe fn splat(x: f32) -> Self::V;
    /// Loads `LANES` values (no alignment needed).
    unsafe fn load(p: *const f32) -> Self::V;
    /// Stores `LANES` values (no alignment needed).
    unsafe fn store(p: *mut f32, v: Self::V);
    /// Loads `LANES` f16 values widened to f32.
    unsafe fn load_f16(p: *const u16) -> Self::V;
    /// Loads `LANES` bf16 values widened to f32.
    unsafe fn load_bf16(p: *const u16) -> Self::V;
    /// One f16 (given as its bits) widened to f32 in every lane (a Q8_0 block's
    /// scale). Software conversion unless the level has an instruction for it.
    #[inline(always)]
    unsafe fn splat_f16(bits: u16) -> Self::V {
        // SAFETY: forwarded contract (`splat` has no requirement beyond the level).
        unsafe { Self::splat(half::f16::from_bits(bits).to_f32()) }
    }
    /// The dot product of one Q8_0 block's 32 quants `w` (any byte, as a file
    /// may hold -128) with 32 quantized inputs `x` (each in -127..=127,
    /// `quantize_activations` clamps them), in exact integer arithmetic, returned as
    /// partial sums in the lanes (their total is the dot product; every partial
    /// sum is below 2^24, so exact in f32).
    unsafe fn dot_q8(w: *const i8, x: *const i8) -> Self::V;
    /// `a + b`.
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    /// `a - b`.
    unsafe fn sub(a: Self::V, b: Self::V) -> Self::V;
    /// `a * b`.
    unsafe fn mul(a: Self::V, b: Self::V) -> Self::V;
    /// `a * b + c` (fused where the level has it).
    unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// Lane-wise maximum.
    unsafe fn max(a: Self::V, b: Self::V) -> Self::V;
    /// `exp(x)` lane-wise, for `x <= 88`; exactly 0 below about -87.3 and for -inf.
    unsafe fn exp(x: Self::V) -> Self::V;
    /// Sum of the lanes.
    unsafe fn hsum(v: Self::V) -> f32;
    /// Maximum of the lanes.
    unsafe fn hmax(v: Self::V) -> f32;
    /// Four rows laid side by side, the transpose at the heart of packing:
    /// `dst[p*stride + r] = rows[r][p]` for `r < 4`, `p < len`. Plain copies
    /// here; levels with shuffles transpose in registers (the compiler's own
    /// vectorisation of the copies is a scatter, a few times slower).
    ///
    /// # Safety
    /// Each row must be valid for `len` reads and `dst` for writes at every
    /// `p*stride + r` above; the CPU must support the level.
    #[inline(always)]
    unsafe fn transpose4(rows: [*const f32; 4], len: usize, dst: *mut f32, stride: usize) {
        // SAFETY: forwarded contract.
        unsafe { transpose4_copies(rows, 0..len, dst, stride) }
    }
    /// The square root of one value. On x86-64, `libm::sqrtf` is an `sqrtss`
    /// in the legacy SSE encoding (inline assembly), which inside AVX code waits
    /// for the vector registers' upper halves: the levels there use the VEX form.
    #[inline(always)]
    unsafe fn sqrt1(x: f32) -> f32 {
        libm::sqrtf(x)
    }
    /// Hints that the cache line holding `p` will be read soon (nothing where
    /// the level has no such hint).
    ///
    /// # Safety
    /// The CPU must support the level (the hint itself reads nothing: any
    /// address is allowed).
    #[inline(always)]
    unsafe fn prefetch(p: *const f32) {
        let _ = p;
    }
    /// Stores `LANES` values past the caches where the level can (a streaming,
    /// non-temporal store): for data nothing reads soon, whose cache lines
    /// would otherwise be read from memory first only to be overwritten, and
    /// would evict data that is read soon. A plain store elsewhere.
    ///
    /// # Safety
    /// `p` must be valid for `LANES` writes and aligned to `LANES` values; the
    /// CPU must support the level. Streaming stores are weakly ordered: the
    /// thread that made them must run [`Simd::stream_fence`] before another
    /// thread may read what they wrote.
    #[inline(always)]
    unsafe fn stream(p: *mut f32, v: Self::V) {
        // SAFETY: forwarded contract (`store` needs less).
        unsafe { Self::store(p, v) }
    }
    /// Orders this thread's earlier streaming stores before its later stores (so
    /// a signal that the work is done is seen after the data). Nothing where
    /// [`Simd::stream`] is a plain store.
    ///
    /// # Safety
    /// The CPU must support the level.
    #[inline(always)]
    unsafe fn stream_fence() {}
    /// The micro-kernel: `C[MR x NR] (op)= alpha * A_panel . B_panel` over `kc`
    /// steps, `A_panel` packed `kc x MR`, `B_panel` packed `kc x NR`, `C` with row
    /// stride `ldc`.
    unsafe fn micro(kc: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, ep: Epilogue);
}

/// [`Simd::transpose4`] value by value, over the steps `steps`.
///
/// # Safety
/// As [`Simd::transpose4`] with `len = steps.end`.
#[inline(always)]
pub(crate) unsafe fn transpose4_copies(
    rows: [*const f32; 4],
    steps: core::ops::Range<usize>,
    dst: *mut f32,
    stride: usize,
) {
    for p in steps {
        for (r, row) in rows.iter().enumerate() {
            // SAFETY: the caller's contract: `p < len`, `r < 4`.
            unsafe { *dst.add(p * stride + r) = *row.add(p) };
        }
    }
}

/// The micro-kernel body shared by every level: `MR` rows by `NV` vectors.
///
/// # Safety
/// `a` must be valid for `kc*MR` reads, `b` for `kc*NV*LANES` reads and `c` for an
/// `MR x NV*LANES` tile with row stride `ldc`; the CPU must support `S`.
#[inline(always)]
pub(crate) unsafe fn micro_generic<S: Simd, const MR: usize, const NV: usize>(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    ep: Epilogue,
) {
    // SAFETY: the caller guarantees the level and every extent used below.
    unsafe {
        prefetch_tile::<S>(c, ldc, MR, NV * S::LANES);
        let mut acc = [[S::zero(); NV]; MR];
        let mut ap = a;
        let mut bp = b;
        for _ in 0..kc {
            let mut bv = [S::zero(); NV];
            for (v, slot) in bv.iter_mut().enumerate() {
                *slot = S::load(bp.add(v * S::LANES));
            }
            for (i, row) in acc.iter_mut().enumerate() {
                let av = S::splat(*ap.add(i));
                for (slot, &bvv) in row.iter_mut().zip(bv.iter()) {
                    *slot = S::fma(av, bvv, *slot);
                }
            }
            ap = ap.add(MR);
            bp = bp.add(NV * S::LANES);
        }
        let alpha = S::splat(ep.alpha);
        let zero = S::zero();
        for (i, row) in acc.iter().enumerate() {
            let crow = c.add(i * ldc);
            for (v, &value) in row.iter().enumerate() {
                let p = crow.add(v * S::LANES);
                let mut r = S::mul(alpha, value);
                if ep.accumulate {
                    r = S::add(r, S::load(p));
                }
                if ep.relu {
                    r = S::max(r, zero);
                }
                S::store(p, r);
            }
        }
    }
}

/// f32 values in a cache line (64 bytes on every CPU the levels run on): the
/// unit of the prefetches.
pub(crate) const LINE_F32S: usize = 64 / core::mem::size_of::<f32>();

/// Asks for the cache lines of the `rows x cols` tile of `C` at `c` (row stride
/// `ldc`) before the micro-kernel's steps, so that its stores at the end find them
/// nearer than memory. Where `C` is larger than the caches (a `2048 x 1024`
/// product's output is 8 MiB), every line of a tile was a miss: the stores took
/// 10% of the products' time in `small` training, 6.6% with this (`perf
/// annotate`); `small` training 2.4% faster, forward at batch 8 5% (medians of
/// five and four interleaved runs, AVX-512).
///
/// # Safety
/// None to the memory (a prefetch reads nothing and never faults); the CPU must
/// support `S`.
#[inline(always)]
unsafe fn prefetch_tile<S: Simd>(c: *const f32, ldc: usize, rows: usize, cols: usize) {
    for i in 0..rows {
        for j in (0..cols).step_by(LINE_F32S) {
            // SAFETY: a hint; the address is computed with wrapping arithmetic, so
            // nothing is claimed about it.
            unsafe { S::prefetch(c.wrapping_add(i * ldc + j)) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct TileOf;
    impl WithSimd for TileOf {
        type Output = (usize, usize, usize);
        #[inline(always)]
        fn with<S: Simd>(self) -> (usize, usize, usize) {
            (S::MR, S::NR, S::LANES)
        }
    }

    #[test]
    fn the_constant_tables_match_the_compiled_levels() {
        for level in SimdLevel::available() {
            let (mr, nr) = level.micro_tile();
            assert_eq!(level.dispatch(TileOf), (mr, nr, level.lanes()), "{level}");
        }
    }
}
