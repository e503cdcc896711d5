//! Helpers shared by the integration tests.
#![allow(dead_code)]

use brt_core::half::{bf16, f16};
use brt_core::init::SplitMix64;
use brt_core::{Reference, WeightData, WeightDtype};
use brt_cpu::{Cpu, Heap, Options, SimdLevel};

pub type Ref = Reference<Heap>;
pub type Fast = Cpu<Heap>;

/// Every level this machine supports, with a line saying which are tested.
pub fn levels() -> Vec<SimdLevel> {
    let levels: Vec<SimdLevel> = SimdLevel::available().collect();
    let skipped: Vec<&str> = SimdLevel::ALL.iter().filter(|l| !levels.contains(l)).map(|l| l.name()).collect();
    if !skipped.is_empty() {
        eprintln!("note: SIMD levels not supported on this machine, not tested here: {}", skipped.join(", "));
    }
    levels
}

/// Backends to test: every level single-threaded, and the best level on 2 threads.
pub fn backends() -> Vec<(String, Fast)> {
    let mut out: Vec<(String, Fast)> = levels()
        .into_iter()
        .map(|l| (format!("{l}/1 thread"), Cpu::with_level(Heap, l).expect("supported level")))
        .collect();
    let threaded = Cpu::with_options(Heap, Options::threads(2)).expect("two threads");
    out.push((format!("{}/2 threads", threaded.level()), threaded));
    out
}

/// Uniform values in [-scale, scale).
pub fn random(rng: &mut SplitMix64, len: usize, scale: f32) -> Vec<f32> {
    (0..len).map(|_| ((rng.uniform() * 2.0 - 1.0) as f32) * scale).collect()
}

/// Storage-type values for a weight buffer: the same numbers, as each dtype holds them.
pub enum Stored {
    F32(Vec<f32>),
    F16(Vec<f16>),
    Bf16(Vec<bf16>),
}

impl Stored {
    pub fn new(values: &[f32], dtype: WeightDtype) -> Stored {
        match dtype {
            // Q8_0 models come from files (tests/in_place.rs).
            WeightDtype::F32 | WeightDtype::Q8_0 => Stored::F32(values.to_vec()),
            WeightDtype::F16 => Stored::F16(values.iter().map(|&v| f16::from_f32(v)).collect()),
            WeightDtype::Bf16 => Stored::Bf16(values.iter().map(|&v| bf16::from_f32(v)).collect()),
        }
    }
    pub fn data(&self) -> WeightData<'_> {
        match self {
            Stored::F32(v) => WeightData::F32(v),
            Stored::F16(v) => WeightData::F16(v),
            Stored::Bf16(v) => WeightData::Bf16(v),
        }
    }
}

/// Largest absolute difference (NaN when either side holds one), and the
/// largest magnitude of `expected`.
pub fn max_diff(actual: &[f32], expected: &[f32]) -> (f32, f32) {
    assert_eq!(actual.len(), expected.len());
    let size = expected.iter().fold(0f32, |m, e| m.max(e.abs()));
    (brt::compare::largest_difference(actual, expected).value, size)
}

/// Asserts `actual` matches `expected` within `tol * (1 + max|expected|)`.
pub fn assert_close(actual: &[f32], expected: &[f32], tol: f32, what: &str) {
    let (worst, size) = max_diff(actual, expected);
    assert!(worst <= tol * (1.0 + size), "{what}: max abs diff {worst:e} (scale {size:e}, tolerance {tol:e})");
}
