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
    pub const ALL: [BackendKind; 4] = [BackendKind::Reference, BackendKind::Cpu, BackendKind::Wgpu, BackendKind::Cuda];

    /// The name used on the command line.
    pub const fn name(self) -> &'static str {
        match self {
            BackendKind::Reference => "reference",
            BackendKind::Cpu => "cpu",
            BackendKind::Wgpu => "wgpu",
            BackendKind::Cuda => "cuda",
        }
    }

    /// Whether this build of brt contains the backend.
    pub const fn is_compiled(self) -> bool {
        match self {
            BackendKind::Reference => true,
            BackendKind::Cpu => cfg!(feature = "cpu"),
            BackendKind::Wgpu => cfg!(feature = "wgpu"),
            BackendKind::Cuda => cfg!(feature = "cuda"),
        }
    }

    /// The backend used when none is named: the CPU backend when compiled in.
    pub const fn default_kind() -> BackendKind {
        if cfg!(feature = "cpu") {
            BackendKind::Cpu
        } else {
            BackendKind::Reference
        }
    }

    /// The names of the compiled-in backends, for messages.
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
pub trait FileWeights: Kernels {
    /// The parameter buffer for `model`'s weights, in `model.layout()`.
    /// A backend that cannot read Q8_0 refuses it in `alloc_weights` with a
    /// message (the GPU backends); a Q8_0 model, the only one without a view of
    /// values of one type, cannot get past that.
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
pub trait BackendJob {
    /// What the work produces.
    type Output;
    /// Runs the work on kernels `k`.
    fn run<K: FileWeights>(self, k: K) -> Result<Self::Output>
    where
        Error: From<K::Error>;
}

/// Settings of a backend instance.
#[derive(Clone, Copy, Debug, Default)]
pub struct BackendOptions {
    /// Worker threads for CPU backends (0: all cores).
    pub threads: usize,
    /// The widest attention head the backend will run (0: the backend's default).
    pub max_head_dim: usize,
}

impl BackendOptions {
    /// Options for running models of `config` on `threads` threads (0: all cores).
    pub fn for_config(config: &brt_core::Config, threads: usize) -> BackendOptions {
        BackendOptions { threads, max_head_dim: config.head_dim }
    }

    /// Threads to use: the number asked for, or every core.
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
            threads: self.thread_count(),
            max_head_dim: self.max_head_dim.max(defaults.max_head_dim),
            ..defaults
        };
        Ok(brt_cpu::Cpu::with_options(Heap, options)?)
    }
}

/// Runs `job` on a new instance of backend `kind` with default settings (one
/// thread).
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
pub trait TrainingJob {
    /// What the work produces.
    type Output;
    /// Runs the work on a backend with gradients.
    fn run<G: Gradients>(self, g: G) -> Result<Self::Output>
    where
        Error: From<G::Error>;
}

/// Runs `job` on backend `kind`, which must have gradients.
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
