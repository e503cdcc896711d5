//! Whole forward passes of the named configurations (fixed gate, skip layout,
//! byte vocabulary): `small` (d=256, 4 layers, W=S=64) streaming calls of 256
//! tokens, and `paper` (d=1024, 12 layers, W=S=512) calls of 512 tokens, on 1 and
//! 2 threads at the detected level, f32 and f16 weights.
//!
//! `cargo bench -p brt-cpu --bench forward`. Throughput is in tokens.

use brt_core::init::initialize;
use brt_core::{Config, GateKind, LayerSet, Model, Plan, StateLayout, Stream, WeightData, WeightDtype, WeightLayout};
use brt_cpu::{Cpu, Heap, Options};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn config(d: usize, heads: usize, dh: usize, f: usize, layers: usize, recurrent: i64, w: usize) -> Config {
    Config {
        states: w,
        recurrent: LayerSet::from_indices(&[recurrent], layers).unwrap(),
        gate: GateKind::Fixed,
        layout: StateLayout::Skip,
        ..Config::plain(260, d, heads, dh, f, layers, w)
    }
}

fn forward(c: &mut Criterion) {
    let cases =
        [("small", config(256, 4, 64, 1024, 4, 2, 64), 256), ("paper", config(1024, 8, 128, 4096, 12, -3, 512), 512)];
    let mut group = c.benchmark_group("forward");
    group.sample_size(10);
    for (name, config, call) in cases {
        let layout = WeightLayout::new(&config).unwrap();
        let mut flat = vec![0f32; layout.len()];
        initialize(&config, 1, &mut flat).unwrap();
        let ids: Vec<u32> = (0..call as u32).map(|i| 3 + i * 37 % 256).collect();
        group.throughput(Throughput::Elements(call as u64));
        for threads in [1, 2] {
            for dtype in [WeightDtype::F32, WeightDtype::F16] {
                let mut k = Cpu::with_options(Heap, Options::threads(threads)).unwrap();
                let model = Model::from_flat(&mut k, &config, dtype, WeightData::F32(&flat)).unwrap();
                let mut stream = Stream::new(&mut k, &model, Plan::new(&config, 1, call).unwrap()).unwrap();
                group.bench_function(format!("{name}/{}/{threads}t/{}", k.level(), dtype.name()), |b| {
                    b.iter(|| stream.forward(&mut k, &model, &ids, &[]).unwrap())
                });
            }
        }
    }
    group.finish();
}

criterion_group!(benches, forward);
criterion_main!(benches);
