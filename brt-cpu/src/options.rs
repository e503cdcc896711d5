//! How to build a [`crate::Cpu`] backend ([`Options`]), and how much memory it
//! and a stream on it take ([`StreamMemory`]), known before anything is
//! allocated.

use crate::tiles::Tiles;
use crate::{CpuError, SimdLevel};
use brt_core::params::T5_BUCKETS;
use brt_core::{Config, CoreError, GateKind, Plan};

/// How to build a [`crate::Cpu`] backend.
///
/// The backend is built as the options say, and takes exactly
/// [`Options::scratch_len`] values from its memory:
///
/// ```
/// use brt_core::Arena;
/// use brt_cpu::{Cpu, CpuError, Options, SimdLevel, Tiles};
///
/// let options = Options {
///     level: Some(SimdLevel::Scalar),
///     threads: 1,
///     max_head_dim: 16,
///     gradient_sums: 0,
///     tiles: Some(Tiles::smallest(SimdLevel::Scalar)),
/// };
/// let mut f32s = vec![0f32; options.scratch_len()?];
/// let k = Cpu::with_options(Arena::new(&mut f32s, &mut [], &mut []), options)?;
/// assert_eq!((k.level(), k.threads(), k.tiles()), (SimdLevel::Scalar, 1, Tiles::smallest(SimdLevel::Scalar)));
/// assert_eq!(k.memory().remaining(), (0, 0, 0));
/// # Ok::<(), CpuError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// The SIMD level; `None` picks the fastest this CPU supports. Forcing a level
    /// the CPU lacks is an error.
    pub level: Option<SimdLevel>,
    /// Threads in all, the caller's included (more than one needs the `std`
    /// feature).
    pub threads: usize,
    /// The widest attention head the backend will be asked for; it sizes the
    /// backend's own scratch ([`Options::for_config`] takes the model's).
    pub max_head_dim: usize,
    /// Training only: values of parameter-gradient sums a backward kernel keeps
    /// per thread beside its own scratch (a norm's or a gate's `d_model`, twice
    /// that for LSTM gates, `33` per head for an attention's scale and bias).
    /// At the default tiles the products' scratch leaves room for any model;
    /// with small tiles a backward call that needs more is refused. 0 by
    /// default; [`Options::for_config`] sets what the model needs.
    pub gradient_sums: usize,
    /// The kernels' blocking sizes, which decide the scratch; `None` is
    /// [`Tiles::default_for`] the level in use. Tiles suit one level (most are
    /// multiples of its micro-tile), so with `level: None` take them for
    /// [`Options::resolve_level`].
    pub tiles: Option<Tiles>,
}

impl Default for Options {
    fn default() -> Self {
        Options { level: None, threads: 1, max_head_dim: 256, gradient_sums: 0, tiles: None }
    }
}

impl Options {
    /// The widest head `max_head_dim` may ask for.
    ///
    /// Wider heads are refused before anything is allocated:
    ///
    /// ```
    /// use brt_cpu::{CpuError, Options};
    ///
    /// let at_limit = Options { max_head_dim: Options::MAX_HEAD_DIM, ..Options::default() };
    /// assert!(at_limit.scratch_per_thread().is_ok());
    /// let over = Options { max_head_dim: Options::MAX_HEAD_DIM + 1, ..Options::default() };
    /// assert!(matches!(over.scratch_len(), Err(CpuError::Capacity { limit: Options::MAX_HEAD_DIM, .. })));
    /// ```
    pub const MAX_HEAD_DIM: usize = 1 << 16;

    /// The most `gradient_sums` may ask for.
    ///
    /// More is refused before anything is allocated:
    ///
    /// ```
    /// use brt_cpu::{CpuError, Options};
    ///
    /// let over = Options { gradient_sums: Options::MAX_GRADIENT_SUMS + 1, ..Options::default() };
    /// assert!(matches!(over.scratch_per_thread(), Err(CpuError::Capacity { limit: Options::MAX_GRADIENT_SUMS, .. })));
    /// ```
    pub const MAX_GRADIENT_SUMS: usize = 1 << 24;

    /// `threads` threads, everything else default.
    ///
    /// Only the thread count differs from [`Options::default`]:
    ///
    /// ```
    /// use brt_cpu::{Cpu, Heap, Options};
    ///
    /// let options = Options::threads(1);
    /// assert_eq!(options, Options::default());
    /// assert_eq!(Options::threads(4), Options { threads: 4, ..Options::default() });
    /// assert_eq!(Cpu::with_options(Heap, options).unwrap().threads(), 1);
    /// ```
    pub fn threads(threads: usize) -> Options {
        Options { threads, ..Options::default() }
    }

    /// One thread, the default tiles, and the scratch sized from the model:
    /// heads of `config.head_dim` (instead of the default 256) and room for its
    /// parameter-gradient sums (so that it also trains at small tiles).
    ///
    /// The head width is the model's, and there is room for a norm's `d_model`
    /// sums and for `33` per head of an attention's scale and bias:
    ///
    /// ```
    /// use brt_core::Config;
    /// use brt_cpu::Options;
    ///
    /// let config = Config::plain(40, 16, 2, 8, 32, 3, 4);
    /// let options = Options::for_config(&config);
    /// assert_eq!(options.max_head_dim, 8);
    /// assert!(options.gradient_sums >= config.d_model);
    /// assert!(options.gradient_sums >= 2 * 33);
    /// assert_eq!((options.threads, options.level, options.tiles), (1, None, None));
    /// ```
    pub fn for_config(config: &Config) -> Options {
        let gates = if config.gate == GateKind::Lstm { 2 } else { 1 };
        let gradient_sums = (gates * config.d_model).max(config.heads * (1 + T5_BUCKETS));
        Options { max_head_dim: config.head_dim.max(1), gradient_sums, ..Options::default() }
    }

    /// The level these options resolve to on this CPU.
    ///
    /// `None` is the detected level; a forced level must be supported:
    ///
    /// ```
    /// use brt_cpu::{CpuError, Options, SimdLevel};
    ///
    /// assert_eq!(Options::default().resolve_level(), Ok(SimdLevel::detect()));
    /// let scalar = Options { level: Some(SimdLevel::Scalar), ..Options::default() };
    /// assert_eq!(scalar.resolve_level(), Ok(SimdLevel::Scalar));
    /// // x86-64 and aarch64 levels are never both supported.
    /// let missing = SimdLevel::ALL.into_iter().find(|l| !l.is_supported()).unwrap();
    /// let forced = Options { level: Some(missing), ..Options::default() };
    /// assert_eq!(forced.resolve_level(), Err(CpuError::UnsupportedLevel { level: missing }));
    /// ```
    pub fn resolve_level(&self) -> Result<SimdLevel, CpuError> {
        match self.level {
            None => Ok(SimdLevel::detect()),
            Some(level) if level.is_supported() => Ok(level),
            Some(level) => Err(CpuError::UnsupportedLevel { level }),
        }
    }

    /// The tiles these options resolve to on this CPU ([`Options::tiles`], or the
    /// level's defaults), checked against the level.
    ///
    /// Without tiles they are the resolved level's defaults; tiles that do not
    /// suit the level are an error:
    ///
    /// ```
    /// use brt_cpu::{CpuError, Options, SimdLevel, Tiles};
    ///
    /// let level = SimdLevel::Scalar;
    /// let options = Options { level: Some(level), ..Options::default() };
    /// assert_eq!(options.resolve_tiles(), Ok(Tiles::default_for(level)));
    /// let bad = Tiles { gemm_nc: 0, ..Tiles::smallest(level) };
    /// let options = Options { tiles: Some(bad), ..options };
    /// assert!(matches!(options.resolve_tiles(), Err(CpuError::Tile { what: "gemm_nc", .. })));
    /// ```
    pub fn resolve_tiles(&self) -> Result<Tiles, CpuError> {
        let level = self.resolve_level()?;
        let tiles = self.tiles.unwrap_or(Tiles::default_for(level));
        tiles.check(level)?;
        Ok(tiles)
    }

    /// f32 elements of scratch each thread takes: the largest need of any kernel,
    /// forward or backward, at these tiles and head width (every option checked).
    ///
    /// It covers the products' packing buffers, `(gemm_mc + gemm_nc) *
    /// gemm_kc` values ([`Tiles::gemm_kc`]), and grows with the widest head:
    ///
    /// ```
    /// use brt_cpu::{CpuError, Options, SimdLevel, Tiles};
    ///
    /// let tiles = Tiles::default_for(SimdLevel::Scalar);
    /// let options = Options { level: Some(SimdLevel::Scalar), tiles: Some(tiles), ..Options::default() };
    /// let per = options.scratch_per_thread()?;
    /// assert!(per >= (tiles.gemm_mc + tiles.gemm_nc) * tiles.gemm_kc);
    /// let wide = Options { max_head_dim: 4 * options.max_head_dim, ..options };
    /// assert!(wide.scratch_per_thread()? >= per);
    /// # Ok::<(), CpuError>(())
    /// ```
    pub fn scratch_per_thread(&self) -> Result<usize, CpuError> {
        let level = self.resolve_level()?;
        let tiles = self.resolve_tiles()?;
        if self.max_head_dim > Options::MAX_HEAD_DIM {
            return Err(CpuError::Capacity {
                what: "`max_head_dim` option",
                needed: self.max_head_dim,
                limit: Options::MAX_HEAD_DIM,
            });
        }
        if self.gradient_sums > Options::MAX_GRADIENT_SUMS {
            return Err(CpuError::Capacity {
                what: "`gradient_sums` option",
                needed: self.gradient_sums,
                limit: Options::MAX_GRADIENT_SUMS,
            });
        }
        let per = tiles.per_thread(level, self.max_head_dim, self.gradient_sums);
        usize::try_from(per).map_err(|_| CpuError::Core(CoreError::SizeOverflow { what: "CPU scratch per thread" }))
    }

    /// f32 elements the backend takes from its memory at construction:
    /// [`Options::scratch_per_thread`] for every thread, and nothing else. Size
    /// a caller-provided [`brt_core::Arena`] with this plus the model's and the
    /// stream's needs ([`Options::stream_memory`]).
    ///
    /// One thread's scratch per thread:
    ///
    /// ```
    /// use brt_cpu::{CpuError, Options};
    ///
    /// let one = Options::threads(1);
    /// assert_eq!(one.scratch_len()?, one.scratch_per_thread()?);
    /// let three = Options::threads(3);
    /// assert_eq!(three.scratch_len()?, 3 * three.scratch_per_thread()?);
    /// # Ok::<(), CpuError>(())
    /// ```
    pub fn scratch_len(&self) -> Result<usize, CpuError> {
        self.scratch_per_thread()?
            .checked_mul(self.threads.max(1))
            .ok_or(CpuError::Core(CoreError::SizeOverflow { what: "CPU scratch" }))
    }

    /// The memory a stream of `plan` takes on a backend built with these
    /// options, weights excluded: the stream state, the stream's scratch, the
    /// backend's scratch and the token ids, before anything is allocated.
    ///
    /// Each part comes from the plan or from these options:
    ///
    /// ```
    /// use brt_core::{Config, Plan};
    /// use brt_cpu::Options;
    ///
    /// let config = Config::plain(40, 16, 2, 8, 32, 3, 4);
    /// let plan = Plan::new(&config, 1, 10).unwrap();
    /// let options = Options::for_config(&config);
    /// let memory = options.stream_memory(&plan).unwrap();
    /// assert_eq!(memory.state, plan.state_len());
    /// assert_eq!(memory.stream_scratch, plan.scratch().total());
    /// assert_eq!(memory.backend_scratch, options.scratch_len().unwrap());
    /// assert_eq!(memory.tokens, plan.tokens_len());
    /// ```
    pub fn stream_memory(&self, plan: &Plan) -> Result<StreamMemory, CpuError> {
        let memory = StreamMemory {
            state: plan.state_len(),
            stream_scratch: plan.scratch().total(),
            backend_scratch: self.scratch_len()?,
            tokens: plan.tokens_len(),
        };
        // Every count is of 4-byte values: the bytes in all must fit too.
        [memory.state, memory.stream_scratch, memory.backend_scratch, memory.tokens]
            .into_iter()
            .try_fold(0usize, usize::checked_add)
            .and_then(|n| n.checked_mul(4))
            .ok_or(CpuError::Core(CoreError::SizeOverflow { what: "stream memory" }))?;
        Ok(memory)
    }
}

/// The host memory of a stream on the CPU backend, weights excluded
/// ([`Options::stream_memory`]), in elements of 4 bytes each.
///
/// Sized this way, a [`brt_core::Arena`] holds exactly the backend and a stream:
/// an f32 pool of [`StreamMemory::f32_len`] values (plus the weights, if they
/// are stored there as f32) and a u32 pool of [`StreamMemory::u32_len`] ids.
///
/// An arena of exactly these sizes (plus the f32 weights) holds a model and a
/// stream that runs a forward pass, and is then full:
///
/// ```
/// use brt_core::{Arena, Config, Model, Plan, Stream, WeightData, WeightDtype};
/// use brt_cpu::{Cpu, Options};
///
/// let config = Config::plain(40, 16, 2, 8, 32, 1, 4);
/// let plan = Plan::new(&config, 1, 4).unwrap();
/// let options = Options::for_config(&config);
/// let memory = options.stream_memory(&plan).unwrap();
/// let weights = vec![0.01f32; plan.weights_len()];
/// let mut f32s = vec![0f32; memory.f32_len() + weights.len()];
/// let mut u32s = vec![0u32; memory.u32_len()];
/// let mut k = Cpu::with_options(Arena::new(&mut f32s, &mut [], &mut u32s), options).unwrap();
/// let model = Model::from_flat(&mut k, &config, WeightDtype::F32, WeightData::F32(&weights)).unwrap();
/// let mut stream = Stream::new(&mut k, &model, plan).unwrap();
/// stream.forward(&mut k, &model, &[1, 2, 3, 4], &[]).unwrap();
/// assert_eq!(k.memory().remaining(), (0, 0, 0));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamMemory {
    /// f32 values of the stream state: every layer's KV cache, linear-attention
    /// sums and recurrent state ([`Plan::state_len`]).
    pub state: usize,
    /// f32 values of the stream's scratch, the logits of one call included
    /// ([`Plan::scratch`]'s total).
    pub stream_scratch: usize,
    /// f32 values of the backend's own scratch ([`Options::scratch_len`]).
    pub backend_scratch: usize,
    /// u32 token ids of one call ([`Plan::tokens_len`]).
    pub tokens: usize,
}

impl StreamMemory {
    /// f32 values in all: state, stream scratch and backend scratch.
    ///
    /// The sum of the three f32 parts:
    ///
    /// ```
    /// use brt_cpu::StreamMemory;
    ///
    /// let memory = StreamMemory { state: 100, stream_scratch: 20, backend_scratch: 3, tokens: 8 };
    /// assert_eq!(memory.f32_len(), 123);
    /// ```
    pub fn f32_len(&self) -> usize {
        self.state.saturating_add(self.stream_scratch).saturating_add(self.backend_scratch)
    }

    /// u32 values in all: the token ids.
    ///
    /// Just the token ids:
    ///
    /// ```
    /// use brt_cpu::StreamMemory;
    ///
    /// let memory = StreamMemory { state: 100, stream_scratch: 20, backend_scratch: 3, tokens: 8 };
    /// assert_eq!(memory.u32_len(), 8);
    /// ```
    pub fn u32_len(&self) -> usize {
        self.tokens
    }

    /// Bytes in all, `4 * (f32_len + u32_len)` ([`Options::stream_memory`]
    /// checked that it fits; other values saturate).
    ///
    /// Four bytes per value, saturating instead of overflowing:
    ///
    /// ```
    /// use brt_cpu::StreamMemory;
    ///
    /// let memory = StreamMemory { state: 100, stream_scratch: 20, backend_scratch: 3, tokens: 8 };
    /// assert_eq!(memory.bytes(), 4 * (123 + 8));
    /// let huge = StreamMemory { state: usize::MAX, ..memory };
    /// assert_eq!(huge.bytes(), usize::MAX);
    /// ```
    pub fn bytes(&self) -> usize {
        self.f32_len().saturating_add(self.u32_len()).saturating_mul(4)
    }
}
