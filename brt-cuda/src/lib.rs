//! # brt-cuda
//!
//! The CUDA backend of brt: [`Cuda`] implements `brt_core::Storage` and
//! `brt_core::Kernels` with CUDA C kernels (embedded in this crate, compiled at
//! run time by NVRTC, once per process and program, specialised by the head
//! width) and cuBLAS `sgemm` for products with f32 weights. Everything stays in
//! device memory on one stream; the only blocking points are reads and `sync`.
//!
//! Libraries are opened at run time through `cudarc` (dynamic loading, CUDA
//! 13.0 bindings), so the crate builds with no CUDA toolkit. Where there is no
//! driver, no NVRTC or no GPU, [`Cuda::new`] returns an error saying which
//! (and what to do); it never panics.
//!
//! - [`Cuda`]: the backend, with its buffer types [`CudaTensor`],
//!   [`CudaWeights`] (f32, f16 or bf16 storage) and [`CudaTokens`];
//! - [`CudaError`]: what can go wrong;
//! - [`DeviceOptions`]: which GPU, whether to use cuBLAS;
//! - feature `emulator`: `Cuda::emulated` runs the same kernels on the CPU,
//!   for tests where there is no GPU.
//!
//! Opening the backend gives a GPU, or an error that says what is missing and
//! what to do (e.g. `no CUDA driver library (libcuda.so) found; install the
//! NVIDIA driver (CUDA 13 or newer) or use --backend cpu`):
//!
//! ```
//! use brt_cuda::Cuda;
//!
//! match Cuda::new() {
//!     Ok(cuda) => println!("CUDA: {}", cuda.describe()),
//!     Err(e) => {
//!         # assert!(!brt_core::requires_gpu(std::env::var("BRT_REQUIRE_GPU").ok().as_deref()), "{e}");
//!         assert!(e.is_unavailable(), "{e}");
//!         println!("no CUDA here: {e}");
//!     }
//! }
//! ```
#![warn(missing_docs)]

mod backend;
mod compile;
mod device;
mod driver;
#[cfg(feature = "emulator")]
pub mod emulator;
mod error;
mod launch;
mod params;
mod source;

pub use backend::{Cuda, CudaTensor, CudaTokens, CudaWeights};
pub use compile::compile_kernels;
pub use driver::DeviceOptions;
pub use error::{CudaError, CudaResult};
pub use source::program_source;
