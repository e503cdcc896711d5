//! Support for tests that need a GPU: one place that decides between running,
//! skipping loudly, and failing when `BRT_REQUIRE_GPU=1` says a GPU must be there.

use crate::{Wgpu, WgpuError};

/// Whether `BRT_REQUIRE_GPU` asks that GPU tests fail instead of skipping.
pub fn gpu_required() -> bool {
    brt_core::requires_gpu(std::env::var(brt_core::REQUIRE_GPU_VAR).ok().as_deref())
}

/// Decides what a test does with the outcome of opening a backend: `Ok` runs;
/// an error prints a loud skip and returns `None`, unless a GPU is required,
/// in which case it returns the error message for the test to fail with.
pub fn decide(what: &str, opened: Result<Wgpu, WgpuError>) -> Result<Option<Wgpu>, String> {
    match opened {
        Ok(backend) => Ok(Some(backend)),
        Err(e) if gpu_required() => Err(format!("{what}: BRT_REQUIRE_GPU is set but the wgpu backend failed: {e}")),
        Err(e) => {
            eprintln!("\n======== SKIPPED {what}: no usable wgpu adapter: {e} ========");
            eprintln!("======== (set BRT_REQUIRE_GPU=1 to make this a failure) ========\n");
            Ok(None)
        }
    }
}

/// A backend for the test `what`, or `None` after a loud skip message when no
/// adapter is usable.
///
/// # Panics
///
/// When `BRT_REQUIRE_GPU=1` and no backend could be opened: that is the point
/// of the variable (a CI or GPU machine must not pass by skipping).
pub fn backend_or_skip(what: &str) -> Option<Wgpu> {
    match decide(what, Wgpu::new()) {
        Ok(backend) => backend,
        Err(message) => panic!("{message}"),
    }
}
