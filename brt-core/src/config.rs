//! The model configuration: every variant of SPEC.md, validated without panics.

use crate::error::{product, CoreError, CoreResult};

/// The largest number of layers a [`LayerSet`] can name.
///
/// A 128-layer set holds its top layer; 129 layers are rejected.
///
/// ```
/// use brt_core::{LayerSet, MAX_LAYERS};
/// assert!(LayerSet::from_indices(&[-1], MAX_LAYERS).unwrap().contains(MAX_LAYERS - 1));
/// assert!(LayerSet::from_indices(&[0], MAX_LAYERS + 1).is_err());
/// ```
pub const MAX_LAYERS: usize = 128;

/// How a recurrent state update is gated (SPEC section 4, "Gates").
///
/// A plain configuration uses the fixed (bias) gate, which differs from the LSTM gate.
///
/// ```
/// use brt_core::{Config, GateKind};
/// assert_eq!(Config::plain(10, 8, 2, 4, 16, 2, 4).gate, GateKind::Fixed);
/// assert_ne!(GateKind::Fixed, GateKind::Lstm);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GateKind {
    /// `g = sigmoid(b)`, `s' = s*g + z*(1-g)`; the official name is `bias`.
    Fixed,
    /// `f = sigmoid(u Wf + bf + 1)`, `i = sigmoid(u Wi + bi - 1)`, `s' = s*f + z*i`.
    Lstm,
}

/// Where the gates sit in the horizontal (state) direction (SPEC section 4).
///
/// The dual layout has two gate sites, the skip layout one.
///
/// ```
/// use brt_core::{Config, StateLayout};
/// let mut c = Config::plain(10, 8, 2, 4, 16, 2, 4);
/// c.layout = StateLayout::Dual;
/// assert_eq!(c.gate_sites().len(), 2);
/// c.layout = StateLayout::Skip;
/// assert_eq!(c.gate_sites().len(), 1);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StateLayout {
    /// One gate after the attention projection; no state MLP.
    Skip,
    /// No attention projection; a gated MLP with a tanh output.
    Single,
    /// A gate after the attention projection and another after the state MLP.
    Dual,
}

/// The token self-attention of a layer.
///
/// A layer is a window layer unless it is listed as linear.
///
/// ```
/// use brt_core::{Config, LayerSet, TokenAttention};
/// let mut c = Config::plain(10, 8, 2, 4, 16, 2, 4);
/// c.linear = LayerSet::EMPTY.with(1);
/// assert_eq!(c.token_attention(0), TokenAttention::Window);
/// assert_eq!(c.token_attention(1), TokenAttention::Linear);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenAttention {
    /// Softmax over the W previous tokens with a T5 bias (SPEC section 2).
    Window,
    /// Linearised attention over the whole past, `phi = elu + 1` (SPEC section 7).
    Linear,
}

/// A set of layer indices, stored as a bit mask.
///
/// A set built from indices contains exactly those layers.
///
/// ```
/// use brt_core::LayerSet;
/// let set = LayerSet::EMPTY.with(2).with(5);
/// assert_eq!(set.iter().collect::<Vec<_>>(), [2, 5]);
/// assert!(!set.contains(3));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct LayerSet(u128);

impl LayerSet {
    /// The empty set.
    ///
    /// The empty set has no layers and equals the default set.
    ///
    /// ```
    /// use brt_core::LayerSet;
    /// assert!(LayerSet::EMPTY.is_empty());
    /// assert_eq!(LayerSet::EMPTY, LayerSet::default());
    /// assert_eq!(LayerSet::EMPTY.last(), None);
    /// ```
    pub const EMPTY: LayerSet = LayerSet(0);

    /// Resolves possibly negative indices (`-1` is the top layer) against `layers`.
    ///
    /// `-1` names the top of a 4-layer stack (layer 3); an index of 4 is out of range.
    ///
    /// ```
    /// use brt_core::LayerSet;
    /// let set = LayerSet::from_indices(&[0, -1], 4).unwrap();
    /// assert_eq!(set, LayerSet::EMPTY.with(0).with(3));
    /// assert!(LayerSet::from_indices(&[4], 4).is_err());
    /// assert!(LayerSet::from_indices(&[-5], 4).is_err());
    /// ```
    pub fn from_indices(indices: &[i64], layers: usize) -> CoreResult<LayerSet> {
        if layers > MAX_LAYERS {
            return Err(CoreError::InvalidConfig { what: "at most 128 layers are supported", value: layers as i64 });
        }
        let mut set = LayerSet::EMPTY;
        for &index in indices {
            // `layers` is at most 128, so neither sum overflows.
            let resolved = if index < 0 { (layers as i64).saturating_add(index) } else { index };
            if resolved < 0 || resolved >= layers as i64 || resolved >= MAX_LAYERS as i64 {
                return Err(CoreError::InvalidConfig {
                    what: "layer index out of range for the number of layers",
                    value: index,
                });
            }
            set = set.with(resolved as usize);
        }
        Ok(set)
    }

    /// This set with `layer` added. Indices at or above [`MAX_LAYERS`] are ignored
    /// here and rejected by [`Config::validate`] through the layer count.
    ///
    /// Adding a layer sets it; an index at or above `MAX_LAYERS` leaves the set unchanged.
    ///
    /// ```
    /// use brt_core::{LayerSet, MAX_LAYERS};
    /// assert!(LayerSet::EMPTY.with(7).contains(7));
    /// assert_eq!(LayerSet::EMPTY.with(MAX_LAYERS), LayerSet::EMPTY);
    /// ```
    pub const fn with(self, layer: usize) -> LayerSet {
        if layer < MAX_LAYERS {
            LayerSet(self.0 | (1u128 << layer))
        } else {
            self
        }
    }

    /// Whether `layer` is in the set.
    ///
    /// Only added layers are contained, and indices past `MAX_LAYERS` never are.
    ///
    /// ```
    /// use brt_core::{LayerSet, MAX_LAYERS};
    /// let set = LayerSet::EMPTY.with(1);
    /// assert!(set.contains(1) && !set.contains(0));
    /// assert!(!LayerSet::from_bits(u128::MAX).contains(MAX_LAYERS));
    /// ```
    pub const fn contains(self, layer: usize) -> bool {
        layer < MAX_LAYERS && self.0 & (1u128 << layer) != 0
    }

    /// Number of layers in the set.
    ///
    /// Adding the same layer twice counts it once.
    ///
    /// ```
    /// use brt_core::LayerSet;
    /// assert_eq!(LayerSet::EMPTY.with(4).with(4).with(9).len(), 2);
    /// assert_eq!(LayerSet::EMPTY.len(), 0);
    /// ```
    pub const fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// Whether the set is empty.
    ///
    /// A set is empty until a layer is added.
    ///
    /// ```
    /// use brt_core::LayerSet;
    /// assert!(LayerSet::EMPTY.is_empty());
    /// assert!(!LayerSet::EMPTY.with(0).is_empty());
    /// ```
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The highest layer in the set.
    ///
    /// The highest layer is returned, whatever the insertion order.
    ///
    /// ```
    /// use brt_core::LayerSet;
    /// assert_eq!(LayerSet::EMPTY.with(9).with(3).last(), Some(9));
    /// assert_eq!(LayerSet::EMPTY.with(127).last(), Some(127));
    /// assert_eq!(LayerSet::EMPTY.last(), None);
    /// ```
    pub const fn last(self) -> Option<usize> {
        if self.0 == 0 {
            None
        } else {
            Some(127 - self.0.leading_zeros() as usize)
        }
    }

    /// The layers in increasing order.
    ///
    /// Layers come out in increasing order.
    ///
    /// ```
    /// use brt_core::LayerSet;
    /// let set = LayerSet::EMPTY.with(6).with(0).with(3);
    /// assert_eq!(set.iter().collect::<Vec<_>>(), [0, 3, 6]);
    /// ```
    pub fn iter(self) -> impl Iterator<Item = usize> {
        (0..MAX_LAYERS).filter(move |&l| self.contains(l))
    }

    /// The raw bit mask (bit `l` set for layer `l`).
    ///
    /// Layer `l` is bit `l` of the mask.
    ///
    /// ```
    /// use brt_core::LayerSet;
    /// assert_eq!(LayerSet::EMPTY.with(0).with(3).bits(), 0b1001);
    /// ```
    pub const fn bits(self) -> u128 {
        self.0
    }

    /// A set from a raw bit mask.
    ///
    /// `from_bits` is the inverse of `bits`: mask `0b110` is layers 1 and 2.
    ///
    /// ```
    /// use brt_core::LayerSet;
    /// let set = LayerSet::from_bits(0b110);
    /// assert_eq!(set.iter().collect::<Vec<_>>(), [1, 2]);
    /// assert_eq!(set.bits(), 0b110);
    /// ```
    pub const fn from_bits(bits: u128) -> LayerSet {
        LayerSet(bits)
    }
}

/// A Block-Recurrent Transformer configuration (SPEC sections 2 to 7).
///
/// Fields are public so that a configuration can be written as a literal; every
/// consumer calls [`Config::validate`] before trusting it.
///
/// A configuration written as a literal with a recurrent layer validates.
///
/// ```
/// use brt_core::{Config, LayerSet};
/// let c = Config { states: 4, recurrent: LayerSet::EMPTY.with(1), ..Config::plain(10, 8, 2, 4, 16, 2, 4) };
/// assert!(c.validate().is_ok());
/// assert!(c.is_recurrent(1));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Config {
    /// Vocabulary size `V`.
    pub vocab: usize,
    /// Model width `d`.
    pub d_model: usize,
    /// Attention heads `H`.
    pub heads: usize,
    /// Head width `dh` (`heads * head_dim` need not equal `d_model`).
    pub head_dim: usize,
    /// MLP hidden width `F`.
    pub mlp_hidden: usize,
    /// Number of layers `L`.
    pub layers: usize,
    /// Block length = attention window `W`.
    pub window: usize,
    /// Number of state vectors `S` (only used when a layer is recurrent).
    pub states: usize,
    /// The recurrent layers (each has its own state).
    pub recurrent: LayerSet,
    /// Layers whose token self-attention is linear (SPEC section 7) instead of the
    /// softmax window.
    pub linear: LayerSet,
    /// The gate of the state update.
    pub gate: GateKind,
    /// The layout of the state update.
    pub layout: StateLayout,
    /// Feedback mode (SPEC section 5.3): every non-recurrent layer also
    /// cross-attends to the state entering the block.
    pub feedback: bool,
    /// Use `abs(a)` for learned attention scales (later official code).
    pub abs_attention_scale: bool,
}

impl Config {
    /// A Transformer with sliding-window attention and no recurrent layer ("Slide").
    ///
    /// A plain configuration has no recurrent layer, no state and validates.
    ///
    /// ```
    /// use brt_core::Config;
    /// let c = Config::plain(10, 8, 2, 4, 16, 3, 4);
    /// assert!(c.recurrent.is_empty() && c.states == 0 && !c.feedback);
    /// assert_eq!((c.vocab, c.layers, c.window), (10, 3, 4));
    /// assert!(c.validate().is_ok());
    /// ```
    pub fn plain(
        vocab: usize,
        d_model: usize,
        heads: usize,
        head_dim: usize,
        mlp_hidden: usize,
        layers: usize,
        window: usize,
    ) -> Config {
        Config {
            vocab,
            d_model,
            heads,
            head_dim,
            mlp_hidden,
            layers,
            window,
            states: 0,
            recurrent: LayerSet::EMPTY,
            linear: LayerSet::EMPTY,
            gate: GateKind::Fixed,
            layout: StateLayout::Skip,
            feedback: false,
            abs_attention_scale: false,
        }
    }

    /// Checks every rule; returns the first one broken.
    ///
    /// A zero window, or a recurrent layer without state vectors, is rejected.
    ///
    /// ```
    /// use brt_core::{Config, CoreError, LayerSet};
    /// let good = Config::plain(10, 8, 2, 4, 16, 2, 4);
    /// assert!(good.validate().is_ok());
    /// let c = Config { window: 0, ..good };
    /// assert!(matches!(c.validate(), Err(CoreError::InvalidConfig { .. })));
    /// let c = Config { recurrent: LayerSet::EMPTY.with(0), ..good };
    /// assert!(matches!(c.validate(), Err(CoreError::InvalidConfig { .. })));
    /// ```
    pub fn validate(&self) -> CoreResult<()> {
        let positive: [(&'static str, usize); 7] = [
            ("vocabulary size must be positive", self.vocab),
            ("model width must be positive", self.d_model),
            ("number of heads must be positive", self.heads),
            ("head width must be positive", self.head_dim),
            ("MLP hidden width must be positive", self.mlp_hidden),
            ("number of layers must be positive", self.layers),
            ("window (block length) must be positive", self.window),
        ];
        for (what, value) in positive {
            if value == 0 {
                return Err(CoreError::InvalidConfig { what, value: 0 });
            }
        }
        if self.layers > MAX_LAYERS {
            return Err(CoreError::InvalidConfig {
                what: "at most 128 layers are supported",
                value: self.layers as i64,
            });
        }
        if self.vocab > u32::MAX as usize {
            return Err(CoreError::InvalidConfig {
                what: "vocabulary size must fit token ids in u32",
                value: self.vocab as i64,
            });
        }
        let beyond = |set: LayerSet| set.last().is_some_and(|l| l >= self.layers);
        if beyond(self.recurrent) {
            return Err(CoreError::InvalidConfig {
                what: "a recurrent layer index is not below the number of layers",
                value: self.recurrent.last().unwrap_or(0) as i64,
            });
        }
        if beyond(self.linear) {
            return Err(CoreError::InvalidConfig {
                what: "a linear-attention layer index is not below the number of layers",
                value: self.linear.last().unwrap_or(0) as i64,
            });
        }
        if !self.recurrent.is_empty() && self.states == 0 {
            return Err(CoreError::InvalidConfig {
                what: "a model with a recurrent layer needs at least one state vector",
                value: 0,
            });
        }
        if self.feedback && self.recurrent.is_empty() {
            return Err(CoreError::InvalidConfig {
                what: "feedback mode needs at least one recurrent layer",
                value: 0,
            });
        }
        // Every size used later must be computable without overflow.
        let qkv = product(&[self.heads, self.head_dim], "heads x head width")?;
        product(&[qkv, 2, self.d_model], "attention projection")?;
        product(&[self.vocab, self.d_model], "embedding table")?;
        product(&[self.d_model, self.mlp_hidden, 2], "MLP")?;
        product(&[self.states, self.d_model, 4], "state")?;
        product(&[self.window, 4], "window")?;
        product(&[self.heads, self.head_dim, self.head_dim], "linear attention state")?;
        crate::params::WeightLayout::new(self)?;
        Ok(())
    }

    /// `H * dh`: the width of one query, key or value set.
    ///
    /// The width is heads times head width and need not equal `d_model`.
    ///
    /// ```
    /// use brt_core::Config;
    /// let c = Config::plain(10, 8, 3, 5, 16, 2, 4);
    /// assert_eq!(c.qkv_width(), 3 * 5);
    /// ```
    pub const fn qkv_width(&self) -> usize {
        self.heads * self.head_dim
    }

    /// Whether layer `layer` is recurrent.
    ///
    /// Only layers in `recurrent` are recurrent.
    ///
    /// ```
    /// use brt_core::{Config, LayerSet};
    /// let c = Config { states: 2, recurrent: LayerSet::EMPTY.with(1), ..Config::plain(10, 8, 2, 4, 16, 2, 4) };
    /// assert!(c.is_recurrent(1) && !c.is_recurrent(0));
    /// ```
    pub const fn is_recurrent(&self, layer: usize) -> bool {
        self.recurrent.contains(layer)
    }

    /// The token self-attention of `layer`.
    ///
    /// A layer listed in `linear` uses linear attention; the others use the window.
    ///
    /// ```
    /// use brt_core::{Config, LayerSet, TokenAttention};
    /// let c = Config { linear: LayerSet::EMPTY.with(0), ..Config::plain(10, 8, 2, 4, 16, 2, 4) };
    /// assert_eq!(c.token_attention(0), TokenAttention::Linear);
    /// assert_eq!(c.token_attention(1), TokenAttention::Window);
    /// ```
    pub const fn token_attention(&self, layer: usize) -> TokenAttention {
        if self.linear.contains(layer) {
            TokenAttention::Linear
        } else {
            TokenAttention::Window
        }
    }

    /// Whether `layer` cross-attends to a state: recurrent layers always, the others
    /// in feedback mode.
    ///
    /// Without feedback only the recurrent layer cross-attends; with feedback every layer does.
    ///
    /// ```
    /// use brt_core::{Config, LayerSet};
    /// let c = Config { states: 2, recurrent: LayerSet::EMPTY.with(1), ..Config::plain(10, 8, 2, 4, 16, 3, 4) };
    /// assert!(c.has_cross_attention(1) && !c.has_cross_attention(0));
    /// let fb = Config { feedback: true, ..c };
    /// assert!(fb.has_cross_attention(0) && fb.has_cross_attention(2));
    /// ```
    pub const fn has_cross_attention(&self, layer: usize) -> bool {
        self.is_recurrent(layer) || self.feedback
    }

    /// The recurrent layer whose state feeds back (the last one).
    ///
    /// In feedback mode the last recurrent layer feeds back; otherwise none does.
    ///
    /// ```
    /// use brt_core::{Config, LayerSet};
    /// let c = Config { states: 2, recurrent: LayerSet::EMPTY.with(0).with(2), ..Config::plain(10, 8, 2, 4, 16, 4, 4) };
    /// assert_eq!(c.feedback_source(), None);
    /// assert_eq!(Config { feedback: true, ..c }.feedback_source(), Some(2));
    /// ```
    pub const fn feedback_source(&self) -> Option<usize> {
        if self.feedback {
            self.recurrent.last()
        } else {
            None
        }
    }

    /// Keys and values a layer keeps from the past, per batch row: `W` for a
    /// window layer, `2W` for a recurrent layer (its state update reads the
    /// previous and the current block, which may have been fed in several calls),
    /// none for a plain linear-attention layer.
    ///
    /// A window layer keeps `W` keys, a recurrent layer `2W`, a linear layer none.
    ///
    /// ```
    /// use brt_core::{Config, LayerSet};
    /// let w = 4;
    /// let c = Config {
    ///     states: 2,
    ///     recurrent: LayerSet::EMPTY.with(1),
    ///     linear: LayerSet::EMPTY.with(2),
    ///     ..Config::plain(10, 8, 2, 4, 16, 3, w)
    /// };
    /// assert_eq!(c.kv_cache_positions(0), w);
    /// assert_eq!(c.kv_cache_positions(1), 2 * w);
    /// assert_eq!(c.kv_cache_positions(2), 0);
    /// ```
    pub const fn kv_cache_positions(&self, layer: usize) -> usize {
        if self.is_recurrent(layer) {
            2 * self.window
        } else {
            match self.token_attention(layer) {
                TokenAttention::Window => self.window,
                TokenAttention::Linear => 0,
            }
        }
    }

    /// The gate sites of the state update in this layout.
    ///
    /// The single layout gates only after the MLP; the dual layout after attention then MLP.
    ///
    /// ```
    /// use brt_core::{Config, GateSite, StateLayout};
    /// let c = Config { layout: StateLayout::Single, ..Config::plain(10, 8, 2, 4, 16, 2, 4) };
    /// assert_eq!(c.gate_sites(), [GateSite::Mlp]);
    /// let d = Config { layout: StateLayout::Dual, ..c };
    /// assert_eq!(d.gate_sites(), [GateSite::Attention, GateSite::Mlp]);
    /// ```
    pub const fn gate_sites(&self) -> &'static [GateSite] {
        match self.layout {
            StateLayout::Skip => &[GateSite::Attention],
            StateLayout::Single => &[GateSite::Mlp],
            StateLayout::Dual => &[GateSite::Attention, GateSite::Mlp],
        }
    }

    /// Width of the input of the gate at `site`: `2*H*dh` after the attention,
    /// `F` after the MLP hidden layer.
    ///
    /// The attention gate reads `2*H*dh` inputs, the MLP gate `F`.
    ///
    /// ```
    /// use brt_core::{Config, GateSite};
    /// let (heads, head_dim, mlp_hidden) = (2, 4, 16);
    /// let c = Config::plain(10, 8, heads, head_dim, mlp_hidden, 2, 4);
    /// assert_eq!(c.gate_input_width(GateSite::Attention), 2 * heads * head_dim);
    /// assert_eq!(c.gate_input_width(GateSite::Mlp), mlp_hidden);
    /// ```
    pub const fn gate_input_width(&self, site: GateSite) -> usize {
        match site {
            GateSite::Attention => 2 * self.qkv_width(),
            GateSite::Mlp => self.mlp_hidden,
        }
    }
}

/// Where a gate sits in the state update.
///
/// The skip layout's only gate sits after the attention.
///
/// ```
/// use brt_core::{Config, GateSite};
/// assert_eq!(Config::plain(10, 8, 2, 4, 16, 2, 4).gate_sites(), [GateSite::Attention]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GateSite {
    /// After the attention output projection (official `post_attn_mlp`).
    Attention,
    /// After the state MLP (official `ffn`).
    Mlp,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Config {
        Config { states: 4, recurrent: LayerSet::EMPTY.with(1), ..Config::plain(10, 8, 2, 3, 16, 3, 4) }
    }

    #[test]
    fn negative_indices_count_from_the_top() {
        let set = LayerSet::from_indices(&[-3, 0], 12).unwrap();
        assert!(set.contains(9) && set.contains(0));
        assert_eq!(set.len(), 2);
        assert_eq!(set.last(), Some(9));
        assert!(LayerSet::from_indices(&[12], 12).is_err());
        assert!(LayerSet::from_indices(&[-13], 12).is_err());
        assert!(LayerSet::from_indices(&[-1], 1 << 63).is_err(), "a huge layer count is an error, not an overflow");
        assert!(LayerSet::from_indices(&[i64::MIN], 12).is_err());
    }

    #[test]
    fn validation_rejects_each_bad_field() {
        assert!(base().validate().is_ok());
        let zeroed: [fn(&mut Config); 7] = [
            |c| c.vocab = 0,
            |c| c.d_model = 0,
            |c| c.heads = 0,
            |c| c.head_dim = 0,
            |c| c.mlp_hidden = 0,
            |c| c.layers = 0,
            |c| c.window = 0,
        ];
        for f in zeroed {
            let mut c = base();
            f(&mut c);
            assert!(matches!(c.validate(), Err(CoreError::InvalidConfig { .. })));
        }
        let mut c = base();
        c.states = 0;
        assert!(c.validate().is_err());
        let mut c = base();
        c.recurrent = LayerSet::EMPTY.with(3);
        assert!(c.validate().is_err(), "recurrent layer beyond the stack");
        let mut c = Config::plain(10, 8, 2, 3, 16, 3, 4);
        c.feedback = true;
        assert!(c.validate().is_err(), "feedback without recurrence");
        let mut c = base();
        c.d_model = usize::MAX / 2;
        assert!(matches!(c.validate(), Err(CoreError::SizeOverflow { .. })));
    }

    #[test]
    fn plain_stack_needs_no_states() {
        assert!(Config::plain(10, 8, 2, 3, 16, 3, 4).validate().is_ok());
    }
}
