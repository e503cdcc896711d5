//! What users see when CUDA is missing, and whether the kernels compile.
//!
//! - Without a driver, NVRTC or GPU, `Cuda::new` is an error that says which
//!   and what to do, never a panic inside the CUDA bindings; under
//!   `BRT_REQUIRE_GPU=1` a working GPU is required.
//! - Where NVRTC is installed (even with no GPU), every kernel program compiles
//!   for the architectures brt targets.

mod common;

use brt_cuda::{compile_kernels, Cuda, CudaError};
use common::{loud, require_gpu};

#[test]
fn a_missing_gpu_is_a_clear_error_and_a_present_one_opens() {
    match Cuda::new() {
        Ok(cuda) => loud(&format!("CUDA available: {}", cuda.describe())),
        Err(e) => {
            assert!(!require_gpu(), "BRT_REQUIRE_GPU=1, but the CUDA backend cannot run: {e}");
            let message = e.to_string();
            assert!(e.is_unavailable(), "a missing GPU should be reported as such, got: {message}");
            match e {
                CudaError::NoDriverLibrary => {
                    assert!(message.contains("libcuda.so") && message.contains("--backend cpu"), "{message}")
                }
                CudaError::NoNvrtcLibrary => {
                    assert!(message.contains("libnvrtc") && message.contains("--backend cpu"), "{message}")
                }
                CudaError::NoDevice { .. } | CudaError::DriverUnusable { .. } => {
                    assert!(message.contains("--backend cpu"), "{message}")
                }
                _ => unreachable!("is_unavailable covers only these"),
            }
            loud(&format!("SKIPPED on the GPU [availability]: {message}"));
        }
    }
}

#[test]
fn the_kernels_compile_with_nvrtc_for_every_target_architecture() {
    // Hopper (the target), Ampere, Ada and Blackwell; head widths of the tests
    // and of the paper (128). Each to machine code (CUBIN) and PTX.
    let head_dims = [1, 5, 8, 32, 64, 128];
    for (major, minor) in [(9, 0), (8, 0), (8, 9), (12, 0)] {
        match compile_kernels(major, minor, &head_dims) {
            Ok(bytes) => {
                assert!(bytes > 10_000, "suspiciously little code: {bytes} bytes");
                loud(&format!(
                    "NVRTC: every kernel compiles for compute {major}.{minor} ({bytes} bytes of CUBIN and PTX)"
                ));
            }
            Err(CudaError::NoNvrtcLibrary) => {
                assert!(!require_gpu(), "BRT_REQUIRE_GPU=1, but NVRTC is missing");
                loud("SKIPPED [NVRTC compile check]: no NVRTC library (libnvrtc.so.13) found");
                return;
            }
            Err(e) => panic!("compute {major}.{minor}: {e}"),
        }
    }
}
