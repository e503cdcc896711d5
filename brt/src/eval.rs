//! Scoring documents: next-token cross-entropy over a whole file, streamed block
//! by block in constant memory.
//!
//! Convention: every token of a document after the first is predicted from all
//! tokens before it (the official loss also drops the last position of each
//! training segment and padding tokens; this one does not, since it streams).
//!
//! A text of 13 bytes makes 12 predictions, whose mean is the bits per byte:
//!
//! ```
//! use brt::eval::score_reader;
//! use brt::tokenizer::Tokenizer;
//! use brt::Engine;
//! use brt_core::Reference;
//! use brt_heap::Heap;
//! use std::path::Path;
//!
//! let mut engine = Engine::new(Reference::new(Heap), &brt::default_model()?)?;
//! let mut session = engine.session(1, 16)?;
//! let mut text: &[u8] = b"To be, or not";
//! let path = Path::new("text");
//! let score = score_reader(&mut engine, &mut session, &Tokenizer::Bytes, &mut text, path, &[], &mut |_| {})?;
//! assert_eq!(score.predictions, 12);
//! assert!(score.bits_per_byte(true) > 0.0 && score.bits_per_byte(true) < 8.0);
//! # Ok::<(), brt::Error>(())
//! ```

use crate::engine::{Engine, Session};
use crate::error::{Error, Result};
use crate::tokenizer::Tokenizer;
use brt_core::Kernels;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Bytes read from a file at a time.
const READ_PIECE: usize = 1 << 16;
/// Quarter-octave bins for the loss against position.
const BINS_PER_OCTAVE: f64 = 4.0;

/// Sums of losses over predicted positions, overall and by position.
///
/// A score of two files pools their predictions; its rates are per
/// predicted token:
///
/// ```
/// use brt::eval::Score;
/// use std::f64::consts::LN_2;
///
/// let mut total = Score { predictions: 3, nats: 3.0 * LN_2, bytes: 4, tokens: 4, ..Default::default() };
/// total.add(&Score { predictions: 1, nats: 3.0 * LN_2, bytes: 2, tokens: 2, ..Default::default() });
/// assert_eq!((total.predictions, total.tokens), (4, 6));
/// assert!((total.bits_per_token() - 1.5).abs() < 1e-12);
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Score {
    /// Predicted tokens.
    pub predictions: u64,
    /// Sum of `-ln p(token)` over them.
    pub nats: f64,
    /// Bytes of text (for bits per byte).
    pub bytes: u64,
    /// Tokens read (predicted or not).
    pub tokens: u64,
    /// `(sum of nats, count)` of predictions at positions in each log-spaced bin
    /// (see [`position_bin`]).
    pub by_position: Vec<(f64, u64)>,
    /// Predictions from given positions on (exact), e.g. beyond the window: where
    /// only a memory of earlier blocks (the recurrent state) can see back that far.
    pub beyond: Vec<Beyond>,
}

/// The predictions of tokens at positions `from` and later (0-based in their
/// document: the token at position `p` is predicted from the `p` before it).
///
/// The predictions from position 4 on, in a score of a short text:
///
/// ```
/// use brt::tokenizer::Tokenizer;
/// # use brt::runtime::EngineBuilder;
/// # use brt::BackendKind;
/// # let mut engine = EngineBuilder::new().backend(BackendKind::Reference).build(&brt::default_model()?)?;
/// let score = engine.score(&Tokenizer::Bytes, b"To be, or", &[4], 8)?;
/// let beyond = score.beyond[0];
/// assert_eq!((beyond.from, beyond.predictions), (4, 9 - 4));
/// assert!(beyond.nats > 0.0 && beyond.nats < score.nats);
/// # Ok::<(), brt::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Beyond {
    /// First position counted.
    pub from: u64,
    /// Predictions counted.
    pub predictions: u64,
    /// Sum of their `-ln p(token)`.
    pub nats: f64,
}

impl Beyond {
    /// Bits per predicted token.
    ///
    /// Two predictions of one bit each:
    ///
    /// ```
    /// use brt::eval::Beyond;
    /// let beyond = Beyond { from: 64, predictions: 2, nats: 2.0 * std::f64::consts::LN_2 };
    /// assert!((beyond.bits_per_token() - 1.0).abs() < 1e-12);
    /// assert_eq!(Beyond::default().bits_per_token(), 0.0);
    /// ```
    pub fn bits_per_token(&self) -> f64 {
        self.nats / std::f64::consts::LN_2 / self.predictions.max(1) as f64
    }
}

/// The bin of position `p >= 1` (a quarter octave: bin `b` starts at `2^(b/4)`).
///
/// Four bins per doubling; every position lies in its bin's range:
///
/// ```
/// use brt::eval::{bin_start, position_bin};
///
/// assert_eq!((position_bin(1), position_bin(2), position_bin(16)), (0, 4, 16));
/// for p in [1, 3, 100, 4096] {
///     let bin = position_bin(p);
///     assert!(bin_start(bin) <= p as f64 && (p as f64) < bin_start(bin + 1));
/// }
/// ```
pub fn position_bin(p: u64) -> usize {
    ((p.max(1) as f64).log2() * BINS_PER_OCTAVE).floor() as usize
}

/// The first position of bin `b`.
///
/// Every fourth bin starts at a power of two:
///
/// ```
/// use brt::eval::bin_start;
/// assert_eq!((bin_start(0), bin_start(4), bin_start(8)), (1.0, 2.0, 4.0));
/// ```
pub fn bin_start(b: usize) -> f64 {
    2f64.powf(b as f64 / BINS_PER_OCTAVE)
}

impl Score {
    /// An empty score that also sums the predictions at each of the positions
    /// `beyond` and later.
    ///
    /// One empty count per position:
    ///
    /// ```
    /// use brt::eval::Score;
    /// let score = Score::beyond(&[64, 128]);
    /// assert_eq!(score.beyond.iter().map(|b| b.from).collect::<Vec<_>>(), [64, 128]);
    /// assert!(score.beyond.iter().all(|b| b.predictions == 0));
    /// ```
    pub fn beyond(positions: &[u64]) -> Score {
        Score {
            beyond: positions.iter().map(|&from| Beyond { from, ..Beyond::default() }).collect(),
            ..Score::default()
        }
    }

    /// Nats per predicted token.
    ///
    /// The mean of `-ln p`; 0 with nothing predicted:
    ///
    /// ```
    /// use brt::eval::Score;
    /// let score = Score { predictions: 4, nats: 2.0, ..Default::default() };
    /// assert_eq!(score.nats_per_token(), 0.5);
    /// assert_eq!(Score::default().nats_per_token(), 0.0);
    /// ```
    pub fn nats_per_token(&self) -> f64 {
        self.nats / self.predictions.max(1) as f64
    }
    /// Bits per predicted token.
    ///
    /// `ln 2` nats are one bit:
    ///
    /// ```
    /// use brt::eval::Score;
    /// let score = Score { predictions: 2, nats: 2.0 * std::f64::consts::LN_2, ..Default::default() };
    /// assert!((score.bits_per_token() - 1.0).abs() < 1e-12);
    /// ```
    pub fn bits_per_token(&self) -> f64 {
        self.nats_per_token() / std::f64::consts::LN_2
    }
    /// Bits per byte of text: all bits over the text's bytes (for the byte
    /// tokenizer, over predicted bytes, so it equals bits per token).
    ///
    /// With another tokenizer the bits are shared among the text's bytes:
    ///
    /// ```
    /// use brt::eval::Score;
    /// let score = Score { predictions: 2, nats: 4.0 * std::f64::consts::LN_2, bytes: 8, ..Default::default() };
    /// assert!((score.bits_per_byte(true) - 2.0).abs() < 1e-12);
    /// assert!((score.bits_per_byte(false) - 0.5).abs() < 1e-12);
    /// ```
    pub fn bits_per_byte(&self, bytes_tokenizer: bool) -> f64 {
        let bytes = if bytes_tokenizer { self.predictions } else { self.bytes };
        self.nats / std::f64::consts::LN_2 / bytes.max(1) as f64
    }

    /// Adds another score (pooling predictions).
    ///
    /// Counts beyond the same position are summed; others are kept:
    ///
    /// ```
    /// use brt::eval::{Beyond, Score};
    ///
    /// let mut a = Score { beyond: vec![Beyond { from: 8, predictions: 1, nats: 1.0 }], ..Default::default() };
    /// let b = Score {
    ///     beyond: vec![Beyond { from: 8, predictions: 2, nats: 1.5 }, Beyond { from: 16, predictions: 1, nats: 0.5 }],
    ///     ..Default::default()
    /// };
    /// a.add(&b);
    /// assert_eq!(a.beyond[0], Beyond { from: 8, predictions: 3, nats: 2.5 });
    /// assert_eq!(a.beyond[1].from, 16);
    /// ```
    pub fn add(&mut self, other: &Score) {
        self.predictions += other.predictions;
        self.nats += other.nats;
        self.bytes += other.bytes;
        self.tokens += other.tokens;
        if self.by_position.len() < other.by_position.len() {
            self.by_position.resize(other.by_position.len(), (0.0, 0));
        }
        for (mine, theirs) in self.by_position.iter_mut().zip(&other.by_position) {
            mine.0 += theirs.0;
            mine.1 += theirs.1;
        }
        for theirs in &other.beyond {
            match self.beyond.iter_mut().find(|b| b.from == theirs.from) {
                Some(mine) => {
                    mine.predictions += theirs.predictions;
                    mine.nats += theirs.nats;
                }
                None => self.beyond.push(*theirs),
            }
        }
    }

    fn record(&mut self, position: u64, nats: f64) {
        self.predictions += 1;
        self.nats += nats;
        let bin = position_bin(position);
        if self.by_position.len() <= bin {
            self.by_position.resize(bin + 1, (0.0, 0));
        }
        self.by_position[bin].0 += nats;
        self.by_position[bin].1 += 1;
        for b in self.beyond.iter_mut().filter(|b| position >= b.from) {
            b.predictions += 1;
            b.nats += nats;
        }
    }
}

/// `-ln softmax(logits)[target]`, computed in f64.
///
/// Equal logits give every token `ln V`; large logits do not overflow:
///
/// ```
/// use brt::eval::nll;
///
/// assert!((nll(&[0.0; 4], 2) - 4f64.ln()).abs() < 1e-12);
/// assert!((nll(&[1000.0, 1000.0], 0) - 2f64.ln()).abs() < 1e-12);
/// assert!(nll(&[5.0, 0.0], 0) < nll(&[5.0, 0.0], 1));
/// ```
pub fn nll(logits: &[f32], target: u32) -> f64 {
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
    let sum: f64 = logits.iter().map(|&v| (v as f64 - max).exp()).sum();
    max + sum.ln() - logits[target as usize] as f64
}

/// The result of scoring one file.
///
/// A file's score, named:
///
/// ```
/// use brt::eval::{FileScore, Score};
/// use std::path::PathBuf;
///
/// let scored = FileScore { path: PathBuf::from("hamlet.txt"), score: Score::default() };
/// assert_eq!(scored.path.file_name().unwrap(), "hamlet.txt");
/// assert_eq!(scored.score.predictions, 0);
/// ```
#[derive(Clone, Debug)]
pub struct FileScore {
    /// The file.
    pub path: PathBuf,
    /// Its score.
    pub score: Score,
}

/// Streams `path` (its first `max_bytes` bytes, if given) through `session`
/// (batch 1, which should start fresh) as one document and scores every
/// prediction, and separately those from each of the positions `beyond` on.
/// `progress(bytes)` is told how many bytes were read so far.
///
/// Only the first 5 bytes of the file are read: 4 predictions:
///
/// ```
/// use brt::eval::score_file;
/// use brt::tokenizer::Tokenizer;
/// # use brt::Engine;
/// # use brt_core::Reference;
/// # use brt_heap::Heap;
/// # let mut engine = Engine::new(Reference::new(Heap), &brt::default_model()?)?;
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("text.txt");
/// std::fs::write(&path, "To be, or not to be")?;
/// let mut session = engine.session(1, 8)?;
/// let mut read = 0;
/// let mut progress = |bytes: u64| read = bytes;
/// let score = score_file(&mut engine, &mut session, &Tokenizer::Bytes, &path, Some(5), &[], &mut progress)?;
/// assert_eq!((score.bytes, score.tokens, score.predictions), (5, 5, 4));
/// assert_eq!(read, 5);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn score_file<K: Kernels>(
    engine: &mut Engine<K>,
    session: &mut Session<K>,
    tokenizer: &Tokenizer,
    path: &Path,
    max_bytes: Option<u64>,
    beyond: &[u64],
    progress: &mut dyn FnMut(u64),
) -> Result<Score>
where
    Error: From<K::Error>,
{
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut file = file.take(max_bytes.unwrap_or(u64::MAX));
    score_reader(engine, session, tokenizer, &mut file, path, beyond, progress)
}

/// Scores the text read from `file` as [`score_file`] does; `path` names it in
/// messages.
///
/// Scoring in calls of 2 tokens gives the score of one call (up to rounding);
/// ids the model does not have are refused:
///
/// ```
/// use brt::eval::score_reader;
/// use brt::tokenizer::Tokenizer;
/// use std::path::Path;
/// # use brt::Engine;
/// # use brt_core::Reference;
/// # use brt_heap::Heap;
/// # let mut engine = Engine::new(Reference::new(Heap), &brt::default_model()?)?;
/// let mut scores = Vec::new();
/// for chunk in [2, 16] {
///     let mut session = engine.session(1, chunk)?;
///     let mut text: &[u8] = b"To be,";
///     let path = Path::new("text");
///     scores.push(score_reader(&mut engine, &mut session, &Tokenizer::Bytes, &mut text, path, &[], &mut |_| {})?);
/// }
/// assert_eq!(scores[0].predictions, 5);
/// assert!((scores[0].nats - scores[1].nats).abs() < 1e-3);
/// let mut session = engine.session(1, 8)?;
/// let mut ids: &[u8] = b"40 300";
/// let path = Path::new("ids");
/// assert!(score_reader(&mut engine, &mut session, &Tokenizer::Ids, &mut ids, path, &[], &mut |_| {}).is_err());
/// # Ok::<(), brt::Error>(())
/// ```
pub fn score_reader<K: Kernels>(
    engine: &mut Engine<K>,
    session: &mut Session<K>,
    tokenizer: &Tokenizer,
    file: &mut dyn Read,
    path: &Path,
    beyond: &[u64],
    progress: &mut dyn FnMut(u64),
) -> Result<Score>
where
    Error: From<K::Error>,
{
    let chunk = session.chunk();
    let vocab = engine.config().vocab;
    let mut encoder = tokenizer.encoder();
    let mut pending: Vec<u32> = Vec::with_capacity(2 * chunk + READ_PIECE);
    let mut piece = vec![0u8; READ_PIECE];
    let mut score = Score::beyond(beyond);
    let mut done = false;
    while !done {
        let read = file.read(&mut piece).map_err(|e| Error::io(path, e))?;
        score.bytes += read as u64;
        progress(score.bytes);
        if read == 0 {
            pending.extend(encoder.finish().map_err(|e| Error::format(path, e.to_string()))?);
            done = true;
        } else {
            pending.extend(encoder.push(&piece[..read]).map_err(|e| Error::format(path, e.to_string()))?);
        }
        // Feed whole chunks, and at the end whatever is left.
        let mut used = 0;
        while pending.len() - used >= chunk || (done && used < pending.len()) {
            let n = chunk.min(pending.len() - used);
            let tokens = &pending[used..used + n];
            if let Some(&id) = tokens.iter().find(|&&id| id as usize >= vocab) {
                return Err(Error::Invalid(format!(
                    "{}: token id {id} is not below the model's vocabulary size {vocab}; wrong tokenizer?",
                    path.display()
                )));
            }
            let base = score.tokens;
            // The first token of this call is predicted by the last logits of the
            // previous call.
            if let Some(last) = session.last_logits(0).filter(|_| base > 0) {
                score.record(base, nll(last, tokens[0]));
            }
            let mut reader = |start: usize, logits: &[f32]| {
                for (i, row) in logits.chunks_exact(vocab).enumerate() {
                    let t = start + i;
                    if let Some(&next) = tokens.get(t + 1) {
                        score.record(base + t as u64 + 1, nll(row, next));
                    }
                }
                Ok(())
            };
            session.feed_rows(engine, &[tokens], &[], Some(&mut reader))?;
            score.tokens += n as u64;
            used += n;
        }
        pending.drain(..used);
    }
    Ok(score)
}
