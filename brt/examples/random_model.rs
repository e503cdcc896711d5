//! Writes a model of a named configuration (`tiny`, `small`, `paper`: those of
//! `brt bench`) with the official initialisation, for measuring loading and
//! memory without a trained model. The format follows the extension: a model
//! file for `.gguf`, brt weights (safetensors) otherwise.
//!
//! ```sh
//! cargo run --release -p brt --example random_model -- paper f16 /tmp/paper.gguf
//! ```

use brt::{ModelWeights, WeightBuffer};
use brt_core::{WeightDtype, WeightLayout};
use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [name, dtype, out] = args.as_slice() else {
        return Err("usage: random_model CONFIG f32|f16|bf16|q8_0 OUT(.gguf|.safetensors)".into());
    };
    let config = brt::bench::named_config(name)?;
    let dtype = match dtype.as_str() {
        "f32" => WeightDtype::F32,
        "f16" => WeightDtype::F16,
        "bf16" => WeightDtype::Bf16,
        "q8_0" => WeightDtype::Q8_0,
        other => return Err(format!("unknown storage type `{other}`").into()),
    };
    let mut flat = vec![0f32; WeightLayout::new(&config)?.len()];
    brt_core::init::initialize(&config, 1, &mut flat)?;
    let weights = ModelWeights::new(config, WeightBuffer::F32(flat))?;
    let out = Path::new(out);
    if out.extension().is_some_and(|e| e == "gguf") {
        brt::gguf::save(&weights, out, dtype)?;
    } else {
        brt::format::save(&weights.with_dtype(dtype)?, out)?;
    }
    println!("{}: {name}, {} parameters, {}", out.display(), weights.layout().len(), dtype.name());
    Ok(())
}
