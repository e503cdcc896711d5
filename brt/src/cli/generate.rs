//! `brt generate --model M --prompt TEXT`: write text, streaming it out.

use super::{open, parse_backend, ModelOptions};
use brt::backend::{run_on_with, BackendOptions};
use brt::generate::{generate_batch, generate_text, GenerateOptions, Generated};
use brt::model_file::LoadedModel;
use brt::sample::{Sampler, SamplingOptions};
use brt::tokenizer::Tokenizer;
use brt::{refuse_to_overwrite_inputs, BackendJob, BackendKind, Engine, Error, Session};
use clap::Args;
use std::io::Write;
use std::ops::ControlFlow;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// The text to continue (or use --prompt). Several prompts are continued
    /// together, one per row of a batch (row i with seed --seed + i), and
    /// printed when all are done.
    #[arg(value_name = "PROMPT")]
    texts: Vec<String>,
    /// A text to continue (repeat for several, as with PROMPT).
    #[arg(long = "prompt", value_name = "TEXT")]
    prompts: Vec<String>,
    /// Print JSON when done: for each prompt the text, the token ids, their
    /// log-probabilities under the model and why generation ended.
    #[arg(long)]
    json: bool,
    /// The model (official Meliad checkpoint or brt weights; default: the built-in
    /// Shakespeare model).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Most tokens to write.
    #[arg(long, default_value_t = 256)]
    max_tokens: usize,
    /// Softmax temperature (0: always the most likely token).
    #[arg(long, default_value_t = 0.8)]
    temperature: f32,
    /// Sample among the k most likely tokens only (0: all).
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    /// Sample among the most likely tokens holding this much probability.
    #[arg(long, default_value_t = 0.95)]
    top_p: f32,
    /// Sample among tokens at least this fraction as likely as the most likely
    /// one (0: all).
    #[arg(long, default_value_t = 0.0)]
    min_p: f32,
    /// Penalize tokens already in the text: positive logits divided by it,
    /// negative ones multiplied (1: none; 1.1 to 1.3 are usual).
    #[arg(long, default_value_t = 1.0)]
    repetition_penalty: f32,
    /// Subtract this from the logits of tokens already in the text (0: none).
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    presence_penalty: f32,
    /// Stop when the written text contains this string (which is not printed);
    /// repeat for several.
    #[arg(long, value_name = "TEXT")]
    stop: Vec<String>,
    /// Random seed (the same seed gives the same text).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// `bytes`, `ids` or a tokenizer.json path.
    #[arg(long, default_value = "bytes")]
    tokenizer: String,
    /// Compute backend.
    #[arg(long, value_parser = parse_backend, default_value_t = BackendKind::default_kind())]
    backend: BackendKind,
    /// Worker threads of the CPU backend (0: all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Continue a saved session (e.g. a book read with `brt eval --save-session`).
    #[arg(long, value_name = "FILE")]
    resume: Option<PathBuf>,
    /// Save the session when done, to continue later.
    #[arg(long, value_name = "FILE")]
    save_session: Option<PathBuf>,
    /// Tokens per call while reading the prompt.
    #[arg(long, default_value_t = 512)]
    chunk: usize,
    #[command(flatten)]
    options: ModelOptions,
}

struct GenerateJob<'a> {
    args: &'a GenerateArgs,
    weights: &'a LoadedModel,
    tokenizer: &'a Tokenizer,
    prompts: Vec<Vec<u32>>,
    options: GenerateOptions,
}

impl BackendJob for GenerateJob<'_> {
    type Output = Vec<Generated>;

    fn run<K: brt::backend::FileWeights>(self, k: K) -> Result<Vec<Generated>, Error>
    where
        Error: From<K::Error>,
    {
        let args = self.args;
        let mut engine = Engine::load(k, self.weights)?;
        if self.prompts.len() > 1 {
            let mut session = engine.session(self.prompts.len(), args.chunk)?;
            let mut quiet = |_: usize, _: &[u8]| Ok(ControlFlow::Continue(()));
            return generate_batch(&mut engine, &mut session, self.tokenizer, &self.prompts, &self.options, &mut quiet);
        }
        let mut session = match &args.resume {
            Some(path) => Session::load(&mut engine, path, args.chunk)?,
            None => engine.session(1, args.chunk)?,
        };
        let mut stdout = std::io::stdout().lock();
        let mut print = |bytes: &[u8]| -> Result<ControlFlow<()>, Error> {
            if args.json {
                return Ok(ControlFlow::Continue(())); // printed when done
            }
            match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
                // The reader has gone (`brt generate ... | head -c 100`): nobody
                // wants more text; stop and succeed.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ControlFlow::Break(())),
                Err(e) => Err(Error::io("standard output", e)),
                Ok(()) => Ok(ControlFlow::Continue(())),
            }
        };
        let prompt = self.prompts.first().map_or(&[][..], Vec::as_slice);
        let generated = generate_text(&mut engine, &mut session, self.tokenizer, prompt, &self.options, &mut print)?;
        if !generated.tokens.is_empty() && !args.json {
            let _ = writeln!(std::io::stdout());
        }
        if let Some(path) = &args.save_session {
            session.save(&mut engine, path)?;
        }
        Ok(vec![generated])
    }
}

pub fn run(args: GenerateArgs) -> Result<(), Error> {
    if args.chunk == 0 {
        return Err(Error::Invalid("--chunk must be positive".into()));
    }
    // The session being continued may be saved over (the write is atomic); the model may not.
    if let (Some(out), Some(model)) = (&args.save_session, &args.model) {
        refuse_to_overwrite_inputs(out, &[model])?;
    }
    let sampling = SamplingOptions {
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: args.top_p,
        min_p: args.min_p,
        repetition_penalty: args.repetition_penalty,
        presence_penalty: args.presence_penalty,
        seed: args.seed,
    };
    // Checked before the model is read.
    Sampler::new(sampling)?;
    if args.stop.iter().any(String::is_empty) {
        return Err(Error::Invalid("--stop needs a non-empty string".into()));
    }
    let options = GenerateOptions { max_tokens: args.max_tokens, sampling, stop: args.stop.clone(), stop_at_eos: true };
    let tokenizer = Tokenizer::from_spec(&args.tokenizer)?;
    let texts: Vec<&String> = args.prompts.iter().chain(&args.texts).collect();
    if texts.len() > 1 && (args.resume.is_some() || args.save_session.is_some()) {
        return Err(Error::Invalid(
            "--resume and --save-session continue one document: give one prompt with them".into(),
        ));
    }
    if texts.iter().all(|t| t.is_empty()) && args.resume.is_none() {
        return Err(Error::Invalid("give a prompt to continue (or --resume a saved session)".into()));
    }
    if texts.len() > 1 && texts.iter().any(|t| t.is_empty()) {
        return Err(Error::Invalid("every prompt of several must have some text".into()));
    }
    let prompts = texts.iter().map(|t| tokenizer.encode(t.as_bytes())).collect::<Result<Vec<_>, _>>()?;
    let weights = open(args.model.as_deref(), args.options)?;
    tokenizer.check_model(weights.tokenizer())?;
    if let Some(&id) = prompts.iter().flatten().find(|&&id| id as usize >= weights.config().vocab) {
        return Err(Error::Invalid(format!(
            "the prompt has token id {id}, outside this model's vocabulary of {}; wrong tokenizer?",
            weights.config().vocab
        )));
    }
    let several = prompts.len() > 1;
    let results = run_on_with(
        args.backend,
        BackendOptions::for_config(weights.config(), args.threads),
        GenerateJob { args: &args, weights: &weights, tokenizer: &tokenizer, prompts, options },
    )?;
    let text = if args.json {
        let rows: Vec<_> = results
            .iter()
            .zip(texts.iter().map(|t| t.as_str()).chain(std::iter::repeat("")))
            .enumerate()
            .map(|(i, (g, prompt))| {
                serde_json::json!({
                    "prompt": prompt,
                    "seed": args.seed.wrapping_add(i as u64),
                    "text": String::from_utf8_lossy(&g.text),
                    "tokens": g.tokens,
                    "logprobs": g.logprobs,
                    "finish": g.finish,
                })
            })
            .collect();
        format!("{:#}\n", serde_json::json!({ "backend": args.backend.name(), "results": rows }))
    } else if several {
        let mut out = String::new();
        for (i, g) in results.iter().enumerate() {
            out += &format!("--- prompt {} ---\n{}\n", i + 1, String::from_utf8_lossy(&g.text));
        }
        out
    } else {
        return Ok(()); // streamed as it was written
    };
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::io("standard output", e)),
        _ => Ok(()),
    }
}
