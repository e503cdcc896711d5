//! The library API: an [`Engine`] holds a model on a backend; a [`Session`] is the
//! streaming state of `B` documents (every layer's KV cache, every recurrent state,
//! the position) that can be fed tokens, saved to a file and restored, also on
//! another backend.
//!
//! A session saved to bytes and restored predicts what it did:
//!
//! ```
//! use brt::{Engine, Session};
//! use brt_core::Reference;
//! use brt_heap::Heap;
//!
//! let mut engine = Engine::new(Reference::new(Heap), &brt::default_model()?)?;
//! let mut session = engine.session(1, 8)?;
//! session.feed(&mut engine, &[40, 41, 42])?;
//! let bytes = session.to_bytes(&mut engine)?;
//! let restored = Session::from_bytes(&mut engine, &bytes, 8)?;
//! assert_eq!(restored.last_logits(0), session.last_logits(0));
//! # Ok::<(), brt::Error>(())
//! ```

use crate::backend::FileWeights;
use crate::config_file::ConfigFile;
use crate::error::{Error, Result};
use crate::files::write_atomically;
use crate::model_file::LoadedModel;
use crate::weights::{ModelWeights, WeightBuffer};
use brt_core::{Config, Kernels, Model, Plan, Stream};
use safetensors::tensor::{Dtype, TensorView};
use std::collections::HashMap;
use std::path::Path;

/// A model loaded on a backend.
///
/// An engine of the built-in model on the reference backend, and a session that
/// reads a few bytes:
///
/// ```
/// use brt::Engine;
/// use brt_core::Reference;
/// use brt_heap::Heap;
///
/// let mut engine = Engine::new(Reference::new(Heap), &brt::default_model()?)?;
/// let mut session = engine.session(1, 8)?;
/// session.feed(&mut engine, &[40, 41, 42])?;
/// assert_eq!(session.last_logits(0).unwrap().len(), engine.config().vocab);
/// # Ok::<(), brt::Error>(())
/// ```
pub struct Engine<K: Kernels> {
    kernels: K,
    model: Model<K>,
    fingerprint: u64,
}

impl<K: Kernels> std::fmt::Debug for Engine<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("config", self.model.config()).finish_non_exhaustive()
    }
}

/// A stable 64-bit fingerprint of a model (configuration and parameter bytes),
/// stored in session files so a session is never continued with another model.
///
/// The fingerprint is the same for the same weights and changes with any
/// parameter:
///
/// ```
/// use brt::engine::fingerprint;
/// use brt::WeightBuffer;
///
/// let weights = brt::default_model()?;
/// assert_eq!(fingerprint(&weights), fingerprint(&brt::default_model()?));
/// let mut changed = weights.clone();
/// if let WeightBuffer::F16(values) = changed.buffer_mut() {
///     values[0] = -values[0] + brt_core::half::f16::ONE;
/// }
/// assert_ne!(fingerprint(&changed), fingerprint(&weights));
/// # Ok::<(), brt::Error>(())
/// ```
pub fn fingerprint(weights: &ModelWeights) -> u64 {
    let bytes: &[u8] = match weights.buffer() {
        WeightBuffer::F32(v) => bytemuck::cast_slice(v),
        WeightBuffer::F16(v) => bytemuck::cast_slice(v),
        WeightBuffer::Bf16(v) => bytemuck::cast_slice(v),
    };
    let mut f = Fingerprint::new(weights.config());
    f.bytes(bytes);
    f.finish()
}

/// The [`fingerprint`] computed over the parameter bytes in pieces (a model file
/// whose tensors lie apart).
///
/// FNV-1a over the configuration's JSON bytes, then over the parameter bytes in
/// little-endian 64-bit words, then their last bytes one by one: stable across
/// platforms and Rust versions.
pub(crate) struct Fingerprint {
    hash: u64,
    word: [u8; 8],
    filled: usize,
}

impl Fingerprint {
    pub(crate) fn new(config: &Config) -> Fingerprint {
        let mut f = Fingerprint { hash: 0xcbf2_9ce4_8422_2325, word: [0; 8], filled: 0 };
        for b in ConfigFile::to_json(config).bytes() {
            f.mix(b as u64);
        }
        f
    }

    fn mix(&mut self, word: u64) {
        self.hash ^= word;
        self.hash = self.hash.wrapping_mul(0x0000_0100_0000_01b3);
    }

    pub(crate) fn bytes(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        // Complete a word begun by the previous piece, then whole words, then
        // keep the last bytes for the next piece.
        while self.filled != 0 && !rest.is_empty() {
            self.push(rest[0]);
            rest = &rest[1..];
        }
        let words = rest.chunks_exact(8);
        let tail = words.remainder();
        for w in words {
            let mut word = [0u8; 8];
            word.copy_from_slice(w);
            self.mix(u64::from_le_bytes(word));
        }
        for &b in tail {
            self.push(b);
        }
    }

    fn push(&mut self, b: u8) {
        self.word[self.filled] = b;
        self.filled += 1;
        if self.filled == 8 {
            self.mix(u64::from_le_bytes(self.word));
            self.filled = 0;
        }
    }

    pub(crate) fn finish(mut self) -> u64 {
        for i in 0..self.filled {
            let b = self.word[i];
            self.mix(b as u64);
        }
        self.hash
    }
}

/// The KV runway of a session fed `chunk` tokens per call ([`Plan::with_kv_runway`]).
///
/// Short calls (generation, interactive use) would otherwise copy every layer's
/// cached window into the scratch and back on every call: for one-token calls on a
/// large model, more memory traffic than the weights. A runway of 32 calls (at most
/// a window, so the KV memory at most doubles) leaves one move of the windows per
/// 32 calls. Calls longer than an eighth of a window spend far more on compute
/// than on the copies, and get none.
fn kv_runway(window: usize, chunk: usize) -> usize {
    if chunk.saturating_mul(8) <= window {
        chunk.saturating_mul(32).min(window)
    } else {
        0
    }
}

impl<K: Kernels> Engine<K>
where
    Error: From<K::Error>,
{
    /// Loads `weights` onto `kernels`.
    ///
    /// The engine takes the weights' configuration and fingerprint:
    ///
    /// ```
    /// use brt::Engine;
    /// use brt_core::Reference;
    /// use brt_heap::Heap;
    ///
    /// let weights = brt::default_model()?;
    /// let engine = Engine::new(Reference::new(Heap), &weights)?;
    /// assert_eq!(engine.config(), weights.config());
    /// assert_eq!(engine.fingerprint(), brt::engine::fingerprint(&weights));
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn new(mut kernels: K, weights: &ModelWeights) -> Result<Self> {
        let model = Model::from_flat(&mut kernels, weights.config(), weights.dtype(), weights.buffer().data())?;
        Ok(Engine { kernels, model, fingerprint: fingerprint(weights) })
    }

    /// Loads `model` onto `kernels`; a mapped model file is used in place where
    /// the backend can (the CPU and reference backends), copied otherwise.
    ///
    /// A model in memory loads as with [`Engine::new`]:
    ///
    /// ```
    /// use brt::model_file::LoadedModel;
    /// use brt::Engine;
    /// use brt_core::Reference;
    /// use brt_heap::Heap;
    ///
    /// let weights = brt::default_model()?;
    /// let engine = Engine::load(Reference::new(Heap), &LoadedModel::InMemory(weights.clone()))?;
    /// assert_eq!(engine.fingerprint(), brt::engine::fingerprint(&weights));
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn load(mut kernels: K, model: &LoadedModel) -> Result<Self>
    where
        K: FileWeights,
    {
        match model {
            LoadedModel::InMemory(weights) => Engine::new(kernels, weights),
            LoadedModel::Mapped(mapped) => {
                let weights = kernels.file_weights(mapped)?;
                let model = Model::with_layout(*mapped.layout(), mapped.dtype(), weights)?;
                Ok(Engine { kernels, model, fingerprint: mapped.fingerprint() })
            }
        }
    }

    /// The configuration.
    ///
    /// The built-in model's window is 64 tokens:
    ///
    /// ```
    /// # use brt::Engine;
    /// # use brt_core::Reference;
    /// # use brt_heap::Heap;
    /// # let mut engine = Engine::new(Reference::new(Heap), &brt::default_model()?)?;
    /// assert_eq!(engine.config().window, 64);
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn config(&self) -> &Config {
        self.model.config()
    }

    /// The model's fingerprint (see [`fingerprint`]).
    ///
    /// It is recorded in the session files the engine writes, so that only an
    /// engine of the same model reads them:
    ///
    /// ```
    /// # use brt::Engine;
    /// # use brt_core::Reference;
    /// # use brt_heap::Heap;
    /// # let mut engine = Engine::new(Reference::new(Heap), &brt::default_model()?)?;
    /// assert_eq!(engine.fingerprint(), brt::engine::fingerprint(&brt::default_model()?));
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// The backend.
    ///
    /// The backend reads the engine's buffers, e.g. a session's logits:
    ///
    /// ```
    /// use brt_core::Storage;
    /// # use brt::Engine;
    /// # use brt_core::Reference;
    /// # use brt_heap::Heap;
    /// # let mut engine = Engine::new(Reference::new(Heap), &brt::default_model()?)?;
    /// let mut session = engine.session(1, 4)?;
    /// session.feed(&mut engine, &[40, 41])?;
    /// let mut last = vec![0f32; 260];
    /// engine.kernels().read_tensor(session.logits_buffer(), 260, &mut last)?;
    /// assert_eq!(last, session.last_logits(0).unwrap());
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn kernels(&mut self) -> &mut K {
        &mut self.kernels
    }

    /// Replaces every parameter (e.g. after an optimizer step). The fingerprint
    /// keeps naming the model the engine was made with.
    ///
    /// A model of zeros predicts every token alike; values of the wrong count are
    /// refused:
    ///
    /// ```
    /// use brt::Engine;
    /// use brt_core::{Reference, WeightData};
    /// use brt_heap::Heap;
    ///
    /// let weights = brt::default_model()?;
    /// let mut engine = Engine::new(Reference::new(Heap), &weights)?;
    /// engine.set_weights(WeightData::F32(&vec![0f32; weights.buffer().len()]))?;
    /// let mut session = engine.session(1, 4)?;
    /// session.feed(&mut engine, &[40, 41])?;
    /// let logits = session.last_logits(0).unwrap();
    /// assert!(logits.iter().all(|&v| v == logits[0]));
    /// assert!(engine.set_weights(WeightData::F32(&[0.0; 3])).is_err());
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn set_weights(&mut self, values: brt_core::WeightData<'_>) -> Result<()> {
        let expected = self.model.layout().len();
        if values.len() != expected {
            return Err(Error::Invalid(format!("{} parameter values for a model of {expected}", values.len())));
        }
        let weights = self.model.weights_mut();
        self.kernels.write_weights(weights, 0, values)?;
        Ok(())
    }

    /// A new session of `batch` documents, each starting fresh, fed at most
    /// `chunk` tokens per row per call (larger takes more memory, and is faster
    /// until a call's activations leave the cache: on an Intel Xeon with a 2 MiB
    /// L2, `small` ran about 8% faster in calls of 512 tokens than of 2048, the
    /// median of six interleaved rounds of `brt bench --chunk`).
    ///
    /// A new session starts fresh at the beginning of a block:
    ///
    /// ```
    /// # use brt::Engine;
    /// # use brt_core::Reference;
    /// # use brt_heap::Heap;
    /// # let mut engine = Engine::new(Reference::new(Heap), &brt::default_model()?)?;
    /// let session = engine.session(2, 16)?;
    /// assert_eq!((session.batch(), session.chunk()), (2, 16));
    /// assert_eq!((session.tokens_seen(), session.position_in_block()), (0, 0));
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn session(&mut self, batch: usize, chunk: usize) -> Result<Session<K>> {
        let window = self.config().window;
        let plan = Plan::new(self.config(), batch, chunk.max(1))?.with_kv_runway(kv_runway(window, chunk.max(1)))?;
        let stream = Stream::new(&mut self.kernels, &self.model, plan)?;
        let vocab = self.config().vocab;
        Ok(Session {
            stream,
            fingerprint: self.fingerprint,
            tokens_seen: 0,
            last_logits: vec![0.0; batch * vocab],
            has_logits: false,
            staging: Vec::with_capacity(batch * chunk.max(1)),
            chunk_logits: Vec::new(),
        })
    }
}

/// The carried state of a session, on the host (see [`Session::export`]).
///
/// The state of a session that has read three tokens:
///
/// ```
/// # use brt::Engine;
/// # use brt_core::Reference;
/// # use brt_heap::Heap;
/// # let mut engine = Engine::new(Reference::new(Heap), &brt::default_model()?)?;
/// let mut session = engine.session(1, 8)?;
/// session.feed(&mut engine, &[40, 41, 42])?;
/// let state = session.export(&mut engine)?;
/// assert_eq!((state.tokens_seen, state.position_in_block), (3, 3));
/// assert_eq!(state.last_logits.map(|l| l.len()), Some(260));
/// assert!(state.state.iter().all(|v| v.is_finite()));
/// # Ok::<(), brt::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct SessionState {
    /// The stream state, laid out as the core's plan says.
    pub state: Vec<f32>,
    /// Position of the next token inside its block.
    pub position_in_block: usize,
    /// Tokens fed to each row so far.
    pub tokens_seen: u64,
    /// The last position's logits of every row, if any were computed.
    pub last_logits: Option<Vec<f32>>,
}

/// Receives the logits of a call: `(first position, T x B x V logits)`.
///
/// A reader that keeps the largest logit of each position:
///
/// ```
/// use brt::engine::LogitsReader;
/// # use brt::Engine;
/// # use brt_core::Reference;
/// # use brt_heap::Heap;
/// # let mut engine = Engine::new(Reference::new(Heap), &brt::default_model()?)?;
/// let mut session = engine.session(1, 8)?;
/// let mut best = Vec::new();
/// let reader: &mut LogitsReader<'_> = &mut |_start, logits| {
///     best.extend(logits.chunks(260).map(|row| row.iter().copied().fold(f32::MIN, f32::max)));
///     Ok(())
/// };
/// session.feed_rows(&mut engine, &[&[40, 41, 42]], &[], Some(reader))?;
/// assert_eq!(best.len(), 3);
/// # Ok::<(), brt::Error>(())
/// ```
pub type LogitsReader<'a> = dyn FnMut(usize, &[f32]) -> Result<()> + 'a;

/// The streaming state of `B` documents.
///
/// Two documents read side by side, then saved and restored:
///
/// ```
/// # use brt::Engine;
/// # use brt_core::Reference;
/// # use brt_heap::Heap;
/// # let mut engine = Engine::new(Reference::new(Heap), &brt::default_model()?)?;
/// let mut session = engine.session(2, 8)?;
/// session.feed_rows(&mut engine, &[&[40, 41], &[50, 51]], &[], None)?;
/// let bytes = session.to_bytes(&mut engine)?;
/// let restored = brt::Session::from_bytes(&mut engine, &bytes, 8)?;
/// assert_eq!(restored.batch(), 2);
/// assert_eq!(restored.last_logits(1), session.last_logits(1));
/// # Ok::<(), brt::Error>(())
/// ```
pub struct Session<K: Kernels> {
    stream: Stream<K>,
    fingerprint: u64,
    tokens_seen: u64,
    last_logits: Vec<f32>,
    has_logits: bool,
    staging: Vec<u32>,
    chunk_logits: Vec<f32>,
}

impl<K: Kernels> std::fmt::Debug for Session<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("tokens_seen", &self.tokens_seen)
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}

/// Metadata keys and values of session files.
mod file {
    pub const FORMAT: &str = "brt-session";
    pub const VERSION: &str = "1";
}

impl<K: Kernels> Session<K>
where
    Error: From<K::Error>,
{
    /// Documents fed side by side.
    ///
    /// The documents the session was made for:
    ///
    /// ```
    /// # use brt::Engine;
    /// # use brt_core::Reference;
    /// # use brt_heap::Heap;
    /// # let mut engine = Engine::new(Reference::new(Heap), &brt::default_model()?)?;
    /// assert_eq!(engine.session(3, 4)?.batch(), 3);
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn batch(&self) -> usize {
        self.stream.plan().batch()
    }
    /// Most tokens per row per call.
    ///
    /// A chunk of 0 is taken as 1:
    ///
    /// ```
    /// # use brt::Engine;
    /// # use brt_core::Reference;
    /// # use brt_heap::Heap;
    /// # let mut engine = Engine::new(Reference::new(Heap), &brt::default_model()?)?;
    /// assert_eq!(engine.session(1, 8)?.chunk(), 8);
    /// assert_eq!(engine.session(1, 0)?.chunk(), 1);
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn chunk(&self) -> usize {
        self.stream.plan().max_tokens()
    }
    /// Tokens fed to each row since the session began (resets included).
    ///
    /// Feeds add up:
    ///
    /// ```
    /// # use brt::Engine;
    /// # use brt_core::Reference;
    /// # use brt_heap::Heap;
    /// # let mut engine = Engine::new(Reference::new(Heap), &brt::default_model()?)?;
    /// let mut session = engine.session(1, 4)?;
    /// session.feed(&mut engine, &[40, 41, 42])?;
    /// session.feed(&mut engine, &[43, 44])?;
    /// assert_eq!(session.tokens_seen(), 5);
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn tokens_seen(&self) -> u64 {
        self.tokens_seen
    }
    /// Position of the next token inside its block.
    ///
    /// The position wraps at the window (64 tokens for the built-in model, 4 for
    /// the small random model here):
    ///
    /// ```
    /// # use brt::{Engine, ModelWeights, WeightBuffer};
    /// # use brt_core::{Config, LayerSet, Reference, WeightLayout};
    /// # use brt_heap::Heap;
    /// # let config = Config { states: 4, recurrent: LayerSet::EMPTY.with(1), ..Config::plain(16, 8, 2, 4, 16, 2, 4) };
    /// # let mut values = vec![0f32; WeightLayout::new(&config)?.len()];
    /// # brt_core::init::initialize(&config, 7, &mut values)?;
    /// # let mut engine = Engine::new(Reference::new(Heap), &ModelWeights::new(config, WeightBuffer::F32(values))?)?;
    /// assert_eq!(engine.config().window, 4);
    /// let mut session = engine.session(1, 4)?;
    /// session.feed(&mut engine, &[1, 2, 3])?;
    /// assert_eq!(session.position_in_block(), 3);
    /// session.feed(&mut engine, &[4, 5])?;
    /// assert_eq!(session.position_in_block(), 1);
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn position_in_block(&self) -> usize {
        self.stream.position_in_block()
    }

    fn check_engine(&self, engine: &Engine<K>) -> Result<()> {
        if engine.fingerprint != self.fingerprint {
            return Err(Error::Invalid("this session belongs to another model".into()));
        }
        Ok(())
    }

    /// Feeds one document's tokens (batch 1), any number, keeping the logits of the
    /// last position for [`Session::last_logits`].
    ///
    /// Feeding in pieces predicts as feeding at once; a session of two documents
    /// is refused:
    ///
    /// ```
    /// # use brt::Engine;
    /// # use brt_core::Reference;
    /// # use brt_heap::Heap;
    /// # let mut engine = Engine::new(Reference::new(Heap), &brt::default_model()?)?;
    /// let mut whole = engine.session(1, 8)?;
    /// whole.feed(&mut engine, &[40, 41, 42, 43])?;
    /// let mut pieces = engine.session(1, 8)?;
    /// pieces.feed(&mut engine, &[40, 41])?;
    /// pieces.feed(&mut engine, &[42, 43])?;
    /// let (a, b) = (whole.last_logits(0).unwrap(), pieces.last_logits(0).unwrap());
    /// let difference = brt::compare::largest_difference(a, b);
    /// assert!(difference.within(1e-4));
    /// let mut two = engine.session(2, 8)?;
    /// assert!(two.feed(&mut engine, &[40]).is_err());
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn feed(&mut self, engine: &mut Engine<K>, tokens: &[u32]) -> Result<()> {
        if self.batch() != 1 {
            return Err(Error::Invalid(format!("`feed` takes one document; this session has {}", self.batch())));
        }
        self.feed_rows(engine, &[tokens], &[], None)
    }

    /// Feeds `rows` (one slice per batch row, all the same length). `resets`
    /// (empty, or one flag per row) starts a new document in flagged rows first.
    /// `on_logits(start, logits)`, if given, receives each call's logits,
    /// position-major (`logits[(t*B + b)*V ..]` is position `start + t` of row `b`);
    /// without it only the last position's logits are read back.
    ///
    /// A reset row starts afresh: it predicts as a new session does, whatever it
    /// read before. Resets come at the start of a block (every 4 tokens for the
    /// small random model here, every 64 for the built-in model); elsewhere they
    /// are refused, as are rows of unequal lengths:
    ///
    /// ```
    /// # use brt::{Engine, ModelWeights, WeightBuffer};
    /// # use brt_core::{Config, LayerSet, Reference, WeightLayout};
    /// # use brt_heap::Heap;
    /// # let config = Config { states: 4, recurrent: LayerSet::EMPTY.with(1), ..Config::plain(16, 8, 2, 4, 16, 2, 4) };
    /// # let mut values = vec![0f32; WeightLayout::new(&config)?.len()];
    /// # brt_core::init::initialize(&config, 7, &mut values)?;
    /// # let mut engine = Engine::new(Reference::new(Heap), &ModelWeights::new(config, WeightBuffer::F32(values))?)?;
    /// let mut session = engine.session(2, 4)?;
    /// session.feed_rows(&mut engine, &[&[1, 2, 3, 4], &[5, 6, 7, 8]], &[], None)?;
    /// session.feed_rows(&mut engine, &[&[9], &[9]], &[true, false], None)?;
    /// let mut fresh = engine.session(1, 4)?;
    /// fresh.feed(&mut engine, &[9])?;
    /// let (a, b) = (session.last_logits(0).unwrap(), fresh.last_logits(0).unwrap());
    /// let difference = brt::compare::largest_difference(a, b);
    /// assert!(difference.within(1e-4));
    /// assert!(session.feed_rows(&mut engine, &[&[10], &[10]], &[true, false], None).is_err());
    /// assert!(session.feed_rows(&mut engine, &[&[10], &[10, 11]], &[], None).is_err());
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn feed_rows(
        &mut self,
        engine: &mut Engine<K>,
        rows: &[&[u32]],
        resets: &[bool],
        mut on_logits: Option<&mut LogitsReader<'_>>,
    ) -> Result<()> {
        self.check_engine(engine)?;
        let batch = self.batch();
        if rows.len() != batch {
            return Err(Error::Invalid(format!("{} rows of tokens for a session of {batch}", rows.len())));
        }
        let len = rows[0].len();
        if rows.iter().any(|r| r.len() != len) {
            return Err(Error::Invalid("every row must get the same number of tokens".into()));
        }
        let vocab = engine.config().vocab;
        if let Some((b, t, id)) = rows
            .iter()
            .enumerate()
            .find_map(|(b, r)| r.iter().position(|&id| id as usize >= vocab).map(|t| (b, t, r[t])))
        {
            return Err(Error::Invalid(format!(
                "token id {id} (row {b}, position {t}) is not below the vocabulary size {vocab}"
            )));
        }
        if len == 0 {
            if resets.iter().any(|&r| r) {
                self.stream.forward(&mut engine.kernels, &engine.model, &[], resets)?;
            }
            return Ok(());
        }
        let chunk = self.chunk();
        let width = batch * vocab;
        for start in (0..len).step_by(chunk) {
            let n = chunk.min(len - start);
            self.staging.clear();
            for t in start..start + n {
                self.staging.extend(rows.iter().map(|r| r[t]));
            }
            let resets_now: &[bool] = if start == 0 { resets } else { &[] };
            self.stream.forward(&mut engine.kernels, &engine.model, &self.staging, resets_now)?;
            self.tokens_seen += n as u64;
            match on_logits.as_mut() {
                Some(reader) => {
                    self.chunk_logits.resize(n * width, 0.0);
                    engine.kernels.read_tensor(self.stream.logits(), 0, &mut self.chunk_logits)?;
                    self.last_logits.copy_from_slice(&self.chunk_logits[(n - 1) * width..]);
                    reader(start, &self.chunk_logits)?;
                }
                None => engine.kernels.read_tensor(self.stream.logits(), (n - 1) * width, &mut self.last_logits)?,
            }
            self.has_logits = true;
        }
        Ok(())
    }

    /// The logits of the last position fed to `row` (the prediction of its next
    /// token), or `None` before anything was fed.
    ///
    /// `None` before the first feed and past the last row:
    ///
    /// ```
    /// # use brt::Engine;
    /// # use brt_core::Reference;
    /// # use brt_heap::Heap;
    /// # let mut engine = Engine::new(Reference::new(Heap), &brt::default_model()?)?;
    /// let mut session = engine.session(1, 4)?;
    /// assert!(session.last_logits(0).is_none());
    /// session.feed(&mut engine, &[40])?;
    /// assert_eq!(session.last_logits(0).map(<[f32]>::len), Some(260));
    /// assert!(session.last_logits(1).is_none());
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn last_logits(&self, row: usize) -> Option<&[f32]> {
        let vocab = self.last_logits.len() / self.batch();
        self.has_logits.then(|| self.last_logits.get(row * vocab..(row + 1) * vocab)).flatten()
    }

    /// Starts a new document in every row.
    ///
    /// After a reset the session predicts as a new one:
    ///
    /// ```
    /// # use brt::Engine;
    /// # use brt_core::Reference;
    /// # use brt_heap::Heap;
    /// # let mut engine = Engine::new(Reference::new(Heap), &brt::default_model()?)?;
    /// let mut session = engine.session(1, 8)?;
    /// session.feed(&mut engine, &[40, 41, 42])?;
    /// session.reset(&mut engine)?;
    /// assert!(session.last_logits(0).is_none());
    /// session.feed(&mut engine, &[43])?;
    /// let mut fresh = engine.session(1, 8)?;
    /// fresh.feed(&mut engine, &[43])?;
    /// let (a, b) = (session.last_logits(0).unwrap(), fresh.last_logits(0).unwrap());
    /// let difference = brt::compare::largest_difference(a, b);
    /// assert!(difference.within(1e-4));
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn reset(&mut self, engine: &mut Engine<K>) -> Result<()> {
        self.check_engine(engine)?;
        self.stream.reset_all(&mut engine.kernels, &engine.model)?;
        self.has_logits = false;
        Ok(())
    }

    /// The logits buffer of the last call (`T x B x V`, position-major).
    ///
    /// The buffer on the backend, read with the backend's own calls: two
    /// positions of 260 logits here:
    ///
    /// ```
    /// use brt_core::Storage;
    /// # use brt::Engine;
    /// # use brt_core::Reference;
    /// # use brt_heap::Heap;
    /// # let mut engine = Engine::new(Reference::new(Heap), &brt::default_model()?)?;
    /// let mut session = engine.session(1, 2)?;
    /// session.feed(&mut engine, &[40, 41])?;
    /// let mut both = vec![0f32; 2 * 260];
    /// engine.kernels().read_tensor(session.logits_buffer(), 0, &mut both)?;
    /// assert_eq!(&both[260..], session.last_logits(0).unwrap());
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn logits_buffer(&self) -> &K::Tensor {
        self.stream.logits()
    }

    /// Copies the carried state to the host.
    ///
    /// A fresh session has no logits yet:
    ///
    /// ```
    /// # use brt::Engine;
    /// # use brt_core::Reference;
    /// # use brt_heap::Heap;
    /// # let mut engine = Engine::new(Reference::new(Heap), &brt::default_model()?)?;
    /// let session = engine.session(1, 8)?;
    /// let state = session.export(&mut engine)?;
    /// assert_eq!(state.tokens_seen, 0);
    /// assert!(state.last_logits.is_none());
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn export(&self, engine: &mut Engine<K>) -> Result<SessionState> {
        self.check_engine(engine)?;
        let mut state = vec![0f32; self.stream.plan().saved_state_len()];
        self.stream.read_state(&mut engine.kernels, &mut state)?;
        Ok(SessionState {
            state,
            position_in_block: self.position_in_block(),
            tokens_seen: self.tokens_seen,
            last_logits: self.has_logits.then(|| self.last_logits.clone()),
        })
    }

    /// Replaces the carried state by one exported from a session of the same
    /// model and batch size (on any backend).
    ///
    /// A state exported by one session continues in another; a state of another
    /// batch size is refused:
    ///
    /// ```
    /// # use brt::Engine;
    /// # use brt_core::Reference;
    /// # use brt_heap::Heap;
    /// # let mut engine = Engine::new(Reference::new(Heap), &brt::default_model()?)?;
    /// let mut first = engine.session(1, 8)?;
    /// first.feed(&mut engine, &[40, 41])?;
    /// let saved = first.export(&mut engine)?;
    /// let mut second = engine.session(1, 8)?;
    /// second.import(&mut engine, &saved)?;
    /// assert_eq!(second.tokens_seen(), 2);
    /// assert_eq!(second.last_logits(0), first.last_logits(0));
    /// let mut two = engine.session(2, 8)?;
    /// assert!(two.import(&mut engine, &saved).is_err());
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn import(&mut self, engine: &mut Engine<K>, saved: &SessionState) -> Result<()> {
        self.check_engine(engine)?;
        if saved.state.iter().any(|v| !v.is_finite()) {
            return Err(Error::Invalid("the saved state holds non-finite values".into()));
        }
        if let Some(logits) = &saved.last_logits {
            if logits.len() != self.last_logits.len() {
                return Err(Error::Invalid("the saved logits are for another batch size".into()));
            }
        }
        self.stream.restore(&mut engine.kernels, &saved.state, saved.position_in_block)?;
        self.tokens_seen = saved.tokens_seen;
        match &saved.last_logits {
            Some(l) => {
                self.last_logits.copy_from_slice(l);
                self.has_logits = true;
            }
            None => self.has_logits = false,
        }
        Ok(())
    }

    /// Saves the session (carried state, position, last logits) to `path`,
    /// atomically.
    ///
    /// Saved, then loaded by [`Session::load`]:
    ///
    /// ```
    /// # use brt::Engine;
    /// # use brt_core::Reference;
    /// # use brt_heap::Heap;
    /// # let mut engine = Engine::new(Reference::new(Heap), &brt::default_model()?)?;
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("session.safetensors");
    /// let mut session = engine.session(1, 8)?;
    /// session.feed(&mut engine, &[40, 41, 42])?;
    /// session.save(&mut engine, &path)?;
    /// let loaded = brt::Session::load(&mut engine, &path, 8)?;
    /// assert_eq!(loaded.tokens_seen(), 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn save(&self, engine: &mut Engine<K>, path: &Path) -> Result<()> {
        write_atomically(path, &self.to_bytes(engine)?)
    }

    /// The bytes of the session file [`Session::save`] writes.
    ///
    /// The bytes are a safetensors file:
    ///
    /// ```
    /// # use brt::Engine;
    /// # use brt_core::Reference;
    /// # use brt_heap::Heap;
    /// # let mut engine = Engine::new(Reference::new(Heap), &brt::default_model()?)?;
    /// let session = engine.session(1, 8)?;
    /// let bytes = session.to_bytes(&mut engine)?;
    /// assert!(brt::format::looks_like_safetensors(&bytes));
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn to_bytes(&self, engine: &mut Engine<K>) -> Result<Vec<u8>> {
        self.check_engine(engine)?;
        let mut state = vec![0f32; self.stream.plan().saved_state_len()];
        self.stream.read_state(&mut engine.kernels, &mut state)?;
        let batch = self.batch();
        let vocab = engine.config().vocab;
        let metadata: HashMap<String, String> = [
            ("format", file::FORMAT.to_string()),
            ("format_version", file::VERSION.to_string()),
            ("config", ConfigFile::to_json(engine.config())),
            ("model_fingerprint", format!("{:016x}", self.fingerprint)),
            ("batch", batch.to_string()),
            ("position_in_block", self.position_in_block().to_string()),
            ("tokens_seen", self.tokens_seen.to_string()),
            ("has_logits", self.has_logits.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let invalid = |e: safetensors::SafeTensorError| Error::Invalid(format!("session: {e}"));
        let tensors = [
            ("state", TensorView::new(Dtype::F32, vec![state.len()], bytemuck::cast_slice(&state)).map_err(invalid)?),
            (
                "last_logits",
                TensorView::new(Dtype::F32, vec![batch, vocab], bytemuck::cast_slice(&self.last_logits))
                    .map_err(invalid)?,
            ),
        ];
        crate::format::serialize_reproducibly(tensors, metadata)
    }

    /// Restores a session saved by [`Session::save`], on this engine's backend
    /// (which may differ from the one that saved it). `chunk` as for
    /// [`Engine::session`].
    ///
    /// A file that is not a session is refused with its path named:
    ///
    /// ```
    /// # use brt::Engine;
    /// # use brt_core::Reference;
    /// # use brt_heap::Heap;
    /// # let mut engine = Engine::new(Reference::new(Heap), &brt::default_model()?)?;
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("notes.txt");
    /// std::fs::write(&path, "not a session")?;
    /// let err = brt::Session::load(&mut engine, &path, 8).unwrap_err();
    /// assert!(err.to_string().contains("notes.txt"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn load(engine: &mut Engine<K>, path: &Path, chunk: usize) -> Result<Session<K>> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Session::from_bytes(engine, &bytes, chunk).map_err(|e| match e {
            Error::Invalid(m) => Error::format(path, m),
            other => other,
        })
    }

    /// Restores a session from the bytes of a session file (see [`Session::load`]).
    ///
    /// Every size the file claims (batch, state length) is checked against the
    /// tensors it really holds before the session's memory is allocated.
    ///
    /// A session continues only with its own model: an engine of other weights
    /// refuses it:
    ///
    /// ```
    /// use brt::{Engine, WeightBuffer};
    /// use brt_core::Reference;
    /// use brt_heap::Heap;
    ///
    /// let weights = brt::default_model()?;
    /// let mut engine = Engine::new(Reference::new(Heap), &weights)?;
    /// let mut session = engine.session(1, 8)?;
    /// session.feed(&mut engine, &[40])?;
    /// let bytes = session.to_bytes(&mut engine)?;
    /// assert_eq!(brt::Session::from_bytes(&mut engine, &bytes, 4)?.tokens_seen(), 1);
    ///
    /// let mut other = weights.clone();
    /// if let WeightBuffer::F16(values) = other.buffer_mut() {
    ///     values[0] = -values[0] + brt_core::half::f16::ONE;
    /// }
    /// let mut other = Engine::new(Reference::new(Heap), &other)?;
    /// assert!(brt::Session::from_bytes(&mut other, &bytes, 4).is_err());
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn from_bytes(engine: &mut Engine<K>, bytes: &[u8], chunk: usize) -> Result<Session<K>> {
        let fail = |m: String| Error::Invalid(m);
        let (tensors, meta) =
            crate::format::parse_safetensors(bytes).map_err(|e| fail(format!("not a brt session file: {e}")))?;
        let get = |key: &str| meta.get(key).ok_or_else(|| fail(format!("not a brt session file (no `{key}`)")));
        if get("format")? != file::FORMAT {
            return Err(fail("not a brt session file".into()));
        }
        let version = get("format_version")?;
        if version != file::VERSION {
            return Err(fail(format!("session format version {version}; this brt reads version {}", file::VERSION)));
        }
        let config = ConfigFile::parse(get("config")?).map_err(|e| fail(format!("session configuration: {e}")))?;
        if &config != engine.config() {
            return Err(fail("the session was made with a model of another configuration".into()));
        }
        if get("model_fingerprint")? != &format!("{:016x}", engine.fingerprint) {
            return Err(fail("the session was made with other model weights (fingerprints differ)".into()));
        }
        let number = |key: &str| -> Result<u64> {
            get(key)?.parse::<u64>().map_err(|_| fail(format!("`{key}` is not a number")))
        };
        let batch = usize::try_from(number("batch")?).map_err(|_| fail("`batch` is too large".into()))?;
        let position = usize::try_from(number("position_in_block")?).unwrap_or(usize::MAX);
        let tokens_seen = number("tokens_seen")?;
        let has_logits = match get("has_logits")?.as_str() {
            "true" => true,
            "false" => false,
            other => return Err(fail(format!("`has_logits` is `{other}`, not `true` or `false`"))),
        };
        let f32s = |name: &str, len: usize| -> Result<Vec<f32>> {
            let view = tensors.tensor(name).map_err(|_| fail(format!("no `{name}` tensor")))?;
            if view.dtype() != Dtype::F32 || Some(view.data().len()) != len.checked_mul(4) {
                return Err(fail(format!("`{name}` should be {len} f32 values")));
            }
            Ok(view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
        };
        // The plan only computes sizes; the tensors must match them before the
        // session (whose memory grows with the claimed batch) is created.
        let plan = Plan::new(&config, batch, chunk.max(1)).map_err(|e| fail(format!("session: {e}")))?;
        let logits_len =
            batch.checked_mul(config.vocab).ok_or_else(|| fail(format!("`batch` {batch} is too large")))?;
        let last_logits = f32s("last_logits", logits_len)?;
        let state = f32s("state", plan.saved_state_len())?;
        if state.iter().any(|v| !v.is_finite()) {
            return Err(fail("the saved state holds non-finite values".into()));
        }
        let mut session = engine.session(batch, chunk)?;
        session.last_logits = last_logits;
        session.stream.restore(&mut engine.kernels, &state, position).map_err(|e| fail(e.to_string()))?;
        session.tokens_seen = tokens_seen;
        session.has_logits = has_logits;
        Ok(session)
    }
}

impl<G: brt_core::Gradients> Engine<crate::autodiff::Recorder<G>>
where
    Error: From<G::Error>,
{
    /// Back-propagates `seed`, the gradient of the loss with respect to the logits
    /// of `session`'s last call, through what was recorded since
    /// [`Recorder::start`](crate::autodiff::Recorder::start).
    ///
    /// The gradient of one logit with respect to the parameters, on an engine
    /// that records (a small random model of 16 tokens):
    ///
    /// ```
    /// use brt::autodiff::Recorder;
    /// use brt::{Engine, ModelWeights, WeightBuffer};
    /// use brt_core::{Config, Reference, WeightLayout};
    /// use brt_heap::Heap;
    ///
    /// let config = Config::plain(16, 8, 2, 4, 16, 2, 4);
    /// let mut values = vec![0f32; WeightLayout::new(&config)?.len()];
    /// brt_core::init::initialize(&config, 7, &mut values)?;
    /// let weights = ModelWeights::new(config, WeightBuffer::F32(values))?;
    /// let mut engine = Engine::new(Recorder::new(Reference::new(Heap)), &weights)?;
    /// let mut session = engine.session(1, 2)?;
    /// engine.kernels().start();
    /// session.feed(&mut engine, &[3, 4])?;
    /// engine.kernels().stop();
    /// let mut seed = vec![0f32; 2 * 16];
    /// seed[16 + 5] = 1.0; // the logit of token 5 at the second position
    /// engine.backward(&session, &seed)?;
    /// let mut gradient = vec![0f32; weights.buffer().len()];
    /// engine.weight_gradient(&mut gradient)?;
    /// assert!(gradient.iter().any(|&g| g != 0.0));
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn backward(&mut self, session: &Session<crate::autodiff::Recorder<G>>, seed: &[f32]) -> Result<()> {
        self.kernels.backward(self.model.weights(), session.stream.logits(), 0, seed)
    }

    /// The gradient of every parameter after [`Engine::backward`].
    ///
    /// Before any back-propagation the gradient is zero:
    ///
    /// ```
    /// use brt::autodiff::Recorder;
    /// use brt::{Engine, ModelWeights, WeightBuffer};
    /// use brt_core::{Config, Reference, WeightLayout};
    /// use brt_heap::Heap;
    ///
    /// let config = Config::plain(16, 8, 2, 4, 16, 2, 4);
    /// let mut values = vec![0f32; WeightLayout::new(&config)?.len()];
    /// brt_core::init::initialize(&config, 7, &mut values)?;
    /// let weights = ModelWeights::new(config, WeightBuffer::F32(values))?;
    /// let mut engine = Engine::new(Recorder::new(Reference::new(Heap)), &weights)?;
    /// let mut gradient = vec![1f32; weights.buffer().len()];
    /// engine.weight_gradient(&mut gradient)?;
    /// assert!(gradient.iter().all(|&g| g == 0.0));
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn weight_gradient(&mut self, out: &mut [f32]) -> Result<()> {
        self.kernels.weight_gradient(self.model.weights(), out)
    }
}
