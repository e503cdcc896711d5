//! The gradient contract for every backend this build enables that implements
//! `brt_core::Gradients`: the reference always, the CPU backend behind the `cpu`
//! feature (every SIMD level with f32, f16 and bf16 weights, two threads with
//! each, the smallest tiles at the scalar and the fastest level, and backward
//! query tiles taller than key tiles); and the oracle itself (the f64
//! reference against finite differences).
//!
//! A backend with gradients joins with one `conformance::gradient_suite!` line
//! next to its `conformance::suite!` line; see README.md, "The gradient
//! contract".

mod common;

// The f64 reference's backward kernels and whole-model gradients against finite
// differences: the oracle every check below trusts.
conformance::gradient_oracle!(oracle);

// The f32 reference against the f64 reference (kernels and model gradients);
// its error paths.
conformance::gradient_suite!(reference, conformance::ReferenceBackend);

#[cfg(feature = "cpu")]
conformance::gradient_suite!(cpu_scalar, common::cpu::Scalar);
#[cfg(feature = "cpu")]
conformance::gradient_suite!(cpu_scalar_f16, common::cpu::ScalarF16);
#[cfg(feature = "cpu")]
conformance::gradient_suite!(cpu_scalar_bf16, common::cpu::ScalarBf16);
#[cfg(feature = "cpu")]
conformance::gradient_suite!(cpu_avx2, common::cpu::Avx2);
#[cfg(feature = "cpu")]
conformance::gradient_suite!(cpu_avx2_f16, common::cpu::Avx2F16);
#[cfg(feature = "cpu")]
conformance::gradient_suite!(cpu_avx2_bf16, common::cpu::Avx2Bf16);
#[cfg(feature = "cpu")]
conformance::gradient_suite!(cpu_avx512, common::cpu::Avx512);
#[cfg(feature = "cpu")]
conformance::gradient_suite!(cpu_avx512_f16, common::cpu::Avx512F16);
#[cfg(feature = "cpu")]
conformance::gradient_suite!(cpu_avx512_bf16, common::cpu::Avx512Bf16);
#[cfg(feature = "cpu")]
conformance::gradient_suite!(cpu_neon, common::cpu::Neon);
#[cfg(feature = "cpu")]
conformance::gradient_suite!(cpu_neon_f16, common::cpu::NeonF16);
#[cfg(feature = "cpu")]
conformance::gradient_suite!(cpu_neon_bf16, common::cpu::NeonBf16);
#[cfg(feature = "cpu")]
conformance::gradient_suite!(cpu_threads, common::cpu::Threads);
#[cfg(feature = "cpu")]
conformance::gradient_suite!(cpu_f16_threads, common::cpu::F16Threads);
#[cfg(feature = "cpu")]
conformance::gradient_suite!(cpu_bf16_threads, common::cpu::Bf16);
#[cfg(feature = "cpu")]
conformance::gradient_suite!(cpu_smallest_tiles_scalar, common::cpu::SmallestScalar);
#[cfg(feature = "cpu")]
conformance::gradient_suite!(cpu_smallest_tiles, common::cpu::Smallest);
#[cfg(feature = "cpu")]
conformance::gradient_suite!(cpu_tall_backward_tiles, common::cpu::TallBackwardTiles);
