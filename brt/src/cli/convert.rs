//! `brt convert IN OUT`.

use super::{load, ModelOptions};
use brt::{refuse_to_overwrite_inputs, Error};
use brt_core::WeightDtype;
use clap::{Args, ValueEnum};
use std::path::PathBuf;

/// Storage type of converted weights.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum DtypeArg {
    /// 32-bit floats.
    F32,
    /// 16-bit IEEE floats (half the memory).
    F16,
    /// bfloat16 (half the memory).
    Bf16,
}

impl From<DtypeArg> for WeightDtype {
    fn from(d: DtypeArg) -> Self {
        match d {
            DtypeArg::F32 => WeightDtype::F32,
            DtypeArg::F16 => WeightDtype::F16,
            DtypeArg::Bf16 => WeightDtype::Bf16,
        }
    }
}

/// The format of the written file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// brt weights: safetensors with the configuration in its metadata.
    Safetensors,
    /// The deployable model file: GGUF, aligned tensors used in place, checksum.
    Gguf,
}

#[derive(Args, Debug)]
pub struct ConvertArgs {
    /// The model to read (official Meliad checkpoint, brt weights or model file).
    input: PathBuf,
    /// Where to write: a model file (GGUF) when the name ends in `.gguf`, brt
    /// weights (safetensors) otherwise.
    output: PathBuf,
    /// Storage type of the written weights (default: that of the input).
    #[arg(long, value_enum)]
    dtype: Option<DtypeArg>,
    /// The format to write (default: from the output's extension).
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    #[command(flatten)]
    model: ModelOptions,
}

pub fn run(args: ConvertArgs) -> Result<(), Error> {
    refuse_to_overwrite_inputs(&args.output, &[&args.input])?;
    let weights = load(Some(&args.input), args.model)?;
    let weights = match args.dtype {
        Some(d) => weights.with_dtype(d.into()),
        None => weights,
    };
    let gguf = args.output.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf"));
    let format = args.format.unwrap_or(if gguf { FormatArg::Gguf } else { FormatArg::Safetensors });
    match format {
        FormatArg::Gguf => brt::gguf::save(&weights, &args.output)?,
        FormatArg::Safetensors => brt::format::save(&weights, &args.output)?,
    }
    let name = if format == FormatArg::Gguf { "model file (GGUF)" } else { "brt weights (safetensors)" };
    eprintln!(
        "wrote {} ({name}, {} parameters, {})",
        args.output.display(),
        weights.layout().len(),
        weights.dtype().name()
    );
    Ok(())
}
