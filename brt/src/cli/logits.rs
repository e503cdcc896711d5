//! `brt logits --model M --input IN --output OUT`.

use super::{open, parse_backend, ModelOptions};
use brt::backend::{run_on_with, BackendOptions};
use brt::logits::{read_tokens, write_logits, LogitsJob};
use brt::{refuse_to_overwrite_inputs, BackendKind, Error};
use clap::Args;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct LogitsArgs {
    /// The model (official Meliad checkpoint or brt weights; default: the built-in
    /// model).
    #[arg(long)]
    model: Option<PathBuf>,
    /// safetensors file with `tokens` [documents, tokens] (int32 or int64); every
    /// document starts fresh.
    #[arg(long)]
    input: PathBuf,
    /// Where to write `logits` [documents, tokens, vocabulary] (float32).
    #[arg(long)]
    output: PathBuf,
    /// Compute backend.
    #[arg(long, value_parser = parse_backend, default_value_t = BackendKind::default_kind())]
    backend: BackendKind,
    /// Worker threads of the CPU backend (0: all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Most tokens per document in one call (memory grows with it).
    #[arg(long, default_value_t = 512)]
    chunk: usize,
    #[command(flatten)]
    options: ModelOptions,
}

pub fn run(args: LogitsArgs) -> Result<(), Error> {
    if args.chunk == 0 {
        return Err(Error::Invalid("--chunk must be positive".into()));
    }
    let inputs: Vec<&Path> = args.model.iter().map(PathBuf::as_path).chain([args.input.as_path()]).collect();
    refuse_to_overwrite_inputs(&args.output, &inputs)?;
    let weights = open(args.model.as_deref(), args.options)?;
    let tokens = read_tokens(&args.input)?;
    let logits = run_on_with(
        args.backend,
        BackendOptions::for_config(weights.config(), args.threads),
        LogitsJob { weights: &weights, tokens: &tokens, chunk: args.chunk },
    )?;
    write_logits(&args.output, &logits, tokens.batch(), tokens.len(), weights.config().vocab)
}
