//! `brt recall`: the long-range recall task (`brt::recall`). `generate` writes a
//! training set of documents; `score` measures a model's recall by distance on a
//! set drawn from another seed.

use super::{open, parse_backend, ModelOptions};
use brt::backend::{run_on_with, BackendOptions};
use brt::model_file::LoadedModel;
use brt::recall::{self, Filler, RecallDocument, RecallOptions, RecallScore};
use brt::train::data::Corpus;
use brt::{write_atomically, BackendJob, BackendKind, Engine, Error};
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct RecallArgs {
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand, Debug)]
enum Action {
    /// Write recall documents to a folder (`recall-NNNNNN.txt`), for `brt train --data`.
    Generate(GenerateArgs),
    /// Score a model's recall of the query digits by distance.
    Score(ScoreArgs),
}

/// What both actions draw documents from.
#[derive(Args, Debug)]
struct Documents {
    /// Filler text: files, or folders whose files are documents.
    #[arg(long, required = true, num_args = 1..)]
    filler: Vec<PathBuf>,
    /// How many documents.
    #[arg(long, default_value_t = 64)]
    documents: u64,
    /// Seed of the set (use different seeds for training and scoring).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Bytes per document.
    #[arg(long, default_value_t = RecallOptions::default().length)]
    length: usize,
    /// Mean bytes of filler between records.
    #[arg(long, default_value_t = RecallOptions::default().gap)]
    gap: usize,
    /// Smallest distance asked (bytes).
    #[arg(long, default_value_t = RecallOptions::default().min_distance)]
    min_distance: usize,
    /// Largest distance asked (bytes; drawn uniformly on a log scale).
    #[arg(long, default_value_t = RecallOptions::default().max_distance)]
    max_distance: usize,
    /// Most keys waiting to be asked at once (1: always the last value given).
    #[arg(long, default_value_t = RecallOptions::default().max_pending)]
    max_pending: usize,
    /// Digits in a value (1 to 8; with 1, recall needs no order, only which digit came).
    #[arg(long, default_value_t = RecallOptions::default().value_digits)]
    value_digits: usize,
    /// Dots instead of the filler text between records.
    #[arg(long)]
    blank_filler: bool,
}

impl Documents {
    /// The checked options and the filler text the documents are drawn from.
    fn source(&self) -> Result<(RecallOptions, Filler), Error> {
        let options = RecallOptions {
            length: self.length,
            gap: self.gap,
            min_distance: self.min_distance,
            max_distance: self.max_distance,
            max_pending: self.max_pending,
            value_digits: self.value_digits,
            blank_filler: self.blank_filler,
        };
        options.validate()?;
        let mut texts = Vec::new();
        for path in Corpus::list(&self.filler)? {
            texts.push(std::fs::read(&path).map_err(|e| Error::io(&path, e))?);
        }
        Ok((options, Filler::new(texts.iter().map(Vec::as_slice))?))
    }

    /// Document `i` of the set.
    fn document(&self, source: &(RecallOptions, Filler), i: u64) -> RecallDocument {
        recall::document(&source.1, &source.0, self.seed, i)
    }
}

#[derive(Args, Debug)]
struct GenerateArgs {
    #[command(flatten)]
    documents: Documents,
    /// Output folder (created if missing).
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args, Debug)]
struct ScoreArgs {
    #[command(flatten)]
    documents: Documents,
    /// The model (any format brt reads).
    #[arg(long)]
    model: PathBuf,
    /// Documents scored side by side.
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Compute backend.
    #[arg(long, value_parser = parse_backend, default_value_t = BackendKind::default_kind())]
    backend: BackendKind,
    /// Worker threads of the CPU backend (0: all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Print the results as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    options: ModelOptions,
}

struct ScoreJob<'a> {
    weights: &'a LoadedModel,
    documents: &'a Documents,
    source: &'a (RecallOptions, Filler),
    batch: usize,
}

impl BackendJob for ScoreJob<'_> {
    type Output = RecallScore;

    fn run<K: brt::backend::FileWeights>(self, k: K) -> Result<RecallScore, Error>
    where
        Error: From<K::Error>,
    {
        let mut engine = Engine::load(k, self.weights)?;
        // One batch of documents in memory at a time.
        let mut total = RecallScore::default();
        let n = self.documents.documents;
        for start in (0..n).step_by(self.batch) {
            let end = n.min(start.saturating_add(self.batch as u64));
            let group: Vec<RecallDocument> = (start..end).map(|i| self.documents.document(self.source, i)).collect();
            total.add(&recall::score(&mut engine, &group, self.batch)?);
        }
        Ok(total)
    }
}

pub fn run(args: RecallArgs) -> Result<(), Error> {
    match args.action {
        Action::Generate(args) => generate(args),
        Action::Score(args) => score(args),
    }
}

fn generate(args: GenerateArgs) -> Result<(), Error> {
    let source = args.documents.source()?;
    std::fs::create_dir_all(&args.out).map_err(|e| Error::io(&args.out, e))?;
    // One document in memory at a time: a set may be larger than memory.
    let mut answers = 0;
    for i in 0..args.documents.documents {
        let d = args.documents.document(&source, i);
        write_atomically(&args.out.join(format!("recall-{i:06}.txt")), &d.bytes)?;
        answers += d.answers.len();
    }
    println!(
        "wrote {} documents of {} bytes ({answers} query digits) to {}",
        args.documents.documents,
        args.documents.length,
        args.out.display()
    );
    Ok(())
}

fn score(args: ScoreArgs) -> Result<(), Error> {
    if args.batch == 0 {
        return Err(Error::Invalid("--batch must be positive".into()));
    }
    let source = args.documents.source()?;
    let weights = open(Some(args.model.as_path()), args.options)?;
    brt::tokenizer::Tokenizer::Bytes.check_model(weights.tokenizer())?;
    let result = run_on_with(
        args.backend,
        BackendOptions::for_config(weights.config(), args.threads),
        ScoreJob { weights: &weights, documents: &args.documents, source: &source, batch: args.batch },
    )?;
    if args.json {
        let json = serde_json::json!({
            "model": args.model.display().to_string(),
            "chance": recall::CHANCE,
            "buckets": result.buckets.iter().map(|b| serde_json::json!({
                "from": b.lower, "to": b.upper, "asked": b.asked,
                "accuracy": b.accuracy(), "bits_per_digit": b.bits(),
            })).collect::<Vec<_>>(),
        });
        println!("{json:#}");
        return Ok(());
    }
    println!("recall of {} (chance {:.2} per digit)", args.model.display(), recall::CHANCE);
    println!("{:>16} {:>8} {:>9} {:>10}", "distance", "digits", "accuracy", "bits/digit");
    for b in &result.buckets {
        println!("{:>7} to {:>5} {:>8} {:>9.3} {:>10.3}", b.lower, b.upper - 1, b.asked, b.accuracy(), b.bits());
    }
    Ok(())
}
