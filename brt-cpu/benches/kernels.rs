//! Kernel benchmarks at every SIMD level: the products and attentions of the
//! `small` and `paper` configurations (one batch row, calls of 4W tokens).
//!
//! `cargo bench -p brt-cpu --bench kernels` (add a filter such as `paper` to run
//! fewer). Throughput is reported in FLOP (multiply-add = 2), so criterion prints
//! GFLOP/s-equivalents as "elem/s".

use brt_core::desc::{Attention, Mask, Matmul};
use brt_core::{Kernels, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
use brt_cpu::{Cpu, Heap, Options, SimdLevel};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;

fn backend(level: SimdLevel, threads: usize) -> Cpu<Heap> {
    Cpu::with_options(Heap, Options { level: Some(level), threads, ..Options::default() }).expect("supported level")
}

fn matmul(c: &mut Criterion) {
    // (name, m, k, n): QKV/out and MLP products of a call of 4W tokens.
    let shapes = [
        ("small/qkv", 256, 256, 256),
        ("small/mlp_in", 256, 256, 1024),
        ("small/mlp_out", 256, 1024, 256),
        // A recurrent layer's products of its states, once per block: `S` rows,
        // over which packing the weights is repaid (64 in `small`).
        ("small/states", 64, 256, 256),
        ("paper/states", 512, 1024, 1024),
        ("paper/qkv", 2048, 1024, 1024),
        ("paper/mlp_in", 2048, 1024, 4096),
        ("paper/mlp_out", 2048, 4096, 1024),
        ("gemv/paper_mlp_in", 1, 1024, 4096),
    ];
    let mut group = c.benchmark_group("matmul");
    group.sample_size(10);
    for (name, m, k, n) in shapes {
        group.throughput(Throughput::Elements(2 * (m * k * n) as u64));
        for level in SimdLevel::available() {
            for dtype in [WeightDtype::F32, WeightDtype::F16] {
                if level == SimdLevel::Scalar && m * k * n > 1 << 28 {
                    continue; // minutes per sample; the scalar level is for correctness
                }
                let mut cpu = backend(level, 1);
                let x = cpu.alloc_tensor(m * k).unwrap();
                let mut w = cpu.alloc_weights(k * n, dtype).unwrap();
                cpu.write_weights(&mut w, 0, WeightData::F32(&vec![0.01; k * n])).unwrap();
                let mut y = cpu.alloc_tensor(m * n).unwrap();
                let desc = Matmul::new(m, k, n).unwrap();
                group.bench_function(format!("{name}/{level}/{}", dtype.name()), |b| {
                    b.iter(|| {
                        cpu.matmul(View::new(&x, 0), WeightView::new(&w, 0), ViewMut::new(&mut y, 0), black_box(desc))
                            .unwrap()
                    })
                });
            }
        }
    }
    group.finish();
}

fn attention(c: &mut Criterion) {
    // (name, queries, keys, heads, head_dim, window or full)
    let cases = [
        ("small/window", 256, 64 + 256, 4, 64, Some(64)),
        ("small/state_cross", 64, 128, 4, 64, None),
        ("paper/window", 2048, 512 + 2048, 8, 128, Some(512)),
        ("paper/state_cross", 512, 1024, 8, 128, None),
    ];
    let mut group = c.benchmark_group("attention");
    group.sample_size(10);
    for (name, n, keys, heads, dh, window) in cases {
        let useful_keys = window.unwrap_or(keys);
        group.throughput(Throughput::Elements((4 * n * useful_keys * heads * dh) as u64));
        for level in SimdLevel::available() {
            let mut cpu = backend(level, 1);
            let q = cpu.alloc_tensor(n * heads * dh).unwrap();
            let k = cpu.alloc_tensor(keys * heads * dh).unwrap();
            let mut scale = cpu.alloc_weights(heads * 33, WeightDtype::F32).unwrap();
            cpu.write_weights(&mut scale, 0, WeightData::F32(&vec![1.0; heads * 33])).unwrap();
            let mut out = cpu.alloc_tensor(n * heads * dh).unwrap();
            let mask = window.map_or(Mask::None, |w| Mask::Window { offset: w, window: w });
            let desc = Attention::new(1, n, keys, heads, dh, mask, false).unwrap();
            let bias = window.map(|_| WeightView::new(&scale, heads));
            group.bench_function(format!("{name}/{level}"), |b| {
                b.iter(|| {
                    cpu.attention(
                        View::new(&q, 0),
                        View::new(&k, 0),
                        View::new(&k, 0),
                        WeightView::new(&scale, 0),
                        bias,
                        ViewMut::new(&mut out, 0),
                        black_box(desc),
                    )
                    .unwrap()
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, matmul, attention);
criterion_main!(benches);
