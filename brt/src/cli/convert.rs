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

#[derive(Args, Debug)]
pub struct ConvertArgs {
    /// The model to read (official Meliad checkpoint or brt weights).
    input: PathBuf,
    /// Where to write brt weights (safetensors).
    output: PathBuf,
    /// Storage type of the written weights (default: that of the input).
    #[arg(long, value_enum)]
    dtype: Option<DtypeArg>,
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
    brt::format::save(&weights, &args.output)?;
    eprintln!("wrote {} ({} parameters, {})", args.output.display(), weights.layout().len(), weights.dtype().name());
    Ok(())
}
