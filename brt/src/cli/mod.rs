//! Command-line parsing and dispatch. Every failure prints one clear message and
//! exits with status 1 (2 for a malformed command line); nothing panics.

mod bench;
mod convert;
mod eval;
mod generate;
mod info;
mod logits;
mod recall;
mod train;

use brt::meliad::ImportOptions;
use brt::{BackendKind, Error};
use clap::{Args, Parser, Subcommand};
use std::process::ExitCode;

/// Block-Recurrent Transformers: convert, inspect and run models.
#[derive(Parser, Debug)]
#[command(name = "brt", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Convert a model (official checkpoint or brt weights) to brt weights.
    Convert(convert::ConvertArgs),
    /// Show a model's configuration, parameter count and memory sizes.
    Info(info::InfoArgs),
    /// Compute the logits of token documents ([B, T] in a safetensors file).
    Logits(logits::LogitsArgs),
    /// Score files (bits per byte), streamed in constant memory.
    Eval(eval::EvalArgs),
    /// Continue a prompt, streaming the text as it is written.
    Generate(generate::GenerateArgs),
    /// Measure tokens/s and GFLOP/s of a named configuration with random weights.
    Bench(bench::BenchArgs),
    /// Train a model on documents.
    Train(Box<train::TrainArgs>),
    /// The long-range recall task: write its documents, score a model's recall.
    Recall(recall::RecallArgs),
}

/// How to read a model file.
#[derive(Args, Debug, Clone, Copy, Default)]
struct ModelOptions {
    /// Use abs() on learned attention scales (as later official code does).
    #[arg(long)]
    abs_attention_scale: bool,
    /// Window W, for official checkpoints that carry no cached keys.
    #[arg(long, value_name = "W")]
    window: Option<usize>,
}

impl ModelOptions {
    fn import(&self) -> ImportOptions {
        ImportOptions { abs_attention_scale: self.abs_attention_scale, window: self.window }
    }
}

/// A model path with its options, loaded in either format; without a path, the
/// built-in default model.
fn load(path: Option<&std::path::Path>, options: ModelOptions) -> Result<brt::ModelWeights, Error> {
    match path {
        Some(path) => brt::load_model(path, options.import()),
        None => {
            let mut model = brt::default_model()?;
            if options.abs_attention_scale {
                model.set_abs_attention_scale(true);
            }
            Ok(model)
        }
    }
}

/// A model path with its options, opened for running (a model file is mapped
/// and used in place); without a path, the built-in default model.
fn open(path: Option<&std::path::Path>, options: ModelOptions) -> Result<brt::model_file::LoadedModel, Error> {
    match path {
        Some(path) => brt::model_file::open_model(path, options.import()),
        None => load(None, options).map(brt::model_file::LoadedModel::InMemory),
    }
}

fn parse_backend(s: &str) -> Result<BackendKind, String> {
    s.parse::<BackendKind>().map_err(|e| e.to_string())
}

/// Writes `text` to standard output; a closed pipe (`brt info | head`) is not an
/// error worth a message.
fn print(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush());
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(2) } else { ExitCode::SUCCESS };
        }
    };
    let result = match cli.command {
        Command::Convert(args) => convert::run(args),
        Command::Info(args) => info::run(args),
        Command::Logits(args) => logits::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Generate(args) => generate::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Train(args) => train::run(*args),
        Command::Recall(args) => recall::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
