//! Writing text: incremental decoding (SPEC section 6). Tokens of an unfinished
//! block attend to the previous W tokens and to the state entering the block; when
//! a block completes its state update runs. The core's stream does exactly this
//! when fed one token at a time.
//!
//! Writing one token at a time reads each token once: after a prompt of 2
//! tokens and 3 written, the session has seen 5.
//!
//! ```
//! use brt::generate::{generate_text, GenerateOptions};
//! use brt::tokenizer::Tokenizer;
//! use brt::Engine;
//! use brt_core::Reference;
//! use brt_heap::Heap;
//! use std::ops::ControlFlow;
//!
//! let mut engine = Engine::new(Reference::new(Heap), &brt::default_model()?)?;
//! let mut session = engine.session(1, 8)?;
//! let options = GenerateOptions { max_tokens: 3, stop_at_eos: false, ..Default::default() };
//! let generated = generate_text(&mut engine, &mut session, &Tokenizer::Bytes, &[40, 41], &options, &mut |_| {
//!     Ok(ControlFlow::Continue(()))
//! })?;
//! assert_eq!(generated.tokens.len(), 3);
//! assert_eq!(session.tokens_seen(), 5);
//! # Ok::<(), brt::Error>(())
//! ```

use crate::engine::{Engine, Session};
use crate::error::{Error, Result};
use crate::sample::{Sampler, SamplingOptions};
use crate::tokenizer::Tokenizer;
use brt_core::Kernels;
use serde::Serialize;
use std::ops::ControlFlow;

/// Feeds `prompt` (which the sampler observes, as it does every token written,
/// for its penalties), then draws up to `max_tokens` tokens one at a time, calling
/// `on_token` with each as soon as it is chosen. Stops early at `stop` (which is
/// not fed), or after a token for which `on_token` says
/// [`ControlFlow::Break`] (its reader has gone; that token is kept and fed, so
/// the session has read the prompt and every token returned). Returns the
/// generated tokens.
///
/// Greedy choice of three tokens after a prompt: each is shown as it is chosen,
/// and the session reads the prompt and every token returned. A reader that
/// breaks after the first token ends it there:
///
/// ```
/// use brt::generate::generate;
/// use brt::sample::{Sampler, SamplingOptions};
/// use std::ops::ControlFlow;
/// # use brt::Engine;
/// # use brt_core::Reference;
/// # use brt_heap::Heap;
/// # let mut engine = Engine::new(Reference::new(Heap), &brt::default_model()?)?;
///
/// let greedy = SamplingOptions { temperature: 0.0, ..Default::default() };
/// let mut session = engine.session(1, 8)?;
/// let mut shown = Vec::new();
/// let tokens = generate(&mut engine, &mut session, &[40, 41], 3, &mut Sampler::new(greedy)?, None, &mut |t| {
///     shown.push(t);
///     Ok(ControlFlow::Continue(()))
/// })?;
/// assert_eq!((tokens.len(), &shown), (3, &tokens));
/// assert_eq!(session.tokens_seen(), 2 + 3);
///
/// let mut session = engine.session(1, 8)?;
/// let mut sampler = Sampler::new(greedy)?;
/// let mut stop_at_once = |_: u32| Ok::<_, brt::Error>(ControlFlow::Break(()));
/// let one = generate(&mut engine, &mut session, &[40, 41], 3, &mut sampler, None, &mut stop_at_once)?;
/// assert_eq!(one, tokens[..1]);
/// # Ok::<(), brt::Error>(())
/// ```
pub fn generate<K: Kernels>(
    engine: &mut Engine<K>,
    session: &mut Session<K>,
    prompt: &[u32],
    max_tokens: usize,
    sampler: &mut Sampler,
    stop: Option<u32>,
    on_token: &mut dyn FnMut(u32) -> Result<ControlFlow<()>>,
) -> Result<Vec<u32>>
where
    Error: From<K::Error>,
{
    session.feed(engine, prompt)?;
    sampler.observe(prompt);
    let mut out = Vec::new();
    while out.len() < max_tokens {
        let logits = session.last_logits(0).ok_or_else(|| {
            Error::Invalid("nothing to continue: give a prompt (or resume a session that has read text)".into())
        })?;
        let token = sampler.sample(logits)?;
        if Some(token) == stop {
            break;
        }
        let flow = on_token(token)?;
        sampler.observe(&[token]);
        out.push(token);
        session.feed(engine, &[token])?;
        if flow.is_break() {
            break;
        }
    }
    Ok(out)
}

/// What to write and when to stop, for [`generate_text`].
///
/// ```
/// use brt::generate::GenerateOptions;
/// use brt::sample::SamplingOptions;
///
/// let options = GenerateOptions {
///     max_tokens: 100,
///     sampling: SamplingOptions { temperature: 0.7, min_p: 0.05, seed: 3, ..Default::default() },
///     stop: vec!["\n\n".into()],
///     ..Default::default()
/// };
/// assert!(options.stop_at_eos);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct GenerateOptions {
    /// Most tokens to write.
    pub max_tokens: usize,
    /// How each token is drawn.
    pub sampling: SamplingOptions,
    /// Stop when the written text contains one of these (not empty; the stop
    /// string and what follows it are not returned).
    pub stop: Vec<String>,
    /// Stop at the tokenizer's end-of-sequence token (if it has one).
    pub stop_at_eos: bool,
}

impl Default for GenerateOptions {
    /// 256 tokens, default sampling (temperature 1, nothing cut), no stop string,
    /// stopping at end of sequence.
    fn default() -> Self {
        GenerateOptions { max_tokens: 256, sampling: SamplingOptions::default(), stop: Vec::new(), stop_at_eos: true }
    }
}

/// Why generation ended.
///
/// Writing no token ends by length; a reader that wants no more cancels; in JSON
/// the reasons are snake case:
///
/// ```
/// use brt::generate::{Finish, GenerateOptions, TextGenerator};
///
/// let mut generator = TextGenerator::new(&GenerateOptions::default())?;
/// generator.cancel();
/// assert_eq!(generator.finish(), Some(Finish::Cancelled));
/// assert_eq!(serde_json::to_string(&Finish::EndOfSequence).unwrap(), r#""end_of_sequence""#);
/// # Ok::<(), brt::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Finish {
    /// `max_tokens` were written.
    Length,
    /// The model chose the end-of-sequence token.
    EndOfSequence,
    /// A stop string was written.
    Stop,
    /// The text's reader said it wanted no more.
    Cancelled,
}

/// What [`generate_text`] wrote.
///
/// One log-probability per token written, each at most 0:
///
/// ```
/// use brt::generate::{generate_text, GenerateOptions};
/// use brt::tokenizer::Tokenizer;
/// use std::ops::ControlFlow;
/// # use brt::Engine;
/// # use brt_core::Reference;
/// # use brt_heap::Heap;
/// # let mut engine = Engine::new(Reference::new(Heap), &brt::default_model()?)?;
///
/// let options = GenerateOptions { max_tokens: 3, ..Default::default() };
/// let mut session = engine.session(1, 8)?;
/// let prompt = Tokenizer::Bytes.encode(b"KING")?;
/// let generated = generate_text(&mut engine, &mut session, &Tokenizer::Bytes, &prompt, &options, &mut |_| {
///     Ok(ControlFlow::Continue(()))
/// })?;
/// assert_eq!(generated.logprobs.len(), generated.tokens.len());
/// assert!(generated.logprobs.iter().all(|&l| l <= 0.0));
/// assert_eq!(Tokenizer::Bytes.decode(&generated.tokens)?, generated.text);
/// # Ok::<(), brt::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Generated {
    /// The tokens written (and fed to the session), end-of-sequence excluded.
    pub tokens: Vec<u32>,
    /// The model's log-probability (natural log, of the softmax of its logits,
    /// before penalties and temperature) of each token written.
    pub logprobs: Vec<f64>,
    /// The text, up to a stop string.
    pub text: Vec<u8>,
    /// Why it ended.
    pub finish: Finish,
}

/// Continues `prompt` as text: tokens are drawn as [`generate`] does and turned
/// into text incrementally ([`TextStream`]); `on_text` gets each piece of text as
/// soon as it is final (text that could still become a stop string is held back
/// until it cannot), and may cancel (the token whose text it was given stays
/// fed). A loop over a [`TextGenerator`], for callers that want a callback.
///
/// A stop string never shows in the text (here the first space ends it, if one
/// comes within 8 tokens):
///
/// ```
/// use brt::generate::{generate_text, Finish, GenerateOptions};
/// use brt::tokenizer::Tokenizer;
/// use std::ops::ControlFlow;
/// # use brt::Engine;
/// # use brt_core::Reference;
/// # use brt_heap::Heap;
/// # let mut engine = Engine::new(Reference::new(Heap), &brt::default_model()?)?;
///
/// let options = GenerateOptions { max_tokens: 8, stop: vec![" ".into()], ..Default::default() };
/// let mut session = engine.session(1, 8)?;
/// let prompt = Tokenizer::Bytes.encode(b"ROMEO:")?;
/// let mut shown = Vec::new();
/// let generated = generate_text(&mut engine, &mut session, &Tokenizer::Bytes, &prompt, &options, &mut |piece| {
///     shown.extend_from_slice(piece);
///     Ok(ControlFlow::Continue(()))
/// })?;
/// assert!(!generated.text.contains(&b' '));
/// assert_eq!(shown, generated.text);
/// assert_ne!(generated.finish, Finish::Cancelled);
/// # Ok::<(), brt::Error>(())
/// ```
pub fn generate_text<K: Kernels>(
    engine: &mut Engine<K>,
    session: &mut Session<K>,
    tokenizer: &Tokenizer,
    prompt: &[u32],
    options: &GenerateOptions,
    on_text: &mut dyn FnMut(&[u8]) -> Result<ControlFlow<()>>,
) -> Result<Generated>
where
    Error: From<K::Error>,
{
    let mut generator = TextGenerator::new(options)?;
    generator.start(engine, session, prompt)?;
    while let Some(piece) = generator.step(engine, session, tokenizer)? {
        if !piece.is_empty() && on_text(&piece)?.is_break() {
            generator.cancel();
        }
    }
    Ok(generator.into_generated())
}

/// Receives a row's text as it becomes final: `(row, piece)`; says whether to
/// go on writing that row.
///
/// A reader that keeps each row's text apart:
///
/// ```
/// use brt::generate::{generate_batch, GenerateOptions, RowText};
/// use brt::tokenizer::Tokenizer;
/// use std::ops::ControlFlow;
/// # use brt::Engine;
/// # use brt_core::Reference;
/// # use brt_heap::Heap;
/// # let mut engine = Engine::new(Reference::new(Heap), &brt::default_model()?)?;
///
/// let mut texts = vec![Vec::new(); 2];
/// let on_text: &mut RowText<'_> = &mut |row, piece| {
///     texts[row].extend_from_slice(piece);
///     Ok(ControlFlow::Continue(()))
/// };
/// let options = GenerateOptions { max_tokens: 2, ..Default::default() };
/// let mut session = engine.session(2, 8)?;
/// let prompts = [vec![40], vec![50]];
/// let generated = generate_batch(&mut engine, &mut session, &Tokenizer::Bytes, &prompts, &options, on_text)?;
/// assert_eq!(texts, [generated[0].text.clone(), generated[1].text.clone()]);
/// # Ok::<(), brt::Error>(())
/// ```
pub type RowText<'a> = dyn FnMut(usize, &[u8]) -> Result<ControlFlow<()>> + 'a;

/// Continues several prompts at once, one per row of `session` (whose batch is
/// their number): per token, one call feeds every row, which is much faster per
/// token than one prompt at a time on backends that read the weights once per
/// call. Rows read their prompts (of any lengths, none empty) in step and write
/// as soon as their own prompt is read; row `i` draws with seed
/// `options.sampling.seed + i`, so it writes what [`generate_text`] writes for
/// its prompt alone with that seed (up to the last bits of rounding on backends
/// whose products depend on the batch). `on_text(row, piece)` gets each row's
/// text as it becomes final and may cancel that row. A row that has ended is fed
/// its last token again until every row has ended (so its carried state is not
/// that of its text alone).
///
/// Row 1 writes what its prompt alone writes with the seed plus 1:
///
/// ```
/// use brt::generate::{generate_batch, generate_text, GenerateOptions};
/// use brt::sample::SamplingOptions;
/// use brt::tokenizer::Tokenizer;
/// use std::ops::ControlFlow;
/// # use brt::Engine;
/// # use brt_core::Reference;
/// # use brt_heap::Heap;
/// # let mut engine = Engine::new(Reference::new(Heap), &brt::default_model()?)?;
///
/// let bytes = Tokenizer::Bytes;
/// let prompts = vec![bytes.encode(b"To be")?, bytes.encode(b"ROMEO:")?];
/// let options = |seed| GenerateOptions {
///     max_tokens: 2,
///     sampling: SamplingOptions { seed, ..Default::default() },
///     ..Default::default()
/// };
/// let mut session = engine.session(2, 8)?;
/// let both = generate_batch(&mut engine, &mut session, &bytes, &prompts, &options(7), &mut |_, _| {
///     Ok(ControlFlow::Continue(()))
/// })?;
/// let mut alone = engine.session(1, 8)?;
/// let second = generate_text(&mut engine, &mut alone, &bytes, &prompts[1], &options(8), &mut |_| {
///     Ok(ControlFlow::Continue(()))
/// })?;
/// assert_eq!(both[1].tokens, second.tokens);
/// assert!(generate_batch(&mut engine, &mut session, &bytes, &prompts[..1], &options(7), &mut |_, _| {
///     Ok(ControlFlow::Continue(()))
/// })
/// .is_err());
/// # Ok::<(), brt::Error>(())
/// ```
pub fn generate_batch<K: Kernels>(
    engine: &mut Engine<K>,
    session: &mut Session<K>,
    tokenizer: &Tokenizer,
    prompts: &[Vec<u32>],
    options: &GenerateOptions,
    on_text: &mut RowText<'_>,
) -> Result<Vec<Generated>>
where
    Error: From<K::Error>,
{
    let batch = session.batch();
    if prompts.len() != batch {
        return Err(Error::Invalid(format!("{} prompts for a session of {batch} rows", prompts.len())));
    }
    if prompts.iter().any(Vec::is_empty) {
        return Err(Error::Invalid("every prompt of a batch needs at least one token".into()));
    }
    let mut writers = Vec::with_capacity(batch);
    for (row, prompt) in prompts.iter().enumerate() {
        let seed = options.sampling.seed.wrapping_add(row as u64);
        let mut writer = Writer::new(&GenerateOptions {
            sampling: SamplingOptions { seed, ..options.sampling },
            ..options.clone()
        })?;
        writer.sampler.observe(prompt);
        writers.push(writer);
    }
    // What every prompt has: read in calls of the session's chunk.
    let common = prompts.iter().map(Vec::len).min().unwrap_or(0);
    let heads: Vec<&[u32]> = prompts.iter().map(|p| &p[..common]).collect();
    session.feed_rows(engine, &heads, &[], None)?;
    let mut read = vec![common; batch];
    let mut last: Vec<u32> = prompts.iter().map(|p| p[common - 1]).collect();
    loop {
        let mut live = false;
        for row in 0..batch {
            let prompt = &prompts[row];
            if read[row] < prompt.len() {
                last[row] = prompt[read[row]];
                read[row] += 1;
                live = true;
                continue;
            }
            let writer = &mut writers[row];
            if writer.finish.is_some() {
                continue;
            }
            let logits = match writer.at_limit() {
                true => &[][..],
                false => session.last_logits(row).ok_or_else(|| Error::Invalid("no logits to continue from".into()))?,
            };
            let (token, piece) = writer.choose(logits, tokenizer)?;
            if !piece.is_empty() && on_text(row, &piece)?.is_break() {
                writer.finish.get_or_insert(Finish::Cancelled);
            }
            if let Some(token) = token {
                last[row] = token;
                live |= writer.finish.is_none();
            }
        }
        if !live {
            break;
        }
        let rows: Vec<&[u32]> = last.iter().map(std::slice::from_ref).collect();
        session.feed_rows(engine, &rows, &[], None)?;
    }
    Ok(writers.into_iter().map(Writer::into_generated).collect())
}

/// Generation one step at a time (for iterators, e.g. the Python package's):
/// [`TextGenerator::start`] feeds the prompt, then each
/// [`TextGenerator::step`] draws one token and returns the text that became
/// final, until it returns `None`.
///
/// A loop of steps writes at most `max_tokens` tokens, then ends:
///
/// ```
/// use brt::generate::{Finish, GenerateOptions, TextGenerator};
/// use brt::tokenizer::Tokenizer;
/// # use brt::Engine;
/// # use brt_core::Reference;
/// # use brt_heap::Heap;
/// # let mut engine = Engine::new(Reference::new(Heap), &brt::default_model()?)?;
///
/// let mut session = engine.session(1, 8)?;
/// let options = GenerateOptions { max_tokens: 3, stop_at_eos: false, ..Default::default() };
/// let mut generator = TextGenerator::new(&options)?;
/// generator.start(&mut engine, &mut session, &[40, 41])?;
/// let mut text = Vec::new();
/// while let Some(piece) = generator.step(&mut engine, &mut session, &Tokenizer::Bytes)? {
///     text.extend(piece);
/// }
/// assert_eq!(generator.finish(), Some(Finish::Length));
/// assert_eq!(text, generator.into_generated().text);
/// # Ok::<(), brt::Error>(())
/// ```
#[derive(Debug)]
pub struct TextGenerator {
    writer: Writer,
}

impl TextGenerator {
    /// A generator; the options are checked.
    ///
    /// Options that cannot be used are refused:
    ///
    /// ```
    /// use brt::generate::{GenerateOptions, TextGenerator};
    /// use brt::sample::SamplingOptions;
    ///
    /// assert!(TextGenerator::new(&GenerateOptions::default()).is_ok());
    /// assert!(TextGenerator::new(&GenerateOptions { stop: vec![String::new()], ..Default::default() }).is_err());
    /// let hot = SamplingOptions { temperature: -1.0, ..Default::default() };
    /// assert!(TextGenerator::new(&GenerateOptions { sampling: hot, ..Default::default() }).is_err());
    /// ```
    pub fn new(options: &GenerateOptions) -> Result<TextGenerator> {
        Ok(TextGenerator { writer: Writer::new(options)? })
    }

    /// Feeds `prompt` to `session` (batch 1); the penalties see it.
    ///
    /// The prompt is fed, nothing is written yet:
    ///
    /// ```
    /// use brt::generate::{GenerateOptions, TextGenerator};
    /// # use brt::Engine;
    /// # use brt_core::Reference;
    /// # use brt_heap::Heap;
    /// # let mut engine = Engine::new(Reference::new(Heap), &brt::default_model()?)?;
    /// let mut session = engine.session(1, 8)?;
    /// let mut generator = TextGenerator::new(&GenerateOptions::default())?;
    /// generator.start(&mut engine, &mut session, &[40, 41, 42])?;
    /// assert_eq!(session.tokens_seen(), 3);
    /// assert!(generator.tokens().is_empty() && generator.finish().is_none());
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn start<K: Kernels>(&mut self, engine: &mut Engine<K>, session: &mut Session<K>, prompt: &[u32]) -> Result<()>
    where
        Error: From<K::Error>,
    {
        session.feed(engine, prompt)?;
        self.writer.sampler.observe(prompt);
        Ok(())
    }

    /// Draws the next token and feeds it; returns the text that became final
    /// (often empty: held back, or an unfinished character), or `None` once
    /// generation has ended ([`TextGenerator::finish`] says why).
    ///
    /// Each step feeds the token it writes; without a prompt there is nothing to
    /// continue:
    ///
    /// ```
    /// use brt::generate::{GenerateOptions, TextGenerator};
    /// use brt::tokenizer::Tokenizer;
    /// # use brt::Engine;
    /// # use brt_core::Reference;
    /// # use brt_heap::Heap;
    /// # let mut engine = Engine::new(Reference::new(Heap), &brt::default_model()?)?;
    /// let mut session = engine.session(1, 8)?;
    /// let mut generator = TextGenerator::new(&GenerateOptions { stop_at_eos: false, ..Default::default() })?;
    /// assert!(generator.step(&mut engine, &mut session, &Tokenizer::Bytes).is_err());
    /// generator.start(&mut engine, &mut session, &[40])?;
    /// assert!(generator.step(&mut engine, &mut session, &Tokenizer::Bytes)?.is_some());
    /// assert_eq!(generator.tokens().len(), 1);
    /// assert_eq!(session.tokens_seen(), 2);
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn step<K: Kernels>(
        &mut self,
        engine: &mut Engine<K>,
        session: &mut Session<K>,
        tokenizer: &Tokenizer,
    ) -> Result<Option<Vec<u8>>>
    where
        Error: From<K::Error>,
    {
        if self.writer.finish.is_some() {
            return Ok(None);
        }
        let logits = match self.writer.at_limit() {
            true => &[][..],
            false => session.last_logits(0).ok_or_else(|| {
                Error::Invalid("nothing to continue: give a prompt (or resume a session that has read text)".into())
            })?,
        };
        let (token, piece) = self.writer.choose(logits, tokenizer)?;
        if let Some(token) = token {
            session.feed(engine, &[token])?;
        }
        Ok(Some(piece))
    }

    /// Ends generation now (the reader wants no more text).
    ///
    /// After a cancel, steps return `None`:
    ///
    /// ```
    /// use brt::generate::{Finish, GenerateOptions, TextGenerator};
    /// use brt::tokenizer::Tokenizer;
    /// # use brt::Engine;
    /// # use brt_core::Reference;
    /// # use brt_heap::Heap;
    /// # let mut engine = Engine::new(Reference::new(Heap), &brt::default_model()?)?;
    /// let mut session = engine.session(1, 8)?;
    /// let mut generator = TextGenerator::new(&GenerateOptions::default())?;
    /// generator.start(&mut engine, &mut session, &[40])?;
    /// generator.cancel();
    /// assert!(generator.step(&mut engine, &mut session, &Tokenizer::Bytes)?.is_none());
    /// assert_eq!(generator.finish(), Some(Finish::Cancelled));
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn cancel(&mut self) {
        self.writer.finish.get_or_insert(Finish::Cancelled);
    }

    /// Why generation ended, once it has.
    ///
    /// `None` while writing, then the reason; with `max_tokens` 0, the length:
    ///
    /// ```
    /// use brt::generate::{Finish, GenerateOptions, TextGenerator};
    /// use brt::tokenizer::Tokenizer;
    /// # use brt::Engine;
    /// # use brt_core::Reference;
    /// # use brt_heap::Heap;
    /// # let mut engine = Engine::new(Reference::new(Heap), &brt::default_model()?)?;
    /// let mut session = engine.session(1, 8)?;
    /// let mut generator = TextGenerator::new(&GenerateOptions { max_tokens: 0, ..Default::default() })?;
    /// generator.start(&mut engine, &mut session, &[40])?;
    /// assert_eq!(generator.finish(), None);
    /// assert_eq!(generator.step(&mut engine, &mut session, &Tokenizer::Bytes)?, Some(Vec::new()));
    /// assert_eq!(generator.finish(), Some(Finish::Length));
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn finish(&self) -> Option<Finish> {
        self.writer.finish
    }

    /// The tokens written so far.
    ///
    /// One token per step:
    ///
    /// ```
    /// use brt::generate::{GenerateOptions, TextGenerator};
    /// use brt::tokenizer::Tokenizer;
    /// # use brt::Engine;
    /// # use brt_core::Reference;
    /// # use brt_heap::Heap;
    /// # let mut engine = Engine::new(Reference::new(Heap), &brt::default_model()?)?;
    /// let mut session = engine.session(1, 8)?;
    /// let mut generator = TextGenerator::new(&GenerateOptions { stop_at_eos: false, ..Default::default() })?;
    /// generator.start(&mut engine, &mut session, &[40])?;
    /// for _ in 0..2 {
    ///     generator.step(&mut engine, &mut session, &Tokenizer::Bytes)?;
    /// }
    /// assert_eq!(generator.tokens().len(), 2);
    /// assert!(generator.tokens().iter().all(|&t| t < 260));
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn tokens(&self) -> &[u32] {
        &self.writer.tokens
    }

    /// The log-probabilities of the tokens written so far (see [`Generated::logprobs`]).
    ///
    /// Greedy choice writes the most likely token, whose log-probability is the
    /// largest:
    ///
    /// ```
    /// use brt::generate::{GenerateOptions, TextGenerator};
    /// use brt::sample::SamplingOptions;
    /// use brt::tokenizer::Tokenizer;
    /// # use brt::Engine;
    /// # use brt_core::Reference;
    /// # use brt_heap::Heap;
    /// # let mut engine = Engine::new(Reference::new(Heap), &brt::default_model()?)?;
    /// let mut session = engine.session(1, 8)?;
    /// let sampling = SamplingOptions { temperature: 0.0, ..Default::default() };
    /// let options = GenerateOptions { sampling, stop_at_eos: false, ..Default::default() };
    /// let mut generator = TextGenerator::new(&options)?;
    /// generator.start(&mut engine, &mut session, &[40])?;
    /// let logits = session.last_logits(0).unwrap().to_vec();
    /// generator.step(&mut engine, &mut session, &Tokenizer::Bytes)?;
    /// let best = (0..260).map(|t| -brt::eval::nll(&logits, t)).fold(f64::MIN, f64::max);
    /// assert_eq!(generator.logprobs(), [best]);
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn logprobs(&self) -> &[f64] {
        &self.writer.logprobs
    }

    /// What was written.
    ///
    /// The result holds the tokens and log-probabilities written:
    ///
    /// ```
    /// use brt::generate::{Finish, GenerateOptions, TextGenerator};
    /// use brt::tokenizer::Tokenizer;
    /// # use brt::Engine;
    /// # use brt_core::Reference;
    /// # use brt_heap::Heap;
    /// # let mut engine = Engine::new(Reference::new(Heap), &brt::default_model()?)?;
    /// let mut session = engine.session(1, 8)?;
    /// let mut generator = TextGenerator::new(&GenerateOptions { max_tokens: 2, ..Default::default() })?;
    /// generator.start(&mut engine, &mut session, &[40])?;
    /// while generator.step(&mut engine, &mut session, &Tokenizer::Bytes)?.is_some() {}
    /// let tokens = generator.tokens().to_vec();
    /// let generated = generator.into_generated();
    /// assert_eq!(generated.tokens, tokens);
    /// assert_eq!(generated.logprobs.len(), tokens.len());
    /// assert!(matches!(generated.finish, Finish::Length | Finish::EndOfSequence));
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn into_generated(self) -> Generated {
        self.writer.into_generated()
    }
}

/// One document being written: its sampler, its text, what it wrote, and why it
/// ended.
#[derive(Debug)]
struct Writer {
    sampler: Sampler,
    text: TextStream,
    max_tokens: usize,
    stop_at_eos: bool,
    tokens: Vec<u32>,
    logprobs: Vec<f64>,
    finish: Option<Finish>,
}

impl Writer {
    fn new(options: &GenerateOptions) -> Result<Writer> {
        Ok(Writer {
            sampler: Sampler::new(options.sampling)?,
            text: TextStream::new(&options.stop)?,
            max_tokens: options.max_tokens,
            stop_at_eos: options.stop_at_eos,
            tokens: Vec::new(),
            logprobs: Vec::new(),
            finish: None,
        })
    }

    /// Whether `max_tokens` were written (the next choice needs no logits).
    fn at_limit(&self) -> bool {
        self.tokens.len() >= self.max_tokens
    }

    /// Chooses the next token from `logits` (the prediction after the last
    /// token fed): returns it if it is to be fed, and the text that became
    /// final. At the end (length, end of sequence) returns no token and the
    /// text held back.
    fn choose(&mut self, logits: &[f32], tokenizer: &Tokenizer) -> Result<(Option<u32>, Vec<u8>)> {
        let eos = if self.stop_at_eos { tokenizer.eos() } else { None };
        let token = if self.at_limit() { None } else { Some(self.sampler.sample(logits)?) };
        let Some(token) = token.filter(|&t| Some(t) != eos) else {
            self.finish = Some(if self.at_limit() { Finish::Length } else { Finish::EndOfSequence });
            return Ok((None, self.text.finish(tokenizer)?.to_vec()));
        };
        let piece = self.text.push(tokenizer, token)?.to_vec();
        self.sampler.observe(&[token]);
        self.tokens.push(token);
        self.logprobs.push(-crate::eval::nll(logits, token));
        if self.text.stopped() {
            self.finish = Some(Finish::Stop);
        }
        Ok((Some(token), piece))
    }

    fn into_generated(self) -> Generated {
        Generated {
            tokens: self.tokens,
            logprobs: self.logprobs,
            text: self.text.into_text(),
            finish: self.finish.unwrap_or(Finish::Cancelled),
        }
    }
}

/// Tokens to text as they are written: incremental detokenization and stop
/// strings.
///
/// Decoding the whole text again at every token costs time quadratic in its
/// length with a subword tokenizer; decoding only the tokens since the last
/// piece shown (with one piece before them as context, since a token's text can
/// depend on its neighbour's) is constant per token. A piece that ends in an
/// unfinished UTF-8 character (U+FFFD from a tokenizer) waits for the next token.
/// (This is the method of Hugging Face's text-generation-inference; the
/// `tokenizers` crate's own `DecodeStream` does the same but only for its own
/// tokenizers, and this works for every [`Tokenizer`].)
///
/// ```
/// use brt::generate::TextStream;
/// use brt::tokenizer::Tokenizer;
///
/// let tokenizer = Tokenizer::Bytes;
/// let mut stream = TextStream::new(&["END".to_string()])?;
/// let mut shown = Vec::new();
/// for token in tokenizer.encode(b"to be ENDING")? {
///     shown.extend_from_slice(stream.push(&tokenizer, token)?);
/// }
/// shown.extend_from_slice(stream.finish(&tokenizer)?);
/// assert!(stream.stopped());
/// assert_eq!(shown, b"to be "); // the stop string and what follows are not shown
/// # Ok::<(), brt::Error>(())
/// ```
#[derive(Debug)]
pub struct TextStream {
    stops: Vec<Vec<u8>>,
    /// Bytes held back: the longest a stop string could still grow from.
    hold: usize,
    tokens: Vec<u32>,
    /// Tokens `prefix..read` were decoded already and give context.
    prefix: usize,
    read: usize,
    /// Text decoded so far.
    text: Vec<u8>,
    /// Bytes of `text` given out.
    shown: usize,
    stopped: bool,
}

impl TextStream {
    /// A stream stopping at any of `stops` (not empty). Every call must pass the
    /// same tokenizer.
    ///
    /// An empty stop string is refused (it would stop at once):
    ///
    /// ```
    /// use brt::generate::TextStream;
    ///
    /// assert!(TextStream::new(&["\n\n".to_string()]).is_ok());
    /// assert!(TextStream::new(&[String::new()]).is_err());
    /// ```
    pub fn new(stops: &[String]) -> Result<TextStream> {
        if stops.iter().any(String::is_empty) {
            return Err(Error::Invalid("a stop string must not be empty".into()));
        }
        let stops: Vec<Vec<u8>> = stops.iter().map(|s| s.as_bytes().to_vec()).collect();
        let hold = stops.iter().map(|s| s.len() - 1).max().unwrap_or(0);
        Ok(TextStream {
            stops,
            hold,
            tokens: Vec::new(),
            prefix: 0,
            read: 0,
            text: Vec::new(),
            shown: 0,
            stopped: false,
        })
    }

    /// Adds the next token; returns the text that became final (often empty).
    /// After a stop string nothing more is returned.
    ///
    /// With the stop string `"END"`, the last two bytes wait until they can no
    /// longer begin it:
    ///
    /// ```
    /// use brt::generate::TextStream;
    /// use brt::tokenizer::Tokenizer;
    ///
    /// let bytes = Tokenizer::Bytes;
    /// let mut stream = TextStream::new(&["END".to_string()])?;
    /// let [a, b, e, n] = <[u32; 4]>::try_from(bytes.encode(b"abEN")?).unwrap();
    /// assert_eq!(stream.push(&bytes, a)?, b"");
    /// assert_eq!(stream.push(&bytes, b)?, b"");
    /// assert_eq!(stream.push(&bytes, e)?, b"a");
    /// assert_eq!(stream.push(&bytes, n)?, b"b");
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn push(&mut self, tokenizer: &Tokenizer, token: u32) -> Result<&[u8]> {
        if self.stopped {
            return Ok(&[]);
        }
        self.tokens.push(token);
        self.decode_new(tokenizer, false)?;
        Ok(self.release(false))
    }

    /// Ends the stream: returns the text still held back (unless a stop string
    /// came).
    ///
    /// At the end, the text held back comes out:
    ///
    /// ```
    /// use brt::generate::TextStream;
    /// use brt::tokenizer::Tokenizer;
    ///
    /// let bytes = Tokenizer::Bytes;
    /// let mut stream = TextStream::new(&["END".to_string()])?;
    /// let mut shown = Vec::new();
    /// for token in bytes.encode(b"the EN")? {
    ///     shown.extend_from_slice(stream.push(&bytes, token)?);
    /// }
    /// assert_eq!(shown, b"the ");
    /// assert_eq!(stream.finish(&bytes)?, b"EN");
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn finish(&mut self, tokenizer: &Tokenizer) -> Result<&[u8]> {
        if self.stopped {
            return Ok(&[]);
        }
        self.decode_new(tokenizer, true)?;
        Ok(self.release(true))
    }

    /// Whether a stop string was written.
    ///
    /// Only a whole stop string stops the stream:
    ///
    /// ```
    /// use brt::generate::TextStream;
    /// use brt::tokenizer::Tokenizer;
    ///
    /// let bytes = Tokenizer::Bytes;
    /// let mut stream = TextStream::new(&["END".to_string()])?;
    /// for token in bytes.encode(b"EN")? {
    ///     stream.push(&bytes, token)?;
    /// }
    /// assert!(!stream.stopped());
    /// stream.push(&bytes, bytes.encode(b"D")?[0])?;
    /// assert!(stream.stopped());
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// All the text given out so far.
    ///
    /// The text given out, without what is still held back:
    ///
    /// ```
    /// use brt::generate::TextStream;
    /// use brt::tokenizer::Tokenizer;
    ///
    /// let bytes = Tokenizer::Bytes;
    /// let mut stream = TextStream::new(&["END".to_string()])?;
    /// for token in bytes.encode(b"hello")? {
    ///     stream.push(&bytes, token)?;
    /// }
    /// assert_eq!(stream.into_text(), b"hel");
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn into_text(mut self) -> Vec<u8> {
        self.text.truncate(self.shown);
        self.text
    }

    fn decode_new(&mut self, tokenizer: &Tokenizer, last: bool) -> Result<()> {
        if tokenizer.is_bytes() {
            // One token is one byte (or nothing): no context needed.
            let new = tokenizer.decode(&self.tokens[self.read..])?;
            self.text.extend_from_slice(&new);
            self.read = self.tokens.len();
            return Ok(());
        }
        let before = tokenizer.decode(&self.tokens[self.prefix..self.read])?;
        let now = tokenizer.decode(&self.tokens[self.prefix..])?;
        let unfinished = now.ends_with("\u{FFFD}".as_bytes());
        if now.len() > before.len() && (last || !unfinished) {
            self.text.extend_from_slice(&now[before.len()..]);
            self.prefix = self.read;
            self.read = self.tokens.len();
        }
        Ok(())
    }

    /// Gives out what can no longer be the start of a stop string (everything,
    /// at the end), or the text before a stop string.
    fn release(&mut self, last: bool) -> &[u8] {
        let from = self.shown;
        let found = self.stops.iter().filter_map(|s| find(&self.text[from..], s).map(|i| from + i)).min();
        let end = match found {
            Some(at) => {
                self.stopped = true;
                at
            }
            None if last => self.text.len(),
            None => self.text.len().saturating_sub(self.hold).max(from),
        };
        self.shown = end;
        &self.text[from..end]
    }
}

/// Where `needle` (not empty) first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenizer::bytes::SPECIAL;

    fn ids(text: &str) -> Vec<u32> {
        text.bytes().map(|b| b as u32 + SPECIAL).collect()
    }

    /// Feeds `tokens` one at a time; returns the pieces given out, the finish's
    /// piece last, and whether a stop string ended it.
    fn pieces(tokenizer: &Tokenizer, stops: &[&str], tokens: &[u32]) -> (Vec<String>, bool) {
        let stops: Vec<String> = stops.iter().map(|s| s.to_string()).collect();
        let mut stream = TextStream::new(&stops).unwrap();
        let mut out = Vec::new();
        for &t in tokens {
            out.push(String::from_utf8_lossy(stream.push(tokenizer, t).unwrap()).into_owned());
        }
        out.push(String::from_utf8_lossy(stream.finish(tokenizer).unwrap()).into_owned());
        (out, stream.stopped())
    }

    #[test]
    fn a_stop_string_cut_across_tokens_stops_before_it_and_nothing_of_it_is_shown() {
        let (out, stopped) = pieces(&Tokenizer::Bytes, &["END", "xyz"], &ids("abENcEND tail"));
        assert!(stopped);
        assert_eq!(out.concat(), "abENc");
        // The last two bytes (the longest stop string less one) wait.
        assert_eq!(out[..5], ["", "", "a", "b", "E"], "held back while a stop could still grow");
        assert!(out[8..].iter().all(String::is_empty), "nothing after the stop string");
    }

    #[test]
    fn without_a_stop_string_the_held_back_text_comes_at_the_end() {
        let (out, stopped) = pieces(&Tokenizer::Bytes, &["ZZZ"], &ids("hello Z"));
        assert!(!stopped);
        assert_eq!(out.concat(), "hello Z");
        assert_eq!(out.last().unwrap(), " Z", "the last two bytes were held back");
        let (out, _) = pieces(&Tokenizer::Bytes, &[], &ids("abc"));
        assert_eq!(out, ["a", "b", "c", ""], "no stop string: every byte at once");
    }

    #[test]
    fn incremental_decoding_gives_the_whole_decoding() {
        // The ids tokenizer's text of a run of tokens is not the concatenation
        // of single tokens' texts decoded apart ("1 2 " vs "1 " + "2 "): here
        // it is, so what matters is that nothing is lost or repeated.
        let tokens = [5, 17, 0, 123_456, 9];
        let (out, _) = pieces(&Tokenizer::Ids, &["0 9"], &tokens);
        assert_eq!(out.concat(), "5 17 0 123456 9 ");
        let (out, stopped) = pieces(&Tokenizer::Ids, &["0 12"], &tokens);
        assert!(stopped);
        assert_eq!(out.concat(), "5 17 ");
    }

    #[test]
    fn an_empty_stop_string_is_refused() {
        let err = TextStream::new(&["".into()]).unwrap_err();
        assert!(err.to_string().contains("stop string"), "{err}");
    }
}
