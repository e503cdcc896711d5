//! The configuration as JSON, as stored in the metadata of brt weight files.

use crate::error::{Error, Result};
use brt_core::{Config, CoreError, GateKind, LayerSet, StateLayout, MAX_LAYERS};
use serde::{Deserialize, Serialize};

/// The JSON form of [`Config`]: layer sets as lists of indices, enums as names.
///
/// A configuration and its JSON form hold the same model:
///
/// ```
/// use brt::config_file::ConfigFile;
/// let config = brt::bench::named_config("tiny")?;
/// let file = ConfigFile::from(&config);
/// assert_eq!(file.recurrent_layers, [1]);
/// assert_eq!((file.gate.as_str(), file.layout.as_str()), ("fixed", "skip"));
/// assert_eq!(file.to_config()?, config);
/// # Ok::<(), brt::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Vocabulary size.
    pub vocab: usize,
    /// Model width.
    pub d_model: usize,
    /// Attention heads.
    pub heads: usize,
    /// Head width.
    pub head_dim: usize,
    /// MLP hidden width.
    pub mlp_hidden: usize,
    /// Number of layers.
    pub layers: usize,
    /// Block length = window.
    pub window: usize,
    /// State vectors.
    pub states: usize,
    /// Recurrent layer indices (negative counts from the top).
    pub recurrent_layers: Vec<i64>,
    /// Layers with linear token attention.
    #[serde(default)]
    pub linear_layers: Vec<i64>,
    /// `fixed` or `lstm`.
    pub gate: String,
    /// `skip`, `single` or `dual`.
    pub layout: String,
    /// Feedback mode.
    pub feedback: bool,
    /// `abs()` on learned attention scales.
    #[serde(default)]
    pub abs_attention_scale: bool,
}

impl From<&Config> for ConfigFile {
    fn from(c: &Config) -> Self {
        let list = |s: LayerSet| s.iter().map(|l| l as i64).collect();
        ConfigFile {
            vocab: c.vocab,
            d_model: c.d_model,
            heads: c.heads,
            head_dim: c.head_dim,
            mlp_hidden: c.mlp_hidden,
            layers: c.layers,
            window: c.window,
            states: c.states,
            recurrent_layers: list(c.recurrent),
            linear_layers: list(c.linear),
            gate: gate_name(c.gate).into(),
            layout: layout_name(c.layout).into(),
            feedback: c.feedback,
            abs_attention_scale: c.abs_attention_scale,
        }
    }
}

impl ConfigFile {
    /// The validated configuration.
    ///
    /// Negative layer indices count from the top; a configuration that does not
    /// validate is refused:
    ///
    /// ```
    /// use brt::config_file::ConfigFile;
    /// let mut file = ConfigFile::from(&brt::bench::named_config("tiny")?);
    /// file.recurrent_layers = vec![-1];
    /// assert!(file.to_config()?.is_recurrent(1));
    /// file.layers = 0;
    /// assert!(file.to_config().is_err());
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn to_config(&self) -> Result<Config> {
        // The layer count first: layer indices are resolved against it, and a
        // count beyond i64 would overflow that arithmetic.
        if self.layers == 0 || self.layers > MAX_LAYERS {
            let what =
                if self.layers == 0 { "number of layers must be positive" } else { "at most 128 layers are supported" };
            return Err(CoreError::InvalidConfig { what, value: i64::try_from(self.layers).unwrap_or(i64::MAX) }.into());
        }
        let config = Config {
            vocab: self.vocab,
            d_model: self.d_model,
            heads: self.heads,
            head_dim: self.head_dim,
            mlp_hidden: self.mlp_hidden,
            layers: self.layers,
            window: self.window,
            states: self.states,
            recurrent: LayerSet::from_indices(&self.recurrent_layers, self.layers)?,
            linear: LayerSet::from_indices(&self.linear_layers, self.layers)?,
            gate: parse_gate(&self.gate)?,
            layout: parse_layout(&self.layout)?,
            feedback: self.feedback,
            abs_attention_scale: self.abs_attention_scale,
        };
        config.validate()?;
        Ok(config)
    }

    /// Parses and validates a JSON configuration.
    ///
    /// Fields left out take their defaults where they have one (no linear layers,
    /// no `abs` on the scales); unknown fields are refused:
    ///
    /// ```
    /// use brt::config_file::ConfigFile;
    /// let json = r#"{"vocab": 10, "d_model": 8, "heads": 2, "head_dim": 4, "mlp_hidden": 16,
    ///     "layers": 2, "window": 4, "states": 0, "recurrent_layers": [],
    ///     "gate": "fixed", "layout": "skip", "feedback": false}"#;
    /// assert_eq!(ConfigFile::parse(json)?, brt_core::Config::plain(10, 8, 2, 4, 16, 2, 4));
    /// assert!(ConfigFile::parse(&json.replace("\"feedback\"", "\"feedforward\"")).is_err());
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn parse(json: &str) -> Result<Config> {
        let file: ConfigFile =
            serde_json::from_str(json).map_err(|e| Error::Invalid(format!("configuration JSON: {e}")))?;
        file.to_config()
    }

    /// The JSON text of a configuration.
    ///
    /// The text parses back to the same configuration:
    ///
    /// ```
    /// use brt::config_file::ConfigFile;
    /// let config = brt::bench::named_config("small")?;
    /// let json = ConfigFile::to_json(&config);
    /// assert!(json.contains(r#""recurrent_layers":[2]"#));
    /// assert_eq!(ConfigFile::parse(&json)?, config);
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn to_json(config: &Config) -> String {
        // Serialising plain data cannot fail.
        serde_json::to_string(&ConfigFile::from(config)).unwrap_or_default()
    }
}

/// The name of a gate kind.
///
/// The names are those [`parse_gate`] reads:
///
/// ```
/// use brt::config_file::{gate_name, parse_gate};
/// use brt_core::GateKind;
/// assert_eq!(gate_name(GateKind::Lstm), "lstm");
/// assert_eq!(parse_gate(gate_name(GateKind::Fixed))?, GateKind::Fixed);
/// # Ok::<(), brt::Error>(())
/// ```
pub fn gate_name(g: GateKind) -> &'static str {
    match g {
        GateKind::Fixed => "fixed",
        GateKind::Lstm => "lstm",
    }
}

/// The name of a state layout.
///
/// The names are those [`parse_layout`] reads:
///
/// ```
/// use brt::config_file::{layout_name, parse_layout};
/// use brt_core::StateLayout;
/// assert_eq!(layout_name(StateLayout::Dual), "dual");
/// for layout in [StateLayout::Skip, StateLayout::Single, StateLayout::Dual] {
///     assert_eq!(parse_layout(layout_name(layout))?, layout);
/// }
/// # Ok::<(), brt::Error>(())
/// ```
pub fn layout_name(l: StateLayout) -> &'static str {
    match l {
        StateLayout::Skip => "skip",
        StateLayout::Single => "single",
        StateLayout::Dual => "dual",
    }
}

/// Parses a gate name (`fixed`, also the official `bias`, or `lstm`).
///
/// ```
/// use brt::config_file::parse_gate;
/// use brt_core::GateKind;
/// assert_eq!(parse_gate("bias")?, GateKind::Fixed);
/// assert_eq!(parse_gate("lstm")?, GateKind::Lstm);
/// assert!(parse_gate("residual").is_err());
/// # Ok::<(), brt::Error>(())
/// ```
pub fn parse_gate(s: &str) -> Result<GateKind> {
    match s {
        "fixed" | "bias" => Ok(GateKind::Fixed),
        "lstm" => Ok(GateKind::Lstm),
        _ => Err(Error::Invalid(format!("unknown gate `{s}`: use `fixed` or `lstm`"))),
    }
}

/// Parses a layout name.
///
/// ```
/// use brt::config_file::parse_layout;
/// use brt_core::StateLayout;
/// assert_eq!(parse_layout("single")?, StateLayout::Single);
/// assert!(parse_layout("Skip").is_err());
/// # Ok::<(), brt::Error>(())
/// ```
pub fn parse_layout(s: &str) -> Result<StateLayout> {
    match s {
        "skip" => Ok(StateLayout::Skip),
        "single" => Ok(StateLayout::Single),
        "dual" => Ok(StateLayout::Dual),
        _ => Err(Error::Invalid(format!("unknown layout `{s}`: use `skip`, `single` or `dual`"))),
    }
}
