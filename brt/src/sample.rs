//! Choosing the next token from logits: temperature, top-k, top-p, seeded.

use crate::error::{Error, Result};
use brt_core::init::SplitMix64;

/// Sampling settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SamplingOptions {
    /// Softmax temperature; 0 picks the most likely token.
    pub temperature: f32,
    /// Keep only the `k` most likely tokens (0: all).
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches `p` (1: all).
    pub top_p: f32,
    /// Seed of the random choices.
    pub seed: u64,
}

impl Default for SamplingOptions {
    fn default() -> Self {
        SamplingOptions { temperature: 1.0, top_k: 0, top_p: 1.0, seed: 0 }
    }
}

/// Draws tokens from logits.
#[derive(Clone, Debug)]
pub struct Sampler {
    options: SamplingOptions,
    rng: SplitMix64,
    order: Vec<usize>,
    probs: Vec<f64>,
}

impl Sampler {
    /// A sampler; the options are checked.
    pub fn new(options: SamplingOptions) -> Result<Sampler> {
        if !(options.temperature >= 0.0 && options.temperature.is_finite()) {
            return Err(Error::Invalid(format!("temperature must be 0 or positive, not {}", options.temperature)));
        }
        if !(options.top_p > 0.0 && options.top_p <= 1.0) {
            return Err(Error::Invalid(format!("top-p must be in (0, 1], not {}", options.top_p)));
        }
        Ok(Sampler { options, rng: SplitMix64::new(options.seed), order: Vec::new(), probs: Vec::new() })
    }

    /// The next token given the logits of one position.
    pub fn sample(&mut self, logits: &[f32]) -> Result<u32> {
        if logits.is_empty() || logits.iter().any(|v| !v.is_finite()) {
            return Err(Error::Invalid("the model produced non-finite logits".into()));
        }
        let argmax = || logits.iter().enumerate().fold(0, |best, (i, &v)| if v > logits[best] { i } else { best });
        if self.options.temperature == 0.0 {
            return Ok(argmax() as u32);
        }
        // Tokens by decreasing logit, cut to top-k.
        self.order.clear();
        self.order.extend(0..logits.len());
        self.order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
        if self.options.top_k > 0 {
            self.order.truncate(self.options.top_k);
        }
        let max = logits[self.order[0]] as f64;
        let t = self.options.temperature as f64;
        self.probs.clear();
        self.probs.extend(self.order.iter().map(|&i| ((logits[i] as f64 - max) / t).exp()));
        let total: f64 = self.probs.iter().sum();
        // Top-p: the shortest prefix whose probability reaches p.
        let mut kept = self.probs.len();
        if self.options.top_p < 1.0 {
            let mut acc = 0.0;
            for (i, p) in self.probs.iter().enumerate() {
                acc += p / total;
                if acc >= self.options.top_p as f64 {
                    kept = i + 1;
                    break;
                }
            }
        }
        let mass: f64 = self.probs[..kept].iter().sum();
        let mut target = self.rng.uniform() * mass;
        for (i, p) in self.probs[..kept].iter().enumerate() {
            target -= p;
            if target < 0.0 {
                return Ok(self.order[i] as u32);
            }
        }
        Ok(self.order[kept - 1] as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_top_k_and_top_p() {
        let logits = [0.0, 3.0, 1.0, 2.9];
        let mut greedy = Sampler::new(SamplingOptions { temperature: 0.0, ..Default::default() }).unwrap();
        assert_eq!(greedy.sample(&logits).unwrap(), 1);
        let mut top1 = Sampler::new(SamplingOptions { top_k: 1, seed: 9, ..Default::default() }).unwrap();
        assert!((0..50).all(|_| top1.sample(&logits).unwrap() == 1));
        // Tokens 1 and 3 hold about 0.82 of the mass: top-p 0.8 keeps only them.
        let mut top_p = Sampler::new(SamplingOptions { top_p: 0.8, seed: 2, ..Default::default() }).unwrap();
        let drawn: Vec<u32> = (0..200).map(|_| top_p.sample(&logits).unwrap()).collect();
        assert!(drawn.iter().all(|&t| t == 1 || t == 3));
        assert!(drawn.contains(&1) && drawn.contains(&3));
    }

    #[test]
    fn seeded_draws_repeat_and_bad_settings_are_errors() {
        let logits = [0.5, 0.1, 0.3, 0.2];
        let draw = |seed| {
            let mut s = Sampler::new(SamplingOptions { seed, ..Default::default() }).unwrap();
            (0..20).map(|_| s.sample(&logits).unwrap()).collect::<Vec<_>>()
        };
        assert_eq!(draw(4), draw(4));
        assert!(Sampler::new(SamplingOptions { temperature: -1.0, ..Default::default() }).is_err());
        assert!(Sampler::new(SamplingOptions { top_p: 0.0, ..Default::default() }).is_err());
        let mut s = Sampler::new(SamplingOptions::default()).unwrap();
        assert!(s.sample(&[f32::NAN, 1.0]).is_err());
    }
}
