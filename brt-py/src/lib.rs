//! The `brt` Python package: brt's models from Python, on a backend chosen at
//! run time ([`brt::runtime::AnyEngine`]).
//!
//! - `brt.Model(path, backend=..., threads=..., tokenizer=...)` loads any model
//!   brt reads (brt safetensors, GGUF, an official Meliad checkpoint);
//!   `brt.Model.builtin()` is the built-in Shakespeare model.
//! - `model.logits(tokens)` gives numpy logits; `model.score(text)` bits per byte;
//!   `model.generate(prompt, ...)` and `model.stream(prompt, ...)` write text with
//!   every sampling control of `brt generate`.
//! - `model.session(batch, chunk)` streams documents block by block, and saves
//!   and restores them.
//!
//! Computation releases the GIL, so threads (a Dask worker's, say) run models
//! side by side; each model is used by one thread at a time (a lock).
//! The type stubs users see are in `brt.pyi`; keep them in step with this file.

use brt::engine::SessionState;
use brt::eval::Score;
use brt::generate::{Finish, GenerateOptions, TextGenerator};
use brt::meliad::ImportOptions;
use brt::model_file::open_model;
use brt::runtime::{AnyEngine, AnySession, EngineBuilder};
use brt::sample::SamplingOptions;
use brt::tokenizer::Tokenizer;
use brt::BackendKind;
use numpy::{PyArray1, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

create_exception!(brt, BrtError, PyException, "An error from brt, with its message (what went wrong and what to do).");

/// brt's error as a Python exception with the same message.
fn to_py(e: brt::Error) -> PyErr {
    BrtError::new_err(e.to_string())
}

fn invalid(message: impl Into<String>) -> PyErr {
    BrtError::new_err(message.into())
}

/// Locks `mutex`; a panic while it was held (there should be none) left data
/// that this package does not trust, so it says so rather than use it.
fn lock<'a, T>(mutex: &'a Mutex<T>, what: &str) -> PyResult<MutexGuard<'a, T>> {
    mutex.lock().map_err(|_| invalid(format!("this {what} failed in an earlier call and cannot be used again")))
}

/// The error of a lock that a panic left (see [`lock`]), inside released-GIL work.
fn poisoned<T>(_: T) -> brt::Error {
    brt::Error::Invalid("this model or session failed in an earlier call and cannot be used again".into())
}

/// Token ids from a numpy array or a sequence of integers: one document (1-D) or
/// a batch of equal-length documents (2-D), checked against the vocabulary.
struct Tokens {
    ids: Vec<u32>,
    batch: usize,
    len: usize,
    two_d: bool,
}

impl Tokens {
    fn extract(tokens: &Bound<'_, PyAny>, vocab: usize) -> PyResult<Tokens> {
        let numpy = tokens.py().import("numpy")?;
        let array = numpy.call_method1("ascontiguousarray", (tokens, "int64"))?;
        let array: PyReadonlyArrayDyn<'_, i64> = array.extract()?;
        let shape = array.shape().to_vec();
        let (batch, len, two_d) = match shape.as_slice() {
            [len] => (1, *len, false),
            [batch, len] => (*batch, *len, true),
            _ => return Err(invalid(format!("tokens must be 1-D or 2-D (batch, length); got shape {shape:?}"))),
        };
        if batch == 0 {
            return Err(invalid("tokens: a batch needs at least one row"));
        }
        let values = array.as_slice().map_err(|e| invalid(format!("tokens: {e}")))?;
        let ids = values
            .iter()
            .enumerate()
            .map(|(i, &id)| match u32::try_from(id) {
                Ok(id) if (id as usize) < vocab => Ok(id),
                _ => Err(invalid(format!(
                    "token id {id} (at flat index {i}) is not in this model's vocabulary of {vocab}; wrong tokenizer?"
                ))),
            })
            .collect::<PyResult<Vec<u32>>>()?;
        Ok(Tokens { ids, batch, len, two_d })
    }

    fn rows(&self) -> Vec<&[u32]> {
        if self.len == 0 {
            return vec![&[]; self.batch];
        }
        self.ids.chunks_exact(self.len).collect()
    }
}

/// Text as bytes: `str` (UTF-8) or `bytes`.
fn text_bytes(text: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(bytes) = text.cast::<PyBytes>() {
        return Ok(bytes.as_bytes().to_vec());
    }
    let text: String = text.extract().map_err(|_| invalid("text must be str or bytes"))?;
    Ok(text.into_bytes())
}

/// Logits `(B, T, V)` as a numpy array, `(T, V)` when the tokens were 1-D.
fn logits_array<'py>(py: Python<'py>, logits: Vec<f32>, tokens: &Tokens, vocab: usize) -> PyResult<Bound<'py, PyAny>> {
    let array = PyArray1::from_vec(py, logits);
    Ok(if tokens.two_d {
        array.reshape([tokens.batch, tokens.len, vocab])?.into_any()
    } else {
        array.reshape([tokens.len, vocab])?.into_any()
    })
}

/// A model on a backend, ready to score and write text.
#[pyclass(module = "brt", frozen)]
struct Model {
    engine: Mutex<AnyEngine>,
    tokenizer: Arc<Tokenizer>,
    /// For messages and `repr`.
    source: String,
}

impl Model {
    fn engine(&self) -> PyResult<MutexGuard<'_, AnyEngine>> {
        lock(&self.engine, "model")
    }
}

fn builder(backend: Option<&str>, threads: usize) -> PyResult<EngineBuilder> {
    let mut builder = EngineBuilder::new().threads(threads);
    if let Some(name) = backend {
        builder = builder.backend(name.parse::<BackendKind>().map_err(to_py)?);
    }
    Ok(builder)
}

/// The keyword arguments of `generate`, `stream` and `generate_batch` (their
/// stubs in `brt.pyi` list them with their defaults, which are `brt generate`'s).
const GENERATE_KEYWORDS: [&str; 11] = [
    "max_tokens",
    "temperature",
    "top_k",
    "top_p",
    "min_p",
    "repetition_penalty",
    "presence_penalty",
    "seed",
    "stop",
    "stop_at_eos",
    "session",
];

/// Generation options from keyword arguments (any left out take `brt
/// generate`'s defaults), and the session to continue if one is given. An
/// unknown keyword is an error, as Python's own would be.
fn generate_options(options: Option<&Bound<'_, PyDict>>) -> PyResult<(GenerateOptions, Option<Py<Session>>)> {
    let mut out = GenerateOptions {
        max_tokens: 256,
        sampling: SamplingOptions { temperature: 0.8, top_p: 0.95, ..SamplingOptions::default() },
        stop: Vec::new(),
        stop_at_eos: true,
    };
    let mut session = None;
    let Some(options) = options else { return Ok((out, session)) };
    for (key, value) in options.iter() {
        let key: String = key.extract()?;
        let bad = |e: PyErr| invalid(format!("`{key}`: {e}"));
        let s = &mut out.sampling;
        match key.as_str() {
            "max_tokens" => out.max_tokens = value.extract().map_err(bad)?,
            "temperature" => s.temperature = value.extract().map_err(bad)?,
            "top_k" => s.top_k = value.extract().map_err(bad)?,
            "top_p" => s.top_p = value.extract().map_err(bad)?,
            "min_p" => s.min_p = value.extract().map_err(bad)?,
            "repetition_penalty" => s.repetition_penalty = value.extract().map_err(bad)?,
            "presence_penalty" => s.presence_penalty = value.extract().map_err(bad)?,
            "seed" => s.seed = value.extract().map_err(bad)?,
            "stop" => out.stop = value.extract::<Option<Vec<String>>>().map_err(bad)?.unwrap_or_default(),
            "stop_at_eos" => out.stop_at_eos = value.extract().map_err(bad)?,
            "session" => session = value.extract::<Option<Py<Session>>>().map_err(|e| bad(e.into()))?,
            _ => {
                return Err(invalid(format!(
                    "unknown generation option `{key}`; the options are {}",
                    GENERATE_KEYWORDS.join(", ")
                )))
            }
        }
    }
    Ok((out, session))
}

#[pymethods]
impl Model {
    /// Loads the model at `path` (brt safetensors, GGUF, or an official Meliad
    /// checkpoint) on `backend` ("cpu", "reference", "wgpu", "cuda"; default:
    /// the CPU backend) with `threads` CPU threads (0: every core).
    #[new]
    #[pyo3(signature = (path, *, backend=None, threads=0, tokenizer="bytes", abs_attention_scale=false, window=None))]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        backend: Option<&str>,
        threads: usize,
        tokenizer: &str,
        abs_attention_scale: bool,
        window: Option<usize>,
    ) -> PyResult<Model> {
        let builder = builder(backend, threads)?;
        let import = ImportOptions { abs_attention_scale, window };
        let tokenizer = Tokenizer::from_spec(tokenizer).map_err(to_py)?;
        let engine = py
            .detach(|| {
                let model = open_model(&path, import)?;
                tokenizer.check_model(model.tokenizer())?;
                builder.load(&model)
            })
            .map_err(to_py)?;
        Ok(Model { engine: Mutex::new(engine), tokenizer: Arc::new(tokenizer), source: path.display().to_string() })
    }

    /// The built-in model (a small byte-level Shakespeare model).
    #[staticmethod]
    #[pyo3(signature = (*, backend=None, threads=0))]
    fn builtin(py: Python<'_>, backend: Option<&str>, threads: usize) -> PyResult<Model> {
        let builder = builder(backend, threads)?;
        let engine = py.detach(|| builder.build(&brt::default_model()?)).map_err(to_py)?;
        Ok(Model {
            engine: Mutex::new(engine),
            tokenizer: Arc::new(Tokenizer::Bytes),
            source: "the built-in model".into(),
        })
    }

    fn __repr__(&self) -> PyResult<String> {
        let engine = self.engine()?;
        Ok(format!("brt.Model({}, backend={}, tokenizer={})", self.source, engine.backend(), self.tokenizer.name()))
    }

    /// The backend's name.
    #[getter]
    fn backend(&self) -> PyResult<&'static str> {
        Ok(self.engine()?.backend().name())
    }

    /// Vocabulary size (rows of the logits).
    #[getter]
    fn vocab(&self) -> PyResult<usize> {
        Ok(self.engine()?.config().vocab)
    }

    /// The configuration as a dict (the fields of brt's config.json).
    #[getter]
    fn config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let json = brt::config_file::ConfigFile::to_json(self.engine()?.config());
        py.import("json")?.call_method1("loads", (json,))
    }

    /// The model's fingerprint (16 hex digits; sessions remember it).
    #[getter]
    fn fingerprint(&self) -> PyResult<String> {
        Ok(format!("{:016x}", self.engine()?.fingerprint()))
    }

    /// Token ids of `text` (str or bytes) with the model's tokenizer.
    fn encode<'py>(&self, py: Python<'py>, text: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyArray1<u32>>> {
        let ids = self.tokenizer.encode(&text_bytes(text)?).map_err(to_py)?;
        Ok(PyArray1::from_vec(py, ids))
    }

    /// The text of token ids (invalid UTF-8 replaced by U+FFFD).
    fn decode(&self, tokens: &Bound<'_, PyAny>) -> PyResult<String> {
        let tokens = Tokens::extract(tokens, u32::MAX as usize)?;
        let bytes = self.tokenizer.decode(&tokens.ids).map_err(to_py)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Logits of every position of `tokens` (1-D: one document, gives (T, V);
    /// 2-D (B, T): B documents, gives (B, T, V)), each read from its start.
    #[pyo3(signature = (tokens, *, chunk=512))]
    fn logits<'py>(&self, py: Python<'py>, tokens: &Bound<'py, PyAny>, chunk: usize) -> PyResult<Bound<'py, PyAny>> {
        let vocab = self.vocab()?;
        let tokens = Tokens::extract(tokens, vocab)?;
        let logits = py
            .detach(|| {
                let mut engine = self.engine.lock().map_err(poisoned)?;
                let mut session = engine.session(tokens.batch, chunk)?;
                engine.logits(&mut session, &tokens.rows())
            })
            .map_err(to_py)?;
        logits_array(py, logits, &tokens, vocab)
    }

    /// Scores `text` (str or bytes) as one document, as `brt eval` scores a file
    /// (the same numbers, `chunk` tokens per call as its `--chunk`): a dict with
    /// `bits_per_byte`, `bits_per_token`, `nats_per_token`, `nats` (the sum),
    /// `tokens`, `bytes`, `predictions` and `beyond` ({position: bits per token of the predictions
    /// from there on}).
    #[pyo3(signature = (text, *, beyond=None, chunk=512))]
    fn score<'py>(
        &self,
        py: Python<'py>,
        text: &Bound<'py, PyAny>,
        beyond: Option<Vec<u64>>,
        chunk: usize,
    ) -> PyResult<Bound<'py, PyDict>> {
        let text = text_bytes(text)?;
        let beyond = beyond.unwrap_or_default();
        let tokenizer = self.tokenizer.clone();
        let score = py
            .detach(|| {
                let mut engine = self.engine.lock().map_err(poisoned)?;
                engine.score(&tokenizer, &text, &beyond, chunk)
            })
            .map_err(to_py)?;
        score_dict(py, &score, self.tokenizer.is_bytes())
    }

    /// A new session: `batch` documents streamed side by side, at most `chunk`
    /// tokens per row per call.
    #[pyo3(signature = (batch=1, chunk=512))]
    fn session(slf: &Bound<'_, Self>, batch: usize, chunk: usize) -> PyResult<Session> {
        let session = slf.get().engine()?.session(batch, chunk).map_err(to_py)?;
        Ok(Session { model: slf.clone().unbind(), session: Mutex::new(session) })
    }

    /// Restores a session saved with `Session.save` (on any backend).
    #[pyo3(signature = (path, chunk=512))]
    fn load_session(slf: &Bound<'_, Self>, path: PathBuf, chunk: usize) -> PyResult<Session> {
        let session = slf.get().engine()?.load_session(&path, chunk).map_err(to_py)?;
        Ok(Session { model: slf.clone().unbind(), session: Mutex::new(session) })
    }

    /// Restores a session from the bytes of `Session.to_bytes`.
    #[pyo3(signature = (data, chunk=512))]
    fn session_from_bytes(slf: &Bound<'_, Self>, data: &[u8], chunk: usize) -> PyResult<Session> {
        let session = slf.get().engine()?.session_from_bytes(data, chunk).map_err(to_py)?;
        Ok(Session { model: slf.clone().unbind(), session: Mutex::new(session) })
    }

    /// Continues `prompt` and returns the text written. `session` (batch 1), if
    /// given, is continued (and `prompt` may be empty); otherwise a fresh one is
    /// used. Stops after `max_tokens`, at a `stop` string (not returned) or at
    /// the tokenizer's end of sequence (unless `stop_at_eos=False`). The options
    /// and their defaults are `brt generate`'s (see `brt.pyi`).
    #[pyo3(signature = (prompt, **options))]
    fn generate(
        slf: &Bound<'_, Self>,
        prompt: &Bound<'_, PyAny>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<String> {
        let (options, session) = generate_options(options)?;
        let stream = TextIterator::start(slf, prompt, &options, session)?;
        let mut text = String::new();
        while let Some(piece) = stream.next_piece(slf.py())? {
            text.push_str(&piece);
        }
        Ok(text)
    }

    /// Continues several prompts at once, one per row of a batch (row i draws
    /// with `seed + i` and writes what `generate` writes for its prompt alone
    /// with that seed); returns their texts. The options are `generate`'s but
    /// `session`.
    #[pyo3(signature = (prompts, **options))]
    fn generate_batch(
        &self,
        py: Python<'_>,
        prompts: Vec<Bound<'_, PyAny>>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Vec<String>> {
        let (options, session) = generate_options(options)?;
        if session.is_some() {
            return Err(invalid("generate_batch starts fresh documents: it takes no `session`"));
        }
        let prompts = prompts
            .iter()
            .map(|p| self.tokenizer.encode(&text_bytes(p)?).map_err(to_py))
            .collect::<PyResult<Vec<_>>>()?;
        let tokenizer = self.tokenizer.clone();
        let results = py
            .detach(|| {
                let mut engine = self.engine.lock().map_err(poisoned)?;
                let mut session = engine.session(prompts.len().max(1), 512)?;
                let mut quiet = |_: usize, _: &[u8]| Ok(std::ops::ControlFlow::Continue(()));
                engine.generate_batch(&mut session, &tokenizer, &prompts, &options, &mut quiet)
            })
            .map_err(to_py)?;
        Ok(results.iter().map(|g| String::from_utf8_lossy(&g.text).into_owned()).collect())
    }

    /// Like `generate`, but returns an iterator of text pieces as they are
    /// written (`iterator.finish` then says why it ended: "length",
    /// "end_of_sequence", "stop").
    #[pyo3(signature = (prompt, **options))]
    fn stream(
        slf: &Bound<'_, Self>,
        prompt: &Bound<'_, PyAny>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<TextIterator> {
        let (options, session) = generate_options(options)?;
        TextIterator::start(slf, prompt, &options, session)
    }
}

fn score_dict<'py>(py: Python<'py>, score: &Score, bytes_tokenizer: bool) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    dict.set_item("bits_per_byte", score.bits_per_byte(bytes_tokenizer))?;
    dict.set_item("bits_per_token", score.bits_per_token())?;
    dict.set_item("nats_per_token", score.nats_per_token())?;
    dict.set_item("nats", score.nats)?;
    dict.set_item("tokens", score.tokens)?;
    dict.set_item("bytes", score.bytes)?;
    dict.set_item("predictions", score.predictions)?;
    let beyond = PyDict::new(py);
    for b in &score.beyond {
        beyond.set_item(b.from, b.bits_per_token())?;
    }
    dict.set_item("beyond", beyond)?;
    Ok(dict)
}

/// Documents streamed block by block: the carried state (every layer's cache,
/// every recurrent state) of `batch` rows.
#[pyclass(module = "brt", frozen)]
struct Session {
    model: Py<Model>,
    session: Mutex<AnySession>,
}

impl Session {
    fn with<T>(
        &self,
        py: Python<'_>,
        work: impl FnOnce(&mut AnyEngine, &mut AnySession) -> brt::Result<T> + Send,
    ) -> PyResult<T>
    where
        T: Send,
    {
        on_session(py, self.model.get(), &self.session, work)
    }
}

/// Runs `work` on `model`'s engine and `session` with the GIL released, each
/// locked for the call.
fn on_session<T: Send>(
    py: Python<'_>,
    model: &Model,
    session: &Mutex<AnySession>,
    work: impl FnOnce(&mut AnyEngine, &mut AnySession) -> brt::Result<T> + Send,
) -> PyResult<T> {
    py.detach(|| {
        let mut engine = model.engine.lock().map_err(poisoned)?;
        let mut session = session.lock().map_err(poisoned)?;
        work(&mut engine, &mut session)
    })
    .map_err(to_py)
}

#[pymethods]
impl Session {
    /// Documents fed side by side.
    #[getter]
    fn batch(&self) -> PyResult<usize> {
        Ok(lock(&self.session, "session")?.batch())
    }

    /// Tokens fed to each row so far.
    #[getter]
    fn tokens_seen(&self) -> PyResult<u64> {
        Ok(lock(&self.session, "session")?.tokens_seen())
    }

    /// The model it belongs to.
    #[getter]
    fn model(&self, py: Python<'_>) -> Py<Model> {
        self.model.clone_ref(py)
    }

    /// Feeds `tokens` (1-D for a session of one row, or 2-D (batch, T)) and
    /// returns their logits ((T, V) or (B, T, V)).
    fn feed<'py>(&self, py: Python<'py>, tokens: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let vocab = self.model.get().vocab()?;
        let tokens = Tokens::extract(tokens, vocab)?;
        let logits = self.with(py, |engine, session| engine.logits(session, &tokens.rows()))?;
        logits_array(py, logits, &tokens, vocab)
    }

    /// The logits of the last position fed to each row, (B, V); None before
    /// anything was fed.
    fn last_logits<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let session = lock(&self.session, "session")?;
        let rows: Option<Vec<f32>> =
            (0..session.batch()).map(|b| session.last_logits(b)).collect::<Option<Vec<_>>>().map(|r| r.concat());
        let Some(values) = rows else { return Ok(None) };
        let vocab = values.len() / session.batch();
        Ok(Some(PyArray1::from_vec(py, values).reshape([session.batch(), vocab])?.into_any()))
    }

    /// Starts a new document in every row.
    fn reset(&self, py: Python<'_>) -> PyResult<()> {
        self.with(py, |engine, session| engine.reset(session))
    }

    /// Saves the session to `path` (atomically).
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        self.with(py, |engine, session| engine.save_session(session, &path))
    }

    /// The bytes of the session file (see `Model.session_from_bytes`).
    fn to_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let bytes = self.with(py, |engine, session| engine.session_bytes(session))?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// A copy of the carried state as a flat float32 array (for study; its layout
    /// is the core's plan's).
    fn state<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray1<f32>>> {
        let saved: SessionState = self.with(py, |engine, session| engine.export(session))?;
        Ok(PyArray1::from_vec(py, saved.state))
    }

    fn __repr__(&self) -> PyResult<String> {
        let session = lock(&self.session, "session")?;
        Ok(format!("brt.Session(batch={}, tokens_seen={})", session.batch(), session.tokens_seen()))
    }
}

/// Text being written, piece by piece (from `Model.stream`).
#[pyclass(module = "brt", frozen)]
struct TextIterator {
    model: Py<Model>,
    /// The caller's session, or a fresh one of this iterator's own.
    session: Result<Py<Session>, Mutex<AnySession>>,
    generator: Mutex<TextGenerator>,
    /// Bytes of an unfinished UTF-8 character, waiting for the rest.
    pending: Mutex<Vec<u8>>,
}

impl TextIterator {
    fn start(
        model: &Bound<'_, Model>,
        prompt: &Bound<'_, PyAny>,
        options: &GenerateOptions,
        session: Option<Py<Session>>,
    ) -> PyResult<TextIterator> {
        let py = model.py();
        let m = model.get();
        let prompt = m.tokenizer.encode(&text_bytes(prompt)?).map_err(to_py)?;
        let session = match session {
            Some(s) => {
                if !s.get().model.is(model) {
                    return Err(invalid("this session belongs to another model"));
                }
                Ok(s)
            }
            None => Err(Mutex::new(m.engine()?.session(1, 512).map_err(to_py)?)),
        };
        let iterator = TextIterator {
            model: model.clone().unbind(),
            session,
            generator: Mutex::new(TextGenerator::new(options).map_err(to_py)?),
            pending: Mutex::new(Vec::new()),
        };
        {
            let mut guard = lock(&iterator.generator, "generator")?;
            let generator: &mut TextGenerator = &mut guard;
            iterator.run(py, |engine, session| engine.start_generation(session, generator, &prompt))?;
        }
        Ok(iterator)
    }

    fn run<T: Send>(
        &self,
        py: Python<'_>,
        work: impl FnOnce(&mut AnyEngine, &mut AnySession) -> brt::Result<T> + Send,
    ) -> PyResult<T> {
        match &self.session {
            Ok(session) => session.get().with(py, work),
            Err(own) => on_session(py, self.model.get(), own, work),
        }
    }

    /// The next non-empty piece of text, or `None` at the end.
    fn next_piece(&self, py: Python<'_>) -> PyResult<Option<String>> {
        let tokenizer = self.model.get().tokenizer.clone();
        loop {
            let step = {
                let mut guard = lock(&self.generator, "generator")?;
                let generator: &mut TextGenerator = &mut guard;
                self.run(py, |engine, session| engine.generation_step(session, generator, &tokenizer))?
            };
            let mut pending = lock(&self.pending, "generator")?;
            let Some(bytes) = step else {
                // The end: what is left of an unfinished character is shown as U+FFFD.
                let rest = std::mem::take(&mut *pending);
                return Ok((!rest.is_empty()).then(|| String::from_utf8_lossy(&rest).into_owned()));
            };
            pending.extend_from_slice(&bytes);
            let text = complete_utf8(&mut pending);
            if !text.is_empty() {
                return Ok(Some(text));
            }
        }
    }
}

/// Takes from `bytes` the text up to an unfinished UTF-8 character at its end
/// (invalid bytes elsewhere become U+FFFD); leaves the unfinished character.
fn complete_utf8(bytes: &mut Vec<u8>) -> String {
    let keep = match std::str::from_utf8(bytes) {
        Ok(_) => 0,
        Err(e) if e.error_len().is_none() => bytes.len() - e.valid_up_to(),
        Err(_) => {
            // Invalid bytes inside; an unfinished character may still end it.
            let tail = bytes.len().saturating_sub(3);
            (tail..bytes.len())
                .find(|&i| {
                    std::str::from_utf8(&bytes[i..]).is_err_and(|e| e.error_len().is_none() && e.valid_up_to() == 0)
                })
                .map_or(0, |i| bytes.len() - i)
        }
    };
    let rest = bytes.split_off(bytes.len() - keep);
    let text = String::from_utf8_lossy(bytes).into_owned();
    *bytes = rest;
    text
}

#[pymethods]
impl TextIterator {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<String>> {
        self.next_piece(py)
    }

    /// Why generation ended ("length", "end_of_sequence", "stop",
    /// "cancelled"), or None while it goes on.
    #[getter]
    fn finish(&self) -> PyResult<Option<&'static str>> {
        Ok(lock(&self.generator, "generator")?.finish().map(|f| match f {
            Finish::Length => "length",
            Finish::EndOfSequence => "end_of_sequence",
            Finish::Stop => "stop",
            Finish::Cancelled => "cancelled",
        }))
    }

    /// The token ids written so far.
    #[getter]
    fn tokens<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray1<u32>>> {
        Ok(PyArray1::from_vec(py, lock(&self.generator, "generator")?.tokens().to_vec()))
    }

    /// The model's log-probability (natural log, before penalties and
    /// temperature) of each token written so far.
    #[getter]
    fn logprobs<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray1<f64>>> {
        Ok(PyArray1::from_vec(py, lock(&self.generator, "generator")?.logprobs().to_vec()))
    }
}

/// The backends compiled into this package.
#[pyfunction]
fn backends() -> Vec<&'static str> {
    BackendKind::ALL.iter().filter(|b| b.is_compiled()).map(|b| b.name()).collect()
}

/// Block-Recurrent Transformers (Hutchins et al., 2022): load official or brt
/// models, score text, write text, stream long documents.
#[pymodule]
#[pyo3(name = "brt")]
fn brt_py(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("BrtError", m.py().get_type::<BrtError>())?;
    m.add_class::<Model>()?;
    m.add_class::<Session>()?;
    m.add_class::<TextIterator>()?;
    m.add_function(wrap_pyfunction!(backends, m)?)?;
    Ok(())
}
