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
///
/// The two pools add up as above:
///
/// ```
/// # static MODEL: &[u8] = brt_gguf::include_model!("../../brt-gguf/tests/data/plain.gguf");
/// use brt_capi::Sizes;
/// use brt_core::Plan;
/// let config = *brt_gguf::ModelFile::parse(MODEL)?.config();
/// let sizes = Sizes::for_model(MODEL, 6)?;
/// let scratch = brt_capi::options(&config).scratch_len().unwrap();
/// let activations = Plan::new(&config, 1, 6).unwrap().activations_len();
/// assert_eq!(sizes, Sizes { f32s: scratch + activations, u32s: 6 });
/// # Ok::<(), brt_capi::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sizes {
    /// f32 elements.
    pub f32s: usize,
    /// u32 elements.
    pub u32s: usize,
}

impl Sizes {
    /// Checks the model file `model` completely and sizes a runner for it.
    ///
    /// The sizes of the file's configuration; a file cut short is refused:
    ///
    /// ```
    /// # static MODEL: &[u8] = brt_gguf::include_model!("../../brt-gguf/tests/data/plain.gguf");
    /// use brt_capi::{Error, Sizes};
    /// let file = brt_gguf::ModelFile::parse(MODEL)?;
    /// assert_eq!(Sizes::for_model(MODEL, 4)?, Sizes::for_config(file.config(), 4)?);
    /// assert!(matches!(Sizes::for_model(&MODEL[..MODEL.len() - 1], 4), Err(Error::Model(_))));
    /// # Ok::<(), brt_capi::Error>(())
    /// ```
    pub fn for_model(model: &[u8], tokens_per_call: usize) -> Result<Sizes, Error> {
        Sizes::for_config(ModelFile::parse(model)?.config(), tokens_per_call)
    }

    /// The sizes for a model of `config`.
    ///
    /// One token id per token of a call, more activations for more tokens, and
    /// no calls of zero tokens:
    ///
    /// ```
    /// use brt_capi::{Config, Error, Sizes};
    /// let config = Config::plain(19, 8, 2, 3, 12, 2, 4);
    /// let (one, eight) = (Sizes::for_config(&config, 1)?, Sizes::for_config(&config, 8)?);
    /// assert_eq!((one.u32s, eight.u32s), (1, 8));
    /// assert!(eight.f32s > one.f32s);
    /// assert!(matches!(Sizes::for_config(&config, 0), Err(Error::TokensPerCall(_))));
    /// # Ok::<(), brt_capi::Error>(())
    /// ```
    pub fn for_config(config: &Config, tokens_per_call: usize) -> Result<Sizes, Error> {
        let plan = Plan::new(config, 1, tokens_per_call).map_err(Error::TokensPerCall)?;
        let scratch = options(config).scratch_len()?;
        let f32s = scratch.checked_add(plan.activations_len()).ok_or(OVERFLOW)?;
        Ok(Sizes { f32s, u32s: plan.tokens_len() })
    }

    /// Bytes of the two pools together (`4 * (f32s + u32s)`), as one region for
    /// [`Runner::open_in`]; `None` if that overflows.
    ///
    /// Four bytes per element of either pool:
    ///
    /// ```
    /// use brt_capi::Sizes;
    /// assert_eq!(Sizes { f32s: 10, u32s: 3 }.bytes(), Some(52));
    /// assert_eq!(Sizes { f32s: usize::MAX / 4, u32s: 1 }.bytes(), None);
    /// ```
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
///
/// One thread, this CPU's best SIMD level, tiles between the smallest and the
/// defaults, and the scratch that [`Sizes`] counts besides the activations:
///
/// ```
/// use brt_capi::{Config, Sizes};
/// use brt_cpu::{SimdLevel, Tiles};
/// let config = Config::plain(19, 8, 2, 3, 12, 2, 4);
/// let options = brt_capi::options(&config);
/// let level = SimdLevel::detect();
/// assert_eq!((options.threads, options.level), (1, Some(level)));
/// let (tiles, smallest, defaults) = (options.tiles.unwrap(), Tiles::smallest(level), Tiles::default_for(level));
/// assert!((smallest.gemv_columns..=defaults.gemv_columns).contains(&tiles.gemv_columns));
/// assert!((smallest.gemm_kc..=defaults.gemm_kc).contains(&tiles.gemm_kc));
/// let activations = brt_core::Plan::new(&config, 1, 4).unwrap().activations_len();
/// assert_eq!(options.scratch_len().unwrap(), Sizes::for_config(&config, 4)?.f32s - activations);
/// # Ok::<(), brt_capi::Error>(())
/// ```
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
///
/// A runner on the stack, over pools on the heap, at the start of a document:
///
/// ```
/// # static MODEL: &[u8] = brt_gguf::include_model!("../../brt-gguf/tests/data/plain.gguf");
/// use brt_capi::{Runner, Sizes};
/// let sizes = Sizes::for_model(MODEL, 4)?;
/// let (mut f32s, mut u32s) = (vec![0f32; sizes.f32s], vec![0u32; sizes.u32s]);
/// let runner = Runner::open(MODEL, &mut f32s, &mut u32s, 4)?;
/// assert_eq!(runner.position(), 0);
/// assert!(format!("{runner:?}").contains("position: 0"));
/// # Ok::<(), brt_capi::Error>(())
/// ```
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
    ///
    /// One element less of a pool is refused, one more is fine:
    ///
    /// ```
    /// # static MODEL: &[u8] = brt_gguf::include_model!("../../brt-gguf/tests/data/plain.gguf");
    /// use brt_capi::{Error, Runner, Sizes};
    /// let sizes = Sizes::for_model(MODEL, 4)?;
    /// let (mut f32s, mut u32s) = (vec![0f32; sizes.f32s + 1], vec![0u32; sizes.u32s]);
    /// let short = Runner::open(MODEL, &mut f32s[2..], &mut u32s, 4).unwrap_err();
    /// assert_eq!(short, Error::MemoryTooSmall { what: "f32 pool", needed: sizes.f32s, available: sizes.f32s - 1 });
    /// let runner = Runner::open(MODEL, &mut f32s, &mut u32s, 4)?;
    /// assert_eq!(runner.tokens_per_call(), 4);
    /// # Ok::<(), brt_capi::Error>(())
    /// ```
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
    ///
    /// The same logits as on two pools; a region that does not start at a
    /// multiple of 4 is refused:
    ///
    /// ```
    /// # static MODEL: &[u8] = brt_gguf::include_model!("../../brt-gguf/tests/data/plain.gguf");
    /// use brt_capi::{Error, Runner, Sizes};
    /// let sizes = Sizes::for_model(MODEL, 4)?;
    /// let n = sizes.bytes().unwrap();
    /// let mut words = vec![0u32; n / 4 + 1]; // u32s: aligned to 4
    /// let region: &mut [u8] = bytemuck::cast_slice_mut(&mut words);
    /// assert_eq!(Runner::open_in(MODEL, &mut region[1..], 4).unwrap_err(), Error::MisalignedMemory { needed: 4 });
    /// let mut in_region = Runner::open_in(MODEL, &mut region[..n], 4)?;
    /// let (mut f32s, mut u32s) = (vec![0f32; sizes.f32s], vec![0u32; sizes.u32s]);
    /// let mut in_pools = Runner::open(MODEL, &mut f32s, &mut u32s, 4)?;
    /// let (mut a, mut b) = (vec![0f32; in_region.vocab()], vec![0f32; in_pools.vocab()]);
    /// in_region.feed(&[1, 2, 3])?;
    /// in_pools.feed(&[1, 2, 3])?;
    /// in_region.logits(&mut a)?;
    /// in_pools.logits(&mut b)?;
    /// assert_eq!(a, b);
    /// # Ok::<(), brt_capi::Error>(())
    /// ```
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
    ///
    /// More tokens than one call holds go in several calls; an id out of range
    /// feeds none of them:
    ///
    /// ```
    /// # static MODEL: &[u8] = brt_gguf::include_model!("../../brt-gguf/tests/data/plain.gguf");
    /// # let sizes = brt_capi::Sizes::for_model(MODEL, 4)?;
    /// # let (mut f32s, mut u32s) = (vec![0f32; sizes.f32s], vec![0u32; sizes.u32s]);
    /// # let mut runner = brt_capi::Runner::open(MODEL, &mut f32s, &mut u32s, 4)?;
    /// use brt_capi::Error;
    /// runner.feed(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10])?; // calls of 4, 4 and 2
    /// assert_eq!(runner.position(), 10);
    /// let vocab = runner.vocab();
    /// let err = runner.feed(&[1, vocab as u32]).unwrap_err();
    /// assert_eq!(err, Error::TokenOutOfRange { index: 1, id: vocab as u32, vocab });
    /// assert_eq!(runner.position(), 10);
    /// # Ok::<(), brt_capi::Error>(())
    /// ```
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
    ///
    /// The logits of the CPU backend on the heap (`brt_cpu`, the same options),
    /// computed from the same weights and fed in the same calls:
    ///
    /// ```
    /// use brt_capi::{Error, Runner, Sizes};
    /// use brt_core::{init::initialize, Config, Model, Plan, Stream, WeightData, WeightDtype, WeightLayout};
    /// let config = Config::plain(19, 8, 2, 3, 12, 2, 4);
    /// let mut flat = vec![0f32; WeightLayout::new(&config).unwrap().len()];
    /// initialize(&config, 7, &mut flat).unwrap();
    /// let bytes = brt_gguf::write(&config, None, WeightData::F32(&flat)).unwrap();
    /// let mut words = vec![0u32; bytes.len().div_ceil(4)]; // aligned to 4
    /// bytemuck::cast_slice_mut::<u32, u8>(&mut words)[..bytes.len()].copy_from_slice(&bytes);
    /// let model = &bytemuck::cast_slice::<u32, u8>(&words)[..bytes.len()];
    ///
    /// let sizes = Sizes::for_model(model, 4)?;
    /// let (mut f32s, mut u32s) = (vec![0f32; sizes.f32s], vec![0u32; sizes.u32s]);
    /// let mut runner = Runner::open(model, &mut f32s, &mut u32s, 4)?;
    /// let mut logits = vec![0f32; config.vocab];
    /// assert_eq!(runner.logits(&mut logits), Err(Error::NoLogits));
    /// assert!(matches!(runner.logits(&mut logits[1..]), Err(Error::LogitsLength { .. })));
    /// runner.feed(&[5, 6, 7, 8, 9, 10])?; // calls of 4 and 2
    /// runner.logits(&mut logits)?;
    ///
    /// let mut k = brt_cpu::Cpu::with_options(brt_cpu::Heap, brt_capi::options(&config)).unwrap();
    /// let heap = Model::from_flat(&mut k, &config, WeightDtype::F32, WeightData::F32(&flat)).unwrap();
    /// let mut stream = Stream::new(&mut k, &heap, Plan::new(&config, 1, 4).unwrap()).unwrap();
    /// stream.forward(&mut k, &heap, &[5, 6, 7, 8], &[]).unwrap();
    /// stream.forward(&mut k, &heap, &[9, 10], &[]).unwrap();
    /// let mut both = vec![0f32; 2 * config.vocab]; // one row per token of the last call
    /// stream.read_logits(&mut k, &mut both).unwrap();
    /// assert_eq!(logits, both[config.vocab..]);
    /// # Ok::<(), brt_capi::Error>(())
    /// ```
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
    ///
    /// After a reset the same tokens give the same logits as the first time:
    ///
    /// ```
    /// # static MODEL: &[u8] = brt_gguf::include_model!("../../brt-gguf/tests/data/plain.gguf");
    /// # let sizes = brt_capi::Sizes::for_model(MODEL, 4)?;
    /// # let (mut f32s, mut u32s) = (vec![0f32; sizes.f32s], vec![0u32; sizes.u32s]);
    /// # let mut runner = brt_capi::Runner::open(MODEL, &mut f32s, &mut u32s, 4)?;
    /// use brt_capi::Error;
    /// let (mut first, mut again) = (vec![0f32; runner.vocab()], vec![0f32; runner.vocab()]);
    /// runner.feed(&[3, 1, 4, 1, 5])?;
    /// runner.logits(&mut first)?;
    /// runner.reset()?;
    /// assert_eq!(runner.position(), 0);
    /// assert_eq!(runner.logits(&mut again), Err(Error::NoLogits));
    /// runner.feed(&[3, 1, 4, 1, 5])?;
    /// runner.logits(&mut again)?;
    /// assert_eq!(first, again);
    /// # Ok::<(), brt_capi::Error>(())
    /// ```
    pub fn reset(&mut self) -> Result<(), Error> {
        self.position = 0;
        self.stream.reset_all(&mut self.cpu, &self.model)?;
        Ok(())
    }

    /// The model's configuration.
    ///
    /// The one in the model file:
    ///
    /// ```
    /// # static MODEL: &[u8] = brt_gguf::include_model!("../../brt-gguf/tests/data/plain.gguf");
    /// # let sizes = brt_capi::Sizes::for_model(MODEL, 4)?;
    /// # let (mut f32s, mut u32s) = (vec![0f32; sizes.f32s], vec![0u32; sizes.u32s]);
    /// # let mut runner = brt_capi::Runner::open(MODEL, &mut f32s, &mut u32s, 4)?;
    /// assert_eq!(runner.config(), brt_gguf::ModelFile::parse(MODEL)?.config());
    /// # Ok::<(), brt_capi::Error>(())
    /// ```
    pub fn config(&self) -> &Config {
        self.model.config()
    }

    /// The vocabulary size: token ids are below it, and logits have this many values.
    ///
    /// The configuration's; the last id is fed, the next refused:
    ///
    /// ```
    /// # static MODEL: &[u8] = brt_gguf::include_model!("../../brt-gguf/tests/data/plain.gguf");
    /// # let sizes = brt_capi::Sizes::for_model(MODEL, 4)?;
    /// # let (mut f32s, mut u32s) = (vec![0f32; sizes.f32s], vec![0u32; sizes.u32s]);
    /// # let mut runner = brt_capi::Runner::open(MODEL, &mut f32s, &mut u32s, 4)?;
    /// let vocab = runner.vocab();
    /// assert_eq!(vocab, runner.config().vocab);
    /// runner.feed(&[vocab as u32 - 1])?;
    /// assert!(runner.feed(&[vocab as u32]).is_err());
    /// assert_eq!(runner.position(), 1);
    /// # Ok::<(), brt_capi::Error>(())
    /// ```
    pub fn vocab(&self) -> usize {
        self.config().vocab
    }

    /// The most tokens of one call (what memory was sized for).
    ///
    /// The number given to [`Runner::open`], one token id each in the u32 pool:
    ///
    /// ```
    /// # static MODEL: &[u8] = brt_gguf::include_model!("../../brt-gguf/tests/data/plain.gguf");
    /// # let sizes = brt_capi::Sizes::for_model(MODEL, 4)?;
    /// # let (mut f32s, mut u32s) = (vec![0f32; sizes.f32s], vec![0u32; sizes.u32s]);
    /// # let mut runner = brt_capi::Runner::open(MODEL, &mut f32s, &mut u32s, 4)?;
    /// assert_eq!(runner.tokens_per_call(), 4);
    /// assert_eq!(runner.tokens_per_call(), sizes.u32s);
    /// # Ok::<(), brt_capi::Error>(())
    /// ```
    pub fn tokens_per_call(&self) -> usize {
        self.stream.plan().max_tokens()
    }

    /// Tokens fed since opening or the last reset.
    ///
    /// ```
    /// # static MODEL: &[u8] = brt_gguf::include_model!("../../brt-gguf/tests/data/plain.gguf");
    /// # let sizes = brt_capi::Sizes::for_model(MODEL, 4)?;
    /// # let (mut f32s, mut u32s) = (vec![0f32; sizes.f32s], vec![0u32; sizes.u32s]);
    /// # let mut runner = brt_capi::Runner::open(MODEL, &mut f32s, &mut u32s, 4)?;
    /// // Every token fed counts, none fed counts nothing, a reset starts again.
    /// runner.feed(&[1, 2, 3])?;
    /// runner.feed(&[])?;
    /// runner.feed(&[4, 5, 6, 7, 8])?;
    /// assert_eq!(runner.position(), 8);
    /// runner.reset()?;
    /// assert_eq!(runner.position(), 0);
    /// # Ok::<(), brt_capi::Error>(())
    /// ```
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The CPU backend's SIMD level (the best this CPU has).
    ///
    /// ```
    /// # static MODEL: &[u8] = brt_gguf::include_model!("../../brt-gguf/tests/data/plain.gguf");
    /// # let sizes = brt_capi::Sizes::for_model(MODEL, 4)?;
    /// # let (mut f32s, mut u32s) = (vec![0f32; sizes.f32s], vec![0u32; sizes.u32s]);
    /// # let mut runner = brt_capi::Runner::open(MODEL, &mut f32s, &mut u32s, 4)?;
    /// // The level brt_cpu detects on this CPU, as `options` sets it.
    /// assert_eq!(runner.simd_level(), brt_cpu::SimdLevel::detect());
    /// assert_eq!(Some(runner.simd_level()), brt_capi::options(runner.config()).level);
    /// # Ok::<(), brt_capi::Error>(())
    /// ```
    pub fn simd_level(&self) -> brt_cpu::SimdLevel {
        self.cpu.level()
    }
}
