//! # brt-cpu
//!
//! The CPU backend of brt: [`Cpu`] implements the core's [`brt_core::Kernels`]
//! and, for training, [`brt_core::Gradients`] with SIMD kernels chosen at run
//! time ([`SimdLevel`]: AVX-512, AVX2+FMA, NEON or portable scalar code; any
//! supported level can be forced).
//!
//! - `no_std` and allocation-free: every buffer, the backend's own scratch
//!   included, comes from a [`brt_core::HostMemory`] at construction; with
//!   [`brt_core::Arena`] that is the caller's memory. No kernel allocates.
//! - The `std` feature (default) adds [`Heap`] memory and worker threads: a
//!   persistent pool that splits products over column (or row) blocks and
//!   attention over (row, head, query tile), with nothing allocated per call.
//! - Parameters are stored as f32, f16 or bf16 ([`CpuWeights`]); every kernel
//!   computes in f32 (16-bit values are widened while a product packs them).
#![no_std]
#![warn(missing_docs)]

#[cfg(feature = "std")]
extern crate std;

mod attention;
mod backend;
mod backward;
mod error;
mod gemm;
mod gemv;
mod linear;
mod options;
mod parallel;
mod rows;
mod simd;
mod tiles;
mod vector;
mod weights;

#[cfg(feature = "std")]
mod pool;
#[cfg(feature = "std")]
mod sgemm;

pub use backend::Cpu;
#[cfg(feature = "std")]
pub use brt_heap::{Heap, SharedBytes};
pub use error::CpuError;
pub use options::{Options, StreamMemory};
#[cfg(feature = "std")]
pub use sgemm::{measure_sgemm_gflops, sgemm_gflops};
pub use simd::SimdLevel;
pub use tiles::Tiles;
pub use weights::CpuWeights;
