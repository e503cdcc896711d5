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
    pub fn total(&self) -> usize {
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
        .sum()
    }
}

/// The memory plan of a stream.
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
        add(state_len, scratch.total(), "stream memory")?;
        Ok(Plan { weights, batch, max_tokens, kv_runway: 0, state_len, saved_state_len: state_len, scratch })
    }

    /// The same plan with `positions` more positions in every KV region, over which
    /// the window slides so that calls of up to that many tokens write their keys
    /// and values in place, with no copies: a move of the window once per
    /// `positions` tokens instead of two copies of it per call. It costs
    /// `2 x positions x B x (H*dh)` elements per layer with a KV cache; results are
    /// identical whatever the runway.
    pub fn with_kv_runway(self, positions: usize) -> CoreResult<Plan> {
        let config = *self.config();
        let state_len = state_len(&config, self.batch, positions)?;
        add(state_len, self.scratch.total(), "stream memory")?;
        Ok(Plan { kv_runway: positions, state_len, ..self })
    }
    /// The configuration.
    pub const fn config(&self) -> &Config {
        self.weights.config()
    }
    /// Where the parameters live.
    pub const fn weights(&self) -> &WeightLayout {
        &self.weights
    }
    /// Batch rows.
    pub const fn batch(&self) -> usize {
        self.batch
    }
    /// Most tokens per row in one call.
    pub const fn max_tokens(&self) -> usize {
        self.max_tokens
    }
    /// Parameter elements.
    pub const fn weights_len(&self) -> usize {
        self.weights.len()
    }
    /// Positions every KV region holds beyond its window ([`Plan::with_kv_runway`]).
    pub const fn kv_runway(&self) -> usize {
        self.kv_runway
    }
    /// Elements of the stream state in memory (every layer's KV cache with its
    /// runway, linear sums and recurrent state).
    pub const fn state_len(&self) -> usize {
        self.state_len
    }
    /// Elements of the saved stream state (what a session saves: the state without
    /// runway), the same for every runway.
    pub const fn saved_state_len(&self) -> usize {
        self.saved_state_len
    }
    /// Elements of the stream state that are KV cache, runway included.
    pub fn kv_cache_len(&self) -> usize {
        self.layer_states().map(|s| 2 * s.kv_capacity * self.batch * self.config().qkv_width()).sum()
    }
    /// Elements of the stream state that are recurrent states with their keys and values.
    pub fn recurrent_state_len(&self) -> usize {
        let c = self.config();
        c.recurrent.len() * c.states * self.batch * (c.d_model + 2 * c.qkv_width())
    }
    /// Elements of the stream state that are linear-attention sums.
    pub fn linear_state_len(&self) -> usize {
        let c = self.config();
        c.linear.len() * self.batch * c.heads * c.head_dim * (c.head_dim + 1)
    }
    /// Scratch buffer sizes.
    pub const fn scratch(&self) -> &ScratchSizes {
        &self.scratch
    }
    /// Token ids buffer length.
    pub const fn tokens_len(&self) -> usize {
        self.batch * self.max_tokens
    }
    /// All f32 elements a host backend needs for state and scratch.
    pub fn activations_len(&self) -> usize {
        self.state_len + self.scratch.total()
    }

    /// Where `layer`'s carried state lives.
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
