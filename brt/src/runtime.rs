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
    pub fn new() -> EngineBuilder {
        EngineBuilder { backend: BackendKind::default_kind(), threads: 0, import: ImportOptions::default() }
    }

    /// Runs on `backend` (it must be compiled in; [`EngineBuilder::build`] says
    /// if it is not).
    pub fn backend(mut self, backend: BackendKind) -> EngineBuilder {
        self.backend = backend;
        self
    }

    /// Worker threads of the CPU backend (0: every core; other backends ignore it).
    pub fn threads(mut self, threads: usize) -> EngineBuilder {
        self.threads = threads;
        self
    }

    /// How official Meliad checkpoints are read by [`EngineBuilder::open`].
    pub fn import_options(mut self, import: ImportOptions) -> EngineBuilder {
        self.import = import;
        self
    }

    /// Opens the model file at `path` (any format brt reads; a deployable GGUF
    /// file is mapped and used in place by the CPU and reference backends).
    pub fn open(self, path: &Path) -> Result<AnyEngine> {
        self.load(&open_model(path, self.import)?)
    }

    /// Puts weights in memory on the backend.
    pub fn build(self, weights: &ModelWeights) -> Result<AnyEngine> {
        self.load(&LoadedModel::InMemory(weights.clone()))
    }

    /// Puts a loaded model on the backend.
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
    pub fn config(&self) -> &Config {
        on_engine!(self, e => e.config())
    }

    /// The model's fingerprint ([`crate::engine::fingerprint`]).
    pub fn fingerprint(&self) -> u64 {
        on_engine!(self, e => e.fingerprint())
    }

    /// A new session of `batch` documents fed at most `chunk` tokens per row per
    /// call (see [`Engine::session`]).
    pub fn session(&mut self, batch: usize, chunk: usize) -> Result<AnySession> {
        Ok(on_engine!(self, e => wrap e.session(batch, chunk)?))
    }

    /// Restores a session from the bytes of a session file (made on any backend;
    /// see [`Session::from_bytes`]).
    pub fn session_from_bytes(&mut self, bytes: &[u8], chunk: usize) -> Result<AnySession> {
        Ok(on_engine!(self, e => wrap Session::from_bytes(e, bytes, chunk)?))
    }

    /// Restores a session saved to `path` (see [`Session::load`]).
    pub fn load_session(&mut self, path: &Path, chunk: usize) -> Result<AnySession> {
        Ok(on_engine!(self, e => wrap Session::load(e, path, chunk)?))
    }

    /// Feeds one document's tokens (batch 1); see [`Session::feed`].
    pub fn feed(&mut self, session: &mut AnySession, tokens: &[u32]) -> Result<()> {
        on_pair!(self, session, e, s => s.feed(e, tokens))
    }

    /// Feeds one slice of tokens per row; see [`Session::feed_rows`].
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
    pub fn reset(&mut self, session: &mut AnySession) -> Result<()> {
        on_pair!(self, session, e, s => s.reset(e))
    }

    /// Copies `session`'s carried state to the host (see [`Session::export`]).
    pub fn export(&mut self, session: &AnySession) -> Result<SessionState> {
        on_pair!(self, session, e, s => s.export(e))
    }

    /// Replaces `session`'s carried state (see [`Session::import`]).
    pub fn import(&mut self, session: &mut AnySession, saved: &SessionState) -> Result<()> {
        on_pair!(self, session, e, s => s.import(e, saved))
    }

    /// The bytes of `session`'s session file (see [`Session::to_bytes`]).
    pub fn session_bytes(&mut self, session: &AnySession) -> Result<Vec<u8>> {
        on_pair!(self, session, e, s => s.to_bytes(e))
    }

    /// Saves `session` to `path`, atomically (see [`Session::save`]).
    pub fn save_session(&mut self, session: &AnySession, path: &Path) -> Result<()> {
        on_pair!(self, session, e, s => s.save(e, path))
    }

    /// Continues `prompt` in `session` (batch 1) as text; see
    /// [`crate::generate::generate_text`].
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
    pub fn start_generation(
        &mut self,
        session: &mut AnySession,
        generator: &mut TextGenerator,
        prompt: &[u32],
    ) -> Result<()> {
        on_pair!(self, session, e, s => generator.start(e, s, prompt))
    }

    /// One step of `generator` (see [`TextGenerator::step`]).
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
    pub fn score(&mut self, tokenizer: &Tokenizer, text: &[u8], beyond: &[u64], chunk: usize) -> Result<Score> {
        let mut session = self.session(1, chunk)?;
        let mut reader = text;
        on_pair!(self, &mut session, e, s => score_reader(e, s, tokenizer, &mut reader, Path::new("the text"), beyond, &mut |_| {}))
    }
}

impl AnySession {
    /// The backend of the engine it belongs to.
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
    pub fn batch(&self) -> usize {
        on_session!(self, s => s.batch())
    }

    /// Most tokens per row per call.
    pub fn chunk(&self) -> usize {
        on_session!(self, s => s.chunk())
    }

    /// Tokens fed to each row so far.
    pub fn tokens_seen(&self) -> u64 {
        on_session!(self, s => s.tokens_seen())
    }

    /// The logits of the last position fed to `row`, or `None` before anything
    /// was fed (see [`Session::last_logits`]).
    pub fn last_logits(&self, row: usize) -> Option<&[f32]> {
        on_session!(self, s => s.last_logits(row))
    }
}
