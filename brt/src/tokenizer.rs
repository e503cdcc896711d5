//! Tokenizers: the official byte vocabulary, raw token ids, and (with the `hf`
//! feature) Hugging Face `tokenizer.json` files.
//!
//! Text through the byte tokenizer and back is unchanged:
//!
//! ```
//! use brt::tokenizer::Tokenizer;
//!
//! let tokenizer = Tokenizer::from_spec("bytes")?;
//! let ids = tokenizer.encode(b"To be, or not to be")?;
//! assert_eq!(ids.len(), 19);
//! assert_eq!(tokenizer.decode(&ids)?, b"To be, or not to be");
//! # Ok::<(), brt::Error>(())
//! ```

use crate::error::{Error, Result};
use std::path::Path;

/// The official byte vocabulary (`seqio.ByteVocabulary`, as Meliad's byte tasks use
/// it): id 0 is padding, 1 end of sequence, 2 unknown, and byte `b` is `b + 3`.
///
/// Byte `b` is id `b + 3`, after the three special ids:
///
/// ```
/// use brt::tokenizer::{bytes, Tokenizer};
///
/// assert_eq!(Tokenizer::Bytes.encode(b"A")?, [b'A' as u32 + bytes::SPECIAL]);
/// assert_eq!(Tokenizer::Bytes.eos(), Some(bytes::EOS));
/// # Ok::<(), brt::Error>(())
/// ```
pub mod bytes {
    /// Padding id.
    ///
    /// Padding decodes to nothing:
    ///
    /// ```
    /// use brt::tokenizer::{bytes, Tokenizer};
    /// assert_eq!(Tokenizer::Bytes.decode(&[bytes::PAD])?, b"");
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub const PAD: u32 = 0;
    /// End-of-sequence id.
    ///
    /// The byte tokenizer's end of sequence:
    ///
    /// ```
    /// use brt::tokenizer::{bytes, Tokenizer};
    /// assert_eq!(Tokenizer::Bytes.eos(), Some(bytes::EOS));
    /// ```
    pub const EOS: u32 = 1;
    /// Unknown id.
    ///
    /// The last special id, below the first byte:
    ///
    /// ```
    /// use brt::tokenizer::bytes;
    /// assert_eq!(bytes::UNK + 1, bytes::SPECIAL);
    /// ```
    pub const UNK: u32 = 2;
    /// Reserved ids before the bytes.
    ///
    /// The id of byte 0:
    ///
    /// ```
    /// use brt::tokenizer::{bytes, Tokenizer};
    /// assert_eq!(Tokenizer::Bytes.encode(&[0])?, [bytes::SPECIAL]);
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub const SPECIAL: u32 = 3;
    /// Ids used: the specials and 256 bytes. Official byte models have 260 rows.
    ///
    /// One past the id of byte 255; the byte models' 260 rows leave one unused:
    ///
    /// ```
    /// use brt::tokenizer::{bytes, Tokenizer};
    /// assert_eq!(Tokenizer::Bytes.encode(&[255])?, [bytes::USED - 1]);
    /// assert_eq!(Tokenizer::Bytes.vocab_size(), Some(bytes::USED as usize + 1));
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub const USED: u32 = SPECIAL + 256;
}

/// How text becomes token ids and back.
///
/// The byte tokenizer reads any bytes; the ids tokenizer reads numbers:
///
/// ```
/// use brt::tokenizer::Tokenizer;
///
/// assert_eq!(Tokenizer::Bytes.encode(b"Hi")?, [75, 108]);
/// assert_eq!(Tokenizer::Ids.encode(b"75 108")?, [75, 108]);
/// assert_eq!(Tokenizer::Bytes.decode(&[75, 108])?, b"Hi");
/// # Ok::<(), brt::Error>(())
/// ```
#[derive(Debug)]
pub enum Tokenizer {
    /// The official byte vocabulary: any bytes, no UTF-8 needed.
    Bytes,
    /// Token ids written as decimal numbers separated by white space.
    Ids,
    /// A Hugging Face tokenizer (`tokenizer.json`).
    #[cfg(feature = "hf")]
    HuggingFace(Box<tokenizers::Tokenizer>),
}

impl Tokenizer {
    /// `bytes`, `ids`, or the path of a `tokenizer.json` file.
    ///
    /// `bytes` and `ids` name the built-in tokenizers; any other spec is a file,
    /// which must exist:
    ///
    /// ```
    /// use brt::tokenizer::Tokenizer;
    ///
    /// assert!(Tokenizer::from_spec("bytes")?.is_bytes());
    /// assert_eq!(Tokenizer::from_spec("ids")?.name(), "ids");
    /// assert!(Tokenizer::from_spec("no/such/tokenizer.json").is_err());
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn from_spec(spec: &str) -> Result<Tokenizer> {
        match spec {
            "bytes" => Ok(Tokenizer::Bytes),
            "ids" => Ok(Tokenizer::Ids),
            path => Tokenizer::from_file(Path::new(path)),
        }
    }

    #[cfg(feature = "hf")]
    fn from_file(path: &Path) -> Result<Tokenizer> {
        if !path.exists() {
            return Err(Error::Invalid(format!(
                "tokenizer `{}`: no such file (use `bytes`, `ids` or a tokenizer.json path)",
                path.display()
            )));
        }
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let not_json =
            |e: &dyn std::fmt::Display| Error::format(path, format!("not a Hugging Face tokenizer.json: {e}"));
        // The `tokenizers` crate panics on some malformed JSON (a syntax error or
        // an invalid escape inside `decoder`, e.g. in a file cut short), so the
        // whole file is parsed here first; a panic that still happens is caught.
        let json = serde_json::from_slice::<serde_json::Value>(&bytes).map_err(|e| not_json(&e))?;
        check_bpe_merges(&json).map_err(|m| not_json(&m))?;
        let t = std::panic::catch_unwind(|| tokenizers::Tokenizer::from_bytes(&bytes))
            .map_err(|_| not_json(&"the tokenizers library failed on it"))?
            .map_err(|e| not_json(&e))?;
        Ok(Tokenizer::HuggingFace(Box::new(t)))
    }

    #[cfg(not(feature = "hf"))]
    fn from_file(path: &Path) -> Result<Tokenizer> {
        Err(Error::Invalid(format!(
            "tokenizer `{}`: this brt reads only `bytes` and `ids`; Hugging Face tokenizer.json files need \
             a build with `--features hf`",
            path.display()
        )))
    }

    /// A short name for messages and reports.
    ///
    /// The names are the specs of [`Tokenizer::from_spec`]:
    ///
    /// ```
    /// use brt::tokenizer::Tokenizer;
    /// assert_eq!(Tokenizer::Bytes.name(), "bytes");
    /// assert_eq!(Tokenizer::Ids.name(), "ids");
    /// ```
    pub fn name(&self) -> &'static str {
        match self {
            Tokenizer::Bytes => "bytes",
            Tokenizer::Ids => "ids",
            #[cfg(feature = "hf")]
            Tokenizer::HuggingFace(_) => "tokenizer.json",
        }
    }

    /// Whether one token is one byte (so bits per byte equal bits per token).
    ///
    /// Only the byte tokenizer:
    ///
    /// ```
    /// use brt::tokenizer::Tokenizer;
    /// assert!(Tokenizer::Bytes.is_bytes());
    /// assert!(!Tokenizer::Ids.is_bytes());
    /// ```
    pub fn is_bytes(&self) -> bool {
        matches!(self, Tokenizer::Bytes)
    }

    /// What names this tokenizer in a model file, so that a model is run with the
    /// tokenizer it was trained with: `bytes`, `ids`, or for a tokenizer.json
    /// `tokenizer.json:` and 16 hex digits of a hash (FNV-1a, 64 bits) of its
    /// vocabulary (every token and id, sorted by id), which does not change with
    /// the file's formatting.
    ///
    /// The built-in tokenizers are named by their names:
    ///
    /// ```
    /// use brt::tokenizer::Tokenizer;
    /// assert_eq!(Tokenizer::Bytes.identity(), "bytes");
    /// assert_eq!(Tokenizer::Ids.identity(), "ids");
    /// ```
    pub fn identity(&self) -> String {
        match self {
            Tokenizer::Bytes => "bytes".into(),
            Tokenizer::Ids => "ids".into(),
            #[cfg(feature = "hf")]
            Tokenizer::HuggingFace(t) => {
                let mut vocab: Vec<(u32, String)> = t.get_vocab(true).into_iter().map(|(s, i)| (i, s)).collect();
                vocab.sort();
                let mut hash = 0xcbf2_9ce4_8422_2325u64;
                for (id, token) in &vocab {
                    for &b in id.to_le_bytes().iter().chain(token.as_bytes()).chain(&[0xff]) {
                        hash = (hash ^ b as u64).wrapping_mul(0x0100_0000_01b3);
                    }
                }
                format!("tokenizer.json:{hash:016x}")
            }
        }
    }

    /// Rows of the logits a model for this tokenizer needs: 260 for bytes (the
    /// official byte models' size), the vocabulary with its added tokens for a
    /// tokenizer.json, none for `ids` (any size).
    ///
    /// Bytes need 260 rows; ids fit any model:
    ///
    /// ```
    /// use brt::tokenizer::Tokenizer;
    /// assert_eq!(Tokenizer::Bytes.vocab_size(), Some(260));
    /// assert_eq!(Tokenizer::Ids.vocab_size(), None);
    /// ```
    pub fn vocab_size(&self) -> Option<usize> {
        match self {
            Tokenizer::Bytes => Some(260),
            Tokenizer::Ids => None,
            #[cfg(feature = "hf")]
            Tokenizer::HuggingFace(t) => Some(t.get_vocab_size(true)),
        }
    }

    /// Checks that a model recorded as trained with `recorded` (see
    /// [`Tokenizer::identity`]) can be run with this tokenizer. Models that
    /// record none (official checkpoints, older files) and raw `ids` pass.
    ///
    /// A model recorded as trained with bytes runs with bytes (and raw ids), not
    /// with another tokenizer; a model that records none runs with any:
    ///
    /// ```
    /// use brt::tokenizer::Tokenizer;
    ///
    /// assert!(Tokenizer::Bytes.check_model(Some("bytes")).is_ok());
    /// assert!(Tokenizer::Ids.check_model(Some("bytes")).is_ok());
    /// assert!(Tokenizer::Bytes.check_model(Some("tokenizer.json:0123456789abcdef")).is_err());
    /// assert!(Tokenizer::Bytes.check_model(None).is_ok());
    /// ```
    pub fn check_model(&self, recorded: Option<&str>) -> Result<()> {
        match recorded {
            Some(want) if !matches!(self, Tokenizer::Ids) && want != self.identity() => Err(Error::Invalid(format!(
                "this model was trained with the tokenizer `{want}`, not `{}`: pass --tokenizer with the \
                     tokenizer it was trained with ({})",
                self.identity(),
                if want == "bytes" { "`bytes`, the default" } else { "its tokenizer.json" }
            ))),
            _ => Ok(()),
        }
    }

    /// The end-of-sequence id, if the vocabulary has one.
    ///
    /// Bytes have one (id 1); raw ids have none:
    ///
    /// ```
    /// use brt::tokenizer::Tokenizer;
    /// assert_eq!(Tokenizer::Bytes.eos(), Some(1));
    /// assert_eq!(Tokenizer::Ids.eos(), None);
    /// ```
    pub fn eos(&self) -> Option<u32> {
        match self {
            Tokenizer::Bytes => Some(bytes::EOS),
            Tokenizer::Ids => None,
            #[cfg(feature = "hf")]
            Tokenizer::HuggingFace(t) => hf_eos(t),
        }
    }

    /// Encodes a whole text. Only the byte tokenizer accepts text that is not UTF-8.
    ///
    /// Bytes take any bytes (`seqio.ByteVocabulary` ids); ids must be numbers in
    /// UTF-8:
    ///
    /// ```
    /// use brt::tokenizer::Tokenizer;
    ///
    /// assert_eq!(Tokenizer::Bytes.encode("Hé".as_bytes())?, [75, 198, 172]);
    /// assert_eq!(Tokenizer::Bytes.encode(&[0xff])?, [258]);
    /// assert_eq!(Tokenizer::Ids.encode(b" 12\n7 ")?, [12, 7]);
    /// assert!(Tokenizer::Ids.encode(b"1 x").is_err());
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn encode(&self, text: &[u8]) -> Result<Vec<u32>> {
        let mut encoder = self.encoder();
        let mut ids = encoder.push(text)?;
        ids.extend(encoder.finish()?);
        Ok(ids)
    }

    /// An encoder that takes a text in pieces (for files too large to hold).
    ///
    /// A text in pieces gives the ids of the whole, whatever the split:
    ///
    /// ```
    /// use brt::tokenizer::Tokenizer;
    ///
    /// let tokenizer = Tokenizer::Ids;
    /// let mut encoder = tokenizer.encoder();
    /// let mut ids = encoder.push(b"12 4")?;
    /// ids.extend(encoder.push(b"00 9")?);
    /// ids.extend(encoder.finish()?);
    /// assert_eq!(ids, tokenizer.encode(b"12 400 9")?);
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn encoder(&self) -> Encoder<'_> {
        Encoder { tokenizer: self, pending: Vec::new(), offset: 0 }
    }

    /// Decodes ids to bytes. The byte tokenizer drops special ids, end of
    /// sequence included, and decodes on (stopping there is the generator's
    /// choice, not the decoder's); ids are written as numbers.
    ///
    /// The byte tokenizer drops the special ids; ids come back as numbers, each
    /// followed by a space:
    ///
    /// ```
    /// use brt::tokenizer::Tokenizer;
    ///
    /// assert_eq!(Tokenizer::Bytes.decode(&[75, 0, 1, 2, 259, 108])?, b"Hi");
    /// assert_eq!(Tokenizer::Ids.decode(&[12, 7])?, b"12 7 ");
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn decode(&self, ids: &[u32]) -> Result<Vec<u8>> {
        match self {
            Tokenizer::Bytes => Ok(ids
                .iter()
                .filter(|&&id| (bytes::SPECIAL..bytes::USED).contains(&id))
                .map(|&id| (id - bytes::SPECIAL) as u8)
                .collect()),
            Tokenizer::Ids => {
                let words: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
                let mut out = words.join(" ").into_bytes();
                if !ids.is_empty() {
                    out.push(b' ');
                }
                Ok(out)
            }
            #[cfg(feature = "hf")]
            Tokenizer::HuggingFace(t) => {
                t.decode(ids, false).map(String::into_bytes).map_err(|e| Error::Invalid(format!("decoding: {e}")))
            }
        }
    }
}

/// Encodes a text given in pieces; see [`Tokenizer::encoder`].
///
/// Bytes are exact at any split. Ids keep a number cut by a split for the next
/// piece. A Hugging Face tokenizer encodes up to the last line break of what it
/// has, so its pieces break only at line ends.
///
/// A number cut by a split waits for its end:
///
/// ```
/// use brt::tokenizer::Tokenizer;
///
/// let tokenizer = Tokenizer::Ids;
/// let mut encoder = tokenizer.encoder();
/// assert_eq!(encoder.push(b"5 1")?, [5]);
/// assert_eq!(encoder.push(b"7 ")?, [17]);
/// assert!(encoder.finish()?.is_empty());
/// # Ok::<(), brt::Error>(())
/// ```
#[derive(Debug)]
pub struct Encoder<'t> {
    tokenizer: &'t Tokenizer,
    pending: Vec<u8>,
    offset: usize,
}

impl Encoder<'_> {
    /// Adds the next piece of text; returns the ids that are complete.
    ///
    /// Bytes are complete at once:
    ///
    /// ```
    /// use brt::tokenizer::Tokenizer;
    ///
    /// let tokenizer = Tokenizer::Bytes;
    /// let mut encoder = tokenizer.encoder();
    /// assert_eq!(encoder.push(b"ab")?, tokenizer.encode(b"ab")?);
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn push(&mut self, piece: &[u8]) -> Result<Vec<u32>> {
        match self.tokenizer {
            Tokenizer::Bytes => {
                self.offset += piece.len();
                Ok(piece.iter().map(|&b| b as u32 + bytes::SPECIAL).collect())
            }
            _ => {
                self.pending.extend_from_slice(piece);
                let cut = match self.tokenizer {
                    Tokenizer::Ids => self.pending.iter().rposition(|b| b.is_ascii_whitespace()).map(|i| i + 1),
                    _ => self.pending.iter().rposition(|&b| b == b'\n').map(|i| i + 1),
                };
                let ids = match cut {
                    Some(cut) => {
                        let ready: Vec<u8> = self.pending.drain(..cut).collect();
                        self.encode_text(&ready)?
                    }
                    None => Vec::new(),
                };
                // What is held back is one unfinished word: an id is short, so a
                // long one is an error now rather than memory that grows with the
                // file (a file without white space would otherwise be held whole).
                if matches!(self.tokenizer, Tokenizer::Ids) && self.pending.len() > MAX_ID_CHARS {
                    return Err(not_an_id(&self.pending));
                }
                Ok(ids)
            }
        }
    }

    /// Encodes whatever is left at the end of the text.
    ///
    /// The last number, with no white space after it, comes at the end:
    ///
    /// ```
    /// use brt::tokenizer::Tokenizer;
    ///
    /// let tokenizer = Tokenizer::Ids;
    /// let mut encoder = tokenizer.encoder();
    /// assert_eq!(encoder.push(b"3 14")?, [3]);
    /// assert_eq!(encoder.finish()?, [14]);
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn finish(&mut self) -> Result<Vec<u32>> {
        let rest = std::mem::take(&mut self.pending);
        self.encode_text(&rest)
    }

    fn encode_text(&mut self, text: &[u8]) -> Result<Vec<u32>> {
        let start = self.offset;
        self.offset += text.len();
        match self.tokenizer {
            Tokenizer::Bytes => Ok(text.iter().map(|&b| b as u32 + bytes::SPECIAL).collect()),
            Tokenizer::Ids => {
                let text = utf8(text, start)?;
                text.split_ascii_whitespace()
                    .map(|w| match w.parse::<u32>() {
                        Ok(id) if w.len() <= MAX_ID_CHARS => Ok(id),
                        _ => Err(not_an_id(w.as_bytes())),
                    })
                    .collect()
            }
            #[cfg(feature = "hf")]
            Tokenizer::HuggingFace(t) => {
                let text = utf8(text, start)?;
                let encoding = t.encode(text, false).map_err(|e| Error::Invalid(format!("tokenizing: {e}")))?;
                Ok(encoding.get_ids().to_vec())
            }
        }
    }
}

/// Checks that every merge of a BPE model makes a token of its vocabulary, as
/// the `tokenizers` crate requires: it copies each merged token into a buffer
/// sized by the longest vocabulary entry and panics (slice out of range) when a
/// merge makes a longer, unknown token (found by fuzzing). Merges it cannot read
/// are left to it.
#[cfg(feature = "hf")]
fn check_bpe_merges(json: &serde_json::Value) -> std::result::Result<(), String> {
    let model = &json["model"];
    // Without a `type`, the crate tries the file as BPE first.
    if !(model["type"] == "BPE" || model["type"].is_null()) {
        return Ok(());
    }
    let (Some(vocab), Some(merges)) = (model["vocab"].as_object(), model["merges"].as_array()) else {
        return Ok(());
    };
    let prefix = model["continuing_subword_prefix"].as_str().unwrap_or("");
    for merge in merges {
        let pair = match merge {
            serde_json::Value::String(s) => s.split_once(' '),
            serde_json::Value::Array(pair) => match pair.as_slice() {
                [a, b] => a.as_str().zip(b.as_str()),
                _ => None,
            },
            _ => None,
        };
        let Some((a, b)) = pair else { continue };
        // It also cuts the prefix off `b` by length, unchecked.
        let Some(rest) = b.strip_prefix(prefix) else {
            return Err(format!("the merge `{a} {b}`: `{b}` does not start with the subword prefix `{prefix}`"));
        };
        let merged = format!("{a}{rest}");
        for token in [a, b, merged.as_str()] {
            if !vocab.contains_key(token) {
                return Err(format!("the merge `{a} {b}` needs `{token}`, which is not in the vocabulary"));
            }
        }
    }
    Ok(())
}

/// The longest word the `ids` tokenizer reads as a token id (ids have at most 10
/// digits; this leaves room for leading zeros).
const MAX_ID_CHARS: usize = 32;

/// The error for a word that is not a token id, quoting at most its start.
fn not_an_id(word: &[u8]) -> Error {
    let shown = String::from_utf8_lossy(&word[..word.len().min(MAX_ID_CHARS)]).into_owned();
    let more = if word.len() > MAX_ID_CHARS { "..." } else { "" };
    Error::Invalid(format!("`{shown}{more}` is not a token id (a number from 0 to 4294967295)"))
}

fn utf8(text: &[u8], start: usize) -> Result<&str> {
    std::str::from_utf8(text).map_err(|e| {
        Error::Invalid(format!(
            "the text is not UTF-8 (invalid byte at offset {}); only the `bytes` tokenizer reads arbitrary bytes",
            start + e.valid_up_to()
        ))
    })
}

/// The end-of-sequence id of a tokenizer.json: its special added token with
/// one of the usual end-of-text spellings, the first of them in this order.
#[cfg(feature = "hf")]
fn hf_eos(t: &tokenizers::Tokenizer) -> Option<u32> {
    const SPELLINGS: [&str; 6] = ["</s>", "<|endoftext|>", "<|end_of_text|>", "<eos>", "<|eot_id|>", "<|im_end|>"];
    let added = t.get_added_tokens_decoder();
    SPELLINGS
        .iter()
        .find_map(|&name| added.iter().find(|(_, tok)| tok.special && tok.content == name).map(|(&id, _)| id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_ids_match_the_official_vocabulary() {
        let t = Tokenizer::Bytes;
        // seqio.ByteVocabulary().encode("Hé") == [75, 198, 172]
        assert_eq!(t.encode("Hé".as_bytes()).unwrap(), vec![75, 198, 172]);
        assert_eq!(t.encode(&[0xff, 0x00]).unwrap(), vec![258, 3]);
        assert_eq!(t.decode(&[75, 0, 1, 2, 259, 198, 172]).unwrap(), "Hé".as_bytes());
    }

    #[test]
    fn pieces_give_the_same_ids_as_the_whole() {
        for (t, text) in [(Tokenizer::Bytes, &b"any \xff bytes"[..]), (Tokenizer::Ids, b"12 7 400\n9 0 31")] {
            let whole = t.encode(text).unwrap();
            for split in 0..text.len() {
                let mut e = t.encoder();
                let mut ids = e.push(&text[..split]).unwrap();
                ids.extend(e.push(&text[split..]).unwrap());
                ids.extend(e.finish().unwrap());
                assert_eq!(ids, whole, "{} split at {split}", t.name());
            }
        }
    }

    #[test]
    fn bad_text_is_an_error() {
        let err = Tokenizer::Ids.encode(b"1 2 x").unwrap_err().to_string();
        assert!(err.contains("`x` is not a token id"), "{err}");
        let err = Tokenizer::Ids.encode(b"1 \xff").unwrap_err().to_string();
        assert!(err.contains("not UTF-8 (invalid byte at offset 2)"), "{err}");
        assert!(Tokenizer::from_spec("no/such/tokenizer.json").is_err());
    }
}
