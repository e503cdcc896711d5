//! Shared test support: one backend per test binary (tests take turns on it),
//! data helpers and a tolerance check.
#![allow(dead_code)]

use brt_core::init::SplitMix64;
use brt_core::{Storage, WeightData, WeightDtype};
use brt_wgpu::{testing, Wgpu};
use std::sync::{Mutex, OnceLock};

static GPU: OnceLock<Mutex<Option<Wgpu>>> = OnceLock::new();

/// Runs `f` on the shared backend, or skips loudly (fails under BRT_REQUIRE_GPU=1).
pub fn with_gpu(test: &str, f: impl FnOnce(&mut Wgpu)) {
    let cell = GPU.get_or_init(|| Mutex::new(testing::backend_or_skip("brt-wgpu tests")));
    let mut guard = cell.lock().unwrap_or_else(|e| e.into_inner());
    match guard.as_mut() {
        Some(k) => {
            static ONCE: OnceLock<()> = OnceLock::new();
            ONCE.get_or_init(|| eprintln!("wgpu adapter: {:?}", k.adapter()));
            f(k)
        }
        None => eprintln!("SKIPPED {test}: no wgpu adapter"),
    }
}

pub fn random(rng: &mut SplitMix64, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| rng.normal() as f32 * scale).collect()
}

pub fn tensor<K: Storage>(k: &mut K, data: &[f32]) -> K::Tensor {
    let mut t = k.alloc_tensor(data.len()).unwrap();
    k.write_tensor(&mut t, 0, data).unwrap();
    t
}

pub fn weights<K: Storage>(k: &mut K, data: &[f32], dtype: WeightDtype) -> K::Weights {
    let mut w = k.alloc_weights(data.len(), dtype).unwrap();
    let halves: Vec<brt_core::half::f16>;
    let bf: Vec<brt_core::half::bf16>;
    let src = match dtype {
        WeightDtype::F32 | WeightDtype::Q8_0 => WeightData::F32(data),
        WeightDtype::F16 => {
            halves = data.iter().map(|&x| brt_core::half::f16::from_f32(x)).collect();
            WeightData::F16(&halves)
        }
        WeightDtype::Bf16 => {
            bf = data.iter().map(|&x| brt_core::half::bf16::from_f32(x)).collect();
            WeightData::Bf16(&bf)
        }
    };
    k.write_weights(&mut w, 0, src).unwrap();
    w
}

pub fn read<K: Storage>(k: &mut K, t: &K::Tensor) -> Vec<f32> {
    let mut out = vec![0f32; K::tensor_len(t)];
    k.read_tensor(t, 0, &mut out).unwrap();
    out
}

/// Asserts `|got - want| <= atol + rtol * |want|` everywhere and returns the worst
/// absolute difference.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], atol: f32, rtol: f32) -> f32 {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let mut worst = 0f32;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let diff = (g - w).abs();
        assert!(diff <= atol + rtol * w.abs() && g.is_finite() == w.is_finite(), "{what}[{i}]: got {g}, want {w}");
        worst = worst.max(diff);
    }
    worst
}
