//! Exact memory planning: for a config, a batch size and the most tokens per row in
//! one call, how many elements every buffer needs and where each layer's carried
//! state lives.

use crate::config::{Config, TokenAttention};
use crate::error::{add, product, CoreError, CoreResult};
use crate::params::WeightLayout;

/// Where one layer's carried state lives inside the stream-state buffer.
///
/// Sequences are position-major, batch-minor (`(p, b)` is row `p*B + b`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerState {
    /// Cached keys: `kv_positions x B x (H*dh)`, or nothing.
    pub keys: usize,
    /// Cached values, same shape as the keys.
    pub values: usize,
    /// Positions of keys and values kept (`W`, `2W` for a recurrent layer, or 0).
    pub kv_positions: usize,
    /// Linear-attention sums, `B x H x dh x (dh + 1)`, when the layer has them.
    pub linear: Option<usize>,
    /// The recurrent state, when the layer is recurrent.
    pub recurrent: Option<RecurrentState>,
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
    state_len: usize,
    scratch: ScratchSizes,
}

impl Plan {
    /// Plans for `batch` rows and at most `max_tokens` tokens per row in one call.
    pub fn new(config: &Config, batch: usize, max_tokens: usize) -> CoreResult<Plan> {
        config.validate()?;
        if batch == 0 {
            return Err(CoreError::InvalidConfig { what: "batch size must be positive", value: 0 });
        }
        if max_tokens == 0 {
            return Err(CoreError::InvalidConfig { what: "tokens per call must be positive", value: 0 });
        }
        let weights = WeightLayout::new(config)?;
        let mut state_len = 0usize;
        for layer in 0..config.layers {
            let (_, next) = layer_state(config, batch, layer, state_len)?;
            state_len = next;
        }
        let scratch = scratch_sizes(config, batch, max_tokens)?;
        add(state_len, scratch.total(), "stream memory")?;
        Ok(Plan { weights, batch, max_tokens, state_len, scratch })
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
    /// Elements of the stream state (every layer's KV cache, linear sums and
    /// recurrent state): what a session saves.
    pub const fn state_len(&self) -> usize {
        self.state_len
    }
    /// Elements of the stream state that are KV cache.
    pub fn kv_cache_len(&self) -> usize {
        self.layer_states().map(|s| 2 * s.kv_positions * self.batch * self.config().qkv_width()).sum()
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
            linear: None,
            recurrent: None,
        })
    }

    /// Every layer's carried state, bottom to top.
    pub fn layer_states(&self) -> impl Iterator<Item = LayerState> + '_ {
        let config = self.config();
        let mut offset = 0usize;
        (0..config.layers).map_while(move |layer| {
            // Sizes were checked by `Plan::new`.
            let (state, next) = layer_state(config, self.batch, layer, offset).ok()?;
            offset = next;
            Some(state)
        })
    }
}

/// The state of `layer` placed at `offset`; returns it and the next free offset.
fn layer_state(config: &Config, batch: usize, layer: usize, offset: usize) -> CoreResult<(LayerState, usize)> {
    let qkv = config.qkv_width();
    let kv_positions = config.kv_cache_positions(layer);
    let kv = product(&[kv_positions, batch, qkv], "KV cache")?;
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
    Ok((LayerState { keys, values, kv_positions, linear, recurrent }, next))
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
    fn bad_plans_are_errors() {
        let config = Config::plain(10, 8, 2, 4, 16, 2, 4);
        assert!(Plan::new(&config, 0, 4).is_err());
        assert!(Plan::new(&config, 1, 0).is_err());
        assert!(matches!(Plan::new(&config, usize::MAX, 4), Err(CoreError::SizeOverflow { .. })));
    }
}
