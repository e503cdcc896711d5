//! Training data: documents streamed in order, each batch row reading its own
//! document, in segments of `T` tokens; a row that starts a document is reset.
//!
//! Like the official data pipeline, a document that ends inside a segment is
//! padded with id 0 to the segment's end, and positions whose input or target is
//! padding carry no loss.

use crate::error::{Error, Result};
use crate::tokenizer::Tokenizer;
use brt_core::init::SplitMix64;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The padding id (also the official byte vocabulary's).
///
/// It is the byte vocabulary's padding id, and the input of positions past a
/// document's end:
///
/// ```
/// use brt::train::data::{Corpus, LoaderState, PAD};
/// assert_eq!(PAD, brt::tokenizer::bytes::PAD);
/// let corpus = Corpus { documents: vec![vec![5, 6, 7]], names: vec!["a".into()] };
/// let segment = LoaderState::new(1, 0).next_segment(&corpus, 4);
/// assert_eq!(segment.inputs, [5, 6, 7, PAD]);
/// ```
pub const PAD: u32 = 0;

/// Documents as token ids.
///
/// A corpus can be made directly from token ids, each document with a name:
///
/// ```
/// use brt::train::data::Corpus;
/// let corpus = Corpus { documents: vec![vec![1, 2, 3], vec![4, 5]], names: vec!["a".into(), "b".into()] };
/// assert_eq!((corpus.tokens(), corpus.max_id()), (5, 5));
/// ```
#[derive(Clone, Debug)]
pub struct Corpus {
    /// The documents' token ids.
    pub documents: Vec<Vec<u32>>,
    /// Where each came from.
    pub names: Vec<PathBuf>,
}

impl Corpus {
    /// Reads and tokenizes every file as one document. Documents shorter than two
    /// tokens are left out (nothing to predict).
    ///
    /// Of a two-byte file and a one-byte file, only the first is a document
    /// (bytes `b` become ids `b + 3`):
    ///
    /// ```
    /// use brt::tokenizer::Tokenizer;
    /// use brt::train::data::Corpus;
    /// let dir = tempfile::tempdir()?;
    /// let (a, b) = (dir.path().join("a.txt"), dir.path().join("b.txt"));
    /// std::fs::write(&a, "hi")?;
    /// std::fs::write(&b, "x")?;
    /// let corpus = Corpus::read(&[a.clone(), b], &Tokenizer::Bytes)?;
    /// assert_eq!(corpus.documents, [vec![b'h' as u32 + 3, b'i' as u32 + 3]]);
    /// assert_eq!(corpus.names, [a]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn read(files: &[PathBuf], tokenizer: &Tokenizer) -> Result<Corpus> {
        let mut documents = Vec::new();
        let mut names = Vec::new();
        for path in files {
            let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
            let ids = tokenizer.encode(&bytes).map_err(|e| Error::format(path, e.to_string()))?;
            if ids.len() >= 2 {
                documents.push(ids);
                names.push(path.clone());
            }
        }
        if documents.is_empty() {
            return Err(Error::Invalid("no training document has two tokens or more".into()));
        }
        Ok(Corpus { documents, names })
    }

    /// Files of a folder (sorted) or the files themselves
    /// ([`crate::files::list_files`]).
    ///
    /// A folder gives its files in sorted order:
    ///
    /// ```
    /// use brt::train::data::Corpus;
    /// let dir = tempfile::tempdir()?;
    /// std::fs::write(dir.path().join("b.txt"), "b")?;
    /// std::fs::write(dir.path().join("a.txt"), "a")?;
    /// let files = Corpus::list(&[dir.path().to_path_buf()])?;
    /// assert_eq!(files, [dir.path().join("a.txt"), dir.path().join("b.txt")]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn list(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
        crate::files::list_files(inputs)
    }

    /// Tokens in all documents.
    ///
    /// ```
    /// use brt::train::data::Corpus;
    /// let corpus = Corpus { documents: vec![vec![1, 2, 3], vec![4, 5]], names: vec!["a".into(), "b".into()] };
    /// assert_eq!(corpus.tokens(), 5);
    /// ```
    pub fn tokens(&self) -> usize {
        self.documents.iter().map(Vec::len).sum()
    }

    /// The largest id (to check against the vocabulary).
    ///
    /// ```
    /// use brt::train::data::Corpus;
    /// let corpus = Corpus { documents: vec![vec![9, 2], vec![4, 5]], names: vec!["a".into(), "b".into()] };
    /// assert_eq!(corpus.max_id(), 9);
    /// ```
    pub fn max_id(&self) -> u32 {
        self.documents.iter().flat_map(|d| d.iter().copied()).max().unwrap_or(0)
    }

    /// Name of document `i`, for messages.
    ///
    /// ```
    /// use brt::train::data::Corpus;
    /// use std::path::Path;
    /// let corpus = Corpus { documents: vec![vec![1, 2], vec![3, 4]], names: vec!["a".into(), "b".into()] };
    /// assert_eq!(corpus.name(1), Path::new("b"));
    /// ```
    pub fn name(&self, i: usize) -> &Path {
        &self.names[i]
    }
}

/// Where a batch row is.
///
/// A new loader's rows read nothing yet; after a segment, each row is inside a
/// document, `length` tokens on:
///
/// ```
/// use brt::train::data::{Corpus, LoaderState, RowCursor};
/// let corpus = Corpus { documents: vec![(1..10).collect()], names: vec!["a".into()] };
/// let mut loader = LoaderState::new(1, 0);
/// assert_eq!(loader.rows, [RowCursor { document: None, offset: 0 }]);
/// loader.next_segment(&corpus, 4);
/// assert_eq!(loader.rows, [RowCursor { document: Some(0), offset: 4 }]);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowCursor {
    /// The document being read, if any.
    pub document: Option<usize>,
    /// Tokens of it already used as inputs.
    pub offset: usize,
}

/// Where the loader is: enough to continue exactly (saved in checkpoints).
///
/// A copy of a loader continues exactly as the original does:
///
/// ```
/// use brt::train::data::{Corpus, LoaderState};
/// let corpus = Corpus { documents: vec![(1..8).collect(), (20..30).collect()], names: vec!["a".into(), "b".into()] };
/// let mut loader = LoaderState::new(2, 7);
/// loader.next_segment(&corpus, 3);
/// let mut copy = loader.clone();
/// assert_eq!(loader.next_segment(&corpus, 3).inputs, copy.next_segment(&corpus, 3).inputs);
/// assert_eq!(loader, copy);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoaderState {
    /// Shuffling seed.
    pub seed: u64,
    /// Passes over the corpus begun.
    pub epoch: u64,
    /// Next position in this epoch's order.
    pub next: usize,
    /// Each batch row's cursor.
    pub rows: Vec<RowCursor>,
}

/// One training segment for every row.
///
/// Positions are position-major: with two rows, entry `2 * t + b` is row `b`'s
/// position `t`. The last token of a document is only a target, so its
/// position is padding without loss:
///
/// ```
/// use brt::train::data::{Corpus, LoaderState, PAD};
/// let corpus = Corpus { documents: vec![vec![5, 6, 7]], names: vec!["a".into()] };
/// let s = LoaderState::new(2, 0).next_segment(&corpus, 3);
/// // Both rows start the one document.
/// assert_eq!(s.resets, [true, true]);
/// assert_eq!(s.inputs, [5, 5, 6, 6, 7, 7]);
/// assert_eq!(s.targets, [6, 6, 7, 7, PAD, PAD]);
/// assert_eq!(s.weights, [true, true, true, true, false, false]);
/// ```
#[derive(Clone, Debug, Default)]
pub struct Segment {
    /// Inputs, position-major (`inputs[t*B + b]`).
    pub inputs: Vec<u32>,
    /// Targets (the next tokens), position-major.
    pub targets: Vec<u32>,
    /// Whether each position carries loss, position-major.
    pub weights: Vec<bool>,
    /// Rows that start a new document with this segment.
    pub resets: Vec<bool>,
}

impl LoaderState {
    /// A loader for `batch` rows.
    ///
    /// ```
    /// use brt::train::data::LoaderState;
    /// let loader = LoaderState::new(3, 42);
    /// assert_eq!((loader.rows.len(), loader.seed, loader.epoch, loader.next), (3, 42, 0, 0));
    /// ```
    pub fn new(batch: usize, seed: u64) -> LoaderState {
        LoaderState { seed, epoch: 0, next: 0, rows: vec![RowCursor { document: None, offset: 0 }; batch] }
    }

    /// This epoch's document order (a seeded permutation).
    fn order(&self, documents: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..documents).collect();
        let mut rng = SplitMix64::new(self.seed ^ self.epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        for i in (1..order.len()).rev() {
            let j = (rng.next_u64() % (i as u64 + 1)) as usize;
            order.swap(i, j);
        }
        order
    }

    fn next_document(&mut self, corpus: &Corpus) -> usize {
        let order = self.order(corpus.documents.len());
        let d = order[self.next];
        self.next += 1;
        if self.next == order.len() {
            self.next = 0;
            self.epoch += 1;
        }
        d
    }

    /// The next segment of `length` positions for every row.
    ///
    /// A row resets when it starts a document and reads it on in the next
    /// segment; a pass over all the documents ends an epoch:
    ///
    /// ```
    /// use brt::train::data::{Corpus, LoaderState};
    /// let corpus = Corpus { documents: vec![(1..8).collect()], names: vec!["a".into()] };
    /// let mut loader = LoaderState::new(1, 0);
    /// let first = loader.next_segment(&corpus, 4);
    /// assert_eq!((first.inputs, first.resets), (vec![1, 2, 3, 4], vec![true]));
    /// let second = loader.next_segment(&corpus, 4);
    /// assert_eq!((second.inputs, second.resets), (vec![5, 6, 7, 0], vec![false]));
    /// assert_eq!(loader.epoch, 1);
    /// ```
    pub fn next_segment(&mut self, corpus: &Corpus, length: usize) -> Segment {
        let batch = self.rows.len();
        let mut seg = Segment {
            inputs: vec![PAD; length * batch],
            targets: vec![PAD; length * batch],
            weights: vec![false; length * batch],
            resets: vec![false; batch],
        };
        if corpus.documents.is_empty() {
            return seg; // nothing to read: padding only, nothing predicted
        }
        for b in 0..batch {
            let needs_document = match self.rows[b].document {
                None => true,
                Some(d) => self.rows[b].offset + 1 >= corpus.documents[d].len(),
            };
            if needs_document {
                let d = self.next_document(corpus);
                self.rows[b] = RowCursor { document: Some(d), offset: 0 };
                seg.resets[b] = true;
            }
            let cursor = &mut self.rows[b];
            let Some(d) = cursor.document else { continue };
            let doc = &corpus.documents[d];
            for t in 0..length {
                let at = cursor.offset + t;
                if at >= doc.len() {
                    break;
                }
                seg.inputs[t * batch + b] = doc[at];
                if let Some(&next) = doc.get(at + 1) {
                    seg.targets[t * batch + b] = next;
                    // Every position inside the document predicts its next token
                    // (id 0 is padding only outside documents: a subword
                    // vocabulary may give it to a real token).
                    seg.weights[t * batch + b] = true;
                }
            }
            cursor.offset += length;
        }
        seg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus(lengths: &[usize]) -> Corpus {
        Corpus {
            documents: lengths
                .iter()
                .enumerate()
                .map(|(d, &n)| (0..n).map(|t| 10 * d as u32 + t as u32 + 1).collect())
                .collect(),
            names: lengths.iter().map(|_| PathBuf::new()).collect(),
        }
    }

    #[test]
    fn rows_read_documents_in_segments_with_resets_and_padding() {
        let c = corpus(&[7, 3]);
        let mut loader = LoaderState::new(1, 5);
        let mut seen = Vec::new();
        for _ in 0..6 {
            let s = loader.next_segment(&c, 4);
            seen.push((s.inputs.clone(), s.targets.clone(), s.weights.clone(), s.resets[0]));
        }
        // Each document: inputs are its tokens, targets the next ones, the last
        // input of a document has no target, padding has no loss, and the row
        // resets exactly when a document begins.
        let mut text = Vec::new();
        for (inputs, targets, weights, reset) in &seen {
            for t in 0..4 {
                if weights[t] {
                    assert_eq!(targets[t], inputs[t] + 1);
                }
            }
            text.push((*reset, inputs.iter().filter(|&&x| x != PAD).count()));
        }
        assert!(text[0].0);
        let total_documents: usize = text.iter().filter(|(r, _)| *r).count();
        assert!(total_documents >= 3, "6 segments cover at least 3 documents: {text:?}");
    }

    #[test]
    fn the_order_is_seeded_and_every_document_is_read() {
        let c = corpus(&[3, 3, 3, 3, 3]);
        let run = |seed| {
            let mut l = LoaderState::new(2, seed);
            (0..10).map(|_| l.next_segment(&c, 2).inputs).collect::<Vec<_>>()
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
        let mut l = LoaderState::new(1, 3);
        let mut firsts = std::collections::BTreeSet::new();
        // A 3-token document fills exactly one segment of 2 inputs (the last
        // token is only a target).
        for _ in 0..5 {
            let s = l.next_segment(&c, 2);
            assert!(s.resets[0]);
            firsts.insert(s.inputs[0] / 10);
        }
        assert_eq!(firsts.len(), 5, "one epoch visits every document once");
    }
}
