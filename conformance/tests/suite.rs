//! The suite for every backend this build enables: the reference always, then
//! each backend behind its cargo feature (`cpu` by default, `wgpu`, `cuda`).
//!
//! A backend joins with a factory (how to make its kernels, how it stores
//! parameters, where its core errors are) and one `conformance::suite!` line; see
//! README.md, "How a backend joins".

use brt_core::{CoreError, WeightDtype};
use conformance::{Backend, Skip};

// The oracle against itself: every check must pass, and the properties,
// determinism and error paths run on the reference too.
conformance::suite!(reference, conformance::ReferenceBackend);

/// The CPU backend at every SIMD level (a level this CPU lacks is skipped with
/// its name), on two threads, and with 16-bit weights.
#[cfg(feature = "cpu")]
mod cpu_factories {
    use super::*;
    use brt_cpu::{Cpu, CpuError, Heap, Options, SimdLevel};

    fn core(e: &CpuError) -> Option<CoreError> {
        match e {
            CpuError::Core(c) => Some(*c),
            _ => None,
        }
    }

    /// A CPU backend, or a skip when `options` force a level this CPU lacks (any
    /// other construction error is a failure).
    fn make(options: Options) -> Result<Cpu<Heap>, Skip> {
        if let Some(level) = options.level.filter(|l| !l.is_supported()) {
            return Err(Skip::new(format!("this CPU has no {} instructions", level.name())));
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
            }
        };
    }

    fn level(level: SimdLevel) -> Options {
        Options { level: Some(level), ..Options::default() }
    }

    factory!(Scalar, "cpu-scalar", level(SimdLevel::Scalar), WeightDtype::F32);
    factory!(Avx2, "cpu-avx2", level(SimdLevel::Avx2), WeightDtype::F32);
    factory!(Avx512, "cpu-avx512", level(SimdLevel::Avx512), WeightDtype::F32);
    factory!(Neon, "cpu-neon", level(SimdLevel::Neon), WeightDtype::F32);
    factory!(Threads, "cpu-2-threads", Options::threads(2), WeightDtype::F32);
    factory!(Half, "cpu-f16", Options::default(), WeightDtype::F16);
    factory!(Bf16, "cpu-bf16-2-threads", Options::threads(2), WeightDtype::Bf16);
}

#[cfg(feature = "cpu")]
conformance::suite!(cpu_scalar, cpu_factories::Scalar);
#[cfg(feature = "cpu")]
conformance::suite!(cpu_avx2, cpu_factories::Avx2);
#[cfg(feature = "cpu")]
conformance::suite!(cpu_avx512, cpu_factories::Avx512);
#[cfg(feature = "cpu")]
conformance::suite!(cpu_neon, cpu_factories::Neon);
#[cfg(feature = "cpu")]
conformance::suite!(cpu_threads, cpu_factories::Threads);
#[cfg(feature = "cpu")]
conformance::suite!(cpu_f16, cpu_factories::Half);
#[cfg(feature = "cpu")]
conformance::suite!(cpu_bf16, cpu_factories::Bf16);

/// wgpu on whatever adapter `WGPU_BACKEND` picks; no adapter is a skip (a
/// failure under `BRT_REQUIRE_GPU=1`).
#[cfg(feature = "wgpu")]
mod wgpu_factories {
    use super::*;
    use brt_wgpu::{Wgpu, WgpuError};

    macro_rules! factory {
        ($name:ident, $label:literal, $dtype:expr) => {
            pub struct $name;
            impl Backend for $name {
                type Kernels = Wgpu;
                const NAME: &'static str = $label;
                fn create() -> Result<Wgpu, Skip> {
                    Wgpu::new().map_err(|e| Skip::new(format!("no usable wgpu adapter: {e}")))
                }
                fn weight_dtype() -> WeightDtype {
                    $dtype
                }
                fn core_error(e: &WgpuError) -> Option<CoreError> {
                    match e {
                        WgpuError::Core(c) => Some(*c),
                        _ => None,
                    }
                }
            }
        };
    }

    factory!(F32, "wgpu", WeightDtype::F32);
    factory!(F16, "wgpu-f16", WeightDtype::F16);
}

#[cfg(feature = "wgpu")]
conformance::suite!(wgpu_f32, wgpu_factories::F32);
#[cfg(feature = "wgpu")]
conformance::suite!(wgpu_f16, wgpu_factories::F16);

/// CUDA on the first device; no driver or device is a skip (a failure under
/// `BRT_REQUIRE_GPU=1`), any other error a failure.
#[cfg(feature = "cuda")]
mod cuda_factories {
    use super::*;
    use brt_cuda::{Cuda, CudaError};

    macro_rules! factory {
        ($name:ident, $label:literal, $dtype:expr) => {
            pub struct $name;
            impl Backend for $name {
                type Kernels = Cuda;
                const NAME: &'static str = $label;
                fn create() -> Result<Cuda, Skip> {
                    match Cuda::new() {
                        Ok(k) => Ok(k),
                        Err(e) if e.is_unavailable() => Err(Skip::new(e.to_string())),
                        Err(e) => panic!("the CUDA backend failed to start: {e}"),
                    }
                }
                fn weight_dtype() -> WeightDtype {
                    $dtype
                }
                fn core_error(e: &CudaError) -> Option<CoreError> {
                    e.core()
                }
            }
        };
    }

    factory!(F32, "cuda", WeightDtype::F32);
    factory!(Bf16, "cuda-bf16", WeightDtype::Bf16);
}

#[cfg(feature = "cuda")]
conformance::suite!(cuda_f32, cuda_factories::F32);
#[cfg(feature = "cuda")]
conformance::suite!(cuda_bf16, cuda_factories::Bf16);
