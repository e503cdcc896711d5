//! `brt bench --config small|paper`: tokens/s and achieved GFLOP/s of a stream.

use super::parse_backend;
use brt::bench::{forward_flops_per_token, named_config, random_loaded_model, spread, BenchJob, BenchSpec};
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
    /// Documents side by side.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Tokens per document per call.
    #[arg(long, default_value_t = 2048)]
    chunk: usize,
    /// Generation: one token per call (overrides --chunk), with the bytes of
    /// weights read per second against the memory bandwidth measured in the
    /// same run (each repetition reads 512 MiB first, on --threads threads).
    #[arg(long)]
    decode: bool,
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

pub fn run(args: BenchArgs) -> Result<(), Error> {
    let tokens = args.tokens.unwrap_or(if args.decode { 64 } else { 8192 });
    let chunk = if args.decode { 1 } else { args.chunk };
    if tokens == 0 || args.batch == 0 || chunk == 0 {
        return Err(Error::Invalid("--tokens, --batch and --chunk must be positive".into()));
    }
    let (weights, name) = match &args.model {
        Some(path) => (super::open(Some(path), super::ModelOptions::default())?, path.display().to_string()),
        None => (random_loaded_model(&named_config(&args.config)?, args.dtype.into(), 0)?, args.config.clone()),
    };
    let config = *weights.config();
    let dtype = weights.dtype();
    // The bandwidth is read on as many threads as the model runs on, but never
    // more than the machine has cores (more threads cannot read faster).
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = if args.threads == 0 { cores } else { args.threads.min(cores) };
    let spec = BenchSpec {
        batch: args.batch,
        tokens,
        chunk,
        repetitions: args.repetitions,
        gemm_size: args.gemm_size,
        bandwidth_threads: if args.decode { threads } else { 0 },
    };
    let options = brt::backend::BackendOptions::for_config(&config, args.threads);
    let result = brt::backend::run_on_with(args.backend, options, BenchJob { weights: &weights, spec })?;
    let flops = forward_flops_per_token(&config);
    let (gemm, gemm_ratio) = (spread(&result.gemm_gflops), spread(&result.gemm_ratios));
    let (bandwidth, bandwidth_ratio) = (spread(&result.bandwidth_gbs), spread(&result.bandwidth_ratios));
    let measured = |v: &[f64], s: (f64, f64, f64)| {
        (!v.is_empty()).then(|| serde_json::json!({"min": s.0, "median": s.1, "max": s.2, "each": v}))
    };
    let text = if args.json {
        format!(
            "{:#}\n",
            serde_json::json!({
                "config": name,
                "backend": args.backend.name(),
                "threads": args.threads,
                "batch": args.batch,
                "tokens": tokens,
                "chunk": chunk,
                "dtype": dtype.name(),
                "flops_per_token": flops,
                "seconds": result.seconds,
                "tokens_per_second": result.tokens_per_second,
                "gflops": result.gflops,
                "backend_gemm_gflops": measured(&result.gemm_gflops, gemm),
                "ratio_to_gemm": measured(&result.gemm_ratios, gemm_ratio),
                "weight_bytes": result.weight_bytes,
                "memory_gbs": measured(&result.bandwidth_gbs, bandwidth),
                "ratio_to_bandwidth": measured(&result.bandwidth_ratios, bandwidth_ratio),
            })
        )
    } else {
        let mut text = format!(
            "{} on {} (threads {}, batch {}, {} tokens per document, chunk {}, {} weights)\n",
            name,
            args.backend,
            args.threads,
            args.batch,
            tokens,
            chunk,
            dtype.name()
        );
        text += &format!("  {:.0} tokens/s (median of {})\n", result.tokens_per_second, result.seconds.len());
        text +=
            &format!("  {:.1} GFLOP/s of the model's arithmetic ({:.1} MFLOP per token)\n", result.gflops, flops / 1e6);
        if !result.gemm_ratios.is_empty() {
            text += &format!(
                "  {:.1} GFLOP/s single-precision GEMM ({n}x{n}x{n}, before each repetition; {:.1} to {:.1}); \
                 ratio {:.0}% ({:.0}% to {:.0}%)\n",
                gemm.1,
                gemm.0,
                gemm.2,
                100.0 * gemm_ratio.1,
                100.0 * gemm_ratio.0,
                100.0 * gemm_ratio.2,
                n = args.gemm_size
            );
        }
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
