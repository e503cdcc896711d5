//! Choosing a compute backend at run time among those compiled in.
//!
//! The `Kernels` trait has associated types, so backends are not objects: work
//! that runs on "some backend" is written once as a [`BackendJob`], generic over
//! the kernels, and [`run_on`] instantiates it for the chosen one.

use crate::error::{Error, Result};
use crate::gguf::MappedModel;
use brt_core::encoding::Q8_0_CPU_ONLY;
use brt_core::{CoreError, Gradients, Kernels};
use brt_heap::Heap;
use std::fmt;
use std::str::FromStr;

/// The backends brt knows about.
///
/// Each backend has a name on the command line, read back by `parse`:
///
/// ```
/// use brt::BackendKind;
/// for kind in BackendKind::ALL {
///     assert_eq!(kind.name().parse::<BackendKind>()?, kind);
/// }
/// assert_eq!("cuda".parse::<BackendKind>()?, BackendKind::Cuda);
/// assert!("tpu".parse::<BackendKind>().is_err());
/// # Ok::<(), brt::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    /// The scalar reference kernels of `brt-core` (slow, exact oracle).
    Reference,
    /// The SIMD CPU backend.
    Cpu,
    /// GPUs through wgpu (Vulkan, Metal, DX12, GL).
    Wgpu,
    /// NVIDIA GPUs through CUDA.
    Cuda,
}

impl BackendKind {
    /// Every backend, compiled in or not.
    ///
    /// ```
    /// use brt::BackendKind;
    /// assert_eq!(BackendKind::ALL.len(), 4);
    /// assert!(BackendKind::ALL.iter().any(|k| k.is_compiled()));
    /// ```
    pub const ALL: [BackendKind; 4] = [BackendKind::Reference, BackendKind::Cpu, BackendKind::Wgpu, BackendKind::Cuda];

    /// The name used on the command line.
    ///
    /// It is also how a backend is displayed:
    ///
    /// ```
    /// use brt::BackendKind;
    /// assert_eq!(BackendKind::Reference.name(), "reference");
    /// assert_eq!(BackendKind::Wgpu.to_string(), "wgpu");
    /// ```
    pub const fn name(self) -> &'static str {
        match self {
            BackendKind::Reference => "reference",
            BackendKind::Cpu => "cpu",
            BackendKind::Wgpu => "wgpu",
            BackendKind::Cuda => "cuda",
        }
    }

    /// Whether this build of brt contains the backend.
    ///
    /// The reference backend is always there; the others depend on the features:
    ///
    /// ```
    /// use brt::BackendKind;
    /// assert!(BackendKind::Reference.is_compiled());
    /// assert_eq!(BackendKind::Cuda.is_compiled(), cfg!(feature = "cuda"));
    /// ```
    pub const fn is_compiled(self) -> bool {
        match self {
            BackendKind::Reference => true,
            BackendKind::Cpu => cfg!(feature = "cpu"),
            BackendKind::Wgpu => cfg!(feature = "wgpu"),
            BackendKind::Cuda => cfg!(feature = "cuda"),
        }
    }

    /// The backend used when none is named: the CPU backend when compiled in.
    ///
    /// ```
    /// use brt::BackendKind;
    /// let kind = BackendKind::default_kind();
    /// assert!(kind.is_compiled());
    /// assert!(matches!(kind, BackendKind::Cpu | BackendKind::Reference));
    /// ```
    pub const fn default_kind() -> BackendKind {
        if cfg!(feature = "cpu") {
            BackendKind::Cpu
        } else {
            BackendKind::Reference
        }
    }

    /// The names of the compiled-in backends, for messages.
    ///
    /// ```
    /// use brt::BackendKind;
    /// let names = BackendKind::compiled_names();
    /// assert!(names.starts_with("reference"));
    /// assert_eq!(names.contains("wgpu"), BackendKind::Wgpu.is_compiled());
    /// ```
    pub fn compiled_names() -> String {
        BackendKind::ALL.iter().filter(|b| b.is_compiled()).map(|b| b.name()).collect::<Vec<_>>().join(", ")
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for BackendKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        BackendKind::ALL.into_iter().find(|b| b.name() == s).ok_or_else(|| {
            Error::Invalid(format!("unknown backend `{s}`; this brt has: {}", BackendKind::compiled_names()))
        })
    }
}

/// How a backend takes the weights of a mapped model file: the CPU and reference
/// backends use them where they lie; the others copy them into their own memory.
///
/// The reference backend takes a mapped model file's weights as one buffer:
///
/// ```
/// use brt::backend::FileWeights;
/// use brt::gguf::MappedModel;
/// use brt_core::{Reference, Storage, WeightDtype};
/// use brt_heap::{Heap, SharedBytes};
/// let model = brt::bench::random_model(&brt_core::Config::plain(10, 8, 2, 4, 16, 1, 4), WeightDtype::F32, 1)?;
/// let bytes = brt::gguf::to_bytes(&model, None, WeightDtype::F16)?;
/// let mapped = MappedModel::from_bytes(SharedBytes::copy_aligned(&bytes))?;
/// let mut k = Reference::new(Heap);
/// let weights = k.file_weights(&mapped)?;
/// assert_eq!(Reference::<Heap>::weights_len(&weights), mapped.layout().len());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait FileWeights: Kernels {
    /// The parameter buffer for `model`'s weights, in `model.layout()`.
    /// A backend that cannot read Q8_0 refuses it in `alloc_weights` with a
    /// message (the GPU backends); a Q8_0 model, the only one without a view of
    /// values of one type, cannot get past that.
    ///
    /// The buffer holds every weight of the file's layout:
    ///
    /// ```
    /// use brt::backend::FileWeights;
    /// use brt::gguf::MappedModel;
    /// use brt_core::{Reference, Storage, WeightDtype};
    /// use brt_heap::{Heap, SharedBytes};
    /// let model = brt::bench::random_model(&brt_core::Config::plain(10, 8, 2, 4, 16, 1, 4), WeightDtype::F32, 1)?;
    /// let bytes = brt::gguf::to_bytes(&model, None, WeightDtype::F16)?;
    /// let mapped = MappedModel::from_bytes(SharedBytes::copy_aligned(&bytes))?;
    /// let mut k = Reference::new(Heap);
    /// let weights = k.file_weights(&mapped)?;
    /// assert_eq!(Reference::<Heap>::weights_len(&weights), mapped.layout().len());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn file_weights(&mut self, model: &MappedModel) -> std::result::Result<Self::Weights, Self::Error> {
        let mut weights = self.alloc_weights(model.layout().len(), model.dtype())?;
        let values = model.weights().ok_or(CoreError::InvalidShape { what: Q8_0_CPU_ONLY })?;
        self.write_weights(&mut weights, 0, values)?;
        Ok(weights)
    }
}

impl FileWeights for brt_core::Reference<Heap> {
    /// Used where they lie, each value (of any type, Q8_0 included) decoded
    /// exactly as a kernel reads it.
    ///
    /// A Q8_0 file, which the GPU backends refuse, is taken as it is:
    ///
    /// ```
    /// use brt::backend::FileWeights;
    /// use brt::gguf::MappedModel;
    /// use brt_core::{Reference, Storage, WeightDtype};
    /// use brt_heap::{Heap, SharedBytes};
    /// let model = brt::bench::random_model(&brt_core::Config::plain(64, 32, 2, 16, 64, 1, 4), WeightDtype::F32, 1)?;
    /// let bytes = brt::gguf::to_bytes(&model, None, WeightDtype::Q8_0)?;
    /// let mapped = MappedModel::from_bytes(SharedBytes::copy_aligned(&bytes))?;
    /// let mut k = Reference::new(Heap);
    /// let weights = k.file_weights(&mapped)?;
    /// assert_eq!(Reference::<Heap>::weights_len(&weights), mapped.layout().len());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn file_weights(&mut self, model: &MappedModel) -> std::result::Result<Self::Weights, Self::Error> {
        self.weights_in_place(model.weight_bytes(), model.byte_layout())
    }
}

#[cfg(feature = "cpu")]
impl FileWeights for brt_cpu::Cpu<Heap> {
    fn file_weights(&mut self, model: &MappedModel) -> std::result::Result<Self::Weights, Self::Error> {
        self.weights_in_place(model.weight_bytes(), model.byte_layout())
    }
}

#[cfg(feature = "wgpu")]
impl FileWeights for brt_wgpu::Wgpu {}

#[cfg(feature = "cuda")]
impl FileWeights for brt_cuda::Cuda {}

/// Work that can run on any backend.
///
/// A job is written once and runs on every compiled-in backend:
///
/// ```
/// use brt::backend::FileWeights;
/// use brt::{run_on, BackendJob, BackendKind, Error};
/// use brt_core::Storage;
///
/// /// Writes values to a buffer of the backend and reads them back.
/// struct RoundTrip(Vec<f32>);
///
/// impl BackendJob for RoundTrip {
///     type Output = Vec<f32>;
///     fn run<K: FileWeights>(self, mut k: K) -> brt::Result<Vec<f32>>
///     where
///         Error: From<K::Error>,
///     {
///         let mut buffer = k.alloc_tensor(self.0.len())?;
///         k.write_tensor(&mut buffer, 0, &self.0)?;
///         let mut back = vec![0.0; self.0.len()];
///         k.read_tensor(&buffer, 0, &mut back)?;
///         Ok(back)
///     }
/// }
///
/// for kind in BackendKind::ALL.into_iter().filter(|k| matches!(k, BackendKind::Reference | BackendKind::Cpu)) {
///     if kind.is_compiled() {
///         assert_eq!(run_on(kind, RoundTrip(vec![1.0, 2.5]))?, [1.0, 2.5]);
///     }
/// }
/// # Ok::<(), brt::Error>(())
/// ```
pub trait BackendJob {
    /// What the work produces.
    type Output;
    /// Runs the work on kernels `k`.
    ///
    /// [`run_on`] calls it with the backend it makes, and returns its output
    /// (here the values read back):
    ///
    /// ```
    /// # use brt::backend::FileWeights;
    /// # use brt::{run_on, BackendJob, BackendKind, Error};
    /// # use brt_core::Storage;
    /// #
    /// # /// Writes values to a buffer of the backend and reads them back.
    /// # struct RoundTrip(Vec<f32>);
    /// #
    /// # impl BackendJob for RoundTrip {
    /// #     type Output = Vec<f32>;
    /// #     fn run<K: FileWeights>(self, mut k: K) -> brt::Result<Vec<f32>>
    /// #     where
    /// #         Error: From<K::Error>,
    /// #     {
    /// #         let mut buffer = k.alloc_tensor(self.0.len())?;
    /// #         k.write_tensor(&mut buffer, 0, &self.0)?;
    /// #         let mut back = vec![0.0; self.0.len()];
    /// #         k.read_tensor(&buffer, 0, &mut back)?;
    /// #         Ok(back)
    /// #     }
    /// # }
    ///
    /// let values: <RoundTrip as BackendJob>::Output = run_on(BackendKind::Reference, RoundTrip(vec![7.0]))?;
    /// assert_eq!(values, [7.0]);
    /// # Ok::<(), brt::Error>(())
    /// ```
    fn run<K: FileWeights>(self, k: K) -> Result<Self::Output>
    where
        Error: From<K::Error>;
}

/// Settings of a backend instance.
///
/// The default asks for every core and the backend's default head width:
///
/// ```
/// use brt::backend::BackendOptions;
/// let options = BackendOptions::default();
/// assert_eq!((options.threads, options.max_head_dim), (0, 0));
/// assert!(options.thread_count() >= 1);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct BackendOptions {
    /// Worker threads for CPU backends (0: all cores).
    pub threads: usize,
    /// The widest attention head the backend will run (0: the backend's default).
    pub max_head_dim: usize,
}

impl BackendOptions {
    /// Options for running models of `config` on `threads` threads (0: all cores).
    ///
    /// The backend is made ready for the model's heads:
    ///
    /// ```
    /// use brt::backend::BackendOptions;
    /// let config = brt_core::Config::plain(10, 256, 2, 128, 16, 1, 4);
    /// let options = BackendOptions::for_config(&config, 2);
    /// assert_eq!((options.threads, options.max_head_dim), (2, 128));
    /// ```
    pub fn for_config(config: &brt_core::Config, threads: usize) -> BackendOptions {
        BackendOptions { threads, max_head_dim: config.head_dim }
    }

    /// Threads to use: the number asked for, or every core.
    ///
    /// ```
    /// use brt::backend::BackendOptions;
    /// assert_eq!(BackendOptions { threads: 3, max_head_dim: 0 }.thread_count(), 3);
    /// let all = std::thread::available_parallelism().map_or(1, |n| n.get());
    /// assert_eq!(BackendOptions::default().thread_count(), all);
    /// ```
    pub fn thread_count(&self) -> usize {
        match self.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }

    #[cfg(feature = "cpu")]
    pub(crate) fn cpu(&self) -> Result<brt_cpu::Cpu<Heap>> {
        let defaults = brt_cpu::Options::default();
        let options = brt_cpu::Options {
            level: Some(cpu_simd_level()?),
            threads: self.thread_count(),
            max_head_dim: self.max_head_dim.max(defaults.max_head_dim),
            ..defaults
        };
        Ok(brt_cpu::Cpu::with_options(Heap, options)?)
    }
}

/// The SIMD level the CPU backend runs at: the one named by the environment
/// variable `BRT_SIMD` (`scalar`, `avx2`, `avx512` or `neon`), else the fastest
/// this CPU runs well ([`brt_cpu::SimdLevel::detect`]). The variable lets anyone
/// measure or test another level the processor has (as PyTorch's
/// `ATEN_CPU_CAPABILITY` does); a name that is no level, or a level this CPU
/// lacks, is an error.
///
/// ```
/// let level = brt::backend::cpu_simd_level()?;
/// assert!(level.is_supported());
/// # Ok::<(), brt::Error>(())
/// ```
#[cfg(feature = "cpu")]
pub fn cpu_simd_level() -> Result<brt_cpu::SimdLevel> {
    use brt_cpu::SimdLevel;
    let Some(name) = std::env::var_os("BRT_SIMD") else {
        return Ok(SimdLevel::detect());
    };
    let names = SimdLevel::ALL.map(SimdLevel::name).join(", ");
    let level = name.to_str().and_then(SimdLevel::from_name).ok_or_else(|| {
        Error::Invalid(format!("BRT_SIMD={name:?} names no SIMD level: use one of {names}, or unset it"))
    })?;
    if !level.is_supported() {
        let here = SimdLevel::available().map(SimdLevel::name).collect::<Vec<_>>().join(", ");
        return Err(Error::Invalid(format!("BRT_SIMD={level}: this CPU lacks {level} (it has {here})")));
    }
    Ok(level)
}

/// Runs `job` on a new instance of backend `kind` with default settings (one
/// thread).
///
/// The logits of a document, on the reference backend; a backend that is not
/// compiled in is an error:
///
/// ```
/// use brt::logits::{LogitsJob, TokenBatch};
/// use brt::model_file::LoadedModel;
/// use brt::{run_on, BackendKind};
/// use brt_core::{Config, WeightDtype};
/// let model = LoadedModel::InMemory(brt::bench::random_model(&Config::plain(16, 8, 2, 4, 16, 1, 4), WeightDtype::F32, 1)?);
/// let tokens = TokenBatch::new(1, 6, vec![1, 2, 3, 4, 5, 6])?;
/// let job = || LogitsJob { weights: &model, tokens: &tokens, chunk: 4 };
/// let logits = run_on(BackendKind::Reference, job())?;
/// assert_eq!(logits.len(), 6 * 16);
/// if !BackendKind::Wgpu.is_compiled() {
///     assert!(run_on(BackendKind::Wgpu, job()).is_err());
/// }
/// # Ok::<(), brt::Error>(())
/// ```
pub fn run_on<J: BackendJob>(kind: BackendKind, job: J) -> Result<J::Output> {
    run_on_with(kind, BackendOptions { threads: 1, max_head_dim: 0 }, job)
}

pub(crate) fn not_compiled<T>(kind: BackendKind) -> Result<T> {
    Err(Error::Invalid(format!(
        "backend `{kind}` is not compiled into this brt (it has: {}); rebuild with `--features {kind}`",
        BackendKind::compiled_names()
    )))
}

/// Runs `job` on a new instance of backend `kind`.
///
/// The CPU backend on two threads gives the reference backend's logits (to
/// rounding):
///
/// ```
/// use brt::logits::{LogitsJob, TokenBatch};
/// use brt::model_file::LoadedModel;
/// use brt::backend::{run_on_with, BackendOptions};
/// use brt::{run_on, BackendKind};
/// use brt_core::{Config, WeightDtype};
/// let model = LoadedModel::InMemory(brt::bench::random_model(&Config::plain(16, 8, 2, 4, 16, 1, 4), WeightDtype::F32, 1)?);
/// let tokens = TokenBatch::new(1, 6, vec![1, 2, 3, 4, 5, 6])?;
/// let job = || LogitsJob { weights: &model, tokens: &tokens, chunk: 4 };
/// let reference = run_on(BackendKind::Reference, job())?;
/// let options = BackendOptions { threads: 2, max_head_dim: 0 };
/// let cpu = run_on_with(BackendKind::default_kind(), options, job())?;
/// assert!(reference.iter().zip(&cpu).all(|(a, b)| (a - b).abs() < 1e-4));
/// # Ok::<(), brt::Error>(())
/// ```
pub fn run_on_with<J: BackendJob>(kind: BackendKind, options: BackendOptions, job: J) -> Result<J::Output> {
    // Only the CPU backend reads the options.
    #[cfg(not(feature = "cpu"))]
    let _ = options;
    match kind {
        BackendKind::Reference => job.run(brt_core::Reference::new(Heap)),
        #[cfg(feature = "cpu")]
        BackendKind::Cpu => job.run(options.cpu()?),
        #[cfg(feature = "wgpu")]
        BackendKind::Wgpu => job.run(brt_wgpu::Wgpu::new()?),
        #[cfg(feature = "cuda")]
        BackendKind::Cuda => job.run(brt_cuda::Cuda::new()?),
        #[allow(unreachable_patterns)] // every backend may be compiled in
        other => not_compiled(other),
    }
}

/// Work that needs gradients (training).
///
/// A job that trains runs on the backends with gradients, and gives the same
/// loss on each (to rounding):
///
/// ```
/// use brt::backend::{run_training_on, BackendOptions, TrainingJob};
/// use brt::train::{data::Corpus, optim::{Decay, Schedule}, TrainOptions, Trainer};
/// use brt::{BackendKind, Error, ModelWeights};
///
/// /// The loss of one training step.
/// struct OneStep<'a>(&'a ModelWeights);
///
/// impl TrainingJob for OneStep<'_> {
///     type Output = f64;
///     fn run<G: brt_core::Gradients>(self, g: G) -> brt::Result<f64>
///     where
///         Error: From<G::Error>,
///     {
///         let schedule = Schedule { peak: 1e-3, floor: 1e-3, warmup: 0, total: 1, decay: Decay::Cosine };
///         let options = TrainOptions { batch: 1, segment: 4, steps: 1, schedule, clip: 1.0, weight_decay: 0.0, seed: 1 };
///         let corpus = Corpus { documents: vec![(1..9).collect()], names: vec!["a".into()] };
///         Ok(Trainer::new(g, self.0, options)?.step(&corpus)?.loss)
///     }
/// }
/// # let model = brt::bench::random_model(&brt_core::Config::plain(16, 8, 2, 4, 16, 1, 4), brt_core::WeightDtype::F32, 1)?;
///
/// let options = BackendOptions { threads: 1, max_head_dim: 0 };
/// let reference = run_training_on(BackendKind::Reference, options, OneStep(&model))?;
/// let default = run_training_on(BackendKind::default_kind(), options, OneStep(&model))?;
/// assert!((reference - default).abs() < 1e-4);
/// # Ok::<(), brt::Error>(())
/// ```
pub trait TrainingJob {
    /// What the work produces.
    type Output;
    /// Runs the work on a backend with gradients.
    ///
    /// [`run_training_on`] calls it with the backend it makes:
    ///
    /// ```
    /// # use brt::backend::{run_training_on, BackendOptions, TrainingJob};
    /// # use brt::train::{data::Corpus, optim::{Decay, Schedule}, TrainOptions, Trainer};
    /// # use brt::{BackendKind, Error, ModelWeights};
    /// #
    /// # /// The loss of one training step.
    /// # struct OneStep<'a>(&'a ModelWeights);
    /// #
    /// # impl TrainingJob for OneStep<'_> {
    /// #     type Output = f64;
    /// #     fn run<G: brt_core::Gradients>(self, g: G) -> brt::Result<f64>
    /// #     where
    /// #         Error: From<G::Error>,
    /// #     {
    /// #         let schedule = Schedule { peak: 1e-3, floor: 1e-3, warmup: 0, total: 1, decay: Decay::Cosine };
    /// #         let options = TrainOptions { batch: 1, segment: 4, steps: 1, schedule, clip: 1.0, weight_decay: 0.0, seed: 1 };
    /// #         let corpus = Corpus { documents: vec![(1..9).collect()], names: vec!["a".into()] };
    /// #         Ok(Trainer::new(g, self.0, options)?.step(&corpus)?.loss)
    /// #     }
    /// # }
    /// # let model = brt::bench::random_model(&brt_core::Config::plain(16, 8, 2, 4, 16, 1, 4), brt_core::WeightDtype::F32, 1)?;
    ///
    /// let loss = run_training_on(BackendKind::Reference, BackendOptions::default(), OneStep(&model))?;
    /// assert!((loss - 16f64.ln()).abs() < 1.0); // a random model guesses about uniformly
    /// # Ok::<(), brt::Error>(())
    /// ```
    fn run<G: Gradients>(self, g: G) -> Result<Self::Output>
    where
        Error: From<G::Error>;
}

/// Runs `job` on backend `kind`, which must have gradients.
///
/// The GPU backends have no gradients yet: a training job there is refused
/// (whether or not they are compiled in):
///
/// ```
/// # use brt::backend::{run_training_on, BackendOptions, TrainingJob};
/// # use brt::train::{data::Corpus, optim::{Decay, Schedule}, TrainOptions, Trainer};
/// # use brt::{BackendKind, Error, ModelWeights};
/// #
/// # /// The loss of one training step.
/// # struct OneStep<'a>(&'a ModelWeights);
/// #
/// # impl TrainingJob for OneStep<'_> {
/// #     type Output = f64;
/// #     fn run<G: brt_core::Gradients>(self, g: G) -> brt::Result<f64>
/// #     where
/// #         Error: From<G::Error>,
/// #     {
/// #         let schedule = Schedule { peak: 1e-3, floor: 1e-3, warmup: 0, total: 1, decay: Decay::Cosine };
/// #         let options = TrainOptions { batch: 1, segment: 4, steps: 1, schedule, clip: 1.0, weight_decay: 0.0, seed: 1 };
/// #         let corpus = Corpus { documents: vec![(1..9).collect()], names: vec!["a".into()] };
/// #         Ok(Trainer::new(g, self.0, options)?.step(&corpus)?.loss)
/// #     }
/// # }
/// # let model = brt::bench::random_model(&brt_core::Config::plain(16, 8, 2, 4, 16, 1, 4), brt_core::WeightDtype::F32, 1)?;
///
/// for kind in [BackendKind::Wgpu, BackendKind::Cuda] {
///     let refused = run_training_on(kind, BackendOptions::default(), OneStep(&model));
///     assert!(refused.is_err());
/// }
/// assert!(run_training_on(BackendKind::Reference, BackendOptions::default(), OneStep(&model))?.is_finite());
/// # Ok::<(), brt::Error>(())
/// ```
pub fn run_training_on<J: TrainingJob>(kind: BackendKind, options: BackendOptions, job: J) -> Result<J::Output> {
    match kind {
        BackendKind::Reference => job.run(brt_core::Reference::new(Heap)),
        #[cfg(feature = "cpu")]
        BackendKind::Cpu => job.run(options.cpu()?),
        other if !other.is_compiled() => not_compiled(other),
        other => {
            let _ = options; // unused when the CPU backend is not compiled in
            Err(Error::Invalid(format!(
                "backend `{other}` has no gradients yet; train with `--backend cpu` or `reference`"
            )))
        }
    }
}
