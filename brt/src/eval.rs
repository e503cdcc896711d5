//! Scoring documents: next-token cross-entropy over a whole file, streamed block
//! by block in constant memory.
//!
//! Convention: every token of a document after the first is predicted from all
//! tokens before it (the official loss also drops the last position of each
//! training segment and padding tokens; this one does not, since it streams).

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
    pub fn bits_per_token(&self) -> f64 {
        self.nats / std::f64::consts::LN_2 / self.predictions.max(1) as f64
    }
}

/// The bin of position `p >= 1` (a quarter octave: bin `b` starts at `2^(b/4)`).
pub fn position_bin(p: u64) -> usize {
    ((p.max(1) as f64).log2() * BINS_PER_OCTAVE).floor() as usize
}

/// The first position of bin `b`.
pub fn bin_start(b: usize) -> f64 {
    2f64.powf(b as f64 / BINS_PER_OCTAVE)
}

impl Score {
    /// An empty score that also sums the predictions at each of the positions
    /// `beyond` and later.
    pub fn beyond(positions: &[u64]) -> Score {
        Score {
            beyond: positions.iter().map(|&from| Beyond { from, ..Beyond::default() }).collect(),
            ..Score::default()
        }
    }

    /// Nats per predicted token.
    pub fn nats_per_token(&self) -> f64 {
        self.nats / self.predictions.max(1) as f64
    }
    /// Bits per predicted token.
    pub fn bits_per_token(&self) -> f64 {
        self.nats_per_token() / std::f64::consts::LN_2
    }
    /// Bits per byte of text: all bits over the text's bytes (for the byte
    /// tokenizer, over predicted bytes, so it equals bits per token).
    pub fn bits_per_byte(&self, bytes_tokenizer: bool) -> f64 {
        let bytes = if bytes_tokenizer { self.predictions } else { self.bytes };
        self.nats / std::f64::consts::LN_2 / bytes.max(1) as f64
    }

    /// Adds another score (pooling predictions).
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
pub fn nll(logits: &[f32], target: u32) -> f64 {
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
    let sum: f64 = logits.iter().map(|&v| (v as f64 - max).exp()).sum();
    max + sum.ln() - logits[target as usize] as f64
}

/// The result of scoring one file.
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
