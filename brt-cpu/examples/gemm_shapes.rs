//! Product rate of the shapes a model streams through, at every level:
//! `cargo run --release -p brt-cpu --example gemm_shapes -- m k n [threads]`.

use brt_core::desc::Matmul;
use brt_core::{Kernels, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
use brt_cpu::{Cpu, Heap, Options, SimdLevel};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<usize> = std::env::args().skip(1).map(|s| s.parse()).collect::<Result<_, _>>()?;
    let (m, k, n) = (a[0], a[1], a[2]);
    let threads = a.get(3).copied().unwrap_or(1);
    for level in SimdLevel::available() {
        let mut cpu = Cpu::with_options(Heap, Options { level: Some(level), threads, ..Options::default() })?;
        let x = cpu.alloc_tensor(m * k)?;
        let mut w = cpu.alloc_weights(k * n, WeightDtype::F32)?;
        cpu.write_weights(&mut w, 0, WeightData::F32(&vec![0.01; k * n]))?;
        let mut y = cpu.alloc_tensor(m * n)?;
        let desc = Matmul::new(m, k, n)?;
        let reps = (2e9 / (2.0 * (m * k * n) as f64)).max(3.0) as usize;
        let (mut best, mut best_cpu) = (f64::INFINITY, f64::INFINITY);
        for _ in 0..5 {
            let t = Instant::now();
            let c = cpu_seconds();
            for _ in 0..reps {
                cpu.matmul(View::new(&x, 0), WeightView::new(&w, 0), ViewMut::new(&mut y, 0), desc)?;
            }
            best = best.min(t.elapsed().as_secs_f64() / reps as f64);
            best_cpu = best_cpu.min((cpu_seconds() - c) / reps as f64);
        }
        let flops = 2.0 * (m * k * n) as f64;
        println!(
            "{level:>7} {m}x{k}x{n} {threads} thr: {:.1} GFLOP/s wall, {:.1} GFLOP/s per CPU-second of this thread",
            flops / best / 1e9,
            flops / best_cpu / 1e9
        );
    }
    Ok(())
}

/// CPU time of the calling thread (Linux), seconds; 0 elsewhere.
fn cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse::<f64>().ok()))
        .map_or(0.0, |ns| ns / 1e9)
}
