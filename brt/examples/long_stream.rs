//! The long-stream benchmark: streams a million tokens (the text of the given
//! files, over and over) through a model on the CPU backend and reports, for each
//! tenth of the stream, tokens/s, the largest logit and the carried state's size,
//! then peak resident memory.
//!
//! ```sh
//! cargo run --release -p brt --example long_stream -- MODEL TOKENS FILES...
//! ```

use brt::backend::BackendOptions;
use brt::{load_model, Engine};
use brt_cpu::{Cpu, Heap, Options};
use std::time::Instant;

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!("usage: long_stream MODEL TOKENS FILES...");
        std::process::exit(2);
    }
    let weights = load_model(args[0].as_ref(), Default::default())?;
    let total: usize = args[1].parse()?;
    let mut text = Vec::new();
    for f in &args[2..] {
        text.extend(std::fs::read(f)?.into_iter().map(|b| b as u32 + 3));
    }
    if text.is_empty() {
        return Err("no text".into());
    }
    let threads = BackendOptions::for_config(weights.config(), 0).thread_count();
    let mut engine = Engine::new(Cpu::with_options(Heap, Options { threads, ..Options::default() })?, &weights)?;
    let chunk = 1024;
    let mut session = engine.session(1, chunk)?;
    let tenth = total / 10;
    let (mut fed, mut mark, mut started) = (0usize, 1usize, Instant::now());
    let mut max_logit = 0f32;
    let mut finite = true;
    println!("tenth  tokens/s  max|logit|  max|state|  state rms");
    while fed < total {
        let start = fed % text.len();
        let n = chunk.min(total - fed).min(text.len() - start);
        let mut look = |_: usize, logits: &[f32]| {
            for &v in logits {
                finite &= v.is_finite();
                max_logit = max_logit.max(v.abs());
            }
            Ok(())
        };
        session.feed_rows(&mut engine, &[&text[start..start + n]], &[], Some(&mut look))?;
        fed += n;
        if fed >= mark * tenth {
            let rate = tenth as f64 / started.elapsed().as_secs_f64();
            let state = session.export(&mut engine)?.state;
            let max_state = state.iter().fold(0f32, |m, v| m.max(v.abs()));
            let rms = (state.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / state.len() as f64).sqrt();
            println!("{mark:5}  {rate:8.0}  {max_logit:10.3}  {max_state:10.3}  {rms:9.4}");
            max_logit = 0.0;
            mark += 1;
            started = Instant::now();
        }
    }
    println!("all logits finite: {finite}; peak resident memory: {} KiB", peak_rss_kib().unwrap_or(0));
    Ok(())
}
