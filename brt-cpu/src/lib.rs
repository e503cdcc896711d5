//! # brt-cpu
//!
//! The CPU backend of brt. At this stage it provides host memory ([`Heap`], with
//! the `std` feature) for the reference kernels; the SIMD kernels come next.
#![no_std]
#![warn(missing_docs)]

#[cfg(feature = "std")]
extern crate std;

#[cfg(feature = "std")]
mod heap;
#[cfg(feature = "std")]
pub use heap::Heap;
