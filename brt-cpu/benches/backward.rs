//! Backward kernels beside their forwards, at the detected level on one thread:
//! the products of a `small` training step (batch 8 x segment 256 = 2048 rows),
//! its windowed and state attentions, a `paper` window (512 queries, 8 heads of
//! 128), a linear attention, and the copies a recorded forward saves for its
//! backward (`copy` beside `copy_to_tape`).
//!
//! `cargo bench -p brt-cpu --bench backward` (a filter such as `attention` runs
//! fewer). Throughput is the forward's FLOP (multiply-add = 2) for both, so the
//! backward's "elem/s" over the forward's is the ratio of their speeds in units
//! of forward work (the backward of a product does twice the forward's work; the
//! attention's recomputes the scores and takes about 3.5 times).

use brt_core::desc::{Attention, LinearAttention, Mask, Matmul};
use brt_core::{Gradients, Kernels, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
use brt_cpu::{Cpu, Heap, Options};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;

fn backend() -> Cpu<Heap> {
    Cpu::with_options(Heap, Options::threads(1)).expect("a backend")
}

fn values(len: usize) -> Vec<f32> {
    (0..len).map(|i| ((i * 7919 % 1000) as f32 - 500.0) * 1e-3).collect()
}

fn tensor(cpu: &mut Cpu<Heap>, len: usize) -> Vec<f32> {
    let mut t = cpu.alloc_tensor(len).unwrap();
    cpu.write_tensor(&mut t, 0, &values(len)).unwrap();
    t
}

fn matmul(c: &mut Criterion) {
    // (name, m, k, n, weight stored (n, k))
    let shapes = [
        ("small/qkv", 2048, 256, 768, false),
        ("small/mlp_in", 2048, 256, 1024, false),
        ("small/mlp_out", 2048, 1024, 256, false),
        ("small/logits", 2048, 256, 260, true),
    ];
    let mut group = c.benchmark_group("matmul_backward");
    group.sample_size(10);
    for (name, m, k, n, transposed) in shapes {
        group.throughput(Throughput::Elements(2 * (m * k * n) as u64));
        let mut cpu = backend();
        let x = tensor(&mut cpu, m * k);
        let mut w = cpu.alloc_weights(k * n, WeightDtype::F32).unwrap();
        cpu.write_weights(&mut w, 0, WeightData::F32(&values(k * n))).unwrap();
        let mut y = tensor(&mut cpu, m * n);
        let mut dy = tensor(&mut cpu, m * n);
        let (mut dx, mut dw) = (tensor(&mut cpu, m * k), tensor(&mut cpu, k * n));
        let mut desc = Matmul::new(m, k, n).unwrap();
        if transposed {
            desc = desc.transposed_weight();
        }
        group.bench_function(format!("{name}/forward"), |b| {
            b.iter(|| {
                cpu.matmul(View::new(&x, 0), WeightView::new(&w, 0), ViewMut::new(&mut y, 0), black_box(desc)).unwrap()
            })
        });
        group.bench_function(format!("{name}/backward"), |b| {
            b.iter(|| {
                cpu.matmul_backward(
                    View::new(&x, 0),
                    WeightView::new(&w, 0),
                    View::new(&y, 0),
                    ViewMut::new(&mut dy, 0),
                    Some(ViewMut::new(&mut dx, 0)),
                    Some(ViewMut::new(&mut dw, 0)),
                    black_box(desc),
                )
                .unwrap()
            })
        });
    }
    group.finish();
}

fn attention(c: &mut Criterion) {
    // (name, batch, queries, keys, heads, head_dim, window or full)
    let cases = [
        ("small/window", 8, 256, 64 + 256, 4, 64, Some(64)),
        ("small/block", 8, 64, 128, 4, 64, Some(64)),
        ("small/state_cross", 8, 64, 64, 4, 64, None),
        ("paper/window", 1, 512, 1024, 8, 128, Some(512)),
    ];
    let mut group = c.benchmark_group("attention_backward");
    group.sample_size(10);
    for (name, batch, n, keys, heads, dh, window) in cases {
        let useful_keys = window.unwrap_or(keys);
        group.throughput(Throughput::Elements((4 * batch * n * useful_keys * heads * dh) as u64));
        let mut cpu = backend();
        let width = heads * dh;
        let (q, k, v) = (
            tensor(&mut cpu, batch * n * width),
            tensor(&mut cpu, batch * keys * width),
            tensor(&mut cpu, batch * keys * width),
        );
        let dout = tensor(&mut cpu, batch * n * width);
        let mut params = cpu.alloc_weights(heads * 33, WeightDtype::F32).unwrap();
        cpu.write_weights(&mut params, 0, WeightData::F32(&vec![0.5; heads * 33])).unwrap();
        let mut out = tensor(&mut cpu, batch * n * width);
        let (mut dq, mut dk, mut dv) = (
            tensor(&mut cpu, batch * n * width),
            tensor(&mut cpu, batch * keys * width),
            tensor(&mut cpu, batch * keys * width),
        );
        let (mut ds, mut db) = (tensor(&mut cpu, heads), tensor(&mut cpu, heads * 32));
        let mask = window.map_or(Mask::None, |w| Mask::Window { offset: keys - n, window: w });
        let desc = Attention::new(batch, n, keys, heads, dh, mask, false).unwrap();
        let biased = window.is_some();
        group.bench_function(format!("{name}/forward"), |b| {
            b.iter(|| {
                let bias = biased.then(|| WeightView::new(&params, heads));
                let (qv, kv, vv) = (View::new(&q, 0), View::new(&k, 0), View::new(&v, 0));
                cpu.attention(qv, kv, vv, WeightView::new(&params, 0), bias, ViewMut::new(&mut out, 0), black_box(desc))
                    .unwrap()
            })
        });
        group.bench_function(format!("{name}/backward"), |b| {
            b.iter(|| {
                cpu.attention_backward(
                    View::new(&q, 0),
                    View::new(&k, 0),
                    View::new(&v, 0),
                    WeightView::new(&params, 0),
                    biased.then(|| WeightView::new(&params, heads)),
                    View::new(&dout, 0),
                    ViewMut::new(&mut dq, 0),
                    ViewMut::new(&mut dk, 0),
                    ViewMut::new(&mut dv, 0),
                    ViewMut::new(&mut ds, 0),
                    biased.then(|| ViewMut::new(&mut db, 0)),
                    black_box(desc),
                )
                .unwrap()
            })
        });
    }
    group.finish();
}

fn linear_attention(c: &mut Criterion) {
    let (batch, tokens, heads, dh) = (8, 256, 4, 64);
    let desc = LinearAttention::new(batch, tokens, heads, dh, false).unwrap();
    let mut group = c.benchmark_group("linear_attention_backward");
    group.sample_size(10);
    // Per token and head: phi(k)^T v and phi(q) S, dh x dh each.
    group.throughput(Throughput::Elements((4 * batch * tokens * heads * dh * dh) as u64));
    let mut cpu = backend();
    let n = desc.token_len();
    let (q, k, v, dout) = (tensor(&mut cpu, n), tensor(&mut cpu, n), tensor(&mut cpu, n), tensor(&mut cpu, n));
    let mut scale = cpu.alloc_weights(heads, WeightDtype::F32).unwrap();
    cpu.write_weights(&mut scale, 0, WeightData::F32(&vec![0.5; heads])).unwrap();
    let state0 = cpu.alloc_tensor(desc.state_len()).unwrap();
    let mut state = state0.clone();
    let mut out = tensor(&mut cpu, n);
    let (mut dq, mut dk, mut dv) = (tensor(&mut cpu, n), tensor(&mut cpu, n), tensor(&mut cpu, n));
    let (mut d_state, mut ds) = (tensor(&mut cpu, desc.state_len()), tensor(&mut cpu, heads));
    group.bench_function("small/forward", |b| {
        b.iter(|| {
            state.copy_from_slice(&state0);
            let (qv, kv, vv) = (View::new(&q, 0), View::new(&k, 0), View::new(&v, 0));
            let (sv, ov) = (ViewMut::new(&mut state, 0), ViewMut::new(&mut out, 0));
            cpu.linear_attention(qv, kv, vv, WeightView::new(&scale, 0), sv, ov, black_box(desc)).unwrap()
        })
    });
    group.bench_function("small/backward", |b| {
        b.iter(|| {
            cpu.linear_attention_backward(
                View::new(&q, 0),
                View::new(&k, 0),
                View::new(&v, 0),
                WeightView::new(&scale, 0),
                View::new(&state0, 0),
                View::new(&dout, 0),
                ViewMut::new(&mut d_state, 0),
                ViewMut::new(&mut dq, 0),
                ViewMut::new(&mut dk, 0),
                ViewMut::new(&mut dv, 0),
                ViewMut::new(&mut ds, 0),
                black_box(desc),
            )
            .unwrap()
        })
    });
    group.finish();
}

/// A recorded `small` step saves about 300 MB of activations, far more than
/// the caches: each copy goes to memory. One 2048 x 256 activation (2 MiB) is
/// copied to the next of 64 destinations (128 MiB), as the tape fills.
fn tape(c: &mut Criterion) {
    let (len, slots) = (2048 * 256, 64);
    let mut group = c.benchmark_group("tape");
    group.sample_size(10);
    group.throughput(Throughput::Bytes((len * std::mem::size_of::<f32>()) as u64));
    let mut cpu = backend();
    let src = tensor(&mut cpu, len);
    let mut tape: Vec<Vec<f32>> = (0..slots).map(|_| tensor(&mut cpu, len)).collect();
    for (name, streaming) in [("copy", false), ("copy_to_tape", true)] {
        let mut next = 0;
        group.bench_function(name, |b| {
            b.iter(|| {
                next = (next + 1) % slots;
                let (from, to) = (View::new(&src, 0), ViewMut::new(&mut tape[next], 0));
                match streaming {
                    false => cpu.copy(from, to, black_box(len)).unwrap(),
                    true => cpu.copy_to_tape(from, to, black_box(len)).unwrap(),
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, matmul, attention, linear_attention, tape);
criterion_main!(benches);
