//! Shared by the integration tests: the backends to test, skips, data, comparisons.
#![allow(dead_code)]

use brt_core::init::SplitMix64;
use brt_core::{Storage, WeightData, WeightDtype};
use brt_cuda::Cuda;
use std::io::Write;

/// Whether `BRT_REQUIRE_GPU=1`: a missing GPU is then a failure, not a skip.
pub fn require_gpu() -> bool {
    brt_core::requires_gpu(std::env::var(brt_core::REQUIRE_GPU_VAR).ok().as_deref())
}

/// Prints straight to the terminal: libtest captures the `print!` macros of
/// passing tests, and a skip must be seen.
pub fn loud(message: &str) {
    let _ = writeln!(std::io::stderr(), "{message}");
}

/// The CUDA backend on the real GPU, or `None` after a loud skip message.
/// Under `BRT_REQUIRE_GPU=1` a missing GPU fails the test instead.
pub fn gpu(test: &str) -> Option<Cuda> {
    match Cuda::new() {
        Ok(cuda) => {
            loud(&format!("[{test}] CUDA: {}", cuda.describe()));
            Some(cuda)
        }
        Err(e) => {
            assert!(!require_gpu(), "BRT_REQUIRE_GPU=1, but the CUDA backend cannot run: {e}");
            loud(&format!("SKIPPED on the GPU [{test}]: {e}"));
            None
        }
    }
}

/// Every CUDA backend to test: the GPU when there is one and, with the
/// `emulator` feature, the kernel emulator in two modes (cuBLAS path with
/// alternating thread order; brt's product kernel with shuffled order).
pub fn backends(test: &str) -> Vec<(String, Cuda)> {
    let mut all = Vec::new();
    if let Some(cuda) = gpu(test) {
        all.push(("gpu".to_string(), cuda));
    }
    #[cfg(feature = "emulator")]
    {
        use brt_cuda::emulator::{EmulatorOptions, ThreadOrder};
        all.push((
            "emulator (cuBLAS sgemm, alternating order)".to_string(),
            Cuda::emulated(EmulatorOptions { cublas: true, order: ThreadOrder::Alternating }),
        ));
        all.push((
            "emulator (brt products, shuffled order)".to_string(),
            Cuda::emulated(EmulatorOptions { cublas: false, order: ThreadOrder::Shuffled(0x5eed) }),
        ));
    }
    if all.is_empty() {
        loud(&format!("SKIPPED [{test}]: no GPU, and the kernel emulator is not built (feature `emulator`)"));
    }
    all
}

/// A second backend of the same kind as `name` (from [`backends`]).
pub fn another(name: &str) -> Cuda {
    #[cfg(feature = "emulator")]
    if name.starts_with("emulator") {
        return Cuda::emulated(brt_cuda::emulator::EmulatorOptions::default());
    }
    let _ = name;
    Cuda::new().expect("a second instance of a working GPU backend")
}

/// Whether a backend can run attention kernels of head width `dh` (the
/// emulator is built for a list of widths).
pub fn runs_head_dim(name: &str, dh: usize) -> bool {
    #[cfg(feature = "emulator")]
    if name.starts_with("emulator") {
        return brt_cuda::emulator::head_dim_supported(dh);
    }
    let _ = (name, dh);
    true
}

/// `n` values uniform in `[-scale, scale)`.
pub fn random(seed: u64, n: usize, scale: f32) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed);
    (0..n).map(|_| ((rng.uniform() * 2.0 - 1.0) as f32) * scale).collect()
}

/// A tensor holding `data`.
pub fn tensor<K: Storage>(k: &mut K, data: &[f32]) -> K::Tensor {
    let mut t = k.alloc_tensor(data.len()).unwrap();
    k.write_tensor(&mut t, 0, data).unwrap();
    t
}

/// The whole content of a tensor.
pub fn read<K: Storage>(k: &mut K, t: &K::Tensor) -> Vec<f32> {
    let mut out = vec![0f32; K::tensor_len(t)];
    k.read_tensor(t, 0, &mut out).unwrap();
    out
}

/// Parameters holding `data` stored as `dtype` (the data are first rounded to
/// `dtype`, so that every backend holds exactly the same values).
pub fn weights<K: Storage>(k: &mut K, data: &[f32], dtype: WeightDtype) -> K::Weights {
    let mut w = k.alloc_weights(data.len(), dtype).unwrap();
    match dtype {
        WeightDtype::F32 | WeightDtype::Q8_0 => k.write_weights(&mut w, 0, WeightData::F32(data)).unwrap(),
        WeightDtype::F16 => {
            let v: Vec<_> = data.iter().map(|&x| brt_core::half::f16::from_f32(x)).collect();
            k.write_weights(&mut w, 0, WeightData::F16(&v)).unwrap()
        }
        WeightDtype::Bf16 => {
            let v: Vec<_> = data.iter().map(|&x| brt_core::half::bf16::from_f32(x)).collect();
            k.write_weights(&mut w, 0, WeightData::Bf16(&v)).unwrap()
        }
    }
    w
}

/// Token ids.
pub fn tokens<K: Storage>(k: &mut K, ids: &[u32]) -> K::Tokens {
    let mut t = k.alloc_tokens(ids.len()).unwrap();
    k.write_tokens(&mut t, 0, ids).unwrap();
    t
}

/// Asserts `|actual - expected| <= abs + rel * |expected|` everywhere (NaN only
/// where expected is NaN), naming the worst element.
pub fn assert_close(what: &str, actual: &[f32], expected: &[f32], abs: f32, rel: f32) {
    assert_eq!(actual.len(), expected.len(), "{what}: lengths");
    let mut worst = (0f32, 0usize);
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        if e.is_nan() && a.is_nan() {
            continue;
        }
        let excess = (a - e).abs() - (abs + rel * e.abs());
        if excess.is_nan() || excess > worst.0 {
            assert!(!excess.is_nan(), "{what}: element {i} is {a}, expected {e}");
            worst = (excess, i);
        }
    }
    let (excess, i) = worst;
    assert!(
        excess <= 0.0,
        "{what}: element {i} is {}, expected {} (beyond the tolerance {abs} + {rel}*|expected| by {excess})",
        actual[i],
        expected[i]
    );
}

/// Largest absolute difference (NaN when either side holds one).
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    brt::compare::largest_difference(a, b).value
}

/// Every storage type of parameters. The test data are rounded to the type
/// before both backends receive them, so the same tolerances hold for all.
pub const DTYPES: [WeightDtype; 3] = [WeightDtype::F32, WeightDtype::F16, WeightDtype::Bf16];

/// Runs `$body` with `$k` bound to a fresh `brt_core::Reference<Heap>` and then
/// to the backend `$cuda`; evaluates to `(reference result, cuda result)`.
#[macro_export]
macro_rules! on_both {
    ($cuda:expr, |$k:ident| $body:expr) => {{
        let mut reference = brt_core::Reference::new(brt_cpu::Heap);
        let expected = {
            let $k = &mut reference;
            $body
        };
        let actual = {
            let $k: &mut brt_cuda::Cuda = $cuda;
            $body
        };
        (expected, actual)
    }};
}
