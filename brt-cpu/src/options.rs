//! How to build a [`crate::Cpu`] backend ([`Options`]), and how much memory it
//! and a stream on it take ([`StreamMemory`]), known before anything is
//! allocated.

use crate::tiles::Tiles;
use crate::{CpuError, SimdLevel};
use brt_core::params::T5_BUCKETS;
use brt_core::{Config, CoreError, GateKind, Plan};

/// How to build a [`crate::Cpu`] backend.
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
    pub const MAX_HEAD_DIM: usize = 1 << 16;

    /// The most `gradient_sums` may ask for.
    pub const MAX_GRADIENT_SUMS: usize = 1 << 24;

    /// `threads` threads, everything else default.
    pub fn threads(threads: usize) -> Options {
        Options { threads, ..Options::default() }
    }

    /// One thread, the default tiles, and the scratch sized from the model:
    /// heads of `config.head_dim` (instead of the default 256) and room for its
    /// parameter-gradient sums (so that it also trains at small tiles).
    pub fn for_config(config: &Config) -> Options {
        let gates = if config.gate == GateKind::Lstm { 2 } else { 1 };
        let gradient_sums = (gates * config.d_model).max(config.heads * (1 + T5_BUCKETS));
        Options { max_head_dim: config.head_dim.max(1), gradient_sums, ..Options::default() }
    }

    /// The level these options resolve to on this CPU.
    pub fn resolve_level(&self) -> Result<SimdLevel, CpuError> {
        match self.level {
            None => Ok(SimdLevel::detect()),
            Some(level) if level.is_supported() => Ok(level),
            Some(level) => Err(CpuError::UnsupportedLevel { level }),
        }
    }

    /// The tiles these options resolve to on this CPU ([`Options::tiles`], or the
    /// level's defaults), checked against the level.
    pub fn resolve_tiles(&self) -> Result<Tiles, CpuError> {
        let level = self.resolve_level()?;
        let tiles = self.tiles.unwrap_or(Tiles::default_for(level));
        tiles.check(level)?;
        Ok(tiles)
    }

    /// f32 elements of scratch each thread takes: the largest need of any kernel,
    /// forward or backward, at these tiles and head width (every option checked).
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
    pub fn scratch_len(&self) -> Result<usize, CpuError> {
        self.scratch_per_thread()?
            .checked_mul(self.threads.max(1))
            .ok_or(CpuError::Core(CoreError::SizeOverflow { what: "CPU scratch" }))
    }

    /// The memory a stream of `plan` takes on a backend built with these
    /// options, weights excluded: the stream state, the stream's scratch, the
    /// backend's scratch and the token ids, before anything is allocated.
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
    pub fn f32_len(&self) -> usize {
        self.state.saturating_add(self.stream_scratch).saturating_add(self.backend_scratch)
    }

    /// u32 values in all: the token ids.
    pub fn u32_len(&self) -> usize {
        self.tokens
    }

    /// Bytes in all, `4 * (f32_len + u32_len)` ([`Options::stream_memory`]
    /// checked that it fits; other values saturate).
    pub fn bytes(&self) -> usize {
        self.f32_len().saturating_add(self.u32_len()).saturating_mul(4)
    }
}
