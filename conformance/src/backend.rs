//! How a backend joins the suite: a factory type implementing [`Backend`], and
//! the skip rules for backends that need a device.

use brt_core::{ByteLayout, CoreError, Kernels, Reference, Storage, WeightData, WeightDtype, WeightLayout};
use brt_cpu::{Heap, SharedBytes};
use std::io::Write;
use std::sync::{Mutex, OnceLock};

/// Why a backend cannot run here: no device (no GPU, no driver, no CUDA
/// library), or a CPU without the SIMD level a factory forces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skip {
    /// The reason, in words a person can act on.
    pub reason: String,
    /// A missing device (which `BRT_REQUIRE_GPU=1` makes a failure), not a
    /// missing SIMD level (which `BRT_REQUIRE_SIMD` governs where the factory
    /// decides to skip).
    pub device: bool,
}

impl Skip {
    /// A missing device, for `reason`.
    pub fn new(reason: impl Into<String>) -> Skip {
        Skip { reason: reason.into(), device: true }
    }

    /// A SIMD level this CPU lacks, for `reason`: still a skip under
    /// `BRT_REQUIRE_GPU=1`, so that a GPU check runs every test binary whole on
    /// any CPU (the NEON factories on x86-64, the AVX ones on ARM).
    pub fn missing_level(reason: impl Into<String>) -> Skip {
        Skip { reason: reason.into(), device: false }
    }
}

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

/// A backend under test: how to make its kernels and how to read its errors.
///
/// A backend joins the suite with one line, `conformance::suite!(name, Factory);`,
/// where `Factory` implements this trait. A GPU backend builds its device once per
/// test binary (see [`shared_device`]) and returns a [`Skip`] when there is none.
pub trait Backend {
    /// The kernels under test.
    type Kernels: Kernels;

    /// A short name for messages ("cpu", "wgpu/vulkan", ...).
    const NAME: &'static str;

    /// A fresh kernel set (sharing the device with earlier ones), or why there is
    /// none on this machine.
    fn create() -> Result<Self::Kernels, Skip>;

    /// How the backend stores model parameters in the suite. The suite rounds every
    /// generated parameter to this type before handing it to the reference, so only
    /// the computation is compared; the tolerance column follows from it.
    fn weight_dtype() -> WeightDtype {
        WeightDtype::F32
    }

    /// The core error inside one of the backend's errors, if it is one; the error
    /// path checks use it to see that the *right* error came back.
    fn core_error(error: &<Self::Kernels as Storage>::Error) -> Option<CoreError>;

    /// The parameter buffer of a Q8_0 model (see `brt_core::encoding`) from its
    /// tensor data `data`, laid out as `layout` says, the way the backend reads
    /// such a model, or `None` when it does not read Q8_0: the suite then checks
    /// that it refuses them (`alloc_weights` fails).
    fn q8_0_weights(
        _k: &mut Self::Kernels,
        _layout: &ByteLayout,
        _data: &TensorData,
    ) -> Option<WeightsResult<Self::Kernels>> {
        None
    }
}

/// A parameter buffer of `K`, or its error.
pub type WeightsResult<K> = Result<<K as Storage>::Weights, <K as Storage>::Error>;

/// A model's tensor data at an address aligned to 8 bytes (as a mapped file or
/// `brt_gguf::include_model!` places it), shared cheaply.
#[derive(Clone, Debug)]
pub struct TensorData {
    words: std::sync::Arc<Vec<u64>>,
    len: usize,
}

impl TensorData {
    /// `weights` (canonical layout) encoded as `layout` says.
    pub fn encode(layout: &ByteLayout, weights: WeightData<'_>) -> Result<TensorData, CoreError> {
        let mut words = vec![0u64; layout.len().div_ceil(8)];
        layout.encode(weights, &mut bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..layout.len()])?;
        Ok(TensorData { words: std::sync::Arc::new(words), len: layout.len() })
    }

    /// The values the data stands for, in the canonical layout.
    pub fn decode(&self, layout: &ByteLayout) -> Result<Vec<f32>, CoreError> {
        let mut values = vec![0f32; WeightLayout::new(layout.layout().config())?.len()];
        layout.decode(self.as_ref(), &mut values)?;
        Ok(values)
    }
}

impl AsRef<[u8]> for TensorData {
    fn as_ref(&self) -> &[u8] {
        &bytemuck::cast_slice::<u64, u8>(&self.words)[..self.len]
    }
}

/// The scalar reference kernels on the heap: the oracle itself. It must pass the
/// suite against itself; this also runs every property on the reference.
#[derive(Debug)]
pub struct ReferenceBackend;

impl Backend for ReferenceBackend {
    type Kernels = Reference<Heap>;
    const NAME: &'static str = "reference";

    fn create() -> Result<Reference<Heap>, Skip> {
        Ok(Reference::new(Heap))
    }

    fn core_error(error: &CoreError) -> Option<CoreError> {
        Some(*error)
    }

    /// Used where they lie, each value decoded exactly as it is read.
    fn q8_0_weights(
        k: &mut Reference<Heap>,
        layout: &ByteLayout,
        data: &TensorData,
    ) -> Option<WeightsResult<Reference<Heap>>> {
        Some(k.weights_in_place(SharedBytes::new(data.clone()), layout))
    }
}

/// Whether `BRT_REQUIRE_GPU=1` is set: a missing device is then a failure.
pub fn gpu_required() -> bool {
    brt_core::requires_gpu(std::env::var(brt_core::REQUIRE_GPU_VAR).ok().as_deref())
}

/// Builds a device once per test binary and hands out clones of it.
///
/// `init` runs at most once; its error becomes a [`Skip`] for every test of the
/// binary. `T` is typically an `Arc` around the device and its queues.
pub fn shared_device<T: Clone>(
    cell: &'static OnceLock<Result<T, String>>,
    init: impl FnOnce() -> Result<T, String>,
) -> Result<T, Skip> {
    cell.get_or_init(init).clone().map_err(Skip::new)
}

/// Names of backends whose skip was already announced (once per binary each).
static ANNOUNCED: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());

/// Reports a skip: a missing device is a failure under `BRT_REQUIRE_GPU=1`;
/// otherwise a loud line on the process's standard error (written past the test
/// harness's capture, once per backend and binary).
///
/// # Panics
///
/// Panics (fails the calling test) for a missing device when `BRT_REQUIRE_GPU=1`.
pub fn report_skip(backend: &'static str, check: &str, skip: &Skip) {
    if skip.device && gpu_required() {
        panic!("backend `{backend}` is required (BRT_REQUIRE_GPU=1) but cannot run check `{check}`: {skip}");
    }
    let first = match ANNOUNCED.lock() {
        Ok(mut seen) if !seen.contains(&backend) => {
            seen.push(backend);
            true
        }
        Ok(_) => false,
        // A test that panicked while holding the lock: announce again rather than hide.
        Err(_) => true,
    };
    if first {
        // `std::io::stderr()` is not captured by libtest, so the skip is always seen.
        // A missing level's reason names its own variable (`BRT_REQUIRE_SIMD`).
        let how_to_fail = if skip.device { "; BRT_REQUIRE_GPU=1 makes every missing device a failure" } else { "" };
        let _ = writeln!(
            std::io::stderr(),
            "\n*** conformance: SKIPPING every check of backend `{backend}`: {skip}\n\
             *** (these tests pass vacuously{how_to_fail})\n"
        );
    }
}
