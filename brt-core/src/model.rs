//! A model: a validated configuration and its parameters on a backend.

use crate::config::Config;
use crate::error::CoreError;
use crate::kernels::{Storage, WeightData, WeightDtype};
use crate::params::{Param, Span, WeightLayout};

/// A configuration with its parameters in the backend's memory.
///
/// A model made from random initial parameters on the reference backend holds
/// exactly those values, laid out canonically.
///
/// ```
/// use brt_core::{init, Arena, Config, Model, Reference, WeightData, WeightDtype, WeightLayout};
/// let config = Config::plain(10, 8, 2, 4, 16, 2, 4);
/// let mut values = vec![0f32; WeightLayout::new(&config)?.len()];
/// init::initialize(&config, 7, &mut values)?;
/// let mut pool = vec![0f32; values.len()];
/// let mut k = Reference::new(Arena::new(&mut pool, &mut [], &mut []));
/// let model = Model::from_flat(&mut k, &config, WeightDtype::F32, WeightData::F32(&values))?;
/// assert_eq!(model.weights().values(), Some(&values[..]));
/// assert!(format!("{model:?}").starts_with("Model { config: Config {"));
/// # Ok::<(), brt_core::CoreError>(())
/// ```
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
    ///
    /// A buffer allocated on the backend with the layout's length is accepted; one
    /// element short is a [`LengthMismatch`](CoreError::LengthMismatch). (The
    /// backend type cannot be inferred from its buffer, hence the turbofish.)
    ///
    /// ```
    /// use brt_core::{Arena, Config, CoreError, Model, Reference, Storage, WeightDtype, WeightLayout};
    /// let config = Config::plain(10, 8, 2, 4, 16, 2, 4);
    /// let n = WeightLayout::new(&config)?.len();
    /// let mut pool = vec![0f32; 2 * n];
    /// let mut k = Reference::new(Arena::new(&mut pool, &mut [], &mut []));
    /// let weights = k.alloc_weights(n, WeightDtype::F32)?;
    /// let model = Model::<Reference<Arena>>::new(&config, WeightDtype::F32, weights)?;
    /// assert_eq!(model.layout().len(), n);
    /// let short = k.alloc_weights(n - 1, WeightDtype::F32)?;
    /// let e = Model::<Reference<Arena>>::new(&config, WeightDtype::F32, short).unwrap_err();
    /// assert!(matches!(e, CoreError::LengthMismatch { expected, actual, .. } if expected == n && actual == n - 1));
    /// # Ok::<(), CoreError>(())
    /// ```
    pub fn new(config: &Config, dtype: WeightDtype, weights: K::Weights) -> Result<Self, K::Error> {
        Model::with_layout(WeightLayout::new(config)?, dtype, weights)
    }

    /// Wraps parameters already in the backend in any layout of their
    /// configuration (e.g. the aligned one of a model file used where it lies);
    /// the buffer's length must equal the layout's.
    ///
    /// A model in a layout aligned to 8 elements keeps that layout, whose
    /// parameters start at multiples of 8; a buffer of the canonical length does
    /// not fit it.
    ///
    /// ```
    /// use brt_core::{Arena, Config, Model, Param, Reference, Storage, WeightDtype, WeightLayout};
    /// let config = Config::plain(10, 8, 2, 4, 16, 2, 4);
    /// let layout = WeightLayout::aligned(&config, 8)?;
    /// let canonical = WeightLayout::new(&config)?.len();
    /// let mut pool = vec![0f32; layout.len() + canonical];
    /// let mut k = Reference::new(Arena::new(&mut pool, &mut [], &mut []));
    /// let weights = k.alloc_weights(layout.len(), WeightDtype::F32)?;
    /// let model = Model::<Reference<Arena>>::with_layout(layout, WeightDtype::F32, weights)?;
    /// assert_eq!(model.span(Param::FinalNorm).unwrap().offset % 8, 0);
    /// let packed = k.alloc_weights(canonical, WeightDtype::F32)?;
    /// assert!(layout.len() > canonical);
    /// assert!(Model::<Reference<Arena>>::with_layout(layout, WeightDtype::F32, packed).is_err());
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
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
    ///
    /// The values are written as given (here f16 values, which the reference
    /// widens exactly); a buffer of the wrong length is refused.
    ///
    /// ```
    /// use brt_core::half::f16;
    /// use brt_core::{Arena, Config, Model, Reference, WeightData, WeightDtype, WeightLayout};
    /// let config = Config::plain(10, 8, 2, 4, 16, 2, 4);
    /// let n = WeightLayout::new(&config)?.len();
    /// let values: Vec<f16> = (0..n).map(|i| f16::from_f32(i as f32 / 64.0)).collect();
    /// let mut pool = vec![0f32; n];
    /// let mut k = Reference::new(Arena::new(&mut pool, &mut [], &mut []));
    /// assert!(Model::from_flat(&mut k, &config, WeightDtype::F16, WeightData::F16(&values[1..])).is_err());
    /// let model = Model::from_flat(&mut k, &config, WeightDtype::F16, WeightData::F16(&values))?;
    /// assert_eq!(model.weights().values().unwrap()[64], 1.0);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
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
    ///
    /// It is the configuration the model was made from.
    ///
    /// ```
    /// # use brt_core::{init, Arena, Config, Model, Reference, WeightData, WeightDtype, WeightLayout};
    /// # let config = Config::plain(10, 8, 2, 4, 16, 2, 4);
    /// # let mut values = vec![0f32; WeightLayout::new(&config)?.len()];
    /// # init::initialize(&config, 7, &mut values)?;
    /// # let mut pool = vec![0f32; values.len()];
    /// # let mut k = Reference::new(Arena::new(&mut pool, &mut [], &mut []));
    /// # let model = Model::from_flat(&mut k, &config, WeightDtype::F32, WeightData::F32(&values))?;
    /// assert_eq!(model.config(), &config);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub fn config(&self) -> &Config {
        self.layout.config()
    }
    /// Where each parameter lives.
    ///
    /// A model made from a flat buffer has the canonical layout.
    ///
    /// ```
    /// # use brt_core::{init, Arena, Config, Model, Reference, WeightData, WeightDtype, WeightLayout};
    /// # let config = Config::plain(10, 8, 2, 4, 16, 2, 4);
    /// # let mut values = vec![0f32; WeightLayout::new(&config)?.len()];
    /// # init::initialize(&config, 7, &mut values)?;
    /// # let mut pool = vec![0f32; values.len()];
    /// # let mut k = Reference::new(Arena::new(&mut pool, &mut [], &mut []));
    /// # let model = Model::from_flat(&mut k, &config, WeightDtype::F32, WeightData::F32(&values))?;
    /// assert_eq!(model.layout(), &WeightLayout::new(&config)?);
    /// assert_eq!(model.layout().align(), 1);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub fn layout(&self) -> &WeightLayout {
        &self.layout
    }
    /// How the parameters are stored.
    ///
    /// It is the storage type the model was made with.
    ///
    /// ```
    /// # use brt_core::{init, Arena, Config, Model, Reference, WeightData, WeightDtype, WeightLayout};
    /// # let config = Config::plain(10, 8, 2, 4, 16, 2, 4);
    /// # let mut values = vec![0f32; WeightLayout::new(&config)?.len()];
    /// # init::initialize(&config, 7, &mut values)?;
    /// # let mut pool = vec![0f32; values.len()];
    /// # let mut k = Reference::new(Arena::new(&mut pool, &mut [], &mut []));
    /// # let model = Model::from_flat(&mut k, &config, WeightDtype::F32, WeightData::F32(&values))?;
    /// assert_eq!(model.dtype(), WeightDtype::F32);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub fn dtype(&self) -> WeightDtype {
        self.dtype
    }
    /// The parameter buffer.
    ///
    /// On the reference backend the buffer holds the values written.
    ///
    /// ```
    /// # use brt_core::{init, Arena, Config, Model, Reference, WeightData, WeightDtype, WeightLayout};
    /// # let config = Config::plain(10, 8, 2, 4, 16, 2, 4);
    /// # let mut values = vec![0f32; WeightLayout::new(&config)?.len()];
    /// # init::initialize(&config, 7, &mut values)?;
    /// # let mut pool = vec![0f32; values.len()];
    /// # let mut k = Reference::new(Arena::new(&mut pool, &mut [], &mut []));
    /// # let model = Model::from_flat(&mut k, &config, WeightDtype::F32, WeightData::F32(&values))?;
    /// assert_eq!(model.weights().len(), values.len());
    /// assert_eq!(model.weights().values(), Some(&values[..]));
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub fn weights(&self) -> &K::Weights {
        &self.weights
    }
    /// The parameter buffer, to update it in place (training).
    ///
    /// A write through the backend into the buffer changes the model's parameters.
    ///
    /// ```
    /// use brt_core::{Storage, WeightData};
    /// # use brt_core::{init, Arena, Config, Model, Reference, WeightDtype, WeightLayout};
    /// # let config = Config::plain(10, 8, 2, 4, 16, 2, 4);
    /// # let mut values = vec![0f32; WeightLayout::new(&config)?.len()];
    /// # init::initialize(&config, 7, &mut values)?;
    /// # let mut pool = vec![0f32; values.len()];
    /// # let mut k = Reference::new(Arena::new(&mut pool, &mut [], &mut []));
    /// # let mut model = Model::from_flat(&mut k, &config, WeightDtype::F32, WeightData::F32(&values))?;
    /// k.write_weights(model.weights_mut(), 2, WeightData::F32(&[0.5, -0.5]))?;
    /// assert_eq!(model.weights().values().unwrap()[1..4], [values[1], 0.5, -0.5]);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub fn weights_mut(&mut self) -> &mut K::Weights {
        &mut self.weights
    }
    /// Where `param` lives.
    ///
    /// The embedding comes first, `(V, d)`; a parameter the model lacks (here the
    /// cross-attention query of a model without a recurrent layer) has no span.
    ///
    /// ```
    /// use brt_core::{LayerParam, Param, Span};
    /// # use brt_core::{init, Arena, Config, Model, Reference, WeightData, WeightDtype, WeightLayout};
    /// # let config = Config::plain(10, 8, 2, 4, 16, 2, 4);
    /// # let mut values = vec![0f32; WeightLayout::new(&config)?.len()];
    /// # init::initialize(&config, 7, &mut values)?;
    /// # let mut pool = vec![0f32; values.len()];
    /// # let mut k = Reference::new(Arena::new(&mut pool, &mut [], &mut []));
    /// # let model = Model::from_flat(&mut k, &config, WeightDtype::F32, WeightData::F32(&values))?;
    /// assert_eq!(model.span(Param::Embedding), Some(Span { offset: 0, rows: 10, cols: 8 }));
    /// assert_eq!(model.span(Param::Layer(0, LayerParam::Query2)), None);
    /// # Ok::<(), brt_core::CoreError>(())
    /// ```
    pub fn span(&self, param: Param) -> Option<Span> {
        self.layout.span(param)
    }
}
