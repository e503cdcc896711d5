//! `brt eval --model M FILES...`: score whole files, streamed in constant memory.

use super::{open, parse_backend, ModelOptions};
use brt::backend::{run_on_with, BackendOptions};
use brt::eval::{score_file, Score};
use brt::model_file::LoadedModel;
use brt::plot::{plot_by_position, Curve};
use brt::tokenizer::Tokenizer;
use brt::{refuse_to_overwrite_inputs, BackendJob, BackendKind, Engine, Error};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// The model (official Meliad checkpoint or brt weights; default: the built-in
    /// model); repeat to compare several on the same files (one curve each in the
    /// plot).
    #[arg(long)]
    model: Vec<PathBuf>,
    /// Files to score, each one document, or folders of them.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// `bytes` (the official byte vocabulary), `ids` (numbers separated by white
    /// space) or a tokenizer.json path.
    #[arg(long, default_value = "bytes")]
    tokenizer: String,
    /// Compute backend.
    #[arg(long, value_parser = parse_backend, default_value_t = BackendKind::default_kind())]
    backend: BackendKind,
    /// Worker threads of the CPU backend (0: all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Tokens per call (memory grows with it, speed too).
    #[arg(long, default_value_t = 512)]
    chunk: usize,
    /// Score only the first N bytes of each file.
    #[arg(long, value_name = "N")]
    max_bytes: Option<u64>,
    /// Also report the predictions from these positions on (0-based in each
    /// document), comma separated; default: the model's window W (where the
    /// attention no longer reaches the document's start, so only the recurrent
    /// state sees further back) and 4096 (the paper's segment).
    #[arg(long, value_name = "POSITIONS", value_delimiter = ',')]
    beyond: Option<Vec<u64>>,
    /// Draw bits per byte against position (averaged over files) to this PNG.
    #[arg(long, value_name = "FILE.png")]
    plot: Option<PathBuf>,
    /// Print the results as JSON.
    #[arg(long)]
    json: bool,
    /// Save the state after the (single) file, to continue it with
    /// `brt generate --resume`.
    #[arg(long, value_name = "FILE")]
    save_session: Option<PathBuf>,
    #[command(flatten)]
    options: ModelOptions,
}

struct EvalJob<'a> {
    args: &'a EvalArgs,
    /// The files, folders expanded.
    files: &'a [PathBuf],
    weights: &'a LoadedModel,
    tokenizer: &'a Tokenizer,
}

struct Results {
    files: Vec<(PathBuf, Score)>,
    seconds: f64,
}

impl BackendJob for EvalJob<'_> {
    type Output = Results;

    fn run<K: brt::backend::FileWeights>(self, k: K) -> Result<Results, Error>
    where
        Error: From<K::Error>,
    {
        let args = self.args;
        let total: u64 = self.files.iter().filter_map(|f| std::fs::metadata(f).ok()).map(|m| m.len()).sum();
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template("{spinner} {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let mut engine = Engine::load(k, self.weights)?;
        let beyond = match &args.beyond {
            Some(positions) => positions.clone(),
            None => vec![engine.config().window as u64, 4096],
        };
        let mut session = engine.session(1, args.chunk)?;
        let started = Instant::now();
        let mut files = Vec::new();
        let mut done_bytes = 0;
        for path in self.files {
            session.reset(&mut engine)?;
            bar.set_message(path.display().to_string());
            let mut progress = |bytes: u64| bar.set_position(done_bytes + bytes);
            let score =
                score_file(&mut engine, &mut session, self.tokenizer, path, args.max_bytes, &beyond, &mut progress)?;
            done_bytes += score.bytes;
            files.push((path.clone(), score));
        }
        bar.finish_and_clear();
        if let Some(out) = &args.save_session {
            session.save(&mut engine, out)?;
        }
        Ok(Results { files, seconds: started.elapsed().as_secs_f64() })
    }
}

/// One model's results.
struct ModelResults {
    model: PathBuf,
    results: Results,
    all: Score,
}

pub fn run(args: EvalArgs) -> Result<(), Error> {
    if args.chunk == 0 {
        return Err(Error::Invalid("--chunk must be positive".into()));
    }
    let files = brt::list_files(&args.files)?;
    if files.is_empty() {
        return Err(Error::Invalid("no file to score (the folders given hold no files)".into()));
    }
    if args.save_session.is_some() && (files.len() != 1 || args.model.len() > 1) {
        return Err(Error::Invalid("--save-session needs exactly one model and one file (one document)".into()));
    }
    if let Some(out) = &args.save_session {
        let inputs: Vec<&Path> = args.model.iter().chain(&files).map(PathBuf::as_path).collect();
        refuse_to_overwrite_inputs(out, &inputs)?;
    }
    let tokenizer = Tokenizer::from_spec(&args.tokenizer)?;
    let bytes_tokenizer = tokenizer.is_bytes();
    let mut models = Vec::new();
    let paths: Vec<Option<&std::path::Path>> = match args.model.as_slice() {
        [] => vec![None],
        many => many.iter().map(|p| Some(p.as_path())).collect(),
    };
    for path in paths {
        let model = path.map_or_else(|| PathBuf::from("(built-in model)"), std::path::Path::to_path_buf);
        let weights = open(path, args.options)?;
        tokenizer.check_model(weights.tokenizer())?;
        let results = run_on_with(
            args.backend,
            BackendOptions::for_config(weights.config(), args.threads),
            EvalJob { args: &args, files: &files, weights: &weights, tokenizer: &tokenizer },
        )?;
        let mut all = Score::default();
        for (_, s) in &results.files {
            all.add(s);
        }
        models.push(ModelResults { model, results, all });
    }
    let unit = if bytes_tokenizer { "byte" } else { "token" };
    if let Some(plot) = &args.plot {
        let curves: Vec<Curve<'_>> = models
            .iter()
            .map(|m| Curve {
                name: format!("{} ({} file(s))", model_name(&m.model), m.results.files.len()),
                score: &m.all,
            })
            .collect();
        let title = format!("bits per {unit} by position in the document");
        plot_by_position(plot, &title, unit, &curves)?;
    }
    let file_json = |path: &PathBuf, s: &Score| {
        serde_json::json!({
            "file": path.display().to_string(),
            "bytes": s.bytes,
            "tokens": s.tokens,
            "predictions": s.predictions,
            "nats_per_token": s.nats_per_token(),
            "bits_per_token": s.bits_per_token(),
            "bits_per_byte": s.bits_per_byte(bytes_tokenizer),
        })
    };
    let text = if args.json {
        let per_model: Vec<_> = models
            .iter()
            .map(|m| {
                let by_position: Vec<_> = m
                    .all
                    .by_position
                    .iter()
                    .enumerate()
                    .filter(|(_, (_, n))| *n > 0)
                    .map(|(b, (nats, n))| {
                        serde_json::json!({
                            "from_position": brt::eval::bin_start(b),
                            "predictions": n,
                            "bits_per_token": nats / *n as f64 / std::f64::consts::LN_2,
                        })
                    })
                    .collect();
                serde_json::json!({
                    "model": m.model.display().to_string(),
                    "files": m.results.files.iter().map(|(p, s)| file_json(p, s)).collect::<Vec<_>>(),
                    "total": file_json(&PathBuf::from("(all)"), &m.all),
                    "by_position": by_position,
                    "beyond": m.all.beyond.iter().map(|b| serde_json::json!({
                        "from_position": b.from,
                        "predictions": b.predictions,
                        "bits_per_token": b.bits_per_token(),
                    })).collect::<Vec<_>>(),
                    "seconds": m.results.seconds,
                    "tokens_per_second": m.all.tokens as f64 / m.results.seconds.max(1e-9),
                })
            })
            .collect();
        let json = serde_json::json!({
            "backend": args.backend.name(),
            "tokenizer": tokenizer.name(),
            "convention": "every token after the first of each file is predicted from all before it",
            "models": per_model,
        });
        format!("{json:#}\n")
    } else {
        let mut text = String::new();
        for m in &models {
            if models.len() > 1 {
                text += &format!("{}:\n", m.model.display());
            }
            for (path, s) in &m.results.files {
                text += &format!(
                    "{}: {} tokens, {:.4} nats/token, {:.4} bits/token, {:.4} bits/byte\n",
                    path.display(),
                    s.tokens,
                    s.nats_per_token(),
                    s.bits_per_token(),
                    s.bits_per_byte(bytes_tokenizer)
                );
            }
            text += &format!(
                "total: {} predictions, {:.4} nats/token, {:.4} bits/token, {:.4} bits/byte, {:.0} tokens/s ({})\n",
                m.all.predictions,
                m.all.nats_per_token(),
                m.all.bits_per_token(),
                m.all.bits_per_byte(bytes_tokenizer),
                m.all.tokens as f64 / m.results.seconds.max(1e-9),
                args.backend
            );
            for b in &m.all.beyond {
                text += &format!(
                    "  from position {} on: {} predictions, {:.4} bits/token\n",
                    b.from,
                    b.predictions,
                    b.bits_per_token()
                );
            }
        }
        text
    };
    super::print(&text);
    Ok(())
}

/// A short name for a model file: its stem, with its folder when the stem is the
/// generic `model` that `brt train` writes.
fn model_name(path: &std::path::Path) -> String {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    match path.parent().and_then(|p| p.file_name()) {
        Some(folder) if stem == "model" => format!("{}/{stem}", folder.to_string_lossy()),
        _ => stem,
    }
}
