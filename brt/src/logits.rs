//! Logits of whole documents: the work behind `brt logits`.
//!
//! Every position's logits of two documents, on the reference backend:
//!
//! ```
//! use brt::logits::{LogitsJob, TokenBatch};
//! use brt::model_file::LoadedModel;
//! use brt::BackendKind;
//!
//! let model = LoadedModel::InMemory(brt::default_model()?);
//! let tokens = TokenBatch::new(2, 3, vec![40, 41, 42, 50, 51, 52])?;
//! let logits = brt::run_on(BackendKind::Reference, LogitsJob { weights: &model, tokens: &tokens, chunk: 8 })?;
//! assert_eq!(logits.len(), 2 * 3 * 260);
//! assert!(logits.iter().all(|v| v.is_finite()));
//! # Ok::<(), brt::Error>(())
//! ```

use crate::backend::BackendJob;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::files::write_atomically;
use crate::model_file::LoadedModel;
use safetensors::tensor::{Dtype, TensorView};
use std::collections::HashMap;
use std::path::Path;

/// `B` documents of `T` tokens each, row-major.
///
/// Two documents of three tokens, row by row:
///
/// ```
/// use brt::logits::TokenBatch;
///
/// let batch = TokenBatch::new(2, 3, vec![40, 41, 42, 50, 51, 52])?;
/// assert_eq!((batch.batch(), batch.len()), (2, 3));
/// assert_eq!(batch.get(1, 0), 50);
/// # Ok::<(), brt::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenBatch {
    batch: usize,
    len: usize,
    ids: Vec<u32>,
}

impl TokenBatch {
    /// `ids` holds `batch` rows of `len` tokens. Both must be positive.
    ///
    /// The ids must fill the rows exactly, and there must be some:
    ///
    /// ```
    /// use brt::logits::TokenBatch;
    ///
    /// assert!(TokenBatch::new(2, 2, vec![1, 2, 3, 4]).is_ok());
    /// assert!(TokenBatch::new(2, 2, vec![1, 2, 3]).is_err());
    /// assert!(TokenBatch::new(0, 2, vec![]).is_err());
    /// ```
    pub fn new(batch: usize, len: usize, ids: Vec<u32>) -> Result<TokenBatch> {
        if batch == 0 || len == 0 {
            return Err(Error::Invalid(format!("empty input: {batch} documents of {len} tokens")));
        }
        if batch.checked_mul(len) != Some(ids.len()) {
            return Err(Error::Invalid(format!("{} token ids for {batch} documents of {len} tokens", ids.len())));
        }
        Ok(TokenBatch { batch, len, ids })
    }
    /// Documents.
    ///
    /// The number of rows:
    ///
    /// ```
    /// use brt::logits::TokenBatch;
    /// assert_eq!(TokenBatch::new(3, 1, vec![7, 8, 9])?.batch(), 3);
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn batch(&self) -> usize {
        self.batch
    }
    /// Tokens per document.
    ///
    /// The length of each row:
    ///
    /// ```
    /// use brt::logits::TokenBatch;
    /// assert_eq!(TokenBatch::new(1, 3, vec![7, 8, 9])?.len(), 3);
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether there are no tokens (never, by construction).
    ///
    /// A batch that was made is never empty:
    ///
    /// ```
    /// use brt::logits::TokenBatch;
    /// assert!(!TokenBatch::new(1, 1, vec![7])?.is_empty());
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
    /// Token `t` of document `b`.
    ///
    /// Token `t` of row `b` is `ids[b * len + t]`:
    ///
    /// ```
    /// use brt::logits::TokenBatch;
    /// let batch = TokenBatch::new(2, 2, vec![1, 2, 3, 4])?;
    /// assert_eq!((batch.get(0, 1), batch.get(1, 0)), (2, 3));
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn get(&self, b: usize, t: usize) -> u32 {
        self.ids[b * self.len + t]
    }
    /// Checks every id against the vocabulary, naming the first bad one.
    ///
    /// The message names the document and position of the first id too large:
    ///
    /// ```
    /// use brt::logits::TokenBatch;
    /// let batch = TokenBatch::new(2, 2, vec![1, 2, 3, 300])?;
    /// assert!(batch.check_vocab(301).is_ok());
    /// let err = batch.check_vocab(260).unwrap_err().to_string();
    /// assert!(err.contains("token id 300 (document 1, position 1)"), "{err}");
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn check_vocab(&self, vocab: usize) -> Result<()> {
        match self.ids.iter().position(|&id| id as usize >= vocab) {
            Some(i) => Err(Error::Invalid(format!(
                "token id {} (document {}, position {}) is not below the vocabulary size {vocab}",
                self.ids[i],
                i / self.len,
                i % self.len
            ))),
            None => Ok(()),
        }
    }
}

/// Reads the `tokens` tensor (`[B, T]`, int32 or int64) of a safetensors file.
///
/// A file of two documents of three int32 ids:
///
/// ```
/// use brt::logits::read_tokens;
/// # use safetensors::tensor::{Dtype, TensorView};
/// # let ids: Vec<u8> = [40i32, 41, 42, 50, 51, 52].iter().flat_map(|id| id.to_le_bytes()).collect();
/// # let view = TensorView::new(Dtype::I32, vec![2, 3], &ids)?;
/// # let bytes = safetensors::serialize([("tokens", view)], None::<std::collections::HashMap<String, String>>)?;
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("tokens.safetensors");
/// std::fs::write(&path, &bytes)?;
/// let batch = read_tokens(&path)?;
/// assert_eq!((batch.batch(), batch.len(), batch.get(1, 2)), (2, 3, 52));
/// assert!(read_tokens(&dir.path().join("missing.safetensors")).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn read_tokens(path: &Path) -> Result<TokenBatch> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    tokens_from_bytes(&bytes).map_err(|m| Error::format(path, m))
}

/// Reads the `tokens` tensor of a safetensors file held in memory (see
/// [`read_tokens`]); the error says what is wrong.
///
/// The same from memory; a file without a `tokens` tensor is refused:
///
/// ```
/// use brt::logits::tokens_from_bytes;
/// # use safetensors::tensor::{Dtype, TensorView};
/// # let ids: Vec<u8> = [40i32, 41, 42, 50, 51, 52].iter().flat_map(|id| id.to_le_bytes()).collect();
/// # let view = TensorView::new(Dtype::I32, vec![2, 3], &ids)?;
/// # let bytes = safetensors::serialize([("tokens", view)], None::<std::collections::HashMap<String, String>>)?;
/// assert_eq!(tokens_from_bytes(&bytes)?.get(0, 1), 41);
/// let err = tokens_from_bytes(brt::default_model::DEFAULT_MODEL).unwrap_err();
/// assert!(err.contains("no tensor named `tokens`"), "{err}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn tokens_from_bytes(bytes: &[u8]) -> Result<TokenBatch, String> {
    let (file, _) = crate::format::parse_safetensors(bytes)?;
    let view = file.tensor("tokens").map_err(|_| "no tensor named `tokens`".to_string())?;
    let &[batch, len] = view.shape() else {
        return Err(format!("`tokens` has shape {:?}; it must be [documents, tokens]", view.shape()));
    };
    let ids: Vec<i64> = match view.dtype() {
        Dtype::I32 => {
            view.data().chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64).collect()
        }
        Dtype::I64 => view
            .data()
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect(),
        d => return Err(format!("`tokens` has dtype {d:?}; it must be I32 or I64")),
    };
    let ids = ids
        .iter()
        .enumerate()
        .map(|(i, &id)| u32::try_from(id).map_err(|_| format!("token id {id} at index {i} is negative or too large")))
        .collect::<Result<Vec<u32>, String>>()?;
    TokenBatch::new(batch, len, ids).map_err(|e| e.to_string())
}

/// Writes `logits` (`[B, T, V]` f32) to a safetensors file, atomically.
///
/// The file holds one `logits` tensor of shape `[B, T, V]`:
///
/// ```
/// use brt::logits::write_logits;
/// use safetensors::SafeTensors;
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("logits.safetensors");
/// write_logits(&path, &[0.5; 2 * 3 * 4], 2, 3, 4)?;
/// let bytes = std::fs::read(&path)?;
/// let file = SafeTensors::deserialize(&bytes)?;
/// assert_eq!(file.tensor("logits")?.shape(), [2, 3, 4]);
/// assert!(write_logits(&path, &[0.5; 5], 2, 3, 4).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn write_logits(path: &Path, logits: &[f32], batch: usize, len: usize, vocab: usize) -> Result<()> {
    let view = TensorView::new(Dtype::F32, vec![batch, len, vocab], bytemuck::cast_slice(logits))
        .map_err(|e| Error::Invalid(format!("logits: {e}")))?;
    let bytes = safetensors::serialize([("logits", view)], None::<HashMap<String, String>>)
        .map_err(|e| Error::Invalid(format!("logits: {e}")))?;
    write_atomically(path, &bytes)
}

/// Computes the logits of every position of every document; each document starts
/// fresh. Calls carry at most `chunk` tokens per row (the rest streams through the
/// carried caches and states).
///
/// The logits do not depend on the chunk: calls of 1 token give those of
/// one call of 2 (up to rounding):
///
/// ```
/// use brt::logits::{LogitsJob, TokenBatch};
/// use brt::model_file::LoadedModel;
/// use brt::BackendKind;
///
/// let model = LoadedModel::InMemory(brt::default_model()?);
/// let tokens = TokenBatch::new(2, 2, vec![40, 41, 50, 51])?;
/// let whole = brt::run_on(BackendKind::Reference, LogitsJob { weights: &model, tokens: &tokens, chunk: 2 })?;
/// let pieces = brt::run_on(BackendKind::Reference, LogitsJob { weights: &model, tokens: &tokens, chunk: 1 })?;
/// assert_eq!(whole.len(), 2 * 2 * 260);
/// assert!(brt::compare::largest_difference(&whole, &pieces).within(1e-4));
/// # Ok::<(), brt::Error>(())
/// ```
pub struct LogitsJob<'a> {
    /// The model.
    pub weights: &'a LoadedModel,
    /// The documents.
    pub tokens: &'a TokenBatch,
    /// Most tokens per row per call.
    pub chunk: usize,
}

impl BackendJob for LogitsJob<'_> {
    type Output = Vec<f32>;

    fn run<K: crate::backend::FileWeights>(self, k: K) -> Result<Vec<f32>>
    where
        Error: From<K::Error>,
    {
        let vocab = self.weights.config().vocab;
        self.tokens.check_vocab(vocab)?;
        let (batch, len) = (self.tokens.batch(), self.tokens.len());
        let total = batch
            .checked_mul(len)
            .and_then(|n| n.checked_mul(vocab))
            .ok_or_else(|| Error::Invalid("the logits would not fit in memory".into()))?;
        let mut engine = Engine::load(k, self.weights)?;
        let mut session = engine.session(batch, self.chunk.clamp(1, len))?;
        let rows: Vec<&[u32]> = self.tokens.ids.chunks_exact(len).collect();
        // The output is as large as the input times the vocabulary: ask for it
        // rather than abort when the system cannot give it.
        let mut out = Vec::new();
        out.try_reserve_exact(total).map_err(|_| {
            Error::Invalid(format!(
                "the logits of {batch} documents of {len} tokens ({} GiB) do not fit in memory",
                (total as f64 * 4.0 / (1u64 << 30) as f64).ceil()
            ))
        })?;
        out.resize(total, 0f32);
        let mut scatter = |start: usize, logits: &[f32]| {
            for (i, row) in logits.chunks_exact(vocab).enumerate() {
                let (t, b) = (start + i / batch, i % batch);
                out[(b * len + t) * vocab..][..vocab].copy_from_slice(row);
            }
            Ok(())
        };
        session.feed_rows(&mut engine, &rows, &[], Some(&mut scatter))?;
        Ok(out)
    }
}
