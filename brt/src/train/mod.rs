//! Training: truncated back-propagation through segments of several blocks, as in
//! the official code. Gradients flow through the blocks of a segment, through the
//! recurrent state and the KV caches inside it; what is carried in from the previous
//! segment is an input without gradient. Rows read their own documents and are
//! reset when one begins.
//!
//! A small model trained on one repeated document learns it: the loss on the
//! document's first segment falls well below the first step's.
//!
//! ```
//! use brt::train::data::Corpus;
//! use brt::train::optim::{Decay, Schedule};
//! use brt::train::{TrainOptions, Trainer};
//! use brt_core::{Config, Reference, WeightDtype};
//! use brt_heap::Heap;
//!
//! let model = brt::bench::random_model(&Config::plain(16, 8, 2, 4, 16, 1, 4), WeightDtype::F32, 1)?;
//! let schedule = Schedule { peak: 3e-2, floor: 1e-3, warmup: 2, total: 30, decay: Decay::Cosine };
//! let options = TrainOptions { batch: 2, segment: 4, steps: 30, schedule, clip: 1.0, weight_decay: 0.0, seed: 1 };
//! let mut trainer = Trainer::new(Reference::new(Heap), &model, options)?;
//! let corpus = Corpus { documents: vec![(1..13).collect(); 2], names: vec!["a".into(), "b".into()] };
//! while trainer.step_count() < trainer.options().steps {
//!     trainer.step(&corpus)?;
//! }
//! // Every third step reads the documents' first segment again.
//! let (first, later) = (trainer.history[0].loss, trainer.history[27].loss);
//! assert!(later < 0.6 * first, "loss {first} -> {later}");
//! # Ok::<(), brt::Error>(())
//! ```

pub mod data;
mod loss;
pub mod optim;
mod parts;

use crate::autodiff::Recorder;
use crate::config_file::ConfigFile;
use crate::engine::{Engine, Session, SessionState};
use crate::error::{Error, Result};
use crate::eval::{score_file, Score};
use crate::files::write_atomically;
use crate::tokenizer::Tokenizer;
use crate::weights::{ModelWeights, WeightBuffer};
use brt_core::{Config, Gradients, WeightData};
use data::{Corpus, LoaderState};
use loss::{cross_entropy, Positions};
use optim::{clip_by_global_norm, AdamW, Schedule};
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// Training settings.
///
/// A trainer keeps its settings; a batch or segment of zero is refused when
/// the trainer is made:
///
/// ```
/// use brt::train::optim::{Decay, Schedule};
/// use brt::train::{TrainOptions, Trainer};
/// # use brt_core::{Config, Reference, WeightDtype};
/// # use brt_heap::Heap;
/// # let model = brt::bench::random_model(&Config::plain(16, 8, 2, 4, 16, 1, 4), WeightDtype::F32, 1)?;
///
/// let schedule = Schedule { peak: 1e-2, floor: 1e-3, warmup: 2, total: 20, decay: Decay::Cosine };
/// let options = TrainOptions { batch: 2, segment: 4, steps: 20, schedule, clip: 1.0, weight_decay: 0.0, seed: 1 };
/// let trainer = Trainer::new(Reference::new(Heap), &model, options.clone())?;
/// assert_eq!(trainer.options(), &options);
/// let bad = TrainOptions { segment: 0, ..options };
/// assert!(Trainer::new(Reference::new(Heap), &model, bad).is_err());
/// # Ok::<(), brt::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainOptions {
    /// Documents read side by side.
    pub batch: usize,
    /// Tokens per row per step (a multiple of the window keeps resets aligned).
    pub segment: usize,
    /// Steps to take in all.
    pub steps: u64,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// Clip gradients to this global norm (0: never).
    pub clip: f32,
    /// Decoupled weight decay of the matrices.
    pub weight_decay: f32,
    /// Seed of the data order.
    pub seed: u64,
}

/// What one step did.
///
/// The first step of two rows of four positions inside their documents
/// predicts eight tokens at the schedule's first rate, with a loss near that of
/// a uniform guess (`ln 16`) for a random model:
///
/// ```
/// # use brt::train::data::Corpus;
/// # use brt::train::optim::{Decay, Schedule};
/// # use brt::train::{TrainOptions, Trainer};
/// # use brt_core::{Config, Reference, WeightDtype};
/// # use brt_heap::Heap;
/// # let model = brt::bench::random_model(&Config::plain(16, 8, 2, 4, 16, 1, 4), WeightDtype::F32, 1)?;
/// # let schedule = Schedule { peak: 1e-2, floor: 1e-3, warmup: 2, total: 20, decay: Decay::Cosine };
/// # let options = TrainOptions { batch: 2, segment: 4, steps: 20, schedule, clip: 1.0, weight_decay: 0.0, seed: 1 };
/// # let mut trainer = Trainer::new(Reference::new(Heap), &model, options)?;
/// # let corpus = Corpus { documents: vec![(1..13).collect(); 2], names: vec!["a".into(), "b".into()] };
/// let report = trainer.step(&corpus)?;
/// assert_eq!((report.step, report.predicted), (1, 8));
/// assert_eq!(report.lr, trainer.options().schedule.rate(1));
/// assert!((report.loss - 16f64.ln()).abs() < 1.0 && report.grad_norm > 0.0);
/// # Ok::<(), brt::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepReport {
    /// Step number (from 1).
    pub step: u64,
    /// Mean loss of the predicted tokens, nats.
    pub loss: f64,
    /// Tokens that carried loss.
    pub predicted: usize,
    /// Learning rate used.
    pub lr: f32,
    /// Gradient norm before clipping.
    pub grad_norm: f32,
}

/// A held-out evaluation during training.
///
/// Each call of [`Trainer::evaluate`] records one, at the step it came after
/// (bits per byte equal bits per token only for the byte tokenizer):
///
/// ```
/// # use brt::train::data::Corpus;
/// # use brt::train::optim::{Decay, Schedule};
/// # use brt::train::{TrainOptions, Trainer};
/// # use brt_core::{Config, Reference, WeightDtype};
/// # use brt_heap::Heap;
/// # let model = brt::bench::random_model(&Config::plain(16, 8, 2, 4, 16, 1, 4), WeightDtype::F32, 1)?;
/// # let schedule = Schedule { peak: 1e-2, floor: 1e-3, warmup: 2, total: 20, decay: Decay::Cosine };
/// # let options = TrainOptions { batch: 2, segment: 4, steps: 20, schedule, clip: 1.0, weight_decay: 0.0, seed: 1 };
/// # let mut trainer = Trainer::new(Reference::new(Heap), &model, options)?;
/// # let corpus = Corpus { documents: vec![(1..13).collect(); 2], names: vec!["a".into(), "b".into()] };
/// # let dir = tempfile::tempdir().map_err(|e| brt::Error::io("tmp", e))?;
/// # let held_out = dir.path().join("held-out.txt");
/// # std::fs::write(&held_out, "1 2 3 4 5 6 7 8").map_err(|e| brt::Error::io(&held_out, e))?;
/// use brt::tokenizer::Tokenizer;
/// trainer.step(&corpus)?;
/// trainer.evaluate(&[held_out], &Tokenizer::Ids, None)?;
/// let report = trainer.evaluations[0];
/// assert_eq!(report.step, 1);
/// assert!(report.bits_per_token > 0.0 && report.bits_per_byte != report.bits_per_token);
/// # Ok::<(), brt::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// After this step.
    pub step: u64,
    /// Bits per token of the held-out files.
    pub bits_per_token: f64,
    /// Bits per byte.
    pub bits_per_byte: f64,
}

/// A model being trained on a backend with gradients.
///
/// Every step is recorded in `history`, numbered from 1:
///
/// ```
/// # use brt::train::data::Corpus;
/// # use brt::train::optim::{Decay, Schedule};
/// # use brt::train::{TrainOptions, Trainer};
/// # use brt_core::{Config, Reference, WeightDtype};
/// # use brt_heap::Heap;
/// # let model = brt::bench::random_model(&Config::plain(16, 8, 2, 4, 16, 1, 4), WeightDtype::F32, 1)?;
/// # let schedule = Schedule { peak: 1e-2, floor: 1e-3, warmup: 2, total: 20, decay: Decay::Cosine };
/// # let options = TrainOptions { batch: 2, segment: 4, steps: 20, schedule, clip: 1.0, weight_decay: 0.0, seed: 1 };
/// # let mut trainer = Trainer::new(Reference::new(Heap), &model, options)?;
/// # let corpus = Corpus { documents: vec![(1..13).collect(); 2], names: vec!["a".into(), "b".into()] };
/// for _ in 0..3 {
///     trainer.step(&corpus)?;
/// }
/// let steps: Vec<u64> = trainer.history.iter().map(|r| r.step).collect();
/// assert_eq!(steps, [1, 2, 3]);
/// assert!(trainer.evaluations.is_empty());
/// # Ok::<(), brt::Error>(())
/// ```
pub struct Trainer<G: Gradients> {
    engine: Engine<Recorder<G>>,
    session: Session<Recorder<G>>,
    options: TrainOptions,
    config: Config,
    /// The tokenizer the model is trained with (recorded in what it saves).
    tokenizer: Option<String>,
    params: Vec<f32>,
    decays: Vec<bool>,
    optimizer: AdamW,
    loader: LoaderState,
    step: u64,
    grad: Vec<f32>,
    seed: Vec<f32>,
    /// Every step's report.
    pub history: Vec<StepReport>,
    /// Every held-out evaluation.
    pub evaluations: Vec<EvalReport>,
    /// Where this trainer's steps spent their time (not saved in checkpoints).
    phases: PhaseSeconds,
}

/// Seconds spent in each phase of the steps taken so far: the recorded forward
/// (with the loss), the backward (with the weight gradient) and the update
/// (clipping, AdamW, writing the weights to the backend).
///
/// A new trainer has spent no time; a step spends some in every phase:
///
/// ```
/// # use brt::train::data::Corpus;
/// # use brt::train::optim::{Decay, Schedule};
/// # use brt::train::{TrainOptions, Trainer};
/// # use brt_core::{Config, Reference, WeightDtype};
/// # use brt_heap::Heap;
/// # let model = brt::bench::random_model(&Config::plain(16, 8, 2, 4, 16, 1, 4), WeightDtype::F32, 1)?;
/// # let schedule = Schedule { peak: 1e-2, floor: 1e-3, warmup: 2, total: 20, decay: Decay::Cosine };
/// # let options = TrainOptions { batch: 2, segment: 4, steps: 20, schedule, clip: 1.0, weight_decay: 0.0, seed: 1 };
/// # let mut trainer = Trainer::new(Reference::new(Heap), &model, options)?;
/// # let corpus = Corpus { documents: vec![(1..13).collect(); 2], names: vec!["a".into(), "b".into()] };
/// assert_eq!(trainer.phase_seconds(), Default::default());
/// trainer.step(&corpus)?;
/// let phases = trainer.phase_seconds();
/// assert!(phases.forward > 0.0 && phases.backward > 0.0 && phases.update > 0.0);
/// # Ok::<(), brt::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PhaseSeconds {
    /// Forward and loss.
    pub forward: f64,
    /// Backward through the tape and the weight gradient.
    pub backward: f64,
    /// Clipping, the optimizer and handing the new weights to the backend.
    pub update: f64,
}

impl<G: Gradients> std::fmt::Debug for Trainer<G> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer").field("step", &self.step).field("options", &self.options).finish_non_exhaustive()
    }
}

/// Metadata keys of training checkpoints.
mod file {
    pub const FORMAT: &str = "brt-train";
    pub const VERSION: &str = "1";
}

impl<G: Gradients> Trainer<G>
where
    Error: From<G::Error>,
{
    /// Starts training `initial` (its values are the starting point) on `kernels`.
    ///
    /// A new trainer holds the initial weights (in f32) and has taken no step:
    ///
    /// ```
    /// # use brt::train::data::Corpus;
    /// # use brt::train::optim::{Decay, Schedule};
    /// # use brt::train::{TrainOptions, Trainer};
    /// # use brt_core::{Config, Reference, WeightDtype};
    /// # use brt_heap::Heap;
    /// # let model = brt::bench::random_model(&Config::plain(16, 8, 2, 4, 16, 1, 4), WeightDtype::F32, 1)?;
    /// # let schedule = Schedule { peak: 1e-2, floor: 1e-3, warmup: 2, total: 20, decay: Decay::Cosine };
    /// # let options = TrainOptions { batch: 2, segment: 4, steps: 20, schedule, clip: 1.0, weight_decay: 0.0, seed: 1 };
    /// # let trainer = Trainer::new(Reference::new(Heap), &model, options)?;
    /// # let corpus = Corpus { documents: vec![(1..13).collect(); 2], names: vec!["a".into(), "b".into()] };
    /// assert_eq!(trainer.step_count(), 0);
    /// assert_eq!(trainer.weights()?, model);
    /// # let half = model.with_dtype(WeightDtype::F16)?;
    /// # let from_half = Trainer::new(Reference::new(Heap), &half, trainer.options().clone())?;
    /// # assert_eq!(from_half.weights()?.dtype(), WeightDtype::F32);
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn new(kernels: G, initial: &ModelWeights, options: TrainOptions) -> Result<Trainer<G>> {
        if options.batch == 0 || options.segment == 0 {
            return Err(Error::Invalid("batch and segment must be positive".into()));
        }
        let master = initial.with_dtype(brt_core::WeightDtype::F32)?;
        let params = match master.buffer() {
            WeightBuffer::F32(v) => v.clone(),
            _ => return Err(Error::Invalid("internal: f32 master weights expected".into())),
        };
        let decays = {
            let mut d = vec![false; params.len()];
            for spec in master.layout().params() {
                if !spec.param.is_vector() {
                    d[spec.offset..spec.offset + spec.span.len()].fill(true);
                }
            }
            d
        };
        let mut engine = Engine::new(Recorder::new(kernels), &master)?;
        let session = engine.session(options.batch, options.segment)?;
        let n = params.len();
        let vocab = master.config().vocab;
        Ok(Trainer {
            engine,
            session,
            config: *master.config(),
            tokenizer: initial.tokenizer().map(str::to_owned),
            optimizer: AdamW::new(n, options.weight_decay),
            loader: LoaderState::new(options.batch, options.seed),
            step: 0,
            grad: vec![0.0; n],
            seed: vec![0.0; options.batch * options.segment * vocab],
            params,
            decays,
            options,
            history: Vec::new(),
            evaluations: Vec::new(),
            phases: PhaseSeconds::default(),
        })
    }

    /// Steps taken.
    ///
    /// ```
    /// # use brt::train::data::Corpus;
    /// # use brt::train::optim::{Decay, Schedule};
    /// # use brt::train::{TrainOptions, Trainer};
    /// # use brt_core::{Config, Reference, WeightDtype};
    /// # use brt_heap::Heap;
    /// # let model = brt::bench::random_model(&Config::plain(16, 8, 2, 4, 16, 1, 4), WeightDtype::F32, 1)?;
    /// # let schedule = Schedule { peak: 1e-2, floor: 1e-3, warmup: 2, total: 20, decay: Decay::Cosine };
    /// # let options = TrainOptions { batch: 2, segment: 4, steps: 20, schedule, clip: 1.0, weight_decay: 0.0, seed: 1 };
    /// # let mut trainer = Trainer::new(Reference::new(Heap), &model, options)?;
    /// # let corpus = Corpus { documents: vec![(1..13).collect(); 2], names: vec!["a".into(), "b".into()] };
    /// assert_eq!(trainer.step_count(), 0);
    /// trainer.step(&corpus)?;
    /// assert_eq!(trainer.step_count(), 1);
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn step_count(&self) -> u64 {
        self.step
    }
    /// The settings.
    ///
    /// ```
    /// # use brt::train::data::Corpus;
    /// # use brt::train::optim::{Decay, Schedule};
    /// # use brt::train::{TrainOptions, Trainer};
    /// # use brt_core::{Config, Reference, WeightDtype};
    /// # use brt_heap::Heap;
    /// # let model = brt::bench::random_model(&Config::plain(16, 8, 2, 4, 16, 1, 4), WeightDtype::F32, 1)?;
    /// # let schedule = Schedule { peak: 1e-2, floor: 1e-3, warmup: 2, total: 20, decay: Decay::Cosine };
    /// # let options = TrainOptions { batch: 2, segment: 4, steps: 20, schedule, clip: 1.0, weight_decay: 0.0, seed: 1 };
    /// # let trainer = Trainer::new(Reference::new(Heap), &model, options)?;
    /// # let corpus = Corpus { documents: vec![(1..13).collect(); 2], names: vec!["a".into(), "b".into()] };
    /// assert_eq!(trainer.options().steps, 20);
    /// assert_eq!(trainer.options().schedule.peak, 1e-2);
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn options(&self) -> &TrainOptions {
        &self.options
    }
    /// Continues to `steps` in all (e.g. to extend a finished run).
    ///
    /// Only the number of steps changes, not the schedule's length:
    ///
    /// ```
    /// # use brt::train::data::Corpus;
    /// # use brt::train::optim::{Decay, Schedule};
    /// # use brt::train::{TrainOptions, Trainer};
    /// # use brt_core::{Config, Reference, WeightDtype};
    /// # use brt_heap::Heap;
    /// # let model = brt::bench::random_model(&Config::plain(16, 8, 2, 4, 16, 1, 4), WeightDtype::F32, 1)?;
    /// # let schedule = Schedule { peak: 1e-2, floor: 1e-3, warmup: 2, total: 20, decay: Decay::Cosine };
    /// # let options = TrainOptions { batch: 2, segment: 4, steps: 20, schedule, clip: 1.0, weight_decay: 0.0, seed: 1 };
    /// # let mut trainer = Trainer::new(Reference::new(Heap), &model, options)?;
    /// # let corpus = Corpus { documents: vec![(1..13).collect(); 2], names: vec!["a".into(), "b".into()] };
    /// trainer.set_total_steps(50);
    /// assert_eq!(trainer.options().steps, 50);
    /// assert_eq!(trainer.options().schedule.total, 20);
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn set_total_steps(&mut self, steps: u64) {
        self.options.steps = steps;
    }

    /// Where the steps taken so far spent their time.
    ///
    /// The seconds add up over the steps:
    ///
    /// ```
    /// # use brt::train::data::Corpus;
    /// # use brt::train::optim::{Decay, Schedule};
    /// # use brt::train::{TrainOptions, Trainer};
    /// # use brt_core::{Config, Reference, WeightDtype};
    /// # use brt_heap::Heap;
    /// # let model = brt::bench::random_model(&Config::plain(16, 8, 2, 4, 16, 1, 4), WeightDtype::F32, 1)?;
    /// # let schedule = Schedule { peak: 1e-2, floor: 1e-3, warmup: 2, total: 20, decay: Decay::Cosine };
    /// # let options = TrainOptions { batch: 2, segment: 4, steps: 20, schedule, clip: 1.0, weight_decay: 0.0, seed: 1 };
    /// # let mut trainer = Trainer::new(Reference::new(Heap), &model, options)?;
    /// # let corpus = Corpus { documents: vec![(1..13).collect(); 2], names: vec!["a".into(), "b".into()] };
    /// trainer.step(&corpus)?;
    /// let one = trainer.phase_seconds();
    /// trainer.step(&corpus)?;
    /// assert!(trainer.phase_seconds().forward > one.forward);
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn phase_seconds(&self) -> PhaseSeconds {
        self.phases
    }

    /// The backend the trainer computes on (e.g. to time its own products
    /// between steps; work done on it directly is not recorded).
    ///
    /// Timing the backend's own product leaves the trainer where it was:
    ///
    /// ```
    /// # use brt::train::data::Corpus;
    /// # use brt::train::optim::{Decay, Schedule};
    /// # use brt::train::{TrainOptions, Trainer};
    /// # use brt_core::{Config, Reference, WeightDtype};
    /// # use brt_heap::Heap;
    /// # let model = brt::bench::random_model(&Config::plain(16, 8, 2, 4, 16, 1, 4), WeightDtype::F32, 1)?;
    /// # let schedule = Schedule { peak: 1e-2, floor: 1e-3, warmup: 2, total: 20, decay: Decay::Cosine };
    /// # let options = TrainOptions { batch: 2, segment: 4, steps: 20, schedule, clip: 1.0, weight_decay: 0.0, seed: 1 };
    /// # let mut trainer = Trainer::new(Reference::new(Heap), &model, options)?;
    /// # let corpus = Corpus { documents: vec![(1..13).collect(); 2], names: vec!["a".into(), "b".into()] };
    /// let gflops = brt::bench::backend_gemm_rate(trainer.backend(), 8)?;
    /// assert!(gflops > 0.0);
    /// assert_eq!(trainer.step(&corpus)?.step, 1);
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn backend(&mut self) -> &mut G {
        self.engine.kernels().inner()
    }

    /// The model as it is now.
    ///
    /// A step changes the weights but not the configuration:
    ///
    /// ```
    /// # use brt::train::data::Corpus;
    /// # use brt::train::optim::{Decay, Schedule};
    /// # use brt::train::{TrainOptions, Trainer};
    /// # use brt_core::{Config, Reference, WeightDtype};
    /// # use brt_heap::Heap;
    /// # let model = brt::bench::random_model(&Config::plain(16, 8, 2, 4, 16, 1, 4), WeightDtype::F32, 1)?;
    /// # let schedule = Schedule { peak: 1e-2, floor: 1e-3, warmup: 2, total: 20, decay: Decay::Cosine };
    /// # let options = TrainOptions { batch: 2, segment: 4, steps: 20, schedule, clip: 1.0, weight_decay: 0.0, seed: 1 };
    /// # let mut trainer = Trainer::new(Reference::new(Heap), &model, options)?;
    /// # let corpus = Corpus { documents: vec![(1..13).collect(); 2], names: vec!["a".into(), "b".into()] };
    /// trainer.step(&corpus)?;
    /// let now = trainer.weights()?;
    /// assert_eq!(now.config(), model.config());
    /// assert_ne!(now, model);
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn weights(&self) -> Result<ModelWeights> {
        let mut weights = ModelWeights::new(self.config, WeightBuffer::F32(self.params.clone()))?;
        weights.set_tokenizer(self.tokenizer.clone());
        Ok(weights)
    }

    /// The tokenizer the model is trained with, if recorded (see
    /// [`crate::tokenizer::Tokenizer::identity`]).
    ///
    /// The tokenizer recorded in the initial weights is kept (and saved with the
    /// trained model):
    ///
    /// ```
    /// # use brt::train::data::Corpus;
    /// # use brt::train::optim::{Decay, Schedule};
    /// # use brt::train::{TrainOptions, Trainer};
    /// # use brt_core::{Config, Reference, WeightDtype};
    /// # use brt_heap::Heap;
    /// # let model = brt::bench::random_model(&Config::plain(16, 8, 2, 4, 16, 1, 4), WeightDtype::F32, 1)?;
    /// # let schedule = Schedule { peak: 1e-2, floor: 1e-3, warmup: 2, total: 20, decay: Decay::Cosine };
    /// # let options = TrainOptions { batch: 2, segment: 4, steps: 20, schedule, clip: 1.0, weight_decay: 0.0, seed: 1 };
    /// # let trainer = Trainer::new(Reference::new(Heap), &model, options)?;
    /// # let corpus = Corpus { documents: vec![(1..13).collect(); 2], names: vec!["a".into(), "b".into()] };
    /// use brt::tokenizer::Tokenizer;
    /// assert_eq!(trainer.tokenizer(), None);
    /// let mut ids_model = model.clone();
    /// ids_model.set_tokenizer(Some(Tokenizer::Ids.identity()));
    /// let trainer = Trainer::new(Reference::new(Heap), &ids_model, trainer.options().clone())?;
    /// assert_eq!(trainer.tokenizer(), Some("ids"));
    /// assert_eq!(trainer.weights()?.tokenizer(), Some("ids"));
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn tokenizer(&self) -> Option<&str> {
        self.tokenizer.as_deref()
    }

    /// One step: the next segment of every row, forward, loss, backward, update.
    ///
    /// A segment with an id outside the vocabulary is refused before anything is
    /// done (the data position included); the next segment of the same documents
    /// then continues them. Only the segment is checked, not the whole corpus at
    /// every step (400 MB read per step for a corpus of 100 million tokens):
    /// check a corpus once up front with [`Corpus::max_id`](data::Corpus::max_id),
    /// as `brt train` does.
    ///
    /// ```
    /// # use brt::train::data::Corpus;
    /// # use brt::train::optim::{Decay, Schedule};
    /// # use brt::train::{TrainOptions, Trainer};
    /// # use brt_core::{Config, Reference, WeightDtype};
    /// # use brt_heap::Heap;
    /// # let model = brt::bench::random_model(&Config::plain(16, 8, 2, 4, 16, 1, 4), WeightDtype::F32, 1)?;
    /// # let schedule = Schedule { peak: 1e-2, floor: 1e-3, warmup: 2, total: 20, decay: Decay::Cosine };
    /// # let options = TrainOptions { batch: 2, segment: 4, steps: 20, schedule, clip: 1.0, weight_decay: 0.0, seed: 1 };
    /// # let mut trainer = Trainer::new(Reference::new(Heap), &model, options)?;
    /// # let corpus = Corpus { documents: vec![(1..13).collect(); 2], names: vec!["a".into(), "b".into()] };
    /// let bad = Corpus { documents: vec![vec![1, 16]], names: vec!["bad".into()] };
    /// assert!(trainer.step(&bad).is_err());
    /// let empty = Corpus { documents: vec![vec![]], names: vec!["empty".into()] };
    /// assert!(trainer.step(&empty).is_err());
    /// assert_eq!(trainer.step_count(), 0);
    /// let first = trainer.step(&corpus)?;
    /// let second = trainer.step(&corpus)?;
    /// assert_eq!((first.step, second.step), (1, 2));
    /// assert_eq!(trainer.history, [first, second]);
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn step(&mut self, corpus: &Corpus) -> Result<StepReport> {
        let vocab = self.config.vocab;
        if corpus.documents.iter().all(Vec::is_empty) {
            return Err(Error::Invalid("the corpus has no tokens to train on".into()));
        }
        let (batch, length) = (self.options.batch, self.options.segment);
        let position = self.loader.clone();
        let segment = self.loader.next_segment(corpus, length);
        if let Some(&id) = segment.inputs.iter().chain(&segment.targets).find(|&&id| id as usize >= vocab) {
            self.loader = position;
            return Err(Error::Invalid(format!(
                "the corpus has token id {id}, outside the model's vocabulary of {vocab}"
            )));
        }
        let rows: Vec<Vec<u32>> =
            (0..batch).map(|b| (0..length).map(|t| segment.inputs[t * batch + b]).collect()).collect();
        let rows: Vec<&[u32]> = rows.iter().map(Vec::as_slice).collect();
        let predicted = segment.weights.iter().filter(|&&w| w).count();

        // Forward (recorded), with the cross-entropy and its gradient per position.
        self.seed.fill(0.0);
        let mut losses = vec![0f64; batch * length];
        let seed = &mut self.seed;
        let threads = self.engine.kernels().inner().host_threads();
        let mut reader = |start: usize, logits: &[f32]| -> Result<()> {
            let rows = start * batch..start * batch + logits.len() / vocab;
            let positions = Positions {
                targets: &segment.targets[rows.clone()],
                predicted: &segment.weights[rows.clone()],
                count: predicted,
            };
            let seed = &mut seed[rows.start * vocab..rows.end * vocab];
            cross_entropy(logits, positions, seed, &mut losses[rows], threads);
            Ok(())
        };
        let started = std::time::Instant::now();
        self.engine.kernels().start();
        let forward = self.session.feed_rows(&mut self.engine, &rows, &segment.resets, Some(&mut reader));
        self.engine.kernels().stop();
        forward?;
        // (The loss read the logits back: the forward is done.)
        let forward_done = std::time::Instant::now();
        self.phases.forward += (forward_done - started).as_secs_f64();
        // Counted once the step succeeds; after an error the data position and
        // the carried state have moved: resume from the last checkpoint.
        let step = self.step + 1;
        let lr = self.options.schedule.rate(step);
        let mut grad_norm = 0.0;
        if predicted > 0 {
            self.engine.backward(&self.session, &self.seed)?;
            self.engine.weight_gradient(&mut self.grad)?;
            let backward_done = std::time::Instant::now();
            self.phases.backward += (backward_done - forward_done).as_secs_f64();
            grad_norm = clip_by_global_norm(&mut self.grad, self.options.clip);
            if !grad_norm.is_finite() {
                return Err(Error::Invalid(format!(
                    "step {step}: the gradient is not finite; lower the learning rate"
                )));
            }
            self.optimizer.update_split(&mut self.params, &self.grad, &self.decays, lr, threads);
            self.engine.set_weights(WeightData::F32(&self.params))?;
            self.engine.kernels().inner().sync()?;
            self.phases.update += backward_done.elapsed().as_secs_f64();
        }
        self.step = step;
        // Summed in position order (a position not predicted adds zero): the
        // same loss however the rows were split.
        let loss: f64 = losses.iter().sum();
        let report = StepReport { step, loss: loss / predicted.max(1) as f64, predicted, lr, grad_norm };
        self.history.push(report);
        Ok(report)
    }

    /// Scores held-out files with the current weights (each a fresh document).
    ///
    /// A file of eight ids predicts seven of them; scoring it twice pools the two:
    ///
    /// ```
    /// # use brt::train::data::Corpus;
    /// # use brt::train::optim::{Decay, Schedule};
    /// # use brt::train::{TrainOptions, Trainer};
    /// # use brt_core::{Config, Reference, WeightDtype};
    /// # use brt_heap::Heap;
    /// # let model = brt::bench::random_model(&Config::plain(16, 8, 2, 4, 16, 1, 4), WeightDtype::F32, 1)?;
    /// # let schedule = Schedule { peak: 1e-2, floor: 1e-3, warmup: 2, total: 20, decay: Decay::Cosine };
    /// # let options = TrainOptions { batch: 2, segment: 4, steps: 20, schedule, clip: 1.0, weight_decay: 0.0, seed: 1 };
    /// # let mut trainer = Trainer::new(Reference::new(Heap), &model, options)?;
    /// # let corpus = Corpus { documents: vec![(1..13).collect(); 2], names: vec!["a".into(), "b".into()] };
    /// use brt::tokenizer::Tokenizer;
    /// let dir = tempfile::tempdir().map_err(|e| brt::Error::io("tmp", e))?;
    /// let held_out = dir.path().join("held-out.txt");
    /// std::fs::write(&held_out, "1 2 3 4 5 6 7 8").map_err(|e| brt::Error::io(&held_out, e))?;
    /// let score = trainer.evaluate(&[held_out.clone()], &Tokenizer::Ids, None)?;
    /// assert_eq!((score.tokens, score.predictions), (8, 7));
    /// let twice = trainer.evaluate(&[held_out.clone(), held_out], &Tokenizer::Ids, None)?;
    /// assert_eq!(twice.predictions, 14);
    /// assert!((twice.bits_per_token() - score.bits_per_token()).abs() < 1e-9);
    /// assert_eq!(trainer.evaluations.len(), 2);
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn evaluate(
        &mut self,
        files: &[std::path::PathBuf],
        tokenizer: &Tokenizer,
        max_bytes: Option<u64>,
    ) -> Result<Score> {
        let mut session = self.engine.session(1, self.options.segment.max(256))?;
        let mut total = Score::default();
        for path in files {
            session.reset(&mut self.engine)?;
            let score = score_file(&mut self.engine, &mut session, tokenizer, path, max_bytes, &[], &mut |_| {})?;
            total.add(&score);
        }
        self.evaluations.push(EvalReport {
            step: self.step,
            bits_per_token: total.bits_per_token(),
            bits_per_byte: total.bits_per_byte(tokenizer.is_bytes()),
        });
        Ok(total)
    }

    /// Writes everything needed to continue exactly: parameters, optimizer moments,
    /// the carried stream state of every row, the data position and the history.
    ///
    /// A trainer resumed from a checkpoint takes the very steps the original takes:
    ///
    /// ```
    /// # use brt::train::data::Corpus;
    /// # use brt::train::optim::{Decay, Schedule};
    /// # use brt::train::{TrainOptions, Trainer};
    /// # use brt_core::{Config, Reference, WeightDtype};
    /// # use brt_heap::Heap;
    /// # let model = brt::bench::random_model(&Config::plain(16, 8, 2, 4, 16, 1, 4), WeightDtype::F32, 1)?;
    /// # let schedule = Schedule { peak: 1e-2, floor: 1e-3, warmup: 2, total: 20, decay: Decay::Cosine };
    /// # let options = TrainOptions { batch: 2, segment: 4, steps: 20, schedule, clip: 1.0, weight_decay: 0.0, seed: 1 };
    /// # let mut trainer = Trainer::new(Reference::new(Heap), &model, options)?;
    /// # let corpus = Corpus { documents: vec![(1..13).collect(); 2], names: vec!["a".into(), "b".into()] };
    /// let dir = tempfile::tempdir().map_err(|e| brt::Error::io("tmp", e))?;
    /// let path = dir.path().join("run.ckpt");
    /// trainer.step(&corpus)?;
    /// trainer.save_checkpoint(&path)?;
    /// let mut resumed = Trainer::resume(Reference::new(Heap), &path)?;
    /// assert_eq!((resumed.step_count(), resumed.history.len()), (1, 1));
    /// assert_eq!(resumed.step(&corpus)?, trainer.step(&corpus)?);
    /// assert_eq!(resumed.weights()?, trainer.weights()?);
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn save_checkpoint(&mut self, path: &Path) -> Result<()> {
        let state = self.session.export(&mut self.engine)?;
        let json = |v: &dyn erased::Json| v.to_json();
        let mut metadata: HashMap<String, String> = [
            ("format", file::FORMAT.to_string()),
            ("format_version", file::VERSION.to_string()),
            ("config", ConfigFile::to_json(&self.config)),
            ("options", json(&self.options)),
            ("step", self.step.to_string()),
            ("optimizer_steps", self.optimizer.steps.to_string()),
            ("loader", json(&self.loader)),
            ("position_in_block", state.position_in_block.to_string()),
            ("tokens_seen", state.tokens_seen.to_string()),
            ("history", json(&self.history)),
            ("evaluations", json(&self.evaluations)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        if let Some(tokenizer) = &self.tokenizer {
            metadata.insert("tokenizer".into(), tokenizer.clone());
        }
        let invalid = |e: safetensors::SafeTensorError| Error::Invalid(format!("checkpoint: {e}"));
        fn tensor(v: &[f32]) -> std::result::Result<TensorView<'_>, safetensors::SafeTensorError> {
            TensorView::new(Dtype::F32, vec![v.len()], bytemuck::cast_slice(v))
        }
        let tensor = |v| tensor(v).map_err(invalid);
        let tensors = [
            ("params", tensor(&self.params)?),
            ("adam_m", tensor(&self.optimizer.m)?),
            ("adam_v", tensor(&self.optimizer.v)?),
            ("stream_state", tensor(&state.state)?),
        ];
        let bytes = crate::format::serialize_reproducibly(tensors, metadata)?;
        write_atomically(path, &bytes)
    }

    /// Continues a run from a checkpoint written by [`Trainer::save_checkpoint`].
    ///
    /// (See [`checkpoint_config`] to size a backend before resuming.)
    ///
    /// A checkpoint continues where it was saved; a file that is not one is
    /// refused:
    ///
    /// ```
    /// # use brt::train::data::Corpus;
    /// # use brt::train::optim::{Decay, Schedule};
    /// # use brt::train::{TrainOptions, Trainer};
    /// # use brt_core::{Config, Reference, WeightDtype};
    /// # use brt_heap::Heap;
    /// # let model = brt::bench::random_model(&Config::plain(16, 8, 2, 4, 16, 1, 4), WeightDtype::F32, 1)?;
    /// # let schedule = Schedule { peak: 1e-2, floor: 1e-3, warmup: 2, total: 20, decay: Decay::Cosine };
    /// # let options = TrainOptions { batch: 2, segment: 4, steps: 20, schedule, clip: 1.0, weight_decay: 0.0, seed: 1 };
    /// # let mut trainer = Trainer::new(Reference::new(Heap), &model, options)?;
    /// # let corpus = Corpus { documents: vec![(1..13).collect(); 2], names: vec!["a".into(), "b".into()] };
    /// let dir = tempfile::tempdir().map_err(|e| brt::Error::io("tmp", e))?;
    /// let path = dir.path().join("run.ckpt");
    /// trainer.step(&corpus)?;
    /// trainer.save_checkpoint(&path)?;
    /// let resumed = Trainer::resume(Reference::new(Heap), &path)?;
    /// assert_eq!(resumed.options(), trainer.options());
    /// assert_eq!(resumed.history, trainer.history);
    /// let weights = dir.path().join("model.safetensors");
    /// brt::format::save(&model, &weights)?;
    /// assert!(Trainer::resume(Reference::new(Heap), &weights).is_err());
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn resume(kernels: G, path: &Path) -> Result<Trainer<G>> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let fail = |m: String| Error::format(path, m);
        let (_, header) =
            SafeTensors::read_metadata(&bytes).map_err(|e| fail(format!("not a brt training checkpoint: {e}")))?;
        let meta = header.metadata().clone().unwrap_or_default();
        let get = |k: &str| meta.get(k).ok_or_else(|| fail(format!("not a brt training checkpoint (no `{k}`)")));
        if get("format")? != file::FORMAT {
            return Err(fail("not a brt training checkpoint".into()));
        }
        if get("format_version")? != file::VERSION {
            return Err(fail(format!(
                "training checkpoint version {}; this brt reads {}",
                get("format_version")?,
                file::VERSION
            )));
        }
        let parse = |k: &str| -> Result<u64> { get(k)?.parse().map_err(|_| fail(format!("`{k}` is not a number"))) };
        let config = ConfigFile::parse(get("config")?).map_err(|e| fail(e.to_string()))?;
        let options: TrainOptions = serde_json::from_str(get("options")?).map_err(|e| fail(format!("options: {e}")))?;
        let loader: LoaderState = serde_json::from_str(get("loader")?).map_err(|e| fail(format!("loader: {e}")))?;
        let history = serde_json::from_str(get("history")?).map_err(|e| fail(format!("history: {e}")))?;
        let evaluations = serde_json::from_str(get("evaluations")?).map_err(|e| fail(format!("evaluations: {e}")))?;
        let tensors =
            SafeTensors::deserialize(&bytes).map_err(|e| fail(format!("not a brt training checkpoint: {e}")))?;
        let read = |name: &str| -> Result<Vec<f32>> {
            let view = tensors.tensor(name).map_err(|_| fail(format!("no `{name}` tensor")))?;
            if view.dtype() != Dtype::F32 {
                return Err(fail(format!("`{name}` is not F32")));
            }
            Ok(view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
        };
        let params = read("params")?;
        let mut weights = ModelWeights::new(config, WeightBuffer::F32(params)).map_err(|e| fail(e.to_string()))?;
        weights.set_tokenizer(meta.get("tokenizer").cloned());
        let mut trainer = Trainer::new(kernels, &weights, options)?;
        let (m, v) = (read("adam_m")?, read("adam_v")?);
        if m.len() != trainer.params.len()
            || v.len() != trainer.params.len()
            || loader.rows.len() != trainer.options.batch
        {
            return Err(fail("the checkpoint's parts do not fit together".into()));
        }
        trainer.optimizer.m = m;
        trainer.optimizer.v = v;
        trainer.optimizer.steps = parse("optimizer_steps")?;
        trainer.step = parse("step")?;
        trainer.loader = loader;
        trainer.history = history;
        trainer.evaluations = evaluations;
        let state = SessionState {
            state: read("stream_state")?,
            position_in_block: parse("position_in_block")? as usize,
            tokens_seen: parse("tokens_seen")?,
            last_logits: None,
        };
        trainer.session.import(&mut trainer.engine, &state).map_err(|e| fail(e.to_string()))?;
        Ok(trainer)
    }
}

/// The model configuration stored in a training checkpoint (read from its header
/// only).
///
/// ```
/// # use brt::train::data::Corpus;
/// # use brt::train::optim::{Decay, Schedule};
/// # use brt::train::{TrainOptions, Trainer};
/// # use brt_core::{Config, Reference, WeightDtype};
/// # use brt_heap::Heap;
/// # let model = brt::bench::random_model(&Config::plain(16, 8, 2, 4, 16, 1, 4), WeightDtype::F32, 1)?;
/// # let schedule = Schedule { peak: 1e-2, floor: 1e-3, warmup: 2, total: 20, decay: Decay::Cosine };
/// # let options = TrainOptions { batch: 2, segment: 4, steps: 20, schedule, clip: 1.0, weight_decay: 0.0, seed: 1 };
/// # let mut trainer = Trainer::new(Reference::new(Heap), &model, options)?;
/// # let corpus = Corpus { documents: vec![(1..13).collect(); 2], names: vec!["a".into(), "b".into()] };
/// let dir = tempfile::tempdir().map_err(|e| brt::Error::io("tmp", e))?;
/// let path = dir.path().join("run.ckpt");
/// trainer.save_checkpoint(&path)?;
/// assert_eq!(brt::train::checkpoint_config(&path)?, *model.config());
/// # Ok::<(), brt::Error>(())
/// ```
pub fn checkpoint_config(path: &Path) -> Result<Config> {
    let meta = checkpoint_metadata(path)?;
    let config = meta.get("config").ok_or_else(|| Error::format(path, "not a brt training checkpoint"))?;
    ConfigFile::parse(config).map_err(|e| Error::format(path, e.to_string()))
}

/// The tokenizer a training checkpoint records, if any (runs from before brt
/// recorded it trained byte-level models).
///
/// A model without a recorded tokenizer gives a checkpoint without one:
///
/// ```
/// # use brt::train::data::Corpus;
/// # use brt::train::optim::{Decay, Schedule};
/// # use brt::train::{TrainOptions, Trainer};
/// # use brt_core::{Config, Reference, WeightDtype};
/// # use brt_heap::Heap;
/// # let model = brt::bench::random_model(&Config::plain(16, 8, 2, 4, 16, 1, 4), WeightDtype::F32, 1)?;
/// # let schedule = Schedule { peak: 1e-2, floor: 1e-3, warmup: 2, total: 20, decay: Decay::Cosine };
/// # let options = TrainOptions { batch: 2, segment: 4, steps: 20, schedule, clip: 1.0, weight_decay: 0.0, seed: 1 };
/// # let mut trainer = Trainer::new(Reference::new(Heap), &model, options)?;
/// # let corpus = Corpus { documents: vec![(1..13).collect(); 2], names: vec!["a".into(), "b".into()] };
/// use brt::train::checkpoint_tokenizer;
/// let dir = tempfile::tempdir().map_err(|e| brt::Error::io("tmp", e))?;
/// let path = dir.path().join("run.ckpt");
/// trainer.save_checkpoint(&path)?;
/// assert_eq!(checkpoint_tokenizer(&path)?, None);
/// let mut named = model.clone();
/// named.set_tokenizer(Some("ids".into()));
/// Trainer::new(Reference::new(Heap), &named, trainer.options().clone())?.save_checkpoint(&path)?;
/// assert_eq!(checkpoint_tokenizer(&path)?.as_deref(), Some("ids"));
/// # Ok::<(), brt::Error>(())
/// ```
pub fn checkpoint_tokenizer(path: &Path) -> Result<Option<String>> {
    Ok(checkpoint_metadata(path)?.remove("tokenizer"))
}

/// The metadata of a training checkpoint, read from its header only.
fn checkpoint_metadata(path: &Path) -> Result<HashMap<String, String>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let (_, header) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| Error::format(path, format!("not a brt training checkpoint: {e}")))?;
    let meta = header.metadata().clone().unwrap_or_default();
    match meta.get("format").map(String::as_str) {
        Some(file::FORMAT) => Ok(meta),
        _ => Err(Error::format(path, "not a brt training checkpoint")),
    }
}

/// JSON of serialisable values, behind one object-safe function.
mod erased {
    /// A value that can be written as JSON.
    pub trait Json {
        fn to_json(&self) -> String;
    }
    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> String {
            // Plain data: serialisation cannot fail.
            serde_json::to_string(self).unwrap_or_default()
        }
    }
}
