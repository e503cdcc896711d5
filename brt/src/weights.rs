//! A model's parameters in host memory: the configuration and one flat buffer in
//! the core's canonical order, stored as f32, f16 or bf16.

use crate::error::{Error, Result};
use brt_core::half::{bf16, f16};
use brt_core::{Config, Param, WeightData, WeightDtype, WeightLayout};

/// Parameter values in one of the storage types.
///
/// Each variant holds values of one type:
///
/// ```
/// use brt::WeightBuffer;
/// use brt_core::WeightDtype;
/// let buffer = WeightBuffer::F32(vec![0.5, -1.0]);
/// assert_eq!((buffer.len(), buffer.dtype()), (2, WeightDtype::F32));
/// assert_eq!(buffer.convert(WeightDtype::Bf16).dtype(), WeightDtype::Bf16);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum WeightBuffer {
    /// f32 values.
    F32(Vec<f32>),
    /// f16 values.
    F16(Vec<f16>),
    /// bf16 values.
    Bf16(Vec<bf16>),
}

impl WeightBuffer {
    /// Number of values.
    ///
    /// ```
    /// use brt::WeightBuffer;
    /// use brt_core::half::f16;
    /// assert_eq!(WeightBuffer::F16(vec![f16::ONE; 3]).len(), 3);
    /// ```
    pub fn len(&self) -> usize {
        self.data().len()
    }
    /// Whether there are no values.
    ///
    /// ```
    /// use brt::WeightBuffer;
    /// assert!(WeightBuffer::F32(Vec::new()).is_empty());
    /// assert!(!WeightBuffer::F32(vec![1.0]).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// A borrowed view for the backends.
    ///
    /// The view has the buffer's values and type:
    ///
    /// ```
    /// use brt::WeightBuffer;
    /// use brt_core::WeightData;
    /// let buffer = WeightBuffer::F32(vec![1.0, 2.0]);
    /// assert!(matches!(buffer.data(), WeightData::F32(v) if v == [1.0, 2.0]));
    /// ```
    pub fn data(&self) -> WeightData<'_> {
        match self {
            WeightBuffer::F32(v) => WeightData::F32(v),
            WeightBuffer::F16(v) => WeightData::F16(v),
            WeightBuffer::Bf16(v) => WeightData::Bf16(v),
        }
    }
    /// The storage type.
    ///
    /// ```
    /// use brt::WeightBuffer;
    /// use brt_core::{half::bf16, WeightDtype};
    /// assert_eq!(WeightBuffer::Bf16(vec![bf16::ZERO]).dtype(), WeightDtype::Bf16);
    /// ```
    pub fn dtype(&self) -> WeightDtype {
        match self {
            WeightBuffer::F32(_) => WeightDtype::F32,
            WeightBuffer::F16(_) => WeightDtype::F16,
            WeightBuffer::Bf16(_) => WeightDtype::Bf16,
        }
    }
    /// Values `range` as f32.
    ///
    /// f16 values widen exactly:
    ///
    /// ```
    /// use brt::WeightBuffer;
    /// use brt_core::half::f16;
    /// let buffer = WeightBuffer::F16([0.5f32, 1.5, -2.0].map(f16::from_f32).to_vec());
    /// assert_eq!(buffer.to_f32(1..3), [1.5, -2.0]);
    /// ```
    pub fn to_f32(&self, range: std::ops::Range<usize>) -> Vec<f32> {
        match self {
            WeightBuffer::F32(v) => v[range].to_vec(),
            WeightBuffer::F16(v) => v[range].iter().map(|x| x.to_f32()).collect(),
            WeightBuffer::Bf16(v) => v[range].iter().map(|x| x.to_f32()).collect(),
        }
    }
    /// The same values converted to `dtype` (rounding to nearest). Q8_0 is
    /// not a type of values but of a model's tensors: the values stay f32 here
    /// ([`ModelWeights::with_dtype`] rounds them as Q8_0 storage would).
    ///
    /// Converting to f16 rounds to the nearest f16; to Q8_0 leaves f32 values:
    ///
    /// ```
    /// use brt::WeightBuffer;
    /// use brt_core::WeightDtype;
    /// let buffer = WeightBuffer::F32(vec![1.0, 0.1]);
    /// let half = buffer.convert(WeightDtype::F16);
    /// assert_eq!(half.to_f32(0..1), [1.0]);
    /// assert!((half.to_f32(1..2)[0] - 0.1).abs() < 1e-4);
    /// assert_eq!(buffer.convert(WeightDtype::Q8_0), buffer);
    /// ```
    pub fn convert(&self, dtype: WeightDtype) -> WeightBuffer {
        let all = self.to_f32(0..self.len());
        match dtype {
            WeightDtype::F32 | WeightDtype::Q8_0 => WeightBuffer::F32(all),
            WeightDtype::F16 => WeightBuffer::F16(all.iter().map(|&x| f16::from_f32(x)).collect()),
            WeightDtype::Bf16 => WeightBuffer::Bf16(all.iter().map(|&x| bf16::from_f32(x)).collect()),
        }
    }
}

/// The canonical name of a parameter in the project's own format.
///
/// ```
/// use brt::weights::param_name;
/// use brt_core::{LayerParam, Param};
/// assert_eq!(param_name(Param::Embedding), "embed");
/// assert_eq!(param_name(Param::Layer(1, LayerParam::Query)), "layers.1.query");
/// ```
pub fn param_name(param: Param) -> String {
    param.to_string()
}

/// The parameter with canonical name `name`.
///
/// It reverses [`param_name`]; other names are no parameter:
///
/// ```
/// use brt::weights::{param_from_name, param_name};
/// use brt_core::{LayerParam, Param};
/// let query = Param::Layer(0, LayerParam::Query);
/// assert_eq!(param_from_name(&param_name(query)), Some(query));
/// assert_eq!(param_from_name("layers.0.nothing"), None);
/// ```
pub fn param_from_name(name: &str) -> Option<Param> {
    Param::from_name(name)
}

/// A validated model: configuration and parameters.
///
/// A model is built from a configuration and exactly as many values as it
/// needs:
///
/// ```
/// use brt::{ModelWeights, WeightBuffer};
/// use brt_core::{Config, WeightLayout};
/// let config = Config::plain(10, 8, 2, 4, 16, 1, 4);
/// let n = WeightLayout::new(&config)?.len();
/// let model = ModelWeights::new(config, WeightBuffer::F32(vec![0.01; n]))?;
/// assert_eq!((model.config(), model.buffer().len()), (&config, n));
/// # Ok::<(), brt::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct ModelWeights {
    config: Config,
    layout: WeightLayout,
    buffer: WeightBuffer,
    /// The tokenizer the model was trained with ([`crate::tokenizer::Tokenizer::identity`]),
    /// when its file records one.
    tokenizer: Option<String>,
}

impl ModelWeights {
    /// Checks the configuration, the number of values and that every value is
    /// finite.
    ///
    /// A value too few, or a NaN, is refused:
    ///
    /// ```
    /// use brt::{ModelWeights, WeightBuffer};
    /// use brt_core::{Config, WeightLayout};
    /// let config = Config::plain(10, 8, 2, 4, 16, 1, 4);
    /// let n = WeightLayout::new(&config)?.len();
    /// assert!(ModelWeights::new(config, WeightBuffer::F32(vec![0.0; n - 1])).is_err());
    /// let mut values = vec![0.0; n];
    /// values[3] = f32::NAN;
    /// assert!(ModelWeights::new(config, WeightBuffer::F32(values)).is_err());
    /// assert!(ModelWeights::new(config, WeightBuffer::F32(vec![0.0; n])).is_ok());
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn new(config: Config, buffer: WeightBuffer) -> Result<ModelWeights> {
        config.validate()?;
        let layout = WeightLayout::new(&config)?;
        if buffer.len() != layout.len() {
            return Err(Error::Invalid(format!(
                "the configuration needs {} parameters, the buffer has {}",
                layout.len(),
                buffer.len()
            )));
        }
        let weights = ModelWeights { config, layout, buffer, tokenizer: None };
        weights.check_finite()?;
        Ok(weights)
    }

    fn check_finite(&self) -> Result<()> {
        for spec in self.layout.params() {
            let range = spec.offset..spec.offset + spec.span.len();
            if let Some(i) = self.buffer.to_f32(range).iter().position(|v| !v.is_finite()) {
                return Err(Error::Invalid(format!(
                    "parameter `{}` has a non-finite value (NaN or infinity) at element {i}; the weights are corrupt",
                    param_name(spec.param)
                )));
            }
        }
        Ok(())
    }

    /// The configuration.
    ///
    /// ```
    /// let model = brt::default_model()?;
    /// assert_eq!(model.config().vocab, 260);
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn config(&self) -> &Config {
        &self.config
    }
    /// Where each parameter lives.
    ///
    /// The layout covers the whole buffer:
    ///
    /// ```
    /// use brt_core::Param;
    /// let model = brt::default_model()?;
    /// assert_eq!(model.layout().len(), model.buffer().len());
    /// assert_eq!(model.layout().span(Param::Embedding).map(|s| s.offset), Some(0));
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn layout(&self) -> &WeightLayout {
        &self.layout
    }
    /// The values.
    ///
    /// ```
    /// let model = brt::default_model()?;
    /// assert_eq!(model.buffer().dtype(), model.dtype());
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn buffer(&self) -> &WeightBuffer {
        &self.buffer
    }
    /// The values, mutable (the layout cannot change).
    ///
    /// Values can be changed in place, e.g. to zero the embedding:
    ///
    /// ```
    /// use brt::WeightBuffer;
    /// use brt_core::{Config, Param, WeightDtype};
    /// let mut model = brt::bench::random_model(&Config::plain(10, 8, 2, 4, 16, 1, 4), WeightDtype::F32, 1)?;
    /// if let WeightBuffer::F32(values) = model.buffer_mut() {
    ///     values[..10 * 8].fill(0.0);
    /// }
    /// assert!(model.param_f32(Param::Embedding).unwrap().iter().all(|&v| v == 0.0));
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn buffer_mut(&mut self) -> &mut WeightBuffer {
        &mut self.buffer
    }
    /// The storage type.
    ///
    /// The built-in model is stored as f16:
    ///
    /// ```
    /// assert_eq!(brt::default_model()?.dtype(), brt_core::WeightDtype::F16);
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn dtype(&self) -> WeightDtype {
        self.buffer.dtype()
    }
    /// One parameter's values as f32.
    ///
    /// The final norm has `d_model` values; a parameter the configuration lacks
    /// has none:
    ///
    /// ```
    /// use brt_core::{LayerParam, Param};
    /// let model = brt::default_model()?;
    /// assert_eq!(model.param_f32(Param::FinalNorm).map(|v| v.len()), Some(model.config().d_model));
    /// assert_eq!(model.param_f32(Param::Layer(99, LayerParam::Query)), None);
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn param_f32(&self, param: Param) -> Option<Vec<f32>> {
        let span = self.layout.span(param)?;
        Some(self.buffer.to_f32(span.offset..span.offset + span.len()))
    }
    /// The same model stored as `dtype`. For Q8_0, which only model files hold,
    /// the f32 values its blocks would stand for: every quantized tensor rounded
    /// as storing it would. (A Q8_0 file's products also quantize their inputs,
    /// see `brt_core::encoding`; these f32 values do not.)
    ///
    /// f16 values convert to f32 exactly and back; Q8_0 rounds each value a little:
    ///
    /// ```
    /// use brt_core::{Config, WeightDtype};
    /// let model = brt::bench::random_model(&Config::plain(64, 32, 2, 16, 64, 1, 4), WeightDtype::F16, 1)?;
    /// let wide = model.with_dtype(WeightDtype::F32)?;
    /// assert_eq!(wide.dtype(), WeightDtype::F32);
    /// assert_eq!(wide.with_dtype(WeightDtype::F16)?, model);
    /// let q8 = wide.with_dtype(WeightDtype::Q8_0)?;
    /// assert_eq!(q8.dtype(), WeightDtype::F32);
    /// assert_ne!(q8, wide);
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn with_dtype(&self, dtype: WeightDtype) -> Result<ModelWeights> {
        let buffer = match dtype {
            WeightDtype::Q8_0 => {
                let layout = brt_core::ByteLayout::new(&self.config, dtype, brt_gguf::DEFAULT_ALIGNMENT)?;
                let mut bytes = vec![0u8; layout.len()];
                layout.encode(self.buffer.data(), &mut bytes)?;
                let mut values = vec![0f32; self.layout.len()];
                layout.decode(&bytes, &mut values)?;
                WeightBuffer::F32(values)
            }
            _ => self.buffer.convert(dtype),
        };
        Ok(ModelWeights { config: self.config, layout: self.layout, buffer, tokenizer: self.tokenizer.clone() })
    }

    /// The tokenizer the model was trained with, if its file records it (see
    /// [`crate::tokenizer::Tokenizer::identity`]).
    ///
    /// The built-in model records none (its file predates the record); one set
    /// with [`ModelWeights::set_tokenizer`] is kept through a change of type:
    ///
    /// ```
    /// let mut model = brt::default_model()?;
    /// assert_eq!(model.tokenizer(), None);
    /// model.set_tokenizer(Some("bytes".into()));
    /// assert_eq!(model.with_dtype(brt_core::WeightDtype::F32)?.tokenizer(), Some("bytes"));
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn tokenizer(&self) -> Option<&str> {
        self.tokenizer.as_deref()
    }

    /// Records the tokenizer the model is meant for (saved with it).
    ///
    /// ```
    /// let mut model = brt::default_model()?;
    /// model.set_tokenizer(None);
    /// assert_eq!(model.tokenizer(), None);
    /// model.set_tokenizer(Some("ids".into()));
    /// assert_eq!(model.tokenizer(), Some("ids"));
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn set_tokenizer(&mut self, identity: Option<String>) {
        self.tokenizer = identity;
    }
    /// Sets whether learned attention scales are used as `abs(a)`.
    ///
    /// ```
    /// let mut model = brt::default_model()?;
    /// model.set_abs_attention_scale(true);
    /// assert!(model.config().abs_attention_scale);
    /// assert_eq!(model.layout().len(), model.buffer().len());
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn set_abs_attention_scale(&mut self, abs: bool) {
        self.config.abs_attention_scale = abs;
        self.layout = WeightLayout::new(&self.config).unwrap_or(self.layout);
    }
}
