//! The suite for every backend this build enables: the reference always, then one
//! line per backend behind its cargo feature.
//!
//! A backend joins by adding its line here (see README.md, "How a backend joins"):
//!
//! ```ignore
//! #[cfg(feature = "cpu")]
//! conformance::suite!(cpu, brt_cpu::conformance::Factory);
//! ```
//!
//! The `cpu`, `wgpu` and `cuda` features exist but instantiate nothing yet: their
//! crates do not have kernels to test.

// The oracle against itself: every check must pass, and the properties,
// determinism and error paths run on the reference too.
conformance::suite!(reference, conformance::ReferenceBackend);
