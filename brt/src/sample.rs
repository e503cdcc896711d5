//! Choosing the next token from logits: repetition and presence penalties,
//! temperature, top-k, top-p, min-p, seeded.
//!
//! Greedy choice (temperature 0) takes the most likely token, unless a penalty
//! on tokens already seen moves the lead:
//!
//! ```
//! use brt::sample::{Sampler, SamplingOptions};
//!
//! let logits = [2.0, -1.0, 0.5, 3.0];
//! let options = SamplingOptions { temperature: 0.0, presence_penalty: 3.0, ..Default::default() };
//! let mut sampler = Sampler::new(options)?;
//! assert_eq!(sampler.sample(&logits)?, 3);
//! sampler.observe(&[3, 0]);
//! assert_eq!(sampler.sample(&logits)?, 2);
//! # Ok::<(), brt::Error>(())
//! ```

use crate::error::{Error, Result};
use brt_core::init::SplitMix64;
use std::collections::BTreeSet;

/// Sampling settings.
///
/// The defaults draw from the model's own distribution (temperature 1, nothing
/// cut, no penalty); settings are changed by name:
///
/// ```
/// use brt::sample::SamplingOptions;
///
/// let default = SamplingOptions::default();
/// assert_eq!((default.temperature, default.top_k, default.top_p, default.min_p), (1.0, 0, 1.0, 0.0));
/// assert_eq!((default.repetition_penalty, default.presence_penalty), (1.0, 0.0));
/// let options = SamplingOptions { temperature: 0.7, top_k: 40, seed: 5, ..default };
/// assert_eq!(options.top_p, 1.0);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SamplingOptions {
    /// Softmax temperature; 0 picks the most likely token.
    pub temperature: f32,
    /// Keep only the `k` most likely tokens (0: all).
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches `p` (1: all).
    pub top_p: f32,
    /// Keep only tokens at least this fraction as likely as the most likely one
    /// (0: all).
    pub min_p: f32,
    /// Divide the positive logits of tokens already seen (the prompt's and the
    /// written ones) by this, multiply their negative logits by it (1: off; the
    /// CTRL paper's penalty, as Hugging Face's `repetition_penalty`).
    pub repetition_penalty: f32,
    /// Subtract this from the logits of tokens already seen (0: off; OpenAI's
    /// `presence_penalty`).
    pub presence_penalty: f32,
    /// Seed of the random choices.
    pub seed: u64,
}

impl Default for SamplingOptions {
    fn default() -> Self {
        SamplingOptions {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            repetition_penalty: 1.0,
            presence_penalty: 0.0,
            seed: 0,
        }
    }
}

/// Draws tokens from logits.
///
/// Two samplers of the same seed draw the same tokens:
///
/// ```
/// use brt::sample::{Sampler, SamplingOptions};
///
/// let logits = [0.5, 0.1, 0.3, 0.2];
/// let draws = |seed| -> brt::Result<Vec<u32>> {
///     let mut sampler = Sampler::new(SamplingOptions { seed, ..Default::default() })?;
///     (0..10).map(|_| sampler.sample(&logits)).collect()
/// };
/// assert_eq!(draws(4)?, draws(4)?);
/// assert!(draws(4)?.iter().all(|&t| t < 4));
/// # Ok::<(), brt::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Sampler {
    options: SamplingOptions,
    rng: SplitMix64,
    order: Vec<usize>,
    probs: Vec<f64>,
    /// The token ids seen (a set: any id, no table as large as the largest).
    seen: BTreeSet<u32>,
    /// The logits after the penalties.
    adjusted: Vec<f32>,
}

impl Sampler {
    /// A sampler; the options are checked.
    ///
    /// Settings out of range are refused:
    ///
    /// ```
    /// use brt::sample::{Sampler, SamplingOptions};
    ///
    /// assert!(Sampler::new(SamplingOptions::default()).is_ok());
    /// assert!(Sampler::new(SamplingOptions { temperature: -1.0, ..Default::default() }).is_err());
    /// assert!(Sampler::new(SamplingOptions { top_p: 0.0, ..Default::default() }).is_err());
    /// assert!(Sampler::new(SamplingOptions { min_p: 1.5, ..Default::default() }).is_err());
    /// assert!(Sampler::new(SamplingOptions { repetition_penalty: 0.0, ..Default::default() }).is_err());
    /// ```
    pub fn new(options: SamplingOptions) -> Result<Sampler> {
        if !(options.temperature >= 0.0 && options.temperature.is_finite()) {
            return Err(Error::Invalid(format!("temperature must be 0 or positive, not {}", options.temperature)));
        }
        if !(options.top_p > 0.0 && options.top_p <= 1.0) {
            return Err(Error::Invalid(format!("top-p must be in (0, 1], not {}", options.top_p)));
        }
        if !(0.0..=1.0).contains(&options.min_p) {
            return Err(Error::Invalid(format!("min-p must be in [0, 1], not {}", options.min_p)));
        }
        if !(options.repetition_penalty > 0.0 && options.repetition_penalty.is_finite()) {
            return Err(Error::Invalid(format!(
                "the repetition penalty must be positive (1: none), not {}",
                options.repetition_penalty
            )));
        }
        if !options.presence_penalty.is_finite() {
            return Err(Error::Invalid(format!(
                "the presence penalty must be finite, not {}",
                options.presence_penalty
            )));
        }
        Ok(Sampler {
            options,
            rng: SplitMix64::new(options.seed),
            order: Vec::new(),
            probs: Vec::new(),
            seen: BTreeSet::new(),
            adjusted: Vec::new(),
        })
    }

    /// Notes tokens the text holds (the prompt, each written token), for the
    /// penalties.
    ///
    /// Only tokens observed are penalized (by the presence penalty 1 here):
    ///
    /// ```
    /// use brt::sample::{Sampler, SamplingOptions};
    ///
    /// let mut sampler = Sampler::new(SamplingOptions { presence_penalty: 1.0, ..Default::default() })?;
    /// assert_eq!(sampler.penalized(&[2.0, 2.0]), [2.0, 2.0]);
    /// sampler.observe(&[1]);
    /// assert_eq!(sampler.penalized(&[2.0, 2.0]), [2.0, 1.0]);
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn observe(&mut self, tokens: &[u32]) {
        self.seen.extend(tokens);
    }

    /// The logits with the penalties applied to the tokens seen so far.
    ///
    /// A repetition penalty of 2 halves a seen token's positive logit and doubles a
    /// negative one; unseen tokens keep theirs:
    ///
    /// ```
    /// use brt::sample::{Sampler, SamplingOptions};
    ///
    /// let mut sampler = Sampler::new(SamplingOptions { repetition_penalty: 2.0, ..Default::default() })?;
    /// sampler.observe(&[0, 1]);
    /// assert_eq!(sampler.penalized(&[3.0, -1.0, 0.5]), [1.5, -2.0, 0.5]);
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn penalized(&self, logits: &[f32]) -> Vec<f32> {
        let mut v = logits.to_vec();
        self.apply_penalties(&mut v);
        v
    }

    fn apply_penalties(&self, logits: &mut [f32]) {
        let (r, presence) = (self.options.repetition_penalty, self.options.presence_penalty);
        if r == 1.0 && presence == 0.0 {
            return;
        }
        for &t in &self.seen {
            if let Some(v) = logits.get_mut(t as usize) {
                // In f64 and clamped: extreme settings push a logit to the end of
                // f32's range, never to an infinity that would poison the softmax.
                let (x, r, presence) = (*v as f64, r as f64, presence as f64);
                let penalized = if x > 0.0 { x / r } else { x * r } - presence;
                *v = penalized.clamp(f32::MIN as f64, f32::MAX as f64) as f32;
            }
        }
    }

    /// The next token given the logits of one position.
    ///
    /// Temperature 0 picks the largest logit, and top-k 1 always the first of the
    /// order; logits that are not finite are refused:
    ///
    /// ```
    /// use brt::sample::{Sampler, SamplingOptions};
    ///
    /// let logits = [0.0, 3.0, 1.0, 2.9];
    /// let mut greedy = Sampler::new(SamplingOptions { temperature: 0.0, ..Default::default() })?;
    /// assert_eq!(greedy.sample(&logits)?, 1);
    /// let mut top1 = Sampler::new(SamplingOptions { top_k: 1, seed: 9, ..Default::default() })?;
    /// assert!((0..20).all(|_| top1.sample(&logits).ok() == Some(1)));
    /// assert!(greedy.sample(&[f32::NAN, 1.0]).is_err());
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn sample(&mut self, logits: &[f32]) -> Result<u32> {
        if logits.is_empty() || logits.iter().any(|v| !v.is_finite()) {
            return Err(Error::Invalid("the model produced non-finite logits".into()));
        }
        let mut adjusted = std::mem::take(&mut self.adjusted);
        adjusted.clear();
        adjusted.extend_from_slice(logits);
        self.apply_penalties(&mut adjusted);
        let token = self.draw(&adjusted);
        self.adjusted = adjusted;
        token
    }

    /// Draws from `logits` (finite, not empty) with temperature, top-k, top-p
    /// and min-p.
    fn draw(&mut self, logits: &[f32]) -> Result<u32> {
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
        // Min-p: tokens at least `min_p` times as likely as the first (the
        // order is by decreasing probability, so they are a prefix).
        if self.options.min_p > 0.0 {
            let floor = self.probs[0] * self.options.min_p as f64;
            // The first token always stays (its probability is the largest).
            kept = kept.min(self.probs.iter().take_while(|&&p| p >= floor).count()).max(1);
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

    /// The penalties as defined: seen tokens' positive logits divided by the
    /// repetition penalty, negative ones multiplied, then the presence penalty
    /// subtracted; unseen tokens untouched.
    #[test]
    fn penalties_change_the_logits_of_seen_tokens_as_defined() {
        let logits = [2.0, -1.0, 0.5, 3.0];
        let options = SamplingOptions { repetition_penalty: 2.0, presence_penalty: 0.25, ..Default::default() };
        let mut s = Sampler::new(options).unwrap();
        assert_eq!(s.penalized(&logits), logits.to_vec());
        s.observe(&[0, 1, 1]);
        assert_eq!(s.penalized(&logits), vec![2.0 / 2.0 - 0.25, -2.0 - 0.25, 0.5, 3.0]);
        // Greedy choice follows the penalized logits: a presence penalty of 3 on
        // the seen tokens 3 and 0 (down to 0 and -1) hands the lead to the
        // unseen token 2 (0.5).
        let mut greedy =
            Sampler::new(SamplingOptions { temperature: 0.0, presence_penalty: 3.0, ..Default::default() }).unwrap();
        greedy.observe(&[3, 0]);
        assert_eq!(greedy.sample(&logits).unwrap(), 2);
    }

    /// Min-p keeps exactly the tokens at least `min_p` times as likely as the
    /// first: with probabilities proportional to e^3, e^2.9, e^1, e^0 and min-p
    /// 0.5, tokens 1 and 3 stay (e^-0.1 = 0.90), 2 (e^-2 = 0.14) and 0 go.
    #[test]
    fn min_p_keeps_the_tokens_near_the_first() {
        let logits = [0.0, 3.0, 1.0, 2.9];
        let mut s = Sampler::new(SamplingOptions { min_p: 0.5, seed: 3, ..Default::default() }).unwrap();
        let drawn: Vec<u32> = (0..300).map(|_| s.sample(&logits).unwrap()).collect();
        assert!(drawn.iter().all(|&t| t == 1 || t == 3));
        assert!(drawn.contains(&1) && drawn.contains(&3));
        assert!(Sampler::new(SamplingOptions { min_p: 1.5, ..Default::default() }).is_err());
        assert!(Sampler::new(SamplingOptions { repetition_penalty: 0.0, ..Default::default() }).is_err());
        assert!(Sampler::new(SamplingOptions { presence_penalty: f32::NAN, ..Default::default() }).is_err());
        // Extreme penalties stay finite, and drawing still works (found by fuzzing).
        // In f32, all four negative logits would become -inf here (a NaN softmax).
        let negative = [-1.0, -2.0, -0.5, -3.0];
        for (repetition_penalty, presence_penalty) in [(3e38, 1e38), (1.0, f32::MAX), (1e-30, -f32::MAX)] {
            let options = SamplingOptions { repetition_penalty, presence_penalty, min_p: 0.9, ..Default::default() };
            let mut s = Sampler::new(options).unwrap();
            s.observe(&[0, 1, 2, 3]);
            assert!(s.penalized(&negative).iter().all(|v| v.is_finite()));
            assert!(s.sample(&negative).unwrap() < 4);
        }
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
