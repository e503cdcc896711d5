//! `brt bench --config small|paper`: tokens/s and achieved GFLOP/s of a stream.

use super::parse_backend;
use brt::bench::{forward_flops_per_token, named_config, random_loaded_model, BenchJob, BenchSpec};
use brt::{BackendKind, Error};
use clap::Args;

use super::convert::DtypeArg;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// `small`, `paper` (the issue tracker's configurations) or `tiny`.
    #[arg(long, default_value = "small")]
    config: String,
    /// Compute backend.
    #[arg(long, value_parser = parse_backend, default_value_t = BackendKind::default_kind())]
    backend: BackendKind,
    /// Worker threads (CPU backend; 0: all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Tokens streamed per document per repetition.
    #[arg(long, default_value_t = 8192)]
    tokens: usize,
    /// Documents side by side.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Tokens per document per call.
    #[arg(long, default_value_t = 2048)]
    chunk: usize,
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
    if args.tokens == 0 || args.batch == 0 || args.chunk == 0 {
        return Err(Error::Invalid("--tokens, --batch and --chunk must be positive".into()));
    }
    let config = named_config(&args.config)?;
    let weights = random_loaded_model(&config, args.dtype.into(), 0)?;
    let spec = BenchSpec {
        batch: args.batch,
        tokens: args.tokens,
        chunk: args.chunk,
        repetitions: args.repetitions,
        gemm_size: args.gemm_size,
    };
    let options = brt::backend::BackendOptions::for_config(&config, args.threads);
    let result = brt::backend::run_on_with(args.backend, options, BenchJob { weights: &weights, spec })?;
    let flops = forward_flops_per_token(&config);
    let ratio = result.backend_gemm_gflops.map(|g| result.gflops / g);
    let text = if args.json {
        format!(
            "{:#}\n",
            serde_json::json!({
                "config": args.config,
                "backend": args.backend.name(),
                "threads": args.threads,
                "batch": args.batch,
                "tokens": args.tokens,
                "chunk": args.chunk,
                "dtype": format!("{:?}", args.dtype).to_lowercase(),
                "flops_per_token": flops,
                "seconds": result.seconds,
                "tokens_per_second": result.tokens_per_second,
                "gflops": result.gflops,
                "backend_gemm_gflops": result.backend_gemm_gflops,
                "ratio_to_gemm": ratio,
            })
        )
    } else {
        let mut text = format!(
            "config {} on {} (threads {}, batch {}, {} tokens per document, chunk {}, {:?} weights)\n",
            args.config, args.backend, args.threads, args.batch, args.tokens, args.chunk, args.dtype
        );
        text += &format!("  {:.0} tokens/s (median of {})\n", result.tokens_per_second, result.seconds.len());
        text +=
            &format!("  {:.1} GFLOP/s of the model's arithmetic ({:.1} MFLOP per token)\n", result.gflops, flops / 1e6);
        if let (Some(g), Some(r)) = (result.backend_gemm_gflops, ratio) {
            text += &format!(
                "  {g:.1} GFLOP/s single-precision GEMM ({n}x{n}x{n}, same run); ratio {:.0}%\n",
                100.0 * r,
                n = args.gemm_size
            );
        }
        text
    };
    super::print(&text);
    Ok(())
}
