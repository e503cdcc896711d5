//! Benchmarks: the named configurations of the issue tracker, the model's own
//! arithmetic counted from its configuration, and a timed stream of tokens.
//! (Measure with `brt bench`, never in tests.)

use crate::backend::BackendJob;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::gguf::MappedModel;
use crate::model_file::LoadedModel;
use crate::weights::{ModelWeights, WeightBuffer};
use brt_core::desc::Matmul;
use brt_core::{
    Config, GateKind, Kernels, LayerSet, StateLayout, TokenAttention, View, ViewMut, WeightDtype, WeightView,
};
use std::time::Instant;

/// A named benchmark configuration: byte vocabulary, fixed gate, skip layout.
///
/// `paper` is the paper's 12-layer model, recurrent in layer 10 (index 9);
/// unknown names are refused:
///
/// ```
/// use brt::bench::named_config;
/// let paper = named_config("paper")?;
/// assert_eq!((paper.d_model, paper.layers, paper.window, paper.states), (1024, 12, 512, 512));
/// assert!(paper.is_recurrent(9) && paper.vocab == 260);
/// assert!(named_config("huge").is_err());
/// # Ok::<(), brt::Error>(())
/// ```
pub fn named_config(name: &str) -> Result<Config> {
    let (d, heads, dh, f, layers, recurrent, w, s) = match name {
        "small" => (256, 4, 64, 1024, 4, 2, 64, 64),
        "paper" => (1024, 8, 128, 4096, 12, -3, 512, 512),
        "tiny" => (64, 2, 32, 256, 2, 1, 16, 16),
        _ => return Err(Error::Invalid(format!("unknown benchmark configuration `{name}`: use small, paper or tiny"))),
    };
    let config = Config {
        states: s,
        recurrent: LayerSet::from_indices(&[recurrent], layers)?,
        gate: GateKind::Fixed,
        layout: StateLayout::Skip,
        ..Config::plain(260, d, heads, dh, f, layers, w)
    };
    config.validate()?;
    Ok(config)
}

/// Floating-point operations (multiply and add counted separately) of the model's
/// own arithmetic per token, averaged over a block: dense products, attention
/// scores and weighted sums, the state update (once per block, divided by `W`) and
/// the logits. Norms, activations and gates are a few operations per element and
/// left out.
///
/// One plain layer by hand: the q, k, v, output and MLP products, the window's
/// scores and sums, and the logits:
///
/// ```
/// use brt::bench::forward_flops_per_token;
/// let c = brt_core::Config::plain(10, 4, 2, 3, 8, 1, 5);
/// let (d, qkv, f, w, v) = (4.0, 6.0, 8.0, 5.0, 10.0);
/// let by_hand = 6.0 * d * qkv + 2.0 * qkv * d + 4.0 * d * f + 4.0 * w * qkv + 2.0 * d * v;
/// assert_eq!(forward_flops_per_token(&c), by_hand);
/// ```
pub fn forward_flops_per_token(c: &Config) -> f64 {
    let (d, qkv, f, v, w, s) =
        (c.d_model as f64, c.qkv_width() as f64, c.mlp_hidden as f64, c.vocab as f64, c.window as f64, c.states as f64);
    let dense = |rows: f64, input: f64, output: f64| 2.0 * rows * input * output;
    let mut per_token = dense(1.0, d, v); // tied logits
    let mut per_block = 0.0;
    for layer in 0..c.layers {
        let cross = c.has_cross_attention(layer);
        per_token += dense(1.0, d, 3.0 * qkv); // q, k, v
        per_token += dense(1.0, qkv * if cross { 2.0 } else { 1.0 }, d); // output projection
        per_token += dense(1.0, d, f) + dense(1.0, f, d); // MLP
        per_token += match c.token_attention(layer) {
            TokenAttention::Window => 4.0 * w * qkv, // W scores and W weighted values
            TokenAttention::Linear => 4.0 * qkv * c.head_dim as f64, // phi(k)^T v and phi(q) S
        };
        if cross {
            per_token += dense(1.0, d, qkv) + 4.0 * s * qkv; // q2 and attention to S states
        }
        if c.is_recurrent(layer) {
            per_block += dense(s, d, 4.0 * qkv); // q, q2 before; k, v after the update
            per_block += 4.0 * s * s * qkv + 4.0 * s * 2.0 * w * qkv; // r_self, r_cross
            per_block += match c.layout {
                StateLayout::Skip => dense(s, 2.0 * qkv, d),
                StateLayout::Dual => dense(s, 2.0 * qkv, d) + dense(s, d, f) + dense(s, f, d),
                StateLayout::Single => dense(s, 2.0 * qkv, f) + dense(s, f, d),
            };
            if c.gate == GateKind::Lstm {
                for &site in c.gate_sites() {
                    per_block += 2.0 * dense(s, c.gate_input_width(site) as f64, d);
                }
            }
        }
    }
    per_token + per_block / w
}

/// Floating-point operations of training per token: the forward's, and twice
/// that for the backward (every product has two in the backward, the gradients
/// of its input and of its weights; attention's two products have four). The
/// optimizer (about ten operations per parameter per step) is left out.
///
/// ```
/// use brt::bench::{forward_flops_per_token, named_config, training_flops_per_token};
/// let c = named_config("small")?;
/// assert_eq!(training_flops_per_token(&c), 3.0 * forward_flops_per_token(&c));
/// # Ok::<(), brt::Error>(())
/// ```
pub fn training_flops_per_token(c: &Config) -> f64 {
    3.0 * forward_flops_per_token(c)
}

/// What to run.
///
/// A small run (real runs take thousands of tokens; a bandwidth measurement reads
/// 512 MiB, so it is skipped here): every repetition is timed, and the GEMM
/// with it:
///
/// ```
/// use brt::bench::{BenchJob, BenchSpec};
/// use brt::model_file::LoadedModel;
/// use brt::{run_on, BackendKind};
/// use brt_core::{Config, WeightDtype};
/// let model = LoadedModel::InMemory(brt::bench::random_model(&Config::plain(260, 8, 2, 4, 16, 1, 4), WeightDtype::F32, 1)?);
/// let spec = BenchSpec { batch: 2, tokens: 8, chunk: 4, repetitions: 3, gemm_size: 8, bandwidth_threads: 0 };
/// let result = run_on(BackendKind::Reference, BenchJob { weights: &model, spec })?;
/// assert_eq!((result.seconds.len(), result.gemm_gflops.len()), (3, 3));
/// assert!(result.bandwidth_gbs.is_empty());
/// # Ok::<(), brt::Error>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct BenchSpec {
    /// Documents side by side.
    pub batch: usize,
    /// Tokens per document per repetition.
    pub tokens: usize,
    /// Tokens per document per call.
    pub chunk: usize,
    /// Timed repetitions (the median is reported).
    pub repetitions: usize,
    /// Side of the square product timed for the backend's own GEMM rate (0: skip).
    pub gemm_size: usize,
    /// Threads that read memory to measure its bandwidth before each repetition
    /// (0: skip).
    pub bandwidth_threads: usize,
}

/// Measured figures. Every repetition times the reference rates (the backend's
/// GEMM, the memory bandwidth) right before the model, so that each ratio
/// compares figures taken at the same moment of a shared, noisy machine.
///
/// The rates are those of the median repetition:
///
/// ```
/// # use brt::bench::{BenchJob, BenchSpec};
/// # use brt::model_file::LoadedModel;
/// # use brt::{run_on, BackendKind};
/// # use brt_core::{Config, WeightDtype};
/// # let model = LoadedModel::InMemory(brt::bench::random_model(&Config::plain(260, 8, 2, 4, 16, 1, 4), WeightDtype::F32, 1)?);
/// # let spec = BenchSpec { batch: 2, tokens: 8, chunk: 4, repetitions: 3, gemm_size: 8, bandwidth_threads: 0 };
/// # let result = run_on(BackendKind::Reference, BenchJob { weights: &model, spec })?;
///
/// use brt::bench::median;
/// let tokens = (2 * 8) as f64;
/// assert!((result.tokens_per_second - tokens / median(&result.seconds)).abs() < 1e-6 * result.tokens_per_second);
/// assert!(result.gflops > 0.0 && result.gemm_ratios.iter().all(|r| *r > 0.0));
/// assert!(result.bandwidth_ratios.is_empty() && result.weight_bytes > 0);
/// # Ok::<(), brt::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct BenchResult {
    /// Seconds of each repetition.
    pub seconds: Vec<f64>,
    /// Median tokens per second (all documents together).
    pub tokens_per_second: f64,
    /// Median GFLOP/s of the model's arithmetic.
    pub gflops: f64,
    /// GFLOP/s of the backend's own matmul on a square f32 product before each
    /// repetition, if measured.
    pub gemm_gflops: Vec<f64>,
    /// The model's GFLOP/s over the GEMM's, per repetition.
    pub gemm_ratios: Vec<f64>,
    /// GB/s of reading memory before each repetition, if measured.
    pub bandwidth_gbs: Vec<f64>,
    /// Bytes of the stored weights (all of them are read for every call).
    pub weight_bytes: usize,
    /// Weight bytes read per second over the bandwidth, per repetition: how
    /// close one-token calls come to the memory's limit.
    pub bandwidth_ratios: Vec<f64>,
}

/// The smallest, median and largest of a list (zeros when empty).
///
/// ```
/// use brt::bench::spread;
/// assert_eq!(spread(&[3.0, 1.0, 2.0, 10.0]), (1.0, 2.5, 10.0));
/// assert_eq!(spread(&[]), (0.0, 0.0, 0.0));
/// ```
pub fn spread(values: &[f64]) -> (f64, f64, f64) {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if values.is_empty() {
        (0.0, 0.0, 0.0)
    } else {
        (min, median(values), max)
    }
}

/// Bytes the memory bandwidth is measured on: far beyond any cache.
const BANDWIDTH_BYTES: usize = 512 << 20;

/// GB/s of `threads` threads summing disjoint parts of `buffer` (the median of
/// three passes).
///
/// On a small buffer (benchmarks use 512 MiB, far beyond any cache), two threads:
///
/// ```
/// use brt::bench::memory_bandwidth;
/// let buffer = vec![1u64; 1 << 14];
/// assert!(memory_bandwidth(&buffer, 2) > 0.0);
/// ```
pub fn memory_bandwidth(buffer: &[u64], threads: usize) -> f64 {
    let threads = threads.max(1);
    let part = buffer.len().div_ceil(threads);
    let mut times = Vec::new();
    for _ in 0..3 {
        let start = Instant::now();
        std::thread::scope(|scope| {
            for piece in buffer.chunks(part.max(1)) {
                scope.spawn(move || {
                    // Eight independent sums keep the adds off the critical path.
                    let mut sums = [0u64; 8];
                    for block in piece.chunks_exact(8) {
                        for (s, &v) in sums.iter_mut().zip(block) {
                            *s = s.wrapping_add(v);
                        }
                    }
                    std::hint::black_box(sums);
                });
            }
        });
        times.push(start.elapsed().as_secs_f64());
    }
    (buffer.len() * 8) as f64 / median(&times) / 1e9
}

/// Median of a list (0 for an empty one).
///
/// The middle value, or the mean of the two middle ones; 0 for an empty list:
///
/// ```
/// use brt::bench::median;
/// assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
/// assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
/// assert_eq!(median(&[]), 0.0);
/// ```
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// A random model of `config` stored as `dtype`.
///
/// The same seed gives the same model:
///
/// ```
/// use brt::bench::random_model;
/// use brt_core::{Config, WeightDtype};
/// let config = Config::plain(16, 8, 2, 4, 16, 1, 4);
/// let model = random_model(&config, WeightDtype::Bf16, 7)?;
/// assert_eq!((model.config(), model.dtype()), (&config, WeightDtype::Bf16));
/// assert_eq!(random_model(&config, WeightDtype::Bf16, 7)?, model);
/// assert_ne!(random_model(&config, WeightDtype::Bf16, 8)?, model);
/// # Ok::<(), brt::Error>(())
/// ```
pub fn random_model(config: &Config, dtype: WeightDtype, seed: u64) -> Result<ModelWeights> {
    let layout = brt_core::WeightLayout::new(config)?;
    let mut flat = Vec::new();
    flat.try_reserve_exact(layout.len()).map_err(|_| Error::Invalid("not enough memory for the model".into()))?;
    flat.resize(layout.len(), 0.0);
    brt_core::init::initialize(config, seed, &mut flat)?;
    ModelWeights::new(*config, WeightBuffer::F32(flat))?.with_dtype(dtype)
}

/// A random model of `config` as a program would hold it when stored as
/// `dtype`: in memory, or (Q8_0, which only model files hold) as a model file in
/// memory that the CPU backend reads in place.
///
/// ```
/// use brt::bench::random_loaded_model;
/// use brt::model_file::LoadedModel;
/// use brt_core::{Config, WeightDtype};
/// let config = Config::plain(64, 32, 2, 16, 64, 1, 4);
/// assert!(matches!(random_loaded_model(&config, WeightDtype::F16, 1)?, LoadedModel::InMemory(_)));
/// let q8 = random_loaded_model(&config, WeightDtype::Q8_0, 1)?;
/// assert!(matches!(q8, LoadedModel::Mapped(_)));
/// assert_eq!(q8.dtype(), WeightDtype::Q8_0);
/// # Ok::<(), brt::Error>(())
/// ```
pub fn random_loaded_model(config: &Config, dtype: WeightDtype, seed: u64) -> Result<LoadedModel> {
    if dtype != WeightDtype::Q8_0 {
        return Ok(LoadedModel::InMemory(random_model(config, dtype, seed)?));
    }
    let bytes = crate::gguf::to_bytes(&random_model(config, WeightDtype::F32, seed)?, None, dtype)?;
    let file = brt_heap::SharedBytes::copy_aligned(&bytes);
    Ok(LoadedModel::Mapped(MappedModel::from_bytes(file).map_err(Error::Invalid)?))
}

/// Streams random tokens through a model and times it.
///
/// It runs on any backend (here with tiny sizes). The tokens are random bytes
/// of the byte vocabulary, so the model needs at least its 259 ids:
///
/// ```
/// use brt::bench::{BenchJob, BenchSpec};
/// use brt::model_file::LoadedModel;
/// use brt::{run_on, BackendKind};
/// use brt_core::{Config, WeightDtype};
/// let model = LoadedModel::InMemory(brt::bench::random_model(&Config::plain(260, 8, 2, 4, 16, 1, 4), WeightDtype::F32, 1)?);
/// let spec = BenchSpec { batch: 2, tokens: 8, chunk: 4, repetitions: 3, gemm_size: 8, bandwidth_threads: 0 };
/// let result = run_on(BackendKind::Reference, BenchJob { weights: &model, spec })?;
/// assert!(result.tokens_per_second > 0.0);
/// # Ok::<(), brt::Error>(())
/// ```
pub struct BenchJob<'a> {
    /// The model.
    pub weights: &'a LoadedModel,
    /// What to run.
    pub spec: BenchSpec,
}

impl BackendJob for BenchJob<'_> {
    type Output = BenchResult;

    fn run<K: crate::backend::FileWeights>(self, k: K) -> Result<BenchResult>
    where
        Error: From<K::Error>,
    {
        let spec = self.spec;
        let config = *self.weights.config();
        let weight_bytes =
            brt_core::ByteLayout::new(&config, self.weights.dtype(), 4)?.tensors().map(|t| t.bytes).sum();
        let mut engine = Engine::load(k, self.weights)?;
        let buffer: Vec<u64> = if spec.bandwidth_threads > 0 {
            let mut b = Vec::new();
            b.try_reserve_exact(BANDWIDTH_BYTES / 8)
                .map_err(|_| Error::Invalid("not enough memory for the bandwidth measurement (512 MiB)".into()))?;
            b.extend((0..BANDWIDTH_BYTES as u64 / 8).map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
            b
        } else {
            Vec::new()
        };
        let mut rng = brt_core::init::SplitMix64::new(1);
        let rows: Vec<Vec<u32>> =
            (0..spec.batch).map(|_| (0..spec.tokens).map(|_| 3 + (rng.next_u64() % 256) as u32).collect()).collect();
        let rows: Vec<&[u32]> = rows.iter().map(Vec::as_slice).collect();
        let mut session = engine.session(spec.batch, spec.chunk.clamp(1, spec.tokens.max(1)))?;
        // Warm-up: one call.
        let warm: Vec<&[u32]> = rows.iter().map(|r| &r[..spec.chunk.min(r.len())]).collect();
        session.feed_rows(&mut engine, &warm, &[], None)?;
        let tokens = (spec.batch * spec.tokens) as f64;
        // Calls per repetition; each reads every weight once, whatever the batch.
        let calls = spec.tokens.div_ceil(spec.chunk.max(1)) as f64;
        let (mut seconds, mut gemm_gflops, mut gemm_ratios) = (Vec::new(), Vec::new(), Vec::new());
        let (mut bandwidth_gbs, mut bandwidth_ratios) = (Vec::new(), Vec::new());
        for _ in 0..spec.repetitions.max(1) {
            let gemm =
                if spec.gemm_size > 0 { Some(backend_gemm_rate(engine.kernels(), spec.gemm_size)?) } else { None };
            let bandwidth = (!buffer.is_empty()).then(|| memory_bandwidth(&buffer, spec.bandwidth_threads));
            session.reset(&mut engine)?;
            let start = Instant::now();
            session.feed_rows(&mut engine, &rows, &[], None)?;
            engine.kernels().sync()?;
            let t = start.elapsed().as_secs_f64();
            seconds.push(t);
            if let Some(g) = gemm {
                gemm_gflops.push(g);
                gemm_ratios.push(tokens * forward_flops_per_token(&config) / t / 1e9 / g);
            }
            if let Some(b) = bandwidth {
                bandwidth_gbs.push(b);
                bandwidth_ratios.push(calls * weight_bytes as f64 / t / 1e9 / b);
            }
        }
        let t = median(&seconds);
        Ok(BenchResult {
            tokens_per_second: tokens / t,
            gflops: tokens * forward_flops_per_token(&config) / t / 1e9,
            seconds,
            gemm_gflops,
            gemm_ratios,
            bandwidth_gbs,
            weight_bytes,
            bandwidth_ratios,
        })
    }
}

/// What a training benchmark runs: `steps` training steps of `batch` rows x
/// `segment` tokens per repetition.
///
/// Two repetitions of two steps of two rows of four tokens (tiny sizes):
///
/// ```
/// use brt::backend::{run_training_on, BackendOptions};
/// use brt::bench::{TrainBenchJob, TrainBenchSpec};
/// use brt::BackendKind;
/// use brt_core::{Config, WeightDtype};
/// let model = brt::bench::random_model(&Config::plain(16, 8, 2, 4, 16, 1, 4), WeightDtype::F32, 1)?;
/// let spec = TrainBenchSpec { batch: 2, segment: 4, steps: 2, repetitions: 2, gemm_size: 0 };
/// let result = run_training_on(BackendKind::Reference, BackendOptions::default(), TrainBenchJob { weights: &model, spec })?;
/// assert_eq!(result.rate.seconds.len(), 2);
/// assert!(result.rate.gemm_gflops.is_empty());
/// # Ok::<(), brt::Error>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct TrainBenchSpec {
    /// Rows side by side.
    pub batch: usize,
    /// Tokens per row per step.
    pub segment: usize,
    /// Steps per repetition.
    pub steps: u64,
    /// Timed repetitions (the median is reported).
    pub repetitions: usize,
    /// Side of the square product timed for the backend's own GEMM rate (0: skip).
    pub gemm_size: usize,
}

/// Measured training figures: the stream's figures (tokens/s and GFLOP/s of the
/// training arithmetic, [`training_flops_per_token`]) and the share of the time
/// each phase of a step took.
///
/// The phases are those of the timed steps (the warm-up step left out):
///
/// ```
/// # use brt::backend::{run_training_on, BackendOptions};
/// # use brt::bench::{TrainBenchJob, TrainBenchSpec};
/// # use brt::BackendKind;
/// # use brt_core::{Config, WeightDtype};
/// # let model = brt::bench::random_model(&Config::plain(16, 8, 2, 4, 16, 1, 4), WeightDtype::F32, 1)?;
/// # let spec = TrainBenchSpec { batch: 2, segment: 4, steps: 2, repetitions: 2, gemm_size: 0 };
/// # let result = run_training_on(BackendKind::Reference, BackendOptions::default(), TrainBenchJob { weights: &model, spec })?;
///
/// let phases = result.phases;
/// assert!(phases.forward > 0.0 && phases.backward > 0.0 && phases.update > 0.0);
/// assert!(phases.forward + phases.backward + phases.update <= 1.01 * result.rate.seconds.iter().sum::<f64>());
/// # Ok::<(), brt::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct TrainBenchResult {
    /// Tokens/s, GFLOP/s and the same-run GEMM ratios.
    pub rate: BenchResult,
    /// Seconds of the timed steps in the forward, backward and update phases.
    pub phases: crate::train::PhaseSeconds,
}

/// Trains a model on random tokens (full AdamW steps: forward, loss, backward,
/// clipping, update) and times it, with the backend's GEMM timed before every
/// repetition.
///
/// It needs a backend with gradients; zero steps are refused:
///
/// ```
/// use brt::backend::{run_training_on, BackendOptions};
/// use brt::bench::{TrainBenchJob, TrainBenchSpec};
/// use brt::BackendKind;
/// use brt_core::{Config, WeightDtype};
/// let model = brt::bench::random_model(&Config::plain(16, 8, 2, 4, 16, 1, 4), WeightDtype::F32, 1)?;
/// let spec = TrainBenchSpec { batch: 2, segment: 4, steps: 2, repetitions: 2, gemm_size: 0 };
/// let result = run_training_on(BackendKind::Reference, BackendOptions::default(), TrainBenchJob { weights: &model, spec })?;
/// assert!(result.rate.tokens_per_second > 0.0);
/// let none = TrainBenchSpec { steps: 0, ..spec };
/// let job = TrainBenchJob { weights: &model, spec: none };
/// assert!(run_training_on(BackendKind::Reference, BackendOptions::default(), job).is_err());
/// # Ok::<(), brt::Error>(())
/// ```
pub struct TrainBenchJob<'a> {
    /// The starting model (f32; training keeps f32 master weights).
    pub weights: &'a ModelWeights,
    /// What to run.
    pub spec: TrainBenchSpec,
}

impl crate::backend::TrainingJob for TrainBenchJob<'_> {
    type Output = TrainBenchResult;

    fn run<G: brt_core::Gradients>(self, g: G) -> Result<TrainBenchResult>
    where
        Error: From<G::Error>,
    {
        use crate::train::optim::{Decay, Schedule};
        use crate::train::{TrainOptions, Trainer};
        let spec = self.spec;
        if spec.batch == 0 || spec.segment == 0 || spec.steps == 0 {
            return Err(Error::Invalid("batch, segment and steps must be positive".into()));
        }
        let config = *self.weights.config();
        let steps_in_all = spec.steps.saturating_mul(spec.repetitions.max(1) as u64).saturating_add(1);
        let options = TrainOptions {
            batch: spec.batch,
            segment: spec.segment,
            steps: steps_in_all,
            schedule: Schedule { peak: 1e-4, floor: 1e-4, warmup: 0, total: steps_in_all, decay: Decay::Cosine },
            clip: 1.0,
            weight_decay: 0.1,
            seed: 1,
        };
        // The trainer first: it refuses a batch and segment its backend cannot
        // hold with a clear error, before the corpus is made.
        let mut trainer = Trainer::new(g, self.weights, options)?;
        let corpus = random_corpus(spec.batch, config.vocab)?;
        trainer.step(&corpus)?; // warm-up: the tape's buffers are allocated once
        let warm = trainer.phase_seconds();
        let tokens = spec.steps as f64 * spec.batch as f64 * spec.segment as f64;
        let flops = training_flops_per_token(&config);
        let (mut seconds, mut gemm_gflops, mut gemm_ratios) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..spec.repetitions.max(1) {
            let gemm =
                if spec.gemm_size > 0 { Some(backend_gemm_rate(trainer.backend(), spec.gemm_size)?) } else { None };
            let start = Instant::now();
            for _ in 0..spec.steps {
                trainer.step(&corpus)?;
            }
            let t = start.elapsed().as_secs_f64();
            seconds.push(t);
            if let Some(g) = gemm {
                gemm_gflops.push(g);
                gemm_ratios.push(tokens * flops / t / 1e9 / g);
            }
        }
        let all = trainer.phase_seconds();
        let t = median(&seconds);
        Ok(TrainBenchResult {
            rate: BenchResult {
                tokens_per_second: tokens / t,
                gflops: tokens * flops / t / 1e9,
                seconds,
                gemm_gflops,
                gemm_ratios,
                bandwidth_gbs: Vec::new(),
                weight_bytes: 0,
                bandwidth_ratios: Vec::new(),
            },
            phases: crate::train::PhaseSeconds {
                forward: all.forward - warm.forward,
                backward: all.backward - warm.backward,
                update: all.update - warm.update,
            },
        })
    }
}

/// Random ids (the loss stays near ln V), one document of `RANDOM_DOCUMENT`
/// tokens per row. A row that reaches its document's end starts another (a reset
/// of its state): every step still does the same work.
fn random_corpus(batch: usize, vocab: usize) -> Result<crate::train::data::Corpus> {
    const RANDOM_DOCUMENT: usize = 1 << 16;
    let too_many = || Error::Invalid(format!("not enough memory for {batch} rows of random tokens; lower --batch"));
    let mut rng = brt_core::init::SplitMix64::new(1);
    let mut documents = Vec::new();
    documents.try_reserve_exact(batch).map_err(|_| too_many())?;
    for _ in 0..batch {
        let mut document = Vec::new();
        document.try_reserve_exact(RANDOM_DOCUMENT).map_err(|_| too_many())?;
        document.extend((0..RANDOM_DOCUMENT).map(|_| (rng.next_u64() % vocab as u64) as u32));
        documents.push(document);
    }
    Ok(crate::train::data::Corpus { documents, names: vec![std::path::PathBuf::from("random"); batch] })
}

/// GFLOP/s of `k`'s matmul on an `n x n x n` f32 product (median of 5).
///
/// On a small product (benchmarks use hundreds or thousands):
///
/// ```
/// use brt::bench::backend_gemm_rate;
/// let mut k = brt_core::Reference::new(brt_heap::Heap);
/// assert!(backend_gemm_rate(&mut k, 16)? > 0.0);
/// # Ok::<(), brt::Error>(())
/// ```
pub fn backend_gemm_rate<K: Kernels>(k: &mut K, n: usize) -> Result<f64>
where
    Error: From<K::Error>,
{
    let mut x = k.alloc_tensor(n * n)?;
    let mut out = k.alloc_tensor(n * n)?;
    let mut w = k.alloc_weights(n * n, WeightDtype::F32)?;
    let values: Vec<f32> = (0..n * n).map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5).collect();
    k.write_tensor(&mut x, 0, &values)?;
    k.write_weights(&mut w, 0, brt_core::WeightData::F32(&values))?;
    let desc = Matmul::new(n, n, n)?;
    let mut times = Vec::new();
    for i in 0..6 {
        let start = Instant::now();
        k.matmul(View::new(&x, 0), WeightView::new(&w, 0), ViewMut::new(&mut out, 0), desc)?;
        k.sync()?;
        if i > 0 {
            times.push(start.elapsed().as_secs_f64());
        }
    }
    Ok(2.0 * (n as f64).powi(3) / median(&times) / 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flops_of_a_plain_layer_by_hand() {
        // One plain layer: q,k,v 2*3*d*qkv, out 2*qkv*d, MLP 4*d*f, attention 4*W*qkv, logits 2*d*V.
        let c = Config::plain(10, 4, 2, 3, 8, 1, 5);
        let (d, qkv, f, w, v) = (4.0, 6.0, 8.0, 5.0, 10.0);
        let expected = 6.0 * d * qkv + 2.0 * qkv * d + 4.0 * d * f + 4.0 * w * qkv + 2.0 * d * v;
        assert_eq!(forward_flops_per_token(&c), expected);
    }

    #[test]
    fn the_named_configs_are_the_issue_tracker_s() {
        let paper = named_config("paper").unwrap();
        assert_eq!((paper.d_model, paper.layers, paper.window, paper.states), (1024, 12, 512, 512));
        assert!(paper.is_recurrent(9));
        let small = named_config("small").unwrap();
        assert!(small.is_recurrent(2) && small.vocab == 260);
        assert!(named_config("huge").is_err());
        // Paper: about 2 * 151M parameters per token plus attention; sanity bounds.
        let f = forward_flops_per_token(&paper);
        assert!(f > 2.0 * 140e6 && f < 2.0 * 260e6, "{f}");
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
