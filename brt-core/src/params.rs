//! The parameters of a model, their shapes and their place in the flat weight buffer.
//!
//! All parameters live in one buffer, in a canonical order: the embedding, the final
//! norm, then each layer's parameters in [`LayerParam::ALL`] order. Dense kernels are
//! `(in, out)` row-major, as in the official code.

use crate::config::{Config, GateKind, GateSite, StateLayout, TokenAttention};
use crate::error::{add, mul, CoreError, CoreResult};

/// Number of T5 relative-position buckets (SPEC section 2).
///
/// A window layer's position table has one row per head and one column per bucket.
///
/// ```
/// use brt_core::{params::T5_BUCKETS, Config, LayerParam};
/// let c = Config::plain(10, 8, 2, 4, 16, 2, 4);
/// assert_eq!(LayerParam::RelBias.shape(&c, 0), Some((2, T5_BUCKETS)));
/// assert_eq!(T5_BUCKETS, 32);
/// ```
pub const T5_BUCKETS: usize = 32;

/// A parameter of one layer.
///
/// Which parameters a layer has, and their shapes, follow from the
/// configuration: a plain window layer has no state parameters.
///
/// ```
/// use brt_core::{Config, LayerParam};
/// let c = Config::plain(10, 8, 2, 4, 16, 2, 4);
/// assert_eq!(LayerParam::Query.shape(&c, 0), Some((8, 2 * 4)));
/// assert_eq!(LayerParam::MlpOut.shape(&c, 1), Some((16, 8)));
/// assert_eq!(LayerParam::InitialState.shape(&c, 0), None);
/// assert_eq!(LayerParam::from_name("mlp_in"), Some(LayerParam::MlpIn));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LayerParam {
    /// RMS-norm scale before the token projections, `(d,)`.
    AttnNorm,
    /// Token query kernel, `(d, H*dh)`.
    Query,
    /// Token key kernel, `(d, H*dh)`.
    Key,
    /// Token value kernel, `(d, H*dh)`.
    Value,
    /// Learned scale of the token self-attention, `(H,)`.
    AttnScale,
    /// T5 relative position table, `(H, 32)` (window attention only).
    RelBias,
    /// Token cross-attention query kernel, `(d, H*dh)` (recurrent or feedback).
    Query2,
    /// Learned scale of the token cross-attention, `(H,)`.
    AttnScale2,
    /// Attention output projection, `(H*dh, d)` or `(2*H*dh, d)` with cross-attention.
    Out,
    /// RMS-norm scale before the MLP, `(d,)`.
    MlpNorm,
    /// MLP input kernel, `(d, F)`.
    MlpIn,
    /// MLP output kernel, `(F, d)`.
    MlpOut,
    /// Learned initial state, `(S, d)`.
    InitialState,
    /// RMS-norm scale of the state, `(d,)`.
    StateNorm,
    /// State ids added after the state norm, `(S, d)`.
    StateIds,
    /// State query kernel, `(d, H*dh)`.
    StateQuery,
    /// State key kernel, `(d, H*dh)`.
    StateKey,
    /// State value kernel, `(d, H*dh)`.
    StateValue,
    /// State cross-attention query kernel, `(d, H*dh)`.
    StateQuery2,
    /// Learned scale of the state self-attention, `(H,)`.
    StateScale,
    /// Learned scale of the state cross-attention, `(H,)`.
    StateScale2,
    /// State attention output projection, `(2*H*dh, d)` (skip, dual).
    StateOut,
    /// RMS-norm scale before the state MLP, `(d,)` (dual).
    StateMlpNorm,
    /// State MLP input kernel: `(d, F)` (dual) or `(2*H*dh, F)` (single).
    StateMlpIn,
    /// State MLP output kernel, `(F, d)` (dual, single).
    StateMlpOut,
    /// Fixed gate bias `b`, `(d,)`.
    GateBias(GateSite),
    /// LSTM input-gate kernel, `(gate input width, d)`.
    InputGateKernel(GateSite),
    /// LSTM input-gate bias, `(d,)`.
    InputGateBias(GateSite),
    /// LSTM forget-gate kernel, `(gate input width, d)`.
    ForgetGateKernel(GateSite),
    /// LSTM forget-gate bias, `(d,)`.
    ForgetGateBias(GateSite),
}

impl LayerParam {
    /// Every layer parameter, in canonical order.
    ///
    /// The list starts with the attention norm, ends with the MLP gate's forget
    /// bias, and names each parameter once.
    ///
    /// ```
    /// use brt_core::{GateSite, LayerParam};
    /// assert_eq!(LayerParam::ALL[0], LayerParam::AttnNorm);
    /// assert_eq!(LayerParam::ALL[34], LayerParam::ForgetGateBias(GateSite::Mlp));
    /// for (i, p) in LayerParam::ALL.iter().enumerate() {
    ///     assert!(!LayerParam::ALL[..i].contains(p));
    /// }
    /// ```
    pub const ALL: [LayerParam; 35] = {
        use GateSite::{Attention as A, Mlp as M};
        use LayerParam::*;
        [
            AttnNorm,
            Query,
            Key,
            Value,
            AttnScale,
            RelBias,
            Query2,
            AttnScale2,
            Out,
            MlpNorm,
            MlpIn,
            MlpOut,
            InitialState,
            StateNorm,
            StateIds,
            StateQuery,
            StateKey,
            StateValue,
            StateQuery2,
            StateScale,
            StateScale2,
            StateOut,
            StateMlpNorm,
            StateMlpIn,
            StateMlpOut,
            GateBias(A),
            InputGateKernel(A),
            InputGateBias(A),
            ForgetGateKernel(A),
            ForgetGateBias(A),
            GateBias(M),
            InputGateKernel(M),
            InputGateBias(M),
            ForgetGateKernel(M),
            ForgetGateBias(M),
        ]
    };

    /// The parameter's name inside a layer in the project's own format.
    ///
    /// State parameters are named under `state.`, gate parameters under their site.
    ///
    /// ```
    /// use brt_core::{GateSite, LayerParam};
    /// assert_eq!(LayerParam::Out.name(), "attn_out");
    /// assert_eq!(LayerParam::StateIds.name(), "state.ids");
    /// assert_eq!(LayerParam::GateBias(GateSite::Mlp).name(), "state.mlp_gate.bias");
    /// ```
    pub const fn name(self) -> &'static str {
        use GateSite::{Attention as A, Mlp as M};
        use LayerParam::*;
        match self {
            AttnNorm => "attn_norm",
            Query => "query",
            Key => "key",
            Value => "value",
            AttnScale => "attn_scale",
            RelBias => "rel_bias",
            Query2 => "query2",
            AttnScale2 => "attn_scale2",
            Out => "attn_out",
            MlpNorm => "mlp_norm",
            MlpIn => "mlp_in",
            MlpOut => "mlp_out",
            InitialState => "state.initial",
            StateNorm => "state.norm",
            StateIds => "state.ids",
            StateQuery => "state.query",
            StateKey => "state.key",
            StateValue => "state.value",
            StateQuery2 => "state.query2",
            StateScale => "state.attn_scale",
            StateScale2 => "state.attn_scale2",
            StateOut => "state.attn_out",
            StateMlpNorm => "state.mlp_norm",
            StateMlpIn => "state.mlp_in",
            StateMlpOut => "state.mlp_out",
            GateBias(A) => "state.attn_gate.bias",
            InputGateKernel(A) => "state.attn_gate.input_kernel",
            InputGateBias(A) => "state.attn_gate.input_bias",
            ForgetGateKernel(A) => "state.attn_gate.forget_kernel",
            ForgetGateBias(A) => "state.attn_gate.forget_bias",
            GateBias(M) => "state.mlp_gate.bias",
            InputGateKernel(M) => "state.mlp_gate.input_kernel",
            InputGateBias(M) => "state.mlp_gate.input_bias",
            ForgetGateKernel(M) => "state.mlp_gate.forget_kernel",
            ForgetGateBias(M) => "state.mlp_gate.forget_bias",
        }
    }

    /// Whether the parameter is a vector (stored 1-D in files); matrices are 2-D.
    ///
    /// Norm scales, attention scales and gate biases are vectors; kernels and
    /// tables are not.
    ///
    /// ```
    /// use brt_core::{GateSite, LayerParam};
    /// assert!(LayerParam::AttnNorm.is_vector() && LayerParam::AttnScale.is_vector());
    /// assert!(LayerParam::InputGateBias(GateSite::Attention).is_vector());
    /// assert!(!LayerParam::Query.is_vector() && !LayerParam::InitialState.is_vector());
    /// ```
    pub const fn is_vector(self) -> bool {
        use LayerParam::*;
        matches!(
            self,
            AttnNorm
                | AttnScale
                | AttnScale2
                | MlpNorm
                | StateNorm
                | StateScale
                | StateScale2
                | StateMlpNorm
                | GateBias(_)
                | InputGateBias(_)
                | ForgetGateBias(_)
        )
    }

    /// Whether the parameter is a kernel: the `(input, output)` weight of a
    /// product (`x @ w`), as opposed to a vector or a table read by rows (the
    /// initial state, the state ids, the position bias table).
    ///
    /// Projections and gate kernels are kernels; tables read by rows and vectors
    /// are not.
    ///
    /// ```
    /// use brt_core::{GateSite, LayerParam};
    /// assert!(LayerParam::Key.is_kernel() && LayerParam::StateMlpOut.is_kernel());
    /// assert!(LayerParam::ForgetGateKernel(GateSite::Mlp).is_kernel());
    /// assert!(!LayerParam::RelBias.is_kernel() && !LayerParam::StateIds.is_kernel());
    /// assert!(!LayerParam::MlpNorm.is_kernel());
    /// ```
    pub const fn is_kernel(self) -> bool {
        use LayerParam::*;
        matches!(
            self,
            Query
                | Key
                | Value
                | Query2
                | Out
                | MlpIn
                | MlpOut
                | StateQuery
                | StateKey
                | StateValue
                | StateQuery2
                | StateOut
                | StateMlpIn
                | StateMlpOut
                | InputGateKernel(_)
                | ForgetGateKernel(_)
        )
    }

    /// Whether products read the kernel in parts of `H*dh` rows (the
    /// concatenated self- and cross-attention heads, SPEC 1 "Heads").
    ///
    /// The attention output projections are read by heads, the query kernels
    /// (which produce heads) are not.
    ///
    /// ```
    /// use brt_core::LayerParam;
    /// assert!(LayerParam::Out.is_read_by_heads() && LayerParam::StateOut.is_read_by_heads());
    /// assert!(!LayerParam::Query.is_read_by_heads() && !LayerParam::MlpOut.is_read_by_heads());
    /// ```
    pub const fn is_read_by_heads(self) -> bool {
        use LayerParam::*;
        matches!(self, Out | StateOut | StateMlpIn | InputGateKernel(_) | ForgetGateKernel(_))
    }

    /// The parameter of this name, if any.
    ///
    /// It is the inverse of [`LayerParam::name`]; unknown names give `None`.
    ///
    /// ```
    /// use brt_core::LayerParam;
    /// assert_eq!(LayerParam::from_name("state.attn_out"), Some(LayerParam::StateOut));
    /// assert!(LayerParam::ALL.iter().all(|&p| LayerParam::from_name(p.name()) == Some(p)));
    /// assert_eq!(LayerParam::from_name("layers.0.query"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<LayerParam> {
        LayerParam::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The shape `(rows, cols)` of this parameter in `layer` of `config`, or `None`
    /// when the layer has no such parameter (or `config` has no such layer).
    /// Vectors are `(1, n)`.
    ///
    /// In a recurrent layer the attention output reads the self- and
    /// cross-attention heads (`2*H*dh` rows); the other layers have no state
    /// parameters, and a linear-attention layer has no position table.
    ///
    /// ```
    /// use brt_core::{Config, LayerParam, LayerSet};
    /// let c = Config {
    ///     states: 3,
    ///     recurrent: LayerSet::EMPTY.with(1),
    ///     linear: LayerSet::EMPTY.with(0),
    ///     ..Config::plain(10, 8, 2, 4, 16, 2, 4)
    /// };
    /// assert_eq!(LayerParam::AttnNorm.shape(&c, 0), Some((1, 8)));
    /// assert_eq!(LayerParam::Out.shape(&c, 1), Some((2 * 8, 8)));
    /// assert_eq!(LayerParam::Out.shape(&c, 0), Some((8, 8)));
    /// assert_eq!(LayerParam::InitialState.shape(&c, 1), Some((3, 8)));
    /// assert_eq!(LayerParam::InitialState.shape(&c, 0), None);
    /// assert_eq!(LayerParam::RelBias.shape(&c, 0), None);
    /// assert_eq!(LayerParam::Query.shape(&c, 2), None, "there are two layers");
    /// ```
    pub fn shape(self, config: &Config, layer: usize) -> Option<(usize, usize)> {
        use LayerParam::*;
        if layer >= config.layers {
            return None;
        }
        let d = config.d_model;
        let qkv = config.qkv_width();
        let f = config.mlp_hidden;
        let h = config.heads;
        let recurrent = config.is_recurrent(layer);
        let cross = config.has_cross_attention(layer);
        let layout = config.layout;
        let gate_here =
            |site: GateSite, kind: GateKind| recurrent && config.gate == kind && config.gate_sites().contains(&site);
        let shape = match self {
            AttnNorm | MlpNorm => (1, d),
            Query | Key | Value => (d, qkv),
            AttnScale => (1, h),
            RelBias => match config.token_attention(layer) {
                TokenAttention::Window => (h, T5_BUCKETS),
                TokenAttention::Linear => return None,
            },
            Query2 if cross => (d, qkv),
            AttnScale2 if cross => (1, h),
            Query2 | AttnScale2 => return None,
            Out => (if cross { 2 * qkv } else { qkv }, d),
            MlpIn => (d, f),
            MlpOut => (f, d),
            _ if !recurrent => return None,
            InitialState | StateIds => (config.states, d),
            StateNorm => (1, d),
            StateQuery | StateKey | StateValue | StateQuery2 => (d, qkv),
            StateScale | StateScale2 => (1, h),
            StateOut => match layout {
                StateLayout::Skip | StateLayout::Dual => (2 * qkv, d),
                StateLayout::Single => return None,
            },
            StateMlpNorm => match layout {
                StateLayout::Dual => (1, d),
                _ => return None,
            },
            StateMlpIn => match layout {
                StateLayout::Dual => (d, f),
                StateLayout::Single => (2 * qkv, f),
                StateLayout::Skip => return None,
            },
            StateMlpOut => match layout {
                StateLayout::Dual | StateLayout::Single => (f, d),
                StateLayout::Skip => return None,
            },
            GateBias(site) if gate_here(site, GateKind::Fixed) => (1, d),
            InputGateBias(site) | ForgetGateBias(site) if gate_here(site, GateKind::Lstm) => (1, d),
            InputGateKernel(site) | ForgetGateKernel(site) if gate_here(site, GateKind::Lstm) => {
                (config.gate_input_width(site), d)
            }
            GateBias(_) | InputGateBias(_) | ForgetGateBias(_) | InputGateKernel(_) | ForgetGateKernel(_) => {
                return None
            }
        };
        Some(shape)
    }
}

/// A parameter of the model.
///
/// Each parameter has one canonical name, which [`Param::from_name`] reads back.
///
/// ```
/// use brt_core::{LayerParam, Param};
/// let p = Param::Layer(3, LayerParam::Query);
/// assert_eq!(p.to_string(), "layers.3.query");
/// assert_eq!(Param::from_name("layers.3.query"), Some(p));
/// assert_eq!(Param::Embedding.to_string(), "embed");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Param {
    /// Token embedding `(V, d)`, also the tied output projection.
    Embedding,
    /// RMS-norm scale before the logits, `(d,)`.
    FinalNorm,
    /// A parameter of layer `.0`.
    Layer(usize, LayerParam),
}

impl Param {
    /// Whether the parameter is a vector (stored 1-D in files).
    ///
    /// The final norm is a vector, the embedding a matrix; a layer's parameter is
    /// what [`LayerParam::is_vector`] says.
    ///
    /// ```
    /// use brt_core::{LayerParam, Param};
    /// assert!(Param::FinalNorm.is_vector() && !Param::Embedding.is_vector());
    /// assert!(Param::Layer(0, LayerParam::MlpNorm).is_vector());
    /// ```
    pub const fn is_vector(self) -> bool {
        match self {
            Param::Embedding => false,
            Param::FinalNorm => true,
            Param::Layer(_, p) => p.is_vector(),
        }
    }

    /// Whether the parameter is a layer's kernel ([`LayerParam::is_kernel`]).
    ///
    /// The embedding, though a matrix, is not a kernel.
    ///
    /// ```
    /// use brt_core::{LayerParam, Param};
    /// assert!(Param::Layer(1, LayerParam::MlpIn).is_kernel());
    /// assert!(!Param::Embedding.is_kernel() && !Param::FinalNorm.is_kernel());
    /// ```
    pub const fn is_kernel(self) -> bool {
        match self {
            Param::Embedding | Param::FinalNorm => false,
            Param::Layer(_, p) => p.is_kernel(),
        }
    }

    /// The parameter with canonical name `name` (as [`Param`]'s `Display` writes
    /// it: `embed`, `final_norm`, `layers.3.query`, ...). Layer numbers are plain
    /// decimals without leading zeros, so each parameter has exactly one name.
    ///
    /// Names round-trip through `Display`; a layer number with a leading zero or
    /// a sign, or an unknown parameter, is not a name.
    ///
    /// ```
    /// use brt_core::{LayerParam, Param};
    /// assert_eq!(Param::from_name("final_norm"), Some(Param::FinalNorm));
    /// assert_eq!(Param::from_name("layers.10.state.ids"), Some(Param::Layer(10, LayerParam::StateIds)));
    /// assert_eq!(Param::from_name("layers.0.mlp_in"), Some(Param::Layer(0, LayerParam::MlpIn)));
    /// assert_eq!(Param::from_name("layers.01.mlp_in"), None);
    /// assert_eq!(Param::from_name("layers.+1.mlp_in"), None);
    /// assert_eq!(Param::from_name("layers.1.mlp"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<Param> {
        match name {
            "embed" => Some(Param::Embedding),
            "final_norm" => Some(Param::FinalNorm),
            _ => {
                let rest = name.strip_prefix("layers.")?;
                let (layer, p) = rest.split_once('.')?;
                let canonical = !layer.is_empty()
                    && layer.bytes().all(|b| b.is_ascii_digit())
                    && (layer == "0" || !layer.starts_with('0'));
                if !canonical {
                    return None;
                }
                Some(Param::Layer(layer.parse().ok()?, LayerParam::from_name(p)?))
            }
        }
    }
}

/// The canonical name of a parameter in brt's files.
///
/// A layer's parameter is named `layers.<layer>.<name>`.
///
/// ```
/// use brt_core::{GateSite, LayerParam, Param};
/// let p = Param::Layer(2, LayerParam::ForgetGateKernel(GateSite::Attention));
/// assert_eq!(p.to_string(), "layers.2.state.attn_gate.forget_kernel");
/// assert_eq!(format!("{}", Param::FinalNorm), "final_norm");
/// ```
impl core::fmt::Display for Param {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Param::Embedding => f.write_str("embed"),
            Param::FinalNorm => f.write_str("final_norm"),
            Param::Layer(l, p) => write!(f, "layers.{l}.{}", p.name()),
        }
    }
}

/// Where a parameter lives in the flat weight buffer.
///
/// A parameter's values are `buffer[offset .. offset + len()]`, row-major.
///
/// ```
/// use brt_core::Span;
/// let buffer: Vec<f32> = (0..20).map(|i| i as f32).collect();
/// let span = Span { offset: 4, rows: 2, cols: 3 };
/// let values = &buffer[span.offset..span.offset + span.len()];
/// assert_eq!(values, [4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// First element.
    pub offset: usize,
    /// Rows (1 for vectors).
    pub rows: usize,
    /// Columns.
    pub cols: usize,
}

impl Span {
    /// Number of elements.
    ///
    /// The length is rows times columns.
    ///
    /// ```
    /// use brt_core::Span;
    /// assert_eq!(Span { offset: 100, rows: 4, cols: 8 }.len(), 32);
    /// ```
    pub const fn len(&self) -> usize {
        self.rows * self.cols
    }

    /// Whether the span is empty.
    ///
    /// A span without rows or without columns is empty.
    ///
    /// ```
    /// use brt_core::Span;
    /// assert!(Span { offset: 5, rows: 0, cols: 8 }.is_empty());
    /// assert!(!Span { offset: 5, rows: 1, cols: 8 }.is_empty());
    /// ```
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The sub-span of rows `first .. first + count`.
    ///
    /// Rows 1 and 2 of a `(4, 8)` span start one row (8 elements) in.
    ///
    /// ```
    /// use brt_core::Span;
    /// let span = Span { offset: 100, rows: 4, cols: 8 };
    /// assert_eq!(span.rows(1, 2), Span { offset: 108, rows: 2, cols: 8 });
    /// assert_eq!(span.rows(0, 4), span);
    /// ```
    pub const fn rows(&self, first: usize, count: usize) -> Span {
        Span { offset: self.offset + first * self.cols, rows: count, cols: self.cols }
    }
}

/// The layout of all parameters of a configuration in one flat buffer.
///
/// The canonical layout ([`WeightLayout::new`]) packs the parameters without gaps.
/// An aligned layout ([`WeightLayout::aligned`]) starts every parameter at a
/// multiple of `align` elements, leaving gaps: it is how a deployable model file
/// lays its tensors out, so that the file's data can be used as the weight buffer
/// where it lies.
///
/// The canonical layout starts with the `(V, d)` embedding and the final norm;
/// each parameter follows the previous one.
///
/// ```
/// use brt_core::{Config, Param, WeightLayout};
/// let config = Config::plain(10, 8, 2, 4, 16, 2, 4);
/// let layout = WeightLayout::new(&config)?;
/// assert_eq!(layout.span(Param::FinalNorm).map(|s| s.offset), Some(10 * 8));
/// assert_eq!(layout.layer_offset(0), 10 * 8 + 8);
/// assert_eq!(layout.params().map(|p| p.span.len()).sum::<usize>(), layout.len());
/// # Ok::<(), brt_core::CoreError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WeightLayout {
    config: Config,
    total: usize,
    align: usize,
}

impl WeightLayout {
    /// Computes the canonical layout; fails only if a size overflows.
    ///
    /// The layout of the official code's `fixed_skip` test case has its 50684
    /// parameters; a vocabulary too large for the address space is an error.
    ///
    /// ```
    /// use brt_core::{Config, CoreError, LayerSet, WeightLayout};
    /// let config = Config {
    ///     states: 8,
    ///     recurrent: LayerSet::EMPTY.with(2),
    ///     ..Config::plain(260, 32, 4, 8, 64, 4, 16)
    /// };
    /// assert_eq!(WeightLayout::new(&config)?.len(), 50684);
    /// let huge = Config::plain(usize::MAX, 8, 2, 4, 16, 2, 4);
    /// assert!(matches!(WeightLayout::new(&huge), Err(CoreError::SizeOverflow { .. })));
    /// # Ok::<(), CoreError>(())
    /// ```
    pub fn new(config: &Config) -> CoreResult<WeightLayout> {
        WeightLayout::aligned(config, 1)
    }

    /// The layout with every parameter starting at a multiple of `align` elements
    /// (the gaps belong to no parameter). Fails if `align` is zero or a size
    /// overflows.
    ///
    /// Every parameter starts at a multiple of the alignment, in canonical order,
    /// and the buffer is longer by the gaps.
    ///
    /// ```
    /// use brt_core::{Config, WeightLayout};
    /// let config = Config::plain(10, 8, 2, 4, 16, 2, 4);
    /// let aligned = WeightLayout::aligned(&config, 16)?;
    /// assert!(aligned.params().all(|p| p.offset % 16 == 0));
    /// assert!(aligned.len() > WeightLayout::new(&config)?.len());
    /// assert_eq!(WeightLayout::aligned(&config, 1)?, WeightLayout::new(&config)?);
    /// assert!(WeightLayout::aligned(&config, 0).is_err());
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub fn aligned(config: &Config, align: usize) -> CoreResult<WeightLayout> {
        if align == 0 {
            return Err(CoreError::InvalidConfig { what: "weight alignment must be positive", value: 0 });
        }
        let mut total = 0usize;
        for spec in ParamIter::new(config, align) {
            let spec = spec?;
            total = add(spec.offset, spec.span.len(), "weights")?;
        }
        Ok(WeightLayout { config: *config, total, align })
    }

    /// The alignment of every parameter's first element, in elements (1 for the
    /// canonical layout).
    ///
    /// It is the alignment asked for, and 1 for the canonical layout.
    ///
    /// ```
    /// use brt_core::{Config, WeightLayout};
    /// let config = Config::plain(10, 8, 2, 4, 16, 2, 4);
    /// assert_eq!(WeightLayout::new(&config)?.align(), 1);
    /// assert_eq!(WeightLayout::aligned(&config, 8)?.align(), 8);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub const fn align(&self) -> usize {
        self.align
    }

    /// Total number of elements of the buffer: every parameter, and the gaps of an
    /// aligned layout.
    ///
    /// The buffer ends where the last parameter (the top layer's MLP output
    /// kernel, in a plain model) ends.
    ///
    /// ```
    /// use brt_core::{Config, LayerParam, Param, WeightLayout};
    /// let config = Config::plain(10, 8, 2, 4, 16, 2, 4);
    /// let layout = WeightLayout::new(&config)?;
    /// let last = layout.span(Param::Layer(1, LayerParam::MlpOut)).unwrap();
    /// assert_eq!(layout.len(), last.offset + last.len());
    /// assert_eq!(layout.len(), 1276);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub const fn len(&self) -> usize {
        self.total
    }

    /// Whether the model has no parameters (never true for a valid config).
    ///
    /// A valid configuration always has an embedding, so its layout is not empty.
    ///
    /// ```
    /// use brt_core::{Config, WeightLayout};
    /// assert!(!WeightLayout::new(&Config::plain(1, 1, 1, 1, 1, 1, 1))?.is_empty());
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub const fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The configuration this layout was computed for.
    ///
    /// The layout keeps a copy of the configuration.
    ///
    /// ```
    /// use brt_core::{Config, WeightLayout};
    /// let config = Config::plain(10, 8, 2, 4, 16, 2, 4);
    /// assert_eq!(WeightLayout::new(&config)?.config(), &config);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub const fn config(&self) -> &Config {
        &self.config
    }

    /// Where `param` lives, or `None` when the model has no such parameter.
    ///
    /// The embedding is first and has the model's shape; a layer past the top,
    /// or a parameter the layer lacks, has no span.
    ///
    /// ```
    /// use brt_core::{Config, LayerParam, Param, Span, WeightLayout};
    /// let layout = WeightLayout::new(&Config::plain(10, 8, 2, 4, 16, 2, 4))?;
    /// assert_eq!(layout.span(Param::Embedding), Some(Span { offset: 0, rows: 10, cols: 8 }));
    /// assert_eq!(layout.span(Param::Layer(2, LayerParam::Query)), None);
    /// assert_eq!(layout.span(Param::Layer(0, LayerParam::StateNorm)), None);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub fn span(&self, param: Param) -> Option<Span> {
        self.params().find(|p| p.param == param).map(|p| p.span)
    }

    /// The first element of `layer`'s parameters.
    ///
    /// Layer 1 starts where layer 0 ends; a layer past the top starts at the
    /// buffer's end.
    ///
    /// ```
    /// use brt_core::{Config, LayerParam, Param, WeightLayout};
    /// let layout = WeightLayout::new(&Config::plain(10, 8, 2, 4, 16, 2, 4))?;
    /// let end_of_0 = layout.span(Param::Layer(0, LayerParam::MlpOut)).map(|s| s.offset + s.len());
    /// assert_eq!(Some(layout.layer_offset(1)), end_of_0);
    /// assert_eq!(layout.layer_offset(2), layout.len());
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub fn layer_offset(&self, layer: usize) -> usize {
        self.params().find(|p| matches!(p.param, Param::Layer(l, _) if l == layer)).map_or(self.total, |p| p.offset)
    }

    /// The parameters of layer `layer`, resolved in one pass.
    ///
    /// The spans are those [`WeightLayout::span`] finds one by one, in an aligned
    /// layout too.
    ///
    /// ```
    /// use brt_core::{Config, LayerParam, Param, WeightLayout};
    /// let layout = WeightLayout::aligned(&Config::plain(10, 8, 2, 4, 16, 2, 4), 8)?;
    /// let spans = layout.layer(1);
    /// for p in LayerParam::ALL {
    ///     assert_eq!(spans.get(p), layout.span(Param::Layer(1, p)));
    /// }
    /// assert_eq!(spans.get(LayerParam::AttnNorm).map(|s| s.offset), Some(layout.layer_offset(1)));
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub fn layer(&self, layer: usize) -> LayerSpans {
        let mut spans = LayerSpans { spans: [None; LayerParam::ALL.len()] };
        // Parameters inside a layer follow one another, each at the next multiple
        // of the alignment (the sums cannot overflow: the layout was checked).
        let mut offset = self.layer_offset(layer);
        for (slot, p) in spans.spans.iter_mut().zip(LayerParam::ALL) {
            if let Some((rows, cols)) = p.shape(&self.config, layer) {
                offset = offset.next_multiple_of(self.align);
                *slot = Some(Span { offset, rows, cols });
                offset += rows * cols;
            }
        }
        spans
    }

    /// Every parameter in canonical order. The layout was checked for overflow when
    /// it was made, so the iteration cannot fail.
    ///
    /// The embedding and final norm come first, then each layer's parameters; in
    /// the canonical layout they tile the buffer without gaps.
    ///
    /// ```
    /// use brt_core::{Config, LayerParam, Param, WeightLayout};
    /// let layout = WeightLayout::new(&Config::plain(10, 8, 2, 4, 16, 2, 4))?;
    /// let names: Vec<Param> = layout.params().take(4).map(|p| p.param).collect();
    /// let layer0 = |p| Param::Layer(0, p);
    /// let first = [Param::Embedding, Param::FinalNorm, layer0(LayerParam::AttnNorm), layer0(LayerParam::Query)];
    /// assert_eq!(names, first);
    /// let mut next = 0;
    /// for p in layout.params() {
    ///     assert_eq!(p.offset, next);
    ///     next += p.span.len();
    /// }
    /// assert_eq!(next, layout.len());
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub fn params(&self) -> impl Iterator<Item = ParamSpec> + '_ {
        ParamIter::new(&self.config, self.align).map_while(Result::ok)
    }
}

/// The parameters of one layer, looked up by [`LayerParam`].
///
/// Made by [`WeightLayout::layer`]: only the parameters the layer has are found.
///
/// ```
/// use brt_core::{params::LayerSpans, Config, LayerParam, WeightLayout};
/// let layout = WeightLayout::new(&Config::plain(10, 8, 2, 4, 16, 2, 4))?;
/// let spans: LayerSpans = layout.layer(0);
/// assert_eq!(spans.get(LayerParam::MlpIn).map(|s| (s.rows, s.cols)), Some((8, 16)));
/// assert!(spans.get(LayerParam::StateQuery).is_none());
/// # Ok::<(), brt_core::CoreError>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct LayerSpans {
    spans: [Option<Span>; LayerParam::ALL.len()],
}

impl LayerSpans {
    /// Where `param` lives, or `None` when this layer has no such parameter.
    ///
    /// A plain layer's query kernel is found, with its shape; its initial state is
    /// not.
    ///
    /// ```
    /// use brt_core::{Config, LayerParam, WeightLayout};
    /// let layout = WeightLayout::new(&Config::plain(10, 8, 2, 4, 16, 2, 4))?;
    /// let query = layout.layer(1).get(LayerParam::Query).unwrap();
    /// assert_eq!((query.rows, query.cols), (8, 8));
    /// assert_eq!(layout.layer(1).get(LayerParam::InitialState), None);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub fn get(&self, param: LayerParam) -> Option<Span> {
        let index = LayerParam::ALL.iter().position(|&p| p == param)?;
        self.spans[index]
    }

    /// Where `param` lives; an error names it when this layer lacks it, which only a
    /// bug in the cell algebra can cause.
    ///
    /// A parameter the layer has is returned; one it lacks is a
    /// [`Mismatch`](CoreError::Mismatch) error.
    ///
    /// ```
    /// use brt_core::{Config, CoreError, LayerParam, WeightLayout};
    /// let spans = WeightLayout::new(&Config::plain(10, 8, 2, 4, 16, 2, 4))?.layer(0);
    /// assert_eq!(spans.require(LayerParam::Key)?.len(), 8 * 8);
    /// assert!(matches!(spans.require(LayerParam::StateKey), Err(CoreError::Mismatch { .. })));
    /// # Ok::<(), CoreError>(())
    /// ```
    pub fn require(&self, param: LayerParam) -> CoreResult<Span> {
        self.get(param)
            .ok_or(CoreError::Mismatch { what: "the cell algebra asked for a parameter this layer does not have" })
    }
}

/// One parameter with its place in the buffer.
///
/// The offset is that of the span; the first parameter is the embedding at 0.
///
/// ```
/// use brt_core::{params::ParamSpec, Config, Param, Span, WeightLayout};
/// let layout = WeightLayout::new(&Config::plain(10, 8, 2, 4, 16, 2, 4))?;
/// let first: ParamSpec = layout.params().next().unwrap();
/// let span = Span { offset: 0, rows: 10, cols: 8 };
/// assert_eq!(first, ParamSpec { param: Param::Embedding, offset: 0, span });
/// assert!(layout.params().all(|p| p.offset == p.span.offset));
/// # Ok::<(), brt_core::CoreError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParamSpec {
    /// Which parameter.
    pub param: Param,
    /// First element in the flat buffer.
    pub offset: usize,
    /// Its place and shape.
    pub span: Span,
}

/// Iterates parameters in canonical order, with overflow-checked offsets.
struct ParamIter<'c> {
    config: &'c Config,
    /// 0: embedding, 1: final norm, then 2 + layer * ALL.len() + index.
    cursor: usize,
    offset: usize,
    /// Every parameter starts at a multiple of this (positive).
    align: usize,
    failed: bool,
}

impl<'c> ParamIter<'c> {
    fn new(config: &'c Config, align: usize) -> Self {
        ParamIter { config, cursor: 0, offset: 0, align: align.max(1), failed: false }
    }
}

impl Iterator for ParamIter<'_> {
    type Item = CoreResult<ParamSpec>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let per_layer = LayerParam::ALL.len();
        loop {
            let cursor = self.cursor;
            let (param, shape) = match cursor {
                0 => (Param::Embedding, Some((self.config.vocab, self.config.d_model))),
                1 => (Param::FinalNorm, Some((1, self.config.d_model))),
                _ => {
                    let layer = (cursor - 2) / per_layer;
                    if layer >= self.config.layers {
                        return None;
                    }
                    let p = LayerParam::ALL[(cursor - 2) % per_layer];
                    (Param::Layer(layer, p), p.shape(self.config, layer))
                }
            };
            self.cursor += 1;
            let Some((rows, cols)) = shape else { continue };
            let spec = mul(rows, cols, "a parameter").and_then(|len| {
                let start = add(self.offset, (self.align - self.offset % self.align) % self.align, "weights")?;
                let spec = ParamSpec { param, offset: start, span: Span { offset: start, rows, cols } };
                self.offset = add(start, len, "weights")?;
                Ok(spec)
            });
            if spec.is_err() {
                self.failed = true;
            }
            return Some(spec);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LayerSet;

    fn meliad_like(layout: StateLayout, gate: GateKind) -> Config {
        Config {
            states: 8,
            recurrent: LayerSet::EMPTY.with(2),
            layout,
            gate,
            ..Config::plain(260, 32, 4, 8, 64, 4, 16)
        }
    }

    #[test]
    fn fixed_skip_count_matches_the_official_case() {
        // case.json of testdata/meliad/fixed_skip reports 50684 parameters.
        let layout = WeightLayout::new(&meliad_like(StateLayout::Skip, GateKind::Fixed)).unwrap();
        assert_eq!(layout.len(), 50684);
    }

    #[test]
    fn spans_tile_the_buffer_without_gaps() {
        for layout in [StateLayout::Skip, StateLayout::Single, StateLayout::Dual] {
            for gate in [GateKind::Fixed, GateKind::Lstm] {
                let mut c = meliad_like(layout, gate);
                c.feedback = true;
                c.linear = LayerSet::EMPTY.with(0);
                let w = WeightLayout::new(&c).unwrap();
                let mut next = 0;
                for p in w.params() {
                    assert_eq!(p.offset, next);
                    assert_eq!(w.span(p.param), Some(p.span));
                    next += p.span.len();
                }
                assert_eq!(next, w.len());
                let spans = w.layer(2);
                assert_eq!(spans.get(LayerParam::AttnNorm).map(|s| s.offset), Some(w.layer_offset(2)));
                assert_eq!(spans.get(LayerParam::Query).map(|s| s.offset), Some(w.layer_offset(2) + 32));
            }
        }
    }

    #[test]
    fn aligned_layouts_start_every_parameter_at_a_multiple_and_keep_the_order() {
        let mut c = meliad_like(StateLayout::Dual, GateKind::Lstm);
        c.linear = LayerSet::EMPTY.with(0);
        let canonical = WeightLayout::new(&c).unwrap();
        for align in [1, 8, 16, 32] {
            let w = WeightLayout::aligned(&c, align).unwrap();
            assert_eq!(w.align(), align);
            let mut end = 0;
            for (p, q) in w.params().zip(canonical.params()) {
                assert_eq!((p.param, p.span.rows, p.span.cols), (q.param, q.span.rows, q.span.cols));
                assert_eq!(p.offset % align, 0, "{:?} at {}", p.param, p.offset);
                assert!(
                    p.offset >= end && p.offset < end + align,
                    "{:?}: the gap is shorter than the alignment",
                    p.param
                );
                assert_eq!(w.span(p.param), Some(p.span));
                end = p.offset + p.span.len();
            }
            assert_eq!(end, w.len());
            for layer in 0..c.layers {
                for p in LayerParam::ALL {
                    assert_eq!(w.layer(layer).get(p), w.span(Param::Layer(layer, p)));
                }
            }
        }
        assert!(WeightLayout::aligned(&c, 0).is_err());
    }

    #[test]
    fn names_round_trip() {
        for p in LayerParam::ALL {
            assert_eq!(LayerParam::from_name(p.name()), Some(p));
        }
    }

    #[test]
    fn layouts_have_their_own_parameters() {
        let c = meliad_like(StateLayout::Single, GateKind::Lstm);
        assert_eq!(LayerParam::StateOut.shape(&c, 2), None);
        assert_eq!(LayerParam::StateMlpIn.shape(&c, 2), Some((64, 64)));
        assert_eq!(LayerParam::InputGateKernel(GateSite::Mlp).shape(&c, 2), Some((64, 32)));
        assert_eq!(LayerParam::InputGateKernel(GateSite::Attention).shape(&c, 2), None);
        assert_eq!(LayerParam::StateQuery.shape(&c, 1), None);
        let d = meliad_like(StateLayout::Dual, GateKind::Lstm);
        assert_eq!(LayerParam::ForgetGateKernel(GateSite::Attention).shape(&d, 2), Some((64, 32)));
        assert_eq!(LayerParam::ForgetGateKernel(GateSite::Mlp).shape(&d, 2), Some((64, 32)));
        assert_eq!(LayerParam::StateMlpIn.shape(&d, 2), Some((32, 64)));
    }
}
