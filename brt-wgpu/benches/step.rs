//! Block steps of a small model on the wgpu adapter in use (set `WGPU_BACKEND`),
//! against the scalar reference on the CPU: one call of W tokens per row through
//! the whole stack, logits read back, as a stream runs it. On Mesa's software
//! adapters this measures the driver more than the kernels; run it on a real GPU
//! for figures that mean something (`scripts/gpu-check.sh`).

use brt_core::init::{initialize, SplitMix64};
use brt_core::{Config, GateKind, Kernels, LayerSet, Model, Plan, Reference, Stream, WeightData, WeightDtype};
use brt_cpu::Heap;
use criterion::{criterion_group, criterion_main, Criterion};

/// A 4-layer recurrent model (Rec:lstm:skip at layer 2): d=128, 4 heads of 32,
/// W=32, S=32, bytes vocabulary; batch 2.
fn config() -> Config {
    Config {
        states: 32,
        recurrent: LayerSet::from_indices(&[2], 4).unwrap_or_default(),
        gate: GateKind::Lstm,
        ..Config::plain(260, 128, 4, 32, 512, 4, 32)
    }
}

fn bench_backend<K: Kernels>(c: &mut Criterion, name: &str, k: &mut K, dtype: WeightDtype) {
    let config = config();
    let batch = 2;
    let mut flat = vec![0f32; brt_core::WeightLayout::new(&config).map(|l| l.len()).unwrap_or(0)];
    if initialize(&config, 1, &mut flat).is_err() {
        return;
    }
    let Ok(model) = Model::from_flat(k, &config, dtype, WeightData::F32(&flat)) else { return };
    let Ok(plan) = Plan::new(&config, batch, config.window) else { return };
    let Ok(mut stream) = Stream::new(k, &model, plan) else { return };
    let mut rng = SplitMix64::new(2);
    let mut logits = vec![0f32; config.window * batch * config.vocab];
    c.bench_function(&format!("block step W={} B={batch} {name}", config.window), |b| {
        b.iter(|| {
            let tokens: Vec<u32> = (0..config.window * batch).map(|_| (rng.next_u64() % 260) as u32).collect();
            stream.forward(k, &model, &tokens, &[]).ok();
            stream.read_logits(k, &mut logits).ok();
        })
    });
}

fn steps(c: &mut Criterion) {
    match brt_wgpu::Wgpu::new() {
        Ok(mut k) => {
            let adapter = k.adapter().clone();
            let label = format!("wgpu {} {}", adapter.backend, adapter.name);
            bench_backend(c, &format!("{label} f32"), &mut k, WeightDtype::F32);
            bench_backend(c, &format!("{label} f16"), &mut k, WeightDtype::F16);
        }
        Err(e) => eprintln!("SKIPPED wgpu benchmark: {e}"),
    }
    bench_backend(c, "reference (scalar CPU)", &mut Reference::new(Heap), WeightDtype::F32);
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = steps
}
criterion_main!(benches);
