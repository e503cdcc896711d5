//! Deterministic parameter initialisation following the official code's
//! initialisers, from a seed (no allocation, no platform randomness).
//!
//! - embedding: normal, stddev 1 (`embedding_stddev = 1.0`);
//! - dense kernels: truncated normal with variance `1 / fan_in`
//!   (`variance_scaling(1.0, "fan_in", "truncated_normal")`), LSTM gate kernels
//!   with variance `0.1 / fan_in`;
//! - norm scales and attention scales: 1; gate biases: normal, stddev 0.1;
//! - T5 tables: normal with variance `1 / 32` (flax's default embedding init);
//! - initial state: normal, stddev 0.1; state ids: normal, stddev 1.

use crate::config::Config;
use crate::error::{CoreError, CoreResult};
use crate::params::{LayerParam, Param, WeightLayout};

/// A small, fast, well-mixed generator (SplitMix64).
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from `seed`.
    pub const fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform(); // (0, 1]
        let u2 = self.uniform();
        libm::sqrt(-2.0 * libm::log(u1)) * libm::cos(2.0 * core::f64::consts::PI * u2)
    }

    /// Standard normal truncated to `[-2, 2]`, rescaled to unit variance as jax's
    /// `truncated_normal` initialiser does.
    pub fn truncated_normal(&mut self) -> f64 {
        // Stddev of a standard normal truncated to [-2, 2].
        const TRUNCATED_STD: f64 = 0.879_625_657_010_936;
        loop {
            let x = self.normal();
            if x.abs() <= 2.0 {
                return x / TRUNCATED_STD;
            }
        }
    }
}

/// Fills `out` (the whole flat parameter buffer of `config`) with initial values.
pub fn initialize(config: &Config, seed: u64, out: &mut [f32]) -> CoreResult<()> {
    let layout = WeightLayout::new(config)?;
    if out.len() != layout.len() {
        return Err(CoreError::LengthMismatch { what: "parameter buffer", expected: layout.len(), actual: out.len() });
    }
    let mut rng = SplitMix64::new(seed);
    for spec in layout.params() {
        let values = &mut out[spec.offset..spec.offset + spec.span.len()];
        let fan_in = spec.span.rows as f64;
        use LayerParam::*;
        let kind = match spec.param {
            Param::Embedding => Init::Normal(1.0),
            Param::FinalNorm => Init::Constant(1.0),
            Param::Layer(_, p) => match p {
                AttnNorm | MlpNorm | StateNorm | StateMlpNorm | AttnScale | AttnScale2 | StateScale | StateScale2 => {
                    Init::Constant(1.0)
                }
                RelBias => Init::Normal(libm::sqrt(1.0 / spec.span.cols as f64)),
                InitialState => Init::Normal(0.1),
                StateIds => Init::Normal(1.0),
                GateBias(_) | InputGateBias(_) | ForgetGateBias(_) => Init::Normal(0.1),
                InputGateKernel(_) | ForgetGateKernel(_) => Init::Truncated(libm::sqrt(0.1 / fan_in)),
                _ => Init::Truncated(libm::sqrt(1.0 / fan_in)),
            },
        };
        for v in values.iter_mut() {
            *v = match kind {
                Init::Constant(c) => c as f32,
                Init::Normal(std) => (rng.normal() * std) as f32,
                Init::Truncated(std) => (rng.truncated_normal() * std) as f32,
            };
        }
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Init {
    Constant(f64),
    Normal(f64),
    Truncated(f64),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LayerSet;

    #[test]
    fn deterministic_and_scaled() {
        let config = Config { states: 4, recurrent: LayerSet::EMPTY.with(0), ..Config::plain(50, 64, 2, 8, 128, 2, 4) };
        let n = WeightLayout::new(&config).unwrap().len();
        let mut a = [0f32; 60_000];
        let mut b = [0f32; 60_000];
        initialize(&config, 7, &mut a[..n]).unwrap();
        initialize(&config, 7, &mut b[..n]).unwrap();
        assert_eq!(a[..n], b[..n]);
        let layout = WeightLayout::new(&config).unwrap();
        let q = layout.span(Param::Layer(1, LayerParam::Query)).unwrap();
        let vals = &a[q.offset..q.offset + q.len()];
        let var: f64 = vals.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / vals.len() as f64;
        assert!((var * 64.0 - 1.0).abs() < 0.15, "variance {var} should be about 1/64");
        assert!(initialize(&config, 7, &mut a[..n - 1]).is_err());
    }
}
