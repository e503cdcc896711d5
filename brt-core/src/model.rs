//! A model: a validated configuration and its parameters on a backend.

use crate::config::Config;
use crate::error::CoreError;
use crate::kernels::{Storage, WeightData, WeightDtype};
use crate::params::{Param, Span, WeightLayout};

/// A configuration with its parameters in the backend's memory.
pub struct Model<K: Storage> {
    layout: WeightLayout,
    dtype: WeightDtype,
    weights: K::Weights,
}

impl<K: Storage> core::fmt::Debug for Model<K> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Model").field("config", self.config()).field("dtype", &self.dtype).finish_non_exhaustive()
    }
}

impl<K: Storage> Model<K> {
    /// Wraps parameters already in the backend, in the canonical layout; their
    /// number must match the layout.
    pub fn new(config: &Config, dtype: WeightDtype, weights: K::Weights) -> Result<Self, K::Error> {
        Model::with_layout(WeightLayout::new(config)?, dtype, weights)
    }

    /// Wraps parameters already in the backend in any layout of their
    /// configuration (e.g. the aligned one of a model file used where it lies);
    /// the buffer's length must equal the layout's.
    pub fn with_layout(layout: WeightLayout, dtype: WeightDtype, weights: K::Weights) -> Result<Self, K::Error> {
        layout.config().validate()?;
        let actual = K::weights_len(&weights);
        if actual != layout.len() {
            return Err(CoreError::LengthMismatch { what: "model parameters", expected: layout.len(), actual }.into());
        }
        Ok(Model { layout, dtype, weights })
    }

    /// Allocates the parameters on `k` and writes them from one flat buffer in
    /// canonical order (see [`WeightLayout`]).
    pub fn from_flat(k: &mut K, config: &Config, dtype: WeightDtype, data: WeightData<'_>) -> Result<Self, K::Error> {
        config.validate()?;
        let layout = WeightLayout::new(config)?;
        if data.len() != layout.len() {
            return Err(CoreError::LengthMismatch {
                what: "model parameters",
                expected: layout.len(),
                actual: data.len(),
            }
            .into());
        }
        let mut weights = k.alloc_weights(layout.len(), dtype)?;
        k.write_weights(&mut weights, 0, data)?;
        Model::new(config, dtype, weights)
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        self.layout.config()
    }
    /// Where each parameter lives.
    pub fn layout(&self) -> &WeightLayout {
        &self.layout
    }
    /// How the parameters are stored.
    pub fn dtype(&self) -> WeightDtype {
        self.dtype
    }
    /// The parameter buffer.
    pub fn weights(&self) -> &K::Weights {
        &self.weights
    }
    /// The parameter buffer, to update it in place (training).
    pub fn weights_mut(&mut self) -> &mut K::Weights {
        &mut self.weights
    }
    /// Where `param` lives.
    pub fn span(&self, param: Param) -> Option<Span> {
        self.layout.span(param)
    }
}
