//! A long-range recall task: documents of natural filler text in which keys are
//! given values (`<KEY=0123>`) and asked for again later (`<KEY?0123>`), at
//! controlled distances. Only memory can answer a query: the value's digits are
//! random, so a model that cannot see the definition is at chance (1 in 10 per
//! digit). Scoring the value digits of the queries by distance shows how far back
//! a model remembers: a sliding-window Transformer at most `window x layers`
//! bytes, a Block-Recurrent one as far as its state carries.
//!
//! Documents are a pure function of the filler text, the options and the seed
//! (SplitMix64), so training and scoring sets are reproduced from their seeds.

use crate::engine::{Engine, Session};
use crate::error::{Error, Result};
use crate::eval::nll;
use crate::tokenizer::bytes;
use brt_core::init::SplitMix64;
use brt_core::Kernels;
use serde::Serialize;

/// Letters in a key.
///
/// A definition is `<`, the key, `=`, the value and `>`:
///
/// ```
/// # use brt::recall::{document, Filler, RecallOptions};
/// # let filler = Filler::new([b"the quick brown fox jumps over the lazy dog. ".repeat(30).as_slice()])?;
///
/// use brt::recall::KEY_LEN;
/// let doc = document(&filler, &RecallOptions::default(), 1, 0);
/// let at = doc.bytes.windows(1).position(|w| w == b"=").unwrap();
/// let start = doc.bytes[..at].iter().rposition(|&b| b == b'<').unwrap();
/// assert_eq!(at - start - 1, KEY_LEN);
/// assert!(doc.bytes[start + 1..at].iter().all(u8::is_ascii_uppercase));
/// # Ok::<(), brt::Error>(())
/// ```
pub const KEY_LEN: usize = 3;
/// Digits in a value unless the options say otherwise.
///
/// ```
/// use brt::recall::{RecallOptions, VALUE_LEN};
/// assert_eq!(RecallOptions::default().value_digits, VALUE_LEN);
/// ```
pub const VALUE_LEN: usize = 4;
/// Most digits in a value.
///
/// ```
/// use brt::recall::{RecallOptions, MAX_VALUE_LEN};
/// // (A longer record needs a longer smallest distance than the default 12.)
/// let options = |value_digits| RecallOptions { value_digits, min_distance: 16, ..RecallOptions::default() };
/// assert!(options(MAX_VALUE_LEN).validate().is_ok());
/// assert!(options(MAX_VALUE_LEN + 1).validate().is_err());
/// ```
pub const MAX_VALUE_LEN: usize = 8;
/// Accuracy of guessing a digit.
///
/// One digit in ten:
///
/// ```
/// assert_eq!(brt::recall::CHANCE, 1.0 / 10.0);
/// ```
pub const CHANCE: f64 = 0.1;
/// The longest document (16 MiB), so that a length flag cannot ask for more
/// memory than a machine has.
///
/// ```
/// use brt::recall::{RecallOptions, MAX_LENGTH};
/// assert!(RecallOptions { length: MAX_LENGTH + 1, ..RecallOptions::default() }.validate().is_err());
/// ```
pub const MAX_LENGTH: usize = 1 << 24;

/// How documents are made.
///
/// Documents have exactly the length asked for, with blank filler when asked:
///
/// ```
/// # use brt::recall::{document, Filler, RecallOptions};
/// # let filler = Filler::new([b"the quick brown fox jumps over the lazy dog. ".repeat(30).as_slice()])?;
///
/// let options = RecallOptions { length: 300, blank_filler: true, ..RecallOptions::default() };
/// options.validate()?;
/// let doc = document(&filler, &options, 1, 0);
/// assert_eq!(doc.bytes.len(), 300);
/// assert!(doc.bytes.iter().all(|&b| b == b'.' || b"<=?>".contains(&b) || b.is_ascii_alphanumeric()));
/// # Ok::<(), brt::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RecallOptions {
    /// Bytes per document (exactly).
    pub length: usize,
    /// Mean bytes of filler between two records (a definition or a query).
    pub gap: usize,
    /// Smallest distance asked, in bytes from the definition's value to the
    /// query's (a query may come later than asked when records crowd).
    pub min_distance: usize,
    /// Largest distance asked; distances are drawn uniformly on a log scale.
    pub max_distance: usize,
    /// Most keys waiting to be asked at once (1: every query asks for the last
    /// value given, and the key need not be matched).
    pub max_pending: usize,
    /// Digits in a value (1 to [`MAX_VALUE_LEN`]; a record must also fit in
    /// `min_distance`, so more digits need a larger one). With one digit,
    /// recalling it needs no order: a memory of which digit came is enough.
    pub value_digits: usize,
    /// Filler of dots instead of the filler text (the records are then all a
    /// block holds that varies: the easiest memory test).
    pub blank_filler: bool,
}

impl Default for RecallOptions {
    fn default() -> Self {
        RecallOptions {
            length: 2048,
            gap: 24,
            min_distance: 12,
            max_distance: 1024,
            max_pending: 64,
            value_digits: VALUE_LEN,
            blank_filler: false,
        }
    }
}

impl RecallOptions {
    /// Checks the options make documents.
    ///
    /// The smallest distance cannot be shorter than a record, nor longer than the
    /// largest:
    ///
    /// ```
    /// use brt::recall::RecallOptions;
    /// assert!(RecallOptions::default().validate().is_ok());
    /// assert!(RecallOptions { min_distance: 2, ..RecallOptions::default() }.validate().is_err());
    /// assert!(RecallOptions { min_distance: 900, max_distance: 100, ..RecallOptions::default() }.validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<()> {
        if !(1..=MAX_VALUE_LEN).contains(&self.value_digits) {
            return Err(Error::Invalid(format!(
                "recall values have 1 to {MAX_VALUE_LEN} digits (got {})",
                self.value_digits
            )));
        }
        let record = KEY_LEN + self.value_digits + 3;
        if self.min_distance < record || self.min_distance > self.max_distance {
            return Err(Error::Invalid(format!(
                "recall distances: need {record} <= min distance ({}) <= max distance ({})",
                self.min_distance, self.max_distance
            )));
        }
        if self.max_pending == 0 || self.max_pending > 1000 {
            return Err(Error::Invalid(format!(
                "recall documents need 1 to 1000 keys waiting at once (got {})",
                self.max_pending
            )));
        }
        if self.length > MAX_LENGTH {
            return Err(Error::Invalid(format!(
                "recall documents are at most {MAX_LENGTH} bytes long (got {})",
                self.length
            )));
        }
        if self.length < 4 * record || self.gap == 0 {
            return Err(Error::Invalid(format!(
                "recall documents need a length of at least {} bytes and a gap of at least 1 (got {} and {})",
                4 * record,
                self.length,
                self.gap
            )));
        }
        Ok(())
    }
}

/// One value digit a model is asked to recall.
///
/// The digit at an answer's position is the one `distance` bytes before it, in
/// the definition:
///
/// ```
/// # use brt::recall::{document, Filler, RecallOptions};
/// # let filler = Filler::new([b"the quick brown fox jumps over the lazy dog. ".repeat(30).as_slice()])?;
///
/// let doc = document(&filler, &RecallOptions::default(), 3, 0);
/// for a in &doc.answers {
///     assert!(doc.bytes[a.position].is_ascii_digit());
///     assert_eq!(doc.bytes[a.position], doc.bytes[a.position - a.distance]);
/// }
/// # Ok::<(), brt::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer {
    /// Where the digit is in the document (predicted from everything before it).
    pub position: usize,
    /// Bytes from the same digit in the definition.
    pub distance: usize,
}

/// A generated document and the digits that test recall.
///
/// Every query digit is an answer, so there are [`VALUE_LEN`] per query (queries
/// cut off at the end of the document keep the digits they have):
///
/// ```
/// # use brt::recall::{document, Filler, RecallOptions};
/// # let filler = Filler::new([b"the quick brown fox jumps over the lazy dog. ".repeat(30).as_slice()])?;
///
/// use brt::recall::VALUE_LEN;
/// let doc = document(&filler, &RecallOptions::default(), 2, 0);
/// let queries = doc.bytes.iter().filter(|&&b| b == b'?').count();
/// assert!(doc.answers.len() <= queries * VALUE_LEN && doc.answers.len() > (queries - 1) * VALUE_LEN);
/// # Ok::<(), brt::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecallDocument {
    /// The document's bytes.
    pub bytes: Vec<u8>,
    /// Its query digits, in order.
    pub answers: Vec<Answer>,
}

/// Filler text: natural documents with the record markers `<` and `>` replaced
/// (by `(` and `)`), so that a record can only be one the generator wrote.
///
/// Markers in the text never reach a document (here with a gap longer than the
/// document, which is then all filler):
///
/// ```
/// use brt::recall::{document, Filler, RecallOptions};
/// let filler = Filler::new([b"<b>bold</b> text ".repeat(80).as_slice()])?;
/// let options = RecallOptions { length: 500, gap: 1000, ..RecallOptions::default() };
/// let doc = document(&filler, &options, 1, 0);
/// assert!(doc.bytes.contains(&b'('));
/// assert!(!doc.bytes.contains(&b'<') && doc.answers.is_empty());
/// # Ok::<(), brt::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Filler {
    text: Vec<u8>,
}

impl Filler {
    /// Filler from documents (concatenated, separated by a blank line).
    ///
    /// At least 1 KiB of text is needed:
    ///
    /// ```
    /// use brt::recall::Filler;
    /// assert!(Filler::new([b"too short".as_slice()]).is_err());
    /// let page = vec![b'x'; 600];
    /// assert!(Filler::new([page.as_slice(), page.as_slice()]).is_ok());
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn new<'a>(documents: impl IntoIterator<Item = &'a [u8]>) -> Result<Filler> {
        let mut text = Vec::new();
        for d in documents {
            text.extend(d.iter().map(|&b| match b {
                b'<' => b'(',
                b'>' => b')',
                b => b,
            }));
            text.extend_from_slice(b"\n\n");
        }
        if text.len() < 1024 {
            return Err(Error::Invalid(format!(
                "recall filler: {} bytes of text is too little (give at least 1 KiB of documents)",
                text.len()
            )));
        }
        Ok(Filler { text })
    }
}

/// A query waiting for its turn.
struct Pending {
    /// Position at or after which it is written.
    due: usize,
    key: [u8; KEY_LEN],
    value: [u8; MAX_VALUE_LEN],
    /// Where the definition's value starts.
    defined_at: usize,
}

/// Document `index` of the set drawn from `seed`.
///
/// The same seed and index give the same document; another index another:
///
/// ```
/// # use brt::recall::{document, Filler, RecallOptions};
/// # let filler = Filler::new([b"the quick brown fox jumps over the lazy dog. ".repeat(30).as_slice()])?;
///
/// let options = RecallOptions::default();
/// assert_eq!(document(&filler, &options, 5, 0), document(&filler, &options, 5, 0));
/// assert_ne!(document(&filler, &options, 5, 0).bytes, document(&filler, &options, 5, 1).bytes);
/// # Ok::<(), brt::Error>(())
/// ```
pub fn document(filler: &Filler, options: &RecallOptions, seed: u64, index: u64) -> RecallDocument {
    let mut rng = SplitMix64::new(seed ^ index.wrapping_mul(0xA076_1D64_78BD_642F));
    let below = |rng: &mut SplitMix64, n: usize| (rng.uniform() * n as f64) as usize % n.max(1);
    let mut out = Vec::with_capacity(options.length + 16);
    let mut answers = Vec::new();
    let mut pending: Vec<Pending> = Vec::new();
    let mut cursor = below(&mut rng, filler.text.len());
    let (log_min, log_max) = ((options.min_distance as f64).ln(), (options.max_distance as f64).ln());
    while out.len() < options.length {
        // A query that is due goes first.
        if let Some(i) = pending.iter().position(|p| p.due <= out.len()) {
            let p = pending.swap_remove(i);
            out.push(b'<');
            out.extend_from_slice(&p.key);
            out.push(b'?');
            let at = out.len();
            let digits = options.value_digits;
            answers.extend((0..digits).map(|j| Answer { position: at + j, distance: at - p.defined_at }));
            out.extend_from_slice(&p.value[..digits]);
            out.push(b'>');
            continue;
        }
        // Filler up to the next record (or the next due query).
        let mut n = 1 + below(&mut rng, 2 * options.gap);
        if let Some(due) = pending.iter().map(|p| p.due).min() {
            n = n.min(due - out.len());
        }
        for _ in 0..n {
            out.push(if options.blank_filler { b'.' } else { filler.text[cursor] });
            cursor = (cursor + 1) % filler.text.len();
        }
        if pending.len() >= options.max_pending {
            continue;
        }
        // Then a definition, with its query scheduled. Its key is not one still
        // waiting to be asked (a key asked already may be given a new value).
        let key = loop {
            let mut key = [0u8; KEY_LEN];
            key.iter_mut().for_each(|k| *k = b'A' + below(&mut rng, 26) as u8);
            if pending.iter().all(|p| p.key != key) {
                break key;
            }
        };
        let mut value = [0u8; MAX_VALUE_LEN];
        value[..options.value_digits].iter_mut().for_each(|v| *v = b'0' + below(&mut rng, 10) as u8);
        out.push(b'<');
        out.extend_from_slice(&key);
        out.push(b'=');
        let defined_at = out.len();
        out.extend_from_slice(&value[..options.value_digits]);
        out.push(b'>');
        let distance = (log_min + rng.uniform() * (log_max - log_min)).exp() as usize;
        // The query's value comes KEY_LEN + 2 bytes after its start.
        let due = defined_at.saturating_add(distance).saturating_sub(KEY_LEN + 2).max(out.len());
        pending.push(Pending { due, key, value, defined_at });
    }
    out.truncate(options.length);
    answers.retain(|a| a.position < options.length);
    RecallDocument { bytes: out, answers }
}

/// Accuracy and loss of the query digits whose distance is in `[lower, upper)`.
///
/// ```
/// use brt::recall::Bucket;
/// let bucket = Bucket { lower: 8, upper: 16, asked: 4, correct: 1, nats: 4.0 * std::f64::consts::LN_2 };
/// assert_eq!(bucket.accuracy(), 0.25);
/// assert!((bucket.bits() - 1.0).abs() < 1e-12);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Bucket {
    /// Smallest distance in the bucket.
    pub lower: usize,
    /// One past the largest.
    pub upper: usize,
    /// Digits asked.
    pub asked: u64,
    /// Digits the model ranks first.
    pub correct: u64,
    /// Sum of `-ln p(digit)`.
    pub nats: f64,
}

impl Bucket {
    /// Fraction of digits ranked first.
    ///
    /// An empty bucket has accuracy 0, not NaN:
    ///
    /// ```
    /// use brt::recall::Bucket;
    /// assert_eq!(Bucket::default().accuracy(), 0.0);
    /// assert_eq!(Bucket { asked: 10, correct: 3, ..Bucket::default() }.accuracy(), 0.3);
    /// ```
    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.asked.max(1) as f64
    }
    /// Mean bits per digit.
    ///
    /// A uniform guess among ten digits costs `log2 10` bits:
    ///
    /// ```
    /// use brt::recall::Bucket;
    /// let guess = Bucket { asked: 5, nats: 5.0 * 10f64.ln(), ..Bucket::default() };
    /// assert!((guess.bits() - 10f64.log2()).abs() < 1e-12);
    /// ```
    pub fn bits(&self) -> f64 {
        self.nats / std::f64::consts::LN_2 / self.asked.max(1) as f64
    }
}

/// Recall scores in octaves of distance (bucket `k` holds `[2^k, 2^(k+1))`).
///
/// Each bucket spans an octave, and every query digit is in one:
///
/// ```
/// # use brt::recall::{document, score, Filler, RecallOptions};
/// # use brt::Engine;
/// # use brt_core::{Config, Reference, WeightDtype};
/// # use brt_heap::Heap;
/// # let filler = Filler::new([b"the quick brown fox jumps over the lazy dog. ".repeat(30).as_slice()])?;
/// # let options = RecallOptions { length: 256, max_distance: 128, ..RecallOptions::default() };
/// # let documents: Vec<_> = (0..2).map(|i| document(&filler, &options, 1, i)).collect();
/// # let model = brt::bench::random_model(&Config::plain(260, 8, 2, 4, 16, 1, 16), WeightDtype::F32, 1)?;
/// # let mut engine = Engine::new(Reference::new(Heap), &model)?;
///
/// let result = score(&mut engine, &documents, 2)?;
/// assert!(result.buckets.iter().all(|b| b.upper == 2 * b.lower && b.lower.is_power_of_two()));
/// let asked: u64 = result.buckets.iter().map(|b| b.asked).sum();
/// assert_eq!(asked as usize, documents.iter().map(|d| d.answers.len()).sum::<usize>());
/// # Ok::<(), brt::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RecallScore {
    /// Non-empty buckets, nearest first.
    pub buckets: Vec<Bucket>,
}

impl RecallScore {
    fn record(&mut self, distance: usize, correct: bool, nats: f64) {
        let octave = usize::BITS as usize - 1 - distance.max(1).leading_zeros() as usize;
        let (lower, upper) = (1usize << octave, 1usize.checked_shl(octave as u32 + 1).unwrap_or(usize::MAX));
        let b = self.bucket(lower, upper);
        b.asked += 1;
        b.correct += correct as u64;
        b.nats += nats;
    }

    /// The bucket starting at `lower`, made empty if missing.
    fn bucket(&mut self, lower: usize, upper: usize) -> &mut Bucket {
        let at = match self.buckets.binary_search_by_key(&lower, |b| b.lower) {
            Ok(i) => i,
            Err(i) => {
                self.buckets.insert(i, Bucket { lower, upper, ..Bucket::default() });
                i
            }
        };
        &mut self.buckets[at]
    }

    /// Adds the counts of another score.
    ///
    /// Scoring the documents one by one and adding the scores counts what scoring
    /// them together does:
    ///
    /// ```
    /// # use brt::recall::{document, score, Filler, RecallOptions};
    /// # use brt::Engine;
    /// # use brt_core::{Config, Reference, WeightDtype};
    /// # use brt_heap::Heap;
    /// # let filler = Filler::new([b"the quick brown fox jumps over the lazy dog. ".repeat(30).as_slice()])?;
    /// # let options = RecallOptions { length: 256, max_distance: 128, ..RecallOptions::default() };
    /// # let documents: Vec<_> = (0..2).map(|i| document(&filler, &options, 1, i)).collect();
    /// # let model = brt::bench::random_model(&Config::plain(260, 8, 2, 4, 16, 1, 16), WeightDtype::F32, 1)?;
    /// # let mut engine = Engine::new(Reference::new(Heap), &model)?;
    ///
    /// let mut sum = score(&mut engine, &documents[..1], 1)?;
    /// sum.add(&score(&mut engine, &documents[1..], 1)?);
    /// let together = score(&mut engine, &documents, 2)?;
    /// assert_eq!(sum.between(0, usize::MAX).asked, together.between(0, usize::MAX).asked);
    /// assert_eq!(sum.between(0, usize::MAX).correct, together.between(0, usize::MAX).correct);
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn add(&mut self, other: &RecallScore) {
        for b in &other.buckets {
            let mine = self.bucket(b.lower, b.upper);
            mine.asked += b.asked;
            mine.correct += b.correct;
            mine.nats += b.nats;
        }
    }

    /// Pools the buckets at distances in `[lower, upper)`.
    ///
    /// Buckets that are not wholly inside the range are left out:
    ///
    /// ```
    /// # use brt::recall::{document, score, Filler, RecallOptions};
    /// # use brt::Engine;
    /// # use brt_core::{Config, Reference, WeightDtype};
    /// # use brt_heap::Heap;
    /// # let filler = Filler::new([b"the quick brown fox jumps over the lazy dog. ".repeat(30).as_slice()])?;
    /// # let options = RecallOptions { length: 256, max_distance: 128, ..RecallOptions::default() };
    /// # let documents: Vec<_> = (0..2).map(|i| document(&filler, &options, 1, i)).collect();
    /// # let model = brt::bench::random_model(&Config::plain(260, 8, 2, 4, 16, 1, 16), WeightDtype::F32, 1)?;
    /// # let mut engine = Engine::new(Reference::new(Heap), &model)?;
    ///
    /// let result = score(&mut engine, &documents, 2)?;
    /// let all = result.between(0, usize::MAX);
    /// let near = result.between(0, 32);
    /// let far = result.between(32, usize::MAX);
    /// assert_eq!(near.asked + far.asked, all.asked);
    /// assert_eq!((near.lower, near.upper), (0, 32));
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn between(&self, lower: usize, upper: usize) -> Bucket {
        let mut all = Bucket { lower, upper, ..Bucket::default() };
        for b in self.buckets.iter().filter(|b| b.lower >= lower && b.upper <= upper) {
            all.asked += b.asked;
            all.correct += b.correct;
            all.nats += b.nats;
        }
        all
    }
}

/// Scores a model on `documents` (all of one length), `batch` at a time side by
/// side, each from a fresh state: the accuracy of its first choice and its loss
/// on every query digit, by distance.
///
/// A random model is near chance, and a model without the byte vocabulary is
/// refused:
///
/// ```
/// # use brt::recall::{document, score, Filler, RecallOptions};
/// # use brt::Engine;
/// # use brt_core::{Config, Reference, WeightDtype};
/// # use brt_heap::Heap;
/// # let filler = Filler::new([b"the quick brown fox jumps over the lazy dog. ".repeat(30).as_slice()])?;
/// # let options = RecallOptions { length: 256, max_distance: 128, ..RecallOptions::default() };
/// # let documents: Vec<_> = (0..2).map(|i| document(&filler, &options, 1, i)).collect();
/// # let model = brt::bench::random_model(&Config::plain(260, 8, 2, 4, 16, 1, 16), WeightDtype::F32, 1)?;
/// # let mut engine = Engine::new(Reference::new(Heap), &model)?;
///
/// use brt::recall::CHANCE;
/// let result = score(&mut engine, &documents, 2)?.between(0, usize::MAX);
/// assert!(result.asked > 0 && result.accuracy() < 3.0 * CHANCE);
/// let small = brt::bench::random_model(&Config::plain(16, 8, 2, 4, 16, 1, 16), WeightDtype::F32, 1)?;
/// let mut small = Engine::new(Reference::new(Heap), &small)?;
/// assert!(score(&mut small, &documents, 2).is_err());
/// # Ok::<(), brt::Error>(())
/// ```
pub fn score<K: Kernels>(engine: &mut Engine<K>, documents: &[RecallDocument], batch: usize) -> Result<RecallScore>
where
    Error: From<K::Error>,
{
    let vocab = engine.config().vocab;
    if vocab < bytes::USED as usize {
        return Err(Error::Invalid(format!(
            "recall documents are bytes: the model's vocabulary ({vocab}) is smaller than the byte vocabulary's ({})",
            bytes::USED
        )));
    }
    let id = |b: u8| b as u32 + bytes::SPECIAL;
    let mut result = RecallScore::default();
    for group in documents.chunks(batch.max(1)) {
        let length = group[0].bytes.len();
        if group.iter().any(|d| d.bytes.len() != length) {
            return Err(Error::Invalid("recall documents scored together must have one length".into()));
        }
        let rows: Vec<Vec<u32>> = group.iter().map(|d| d.bytes.iter().map(|&b| id(b)).collect()).collect();
        let rows: Vec<&[u32]> = rows.iter().map(Vec::as_slice).collect();
        // Position p's digit is predicted by the logits of position p - 1.
        let mut asked: Vec<Vec<(usize, usize, u32)>> = vec![Vec::new(); length];
        for (b, d) in group.iter().enumerate() {
            for a in d.answers.iter().filter(|a| a.position > 0) {
                asked[a.position - 1].push((b, a.distance, id(d.bytes[a.position])));
            }
        }
        let mut session: Session<K> = engine.session(group.len(), length.min(512))?;
        let rows_n = group.len();
        let mut reader = |start: usize, logits: &[f32]| -> Result<()> {
            for (i, position) in logits.chunks_exact(vocab * rows_n).enumerate() {
                for &(b, distance, target) in &asked[start + i] {
                    let row = &position[b * vocab..(b + 1) * vocab];
                    let best = row.iter().enumerate().fold(0, |best, (j, &v)| if v > row[best] { j } else { best });
                    result.record(distance, best == target as usize, nll(row, target));
                }
            }
            Ok(())
        };
        session.feed_rows(engine, &rows, &[], Some(&mut reader))?;
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filler() -> Filler {
        let text: Vec<u8> = (0..4000u32).map(|i| b"the <quick> brown fox "[i as usize % 22]).collect();
        Filler::new([text.as_slice()]).unwrap()
    }

    /// Every answer is a digit of a query whose definition, `distance` bytes
    /// earlier, holds the same key and digit; markers in the filler are gone.
    #[test]
    fn answers_point_at_their_definitions() {
        let options = RecallOptions::default();
        let doc = document(&filler(), &options, 7, 3);
        assert_eq!(doc.bytes.len(), options.length);
        assert!(doc.answers.len() > 40, "only {} answers", doc.answers.len());
        for a in &doc.answers {
            let (q, d) = (a.position, a.position - a.distance);
            assert!(doc.bytes[q].is_ascii_digit());
            assert_eq!(doc.bytes[q], doc.bytes[d], "digit at {q} vs definition at {d}");
            // Walk back to each record's key.
            let start = |p: usize| doc.bytes[..p].iter().rposition(|&b| b == b'<').unwrap();
            let (qs, ds) = (start(q), start(d));
            assert_eq!(doc.bytes[qs + 1..qs + 1 + KEY_LEN], doc.bytes[ds + 1..ds + 1 + KEY_LEN]);
            assert_eq!(doc.bytes[qs + 1 + KEY_LEN], b'?');
            assert_eq!(doc.bytes[ds + 1 + KEY_LEN], b'=');
        }
        let records = doc.bytes.iter().filter(|&&b| b == b'<').count();
        let closed = doc.bytes.iter().filter(|&&b| b == b'>').count();
        assert!(closed + 1 >= records && closed <= records, "{records} records, {closed} closed");
    }

    /// Distances cover the asked range, both ends, and the same seed gives the
    /// same document while another seed does not.
    #[test]
    fn distances_span_the_range_and_seeds_reproduce() {
        let options = RecallOptions { length: 8192, max_distance: 2048, ..RecallOptions::default() };
        let f = filler();
        let doc = document(&f, &options, 1, 0);
        let distances: Vec<usize> = doc.answers.iter().map(|a| a.distance).collect();
        assert!(distances.iter().any(|&d| d < 32));
        assert!(distances.iter().any(|&d| d >= 1024));
        assert!(distances.iter().all(|&d| d >= options.min_distance));
        assert_eq!(document(&f, &options, 1, 0), doc);
        assert_ne!(document(&f, &options, 2, 0).bytes, doc.bytes);
        assert_ne!(document(&f, &options, 1, 1).bytes, doc.bytes);
    }

    #[test]
    fn options_are_validated() {
        assert!(RecallOptions { min_distance: 2, ..RecallOptions::default() }.validate().is_err());
        assert!(RecallOptions { min_distance: 900, max_distance: 100, ..RecallOptions::default() }.validate().is_err());
        assert!(RecallOptions { length: 10, ..RecallOptions::default() }.validate().is_err());
        assert!(RecallOptions { length: MAX_LENGTH + 1, ..RecallOptions::default() }.validate().is_err());
        assert!(RecallOptions::default().validate().is_ok());
        assert!(Filler::new([b"short".as_slice()]).is_err());
    }

    #[test]
    fn buckets_are_octaves() {
        let mut s = RecallScore::default();
        s.record(8, true, 0.0);
        s.record(15, false, 1.0);
        s.record(1000, true, 0.5);
        assert_eq!(s.buckets.len(), 2);
        assert_eq!((s.buckets[0].lower, s.buckets[0].upper, s.buckets[0].asked), (8, 16, 2));
        assert_eq!((s.buckets[1].lower, s.buckets[1].correct), (512, 1));
        assert_eq!(s.between(0, 4096).asked, 3);
        assert_eq!(s.between(16, 4096).asked, 1);
        let mut twice = s.clone();
        twice.add(&s);
        assert_eq!((twice.buckets.len(), twice.buckets[0].asked, twice.buckets[1].correct), (2, 4, 2));
    }
}
