//! `brt bench --config small|paper`: tokens/s and achieved GFLOP/s of a stream,
//! of generation (`--decode`) or of training (`--train`).

use super::parse_backend;
use brt::bench::{
    forward_flops_per_token, named_config, random_loaded_model, spread, training_flops_per_token, BenchJob,
    BenchResult, BenchSpec, TrainBenchJob, TrainBenchSpec,
};
use brt::{BackendKind, Error};
use clap::Args;

use super::convert::DtypeArg;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// `small`, `paper` (the issue tracker's configurations) or `tiny`, with
    /// random weights.
    #[arg(long, default_value = "small", conflicts_with = "model")]
    config: String,
    /// Measure this model (any format brt reads) instead of a named configuration;
    /// its own storage type is used (--dtype does not apply).
    #[arg(long, conflicts_with = "dtype")]
    model: Option<std::path::PathBuf>,
    /// Compute backend.
    #[arg(long, value_parser = parse_backend, default_value_t = BackendKind::default_kind())]
    backend: BackendKind,
    /// Worker threads (CPU backend; 0: all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Tokens streamed per document per repetition (default 8192; 64 with --decode).
    #[arg(long)]
    tokens: Option<usize>,
    /// Documents side by side (default 1; 8 with --train).
    #[arg(long)]
    batch: Option<usize>,
    /// Tokens per document per call (default 2048); with --train, tokens per
    /// row per training step (default 256).
    #[arg(long)]
    chunk: Option<usize>,
    /// Generation: one token per call (overrides --chunk), with the bytes of
    /// weights read per second against the memory bandwidth measured in the
    /// same run (each repetition reads 512 MiB first, on --threads threads).
    #[arg(long, conflicts_with = "train")]
    decode: bool,
    /// Training: full steps (forward, loss, backward, clipping, AdamW update) on
    /// random tokens, reported as tokens/s, GFLOP/s of the training arithmetic
    /// (three times the forward's) and the ratio to the same-run GEMM, with the
    /// share of each phase. Weights are f32 (training keeps f32 master weights).
    #[arg(long, conflicts_with_all = ["dtype", "tokens"])]
    train: bool,
    /// Thread scaling: one thread and --threads threads (2 or more; 0: every
    /// core) timed alternately, repetition by repetition, each on a fresh CPU
    /// backend, with the ratio of each pair's rates: a moment when the machine
    /// is slower falls on one pair, not on one side.
    #[arg(long, conflicts_with_all = ["train", "decode"])]
    scaling: bool,
    /// Training steps per repetition (with --train).
    #[arg(long, default_value_t = 8, requires = "train")]
    steps: u64,
    /// Timed repetitions (the median is reported).
    #[arg(long, default_value_t = 3)]
    repetitions: usize,
    /// Storage type of the weights.
    #[arg(long, value_enum, default_value = "f32")]
    dtype: DtypeArg,
    /// Side of the square product timed for the backend's own GEMM rate (0: skip).
    #[arg(long, default_value_t = 1024)]
    gemm_size: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// The measured figures' smallest, median and largest value and each of them, as
/// JSON (nothing when not measured).
fn measured(values: &[f64]) -> Option<serde_json::Value> {
    let (min, median, max) = spread(values);
    (!values.is_empty()).then(|| serde_json::json!({"min": min, "median": median, "max": max, "each": values}))
}

/// The CPU backend's SIMD level (`BRT_SIMD` can choose another; `None` for
/// other backends), reported with every figure so it says what produced it.
fn simd_level(backend: BackendKind) -> Result<Option<&'static str>, Error> {
    #[cfg(feature = "cpu")]
    if backend == BackendKind::Cpu {
        return Ok(Some(brt::backend::cpu_simd_level()?.name()));
    }
    Ok(None)
}

/// The backend as the text reports name it: `cpu (avx2)`, `wgpu`.
fn backend_label(backend: BackendKind) -> Result<String, Error> {
    Ok(match simd_level(backend)? {
        Some(level) => format!("{} ({level})", backend.name()),
        None => backend.name().to_string(),
    })
}

/// `fields` with what every measurement reports: what ran, and its rates.
fn with_rates(name: &str, args: &BenchArgs, result: &BenchResult, mut fields: serde_json::Value) -> serde_json::Value {
    let common = serde_json::json!({
        "config": name,
        "backend": args.backend.name(),
        // The level was read when the backend was made: it cannot fail here.
        "simd": simd_level(args.backend).ok().flatten(),
        "threads": args.threads,
        "seconds": result.seconds,
        "tokens_per_second": result.tokens_per_second,
        "gflops": result.gflops,
        "backend_gemm_gflops": measured(&result.gemm_gflops),
        "ratio_to_gemm": measured(&result.gemm_ratios),
    });
    if let (Some(fields), serde_json::Value::Object(common)) = (fields.as_object_mut(), common) {
        fields.extend(common);
    }
    fields
}

/// The line that compares the model's rate with the GEMM's of the same run.
fn gemm_line(result: &BenchResult, size: usize) -> String {
    if result.gemm_ratios.is_empty() {
        return String::new();
    }
    let (gemm, ratio) = (spread(&result.gemm_gflops), spread(&result.gemm_ratios));
    format!(
        "  {:.1} GFLOP/s single-precision GEMM ({size}x{size}x{size}, before each repetition; {:.1} to {:.1}); \
         ratio {:.0}% ({:.0}% to {:.0}%)\n",
        gemm.1,
        gemm.0,
        gemm.2,
        100.0 * ratio.1,
        100.0 * ratio.0,
        100.0 * ratio.2,
    )
}

pub fn run(args: BenchArgs) -> Result<(), Error> {
    let (weights, name) = match &args.model {
        Some(path) => (super::open(Some(path), super::ModelOptions::default())?, path.display().to_string()),
        None => (random_loaded_model(&named_config(&args.config)?, args.dtype.into(), 0)?, args.config.clone()),
    };
    if args.train {
        return run_training(&args, &weights.to_weights()?, &name);
    }
    let tokens = args.tokens.unwrap_or(if args.decode { 64 } else { 8192 });
    let chunk = if args.decode { 1 } else { args.chunk.unwrap_or(2048) };
    let batch = args.batch.unwrap_or(1);
    if tokens == 0 || batch == 0 || chunk == 0 {
        return Err(Error::Invalid("--tokens, --batch and --chunk must be positive".into()));
    }
    let config = *weights.config();
    let dtype = weights.dtype();
    // The bandwidth is read on as many threads as the model runs on, but never
    // more than the machine has cores (more threads cannot read faster).
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = if args.threads == 0 { cores } else { args.threads.min(cores) };
    let spec = BenchSpec {
        batch,
        tokens,
        chunk,
        repetitions: args.repetitions,
        gemm_size: args.gemm_size,
        bandwidth_threads: if args.decode { threads } else { 0 },
    };
    if args.scaling {
        return run_scaling(&args, &weights, &name, spec, if args.threads == 0 { cores } else { args.threads });
    }
    let options = brt::backend::BackendOptions::for_config(&config, args.threads);
    let result = brt::backend::run_on_with(args.backend, options, BenchJob { weights: &weights, spec })?;
    let flops = forward_flops_per_token(&config);
    let (bandwidth, bandwidth_ratio) = (spread(&result.bandwidth_gbs), spread(&result.bandwidth_ratios));
    let text = if args.json {
        format!(
            "{:#}\n",
            with_rates(
                &name,
                &args,
                &result,
                serde_json::json!({
                    "batch": batch,
                    "tokens": tokens,
                    "chunk": chunk,
                    "dtype": dtype.name(),
                    "flops_per_token": flops,
                    "weight_bytes": result.weight_bytes,
                    "memory_gbs": measured(&result.bandwidth_gbs),
                    "ratio_to_bandwidth": measured(&result.bandwidth_ratios),
                })
            )
        )
    } else {
        let mut text = format!(
            "{} on {} (threads {}, batch {}, {} tokens per document, chunk {}, {} weights)\n",
            name,
            backend_label(args.backend)?,
            args.threads,
            batch,
            tokens,
            chunk,
            dtype.name()
        );
        text += &format!("  {:.0} tokens/s (median of {})\n", result.tokens_per_second, result.seconds.len());
        text +=
            &format!("  {:.1} GFLOP/s of the model's arithmetic ({:.1} MFLOP per token)\n", result.gflops, flops / 1e6);
        text += &gemm_line(&result, args.gemm_size);
        if !result.bandwidth_ratios.is_empty() {
            text += &format!(
                "  {:.1} MB of weights read per call; memory reads {:.1} GB/s ({:.1} to {:.1}, before each \
                 repetition); weights read at {:.0}% of it ({:.0}% to {:.0}%)\n",
                result.weight_bytes as f64 / 1e6,
                bandwidth.1,
                bandwidth.0,
                bandwidth.2,
                100.0 * bandwidth_ratio.1,
                100.0 * bandwidth_ratio.0,
                100.0 * bandwidth_ratio.2
            );
        }
        text
    };
    super::print(&text);
    Ok(())
}

/// `brt bench --scaling`: one thread against `threads`, pair by pair.
fn run_scaling(
    args: &BenchArgs,
    weights: &brt::model_file::LoadedModel,
    name: &str,
    spec: BenchSpec,
    threads: usize,
) -> Result<(), Error> {
    if args.backend != BackendKind::Cpu {
        return Err(Error::Invalid("--scaling times the CPU backend's threads: use --backend cpu".into()));
    }
    if threads < 2 {
        return Err(Error::Invalid(
            "--scaling compares one thread with --threads: give --threads 2 or more (0: every core)".into(),
        ));
    }
    let config = *weights.config();
    // Each side's rate alone: the pair's ratio needs no GEMM reference.
    let once = BenchSpec { repetitions: 1, gemm_size: 0, bandwidth_threads: 0, ..spec };
    let rate = |threads: usize| -> Result<f64, Error> {
        let options = brt::backend::BackendOptions::for_config(&config, threads);
        Ok(brt::backend::run_on_with(args.backend, options, BenchJob { weights, spec: once })?.tokens_per_second)
    };
    let (mut single, mut multiple, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..args.repetitions.max(1) {
        let (one, many) = (rate(1)?, rate(threads)?);
        single.push(one);
        multiple.push(many);
        ratios.push(many / one);
    }
    let (one, many, ratio) = (spread(&single), spread(&multiple), spread(&ratios));
    let text = if args.json {
        let json = serde_json::json!({
            "config": name,
            "backend": args.backend.name(),
            "simd": simd_level(args.backend)?,
            "threads": threads,
            "batch": spec.batch,
            "tokens": spec.tokens,
            "chunk": spec.chunk,
            "one_thread_tokens_per_second": measured(&single),
            "tokens_per_second": measured(&multiple),
            "ratio": measured(&ratios),
        });
        format!("{json:#}\n")
    } else {
        format!(
            "{name} on {} (batch {}, {} tokens per document, chunk {}): {threads} threads against one, {} pairs\n  \
             1 thread: {:.0} tokens/s ({:.0} to {:.0})\n  {threads} threads: {:.0} tokens/s ({:.0} to {:.0})\n  \
             ratio {:.2}x ({:.2}x to {:.2}x; the median of the pairs' ratios)\n",
            backend_label(args.backend)?,
            spec.batch,
            spec.tokens,
            spec.chunk,
            ratios.len(),
            one.1,
            one.0,
            one.2,
            many.1,
            many.0,
            many.2,
            ratio.1,
            ratio.0,
            ratio.2,
        )
    };
    super::print(&text);
    Ok(())
}

/// `brt bench --train`: training steps on random tokens.
fn run_training(args: &BenchArgs, weights: &brt::weights::ModelWeights, name: &str) -> Result<(), Error> {
    let config = *weights.config();
    let spec = TrainBenchSpec {
        batch: args.batch.unwrap_or(8),
        segment: args.chunk.unwrap_or(256),
        steps: args.steps,
        repetitions: args.repetitions,
        gemm_size: args.gemm_size,
    };
    if spec.batch == 0 || spec.segment == 0 || spec.steps == 0 {
        return Err(Error::Invalid("--batch, --chunk and --steps must be positive".into()));
    }
    let options = brt::backend::BackendOptions::for_config(&config, args.threads);
    let result = brt::backend::run_training_on(args.backend, options, TrainBenchJob { weights, spec })?;
    let flops = training_flops_per_token(&config);
    let phases = result.phases;
    let total = (phases.forward + phases.backward + phases.update).max(f64::MIN_POSITIVE);
    let rate = &result.rate;
    let text = if args.json {
        format!(
            "{:#}\n",
            with_rates(
                name,
                args,
                rate,
                serde_json::json!({
                    "batch": spec.batch,
                    "segment": spec.segment,
                    "steps": spec.steps,
                    "training_flops_per_token": flops,
                    "phase_seconds": {"forward": phases.forward, "backward": phases.backward, "update": phases.update},
                })
            )
        )
    } else {
        let mut text = format!(
            "training {name} on {} (threads {}, batch {}, segment {}, {} steps per repetition, f32)\n",
            backend_label(args.backend)?,
            args.threads,
            spec.batch,
            spec.segment,
            spec.steps
        );
        text += &format!("  {:.0} tokens/s (median of {})\n", rate.tokens_per_second, rate.seconds.len());
        text += &format!(
            "  {:.1} GFLOP/s of the training arithmetic ({:.1} MFLOP per token: forward + backward)\n",
            rate.gflops,
            flops / 1e6
        );
        text += &gemm_line(rate, args.gemm_size);
        text += &format!(
            "  time: forward {:.0}%, backward {:.0}%, update {:.0}%\n",
            100.0 * phases.forward / total,
            100.0 * phases.backward / total,
            100.0 * phases.update / total
        );
        text
    };
    super::print(&text);
    Ok(())
}
