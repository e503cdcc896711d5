//! Streams tokens through a named configuration on the CPU backend and reports
//! throughput against this machine's GEMM rate measured in the same run.
//!
//! ```text
//! cargo run --release -p brt-cpu --example stream -- \
//!     --config small|paper --tokens 8192 --threads 1 [--call 512] [--level avx2] \
//!     [--dtype f32|f16|bf16] [--no-gemm]
//! ```
//!
//! Prints tokens/s, the GFLOP/s of the model's own arithmetic (counted from the
//! config below), the f32 GEMM rate measured in this run, their ratio, and the
//! peak resident memory. Batch 1, random byte tokens, random official-style
//! weights. (The `brt bench` command of the facade reports the same figures for
//! every backend; this example keeps the CPU crate measurable on its own.)

use brt_core::init::{initialize, SplitMix64};
use brt_core::{Config, GateKind, LayerSet, Model, Plan, StateLayout, Stream, WeightData, WeightDtype, WeightLayout};
use brt_cpu::{measure_sgemm_gflops, Cpu, Heap, Options, SimdLevel};
use std::time::Instant;

fn config(name: &str) -> Result<Config, String> {
    let (d, heads, dh, f, layers, recurrent, w, s) = match name {
        "small" => (256, 4, 64, 1024, 4, 2i64, 64, 64),
        "paper" => (1024, 8, 128, 4096, 12, -3, 512, 512),
        other => return Err(format!("unknown config `{other}` (small or paper)")),
    };
    let recurrent = LayerSet::from_indices(&[recurrent], layers).map_err(|e| e.to_string())?;
    Ok(Config {
        states: s,
        recurrent,
        gate: GateKind::Fixed,
        layout: StateLayout::Skip,
        ..Config::plain(260, d, heads, dh, f, layers, w)
    })
}

/// Floating-point operations per token of batch-1 streaming (multiply-add = 2),
/// state updates spread over their block; only the no-feedback fixed/skip
/// layout of the named configs is counted.
fn flops_per_token(c: &Config) -> f64 {
    let (d, q, f, w, s, v) =
        (c.d_model as f64, c.qkv_width() as f64, c.mlp_hidden as f64, c.window as f64, c.states as f64, c.vocab as f64);
    let mut total = 2.0 * d * v; // tied logits
    for layer in 0..c.layers {
        let window_attention = 4.0 * w * q; // q.k and p.v over W keys
        let mlp = 4.0 * d * f;
        if c.is_recurrent(layer) {
            total += 2.0 * d * q * 4.0 + 2.0 * 2.0 * q * d + mlp + window_attention + 4.0 * s * q;
            let per_block = 2.0 * s * d * q * 4.0 // state q, q2, k, v
                + 4.0 * s * s * q // state self-attention
                + 4.0 * s * 2.0 * w * q // state cross-attention to 2W keys
                + 2.0 * s * 2.0 * q * d; // skip projection
            total += per_block / w;
        } else {
            total += 2.0 * d * q * 3.0 + 2.0 * q * d + mlp + window_attention;
        }
    }
    total
}

/// User + system CPU time of the whole process (Linux `/proc/self/stat`, in
/// clock ticks of 1/100 s), seconds; 0 elsewhere.
fn process_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0.0 };
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { return 0.0 };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// (name, id, CPU seconds) of every thread of the process (Linux), from
/// `/proc/self/task/*/schedstat`.
fn thread_cpu_seconds() -> Vec<(String, u64, f64)> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return out };
    for task in tasks.flatten() {
        let path = task.path();
        let tid = task.file_name().to_string_lossy().parse().unwrap_or(0);
        let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default().trim().to_string();
        let ns = std::fs::read_to_string(path.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse::<f64>().ok()))
            .unwrap_or(0.0);
        out.push((name, tid, ns / 1e9));
    }
    out.sort_by_key(|(_, tid, _)| *tid);
    out
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut name = "small".to_string();
    let (mut tokens, mut threads, mut call) = (8192usize, 1usize, 0usize);
    let mut level = None;
    let mut dtype = WeightDtype::F32;
    let mut gemm = true;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--config" => name = value()?,
            "--tokens" => tokens = value()?.parse()?,
            "--threads" => threads = value()?.parse()?,
            "--call" => call = value()?.parse()?,
            "--level" => {
                let v = value()?;
                level = Some(SimdLevel::from_name(&v).ok_or_else(|| format!("unknown level `{v}`"))?)
            }
            "--dtype" => {
                dtype = match value()?.as_str() {
                    "f32" => WeightDtype::F32,
                    "f16" => WeightDtype::F16,
                    "bf16" => WeightDtype::Bf16,
                    other => return Err(format!("unknown dtype `{other}`").into()),
                }
            }
            "--no-gemm" => gemm = false,
            other => return Err(format!("unknown argument `{other}`").into()),
        }
    }
    let config = config(&name)?;
    let call = if call == 0 { (4 * config.window).min(tokens.max(1)) } else { call };
    let layout = WeightLayout::new(&config)?;
    let mut flat = vec![0f32; layout.len()];
    initialize(&config, 1, &mut flat)?;
    let mut k = Cpu::with_options(Heap, Options { level, threads, ..Options::default() })?;
    let model = Model::from_flat(&mut k, &config, dtype, WeightData::F32(&flat))?;
    drop(flat);
    let mut stream = Stream::new(&mut k, &model, Plan::new(&config, 1, call)?)?;
    let mut rng = SplitMix64::new(2);
    let ids: Vec<u32> = (0..call).map(|_| 3 + (rng.next_u64() % 256) as u32).collect();
    // Warm-up: one call (first touch of every buffer).
    stream.forward(&mut k, &model, &ids, &[])?;
    let threads_before = thread_cpu_seconds();
    let start = Instant::now();
    let cpu_start = process_cpu_seconds();
    let mut done = 0;
    while done < tokens {
        let n = call.min(tokens - done);
        stream.forward(&mut k, &model, &ids[..n], &[])?;
        done += n;
    }
    let seconds = start.elapsed().as_secs_f64();
    let cpu = process_cpu_seconds() - cpu_start;
    let threads_after = thread_cpu_seconds();
    let rate = tokens as f64 / seconds;
    let model_gflops = rate * flops_per_token(&config) / 1e9;
    println!(
        "config {name} level {} threads {threads} dtype {} call {call}: {tokens} tokens in {seconds:.3} s = {rate:.1} tokens/s, model {model_gflops:.1} GFLOP/s (process CPU time {cpu:.3} s)",
        k.level(),
        dtype.name()
    );
    // CPU time of each thread while streaming: with enough free cores the wall
    // time approaches the largest of them.
    let per_thread: Vec<String> = threads_after
        .iter()
        .map(|(name, tid, after)| {
            let before = threads_before.iter().find(|(_, t, _)| t == tid).map_or(0.0, |(_, _, b)| *b);
            format!("{name} {:.3} s", after - before)
        })
        .collect();
    println!("thread CPU time while streaming: {}", per_thread.join(", "));
    if gemm {
        // `measure_sgemm_gflops` runs 6 products of 1536^3 (one warm-up, best of
        // five); the process CPU time around it gives the rate per CPU-second too.
        let cpu_before = process_cpu_seconds();
        let g = measure_sgemm_gflops(threads)?;
        let gemm_cpu = process_cpu_seconds() - cpu_before;
        println!("sgemm {g:.1} GFLOP/s; model/sgemm = {:.3}", model_gflops / g);
        if cpu > 0.0 && gemm_cpu > 0.0 {
            let model_per_cpu = tokens as f64 * flops_per_token(&config) / cpu / 1e9;
            let gemm_per_cpu = 6.0 * 2.0 * 1536f64.powi(3) / gemm_cpu / 1e9;
            println!(
                "per CPU-second: model {model_per_cpu:.1} GFLOP, sgemm {gemm_per_cpu:.1} GFLOP, ratio {:.3}",
                model_per_cpu / gemm_per_cpu
            );
        }
    }
    if let Some(kib) = peak_rss_kib() {
        println!("peak RSS {:.1} MiB", kib as f64 / 1024.0);
    }
    Ok(())
}
