//! Prints the rate of one-row products (the work of generating one token) for
//! every storage type at the detected SIMD level, as weights read per second
//! (GB/s of the stored bytes), on 1 and 2 threads:
//! `cargo run --release -p brt-cpu --example gemv_rate [d] [f]`.
//!
//! The weights are a `d x f` MLP input matrix (rows of `f` values, `InOut`) and
//! the tied `f x d` output matrix (`OutIn`) of a one-layer model, 64 MiB each
//! in f32 by default, 32 MiB in f16 and 17 MiB in q8_0: a large last-level cache
//! may serve the smaller ones (each product runs 12 times), so this measures the
//! kernels more than the memory; `brt bench --decode` measures a whole model's
//! weights streaming from memory.

use brt_core::desc::Matmul;
use brt_core::init::initialize;
use brt_core::{ByteLayout, Config, Kernels, LayerParam, Param, Storage, View, ViewMut, WeightData, WeightDtype};
use brt_core::{WeightLayout, WeightView};
use brt_cpu::{Cpu, Heap, Options, SharedBytes};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = |i: usize, default: usize| std::env::args().nth(i).map_or(Ok(default), |s| s.parse());
    let (d, f) = (arg(1, 2048)?, arg(2, 8192)?);
    // One layer, vocabulary f: embed (f x d) and MLP in (d x f) are the big ones.
    let config = Config::plain(f, d, 1, 32, f, 1, 4);
    let mut flat = vec![0f32; WeightLayout::new(&config)?.len()];
    initialize(&config, 1, &mut flat)?;
    for threads in [1, 2] {
        for dtype in [WeightDtype::F32, WeightDtype::F16, WeightDtype::Bf16, WeightDtype::Q8_0] {
            let layout = ByteLayout::new(&config, dtype, 32)?;
            let mut data = vec![0u8; layout.len()];
            layout.encode(WeightData::F32(&flat), &mut data)?;
            let mut k = Cpu::with_options(Heap, Options::threads(threads))?;
            let weights = k.weights_in_place(SharedBytes::copy_aligned(&data), &layout)?;
            let tensor = |p| layout.tensors().find(|t| t.spec.param == p).map(|t| (t.spec.offset, t.bytes));
            let (mlp_in, mlp_bytes) = tensor(Param::Layer(0, LayerParam::MlpIn)).ok_or("no MLP")?;
            let (embed, embed_bytes) = tensor(Param::Embedding).ok_or("no embedding")?;
            let x = k.alloc_tensor(f.max(d))?;
            let mut out = k.alloc_tensor(f.max(d))?;
            let cases = [
                ("in-out", mlp_in, Matmul::new(1, d, f)?, mlp_bytes),
                ("out-in", embed, Matmul::new(1, d, f)?.transposed_weight(), embed_bytes),
            ];
            for (name, offset, desc, bytes) in cases {
                let mut times = Vec::new();
                for i in 0..12 {
                    let start = Instant::now();
                    k.matmul(View::new(&x, 0), WeightView::new(&weights, offset), ViewMut::new(&mut out, 0), desc)?;
                    if i > 1 {
                        times.push(start.elapsed().as_secs_f64());
                    }
                }
                times.sort_by(f64::total_cmp);
                let t = times[times.len() / 2];
                println!(
                    "{:>5} {threads} thread(s) {name} {d}x{f}: {:7.3} ms, {:6.2} GB/s of weights, {:5.2} G weights/s",
                    dtype.name(),
                    t * 1e3,
                    bytes as f64 / t / 1e9,
                    (d * f) as f64 / t / 1e9
                );
            }
        }
    }
    Ok(())
}
