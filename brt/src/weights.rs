//! A model's parameters in host memory: the configuration and one flat buffer in
//! the core's canonical order, stored as f32, f16 or bf16.

use crate::error::{Error, Result};
use brt_core::half::{bf16, f16};
use brt_core::{Config, Param, WeightData, WeightDtype, WeightLayout};

/// Parameter values in one of the storage types.
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
    pub fn len(&self) -> usize {
        self.data().len()
    }
    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// A borrowed view for the backends.
    pub fn data(&self) -> WeightData<'_> {
        match self {
            WeightBuffer::F32(v) => WeightData::F32(v),
            WeightBuffer::F16(v) => WeightData::F16(v),
            WeightBuffer::Bf16(v) => WeightData::Bf16(v),
        }
    }
    /// The storage type.
    pub fn dtype(&self) -> WeightDtype {
        match self {
            WeightBuffer::F32(_) => WeightDtype::F32,
            WeightBuffer::F16(_) => WeightDtype::F16,
            WeightBuffer::Bf16(_) => WeightDtype::Bf16,
        }
    }
    /// Values `range` as f32.
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
pub fn param_name(param: Param) -> String {
    param.to_string()
}

/// The parameter with canonical name `name`.
pub fn param_from_name(name: &str) -> Option<Param> {
    Param::from_name(name)
}

/// A validated model: configuration and parameters.
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
    pub fn config(&self) -> &Config {
        &self.config
    }
    /// Where each parameter lives.
    pub fn layout(&self) -> &WeightLayout {
        &self.layout
    }
    /// The values.
    pub fn buffer(&self) -> &WeightBuffer {
        &self.buffer
    }
    /// The values, mutable (the layout cannot change).
    pub fn buffer_mut(&mut self) -> &mut WeightBuffer {
        &mut self.buffer
    }
    /// The storage type.
    pub fn dtype(&self) -> WeightDtype {
        self.buffer.dtype()
    }
    /// One parameter's values as f32.
    pub fn param_f32(&self, param: Param) -> Option<Vec<f32>> {
        let span = self.layout.span(param)?;
        Some(self.buffer.to_f32(span.offset..span.offset + span.len()))
    }
    /// The same model stored as `dtype`. For Q8_0, which only model files hold,
    /// the f32 values its blocks would stand for: every quantized tensor rounded
    /// as storing it would. (A Q8_0 file's products also quantize their inputs,
    /// see `brt_core::encoding`; these f32 values do not.)
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
    pub fn tokenizer(&self) -> Option<&str> {
        self.tokenizer.as_deref()
    }

    /// Records the tokenizer the model is meant for (saved with it).
    pub fn set_tokenizer(&mut self, identity: Option<String>) {
        self.tokenizer = identity;
    }
    /// Sets whether learned attention scales are used as `abs(a)`.
    pub fn set_abs_attention_scale(&mut self, abs: bool) {
        self.config.abs_attention_scale = abs;
        self.layout = WeightLayout::new(&self.config).unwrap_or(self.layout);
    }
}
