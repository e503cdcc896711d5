//! Backend factories shared by the test binaries (`suite.rs`, `gradients.rs`).
#![allow(dead_code)] // each binary instantiates its own selection

/// The CPU backend at every SIMD level (a level this CPU lacks is skipped with
/// its name), on two threads, with 16-bit weights, with the smallest tiles
/// (scalar, and the fastest level this CPU has), and with other tile shapes that
/// each reach what those cannot.
#[cfg(feature = "cpu")]
pub mod cpu {
    use brt_core::{ByteLayout, CoreError, WeightDtype};
    use brt_cpu::{Cpu, CpuError, CpuWeights, Heap, Options, SharedBytes, SimdLevel, Tiles};
    use conformance::{Backend, Skip, TensorData};

    fn core(e: &CpuError) -> Option<CoreError> {
        match e {
            CpuError::Core(c) => Some(*c),
            _ => None,
        }
    }

    /// Whether a forced `level` runs (`Ok`) or is skipped (`Err`), given whether
    /// this CPU supports it and the value of `BRT_REQUIRE_SIMD` (comma-separated
    /// level names, e.g. `neon` or `avx2,avx512`). A required level that this CPU
    /// lacks is a failure, not a skip, so that a CI job for one architecture
    /// cannot pass with that architecture's suites skipped.
    ///
    /// # Panics
    ///
    /// Panics (fails the test) when `require` names `level` and it is not
    /// supported, and on a name that is not a level (a typo must not turn the
    /// requirement off).
    pub fn level_gate(level: SimdLevel, supported: bool, require: Option<&str>) -> Result<(), Skip> {
        let mut required = false;
        for name in require.unwrap_or("").split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match SimdLevel::from_name(name) {
                Some(l) => required |= l == level,
                None => {
                    panic!("BRT_REQUIRE_SIMD names `{name}`, which is not a SIMD level (scalar, avx2, avx512, neon)")
                }
            }
        }
        match (supported, required) {
            (true, _) => Ok(()),
            (false, true) => panic!("BRT_REQUIRE_SIMD names `{level}`, but this CPU has no {level} instructions"),
            (false, false) => Err(Skip::missing_level(format!(
                "this CPU has no {level} instructions (BRT_REQUIRE_SIMD={level} makes this a failure)"
            ))),
        }
    }

    /// A CPU backend, or a skip when `options` force a level this CPU lacks (a
    /// failure instead when `BRT_REQUIRE_SIMD` names the level; see
    /// [`level_gate`]); any other construction error is a failure.
    fn make(options: Options) -> Result<Cpu<Heap>, Skip> {
        if let Some(level) = options.level {
            level_gate(level, level.is_supported(), std::env::var("BRT_REQUIRE_SIMD").ok().as_deref())?;
        }
        match Cpu::with_options(Heap, options) {
            Ok(k) => Ok(k),
            Err(e) => panic!("the CPU backend failed to start: {e}"),
        }
    }

    macro_rules! factory {
        ($name:ident, $label:literal, $options:expr, $dtype:expr) => {
            pub struct $name;
            impl Backend for $name {
                type Kernels = Cpu<Heap>;
                const NAME: &'static str = $label;
                fn create() -> Result<Cpu<Heap>, Skip> {
                    make($options)
                }
                fn weight_dtype() -> WeightDtype {
                    $dtype
                }
                fn core_error(e: &CpuError) -> Option<CoreError> {
                    core(e)
                }
                /// Used where they lie, as from a model file.
                fn q8_0_weights(
                    k: &mut Cpu<Heap>,
                    layout: &ByteLayout,
                    data: &TensorData,
                ) -> Option<Result<CpuWeights<Heap>, CpuError>> {
                    Some(k.weights_in_place(SharedBytes::new(data.clone()), layout))
                }
            }
        };
    }

    fn level(level: SimdLevel) -> Options {
        Options { level: Some(level), ..Options::default() }
    }

    /// The smallest blocking sizes of `level` (the fastest supported with
    /// `None`): one micro-tile, one vector, one step, one token each, so the
    /// suite's shapes cross every tile boundary of every kernel.
    fn smallest(level: Option<SimdLevel>) -> Options {
        let tiles = Tiles::smallest(level.unwrap_or_else(SimdLevel::detect));
        Options { level, tiles: Some(tiles), ..Options::default() }
    }

    factory!(Scalar, "cpu-scalar", level(SimdLevel::Scalar), WeightDtype::F32);
    factory!(Avx2, "cpu-avx2", level(SimdLevel::Avx2), WeightDtype::F32);
    factory!(Avx512, "cpu-avx512", level(SimdLevel::Avx512), WeightDtype::F32);
    factory!(Neon, "cpu-neon", level(SimdLevel::Neon), WeightDtype::F32);
    factory!(Threads, "cpu-2-threads", Options::threads(2), WeightDtype::F32);
    factory!(Half, "cpu-f16", Options::default(), WeightDtype::F16);
    factory!(Bf16, "cpu-bf16-2-threads", Options::threads(2), WeightDtype::Bf16);
    factory!(F16Threads, "cpu-f16-2-threads", Options::threads(2), WeightDtype::F16);
    // 16-bit weights are widened by level-specific code: each level with each type.
    factory!(ScalarF16, "cpu-scalar-f16", level(SimdLevel::Scalar), WeightDtype::F16);
    factory!(ScalarBf16, "cpu-scalar-bf16", level(SimdLevel::Scalar), WeightDtype::Bf16);
    factory!(Avx2F16, "cpu-avx2-f16", level(SimdLevel::Avx2), WeightDtype::F16);
    factory!(Avx2Bf16, "cpu-avx2-bf16", level(SimdLevel::Avx2), WeightDtype::Bf16);
    factory!(Avx512F16, "cpu-avx512-f16", level(SimdLevel::Avx512), WeightDtype::F16);
    factory!(Avx512Bf16, "cpu-avx512-bf16", level(SimdLevel::Avx512), WeightDtype::Bf16);
    factory!(NeonF16, "cpu-neon-f16", level(SimdLevel::Neon), WeightDtype::F16);
    factory!(NeonBf16, "cpu-neon-bf16", level(SimdLevel::Neon), WeightDtype::Bf16);
    /// The smallest tiles, except attention tiles of 3 x 5 micro-tiles, and the
    /// scratch sized for the widest head the suite draws (32, the q8_0 models'):
    /// the one backend whose largest scratch need is the forward attention's,
    /// exactly what those heads use (at the default tiles the product's block
    /// decides, at the smallest the backward attention's), so the size of that
    /// need is held to account.
    fn attention_tiles() -> Options {
        let level = SimdLevel::detect();
        let (mr, nr) = level.micro_tile();
        let tiles = Tiles { attention_queries: 3 * mr, attention_keys: 5 * nr, ..Tiles::smallest(level) };
        Options { tiles: Some(tiles), max_head_dim: 32, ..Options::default() }
    }

    /// The smallest tiles, except backward query tiles a micro-tile taller than
    /// a key tile (`MR (ceil(NR / MR) + 1)` queries, `NR` keys): a block of
    /// queries then lies wholly after a key tile (with a window, the first one),
    /// which square and wide tiles never make, so what the backward does for
    /// such a block is judged (a zeroing of its rows that lands in other rows
    /// fails here only).
    fn tall_backward_tiles() -> Options {
        let level = SimdLevel::detect();
        let (mr, nr) = level.micro_tile();
        let tiles = Tiles { backward_queries: mr * (nr.div_ceil(mr) + 1), backward_keys: nr, ..Tiles::smallest(level) };
        Options { tiles: Some(tiles), ..Options::default() }
    }

    factory!(SmallestScalar, "cpu-scalar-smallest-tiles", smallest(Some(SimdLevel::Scalar)), WeightDtype::F32);
    factory!(AttentionTiles, "cpu-attention-tiles", attention_tiles(), WeightDtype::F32);
    factory!(Smallest, "cpu-smallest-tiles", smallest(None), WeightDtype::F32);
    factory!(TallBackwardTiles, "cpu-tall-backward-tiles", tall_backward_tiles(), WeightDtype::F32);
}
