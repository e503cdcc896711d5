//! A model on a backend chosen at run time: [`AnyEngine`] and its sessions,
//! built with [`EngineBuilder`].
//!
//! [`Engine`] is generic over its kernels: every call is compiled for the
//! backend, which is what makes it fast, but the backend is then a type chosen
//! when the program is written. [`AnyEngine`] holds one engine of any compiled-in
//! backend and dispatches each call to it (one `match` per call, nothing per
//! token), so a program, or the Python package, can take the backend from a
//! flag or a configuration file.
//!
//! ```
//! use brt::runtime::EngineBuilder;
//! use brt::tokenizer::Tokenizer;
//! use brt::{default_model, BackendKind};
//!
//! let mut engine = EngineBuilder::new().backend(BackendKind::Reference).build(&default_model()?)?;
//! let mut session = engine.session(1, 64)?;
//! let tokens = Tokenizer::Bytes.encode(b"To be")?;
//! engine.feed(&mut session, &tokens)?;
//! let next = session.last_logits(0).expect("logits after a feed");
//! assert_eq!(next.len(), engine.config().vocab);
//! # Ok::<(), brt::Error>(())
//! ```

use crate::backend::{BackendKind, BackendOptions};
use crate::engine::{Engine, LogitsReader, Session, SessionState};
use crate::error::{Error, Result};
use crate::eval::{score_reader, Score};
use crate::generate::{generate_batch, generate_text, GenerateOptions, Generated, RowText, TextGenerator};
use crate::meliad::ImportOptions;
use crate::model_file::{open_model, LoadedModel};
use crate::tokenizer::Tokenizer;
use crate::weights::ModelWeights;
use brt_core::{Config, Reference};
use brt_heap::Heap;
use std::ops::ControlFlow;
use std::path::Path;

/// How to make an [`AnyEngine`]: the backend and its settings.
///
/// A builder names the backend and its settings, then makes engines; here one
/// on the reference backend:
///
/// ```
/// use brt::runtime::EngineBuilder;
/// use brt::BackendKind;
///
/// let builder = EngineBuilder::new().backend(BackendKind::Reference).threads(1);
/// let engine = builder.build(&brt::default_model()?)?;
/// assert_eq!(engine.backend(), BackendKind::Reference);
/// # Ok::<(), brt::Error>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct EngineBuilder {
    backend: BackendKind,
    threads: usize,
    import: ImportOptions,
}

impl Default for EngineBuilder {
    fn default() -> Self {
        EngineBuilder::new()
    }
}

impl EngineBuilder {
    /// The default backend ([`BackendKind::default_kind`]) on every core.
    ///
    /// A builder left as it is makes engines on the default backend:
    ///
    /// ```
    /// use brt::runtime::EngineBuilder;
    /// use brt::BackendKind;
    ///
    /// let engine = EngineBuilder::new().threads(1).build(&brt::default_model()?)?;
    /// assert_eq!(engine.backend(), BackendKind::default_kind());
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn new() -> EngineBuilder {
        EngineBuilder { backend: BackendKind::default_kind(), threads: 0, import: ImportOptions::default() }
    }

    /// Runs on `backend` (it must be compiled in; [`EngineBuilder::build`] says
    /// if it is not).
    ///
    /// The reference backend is always compiled in; a backend this build lacks is
    /// refused by `build` with a message naming the feature to build with:
    ///
    /// ```
    /// use brt::runtime::EngineBuilder;
    /// use brt::BackendKind;
    ///
    /// let weights = brt::default_model()?;
    /// let engine = EngineBuilder::new().backend(BackendKind::Reference).build(&weights)?;
    /// assert_eq!(engine.backend(), BackendKind::Reference);
    /// if !BackendKind::Cuda.is_compiled() {
    ///     let err = EngineBuilder::new().backend(BackendKind::Cuda).build(&weights).unwrap_err();
    ///     assert!(err.to_string().contains("--features cuda"));
    /// }
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn backend(mut self, backend: BackendKind) -> EngineBuilder {
        self.backend = backend;
        self
    }

    /// Worker threads of the CPU backend (0: every core; other backends ignore it).
    ///
    /// The thread count changes the speed, not the model: engines with one and
    /// with two threads predict alike.
    ///
    /// ```
    /// use brt::runtime::EngineBuilder;
    ///
    /// let weights = brt::default_model()?;
    /// let mut predictions = Vec::new();
    /// for threads in [1, 2] {
    ///     let mut engine = EngineBuilder::new().threads(threads).build(&weights)?;
    ///     let mut session = engine.session(1, 4)?;
    ///     engine.feed(&mut session, &[40, 41, 42])?;
    ///     predictions.push(session.last_logits(0).unwrap().to_vec());
    /// }
    /// let difference = brt::compare::largest_difference(&predictions[0], &predictions[1]);
    /// assert!(difference.within(1e-4));
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn threads(mut self, threads: usize) -> EngineBuilder {
        self.threads = threads;
        self
    }

    /// How official Meliad checkpoints are read by [`EngineBuilder::open`].
    ///
    /// For brt's own files only `abs_attention_scale` applies, and it reaches the
    /// engine's configuration:
    ///
    /// ```
    /// use brt::meliad::ImportOptions;
    /// use brt::runtime::EngineBuilder;
    /// use brt::BackendKind;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("model.safetensors");
    /// std::fs::write(&path, brt::default_model::DEFAULT_MODEL)?;
    /// let import = ImportOptions { abs_attention_scale: true, ..Default::default() };
    /// let builder = EngineBuilder::new().backend(BackendKind::Reference).import_options(import);
    /// assert!(builder.open(&path)?.config().abs_attention_scale);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn import_options(mut self, import: ImportOptions) -> EngineBuilder {
        self.import = import;
        self
    }

    /// Opens the model file at `path` (any format brt reads; a deployable GGUF
    /// file is mapped and used in place by the CPU and reference backends).
    ///
    /// A model saved to a file opens as the same model (the built-in model's file
    /// here):
    ///
    /// ```
    /// use brt::runtime::EngineBuilder;
    /// use brt::BackendKind;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("model.safetensors");
    /// std::fs::write(&path, brt::default_model::DEFAULT_MODEL)?;
    /// let engine = EngineBuilder::new().backend(BackendKind::Reference).open(&path)?;
    /// assert_eq!(engine.fingerprint(), brt::engine::fingerprint(&brt::default_model()?));
    /// assert!(EngineBuilder::new().open(&dir.path().join("missing")).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(self, path: &Path) -> Result<AnyEngine> {
        self.load(&open_model(path, self.import)?)
    }

    /// Puts weights in memory on the backend.
    ///
    /// The engine holds the weights' model: its configuration and fingerprint:
    ///
    /// ```
    /// use brt::runtime::EngineBuilder;
    /// use brt::BackendKind;
    ///
    /// let weights = brt::default_model()?;
    /// let engine = EngineBuilder::new().backend(BackendKind::Reference).build(&weights)?;
    /// assert_eq!(engine.config(), weights.config());
    /// assert_eq!(engine.fingerprint(), brt::engine::fingerprint(&weights));
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn build(self, weights: &ModelWeights) -> Result<AnyEngine> {
        self.load(&LoadedModel::InMemory(weights.clone()))
    }

    /// Puts a loaded model on the backend.
    ///
    /// A [`LoadedModel`] in memory loads as `build` would load its weights:
    ///
    /// ```
    /// use brt::model_file::LoadedModel;
    /// use brt::runtime::EngineBuilder;
    /// use brt::BackendKind;
    ///
    /// let model = LoadedModel::InMemory(brt::default_model()?);
    /// let engine = EngineBuilder::new().backend(BackendKind::Reference).load(&model)?;
    /// assert_eq!(engine.config(), model.config());
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn load(self, model: &LoadedModel) -> Result<AnyEngine> {
        // Only the CPU backend reads the options.
        let options = BackendOptions::for_config(model.config(), self.threads);
        #[cfg(not(feature = "cpu"))]
        let _ = options;
        match self.backend {
            BackendKind::Reference => Ok(AnyEngine::Reference(Engine::load(Reference::new(Heap), model)?)),
            #[cfg(feature = "cpu")]
            BackendKind::Cpu => Ok(AnyEngine::Cpu(Engine::load(options.cpu()?, model)?)),
            #[cfg(feature = "wgpu")]
            BackendKind::Wgpu => Ok(AnyEngine::Wgpu(Engine::load(brt_wgpu::Wgpu::new()?, model)?)),
            #[cfg(feature = "cuda")]
            BackendKind::Cuda => Ok(AnyEngine::Cuda(Engine::load(brt_cuda::Cuda::new()?, model)?)),
            #[allow(unreachable_patterns)] // every backend may be compiled in
            other => crate::backend::not_compiled(other),
        }
    }
}

/// An [`Engine`] on a backend chosen at run time.
///
/// The variant is the backend, and holds the generic [`Engine`]:
///
/// ```
/// use brt::runtime::{AnyEngine, EngineBuilder};
/// use brt::BackendKind;
///
/// let engine = EngineBuilder::new().backend(BackendKind::Reference).build(&brt::default_model()?)?;
/// let AnyEngine::Reference(inner) = &engine else { panic!("not the reference backend") };
/// assert_eq!(inner.config(), engine.config());
/// # Ok::<(), brt::Error>(())
/// ```
#[allow(clippy::large_enum_variant)] // one per program; boxing would only add an indirection
pub enum AnyEngine {
    /// The scalar reference kernels.
    Reference(Engine<Reference<Heap>>),
    /// The SIMD CPU backend.
    #[cfg(feature = "cpu")]
    Cpu(Engine<brt_cpu::Cpu<Heap>>),
    /// GPUs through wgpu.
    #[cfg(feature = "wgpu")]
    Wgpu(Engine<brt_wgpu::Wgpu>),
    /// NVIDIA GPUs through CUDA.
    #[cfg(feature = "cuda")]
    Cuda(Engine<brt_cuda::Cuda>),
}

/// A [`Session`] of an [`AnyEngine`] (on the same backend).
///
/// A session's variant is its engine's, and holds the generic [`Session`];
/// a session belongs to its backend, and an engine of another backend refuses it:
///
/// ```
/// use brt::runtime::{AnySession, EngineBuilder};
/// use brt::BackendKind;
///
/// let weights = brt::default_model()?;
/// let mut engine = EngineBuilder::new().backend(BackendKind::Reference).build(&weights)?;
/// let mut session = engine.session(1, 4)?;
/// assert!(matches!(session, AnySession::Reference(_)));
/// if BackendKind::default_kind() != BackendKind::Reference {
///     let mut other = EngineBuilder::new().build(&weights)?;
///     assert!(other.feed(&mut session, &[40]).is_err());
/// }
/// # Ok::<(), brt::Error>(())
/// ```
#[allow(clippy::large_enum_variant)] // a few per program; boxing would only add an indirection
pub enum AnySession {
    /// Of the reference backend.
    Reference(Session<Reference<Heap>>),
    /// Of the CPU backend.
    #[cfg(feature = "cpu")]
    Cpu(Session<brt_cpu::Cpu<Heap>>),
    /// Of the wgpu backend.
    #[cfg(feature = "wgpu")]
    Wgpu(Session<brt_wgpu::Wgpu>),
    /// Of the CUDA backend.
    #[cfg(feature = "cuda")]
    Cuda(Session<brt_cuda::Cuda>),
}

/// Runs `$body` with `$e` bound to the engine inside `$engine`, wrapping a
/// session it returns in the same variant when `=> wrap` is given.
macro_rules! on_engine {
    ($engine:expr, $e:ident => $body:expr) => {
        match $engine {
            AnyEngine::Reference($e) => $body,
            #[cfg(feature = "cpu")]
            AnyEngine::Cpu($e) => $body,
            #[cfg(feature = "wgpu")]
            AnyEngine::Wgpu($e) => $body,
            #[cfg(feature = "cuda")]
            AnyEngine::Cuda($e) => $body,
        }
    };
    ($engine:expr, $e:ident => wrap $body:expr) => {
        match $engine {
            AnyEngine::Reference($e) => AnySession::Reference($body),
            #[cfg(feature = "cpu")]
            AnyEngine::Cpu($e) => AnySession::Cpu($body),
            #[cfg(feature = "wgpu")]
            AnyEngine::Wgpu($e) => AnySession::Wgpu($body),
            #[cfg(feature = "cuda")]
            AnyEngine::Cuda($e) => AnySession::Cuda($body),
        }
    };
}

/// Runs `$body` with the engine and session of one backend, or fails if the
/// session belongs to another backend.
macro_rules! on_pair {
    ($engine:expr, $session:expr, $e:ident, $s:ident => $body:expr) => {
        match ($engine, $session) {
            (AnyEngine::Reference($e), AnySession::Reference($s)) => $body,
            #[cfg(feature = "cpu")]
            (AnyEngine::Cpu($e), AnySession::Cpu($s)) => $body,
            #[cfg(feature = "wgpu")]
            (AnyEngine::Wgpu($e), AnySession::Wgpu($s)) => $body,
            #[cfg(feature = "cuda")]
            (AnyEngine::Cuda($e), AnySession::Cuda($s)) => $body,
            #[allow(unreachable_patterns)] // with one backend compiled in, every pair matches
            (engine, session) => Err(Error::Invalid(format!(
                "this session was made on the {} backend, not on this engine's {}",
                session.backend(),
                engine.backend()
            ))),
        }
    };
}

macro_rules! on_session {
    ($session:expr, $s:ident => $body:expr) => {
        match $session {
            AnySession::Reference($s) => $body,
            #[cfg(feature = "cpu")]
            AnySession::Cpu($s) => $body,
            #[cfg(feature = "wgpu")]
            AnySession::Wgpu($s) => $body,
            #[cfg(feature = "cuda")]
            AnySession::Cuda($s) => $body,
        }
    };
}

impl std::fmt::Debug for AnyEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        on_engine!(self, e => f.debug_tuple("AnyEngine").field(&self.backend()).field(e).finish())
    }
}

impl std::fmt::Debug for AnySession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        on_session!(self, s => f.debug_tuple("AnySession").field(&self.backend()).field(s).finish())
    }
}

impl AnyEngine {
    /// The backend it runs on.
    ///
    /// The engine's backend, by the name the command line uses:
    ///
    /// ```
    /// # use brt::runtime::EngineBuilder;
    /// # use brt::BackendKind;
    /// # let mut engine = EngineBuilder::new().backend(BackendKind::Reference).build(&brt::default_model()?)?;
    /// assert_eq!(engine.backend().to_string(), "reference");
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn backend(&self) -> BackendKind {
        match self {
            AnyEngine::Reference(_) => BackendKind::Reference,
            #[cfg(feature = "cpu")]
            AnyEngine::Cpu(_) => BackendKind::Cpu,
            #[cfg(feature = "wgpu")]
            AnyEngine::Wgpu(_) => BackendKind::Wgpu,
            #[cfg(feature = "cuda")]
            AnyEngine::Cuda(_) => BackendKind::Cuda,
        }
    }

    /// The model's configuration.
    ///
    /// The built-in model reads bytes (260 ids):
    ///
    /// ```
    /// # use brt::runtime::EngineBuilder;
    /// # use brt::BackendKind;
    /// # let mut engine = EngineBuilder::new().backend(BackendKind::Reference).build(&brt::default_model()?)?;
    /// assert_eq!(engine.config().vocab, 260);
    /// assert_eq!(engine.config(), brt::default_model()?.config());
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn config(&self) -> &Config {
        on_engine!(self, e => e.config())
    }

    /// The model's fingerprint ([`crate::engine::fingerprint`]).
    ///
    /// The fingerprint names the model, whatever the backend:
    ///
    /// ```
    /// use brt::runtime::EngineBuilder;
    /// use brt::BackendKind;
    ///
    /// let weights = brt::default_model()?;
    /// let reference = EngineBuilder::new().backend(BackendKind::Reference).build(&weights)?;
    /// let default = EngineBuilder::new().threads(1).build(&weights)?;
    /// assert_eq!(reference.fingerprint(), default.fingerprint());
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn fingerprint(&self) -> u64 {
        on_engine!(self, e => e.fingerprint())
    }

    /// A new session of `batch` documents fed at most `chunk` tokens per row per
    /// call (see [`Engine::session`]).
    ///
    /// A new session has read nothing:
    ///
    /// ```
    /// # use brt::runtime::EngineBuilder;
    /// # use brt::BackendKind;
    /// # let mut engine = EngineBuilder::new().backend(BackendKind::Reference).build(&brt::default_model()?)?;
    /// let session = engine.session(2, 16)?;
    /// assert_eq!((session.batch(), session.chunk(), session.tokens_seen()), (2, 16, 0));
    /// assert!(session.last_logits(0).is_none());
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn session(&mut self, batch: usize, chunk: usize) -> Result<AnySession> {
        Ok(on_engine!(self, e => wrap e.session(batch, chunk)?))
    }

    /// Restores a session from the bytes of a session file (made on any backend;
    /// see [`Session::from_bytes`]).
    ///
    /// A session restored from its bytes continues where it was:
    ///
    /// ```
    /// # use brt::runtime::EngineBuilder;
    /// # use brt::BackendKind;
    /// # let mut engine = EngineBuilder::new().backend(BackendKind::Reference).build(&brt::default_model()?)?;
    /// let mut session = engine.session(1, 8)?;
    /// engine.feed(&mut session, &[40, 41, 42])?;
    /// let bytes = engine.session_bytes(&session)?;
    /// let restored = engine.session_from_bytes(&bytes, 8)?;
    /// assert_eq!(restored.tokens_seen(), 3);
    /// assert_eq!(restored.last_logits(0), session.last_logits(0));
    /// assert!(engine.session_from_bytes(b"not a session", 8).is_err());
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn session_from_bytes(&mut self, bytes: &[u8], chunk: usize) -> Result<AnySession> {
        Ok(on_engine!(self, e => wrap Session::from_bytes(e, bytes, chunk)?))
    }

    /// Restores a session saved to `path` (see [`Session::load`]).
    ///
    /// A session saved with [`AnyEngine::save_session`] loads back:
    ///
    /// ```
    /// # use brt::runtime::EngineBuilder;
    /// # use brt::BackendKind;
    /// # let mut engine = EngineBuilder::new().backend(BackendKind::Reference).build(&brt::default_model()?)?;
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("session.safetensors");
    /// let mut session = engine.session(1, 8)?;
    /// engine.feed(&mut session, &[40, 41])?;
    /// engine.save_session(&session, &path)?;
    /// let loaded = engine.load_session(&path, 8)?;
    /// assert_eq!(loaded.tokens_seen(), 2);
    /// assert_eq!(loaded.last_logits(0), session.last_logits(0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn load_session(&mut self, path: &Path, chunk: usize) -> Result<AnySession> {
        Ok(on_engine!(self, e => wrap Session::load(e, path, chunk)?))
    }

    /// Feeds one document's tokens (batch 1); see [`Session::feed`].
    ///
    /// Feeding counts the tokens and keeps the prediction of the next one; an id
    /// outside the vocabulary is refused:
    ///
    /// ```
    /// # use brt::runtime::EngineBuilder;
    /// # use brt::BackendKind;
    /// # let mut engine = EngineBuilder::new().backend(BackendKind::Reference).build(&brt::default_model()?)?;
    /// let mut session = engine.session(1, 8)?;
    /// engine.feed(&mut session, &[40, 41, 42, 43, 44])?;
    /// assert_eq!(session.tokens_seen(), 5);
    /// assert_eq!(session.last_logits(0).unwrap().len(), 260);
    /// assert!(engine.feed(&mut session, &[260]).is_err());
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn feed(&mut self, session: &mut AnySession, tokens: &[u32]) -> Result<()> {
        on_pair!(self, session, e, s => s.feed(e, tokens))
    }

    /// Feeds one slice of tokens per row; see [`Session::feed_rows`].
    ///
    /// Two documents side by side, the first starting afresh; the reader gets
    /// position-major logits, 3 positions of 2 rows here:
    ///
    /// ```
    /// # use brt::runtime::EngineBuilder;
    /// # use brt::BackendKind;
    /// # let mut engine = EngineBuilder::new().backend(BackendKind::Reference).build(&brt::default_model()?)?;
    /// let mut session = engine.session(2, 8)?;
    /// let mut positions = 0;
    /// let mut reader = |_start: usize, logits: &[f32]| {
    ///     positions += logits.len() / (2 * 260);
    ///     Ok(())
    /// };
    /// engine.feed_rows(&mut session, &[&[40, 41, 42], &[50, 51, 52]], &[true, false], Some(&mut reader))?;
    /// assert_eq!(positions, 3);
    /// assert!(session.last_logits(1).is_some());
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn feed_rows(
        &mut self,
        session: &mut AnySession,
        rows: &[&[u32]],
        resets: &[bool],
        on_logits: Option<&mut LogitsReader<'_>>,
    ) -> Result<()> {
        on_pair!(self, session, e, s => s.feed_rows(e, rows, resets, on_logits))
    }

    /// Feeds `rows` (one slice per batch row, all the same length `T`) and
    /// returns every position's logits, row-major: `(B, T, V)`.
    ///
    /// Every position's logits; the last position of a row is its prediction:
    ///
    /// ```
    /// # use brt::runtime::EngineBuilder;
    /// # use brt::BackendKind;
    /// # let mut engine = EngineBuilder::new().backend(BackendKind::Reference).build(&brt::default_model()?)?;
    /// let mut session = engine.session(2, 8)?;
    /// let logits = engine.logits(&mut session, &[&[40, 41, 42], &[50, 51, 52]])?;
    /// assert_eq!(logits.len(), 2 * 3 * 260);
    /// assert_eq!(&logits[2 * 260..3 * 260], session.last_logits(0).unwrap());
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn logits(&mut self, session: &mut AnySession, rows: &[&[u32]]) -> Result<Vec<f32>> {
        let (batch, vocab) = (rows.len(), self.config().vocab);
        let len = rows.first().map_or(0, |r| r.len());
        let size = batch
            .checked_mul(len)
            .and_then(|n| n.checked_mul(vocab))
            .ok_or_else(|| Error::Invalid(format!("{batch} x {len} x {vocab} logits do not fit in memory")))?;
        let mut out = vec![0f32; size];
        let mut reader = |start: usize, logits: &[f32]| {
            // `logits` is position-major: (t, b) rows of V.
            for (i, row) in logits.chunks_exact(vocab).enumerate() {
                let (t, b) = (start + i / batch, i % batch);
                let at = (b * len + t) * vocab;
                out[at..at + vocab].copy_from_slice(row);
            }
            Ok(())
        };
        self.feed_rows(session, rows, &[], Some(&mut reader))?;
        Ok(out)
    }

    /// Starts a new document in every row of `session`.
    ///
    /// After a reset there is no prediction until the next feed; the count of
    /// tokens seen goes on:
    ///
    /// ```
    /// # use brt::runtime::EngineBuilder;
    /// # use brt::BackendKind;
    /// # let mut engine = EngineBuilder::new().backend(BackendKind::Reference).build(&brt::default_model()?)?;
    /// let mut session = engine.session(1, 8)?;
    /// engine.feed(&mut session, &[40, 41])?;
    /// engine.reset(&mut session)?;
    /// assert!(session.last_logits(0).is_none());
    /// assert_eq!(session.tokens_seen(), 2);
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn reset(&mut self, session: &mut AnySession) -> Result<()> {
        on_pair!(self, session, e, s => s.reset(e))
    }

    /// Copies `session`'s carried state to the host (see [`Session::export`]).
    ///
    /// The exported state holds the tokens seen and the last logits:
    ///
    /// ```
    /// # use brt::runtime::EngineBuilder;
    /// # use brt::BackendKind;
    /// # let mut engine = EngineBuilder::new().backend(BackendKind::Reference).build(&brt::default_model()?)?;
    /// let mut session = engine.session(1, 8)?;
    /// engine.feed(&mut session, &[40, 41, 42])?;
    /// let state = engine.export(&session)?;
    /// assert_eq!(state.tokens_seen, 3);
    /// assert_eq!(state.last_logits.as_deref(), session.last_logits(0));
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn export(&mut self, session: &AnySession) -> Result<SessionState> {
        on_pair!(self, session, e, s => s.export(e))
    }

    /// Replaces `session`'s carried state (see [`Session::import`]).
    ///
    /// Importing a state exported earlier undoes what was fed since:
    ///
    /// ```
    /// # use brt::runtime::EngineBuilder;
    /// # use brt::BackendKind;
    /// # let mut engine = EngineBuilder::new().backend(BackendKind::Reference).build(&brt::default_model()?)?;
    /// let mut session = engine.session(1, 8)?;
    /// engine.feed(&mut session, &[40, 41])?;
    /// let saved = engine.export(&session)?;
    /// let before = session.last_logits(0).unwrap().to_vec();
    /// engine.feed(&mut session, &[42])?;
    /// engine.import(&mut session, &saved)?;
    /// assert_eq!(session.tokens_seen(), 2);
    /// assert_eq!(session.last_logits(0).unwrap(), &before[..]);
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn import(&mut self, session: &mut AnySession, saved: &SessionState) -> Result<()> {
        on_pair!(self, session, e, s => s.import(e, saved))
    }

    /// The bytes of `session`'s session file (see [`Session::to_bytes`]).
    ///
    /// The bytes restore on any backend: a session of the reference backend
    /// continues on the default one:
    ///
    /// ```
    /// use brt::runtime::EngineBuilder;
    /// use brt::BackendKind;
    ///
    /// let weights = brt::default_model()?;
    /// let mut reference = EngineBuilder::new().backend(BackendKind::Reference).build(&weights)?;
    /// let mut session = reference.session(1, 8)?;
    /// reference.feed(&mut session, &[40, 41, 42])?;
    /// let bytes = reference.session_bytes(&session)?;
    /// let mut default = EngineBuilder::new().threads(1).build(&weights)?;
    /// let moved = default.session_from_bytes(&bytes, 8)?;
    /// assert_eq!(moved.backend(), BackendKind::default_kind());
    /// assert_eq!(moved.tokens_seen(), 3);
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn session_bytes(&mut self, session: &AnySession) -> Result<Vec<u8>> {
        on_pair!(self, session, e, s => s.to_bytes(e))
    }

    /// Saves `session` to `path`, atomically (see [`Session::save`]).
    ///
    /// The file holds the session, which reads back from its bytes:
    ///
    /// ```
    /// # use brt::runtime::EngineBuilder;
    /// # use brt::BackendKind;
    /// # let mut engine = EngineBuilder::new().backend(BackendKind::Reference).build(&brt::default_model()?)?;
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("session.safetensors");
    /// let mut session = engine.session(1, 8)?;
    /// engine.feed(&mut session, &[40])?;
    /// engine.save_session(&session, &path)?;
    /// let restored = engine.session_from_bytes(&std::fs::read(&path)?, 8)?;
    /// assert_eq!(restored.last_logits(0), session.last_logits(0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn save_session(&mut self, session: &AnySession, path: &Path) -> Result<()> {
        on_pair!(self, session, e, s => s.save(e, path))
    }

    /// Continues `prompt` in `session` (batch 1) as text; see
    /// [`crate::generate::generate_text`].
    ///
    /// The pieces given to `on_text` make up the text returned (greedy choice
    /// here, at most 4 tokens):
    ///
    /// ```
    /// use brt::generate::{Finish, GenerateOptions};
    /// use brt::sample::SamplingOptions;
    /// use brt::tokenizer::Tokenizer;
    /// use std::ops::ControlFlow;
    /// # use brt::runtime::EngineBuilder;
    /// # use brt::BackendKind;
    /// # let mut engine = EngineBuilder::new().backend(BackendKind::Reference).build(&brt::default_model()?)?;
    ///
    /// let tokenizer = Tokenizer::Bytes;
    /// let options = GenerateOptions {
    ///     max_tokens: 4,
    ///     sampling: SamplingOptions { temperature: 0.0, ..Default::default() },
    ///     ..Default::default()
    /// };
    /// let mut session = engine.session(1, 8)?;
    /// let prompt = tokenizer.encode(b"ROMEO:")?;
    /// let mut shown = Vec::new();
    /// let generated = engine.generate_text(&mut session, &tokenizer, &prompt, &options, &mut |piece| {
    ///     shown.extend_from_slice(piece);
    ///     Ok(ControlFlow::Continue(()))
    /// })?;
    /// assert_eq!(shown, generated.text);
    /// assert!(generated.tokens.len() <= 4);
    /// assert!(generated.finish == Finish::Length || generated.finish == Finish::EndOfSequence);
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn generate_text(
        &mut self,
        session: &mut AnySession,
        tokenizer: &Tokenizer,
        prompt: &[u32],
        options: &GenerateOptions,
        on_text: &mut dyn FnMut(&[u8]) -> Result<ControlFlow<()>>,
    ) -> Result<Generated> {
        on_pair!(self, session, e, s => generate_text(e, s, tokenizer, prompt, options, on_text))
    }

    /// Continues several prompts at once, one per row of `session`; see
    /// [`crate::generate::generate_batch`].
    ///
    /// Two prompts of different lengths, one result each:
    ///
    /// ```
    /// use brt::generate::GenerateOptions;
    /// use brt::tokenizer::Tokenizer;
    /// use std::ops::ControlFlow;
    /// # use brt::runtime::EngineBuilder;
    /// # use brt::BackendKind;
    /// # let mut engine = EngineBuilder::new().backend(BackendKind::Reference).build(&brt::default_model()?)?;
    ///
    /// let tokenizer = Tokenizer::Bytes;
    /// let prompts = vec![tokenizer.encode(b"To be")?, tokenizer.encode(b"ROMEO:")?];
    /// let options = GenerateOptions { max_tokens: 3, ..Default::default() };
    /// let mut session = engine.session(2, 8)?;
    /// let mut rows_shown = [0, 0];
    /// let generated = engine.generate_batch(&mut session, &tokenizer, &prompts, &options, &mut |row, piece| {
    ///     rows_shown[row] += piece.len();
    ///     Ok(ControlFlow::Continue(()))
    /// })?;
    /// assert_eq!(generated.len(), 2);
    /// assert_eq!(rows_shown, [generated[0].text.len(), generated[1].text.len()]);
    /// assert!(generated.iter().all(|g| g.tokens.len() <= 3));
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn generate_batch(
        &mut self,
        session: &mut AnySession,
        tokenizer: &Tokenizer,
        prompts: &[Vec<u32>],
        options: &GenerateOptions,
        on_text: &mut RowText<'_>,
    ) -> Result<Vec<Generated>> {
        on_pair!(self, session, e, s => generate_batch(e, s, tokenizer, prompts, options, on_text))
    }

    /// Feeds `prompt` to start `generator` (see [`TextGenerator::start`]).
    ///
    /// Starting feeds the prompt to the session:
    ///
    /// ```
    /// use brt::generate::{GenerateOptions, TextGenerator};
    /// # use brt::runtime::EngineBuilder;
    /// # use brt::BackendKind;
    /// # let mut engine = EngineBuilder::new().backend(BackendKind::Reference).build(&brt::default_model()?)?;
    /// let mut session = engine.session(1, 8)?;
    /// let mut generator = TextGenerator::new(&GenerateOptions::default())?;
    /// engine.start_generation(&mut session, &mut generator, &[40, 41, 42])?;
    /// assert_eq!(session.tokens_seen(), 3);
    /// assert!(generator.tokens().is_empty());
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn start_generation(
        &mut self,
        session: &mut AnySession,
        generator: &mut TextGenerator,
        prompt: &[u32],
    ) -> Result<()> {
        on_pair!(self, session, e, s => generator.start(e, s, prompt))
    }

    /// One step of `generator` (see [`TextGenerator::step`]).
    ///
    /// Steps until the generator ends (after at most 3 tokens here):
    ///
    /// ```
    /// use brt::generate::{Finish, GenerateOptions, TextGenerator};
    /// use brt::tokenizer::Tokenizer;
    /// # use brt::runtime::EngineBuilder;
    /// # use brt::BackendKind;
    /// # let mut engine = EngineBuilder::new().backend(BackendKind::Reference).build(&brt::default_model()?)?;
    /// let mut session = engine.session(1, 8)?;
    /// let mut generator = TextGenerator::new(&GenerateOptions { max_tokens: 3, ..Default::default() })?;
    /// engine.start_generation(&mut session, &mut generator, &[40, 41, 42])?;
    /// while let Some(_piece) = engine.generation_step(&mut session, &mut generator, &Tokenizer::Bytes)? {}
    /// assert!(generator.tokens().len() <= 3);
    /// assert!(matches!(generator.finish(), Some(Finish::Length | Finish::EndOfSequence)));
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn generation_step(
        &mut self,
        session: &mut AnySession,
        generator: &mut TextGenerator,
        tokenizer: &Tokenizer,
    ) -> Result<Option<Vec<u8>>> {
        on_pair!(self, session, e, s => generator.step(e, s, tokenizer))
    }

    /// Scores `text` as one document in a fresh session fed `chunk` tokens per
    /// call (see [`crate::eval::score_file`]); `beyond` as there.
    ///
    /// Every byte after the first is predicted; `beyond` counts those from a
    /// position on:
    ///
    /// ```
    /// use brt::tokenizer::Tokenizer;
    /// # use brt::runtime::EngineBuilder;
    /// # use brt::BackendKind;
    /// # let mut engine = EngineBuilder::new().backend(BackendKind::Reference).build(&brt::default_model()?)?;
    /// let text = b"To be, or not to be";
    /// let score = engine.score(&Tokenizer::Bytes, text, &[4], 8)?;
    /// assert_eq!(score.predictions, text.len() as u64 - 1);
    /// assert_eq!(score.beyond[0].predictions, text.len() as u64 - 4);
    /// assert!(score.bits_per_byte(true) > 0.0 && score.bits_per_byte(true).is_finite());
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn score(&mut self, tokenizer: &Tokenizer, text: &[u8], beyond: &[u64], chunk: usize) -> Result<Score> {
        let mut session = self.session(1, chunk)?;
        let mut reader = text;
        on_pair!(self, &mut session, e, s => score_reader(e, s, tokenizer, &mut reader, Path::new("the text"), beyond, &mut |_| {}))
    }
}

impl AnySession {
    /// The backend of the engine it belongs to.
    ///
    /// A session is on its engine's backend:
    ///
    /// ```
    /// # use brt::runtime::EngineBuilder;
    /// # use brt::BackendKind;
    /// # let mut engine = EngineBuilder::new().backend(BackendKind::Reference).build(&brt::default_model()?)?;
    /// let session = engine.session(1, 4)?;
    /// assert_eq!(session.backend(), engine.backend());
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn backend(&self) -> BackendKind {
        match self {
            AnySession::Reference(_) => BackendKind::Reference,
            #[cfg(feature = "cpu")]
            AnySession::Cpu(_) => BackendKind::Cpu,
            #[cfg(feature = "wgpu")]
            AnySession::Wgpu(_) => BackendKind::Wgpu,
            #[cfg(feature = "cuda")]
            AnySession::Cuda(_) => BackendKind::Cuda,
        }
    }

    /// Documents fed side by side.
    ///
    /// The batch the session was made with:
    ///
    /// ```
    /// # use brt::runtime::EngineBuilder;
    /// # use brt::BackendKind;
    /// # let mut engine = EngineBuilder::new().backend(BackendKind::Reference).build(&brt::default_model()?)?;
    /// assert_eq!(engine.session(3, 4)?.batch(), 3);
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn batch(&self) -> usize {
        on_session!(self, s => s.batch())
    }

    /// Most tokens per row per call.
    ///
    /// The chunk the session was made with; longer feeds are split into calls of
    /// at most this many tokens:
    ///
    /// ```
    /// # use brt::runtime::EngineBuilder;
    /// # use brt::BackendKind;
    /// # let mut engine = EngineBuilder::new().backend(BackendKind::Reference).build(&brt::default_model()?)?;
    /// let mut session = engine.session(1, 2)?;
    /// assert_eq!(session.chunk(), 2);
    /// engine.feed(&mut session, &[40, 41, 42, 43, 44])?;
    /// assert_eq!(session.tokens_seen(), 5);
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn chunk(&self) -> usize {
        on_session!(self, s => s.chunk())
    }

    /// Tokens fed to each row so far.
    ///
    /// Each row of a batch counts the same tokens:
    ///
    /// ```
    /// # use brt::runtime::EngineBuilder;
    /// # use brt::BackendKind;
    /// # let mut engine = EngineBuilder::new().backend(BackendKind::Reference).build(&brt::default_model()?)?;
    /// let mut session = engine.session(2, 4)?;
    /// engine.feed_rows(&mut session, &[&[40, 41], &[50, 51]], &[], None)?;
    /// assert_eq!(session.tokens_seen(), 2);
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn tokens_seen(&self) -> u64 {
        on_session!(self, s => s.tokens_seen())
    }

    /// The logits of the last position fed to `row`, or `None` before anything
    /// was fed (see [`Session::last_logits`]).
    ///
    /// `None` before any feed and for a row past the batch:
    ///
    /// ```
    /// # use brt::runtime::EngineBuilder;
    /// # use brt::BackendKind;
    /// # let mut engine = EngineBuilder::new().backend(BackendKind::Reference).build(&brt::default_model()?)?;
    /// let mut session = engine.session(1, 4)?;
    /// assert!(session.last_logits(0).is_none());
    /// engine.feed(&mut session, &[40])?;
    /// assert_eq!(session.last_logits(0).map(<[f32]>::len), Some(260));
    /// assert!(session.last_logits(1).is_none());
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn last_logits(&self, row: usize) -> Option<&[f32]> {
        on_session!(self, s => s.last_logits(row))
    }
}
