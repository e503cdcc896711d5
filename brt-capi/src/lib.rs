//! # brt-capi
//!
//! brt for firmware and C programs: a [`Runner`] that streams tokens through a
//! Block-Recurrent Transformer read from a brt model file (GGUF, written by
//! `brt convert`), with its weights used where they lie (flash, ROM, a mapped or
//! read file) and every other buffer carved from memory the caller provides,
//! sized exactly in advance by [`Sizes`]. `no_std`, no allocator, one thread, the
//! SIMD level of the CPU it runs on.
//!
//! The [`c`] module is the same API for C (`include/brt.h`); the static library
//! for C programs is built by `c-lib/` (see the README).
//!
//! ```
//! # fn main() -> Result<(), brt_capi::Error> {
//! # let (words, len) = brt_capi_doc::model();
//! # let model: &[u8] = &bytemuck::cast_slice::<u64, u8>(&words)[..len];
//! use brt_capi::{Runner, Sizes};
//! // `model`: the bytes of a model file, at an address aligned to 4 bytes.
//! let sizes = Sizes::for_model(model, 16)?;
//! let mut f32s = vec![0f32; sizes.f32s];
//! let mut u32s = vec![0u32; sizes.u32s];
//! let mut runner = Runner::open(model, &mut f32s, &mut u32s, 16)?;
//! runner.feed(&[3, 4, 5])?;
//! let mut logits = vec![0f32; runner.vocab()];
//! runner.logits(&mut logits)?;
//! runner.reset()?; // a new document
//! # Ok(())
//! # }
//! # mod brt_capi_doc {
//! #     pub fn model() -> (Vec<u64>, usize) {
//! #         let config = brt_core::Config::plain(40, 16, 2, 8, 32, 2, 4);
//! #         let mut flat = vec![0f32; brt_core::WeightLayout::new(&config).unwrap().len()];
//! #         brt_core::init::initialize(&config, 1, &mut flat).unwrap();
//! #         let bytes = brt_gguf::write(&config, None, brt_core::WeightData::F32(&flat)).unwrap();
//! #         let mut words = vec![0u64; bytes.len().div_ceil(8)];
//! #         bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..bytes.len()].copy_from_slice(&bytes);
//! #         (words, bytes.len())
//! #     }
//! # }
//! ```
#![no_std]

pub mod c;
mod error;

pub use brt_core::Config;
pub use error::{code_name, message, Error};

use brt_core::{Arena, Model, Plan, Stream};
use brt_cpu::{Cpu, Options, SimdLevel, Tiles};
use brt_gguf::ModelFile;

/// Sizes too large for this machine's addresses.
const OVERFLOW: Error = Error::TokensPerCall(brt_core::CoreError::SizeOverflow { what: "runner memory" });

/// The CPU backend on the caller's memory.
type Backend<'m> = Cpu<Arena<'m>>;

/// Exactly how much memory a [`Runner`] takes for a model and a number of tokens
/// per call, besides the model file itself (whose weights are used in place):
///
/// - `f32s = scratch(CPU backend) + state + scratch(stream)`: the CPU backend's
///   packing and attention scratch (`brt_cpu::Options::scratch_len` for one
///   thread, the model's head width and the smallest tiles: it depends on the
///   SIMD level of this CPU), the carried stream state (every layer's key/value cache, recurrent
///   states, linear-attention sums) and the scratch of one call of
///   `tokens_per_call` tokens (`brt_core::Plan::activations_len`);
/// - `u32s = tokens_per_call`: the token ids of one call.
///
/// Memory grows with `tokens_per_call` (activations of one call); any number of
/// tokens can be fed at once, in calls of at most that many.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sizes {
    /// f32 elements.
    pub f32s: usize,
    /// u32 elements.
    pub u32s: usize,
}

impl Sizes {
    /// Checks the model file `model` completely and sizes a runner for it.
    pub fn for_model(model: &[u8], tokens_per_call: usize) -> Result<Sizes, Error> {
        Sizes::for_config(ModelFile::parse(model)?.config(), tokens_per_call)
    }

    /// The sizes for a model of `config`.
    pub fn for_config(config: &Config, tokens_per_call: usize) -> Result<Sizes, Error> {
        let plan = Plan::new(config, 1, tokens_per_call).map_err(Error::TokensPerCall)?;
        let scratch = options(config).scratch_len()?;
        let f32s = scratch.checked_add(plan.activations_len()).ok_or(OVERFLOW)?;
        Ok(Sizes { f32s, u32s: plan.tokens_len() })
    }

    /// Bytes of the two pools together (`4 * (f32s + u32s)`), as one region for
    /// [`Runner::open_in`]; `None` if that overflows.
    pub fn bytes(&self) -> Option<usize> {
        self.f32s.checked_add(self.u32s)?.checked_mul(4)
    }
}

/// The CPU backend's settings a runner uses for `config`: one thread (no std),
/// scratch for the model's head width and the smallest tiles of the best SIMD
/// level this CPU has, so the backend's own scratch takes kilobytes, not
/// megabytes (firmware first; the products run somewhat slower than with the
/// default tiles of the `brt` program, which a microcontroller's caches could
/// not hold anyway).
///
/// The attentions' scratch sets the smallest tiles' size, so the products'
/// sizes (the columns of a one-row product, the inner block of a packed one)
/// then grow for free: each is doubled, up to its default, while the scratch
/// stays the same. On the firmware's Cortex-M4F that took a token from 7.5 M to
/// 3.4 M instructions (`firmware/check.sh`).
pub fn options(config: &Config) -> Options {
    let level = SimdLevel::detect();
    let smallest = Tiles::smallest(level);
    let base = Options { threads: 1, level: Some(level), tiles: Some(smallest), ..Options::for_config(config) };
    let Ok(budget) = base.scratch_per_thread() else { return base };
    let fits = |tiles: Tiles| Options { tiles: Some(tiles), ..base }.scratch_per_thread().is_ok_and(|n| n <= budget);
    let defaults = Tiles::default_for(level);
    let mut tiles = smallest;
    while tiles.gemv_columns < defaults.gemv_columns && fits(Tiles { gemv_columns: tiles.gemv_columns * 2, ..tiles }) {
        tiles.gemv_columns *= 2;
    }
    while tiles.gemm_kc < defaults.gemm_kc && fits(Tiles { gemm_kc: tiles.gemm_kc * 2, ..tiles }) {
        tiles.gemm_kc *= 2;
    }
    Options { tiles: Some(tiles), ..base }
}

/// A model streaming one document: the CPU backend on the caller's memory, the
/// model with its weights in the model file, and the stream state.
///
/// `'m` is the lifetime of both the model file and the caller's memory: the
/// runner borrows them and holds nothing else, so it can live anywhere (on the
/// stack, in a static, in the caller's memory as the C interface places it).
pub struct Runner<'m> {
    cpu: Backend<'m>,
    model: Model<Backend<'m>>,
    stream: Stream<Backend<'m>>,
    /// Tokens fed since opening or the last reset.
    position: u64,
}

impl core::fmt::Debug for Runner<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Runner")
            .field("cpu", &self.cpu)
            .field("config", self.config())
            .field("position", &self.position)
            .finish_non_exhaustive()
    }
}

impl<'m> Runner<'m> {
    /// Opens the model file `model` (checked completely; it must lie at an
    /// address aligned for its weight type: 4 bytes is always enough) for
    /// calls of at most `tokens_per_call` tokens, on the caller's pools, which
    /// must hold at least [`Sizes::for_model`]'s elements (more are left unused).
    pub fn open(
        model: &'m [u8],
        f32s: &'m mut [f32],
        u32s: &'m mut [u32],
        tokens_per_call: usize,
    ) -> Result<Runner<'m>, Error> {
        Runner::open_file(ModelFile::parse(model)?, f32s, u32s, tokens_per_call)
    }

    /// As [`Runner::open`], on one region of bytes aligned to 4 that holds at
    /// least [`Sizes::bytes`]: the f32 pool first, then the u32 pool.
    pub fn open_in(model: &'m [u8], memory: &'m mut [u8], tokens_per_call: usize) -> Result<Runner<'m>, Error> {
        Runner::open_file_in(ModelFile::parse(model)?, memory, tokens_per_call)
    }

    /// [`Runner::open_in`] of a file already checked (the C interface checks it
    /// once for the sizes and the opening).
    pub(crate) fn open_file_in(
        file: ModelFile<'m>,
        memory: &'m mut [u8],
        tokens_per_call: usize,
    ) -> Result<Runner<'m>, Error> {
        let sizes = Sizes::for_config(file.config(), tokens_per_call)?;
        let needed = sizes.bytes().ok_or(OVERFLOW)?;
        if memory.len() < needed {
            return Err(Error::MemoryTooSmall { what: "memory region (bytes)", needed, available: memory.len() });
        }
        let (f32s, rest) = memory.split_at_mut(sizes.f32s * 4);
        let u32s = &mut rest[..sizes.u32s * 4];
        let f32s: &mut [f32] = bytemuck::try_cast_slice_mut(f32s).map_err(|_| Error::MisalignedMemory { needed: 4 })?;
        let u32s: &mut [u32] = bytemuck::try_cast_slice_mut(u32s).map_err(|_| Error::MisalignedMemory { needed: 4 })?;
        Runner::open_file(file, f32s, u32s, tokens_per_call)
    }

    /// [`Runner::open`] of a file already checked.
    fn open_file(
        file: ModelFile<'m>,
        f32s: &'m mut [f32],
        u32s: &'m mut [u32],
        tokens_per_call: usize,
    ) -> Result<Runner<'m>, Error> {
        let config = *file.config();
        let sizes = Sizes::for_config(&config, tokens_per_call)?;
        if f32s.len() < sizes.f32s {
            return Err(Error::MemoryTooSmall { what: "f32 pool", needed: sizes.f32s, available: f32s.len() });
        }
        if u32s.len() < sizes.u32s {
            return Err(Error::MemoryTooSmall { what: "u32 pool", needed: sizes.u32s, available: u32s.len() });
        }
        let mut cpu = Cpu::with_options(Arena::new(f32s, &mut [], u32s), options(&config))?;
        let weights = cpu.weights_in_place(file.weight_bytes(), file.byte_layout())?;
        let model = Model::with_layout(*file.layout(), file.dtype(), weights)?;
        let plan = Plan::new(&config, 1, tokens_per_call).map_err(Error::TokensPerCall)?;
        let stream = Stream::new(&mut cpu, &model, plan)?;
        Ok(Runner { cpu, model, stream, position: 0 })
    }

    /// Feeds `tokens` (any number; none does nothing) to the document, in calls
    /// of at most `tokens_per_call`. Every id is checked first: an id outside the
    /// vocabulary feeds nothing. After any other error, [`Runner::reset`].
    pub fn feed(&mut self, tokens: &[u32]) -> Result<(), Error> {
        let vocab = self.vocab();
        if let Some((index, &id)) = tokens.iter().enumerate().find(|(_, &id)| id as usize >= vocab) {
            return Err(Error::TokenOutOfRange { index, id, vocab });
        }
        for call in tokens.chunks(self.tokens_per_call()) {
            self.stream.forward(&mut self.cpu, &self.model, call, &[])?;
            self.position += call.len() as u64;
        }
        Ok(())
    }

    /// Writes the logits (scores of the next token, `vocab` values) after the
    /// last token fed into `out`, which must hold exactly [`Runner::vocab`] values.
    pub fn logits(&self, out: &mut [f32]) -> Result<(), Error> {
        let vocab = self.vocab();
        if out.len() != vocab {
            return Err(Error::LogitsLength { expected: vocab, actual: out.len() });
        }
        let last = self.stream.last_tokens();
        if self.position == 0 || last == 0 {
            return Err(Error::NoLogits);
        }
        // The last call's logits are `last x vocab` (one row per token, batch 1).
        let start = (last - 1) * vocab;
        let row = self.stream.logits().get(start..start + vocab).ok_or(Error::Backend(brt_cpu::CpuError::Core(
            brt_core::CoreError::BufferTooSmall { what: "logits", needed: start + vocab, available: 0 },
        )))?;
        out.copy_from_slice(row);
        Ok(())
    }

    /// Starts a new document: empty caches, the learned initial recurrent state.
    pub fn reset(&mut self) -> Result<(), Error> {
        self.position = 0;
        self.stream.reset_all(&mut self.cpu, &self.model)?;
        Ok(())
    }

    /// The model's configuration.
    pub fn config(&self) -> &Config {
        self.model.config()
    }

    /// The vocabulary size: token ids are below it, and logits have this many values.
    pub fn vocab(&self) -> usize {
        self.config().vocab
    }

    /// The most tokens of one call (what memory was sized for).
    pub fn tokens_per_call(&self) -> usize {
        self.stream.plan().max_tokens()
    }

    /// Tokens fed since opening or the last reset.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The CPU backend's SIMD level (the best this CPU has).
    pub fn simd_level(&self) -> brt_cpu::SimdLevel {
        self.cpu.level()
    }
}
