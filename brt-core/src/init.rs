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
///
/// The stream depends only on the seed: two generators from one seed agree
/// draw for draw.
///
/// ```
/// use brt_core::init::SplitMix64;
/// let (mut a, mut b) = (SplitMix64::new(42), SplitMix64::new(42));
/// assert!((0..100).all(|_| a.next_u64() == b.next_u64()));
/// let mut c = a.clone();
/// assert_eq!(a.uniform(), c.uniform());
/// ```
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from `seed`.
    ///
    /// Different seeds start different streams; it is `const`, so a generator
    /// can be a constant.
    ///
    /// ```
    /// use brt_core::init::SplitMix64;
    /// const START: SplitMix64 = SplitMix64::new(1);
    /// let (mut a, mut b) = (START, SplitMix64::new(2));
    /// assert_ne!(a.next_u64(), b.next_u64());
    /// ```
    pub const fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    ///
    /// The outputs are those of the published SplitMix64 (from seed 0 the first
    /// is `0xE220A8397B1DCDAF`).
    ///
    /// ```
    /// use brt_core::init::SplitMix64;
    /// let mut rng = SplitMix64::new(0);
    /// assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
    /// assert_ne!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
    /// ```
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    ///
    /// Every draw lies in `[0, 1)`, and many draws average about one half.
    ///
    /// ```
    /// use brt_core::init::SplitMix64;
    /// let mut rng = SplitMix64::new(3);
    /// let draws: Vec<f64> = (0..10_000).map(|_| rng.uniform()).collect();
    /// assert!(draws.iter().all(|&u| (0.0..1.0).contains(&u)));
    /// let mean = draws.iter().sum::<f64>() / draws.len() as f64;
    /// assert!((mean - 0.5).abs() < 0.02, "{mean}");
    /// ```
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    ///
    /// Many draws have a mean near 0 and a variance near 1.
    ///
    /// ```
    /// use brt_core::init::SplitMix64;
    /// let mut rng = SplitMix64::new(5);
    /// let draws: Vec<f64> = (0..10_000).map(|_| rng.normal()).collect();
    /// let mean = draws.iter().sum::<f64>() / draws.len() as f64;
    /// let var = draws.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / draws.len() as f64;
    /// assert!(mean.abs() < 0.05 && (var - 1.0).abs() < 0.05, "{mean} {var}");
    /// ```
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform(); // (0, 1]
        let u2 = self.uniform();
        libm::sqrt(-2.0 * libm::log(u1)) * libm::cos(2.0 * core::f64::consts::PI * u2)
    }

    /// Standard normal truncated to `[-2, 2]`, rescaled to unit variance as jax's
    /// `truncated_normal` initialiser does.
    ///
    /// No draw is beyond 2 standard deviations of the untruncated normal (about
    /// 2.27 after the rescaling), and the variance is about 1.
    ///
    /// ```
    /// use brt_core::init::SplitMix64;
    /// let mut rng = SplitMix64::new(9);
    /// let draws: Vec<f64> = (0..10_000).map(|_| rng.truncated_normal()).collect();
    /// assert!(draws.iter().all(|x| x.abs() <= 2.0 / 0.8796));
    /// let var = draws.iter().map(|x| x * x).sum::<f64>() / draws.len() as f64;
    /// assert!((var - 1.0).abs() < 0.05, "{var}");
    /// ```
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
///
/// The same seed gives the same parameters; norm scales start at 1; a buffer of
/// the wrong length is an error.
///
/// ```
/// use brt_core::{init, Config, Param, WeightLayout};
/// let config = Config::plain(10, 8, 2, 4, 16, 2, 4);
/// let layout = WeightLayout::new(&config)?;
/// let (mut a, mut b) = (vec![0f32; layout.len()], vec![0f32; layout.len()]);
/// init::initialize(&config, 7, &mut a)?;
/// init::initialize(&config, 7, &mut b)?;
/// assert_eq!(a, b);
/// let norm = layout.span(Param::FinalNorm).unwrap();
/// assert!(a[norm.offset..norm.offset + norm.len()].iter().all(|&v| v == 1.0));
/// assert!(init::initialize(&config, 7, &mut a[1..]).is_err());
/// # Ok::<(), brt_core::CoreError>(())
/// ```
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
