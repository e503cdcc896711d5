//! The CPU backend's error.

use crate::SimdLevel;
use brt_core::CoreError;
use core::fmt;

/// Everything that can go wrong in the CPU backend.
///
/// The core's errors convert into [`CpuError::Core`], a backend cannot run on
/// no thread, Q8_0 parameters cannot be allocated, and every error says what
/// went wrong when printed:
///
/// ```
/// use brt_core::{CoreError, Storage, WeightDtype};
/// use brt_cpu::{Cpu, CpuError, Heap, Options, SimdLevel, Tiles};
///
/// let core = CoreError::SizeOverflow { what: "test" };
/// assert_eq!(CpuError::from(core), CpuError::Core(core));
///
/// let tiles = Tiles { gemm_kc: 0, ..Tiles::smallest(SimdLevel::Scalar) };
/// let options = Options { level: Some(SimdLevel::Scalar), tiles: Some(tiles), ..Options::default() };
/// let err = options.scratch_len().unwrap_err();
/// assert!(matches!(err, CpuError::Tile { what: "gemm_kc", value: 0, level: SimdLevel::Scalar, .. }));
/// assert!(err.to_string().contains("gemm_kc"));
///
/// let none = Cpu::with_options(Heap, Options::threads(0)).unwrap_err();
/// assert!(matches!(none, CpuError::Threads { requested: 0, .. }));
/// let mut k = Cpu::with_level(Heap, SimdLevel::Scalar).unwrap();
/// assert_eq!(k.alloc_weights(32, WeightDtype::Q8_0).unwrap_err(), CpuError::QuantizedNeedsFile);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuError {
    /// An error of the core (bad shape, buffer too small, out of memory, ...).
    Core(CoreError),
    /// A SIMD level was forced that this CPU (or this build) cannot run.
    UnsupportedLevel {
        /// The level asked for.
        level: SimdLevel,
    },
    /// The thread count cannot be honoured.
    Threads {
        /// Threads (or tasks) asked for.
        requested: usize,
        /// Why not.
        what: &'static str,
    },
    /// A kernel call needs more of the backend's own scratch than it was built with.
    Capacity {
        /// Which limit.
        what: &'static str,
        /// The value the call needs.
        needed: usize,
        /// The limit set at construction.
        limit: usize,
    },
    /// A blocking size of [`crate::Tiles`] does not suit the SIMD level in use.
    Tile {
        /// Which size (the field of `Tiles`).
        what: &'static str,
        /// The value asked for.
        value: usize,
        /// It must be a positive multiple of this at `level`.
        multiple_of: usize,
        /// And at most this.
        max: usize,
        /// The level the tiles were checked for.
        level: SimdLevel,
    },
    /// A kernel task panicked on a worker thread (a bug; the pool survives).
    WorkerPanicked,
    /// Parameters used in place (flash, a mapped file) were to be written.
    ReadOnlyWeights,
    /// Bytes to use in place are not a whole number of values or not aligned for
    /// their type.
    MisalignedWeights {
        /// Bytes per value of the type.
        size: usize,
    },
    /// Q8_0 parameters were to be allocated and written value by value; they
    /// are only read where they lie, from a model file's tensor data.
    QuantizedNeedsFile,
}

impl From<CoreError> for CpuError {
    fn from(e: CoreError) -> Self {
        CpuError::Core(e)
    }
}

impl fmt::Display for CpuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            CpuError::Core(e) => e.fmt(f),
            CpuError::UnsupportedLevel { level } => {
                write!(f, "SIMD level `{level}` is not supported by this CPU or build; supported here: {}", Supported)
            }
            CpuError::Threads { requested, what } => write!(f, "cannot use {requested} threads: {what}"),
            CpuError::Capacity { what, needed, limit } => write!(
                f,
                "{what} is {needed}, above the CPU backend's limit of {limit}; construct it with larger `Options`"
            ),
            CpuError::ReadOnlyWeights => f.write_str(
                "the parameters are used in place (a mapped or built-in file) and are read-only; load them into \
                 memory to change them",
            ),
            CpuError::MisalignedWeights { size } => write!(
                f,
                "weights to use in place must be a whole number of {size}-byte values at an address that is a \
                 multiple of {size}, on a little-endian machine"
            ),
            CpuError::QuantizedNeedsFile => f.write_str(
                "q8_0 weights are used where they lie, from a model file's tensor data (`Cpu::weights_in_place`); \
                 write the file with `brt convert --dtype q8_0`",
            ),
            CpuError::Tile { what, value, multiple_of, max, level } => write!(
                f,
                "`Tiles::{what}` is {value}, but at SIMD level `{level}` it must be a multiple of {multiple_of} \
                 from {multiple_of} to {max}; start from `Tiles::default_for(SimdLevel::{level:?})` or `Tiles::smallest(SimdLevel::{level:?})`"
            ),
            CpuError::WorkerPanicked => {
                write!(f, "a CPU kernel task panicked on a worker thread (a bug in brt-cpu; please report it)")
            }
        }
    }
}

/// Lists the supported levels.
struct Supported;
impl fmt::Display for Supported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, level) in SimdLevel::available().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(level.name())?;
        }
        Ok(())
    }
}

impl core::error::Error for CpuError {}
