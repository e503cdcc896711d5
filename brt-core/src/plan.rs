//! Exact memory planning: for a config, a batch size and the most tokens per row in
//! one call, how many elements every buffer needs and where each layer's carried
//! state lives.
//!
//! A layer's KV cache is a window of `kv_positions` positions inside a region that
//! may be longer by a *runway* ([`Plan::with_kv_runway`]): the call's new keys are
//! written after the window, in place, and the window slides forward over the
//! runway; only when a call would run past the region's end are the window's keys
//! moved back to its start. Without a runway (the default, least memory) every call
//! copies the window into the scratch and the new window back, which is most of the
//! memory traffic of one-token calls on a large model.

use crate::config::{Config, TokenAttention};
use crate::error::{add, product, CoreError, CoreResult};
use crate::params::WeightLayout;

/// Where one layer's carried state lives inside the stream-state buffer.
///
/// Sequences are position-major, batch-minor (`(p, b)` is row `p*B + b`).
///
/// A window layer keeps `W` positions of keys then as many of values; each
/// layer's state follows the previous layer's.
///
/// ```
/// use brt_core::{plan::LayerState, Config, Plan};
/// let config = Config::plain(10, 8, 2, 4, 16, 2, 4);
/// let (w, batch, width) = (4, 2, 2 * 4);
/// let plan = Plan::new(&config, batch, 3)?;
/// let first: LayerState = plan.layer_state(0);
/// assert_eq!((first.keys, first.kv_positions, first.kv_capacity), (0, w, w));
/// assert_eq!(first.values, w * batch * width);
/// assert_eq!(first.end, 2 * w * batch * width);
/// assert!(first.linear.is_none() && first.recurrent.is_none());
/// assert_eq!(plan.layer_state(1).keys, first.end);
/// # Ok::<(), brt_core::CoreError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerState {
    /// Cached keys: a region of `kv_capacity x B x (H*dh)` holding a window of
    /// `kv_positions` positions, or nothing.
    pub keys: usize,
    /// Cached values, same shape as the keys.
    pub values: usize,
    /// Positions of keys and values kept (`W`, `2W` for a recurrent layer, or 0).
    pub kv_positions: usize,
    /// Positions each KV region holds: `kv_positions` plus the plan's runway (0 for
    /// a layer without a cache).
    pub kv_capacity: usize,
    /// Linear-attention sums, `B x H x dh x (dh + 1)`, when the layer has them.
    pub linear: Option<usize>,
    /// The recurrent state, when the layer is recurrent.
    pub recurrent: Option<RecurrentState>,
    /// One past the layer's last element.
    pub end: usize,
}

/// A contiguous run of the stream state and where it lies in the saved layout
/// (the layout without runway, KV windows first in their regions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SavedRun {
    /// Offset in the stream state.
    pub memory: usize,
    /// Offset in the saved state.
    pub saved: usize,
    /// Elements.
    pub len: usize,
}

/// Where a recurrent layer's state and its projections live.
///
/// The state (`S x B x d`) comes after the layer's KV cache, then its keys and
/// values (`S x B x H*dh` each), which end the layer.
///
/// ```
/// use brt_core::{Config, LayerSet, Plan};
/// let config = Config { states: 3, recurrent: LayerSet::EMPTY.with(1), ..Config::plain(10, 8, 2, 4, 16, 2, 4) };
/// let plan = Plan::new(&config, 2, 4)?;
/// let layer = plan.layer_state(1);
/// let r = layer.recurrent.unwrap();
/// assert_eq!(r.state, layer.values + layer.kv_capacity * 2 * 8);
/// assert_eq!((r.keys - r.state, r.values - r.keys), (3 * 2 * 8, 3 * 2 * 8));
/// assert_eq!(layer.end, r.values + 3 * 2 * 8);
/// assert!(plan.layer_state(0).recurrent.is_none());
/// # Ok::<(), brt_core::CoreError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecurrentState {
    /// The state, `S x B x d`.
    pub state: usize,
    /// Its normalised keys `l2n(sn Wk_s)`, `S x B x (H*dh)`, kept between blocks.
    pub keys: usize,
    /// Its values `sn Wv_s`, `S x B x (H*dh)`.
    pub values: usize,
}

/// Element counts of every scratch buffer of a stream.
///
/// Token buffers have a row per token of every batch row; the key scratch also
/// holds the longest cache. A model without recurrent layers needs no state
/// scratch.
///
/// ```
/// use brt_core::{Config, Plan};
/// let plan = Plan::new(&Config::plain(10, 8, 2, 4, 16, 2, 4), 2, 3)?;
/// let s = plan.scratch();
/// assert_eq!(s.x, 3 * 2 * 8);
/// assert_eq!(s.logits, 3 * 2 * 10);
/// assert_eq!(s.keys, (4 + 3) * 2 * 8);
/// assert_eq!((s.q2, s.state_norm, s.state_hidden), (0, 0, 0));
/// # Ok::<(), brt_core::CoreError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ScratchSizes {
    /// Residual stream, `T x B x d`.
    pub x: usize,
    /// Normalised activations, `T x B x d`.
    pub xn: usize,
    /// Token queries, `T x B x (H*dh)`.
    pub q: usize,
    /// Token cross-attention queries.
    pub q2: usize,
    /// Cached then current keys, `(C + T) x B x (H*dh)`.
    pub keys: usize,
    /// Cached then current values.
    pub values: usize,
    /// Token self-attention output.
    pub attn: usize,
    /// Token cross-attention output.
    pub attn2: usize,
    /// MLP hidden activations, `T x B x F`.
    pub hidden: usize,
    /// Logits, `T x B x V`.
    pub logits: usize,
    /// Normalised state, `S x B x d`.
    pub state_norm: usize,
    /// State queries.
    pub state_q: usize,
    /// State cross-attention queries.
    pub state_q2: usize,
    /// State self-attention output.
    pub state_attn: usize,
    /// State cross-attention output.
    pub state_attn2: usize,
    /// The update `z` (and LSTM gate products), `S x B x d`.
    pub state_update: usize,
    /// State MLP hidden activations, `S x B x F`.
    pub state_hidden: usize,
    /// LSTM forget-gate pre-activations.
    pub state_forget: usize,
    /// LSTM input-gate pre-activations.
    pub state_input: usize,
}

impl ScratchSizes {
    /// Total elements.
    ///
    /// The total is the sum of the fields, and zero for the default sizes.
    ///
    /// ```
    /// use brt_core::plan::ScratchSizes;
    /// assert_eq!(ScratchSizes::default().total(), 0);
    /// let sizes = ScratchSizes { x: 10, logits: 5, state_input: 1, ..ScratchSizes::default() };
    /// assert_eq!(sizes.total(), 16);
    /// ```
    pub fn total(&self) -> usize {
        // Saturating, so that it never panics; a plan's sizes never saturate
        // (`Plan::new` refuses sizes whose total overflows).
        self.checked_total().unwrap_or(usize::MAX)
    }

    /// The total, or `None` where it overflows.
    fn checked_total(&self) -> Option<usize> {
        [
            self.x,
            self.xn,
            self.q,
            self.q2,
            self.keys,
            self.values,
            self.attn,
            self.attn2,
            self.hidden,
            self.logits,
            self.state_norm,
            self.state_q,
            self.state_q2,
            self.state_attn,
            self.state_attn2,
            self.state_update,
            self.state_hidden,
            self.state_forget,
            self.state_input,
        ]
        .iter()
        .try_fold(0usize, |total, &n| total.checked_add(n))
    }

    /// The total, or [`CoreError::SizeOverflow`].
    fn checked(&self) -> CoreResult<usize> {
        self.checked_total().ok_or(CoreError::SizeOverflow { what: "scratch memory" })
    }
}

/// The memory plan of a stream.
///
/// A host backend needs [`Plan::activations_len`] f32 values for state and
/// scratch, [`Plan::weights_len`] for the parameters and [`Plan::tokens_len`] ids.
///
/// ```
/// use brt_core::{Config, Plan};
/// let plan = Plan::new(&Config::plain(10, 8, 2, 4, 16, 2, 4), 2, 3)?;
/// assert_eq!(plan.activations_len(), plan.state_len() + plan.scratch().total());
/// assert_eq!(plan.state_len(), plan.kv_cache_len());
/// assert_eq!((plan.weights_len(), plan.tokens_len()), (1276, 6));
/// # Ok::<(), brt_core::CoreError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    weights: WeightLayout,
    batch: usize,
    max_tokens: usize,
    kv_runway: usize,
    state_len: usize,
    saved_state_len: usize,
    scratch: ScratchSizes,
}

impl Plan {
    /// Plans for `batch` rows and at most `max_tokens` tokens per row in one call,
    /// without KV runway.
    ///
    /// The configuration is validated, and a batch or a call of no tokens is
    /// refused.
    ///
    /// ```
    /// use brt_core::{Config, CoreError, Plan};
    /// let config = Config::plain(10, 8, 2, 4, 16, 2, 4);
    /// assert_eq!(Plan::new(&config, 2, 16)?.kv_runway(), 0);
    /// assert!(matches!(Plan::new(&config, 0, 16), Err(CoreError::InvalidConfig { .. })));
    /// assert!(Plan::new(&config, 2, 0).is_err());
    /// assert!(Plan::new(&Config { window: 0, ..config }, 2, 16).is_err());
    /// assert!(matches!(Plan::new(&config, usize::MAX, 4), Err(CoreError::SizeOverflow { .. })));
    /// // Each scratch size fits, their sum does not.
    /// assert!(matches!(Plan::new(&config, 1, usize::MAX / 16), Err(CoreError::SizeOverflow { .. })));
    /// # Ok::<(), CoreError>(())
    /// ```
    pub fn new(config: &Config, batch: usize, max_tokens: usize) -> CoreResult<Plan> {
        config.validate()?;
        if batch == 0 {
            return Err(CoreError::InvalidConfig { what: "batch size must be positive", value: 0 });
        }
        if max_tokens == 0 {
            return Err(CoreError::InvalidConfig { what: "tokens per call must be positive", value: 0 });
        }
        let weights = WeightLayout::new(config)?;
        let state_len = state_len(config, batch, 0)?;
        let scratch = scratch_sizes(config, batch, max_tokens)?;
        add(state_len, scratch.checked()?, "stream memory")?;
        Ok(Plan { weights, batch, max_tokens, kv_runway: 0, state_len, saved_state_len: state_len, scratch })
    }

    /// The same plan with `positions` more positions in every KV region, over which
    /// the window slides so that calls of up to that many tokens write their keys
    /// and values in place, with no copies: a move of the window once per
    /// `positions` tokens instead of two copies of it per call. It costs
    /// `2 x positions x B x (H*dh)` elements per layer with a KV cache; results are
    /// identical whatever the runway.
    ///
    /// Each of the two layers gets 5 more positions of keys and of values; the
    /// saved state does not grow.
    ///
    /// ```
    /// use brt_core::{Config, Plan};
    /// let plain = Plan::new(&Config::plain(10, 8, 2, 4, 16, 2, 4), 2, 3)?;
    /// let plan = plain.with_kv_runway(5)?;
    /// let (batch, width) = (2, 8);
    /// assert_eq!(plan.state_len(), plain.state_len() + 2 * 2 * 5 * batch * width);
    /// assert_eq!(plan.saved_state_len(), plain.saved_state_len());
    /// assert_eq!(plan.layer_state(1).kv_capacity, 4 + 5);
    /// assert!(plain.with_kv_runway(usize::MAX).is_err());
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub fn with_kv_runway(self, positions: usize) -> CoreResult<Plan> {
        let config = *self.config();
        let state_len = state_len(&config, self.batch, positions)?;
        add(state_len, self.scratch.checked()?, "stream memory")?;
        Ok(Plan { kv_runway: positions, state_len, ..self })
    }
    /// The configuration.
    ///
    /// It is the configuration the plan was made for.
    ///
    /// ```
    /// use brt_core::{Config, Plan};
    /// let config = Config::plain(10, 8, 2, 4, 16, 2, 4);
    /// assert_eq!(Plan::new(&config, 1, 1)?.config(), &config);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub const fn config(&self) -> &Config {
        self.weights.config()
    }
    /// Where the parameters live.
    ///
    /// It is the canonical layout of the configuration.
    ///
    /// ```
    /// use brt_core::{Config, Plan, WeightLayout};
    /// let config = Config::plain(10, 8, 2, 4, 16, 2, 4);
    /// assert_eq!(Plan::new(&config, 1, 1)?.weights(), &WeightLayout::new(&config)?);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub const fn weights(&self) -> &WeightLayout {
        &self.weights
    }
    /// Batch rows.
    ///
    /// It is the batch size the plan was made for.
    ///
    /// ```
    /// use brt_core::{Config, Plan};
    /// assert_eq!(Plan::new(&Config::plain(10, 8, 2, 4, 16, 2, 4), 3, 1)?.batch(), 3);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub const fn batch(&self) -> usize {
        self.batch
    }
    /// Most tokens per row in one call.
    ///
    /// It is the limit the plan was made for, which may exceed the window.
    ///
    /// ```
    /// use brt_core::{Config, Plan};
    /// assert_eq!(Plan::new(&Config::plain(10, 8, 2, 4, 16, 2, 4), 1, 64)?.max_tokens(), 64);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub const fn max_tokens(&self) -> usize {
        self.max_tokens
    }
    /// Parameter elements.
    ///
    /// It is the length of the canonical weight layout.
    ///
    /// ```
    /// use brt_core::{Config, Plan, WeightLayout};
    /// let config = Config::plain(10, 8, 2, 4, 16, 2, 4);
    /// assert_eq!(Plan::new(&config, 1, 1)?.weights_len(), WeightLayout::new(&config)?.len());
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub const fn weights_len(&self) -> usize {
        self.weights.len()
    }
    /// Positions every KV region holds beyond its window ([`Plan::with_kv_runway`]).
    ///
    /// A new plan has none; the runway is what was asked for.
    ///
    /// ```
    /// use brt_core::{Config, Plan};
    /// let plan = Plan::new(&Config::plain(10, 8, 2, 4, 16, 2, 4), 1, 1)?;
    /// assert_eq!(plan.kv_runway(), 0);
    /// assert_eq!(plan.with_kv_runway(16)?.kv_runway(), 16);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub const fn kv_runway(&self) -> usize {
        self.kv_runway
    }
    /// Elements of the stream state in memory (every layer's KV cache with its
    /// runway, linear sums and recurrent state).
    ///
    /// It is the sum of the KV caches, the linear sums and the recurrent states,
    /// and ends where the top layer's state ends.
    ///
    /// ```
    /// # use brt_core::{Config, LayerSet, Plan};
    /// # let config = Config { states: 3, recurrent: LayerSet::EMPTY.with(1), ..Config::plain(10, 8, 2, 4, 16, 2, 4) };
    /// let plan = Plan::new(&config, 2, 4)?.with_kv_runway(3)?;
    /// let parts = plan.kv_cache_len() + plan.linear_state_len() + plan.recurrent_state_len();
    /// assert_eq!(plan.state_len(), parts);
    /// assert_eq!(plan.state_len(), plan.layer_state(1).end);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub const fn state_len(&self) -> usize {
        self.state_len
    }
    /// Elements of the saved stream state (what a session saves: the state without
    /// runway), the same for every runway.
    ///
    /// Without runway it is the state in memory; a runway does not change it.
    ///
    /// ```
    /// use brt_core::{Config, Plan};
    /// let plan = Plan::new(&Config::plain(10, 8, 2, 4, 16, 2, 4), 2, 4)?;
    /// assert_eq!(plan.saved_state_len(), plan.state_len());
    /// let long = plan.with_kv_runway(8)?;
    /// assert_eq!(long.saved_state_len(), plan.state_len());
    /// assert!(long.state_len() > long.saved_state_len());
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub const fn saved_state_len(&self) -> usize {
        self.saved_state_len
    }
    /// Elements of the stream state that are KV cache, runway included.
    ///
    /// Keys and values of `W` positions for the window layer, `2W` for the
    /// recurrent one, each `B x H*dh` wide.
    ///
    /// ```
    /// # use brt_core::{Config, LayerSet, Plan};
    /// # let config = Config { states: 3, recurrent: LayerSet::EMPTY.with(1), ..Config::plain(10, 8, 2, 4, 16, 2, 4) };
    /// let (w, batch, width) = (4, 2, 8);
    /// let plan = Plan::new(&config, batch, 4)?;
    /// assert_eq!(plan.kv_cache_len(), 2 * (w + 2 * w) * batch * width);
    /// assert_eq!(plan.with_kv_runway(1)?.kv_cache_len(), 2 * (w + 1 + 2 * w + 1) * batch * width);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub fn kv_cache_len(&self) -> usize {
        self.layer_states().map(|s| 2 * s.kv_capacity * self.batch * self.config().qkv_width()).sum()
    }
    /// Elements of the stream state that are recurrent states with their keys and values.
    ///
    /// A recurrent layer holds `S x B` rows of state (`d`) and of keys and values
    /// (`H*dh` each); a plain model holds none.
    ///
    /// ```
    /// # use brt_core::{Config, LayerSet, Plan};
    /// # let config = Config { states: 3, recurrent: LayerSet::EMPTY.with(1), ..Config::plain(10, 8, 2, 4, 16, 2, 4) };
    /// let (states, batch, d, width) = (3, 2, 8, 8);
    /// assert_eq!(Plan::new(&config, batch, 4)?.recurrent_state_len(), states * batch * (d + 2 * width));
    /// assert_eq!(Plan::new(&Config::plain(10, 8, 2, 4, 16, 2, 4), 2, 4)?.recurrent_state_len(), 0);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub fn recurrent_state_len(&self) -> usize {
        let c = self.config();
        c.recurrent.len() * c.states * self.batch * (c.d_model + 2 * c.qkv_width())
    }
    /// Elements of the stream state that are linear-attention sums.
    ///
    /// A linear layer keeps `B x H x dh x (dh + 1)` sums and no KV cache.
    ///
    /// ```
    /// use brt_core::{Config, LayerSet, Plan};
    /// let config = Config { linear: LayerSet::EMPTY.with(0), ..Config::plain(10, 8, 2, 4, 16, 2, 4) };
    /// let (batch, heads, head_dim) = (2, 2, 4);
    /// let plan = Plan::new(&config, batch, 4)?;
    /// assert_eq!(plan.linear_state_len(), batch * heads * head_dim * (head_dim + 1));
    /// assert_eq!(plan.layer_state(0).kv_positions, 0);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub fn linear_state_len(&self) -> usize {
        let c = self.config();
        c.linear.len() * self.batch * c.heads * c.head_dim * (c.head_dim + 1)
    }
    /// Scratch buffer sizes.
    ///
    /// The MLP scratch holds `T x B x F` hidden activations; a fixed gate needs no
    /// LSTM scratch.
    ///
    /// ```
    /// # use brt_core::{Config, LayerSet, Plan};
    /// # let config = Config { states: 3, recurrent: LayerSet::EMPTY.with(1), ..Config::plain(10, 8, 2, 4, 16, 2, 4) };
    /// let s = *Plan::new(&config, 2, 4)?.scratch();
    /// assert_eq!(s.hidden, 4 * 2 * 16);
    /// assert_eq!(s.state_update, 3 * 2 * 8);
    /// assert_eq!((s.state_forget, s.state_input), (0, 0));
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub const fn scratch(&self) -> &ScratchSizes {
        &self.scratch
    }
    /// Token ids buffer length.
    ///
    /// One id per token of every row of the largest call.
    ///
    /// ```
    /// use brt_core::{Config, Plan};
    /// assert_eq!(Plan::new(&Config::plain(10, 8, 2, 4, 16, 2, 4), 3, 5)?.tokens_len(), 15);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub const fn tokens_len(&self) -> usize {
        self.batch * self.max_tokens
    }
    /// All f32 elements a host backend needs for state and scratch.
    ///
    /// It is the state with its runway plus every scratch buffer.
    ///
    /// ```
    /// use brt_core::{Config, Plan};
    /// let plan = Plan::new(&Config::plain(10, 8, 2, 4, 16, 2, 4), 2, 3)?.with_kv_runway(2)?;
    /// assert_eq!(plan.activations_len(), plan.state_len() + plan.scratch().total());
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub fn activations_len(&self) -> usize {
        self.state_len + self.scratch.total()
    }

    /// Where `layer`'s carried state lives.
    ///
    /// A recurrent layer keeps `2W` positions and a state; a layer past the top
    /// gets an empty state at offset 0.
    ///
    /// ```
    /// # use brt_core::{Config, LayerSet, Plan};
    /// # let config = Config { states: 3, recurrent: LayerSet::EMPTY.with(1), ..Config::plain(10, 8, 2, 4, 16, 2, 4) };
    /// let plan = Plan::new(&config, 2, 4)?;
    /// let top = plan.layer_state(1);
    /// assert_eq!(top.kv_positions, 2 * 4);
    /// assert!(top.recurrent.is_some());
    /// assert_eq!((plan.layer_state(2).end, plan.layer_state(2).kv_positions), (0, 0));
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub fn layer_state(&self, layer: usize) -> LayerState {
        self.layer_states().nth(layer).unwrap_or(LayerState {
            keys: 0,
            values: 0,
            kv_positions: 0,
            kv_capacity: 0,
            linear: None,
            recurrent: None,
            end: 0,
        })
    }

    /// Every layer's carried state, bottom to top.
    ///
    /// There is one per layer, each starting where the one below ends.
    ///
    /// ```
    /// # use brt_core::{Config, LayerSet, Plan};
    /// # let config = Config { states: 3, recurrent: LayerSet::EMPTY.with(1), ..Config::plain(10, 8, 2, 4, 16, 2, 4) };
    /// let plan = Plan::new(&config, 2, 4)?;
    /// let states: Vec<_> = plan.layer_states().collect();
    /// assert_eq!(states.len(), 2);
    /// assert_eq!((states[0].keys, states[1].keys), (0, states[0].end));
    /// assert_eq!(states[1], plan.layer_state(1));
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub fn layer_states(&self) -> impl Iterator<Item = LayerState> + '_ {
        let config = self.config();
        let mut offset = 0usize;
        (0..config.layers).map_while(move |layer| {
            // Sizes were checked by `Plan::new`.
            let state = layer_state(config, self.batch, layer, offset, self.kv_runway).ok()?;
            offset = state.end;
            Some(state)
        })
    }

    /// The runs of the stream state that make up the saved state, every KV window
    /// starting `window` elements into its region; runs are in order and cover the
    /// saved state exactly.
    pub(crate) fn saved_runs(&self, window: usize) -> impl Iterator<Item = SavedRun> + '_ {
        let row = self.batch * self.config().qkv_width();
        let mut saved = 0;
        self.layer_states().flat_map(move |ls| {
            let kv = ls.kv_positions * row;
            let rest = ls.values + ls.kv_capacity * row;
            let window = if kv > 0 { window } else { 0 };
            let runs = [
                SavedRun { memory: ls.keys + window, saved, len: kv },
                SavedRun { memory: ls.values + window, saved: saved + kv, len: kv },
                SavedRun { memory: rest, saved: saved + 2 * kv, len: ls.end - rest },
            ];
            saved += 2 * kv + ls.end - rest;
            runs.into_iter().filter(|run| run.len > 0)
        })
    }
}

/// Elements of the stream state with `runway` extra positions in each KV region.
fn state_len(config: &Config, batch: usize, runway: usize) -> CoreResult<usize> {
    let mut len = 0usize;
    for layer in 0..config.layers {
        len = layer_state(config, batch, layer, len, runway)?.end;
    }
    Ok(len)
}

/// The state of `layer` placed at `offset`, its KV regions `runway` positions
/// longer than the window.
fn layer_state(config: &Config, batch: usize, layer: usize, offset: usize, runway: usize) -> CoreResult<LayerState> {
    let qkv = config.qkv_width();
    let kv_positions = config.kv_cache_positions(layer);
    let kv_capacity = if kv_positions > 0 { add(kv_positions, runway, "KV cache")? } else { 0 };
    let kv = product(&[kv_capacity, batch, qkv], "KV cache")?;
    let keys = offset;
    let values = add(keys, kv, "stream state")?;
    let mut next = add(values, kv, "stream state")?;
    let linear = match config.token_attention(layer) {
        TokenAttention::Linear => {
            let at = next;
            next = add(
                next,
                product(&[batch, config.heads, config.head_dim, config.head_dim + 1], "linear state")?,
                "stream state",
            )?;
            Some(at)
        }
        TokenAttention::Window => None,
    };
    let recurrent = if config.is_recurrent(layer) {
        let state = next;
        let keys = add(state, product(&[config.states, batch, config.d_model], "recurrent state")?, "stream state")?;
        let proj = product(&[config.states, batch, qkv], "recurrent state keys")?;
        let values = add(keys, proj, "stream state")?;
        next = add(values, proj, "stream state")?;
        Some(RecurrentState { state, keys, values })
    } else {
        None
    };
    Ok(LayerState { keys, values, kv_positions, kv_capacity, linear, recurrent, end: next })
}

fn scratch_sizes(config: &Config, batch: usize, max_tokens: usize) -> CoreResult<ScratchSizes> {
    let rows = product(&[max_tokens, batch], "scratch rows")?;
    let qkv = config.qkv_width();
    let max_cache = (0..config.layers).map(|l| config.kv_cache_positions(l)).max().unwrap_or(0);
    let ext = add(max_cache, max_tokens, "key positions")?;
    let token = |width: usize| product(&[rows, width], "token scratch");
    let any_cross = (0..config.layers).any(|l| config.has_cross_attention(l));
    let cross = |width: usize| if any_cross { token(width) } else { Ok(0) };
    let mut sizes = ScratchSizes {
        x: token(config.d_model)?,
        xn: token(config.d_model)?,
        q: token(qkv)?,
        q2: cross(qkv)?,
        keys: product(&[ext, batch, qkv], "key scratch")?,
        values: product(&[ext, batch, qkv], "value scratch")?,
        attn: token(qkv)?,
        attn2: cross(qkv)?,
        hidden: token(config.mlp_hidden)?,
        logits: token(config.vocab)?,
        ..ScratchSizes::default()
    };
    if !config.recurrent.is_empty() {
        let state_rows = product(&[config.states, batch], "state rows")?;
        let state = |width: usize| product(&[state_rows, width], "state scratch");
        let lstm = config.gate == crate::config::GateKind::Lstm;
        let has_mlp = config.layout != crate::config::StateLayout::Skip;
        sizes.state_norm = state(config.d_model)?;
        sizes.state_q = state(qkv)?;
        sizes.state_q2 = state(qkv)?;
        sizes.state_attn = state(qkv)?;
        sizes.state_attn2 = state(qkv)?;
        sizes.state_update = state(config.d_model)?;
        sizes.state_hidden = if has_mlp { state(config.mlp_hidden)? } else { 0 };
        sizes.state_forget = if lstm { state(config.d_model)? } else { 0 };
        sizes.state_input = if lstm { state(config.d_model)? } else { 0 };
    }
    Ok(sizes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LayerSet;

    #[test]
    fn state_sizes_add_up() {
        let config = Config {
            states: 8,
            recurrent: LayerSet::EMPTY.with(2),
            linear: LayerSet::EMPTY.with(0),
            ..Config::plain(260, 32, 4, 8, 64, 4, 16)
        };
        let plan = Plan::new(&config, 3, 20).unwrap();
        // Layer 0: linear, no KV; layers 1 and 3: W positions; layer 2: 2W.
        assert_eq!(plan.kv_cache_len(), 2 * (16 + 32 + 16) * 3 * 32);
        assert_eq!(plan.linear_state_len(), 3 * 4 * 8 * 9);
        assert_eq!(plan.recurrent_state_len(), 8 * 3 * (32 + 64));
        assert_eq!(plan.state_len(), plan.kv_cache_len() + plan.linear_state_len() + plan.recurrent_state_len());
        let last = plan.layer_state(3);
        assert_eq!(last.values + 16 * 3 * 32, plan.state_len());
        assert_eq!(plan.scratch().keys, (32 + 20) * 3 * 32);
        assert_eq!(plan.scratch().logits, 20 * 3 * 260);
        assert_eq!(plan.scratch().state_forget, 0);
    }

    #[test]
    fn a_runway_lengthens_the_kv_regions_and_the_saved_runs_cover_the_saved_state() {
        let config = Config {
            states: 8,
            recurrent: LayerSet::EMPTY.with(2),
            linear: LayerSet::EMPTY.with(0),
            ..Config::plain(260, 32, 4, 8, 64, 4, 16)
        };
        let plain = Plan::new(&config, 3, 20).unwrap();
        let plan = plain.with_kv_runway(5).unwrap();
        let row = 3 * 32;
        // Layers 1, 2 and 3 have a cache (W, 2W, W positions): 5 more each, keys and values.
        assert_eq!(plan.state_len(), plain.state_len() + 3 * 2 * 5 * row);
        assert_eq!(plan.saved_state_len(), plain.state_len());
        assert_eq!(plan.kv_cache_len(), plain.kv_cache_len() + 3 * 2 * 5 * row);
        assert_eq!(plan.layer_state(0).kv_capacity, 0);
        assert_eq!(plan.layer_state(2).kv_capacity, 32 + 5);
        for window in [0, 5 * row] {
            let mut next = 0;
            for run in plan.saved_runs(window) {
                assert_eq!(run.saved, next, "runs are in order, without gaps");
                assert!(run.memory + run.len <= plan.state_len());
                next += run.len;
            }
            assert_eq!(next, plan.saved_state_len());
        }
        // Without runway the saved layout is the memory layout: one run per part.
        assert!(plain.saved_runs(0).all(|run| run.memory == run.saved));
        // Layer 0 has only linear sums (one run); layer 1's keys then start one
        // position into their region.
        let layer1 = plan.layer_state(1);
        let keys = SavedRun { memory: layer1.keys + row, saved: 3 * 4 * 8 * 9, len: 16 * row };
        assert_eq!(plan.saved_runs(row).nth(1), Some(keys));
    }

    #[test]
    fn bad_plans_are_errors() {
        let config = Config::plain(10, 8, 2, 4, 16, 2, 4);
        assert!(Plan::new(&config, 0, 4).is_err());
        assert!(Plan::new(&config, 1, 0).is_err());
        assert!(matches!(Plan::new(&config, usize::MAX, 4), Err(CoreError::SizeOverflow { .. })));
    }
}
