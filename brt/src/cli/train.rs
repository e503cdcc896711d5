//! `brt train`: learn a model from long documents.

use super::convert::DtypeArg;
use super::parse_backend;
use brt::backend::{run_training_on, BackendOptions, TrainingJob};
use brt::bench::named_config;
use brt::config_file::{parse_gate, parse_layout};
use brt::plot::{plot_lines, Series};
use brt::tokenizer::Tokenizer;
use brt::train::data::Corpus;
use brt::train::optim::{Decay, Schedule};
use brt::train::{TrainOptions, Trainer};
use brt::{BackendKind, Error, ModelWeights};
use brt_core::{Config, Gradients, LayerSet};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum DecayArg {
    /// Half a cosine down to --min-lr.
    Cosine,
    /// Inverse square root (the official schedule).
    Rsqrt,
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Training documents: files, or folders whose files are documents.
    #[arg(long, required = true, num_args = 1..)]
    data: Vec<PathBuf>,
    /// Held-out documents scored every --eval-every steps.
    #[arg(long, num_args = 1..)]
    holdout: Vec<PathBuf>,
    /// Output folder: checkpoint, final model, loss curve, log.
    #[arg(long, default_value = "brt-run")]
    out: PathBuf,
    /// Continue from a checkpoint written by an earlier run (its settings are used;
    /// --steps may extend it).
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Start from these weights instead of a fresh initialisation.
    #[arg(long, conflicts_with = "resume")]
    init: Option<PathBuf>,
    /// A named configuration (tiny, small, paper) to start from; flags below
    /// override its fields.
    #[arg(long, default_value = "tiny")]
    preset: String,
    /// Model width.
    #[arg(long)]
    d_model: Option<usize>,
    /// Attention heads.
    #[arg(long)]
    heads: Option<usize>,
    /// Head width.
    #[arg(long)]
    head_dim: Option<usize>,
    /// MLP hidden width.
    #[arg(long)]
    mlp: Option<usize>,
    /// Layers.
    #[arg(long)]
    layers: Option<usize>,
    /// Window = block length.
    #[arg(long)]
    window: Option<usize>,
    /// State vectors.
    #[arg(long)]
    states: Option<usize>,
    /// Recurrent layer indices, comma separated (negative count from the top;
    /// `none` for a sliding-window Transformer).
    #[arg(long, allow_hyphen_values = true)]
    recurrent: Option<String>,
    /// `fixed` or `lstm`.
    #[arg(long)]
    gate: Option<String>,
    /// `skip`, `single` or `dual`.
    #[arg(long)]
    layout: Option<String>,
    /// Feedback mode.
    #[arg(long)]
    feedback: bool,
    /// Steps in all.
    #[arg(long, default_value_t = 1000)]
    steps: u64,
    /// Documents read side by side.
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Tokens per row per step (default: 4 windows).
    #[arg(long)]
    segment: Option<usize>,
    /// Peak learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f32,
    /// Final learning rate of the cosine decay.
    #[arg(long, default_value_t = 1e-4)]
    min_lr: f32,
    /// Warmup steps.
    #[arg(long, default_value_t = 100)]
    warmup: u64,
    /// Decay after the warmup.
    #[arg(long, value_enum, default_value = "cosine")]
    decay: DecayArg,
    /// Clip the gradient to this global norm (0: never).
    #[arg(long, default_value_t = 1.0)]
    clip: f32,
    /// Weight decay of the matrices.
    #[arg(long, default_value_t = 0.0)]
    weight_decay: f32,
    /// Seed of the initialisation and the data order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Write a checkpoint every N steps (and at the end).
    #[arg(long, default_value_t = 200)]
    checkpoint_every: u64,
    /// Score the held-out documents every N steps (and at the end).
    #[arg(long, default_value_t = 200)]
    eval_every: u64,
    /// Score at most this many bytes of each held-out document.
    #[arg(long)]
    eval_bytes: Option<u64>,
    /// Storage type of the final model.
    #[arg(long, value_enum, default_value = "f32")]
    save_dtype: DtypeArg,
    /// `bytes` (the official byte vocabulary) or a tokenizer.json path (a subword
    /// model: the vocabulary size comes from it). The model records it, and
    /// `eval` and `generate` check they are given the same.
    #[arg(long, default_value = "bytes")]
    tokenizer: String,
    /// Compute backend (needs gradients: reference or cpu).
    #[arg(long, value_parser = parse_backend, default_value_t = BackendKind::default_kind())]
    backend: BackendKind,
    /// Worker threads (CPU backend; 0: all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

fn parse_layers(text: &str, layers: usize) -> Result<LayerSet, Error> {
    if text == "none" || text.is_empty() {
        return Ok(LayerSet::EMPTY);
    }
    let indices = text
        .split(',')
        .map(|s| {
            s.trim().parse::<i64>().map_err(|_| Error::Invalid(format!("--recurrent: `{s}` is not a layer index")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(LayerSet::from_indices(&indices, layers)?)
}

/// The configuration from the preset, the flags and the tokenizer's vocabulary.
fn config(args: &TrainArgs, tokenizer: &Tokenizer) -> Result<Config, Error> {
    let mut c = named_config(&args.preset)?;
    c.vocab = tokenizer.vocab_size().unwrap_or(c.vocab);
    let recurrent: Vec<i64> = c.recurrent.iter().map(|l| l as i64).collect();
    c.d_model = args.d_model.unwrap_or(c.d_model);
    c.heads = args.heads.unwrap_or(c.heads);
    c.head_dim = args.head_dim.unwrap_or(c.head_dim);
    c.mlp_hidden = args.mlp.unwrap_or(c.mlp_hidden);
    c.window = args.window.unwrap_or(c.window);
    c.states = args.states.unwrap_or(c.states);
    if let Some(layers) = args.layers {
        // Keep the preset's recurrent layer at the same place from the top.
        let from_top: Vec<i64> = recurrent.iter().map(|&l| l - c.layers as i64).collect();
        c.layers = layers;
        c.recurrent = LayerSet::from_indices(&from_top, layers)?;
    }
    if let Some(r) = &args.recurrent {
        c.recurrent = parse_layers(r, c.layers)?;
    }
    if let Some(g) = &args.gate {
        c.gate = parse_gate(g)?;
    }
    if let Some(l) = &args.layout {
        c.layout = parse_layout(l)?;
    }
    c.feedback = args.feedback;
    c.validate()?;
    Ok(c)
}

struct TrainRun<'a> {
    args: &'a TrainArgs,
    corpus: Corpus,
    holdout: Vec<PathBuf>,
    start: Option<ModelWeights>,
    tokenizer: Tokenizer,
}

impl TrainingJob for TrainRun<'_> {
    type Output = ();

    fn run<G: Gradients>(self, g: G) -> Result<(), Error>
    where
        Error: From<G::Error>,
    {
        let args = self.args;
        let mut trainer = match (&args.resume, &self.start) {
            (Some(checkpoint), _) => {
                let mut t = Trainer::resume(g, checkpoint)?;
                t.set_total_steps(args.steps.max(t.step_count()));
                t
            }
            (None, Some(start)) => {
                let segment = args.segment.unwrap_or(4 * start.config().window);
                let options = TrainOptions {
                    batch: args.batch,
                    segment,
                    steps: args.steps,
                    schedule: Schedule {
                        peak: args.lr,
                        floor: args.min_lr,
                        warmup: args.warmup,
                        total: args.steps,
                        decay: match args.decay {
                            DecayArg::Cosine => Decay::Cosine,
                            DecayArg::Rsqrt => Decay::Rsqrt,
                        },
                    },
                    clip: args.clip,
                    weight_decay: args.weight_decay,
                    seed: args.seed,
                };
                Trainer::new(g, start, options)?
            }
            (None, None) => return Err(Error::Invalid("nothing to start from".into())),
        };
        std::fs::create_dir_all(&args.out).map_err(|e| Error::io(&args.out, e))?;
        let tokenizer = &self.tokenizer;
        let total = trainer.options().steps;
        let tokens_per_step = (trainer.options().batch * trainer.options().segment) as f64;
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} steps {msg} eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_position(trainer.step_count());
        let started = Instant::now();
        let first_step = trainer.step_count();
        let mut recent = Vec::new();
        // Time in the training steps alone (not in evaluations or checkpoints).
        let mut stepping = 0f64;
        while trainer.step_count() < total {
            let step_started = Instant::now();
            let report = trainer.step(&self.corpus)?;
            stepping += step_started.elapsed().as_secs_f64();
            recent.push(report.loss);
            if recent.len() > 50 {
                recent.remove(0);
            }
            let rate = (trainer.step_count() - first_step) as f64 * tokens_per_step / started.elapsed().as_secs_f64();
            let mean = recent.iter().sum::<f64>() / recent.len() as f64;
            let status = format!("loss {:.3} bits/token, {rate:.0} tokens/s", mean / std::f64::consts::LN_2);
            let step = trainer.step_count();
            // Without a terminal the bar is hidden: a line every hundredth of the run.
            if bar.is_hidden() && step % (total / 100).max(1) == 0 {
                eprintln!("step {step}/{total}: {status}");
            }
            bar.set_message(status);
            bar.set_position(step);
            let last = step == total;
            if !self.holdout.is_empty() && (step % args.eval_every == 0 || last) {
                let score = trainer.evaluate(&self.holdout, tokenizer, args.eval_bytes)?;
                let line = format!(
                    "step {step}: held-out {:.4} bits/byte, training {:.4} bits/token",
                    score.bits_per_byte(tokenizer.is_bytes()),
                    mean / std::f64::consts::LN_2
                );
                if bar.is_hidden() {
                    eprintln!("{line}");
                } else {
                    bar.println(line);
                }
            }
            if step % args.checkpoint_every == 0 || last {
                trainer.save_checkpoint(&args.out.join("checkpoint.safetensors"))?;
                write_outputs(&trainer, args)?;
            }
        }
        bar.finish_and_clear();
        let seconds = started.elapsed().as_secs_f64();
        let steps = trainer.step_count() - first_step;
        super::print(&format!(
            "trained {steps} steps in {seconds:.0} s ({:.0} tokens/s; {:.0} tokens/s in the steps alone, without \
             evaluations and checkpoints); model, checkpoint and loss curve in {}\n",
            steps as f64 * tokens_per_step / seconds.max(1e-9),
            steps as f64 * tokens_per_step / stepping.max(1e-9),
            args.out.display()
        ));
        Ok(())
    }
}

/// The final model, the loss curve and a JSON log.
fn write_outputs<G: Gradients>(trainer: &Trainer<G>, args: &TrainArgs) -> Result<(), Error>
where
    Error: From<G::Error>,
{
    let weights = trainer.weights()?.with_dtype(args.save_dtype.into())?;
    brt::format::save(&weights, &args.out.join("model.safetensors"))?;
    // Trailing mean over up to 50 steps, from the first step on.
    let window = 50;
    let history = &trainer.history;
    let smoothed: Vec<(f64, f64)> = (0..history.len())
        .map(|i| {
            let w = &history[i.saturating_sub(window - 1)..=i];
            (history[i].step as f64, w.iter().map(|r| r.loss).sum::<f64>() / w.len() as f64 / std::f64::consts::LN_2)
        })
        .collect();
    let mut series = vec![Series { name: format!("training (mean of {window} steps)"), points: smoothed }];
    if !trainer.evaluations.is_empty() {
        series.push(Series {
            name: "held-out".into(),
            points: trainer.evaluations.iter().map(|e| (e.step as f64, e.bits_per_byte)).collect(),
        });
    }
    if series.iter().any(|s| !s.points.is_empty()) {
        plot_lines(&args.out.join("loss.png"), "brt train", "step", "bits per byte", false, &series)?;
    }
    let log = serde_json::json!({ "steps": trainer.history, "evaluations": trainer.evaluations, "options": trainer.options() });
    brt::write_atomically(&args.out.join("log.json"), format!("{log:#}\n").as_bytes())
}

pub fn run(args: TrainArgs) -> Result<(), Error> {
    if args.batch == 0 || args.steps == 0 || args.checkpoint_every == 0 || args.eval_every == 0 {
        return Err(Error::Invalid("--batch, --steps, --checkpoint-every and --eval-every must be positive".into()));
    }
    if matches!(args.save_dtype, DtypeArg::Q8_0) {
        // Said before training, not after it: the final model is brt weights.
        return Err(Error::Invalid(
            "--save-dtype q8_0: the trained model is saved as brt weights (f32, f16 or bf16); write a q8_0 model \
             file from it afterwards with `brt convert OUT/model.safetensors model.gguf --dtype q8_0`"
                .into(),
        ));
    }
    let tokenizer = Tokenizer::from_spec(&args.tokenizer)?;
    if tokenizer.vocab_size().is_none() {
        return Err(Error::Invalid(format!(
            "--tokenizer {}: training needs a vocabulary: `bytes` or a tokenizer.json",
            args.tokenizer
        )));
    }
    if let Some(resume) = &args.resume {
        let recorded = brt::train::checkpoint_tokenizer(resume)?;
        tokenizer.check_model(recorded.as_deref().or(Some("bytes")))?;
    }
    let files = Corpus::list(&args.data)?;
    let corpus = Corpus::read(&files, &tokenizer)?;
    let holdout = Corpus::list(&args.holdout)?;
    let mut start = match (&args.resume, &args.init) {
        (Some(_), _) => None,
        (None, Some(path)) => {
            let init = brt::load_model(path, Default::default())?;
            tokenizer.check_model(init.tokenizer())?;
            Some(init)
        }
        (None, None) => {
            let c = config(&args, &tokenizer)?;
            Some(brt::bench::random_model(&c, brt_core::WeightDtype::F32, args.seed)?)
        }
    };
    if let Some(s) = &mut start {
        if (corpus.max_id() as usize) >= s.config().vocab {
            return Err(Error::Invalid(format!(
                "the training text has token id {}, outside the model's vocabulary of {}; wrong tokenizer?",
                corpus.max_id(),
                s.config().vocab
            )));
        }
        s.set_tokenizer(Some(tokenizer.identity()));
    }
    if let Some(s) = &start {
        if args.segment.unwrap_or(4 * s.config().window) % s.config().window != 0 {
            return Err(Error::Invalid(
                "--segment must be a multiple of the window, so documents start on a block".into(),
            ));
        }
    }
    eprintln!("{} training documents ({} tokens), {} held out", corpus.documents.len(), corpus.tokens(), holdout.len());
    let head_dim = match (&start, &args.resume) {
        (Some(s), _) => s.config().head_dim,
        (None, Some(checkpoint)) => brt::train::checkpoint_config(checkpoint)?.head_dim,
        (None, None) => 0,
    };
    let options = BackendOptions { threads: args.threads, max_head_dim: head_dim };
    let run = TrainRun { args: &args, corpus, holdout, start, tokenizer };
    run_training_on(args.backend, options, run)?;
    Ok(())
}
