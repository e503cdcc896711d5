//! # brt-wgpu
//!
//! The portable GPU backend of brt: every kernel of [`brt_core::Kernels`] as a WGSL
//! compute shader, run through wgpu on Vulkan, Metal, DX12 or OpenGL (ES).
//!
//! - Weights, KV caches, recurrent states and activations live on the device for
//!   the whole stream; only token ids go up and logits come back.
//! - Kernel calls are recorded into one command buffer per block step and
//!   submitted when a result is needed (see [`Wgpu`]).
//! - Pipelines are compiled at load time, bind groups and kernel parameter slots
//!   are made on the first block; nothing is created per block or per token
//!   afterwards ([`Wgpu::counters`]).
//! - Shader variants come from small compile-time specialisations: subgroup
//!   operations in reductions when the adapter has them, and the storage type of
//!   the parameters: f32, or f16/bf16 packed two per `u32` and decoded in the
//!   shader, so half-precision weights run on adapters without `shader-f16`.
//! - Failures are errors, never panics: no adapter, a lost device, validation and
//!   out-of-memory errors (caught with error scopes) become [`WgpuError`]s.
//!
//! Opening the backend names the adapter; where there is none the error says
//! what to install (this example then stops, unless `BRT_REQUIRE_GPU=1`):
//!
//! ```
//! use brt_wgpu::Wgpu;
//! // Honours WGPU_BACKEND=vulkan|gl|metal|dx12.
//! let backend = match Wgpu::new() {
//!     Ok(backend) => backend,
//!     Err(e) if !brt_wgpu::testing::gpu_required() => return println!("no GPU here: {e}"),
//!     Err(e) => panic!("BRT_REQUIRE_GPU=1 but: {e}"),
//! };
//! println!("running on {}", backend.adapter().name);
//! assert_eq!(backend.counters().submissions, 0);
//! ```
#![warn(missing_docs)]

mod backend;
mod buffers;
mod device;
mod error;
mod ops;
mod pipelines;
mod recorder;
mod shaders;
pub mod testing;

pub use backend::Wgpu;
pub use buffers::{GpuTensor, GpuTokens, GpuWeights};
pub use device::{AdapterSummary, Counters, WgpuOptions};
pub use error::{Result, WgpuError};
/// Re-exported so callers can name backends in [`WgpuOptions`].
///
/// ```
/// use brt_wgpu::{wgpu::Backends, WgpuOptions};
/// let options = WgpuOptions { backends: Some(Backends::VULKAN | Backends::GL), ..WgpuOptions::default() };
/// assert!(options.backends.is_some_and(|b| b.contains(Backends::GL) && !b.contains(Backends::METAL)));
/// ```
pub use wgpu;
