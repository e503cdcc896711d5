//! Support for tests that need a GPU: one place that decides between running,
//! skipping loudly, and failing when `BRT_REQUIRE_GPU=1` says a GPU must be there.
//!
//! A test (or an example like this one) that needs an adapter starts with
//! [`backend_or_skip`] and returns when it gives `None`:
//!
//! ```
//! use brt_core::Storage;
//!
//! let Some(mut k) = brt_wgpu::testing::backend_or_skip("my test") else { return Ok(()) };
//! let x = k.alloc_tensor(3)?;
//! let mut back = [1f32; 3];
//! k.read_tensor(&x, 0, &mut back)?;
//! assert_eq!(back, [0.0; 3]);
//! # Ok::<(), brt_wgpu::WgpuError>(())
//! ```

use crate::{Wgpu, WgpuError};

/// Whether `BRT_REQUIRE_GPU` asks that GPU tests fail instead of skipping.
///
/// Only the value `1` asks for it:
///
/// ```
/// use brt_wgpu::testing::gpu_required;
///
/// std::env::set_var("BRT_REQUIRE_GPU", "1");
/// assert!(gpu_required());
/// std::env::set_var("BRT_REQUIRE_GPU", "yes");
/// assert!(!gpu_required());
/// std::env::remove_var("BRT_REQUIRE_GPU");
/// assert!(!gpu_required());
/// ```
pub fn gpu_required() -> bool {
    brt_core::requires_gpu(std::env::var(brt_core::REQUIRE_GPU_VAR).ok().as_deref())
}

/// Decides what a test does with the outcome of opening a backend: `Ok` runs;
/// an error prints a loud skip and returns `None`, unless a GPU is required,
/// in which case it returns the error message for the test to fail with.
///
/// A backend that could not be opened is skipped, or is the message to fail
/// with when `BRT_REQUIRE_GPU=1`:
///
/// ```
/// use brt_wgpu::{testing::decide, WgpuError};
///
/// let missing = || Err(WgpuError::NoAdapter { backends: "VULKAN".into(), detail: "none".into() });
/// std::env::remove_var("BRT_REQUIRE_GPU");
/// assert!(matches!(decide("a test", missing()), Ok(None)));
/// std::env::set_var("BRT_REQUIRE_GPU", "1");
/// let message = decide("a test", missing()).unwrap_err();
/// assert!(message.starts_with("a test: BRT_REQUIRE_GPU is set"), "{message}");
/// ```
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
/// An adapter opened here is ready for kernels; without one the example
/// prints the skip message and returns:
///
/// ```
/// use brt_wgpu::testing::backend_or_skip;
///
/// let Some(k) = backend_or_skip("backend_or_skip") else { return };
/// assert_eq!(k.pending(), 0);
/// ```
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
