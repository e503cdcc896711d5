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
    /// 8-bit blocks (GGML's Q8_0) for the matrices, f32 for the vectors: about a
    /// quarter of f32's memory; model files (.gguf) only, run by the CPU backend.
    #[value(name = "q8_0")]
    Q8_0,
}

impl From<DtypeArg> for WeightDtype {
    fn from(d: DtypeArg) -> Self {
        match d {
            DtypeArg::F32 => WeightDtype::F32,
            DtypeArg::F16 => WeightDtype::F16,
            DtypeArg::Bf16 => WeightDtype::Bf16,
            DtypeArg::Q8_0 => WeightDtype::Q8_0,
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
    /// Storage type of the written weights (default: that of the input; f32 for
    /// a q8_0 model file, whose values are read as f32).
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
    let gguf = args.output.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf"));
    let format = args.format.unwrap_or(if gguf { FormatArg::Gguf } else { FormatArg::Safetensors });
    let weights = load(Some(&args.input), args.model)?;
    let dtype = args.dtype.map_or(weights.dtype(), WeightDtype::from);
    match format {
        // The model file encodes the weights itself (Q8_0 blocks included).
        FormatArg::Gguf => brt::gguf::save(&weights, &args.output, dtype)?,
        FormatArg::Safetensors if dtype == WeightDtype::Q8_0 => {
            return Err(Error::Invalid(
                "q8_0 weights are stored in model files only: give an output name ending in .gguf (or --format gguf)"
                    .into(),
            ))
        }
        FormatArg::Safetensors => brt::format::save(&weights.with_dtype(dtype)?, &args.output)?,
    }
    let name = if format == FormatArg::Gguf { "model file (GGUF)" } else { "brt weights (safetensors)" };
    eprintln!("wrote {} ({name}, {} parameters, {})", args.output.display(), weights.layout().len(), dtype.name());
    Ok(())
}
