//! The cell algebra: a stream of blocks through the decoder stack (SPEC 5), with
//! per-row document resets, carried KV caches and recurrent states.

mod context;
mod kv;
mod layer;
mod scratch;
mod state;

pub use scratch::Scratch;

use crate::config::Config;
use crate::desc::{Embed, Matmul, Rows, Strided};
use crate::error::CoreError;
use crate::kernels::{KResult, Kernels, View, ViewMut, WeightView};
use crate::model::Model;
use crate::params::Param;
use crate::plan::Plan;
use context::LayerCtx;
use kv::KvWindow;
use layer::StateUpdates;

/// A run of positions of one call that lies inside one block.
///
/// Three tokens into a block of 4, a call of 6 tokens first finishes that block.
///
/// ```
/// use brt_core::{pieces, Piece};
/// let first = pieces(3, 6, 4).next().unwrap();
/// assert_eq!(first, Piece { start: 0, end: 1, completes_block: true });
/// # Ok::<(), brt_core::CoreError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece {
    /// First position (counted from the start of the call).
    pub start: usize,
    /// One past the last position.
    pub end: usize,
    /// Whether the block ends with this piece (its state update is due).
    pub completes_block: bool,
}

/// Splits positions `0..tokens` of a call at block boundaries, the batch being
/// `position_in_block` tokens into a block when the call starts. At most
/// `tokens / window + 2` pieces.
///
/// A call of 6 tokens starting 3 into a block of 4: one token ends that block, four fill the next,
/// one starts a third.
///
/// ```
/// use brt_core::pieces;
/// let split: Vec<_> = pieces(3, 6, 4).map(|p| (p.start, p.end, p.completes_block)).collect();
/// assert_eq!(split, [(0, 1, true), (1, 5, true), (5, 6, false)]);
/// assert_eq!(pieces(0, 0, 4).count(), 0);
/// # Ok::<(), brt_core::CoreError>(())
/// ```
pub fn pieces(position_in_block: usize, tokens: usize, window: usize) -> impl Iterator<Item = Piece> {
    let mut start = 0;
    core::iter::from_fn(move || {
        if start >= tokens || window == 0 {
            return None;
        }
        let in_block = (position_in_block + start) % window;
        let end = tokens.min(start + window - in_block);
        let piece = Piece { start, end, completes_block: (position_in_block + end) % window == 0 };
        start = end;
        Some(piece)
    })
}

/// The most pieces a layer handles in one go, so they fit in a stack array.
const PIECES_PER_GROUP: usize = 64;

/// The streaming state of `B` documents on a backend: every layer's carried keys,
/// values, linear sums and recurrent states, plus the scratch of one call.
///
/// Two documents side by side; row 1 starts a new document at a block boundary, which is refused in
/// the middle of a block while row 0 goes on.
///
/// ```
/// # use brt_core::{init::initialize, Arena, Config, CoreError, Model};
/// # use brt_core::{Plan, Reference, Stream, WeightData, WeightDtype};
/// # let config = Config::plain(11, 4, 1, 3, 5, 2, 2);
/// # let plan = Plan::new(&config, 2, 3)?; // 2 rows, up to 3 tokens a call, blocks of 2
/// # let mut weights = vec![0f32; plan.weights_len()];
/// # initialize(&config, 5, &mut weights)?;
/// # let (mut f32s, mut ids) = (vec![0f32; 1 << 14], vec![0u32; 64]);
/// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
/// # let model = Model::from_flat(&mut k, &config, WeightDtype::F32, WeightData::F32(&weights))?;
/// let mut stream = Stream::new(&mut k, &model, plan)?;
/// stream.forward(&mut k, &model, &[1, 2, 3, 4, 5, 6], &[])?; // 3 tokens a row
/// assert_eq!(stream.position_in_block(), 1);
/// let refused = stream.forward(&mut k, &model, &[7, 8], &[false, true]);
/// assert_eq!(refused, Err(CoreError::UnalignedReset { position_in_block: 1 }));
/// stream.forward(&mut k, &model, &[7, 8], &[])?; // ends the block
/// stream.forward(&mut k, &model, &[9, 10], &[false, true])?;
/// assert_eq!(stream.last_tokens(), 1);
/// # Ok::<(), brt_core::CoreError>(())
/// ```
pub struct Stream<K: Kernels> {
    plan: Plan,
    state: K::Tensor,
    scratch: Scratch<K::Tensor>,
    tokens: K::Tokens,
    position_in_block: usize,
    last_tokens: usize,
    /// Positions from the start of every KV region to its window.
    kv_start: usize,
}

impl<K: Kernels> core::fmt::Debug for Stream<K> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Stream")
            .field("plan", &self.plan)
            .field("position_in_block", &self.position_in_block)
            .finish_non_exhaustive()
    }
}

fn layer_ctx<'m, K: Kernels>(model: &'m Model<K>, batch: usize, layer: usize) -> LayerCtx<'m, K::Weights> {
    LayerCtx { weights: model.weights(), spans: model.layout().layer(layer), config: model.config(), batch, layer }
}

fn global<K: Kernels>(model: &Model<K>, param: Param) -> Result<WeightView<'_, K::Weights>, CoreError> {
    let span = model.span(param).ok_or(CoreError::Mismatch { what: "model without a global parameter" })?;
    Ok(WeightView::new(model.weights(), span.offset))
}

impl<K: Kernels> Stream<K> {
    /// Allocates a stream for `plan` on `k`; every row starts a new document.
    ///
    /// A new stream is at the start of a block; a plan made for another configuration is refused.
    ///
    /// ```
    /// # use brt_core::{init::initialize, Arena, Config, CoreError, Model};
    /// # use brt_core::{Plan, Reference, Stream, WeightData, WeightDtype};
    /// # let config = Config::plain(11, 4, 1, 3, 5, 2, 2);
    /// # let plan = Plan::new(&config, 2, 3)?; // 2 rows, up to 3 tokens a call, blocks of 2
    /// # let mut weights = vec![0f32; plan.weights_len()];
    /// # initialize(&config, 5, &mut weights)?;
    /// # let (mut f32s, mut ids) = (vec![0f32; 1 << 14], vec![0u32; 64]);
    /// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
    /// # let model = Model::from_flat(&mut k, &config, WeightDtype::F32, WeightData::F32(&weights))?;
    /// let stream = Stream::new(&mut k, &model, plan)?;
    /// assert_eq!((stream.position_in_block(), stream.last_tokens()), (0, 0));
    /// let other = Plan::new(&Config { window: 3, ..config }, 2, 3)?;
    /// assert!(matches!(Stream::new(&mut k, &model, other), Err(CoreError::Mismatch { .. })));
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub fn new(k: &mut K, model: &Model<K>, plan: Plan) -> Result<Self, K::Error> {
        if plan.config() != model.config() {
            return Err(CoreError::Mismatch { what: "the plan was made for another configuration" }.into());
        }
        let state = k.alloc_tensor(plan.state_len())?;
        let scratch = Scratch::allocate(k, &plan)?;
        let tokens = k.alloc_tokens(plan.tokens_len())?;
        let mut stream = Stream { plan, state, scratch, tokens, position_in_block: 0, last_tokens: 0, kv_start: 0 };
        stream.reset_all(k, model)?;
        Ok(stream)
    }

    /// The plan.
    ///
    /// The stream keeps the plan it was made for.
    ///
    /// ```
    /// # use brt_core::{init::initialize, Arena, Config, CoreError, Model};
    /// # use brt_core::{Plan, Reference, Stream, WeightData, WeightDtype};
    /// # let config = Config::plain(11, 4, 1, 3, 5, 2, 2);
    /// # let plan = Plan::new(&config, 2, 3)?; // 2 rows, up to 3 tokens a call, blocks of 2
    /// # let mut weights = vec![0f32; plan.weights_len()];
    /// # initialize(&config, 5, &mut weights)?;
    /// # let (mut f32s, mut ids) = (vec![0f32; 1 << 14], vec![0u32; 64]);
    /// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
    /// # let model = Model::from_flat(&mut k, &config, WeightDtype::F32, WeightData::F32(&weights))?;
    /// let stream = Stream::new(&mut k, &model, plan)?;
    /// assert_eq!((stream.plan().batch(), stream.plan().max_tokens()), (2, 3));
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub fn plan(&self) -> &Plan {
        &self.plan
    }
    /// The configuration.
    ///
    /// The configuration is the plan's, and the model's.
    ///
    /// ```
    /// # use brt_core::{init::initialize, Arena, Config, CoreError, Model};
    /// # use brt_core::{Plan, Reference, Stream, WeightData, WeightDtype};
    /// # let config = Config::plain(11, 4, 1, 3, 5, 2, 2);
    /// # let plan = Plan::new(&config, 2, 3)?; // 2 rows, up to 3 tokens a call, blocks of 2
    /// # let mut weights = vec![0f32; plan.weights_len()];
    /// # initialize(&config, 5, &mut weights)?;
    /// # let (mut f32s, mut ids) = (vec![0f32; 1 << 14], vec![0u32; 64]);
    /// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
    /// # let model = Model::from_flat(&mut k, &config, WeightDtype::F32, WeightData::F32(&weights))?;
    /// let stream = Stream::new(&mut k, &model, plan)?;
    /// assert_eq!(stream.config(), &config);
    /// assert_eq!(stream.config(), model.config());
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub fn config(&self) -> &Config {
        self.plan.config()
    }
    /// How many tokens into the current block the batch is.
    ///
    /// With blocks of 2, three tokens end one block and start the next; one more ends it.
    ///
    /// ```
    /// # use brt_core::{init::initialize, Arena, Config, CoreError, Model};
    /// # use brt_core::{Plan, Reference, Stream, WeightData, WeightDtype};
    /// # let config = Config::plain(11, 4, 1, 3, 5, 2, 2);
    /// # let plan = Plan::new(&config, 2, 3)?; // 2 rows, up to 3 tokens a call, blocks of 2
    /// # let mut weights = vec![0f32; plan.weights_len()];
    /// # initialize(&config, 5, &mut weights)?;
    /// # let (mut f32s, mut ids) = (vec![0f32; 1 << 14], vec![0u32; 64]);
    /// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
    /// # let model = Model::from_flat(&mut k, &config, WeightDtype::F32, WeightData::F32(&weights))?;
    /// let mut stream = Stream::new(&mut k, &model, plan)?;
    /// stream.forward(&mut k, &model, &[1, 2, 3, 4, 5, 6], &[])?;
    /// assert_eq!(stream.position_in_block(), 1);
    /// stream.forward(&mut k, &model, &[7, 8], &[])?;
    /// assert_eq!(stream.position_in_block(), 0);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub fn position_in_block(&self) -> usize {
        self.position_in_block
    }
    /// Tokens per row of the last call (rows of the logits buffer that are valid).
    ///
    /// It counts tokens per row, not in all, and an empty call leaves no valid logits.
    ///
    /// ```
    /// # use brt_core::{init::initialize, Arena, Config, CoreError, Model};
    /// # use brt_core::{Plan, Reference, Stream, WeightData, WeightDtype};
    /// # let config = Config::plain(11, 4, 1, 3, 5, 2, 2);
    /// # let plan = Plan::new(&config, 2, 3)?; // 2 rows, up to 3 tokens a call, blocks of 2
    /// # let mut weights = vec![0f32; plan.weights_len()];
    /// # initialize(&config, 5, &mut weights)?;
    /// # let (mut f32s, mut ids) = (vec![0f32; 1 << 14], vec![0u32; 64]);
    /// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
    /// # let model = Model::from_flat(&mut k, &config, WeightDtype::F32, WeightData::F32(&weights))?;
    /// let mut stream = Stream::new(&mut k, &model, plan)?;
    /// stream.forward(&mut k, &model, &[1, 2, 3, 4, 5, 6], &[])?;
    /// assert_eq!(stream.last_tokens(), 3);
    /// stream.forward(&mut k, &model, &[], &[])?;
    /// assert_eq!(stream.last_tokens(), 0);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub fn last_tokens(&self) -> usize {
        self.last_tokens
    }
    /// The logits of the last call: `T x B x V`, position-major.
    ///
    /// On the reference backend the buffer is a slice: its first `T x B x V` values are what
    /// [`Stream::read_logits`] copies.
    ///
    /// ```
    /// # use brt_core::{init::initialize, Arena, Config, CoreError, Model};
    /// # use brt_core::{Plan, Reference, Stream, WeightData, WeightDtype};
    /// # let config = Config::plain(11, 4, 1, 3, 5, 2, 2);
    /// # let plan = Plan::new(&config, 2, 3)?; // 2 rows, up to 3 tokens a call, blocks of 2
    /// # let mut weights = vec![0f32; plan.weights_len()];
    /// # initialize(&config, 5, &mut weights)?;
    /// # let (mut f32s, mut ids) = (vec![0f32; 1 << 14], vec![0u32; 64]);
    /// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
    /// # let model = Model::from_flat(&mut k, &config, WeightDtype::F32, WeightData::F32(&weights))?;
    /// let mut stream = Stream::new(&mut k, &model, plan)?;
    /// stream.forward(&mut k, &model, &[1, 2], &[])?;
    /// let mut copied = vec![0f32; 2 * config.vocab];
    /// stream.read_logits(&mut k, &mut copied)?;
    /// assert_eq!(stream.logits()[..copied.len()], copied[..]);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub fn logits(&self) -> &K::Tensor {
        &self.scratch.logits
    }
    /// The final hidden states of the last call, `T x B x d` (before the final norm).
    ///
    /// Both rows start a document with token 3, so their first hidden states are equal; a different
    /// token gives a different one.
    ///
    /// ```
    /// # use brt_core::{init::initialize, Arena, Config, CoreError, Model};
    /// # use brt_core::{Plan, Reference, Stream, WeightData, WeightDtype};
    /// # let config = Config::plain(11, 4, 1, 3, 5, 2, 2);
    /// # let plan = Plan::new(&config, 2, 3)?; // 2 rows, up to 3 tokens a call, blocks of 2
    /// # let mut weights = vec![0f32; plan.weights_len()];
    /// # initialize(&config, 5, &mut weights)?;
    /// # let (mut f32s, mut ids) = (vec![0f32; 1 << 14], vec![0u32; 64]);
    /// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
    /// # let model = Model::from_flat(&mut k, &config, WeightDtype::F32, WeightData::F32(&weights))?;
    /// let mut stream = Stream::new(&mut k, &model, plan)?;
    /// stream.forward(&mut k, &model, &[3, 3, 4, 5], &[])?; // rows: [3, 4] and [3, 5]
    /// let (d, x) = (config.d_model, stream.residual_stream());
    /// assert_eq!(x[..d], x[d..2 * d]);
    /// assert_ne!(x[2 * d..3 * d], x[3 * d..4 * d]);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub fn residual_stream(&self) -> &K::Tensor {
        &self.scratch.x
    }
    /// Copies the carried state (what a session saves) into `out`, in the saved
    /// layout: the plan's layout without runway, [`Plan::saved_state_len`]
    /// elements, the same whatever the runway.
    ///
    /// A new document's caches are zero; after a call they hold its keys and values. The output
    /// must have exactly the saved length.
    ///
    /// ```
    /// # use brt_core::{init::initialize, Arena, Config, CoreError, Model};
    /// # use brt_core::{Plan, Reference, Stream, WeightData, WeightDtype};
    /// # let config = Config::plain(11, 4, 1, 3, 5, 2, 2);
    /// # let plan = Plan::new(&config, 2, 3)?; // 2 rows, up to 3 tokens a call, blocks of 2
    /// # let mut weights = vec![0f32; plan.weights_len()];
    /// # initialize(&config, 5, &mut weights)?;
    /// # let (mut f32s, mut ids) = (vec![0f32; 1 << 14], vec![0u32; 64]);
    /// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
    /// # let model = Model::from_flat(&mut k, &config, WeightDtype::F32, WeightData::F32(&weights))?;
    /// let mut stream = Stream::new(&mut k, &model, plan)?;
    /// let mut state = vec![1f32; plan.saved_state_len()];
    /// stream.read_state(&mut k, &mut state)?;
    /// assert!(state.iter().all(|&x| x == 0.0));
    /// stream.forward(&mut k, &model, &[1, 2, 3, 4], &[])?;
    /// stream.read_state(&mut k, &mut state)?;
    /// assert!(state.iter().any(|&x| x != 0.0));
    /// assert!(stream.read_state(&mut k, &mut state[1..]).is_err());
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub fn read_state(&self, k: &mut K, out: &mut [f32]) -> KResult<K> {
        let expected = self.plan.saved_state_len();
        if out.len() != expected {
            return Err(CoreError::LengthMismatch { what: "stream state output", expected, actual: out.len() }.into());
        }
        for run in self.plan.saved_runs(self.kv_offset()) {
            k.read_tensor(&self.state, run.memory, &mut out[run.saved..run.saved + run.len])?;
        }
        Ok(())
    }
    /// Replaces the carried state and the position in the block (restoring a
    /// session). The buffer must be in the saved layout ([`Stream::read_state`]).
    ///
    /// A saved session resumes exactly: after restoring, the next call gives the same logits as the
    /// first time. A position outside the block is refused.
    ///
    /// ```
    /// # use brt_core::{init::initialize, Arena, Config, CoreError, Model};
    /// # use brt_core::{Plan, Reference, Stream, WeightData, WeightDtype};
    /// # let config = Config::plain(11, 4, 1, 3, 5, 2, 2);
    /// # let plan = Plan::new(&config, 2, 3)?; // 2 rows, up to 3 tokens a call, blocks of 2
    /// # let mut weights = vec![0f32; plan.weights_len()];
    /// # initialize(&config, 5, &mut weights)?;
    /// # let (mut f32s, mut ids) = (vec![0f32; 1 << 14], vec![0u32; 64]);
    /// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
    /// # let model = Model::from_flat(&mut k, &config, WeightDtype::F32, WeightData::F32(&weights))?;
    /// let mut stream = Stream::new(&mut k, &model, plan)?;
    /// stream.forward(&mut k, &model, &[1, 2, 3, 4, 5, 6], &[])?;
    /// let (mut saved, at) = (vec![0f32; plan.saved_state_len()], stream.position_in_block());
    /// stream.read_state(&mut k, &mut saved)?;
    /// let mut first = vec![0f32; 2 * config.vocab];
    /// stream.forward(&mut k, &model, &[7, 8], &[])?;
    /// stream.read_logits(&mut k, &mut first)?;
    /// stream.restore(&mut k, &saved, at)?;
    /// let mut again = vec![0f32; 2 * config.vocab];
    /// stream.forward(&mut k, &model, &[7, 8], &[])?;
    /// stream.read_logits(&mut k, &mut again)?;
    /// assert_eq!(first, again);
    /// assert!(stream.restore(&mut k, &saved, config.window).is_err());
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub fn restore(&mut self, k: &mut K, state: &[f32], position_in_block: usize) -> KResult<K> {
        if state.len() != self.plan.saved_state_len() {
            return Err(CoreError::LengthMismatch {
                what: "saved stream state",
                expected: self.plan.saved_state_len(),
                actual: state.len(),
            }
            .into());
        }
        if position_in_block >= self.config().window {
            return Err(CoreError::InvalidShape { what: "saved position is not inside a block" }.into());
        }
        self.kv_start = 0;
        for run in self.plan.saved_runs(0) {
            k.write_tensor(&mut self.state, run.memory, &state[run.saved..run.saved + run.len])?;
        }
        self.position_in_block = position_in_block;
        Ok(())
    }

    /// Elements from the start of every KV region to its window.
    fn kv_offset(&self) -> usize {
        self.kv_start * self.plan.batch() * self.config().qkv_width()
    }

    /// Where the KV windows are for a run of `n` positions, and where they go.
    fn kv_window(&self, n: usize) -> KvWindow {
        let in_place = self.kv_start + n <= self.plan.kv_runway();
        let next = if in_place { (self.kv_start + n) * self.plan.batch() * self.config().qkv_width() } else { 0 };
        KvWindow { offset: self.kv_offset(), next, in_place }
    }

    /// Starts a new document in every row.
    ///
    /// After a reset the stream behaves as a new one: the same tokens give the same logits.
    ///
    /// ```
    /// # use brt_core::{init::initialize, Arena, Config, CoreError, Model};
    /// # use brt_core::{Plan, Reference, Stream, WeightData, WeightDtype};
    /// # let config = Config::plain(11, 4, 1, 3, 5, 2, 2);
    /// # let plan = Plan::new(&config, 2, 3)?; // 2 rows, up to 3 tokens a call, blocks of 2
    /// # let mut weights = vec![0f32; plan.weights_len()];
    /// # initialize(&config, 5, &mut weights)?;
    /// # let (mut f32s, mut ids) = (vec![0f32; 1 << 14], vec![0u32; 64]);
    /// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
    /// # let model = Model::from_flat(&mut k, &config, WeightDtype::F32, WeightData::F32(&weights))?;
    /// let mut stream = Stream::new(&mut k, &model, plan)?;
    /// let mut fresh = vec![0f32; 2 * config.vocab];
    /// stream.forward(&mut k, &model, &[1, 2], &[])?;
    /// stream.read_logits(&mut k, &mut fresh)?;
    /// stream.forward(&mut k, &model, &[3, 4, 5, 6], &[])?;
    /// stream.reset_all(&mut k, &model)?;
    /// assert_eq!(stream.position_in_block(), 0);
    /// let mut again = vec![0f32; 2 * config.vocab];
    /// stream.forward(&mut k, &model, &[1, 2], &[])?;
    /// stream.read_logits(&mut k, &mut again)?;
    /// assert_eq!(fresh, again);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub fn reset_all(&mut self, k: &mut K, model: &Model<K>) -> KResult<K> {
        for row in 0..self.plan.batch() {
            self.reset_row(k, model, row)?;
        }
        self.position_in_block = 0;
        self.refresh_states(k, model)
    }

    /// Zero caches and sums, initial state: the start of a document in `row`.
    fn reset_row(&mut self, k: &mut K, model: &Model<K>, row: usize) -> KResult<K> {
        let config = *self.config();
        let batch = self.plan.batch();
        let qkv = config.qkv_width();
        let window = self.kv_offset() + row * qkv;
        for layer in 0..config.layers {
            let ls = self.plan.layer_state(layer);
            if ls.kv_positions > 0 {
                let runs = Strided::new(ls.kv_positions, qkv, batch * qkv)?;
                k.fill(ViewMut::new(&mut self.state, ls.keys + window), runs, 0.0)?;
                k.fill(ViewMut::new(&mut self.state, ls.values + window), runs, 0.0)?;
            }
            if let Some(at) = ls.linear {
                let per_row = config.heads * config.head_dim * (config.head_dim + 1);
                k.fill(ViewMut::new(&mut self.state, at + row * per_row), Strided::contiguous(per_row), 0.0)?;
            }
            if ls.recurrent.is_some() {
                state::reset_row(k, &layer_ctx(model, batch, layer), &ls, row, &mut self.state)?;
            }
        }
        Ok(())
    }

    /// Recomputes every recurrent state's keys and values after a reset.
    fn refresh_states(&mut self, k: &mut K, model: &Model<K>) -> KResult<K> {
        let batch = self.plan.batch();
        for layer in self.config().recurrent.iter() {
            let ls = self.plan.layer_state(layer);
            state::refresh_projections(
                k,
                &layer_ctx(model, batch, layer),
                &ls,
                &mut self.state,
                &mut self.scratch.state_norm,
            )?;
        }
        Ok(())
    }

    /// Applies document starts: `resets[b]` starts a new document in row `b`.
    fn apply_resets(&mut self, k: &mut K, model: &Model<K>, resets: &[bool]) -> KResult<K> {
        let batch = self.plan.batch();
        // A wrong length is refused even when no flag is set: it is a caller's
        // mistake either way.
        if !resets.is_empty() && resets.len() != batch {
            return Err(
                CoreError::LengthMismatch { what: "document resets", expected: batch, actual: resets.len() }.into()
            );
        }
        if !resets.iter().any(|&r| r) {
            return Ok(());
        }
        if resets.iter().all(|&r| r) {
            return self.reset_all(k, model);
        }
        if self.position_in_block != 0 {
            return Err(CoreError::UnalignedReset { position_in_block: self.position_in_block }.into());
        }
        for (row, _) in resets.iter().enumerate().filter(|(_, &r)| r) {
            self.reset_row(k, model, row)?;
        }
        self.refresh_states(k, model)
    }

    /// Runs one call of `T` tokens per row through the stack and leaves the logits
    /// in [`Stream::logits`] (SPEC 5).
    ///
    /// `tokens` is position-major: `tokens[t*B + b]` is token `t` of row `b`, so
    /// its length is `T*B`. `resets` is empty or has one flag per row; a flagged row
    /// starts a new document before this call. A call may end anywhere inside a
    /// block: the next call continues it.
    ///
    /// Where a call ends does not matter: 3 tokens a row in one call, or as 2 + 1, give the same
    /// logits for the last token. Ids outside the vocabulary, more tokens than the plan allows, or
    /// a length that is not a multiple of the batch are refused.
    ///
    /// ```
    /// # use brt_core::{init::initialize, Arena, Config, CoreError, Model};
    /// # use brt_core::{Plan, Reference, Stream, WeightData, WeightDtype};
    /// # let config = Config::plain(11, 4, 1, 3, 5, 2, 2);
    /// # let plan = Plan::new(&config, 2, 3)?; // 2 rows, up to 3 tokens a call, blocks of 2
    /// # let mut weights = vec![0f32; plan.weights_len()];
    /// # initialize(&config, 5, &mut weights)?;
    /// # let (mut f32s, mut ids) = (vec![0f32; 1 << 14], vec![0u32; 64]);
    /// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
    /// # let model = Model::from_flat(&mut k, &config, WeightDtype::F32, WeightData::F32(&weights))?;
    /// let tokens = [1, 2, 3, 4, 5, 6];
    /// let mut whole = Stream::new(&mut k, &model, plan)?;
    /// whole.forward(&mut k, &model, &tokens, &[])?;
    /// let mut split = Stream::new(&mut k, &model, plan)?;
    /// split.forward(&mut k, &model, &tokens[..4], &[])?;
    /// split.forward(&mut k, &model, &tokens[4..], &[])?;
    /// let (mut a, mut b) = (vec![0f32; 3 * 2 * config.vocab], vec![0f32; 2 * config.vocab]);
    /// whole.read_logits(&mut k, &mut a)?;
    /// split.read_logits(&mut k, &mut b)?;
    /// assert!(a[2 * 2 * config.vocab..].iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-5));
    /// let refused = whole.forward(&mut k, &model, &[1, 11], &[]);
    /// assert!(matches!(refused, Err(CoreError::TokenOutOfRange { index: 1, id: 11, vocab: 11 })));
    /// let too_many = whole.forward(&mut k, &model, &[1; 8], &[]); // 4 a row
    /// assert!(matches!(too_many, Err(CoreError::TooManyTokens { tokens: 4, max: 3 })));
    /// assert!(whole.forward(&mut k, &model, &[1, 2, 3], &[]).is_err());
    /// let resets = whole.forward(&mut k, &model, &[1, 2], &[false; 3]); // 2 rows, 3 flags
    /// assert!(matches!(resets, Err(CoreError::LengthMismatch { expected: 2, actual: 3, .. })));
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub fn forward(&mut self, k: &mut K, model: &Model<K>, tokens: &[u32], resets: &[bool]) -> KResult<K> {
        let config = *self.config();
        if model.config() != &config {
            return Err(CoreError::Mismatch { what: "the model has another configuration than the stream" }.into());
        }
        let batch = self.plan.batch();
        if tokens.len() % batch != 0 {
            return Err(CoreError::LengthMismatch {
                what: "tokens (a multiple of the batch size)",
                expected: tokens.len() / batch * batch,
                actual: tokens.len(),
            }
            .into());
        }
        let n = tokens.len() / batch;
        if n > self.plan.max_tokens() {
            return Err(CoreError::TooManyTokens { tokens: n, max: self.plan.max_tokens() }.into());
        }
        if let Some((index, &id)) = tokens.iter().enumerate().find(|(_, &id)| id as usize >= config.vocab) {
            return Err(CoreError::TokenOutOfRange { index, id, vocab: config.vocab }.into());
        }
        self.apply_resets(k, model, resets)?;
        self.last_tokens = n;
        if n == 0 {
            return Ok(());
        }
        let rows = n * batch;
        k.write_tokens(&mut self.tokens, 0, tokens)?;
        let embedding = global(model, Param::Embedding)?;
        k.embed(
            &self.tokens,
            0,
            embedding,
            ViewMut::new(&mut self.scratch.x, 0),
            Embed::new(rows, config.vocab, config.d_model)?,
        )?;

        if config.feedback {
            // Every layer must see the state entering the block, so the stack goes
            // block by block and state updates wait for the whole stack.
            for piece in pieces(self.position_in_block, n, config.window) {
                self.run_layers(k, model, &[piece], StateUpdates::Deferred)?;
                if piece.completes_block {
                    let block = state::BlockKeys::State(self.kv_offset());
                    for layer in config.recurrent.iter() {
                        let ls = self.plan.layer_state(layer);
                        let ctx = layer_ctx(model, batch, layer);
                        state::update(k, &ctx, &ls, block, &mut self.state, &mut self.scratch)?;
                    }
                }
            }
        } else {
            // Layer by layer over the whole call: only recurrent layers need to
            // walk the blocks, and they do so inside.
            let mut group = [Piece { start: 0, end: 0, completes_block: false }; PIECES_PER_GROUP];
            let mut all = pieces(self.position_in_block, n, config.window).peekable();
            // Groups of whole pieces, so that huge calls need no allocation.
            while all.peek().is_some() {
                let mut count = 0;
                while count < PIECES_PER_GROUP {
                    match all.next() {
                        Some(piece) => {
                            group[count] = piece;
                            count += 1;
                        }
                        None => break,
                    }
                }
                self.run_layers(k, model, &group[..count], StateUpdates::Inline)?;
            }
        }

        // Logits: rms(x, final_ln) @ embed^T / sqrt(V) (SPEC 5.4).
        k.rms_norm(
            View::new(&self.scratch.x, 0),
            global(model, Param::FinalNorm)?,
            ViewMut::new(&mut self.scratch.xn, 0),
            Rows::new(rows, config.d_model)?,
        )?;
        let logits = Matmul::new(rows, config.d_model, config.vocab)?
            .transposed_weight()
            .alpha(1.0 / libm::sqrtf(config.vocab as f32));
        k.matmul(View::new(&self.scratch.xn, 0), embedding, ViewMut::new(&mut self.scratch.logits, 0), logits)?;
        self.position_in_block = (self.position_in_block + n) % config.window;
        Ok(())
    }

    /// Every layer, bottom to top, over the positions of `group`; the KV windows
    /// move past them.
    fn run_layers(&mut self, k: &mut K, model: &Model<K>, group: &[Piece], updates: StateUpdates) -> KResult<K> {
        let (Some(first), Some(last)) = (group.first(), group.last()) else { return Ok(()) };
        let positions = last.end - first.start;
        let config = *self.config();
        let batch = self.plan.batch();
        let feedback = config.feedback_source().and_then(|l| self.plan.layer_state(l).recurrent);
        let kv = self.kv_window(positions);
        for layer in 0..config.layers {
            let ls = self.plan.layer_state(layer);
            let ctx = layer_ctx(model, batch, layer);
            let source = if ls.recurrent.is_none() { feedback } else { None };
            layer::forward(k, &ctx, &ls, group, kv, updates, source, &mut self.state, &mut self.scratch)?;
        }
        self.kv_start = if kv.in_place { self.kv_start + positions } else { 0 };
        Ok(())
    }

    /// Copies the logits of the last call into `out` (`T x B x V`, position-major).
    ///
    /// The output holds exactly `T x B x V` values of the last call; each row is a finite score per
    /// vocabulary entry.
    ///
    /// ```
    /// # use brt_core::{init::initialize, Arena, Config, CoreError, Model};
    /// # use brt_core::{Plan, Reference, Stream, WeightData, WeightDtype};
    /// # let config = Config::plain(11, 4, 1, 3, 5, 2, 2);
    /// # let plan = Plan::new(&config, 2, 3)?; // 2 rows, up to 3 tokens a call, blocks of 2
    /// # let mut weights = vec![0f32; plan.weights_len()];
    /// # initialize(&config, 5, &mut weights)?;
    /// # let (mut f32s, mut ids) = (vec![0f32; 1 << 14], vec![0u32; 64]);
    /// # let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
    /// # let model = Model::from_flat(&mut k, &config, WeightDtype::F32, WeightData::F32(&weights))?;
    /// let mut stream = Stream::new(&mut k, &model, plan)?;
    /// stream.forward(&mut k, &model, &[1, 2, 3, 4], &[])?; // T = 2, B = 2
    /// let mut logits = vec![0f32; 2 * 2 * config.vocab];
    /// stream.read_logits(&mut k, &mut logits)?;
    /// assert!(logits.iter().all(|x| x.is_finite()));
    /// assert!(stream.read_logits(&mut k, &mut logits[1..]).is_err());
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub fn read_logits(&self, k: &mut K, out: &mut [f32]) -> KResult<K> {
        let expected = self.last_tokens * self.plan.batch() * self.config().vocab;
        if out.len() != expected {
            return Err(CoreError::LengthMismatch { what: "logits output", expected, actual: out.len() }.into());
        }
        k.read_tensor(&self.scratch.logits, 0, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LayerSet;
    use crate::init::initialize;
    use crate::kernels::{WeightData, WeightDtype};
    use crate::memory::Arena;
    use crate::reference::Reference;

    #[test]
    fn a_new_document_has_zero_caches_and_the_initial_state() {
        let config = Config { states: 2, recurrent: LayerSet::EMPTY.with(1), ..Config::plain(11, 4, 1, 3, 5, 2, 2) };
        let plan = Plan::new(&config, 2, 3).unwrap();
        let mut weights = [0f32; 1024];
        let weights = &mut weights[..plan.weights_len()];
        initialize(&config, 5, weights).unwrap();
        let mut f32s = [0f32; 4096];
        let mut ids = [0u32; 8];
        let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut ids));
        let model = Model::from_flat(&mut k, &config, WeightDtype::F32, WeightData::F32(weights)).unwrap();
        let mut stream = Stream::new(&mut k, &model, plan).unwrap();
        // Feed a few tokens so the caches fill, then restart row 1 only.
        stream.forward(&mut k, &model, &[1, 2, 3, 4], &[]).unwrap();
        stream.forward(&mut k, &model, &[5, 6], &[]).unwrap();
        assert_eq!(stream.position_in_block(), 1);
        let refused = stream.forward(&mut k, &model, &[5, 6], &[false, true]);
        assert_eq!(refused, Err(CoreError::UnalignedReset { position_in_block: 1 }));
        stream.forward(&mut k, &model, &[7, 8], &[]).unwrap();
        assert_eq!(stream.position_in_block(), 0);
        stream.forward(&mut k, &model, &[], &[false, true]).unwrap();
        let mut state = [0f32; 512];
        let state = &mut state[..plan.state_len()];
        stream.read_state(&mut k, state).unwrap();
        let initial = model.span(Param::Layer(1, crate::params::LayerParam::InitialState)).unwrap();
        for (layer, ls) in plan.layer_states().enumerate() {
            let qkv = config.qkv_width();
            for p in 0..ls.kv_positions {
                for (b, zero) in [(0, false), (1, true)] {
                    let at = (p * 2 + b) * qkv;
                    let keys = &state[ls.keys + at..][..qkv];
                    assert_eq!(keys.iter().all(|&x| x == 0.0), zero, "layer {layer} position {p} row {b}");
                }
            }
            if let Some(rs) = ls.recurrent {
                for s in 0..config.states {
                    let row1 = &state[rs.state + (s * 2 + 1) * config.d_model..][..config.d_model];
                    assert_eq!(row1, &weights[initial.offset + s * config.d_model..][..config.d_model]);
                }
            }
        }
    }

    #[test]
    fn pieces_split_at_block_boundaries() {
        let collect = |p, n, w| {
            let mut v = [(0, 0, false); 8];
            let mut count = 0;
            for piece in pieces(p, n, w) {
                v[count] = (piece.start, piece.end, piece.completes_block);
                count += 1;
            }
            (v, count)
        };
        let (v, c) = collect(0, 10, 4);
        assert_eq!(&v[..c], &[(0, 4, true), (4, 8, true), (8, 10, false)]);
        let (v, c) = collect(3, 6, 4);
        assert_eq!(&v[..c], &[(0, 1, true), (1, 5, true), (5, 6, false)]);
        let (v, c) = collect(1, 2, 4);
        assert_eq!(&v[..c], &[(0, 2, false)]);
        assert_eq!(collect(0, 0, 4).1, 0);
    }
}
