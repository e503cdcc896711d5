//! Writing text: incremental decoding (SPEC section 6). Tokens of an unfinished
//! block attend to the previous W tokens and to the state entering the block; when
//! a block completes its state update runs. The core's stream does exactly this
//! when fed one token at a time.

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
#[derive(Debug)]
pub struct TextGenerator {
    writer: Writer,
}

impl TextGenerator {
    /// A generator; the options are checked.
    pub fn new(options: &GenerateOptions) -> Result<TextGenerator> {
        Ok(TextGenerator { writer: Writer::new(options)? })
    }

    /// Feeds `prompt` to `session` (batch 1); the penalties see it.
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
    pub fn cancel(&mut self) {
        self.writer.finish.get_or_insert(Finish::Cancelled);
    }

    /// Why generation ended, once it has.
    pub fn finish(&self) -> Option<Finish> {
        self.writer.finish
    }

    /// The tokens written so far.
    pub fn tokens(&self) -> &[u32] {
        &self.writer.tokens
    }

    /// The log-probabilities of the tokens written so far (see [`Generated::logprobs`]).
    pub fn logprobs(&self) -> &[f64] {
        &self.writer.logprobs
    }

    /// What was written.
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
    pub fn finish(&mut self, tokenizer: &Tokenizer) -> Result<&[u8]> {
        if self.stopped {
            return Ok(&[]);
        }
        self.decode_new(tokenizer, true)?;
        Ok(self.release(true))
    }

    /// Whether a stop string was written.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// All the text given out so far.
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
