//! The kernels' blocking sizes ([`Tiles`]): they decide how much scratch each
//! thread takes from the backend's memory, and so how small a machine the
//! backend fits.

use crate::{CpuError, SimdLevel};

/// The blocking sizes of the CPU kernels, which decide the backend's own scratch
/// ([`crate::Options::scratch_len`]).
///
/// Sizes count rows, columns or tokens, not bytes. Most must be multiples of the
/// level's micro-tile ([`SimdLevel::micro_tile`], `MR x NR`) or of its vector
/// width ([`SimdLevel::lanes`]), so a set of tiles belongs to one level:
/// start from [`Tiles::default_for`] (the fastest, a few MiB per thread) or
/// [`Tiles::smallest`] (a few KiB per thread for small heads) of the level the
/// backend will run, and [`Tiles::check`] says what is wrong with any other.
///
/// The blocking changes the order in which sums are rounded (the products'
/// inner-dimension blocks, the online softmax's key tiles, the linear
/// attention's chunks), so results differ across tiles by rounding only; for
/// given tiles they are the same from run to run and across thread counts.
///
/// Smaller tiles take less scratch; a size that is not a multiple of its unit
/// is refused:
///
/// ```
/// use brt_cpu::{Cpu, CpuError, Heap, Options, SimdLevel, Tiles};
///
/// let level = SimdLevel::Scalar;
/// let small = Tiles { gemm_kc: 64, ..Tiles::smallest(level) };
/// assert_eq!(small.check(level), Ok(()));
/// let options = |tiles| Options { level: Some(level), tiles: Some(tiles), ..Options::default() };
/// let default_len = options(Tiles::default_for(level)).scratch_len()?;
/// assert!(options(small).scratch_len()? < default_len);
///
/// let k = Cpu::with_options(Heap, options(small))?;
/// assert_eq!(k.tiles(), small);
///
/// let (mr, _) = level.micro_tile();
/// let odd = Tiles { gemm_mc: mr + 1, ..small };
/// assert!(matches!(odd.check(level), Err(CpuError::Tile { what: "gemm_mc", .. })));
/// # Ok::<(), CpuError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tiles {
    /// Products: steps of the inner dimension per packed block (`kc`); any value
    /// from 1. Scratch: `(gemm_mc + gemm_nc) * gemm_kc`.
    pub gemm_kc: usize,
    /// Products: rows of the left operand per packed block (`mc`); a multiple of
    /// the micro-tile rows `MR`.
    pub gemm_mc: usize,
    /// Products: columns of the right operand per packed block (`nc`); a
    /// multiple of the micro-tile columns `NR`.
    pub gemm_nc: usize,
    /// Products of at most four rows (one token per call): output columns
    /// accumulated at once; a multiple of the level's lanes. Scratch: `4 *
    /// gemv_columns`. It does not change any result.
    pub gemv_columns: usize,
    /// Attention: queries per task; a multiple of `MR`.
    pub attention_queries: usize,
    /// Attention: keys per tile of the online softmax; a multiple of `NR`.
    pub attention_keys: usize,
    /// Attention backward: queries per tile; a multiple of `MR`.
    pub backward_queries: usize,
    /// Attention backward: keys per tile; a multiple of `NR`.
    pub backward_keys: usize,
    /// Attention backward: key tiles whose scores the first sweep keeps for the
    /// second (when a query tile sees no more, the second sweep skips two
    /// products); at least 1.
    pub backward_cached_tiles: usize,
    /// Linear attention, forward and backward: tokens per chunk; at least 1.
    pub linear_chunk: usize,
}

impl Tiles {
    /// The largest value of any size (it keeps every scratch formula far from
    /// overflowing).
    ///
    /// A size above it is refused even when it is a multiple of its unit:
    ///
    /// ```
    /// use brt_cpu::{CpuError, SimdLevel, Tiles};
    ///
    /// let level = SimdLevel::Scalar;
    /// let tiles = Tiles { gemm_kc: Tiles::MAX, ..Tiles::smallest(level) };
    /// assert_eq!(tiles.check(level), Ok(()));
    /// let tiles = Tiles { gemm_kc: Tiles::MAX + 1, ..tiles };
    /// assert!(matches!(tiles.check(level), Err(CpuError::Tile { what: "gemm_kc", max: Tiles::MAX, .. })));
    /// ```
    pub const MAX: usize = 1 << 16;

    /// The fastest tiles at `level`, the backend's defaults.
    ///
    /// Products: 256 steps of the inner dimension per block (a `B` panel of 16 KiB
    /// with AVX2, half the L1), 512 with AVX-512's 32 columns (a 64 KiB panel, more
    /// than the 48 KiB L1 of an Intel Xeon, whose L2 streams it fast enough, and
    /// `C` is read and written half as often: with 256 steps `paper`'s largest
    /// product ran 4% slower there, its forward 296 against 342 tokens/s and
    /// `small`'s training 3.5% slower; with 128, 15 to 25% slower still), 144 rows
    /// of `A` per block (L2), 4096 columns per packed `B` block (L3; fewer passes
    /// over `A` and `C` than 1024 columns). Few-row products: 4096 columns (each
    /// weight row read in runs of 8 KiB of f16; runs of 512 columns read the
    /// paper model's weights at half the rate).
    /// Attention: 192 queries per task, keys in tiles of 384 (each task packs
    /// the keys and values its queries see, so a task of 96 queries packed a
    /// 512-token window's keys 6.3 times over; with AVX-512 `cargo bench -p
    /// brt-cpu --bench kernels -- attention` took 44.4 ms for `paper`'s window
    /// against 49.4 at 96 by 192 and 314 us for `small`'s against 372, with AVX2
    /// 586 us against 633-642; 288 queries gained nothing more). Its backward:
    /// 96 queries by 192 keys, keeping up to 4 key tiles between its sweeps (a
    /// query tile then sees a 64-token window's 159 keys in one tile; at 48
    /// queries and 96 keys, in two of which the second held 15 keys, `small`'s
    /// window backward took 9.1 ms against 7.6 and `paper`'s 37.5 against 33.9
    /// with AVX-512: `cargo bench -p brt-cpu --bench backward`; 192 by 192 or
    /// 192 by 384 ran `paper`'s 4-7% faster but `small`'s 5-12% slower).
    /// Linear attention: chunks of 64 tokens.
    /// About 4.1 MiB per thread with AVX2, 8.3 MiB with AVX-512 (the products'
    /// packing buffers; the attention's, for heads up to the default 256 wide,
    /// is 1.4 MiB).
    ///
    /// They are what a backend uses when [`crate::Options::tiles`] is `None`, and
    /// suit their level:
    ///
    /// ```
    /// use brt_cpu::{Cpu, Heap, SimdLevel, Tiles};
    ///
    /// let tiles = Tiles::default_for(SimdLevel::Scalar);
    /// assert_eq!(tiles.check(SimdLevel::Scalar), Ok(()));
    /// assert_eq!((tiles.attention_queries, tiles.attention_keys, tiles.linear_chunk), (192, 384, 64));
    /// // A packed `B` panel (`kc x NR` f32 values) takes at most 16 KiB (AVX2).
    /// let (_, nr) = SimdLevel::Avx2.micro_tile();
    /// assert!(Tiles::default_for(SimdLevel::Avx2).gemm_kc * nr * 4 <= 16 * 1024);
    ///
    /// let k = Cpu::with_level(Heap, SimdLevel::Scalar).unwrap();
    /// assert_eq!(k.tiles(), tiles);
    /// ```
    pub const fn default_for(level: SimdLevel) -> Tiles {
        let (kc, mc, nc) = Tiles::default_gemm(level.micro_tile());
        Tiles {
            gemm_kc: kc,
            gemm_mc: mc,
            gemm_nc: nc,
            gemv_columns: 4096,
            attention_queries: 192,
            attention_keys: 384,
            backward_queries: 96,
            backward_keys: 192,
            backward_cached_tiles: 4,
            linear_chunk: 64,
        }
    }

    /// The default `(gemm_kc, gemm_mc, gemm_nc)` for micro-tile `(mr, nr)`: twice
    /// the steps for the widest tile (AVX-512's 32 columns; measured only there:
    /// with AVX2 on the same Xeon 512 steps ran `paper` 9% faster too, but a 32 KiB
    /// panel would fill the L1 of the AMD machines that level runs on).
    pub(crate) const fn default_gemm((mr, nr): (usize, usize)) -> (usize, usize, usize) {
        let kc = if nr >= 32 { 512 } else { 256 };
        (kc, 144usize.div_ceil(mr) * mr, 4096 / nr * nr)
    }

    /// The least scratch at `level`: every size at its minimum (one micro-tile,
    /// one vector, one step, one token).
    ///
    /// The attentions' scratch then dominates (a few head widths per key of a
    /// tile), so a larger `gemm_kc` costs nothing until `(gemm_mc + gemm_nc) *
    /// gemm_kc` reaches it, and makes products with many rows much faster: one
    /// step per block is the slowest possible product.
    ///
    /// Each size is one unit of its rule, so the tiles suit their level:
    ///
    /// ```
    /// use brt_cpu::{SimdLevel, Tiles};
    ///
    /// for level in SimdLevel::ALL {
    ///     let tiles = Tiles::smallest(level);
    ///     assert_eq!(tiles.check(level), Ok(()));
    ///     assert_eq!((tiles.gemm_kc, tiles.linear_chunk, tiles.backward_cached_tiles), (1, 1, 1));
    ///     assert_eq!(tiles.gemv_columns, level.lanes());
    ///     assert_eq!((tiles.attention_queries, tiles.attention_keys), level.micro_tile());
    ///     assert_eq!((tiles.backward_queries, tiles.backward_keys), level.micro_tile());
    /// }
    /// ```
    pub const fn smallest(level: SimdLevel) -> Tiles {
        let (mr, nr) = level.micro_tile();
        Tiles {
            gemm_kc: 1,
            gemm_mc: mr,
            gemm_nc: nr,
            gemv_columns: level.lanes(),
            attention_queries: mr,
            attention_keys: nr,
            backward_queries: mr,
            backward_keys: nr,
            backward_cached_tiles: 1,
            linear_chunk: 1,
        }
    }

    /// Every size with the multiple it must be of at `level`.
    fn rules(&self, level: SimdLevel) -> [(&'static str, usize, usize); 10] {
        let (mr, nr) = level.micro_tile();
        [
            ("gemm_kc", self.gemm_kc, 1),
            ("gemm_mc", self.gemm_mc, mr),
            ("gemm_nc", self.gemm_nc, nr),
            ("gemv_columns", self.gemv_columns, level.lanes()),
            ("attention_queries", self.attention_queries, mr),
            ("attention_keys", self.attention_keys, nr),
            ("backward_queries", self.backward_queries, mr),
            ("backward_keys", self.backward_keys, nr),
            ("backward_cached_tiles", self.backward_cached_tiles, 1),
            ("linear_chunk", self.linear_chunk, 1),
        ]
    }

    /// Whether these tiles suit `level`: each size a positive multiple of its
    /// unit (see the fields) and at most [`Tiles::MAX`]. The error names the
    /// first size that is not.
    ///
    /// Zero is never a positive multiple, and the error names the field:
    ///
    /// ```
    /// use brt_cpu::{CpuError, SimdLevel, Tiles};
    ///
    /// let level = SimdLevel::Scalar;
    /// assert_eq!(Tiles::default_for(level).check(level), Ok(()));
    /// let tiles = Tiles { linear_chunk: 0, ..Tiles::default_for(level) };
    /// match tiles.check(level) {
    ///     Err(CpuError::Tile { what, value, multiple_of, .. }) => {
    ///         assert_eq!((what, value, multiple_of), ("linear_chunk", 0, 1));
    ///     }
    ///     other => panic!("expected a tile error, got {other:?}"),
    /// }
    /// ```
    pub fn check(&self, level: SimdLevel) -> Result<(), CpuError> {
        for (what, value, multiple_of) in self.rules(level) {
            if value == 0 || value % multiple_of != 0 || value > Tiles::MAX {
                return Err(CpuError::Tile { what, value, multiple_of, max: Tiles::MAX, level });
            }
        }
        Ok(())
    }

    /// f32 values of scratch one thread needs at `level` (tiles checked), for
    /// heads up to `max_head_dim` (at most `Options::MAX_HEAD_DIM`) and
    /// `gradient_sums` values of parameter-gradient sums beside a backward
    /// kernel's own scratch: the largest need of any kernel, forward or backward.
    /// In `u64`: with every input bounded it cannot overflow, even where `usize`
    /// has 32 bits.
    pub(crate) fn per_thread(&self, level: SimdLevel, max_head_dim: usize, gradient_sums: usize) -> u64 {
        let (mr, nr) = level.micro_tile();
        let dh = max_head_dim.max(1);
        let sums = gradient_sums as u64;
        let needs = [
            crate::gemm::scratch_len(self),
            crate::gemv::scratch_len(self),
            crate::attention::scratch_len(self, (mr, nr), dh),
            crate::linear::scratch_len(self.linear_chunk, dh),
            crate::backward::attention_scratch_len(self, (mr, nr), dh).saturating_add(sums),
            crate::backward::linear_scratch_len(self.linear_chunk, dh).saturating_add(sums),
        ];
        needs.into_iter().fold(0, u64::max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_and_the_smallest_tiles_suit_their_level() {
        for level in SimdLevel::ALL {
            assert_eq!(Tiles::default_for(level).check(level), Ok(()), "{level}");
            assert_eq!(Tiles::smallest(level).check(level), Ok(()), "{level}");
        }
        // Today's blocking, exactly: 256 steps at every level but AVX-512's 512.
        let avx2 = Tiles::default_for(SimdLevel::Avx2);
        assert_eq!((avx2.gemm_kc, avx2.gemm_mc, avx2.gemm_nc), (256, 144, 4096));
        let neon = Tiles::default_for(SimdLevel::Neon);
        assert_eq!((neon.gemm_kc, neon.gemm_mc, neon.gemm_nc), (256, 144, 4092));
        let avx512 = Tiles::default_for(SimdLevel::Avx512);
        assert_eq!((avx512.gemm_kc, avx512.gemm_nc), (512, 4096));
    }

    #[test]
    fn bad_tiles_name_the_size_and_its_rule() {
        let level = SimdLevel::Avx2;
        let bad = Tiles { attention_queries: 10, ..Tiles::smallest(level) };
        assert_eq!(
            bad.check(level),
            Err(CpuError::Tile { what: "attention_queries", value: 10, multiple_of: 6, max: Tiles::MAX, level })
        );
        assert!(matches!(
            Tiles { linear_chunk: 0, ..Tiles::smallest(level) }.check(level),
            Err(CpuError::Tile { what: "linear_chunk", .. })
        ));
        assert!(matches!(
            Tiles { gemm_nc: Tiles::MAX + 16, ..Tiles::smallest(level) }.check(level),
            Err(CpuError::Tile { what: "gemm_nc", .. })
        ));
        // AVX2's tiles are not AVX-512's (6 rows are half a micro-tile there).
        assert!(matches!(
            Tiles::smallest(level).check(SimdLevel::Avx512),
            Err(CpuError::Tile { what: "gemm_mc", value: 6, multiple_of: 12, .. })
        ));
    }

    #[test]
    fn the_largest_tiles_stay_far_from_overflow() {
        let level = SimdLevel::Avx512;
        let huge = Tiles {
            gemm_kc: Tiles::MAX,
            gemm_mc: Tiles::MAX / 12 * 12,
            gemm_nc: Tiles::MAX,
            gemv_columns: Tiles::MAX,
            attention_queries: Tiles::MAX / 12 * 12,
            attention_keys: Tiles::MAX,
            backward_queries: Tiles::MAX / 12 * 12,
            backward_keys: Tiles::MAX,
            backward_cached_tiles: Tiles::MAX,
            linear_chunk: Tiles::MAX,
        };
        assert_eq!(huge.check(level), Ok(()));
        assert!(huge.per_thread(level, 1 << 16, 1 << 24) < 1 << 56);
    }
}
