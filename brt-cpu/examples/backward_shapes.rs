//! Product rates of a forward product and of its backward (`d_x` and `d_w`), at
//! the detected level: `cargo run --release -p brt-cpu --example backward_shapes --
//! m k n [threads] [t]` (`t`: the weight stored `(n, k)`, as the tied logits).
//! The backward does twice the forward's floating-point work; the rates say how
//! well its two products (the weight read in the other order; two activations
//! with the left one transposed) keep up with the forward's.

use brt_core::desc::Matmul;
use brt_core::{Gradients, Kernels, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
use brt_cpu::{Cpu, Heap, Options};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number =
        |i: usize| -> Result<Option<usize>, std::num::ParseIntError> { args.get(i).map(|s| s.parse()).transpose() };
    let (Some(m), Some(k), Some(n)) = (number(0)?, number(1)?, number(2)?) else {
        return Err("usage: backward_shapes m k n [threads] [t]".into());
    };
    let threads = number(3)?.unwrap_or(1);
    let transposed = args.get(4).is_some_and(|s| s == "t");
    let mut cpu = Cpu::with_options(Heap, Options { threads, ..Options::default() })?;
    let values = |len: usize| (0..len).map(|i| ((i * 7919 % 1000) as f32 - 500.0) * 1e-3).collect::<Vec<f32>>();
    let mut x = cpu.alloc_tensor(m * k)?;
    cpu.write_tensor(&mut x, 0, &values(m * k))?;
    let mut w = cpu.alloc_weights(k * n, WeightDtype::F32)?;
    cpu.write_weights(&mut w, 0, WeightData::F32(&values(k * n)))?;
    let mut y = cpu.alloc_tensor(m * n)?;
    let mut dy = cpu.alloc_tensor(m * n)?;
    cpu.write_tensor(&mut dy, 0, &values(m * n))?;
    let (mut dx, mut dw) = (cpu.alloc_tensor(m * k)?, cpu.alloc_tensor(k * n)?);
    let mut desc = Matmul::new(m, k, n)?;
    if transposed {
        desc = desc.transposed_weight();
    }
    let flops = 2.0 * (m * k * n) as f64;
    let reps = (2e9 / flops).max(3.0) as usize;
    let time = |f: &mut dyn FnMut() -> Result<(), brt_cpu::CpuError>| -> Result<f64, brt_cpu::CpuError> {
        let mut best = f64::INFINITY;
        for _ in 0..5 {
            let t = Instant::now();
            for _ in 0..reps {
                f()?;
            }
            best = best.min(t.elapsed().as_secs_f64() / reps as f64);
        }
        Ok(best)
    };
    let forward = time(&mut || cpu_matmul(&mut cpu, &x, &w, &mut y, desc))?;
    let mut cpu2 = Cpu::with_options(Heap, Options { threads, ..Options::default() })?;
    let d_x = time(&mut || {
        cpu2.matmul_backward(
            View::new(&x, 0),
            WeightView::new(&w, 0),
            View::new(&y, 0),
            ViewMut::new(&mut dy, 0),
            Some(ViewMut::new(&mut dx, 0)),
            None,
            desc,
        )
    })?;
    let d_w = time(&mut || {
        cpu2.matmul_backward(
            View::new(&x, 0),
            WeightView::new(&w, 0),
            View::new(&y, 0),
            ViewMut::new(&mut dy, 0),
            None,
            Some(ViewMut::new(&mut dw, 0)),
            desc,
        )
    })?;
    let order = if transposed { "OutIn" } else { "InOut" };
    println!(
        "{} {m}x{k}x{n} {order}, {threads} thread(s): forward {:.1}, d_x {:.1}, d_w {:.1} GFLOP/s (wall)",
        cpu.level(),
        flops / forward / 1e9,
        flops / d_x / 1e9,
        flops / d_w / 1e9
    );
    Ok(())
}

fn cpu_matmul(
    cpu: &mut Cpu<Heap>,
    x: &Vec<f32>,
    w: &<Cpu<Heap> as Storage>::Weights,
    y: &mut Vec<f32>,
    desc: Matmul,
) -> Result<(), brt_cpu::CpuError> {
    cpu.matmul(View::new(x, 0), WeightView::new(w, 0), ViewMut::new(y, 0), desc)
}
