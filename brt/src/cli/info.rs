//! `brt info MODEL`.

use super::{open, ModelOptions};
use brt::config_file::{gate_name, layout_name};
use brt::model_file::LoadedModel;
use brt::Error;
use brt_core::{Plan, TokenAttention};
use clap::Args;
use std::fmt::Write as _;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct InfoArgs {
    /// The model (official Meliad checkpoint or brt weights; default: the built-in
    /// model).
    model: Option<PathBuf>,
    #[command(flatten)]
    options: ModelOptions,
}

fn mib(elements: usize, bytes_per: usize) -> String {
    format!("{:.2} MiB", (elements * bytes_per) as f64 / (1024.0 * 1024.0))
}

pub fn run(args: InfoArgs) -> Result<(), Error> {
    let model = open(args.model.as_deref(), args.options)?;
    let mut out = String::new();
    let c = model.config();
    let parameters = brt_core::WeightLayout::new(c)?.len();
    let list = |s: brt_core::LayerSet| s.iter().map(|l| l.to_string()).collect::<Vec<_>>().join(", ");
    let _ = match &args.model {
        Some(path) => writeln!(out, "model: {}", path.display()),
        None => writeln!(out, "model: the built-in default model"),
    };
    let _ = writeln!(out, "  vocabulary        {}", c.vocab);
    let _ = writeln!(out, "  width d           {}", c.d_model);
    let _ = writeln!(out, "  heads x head dim  {} x {}", c.heads, c.head_dim);
    let _ = writeln!(out, "  MLP hidden        {}", c.mlp_hidden);
    let _ = writeln!(out, "  layers            {}", c.layers);
    let _ = writeln!(out, "  window W          {}", c.window);
    if c.recurrent.is_empty() {
        let _ = writeln!(out, "  recurrent layers  none (sliding-window Transformer)");
    } else {
        let _ = writeln!(out, "  recurrent layers  {} (states S = {})", list(c.recurrent), c.states);
        let _ = writeln!(out, "  gate / layout     {} / {}", gate_name(c.gate), layout_name(c.layout));
        let _ = writeln!(out, "  feedback          {}", if c.feedback { "on" } else { "off" });
    }
    let linear: Vec<usize> = (0..c.layers).filter(|&l| c.token_attention(l) == TokenAttention::Linear).collect();
    if !linear.is_empty() {
        let _ = writeln!(out, "  linear attention  layers {linear:?}");
    }
    let _ = writeln!(out, "  abs(scale)        {}", if c.abs_attention_scale { "yes" } else { "no" });
    let _ = writeln!(out, "  trained with      {}", model.tokenizer().unwrap_or("(not recorded)"));
    let _ = writeln!(out, "parameters: {parameters} stored as {}", model.dtype().name());
    let weight_bytes = match &model {
        LoadedModel::Mapped(file) => file.byte_layout().len(),
        LoadedModel::InMemory(w) => parameters * w.dtype().size().unwrap_or(4),
    };
    let _ = writeln!(out, "  weights           {}", mib(weight_bytes, 1));
    if let LoadedModel::Mapped(file) = &model {
        let _ = writeln!(out, "model file (GGUF {}, brt format {}):", brt_gguf::GGUF_VERSION, file.format_version());
        if let Some(name) = file.name() {
            let _ = writeln!(out, "  name              {name}");
        }
        let _ = writeln!(out, "  file              {} bytes", file.file_len());
        let _ = writeln!(out, "  alignment         {} bytes", file.alignment());
        let _ = writeln!(out, "  data CRC-32       {:#010x} (checked)", file.crc32());
        let _ =
            writeln!(out, "  weights in place  {} (mapped, not read into memory)", mib(file.byte_layout().len(), 1));
    }
    let plan = Plan::new(c, 1, c.window)?;
    let _ = writeln!(out, "per document (batch row), calls of one block:");
    let _ = writeln!(out, "  KV caches         {}", mib(plan.kv_cache_len(), 4));
    let _ = writeln!(out, "  recurrent states  {}", mib(plan.recurrent_state_len(), 4));
    let _ = writeln!(out, "  linear sums       {}", mib(plan.linear_state_len(), 4));
    let _ = writeln!(out, "  scratch           {}", mib(plan.scratch().total(), 4));
    super::print(&out);
    Ok(())
}
