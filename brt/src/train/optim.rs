//! AdamW with a warmup then cosine or inverse-square-root learning rate, and
//! clipping by global norm.

use super::parts::run_parts;
use serde::{Deserialize, Serialize};

/// How the learning rate decays after the warmup.
///
/// Past the warmup, the cosine reaches the floor at the last step while the
/// inverse square root has halved the peak at four times the warmup:
///
/// ```
/// use brt::train::optim::{Decay, Schedule};
/// let cosine = Schedule { peak: 1.0, floor: 0.1, warmup: 10, total: 110, decay: Decay::Cosine };
/// let rsqrt = Schedule { decay: Decay::Rsqrt, ..cosine };
/// assert!((cosine.rate(110) - 0.1).abs() < 1e-6);
/// assert!((rsqrt.rate(40) - 0.5).abs() < 1e-6);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decay {
    /// Half a cosine from the peak to the floor at the last step.
    Cosine,
    /// `peak * sqrt(warmup / step)` (the official code's schedule).
    Rsqrt,
}

/// The learning-rate schedule.
///
/// The rate climbs linearly to the peak over the warmup, then decays:
///
/// ```
/// use brt::train::optim::{Decay, Schedule};
/// let s = Schedule { peak: 1.0, floor: 0.1, warmup: 10, total: 110, decay: Decay::Cosine };
/// assert_eq!(s.rate(5), 0.5);
/// assert_eq!(s.rate(10), s.peak);
/// assert!(s.rate(60) < s.peak && s.rate(60) > s.floor);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// Peak learning rate.
    pub peak: f32,
    /// Floor of the cosine decay.
    pub floor: f32,
    /// Steps of linear warmup.
    pub warmup: u64,
    /// Total steps (for the cosine).
    pub total: u64,
    /// Decay after the warmup.
    pub decay: Decay,
}

impl Schedule {
    /// The learning rate of step `step` (counted from 1).
    ///
    /// Step 0 counts as step 1, and halfway through the cosine the rate is
    /// halfway between the peak and the floor:
    ///
    /// ```
    /// use brt::train::optim::{Decay, Schedule};
    /// let s = Schedule { peak: 1.0, floor: 0.1, warmup: 10, total: 110, decay: Decay::Cosine };
    /// assert_eq!(s.rate(0), s.rate(1));
    /// assert!((s.rate(60) - 0.55).abs() < 1e-6);
    /// ```
    pub fn rate(&self, step: u64) -> f32 {
        let step = step.max(1) as f64;
        let (peak, floor, warmup) = (self.peak as f64, self.floor as f64, self.warmup as f64);
        if step <= warmup {
            return (peak * step / warmup.max(1.0)) as f32;
        }
        let rate = match self.decay {
            Decay::Cosine => {
                let span = (self.total as f64 - warmup).max(1.0);
                let progress = ((step - warmup) / span).min(1.0);
                floor + 0.5 * (peak - floor) * (1.0 + (std::f64::consts::PI * progress).cos())
            }
            Decay::Rsqrt => peak * (warmup.max(1.0) / step).sqrt(),
        };
        rate as f32
    }
}

/// AdamW's moments and hyperparameters.
///
/// The moments start at zero and the step count goes up with every update:
///
/// ```
/// use brt::train::optim::AdamW;
/// let mut opt = AdamW::new(2, 0.1);
/// assert_eq!((opt.m.len(), opt.v.len(), opt.steps), (2, 2, 0));
/// let mut params = [1.0f32, 1.0];
/// opt.update(&mut params, &[1.0, 0.0], &[false, false], 0.01);
/// assert_eq!(opt.steps, 1);
/// assert!(opt.m[0] > 0.0 && opt.m[1] == 0.0);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct AdamW {
    /// First-moment decay.
    pub beta1: f32,
    /// Second-moment decay.
    pub beta2: f32,
    /// Added to the root of the second moment.
    pub epsilon: f32,
    /// Decoupled weight decay (applied to matrices only, not to norms, scales and
    /// biases).
    pub weight_decay: f32,
    /// First moments.
    pub m: Vec<f32>,
    /// Second moments.
    pub v: Vec<f32>,
    /// Steps taken.
    pub steps: u64,
}

impl AdamW {
    /// Zero moments for `n` parameters.
    ///
    /// The hyperparameters are the official code's (betas 0.9 and 0.98):
    ///
    /// ```
    /// use brt::train::optim::AdamW;
    /// let opt = AdamW::new(3, 0.01);
    /// assert_eq!((opt.beta1, opt.beta2, opt.weight_decay), (0.9, 0.98, 0.01));
    /// assert!(opt.m.iter().chain(&opt.v).all(|&x| x == 0.0));
    /// ```
    pub fn new(n: usize, weight_decay: f32) -> AdamW {
        AdamW { beta1: 0.9, beta2: 0.98, epsilon: 1e-9, weight_decay, m: vec![0.0; n], v: vec![0.0; n], steps: 0 }
    }

    /// One update of `params` by `grads` at learning rate `lr`; `decays[i]` says
    /// whether parameter `i` takes weight decay.
    ///
    /// The first step moves every parameter by about `lr` against the sign of
    /// its gradient; weight decay also pulls a decayed parameter towards zero:
    ///
    /// ```
    /// use brt::train::optim::AdamW;
    /// let mut opt = AdamW::new(3, 0.5);
    /// let mut p = [1.0f32, -1.0, 1.0];
    /// opt.update(&mut p, &[0.5, -2.0, 0.0], &[false, false, true], 0.1);
    /// assert!((p[0] - 0.9).abs() < 1e-5 && (p[1] + 0.9).abs() < 1e-5);
    /// assert!((p[2] - 0.95).abs() < 1e-6); // no gradient: only the decay, lr * 0.5 * 1.0
    /// ```
    pub fn update(&mut self, params: &mut [f32], grads: &[f32], decays: &[bool], lr: f32) {
        self.update_split(params, grads, decays, lr, 1);
    }

    /// [`AdamW::update`] split over up to `threads` threads, a range of the
    /// parameters each (none for fewer than 32,768). Every parameter takes the
    /// same operations, so the result does not depend on the split:
    ///
    /// ```
    /// use brt::train::optim::AdamW;
    /// let n = 100_000;
    /// let grads: Vec<f32> = (0..n).map(|i| (i as f32).sin()).collect();
    /// let decays: Vec<bool> = (0..n).map(|i| i % 3 == 0).collect();
    /// let (mut one, mut two) = (AdamW::new(n, 0.1), AdamW::new(n, 0.1));
    /// let (mut p1, mut p2) = (vec![0.5f32; n], vec![0.5f32; n]);
    /// one.update(&mut p1, &grads, &decays, 0.01);
    /// two.update_split(&mut p2, &grads, &decays, 0.01, 2);
    /// assert_eq!((p1, one), (p2, two));
    /// ```
    pub fn update_split(&mut self, params: &mut [f32], grads: &[f32], decays: &[bool], lr: f32, threads: usize) {
        self.steps += 1;
        let t = self.steps as i32;
        let step = Step {
            beta1: self.beta1,
            beta2: self.beta2,
            epsilon: self.epsilon,
            weight_decay: self.weight_decay,
            c1: 1.0 - self.beta1.powi(t),
            c2: 1.0 - self.beta2.powi(t),
            lr,
        };
        let len = params.len().min(grads.len()).min(decays.len()).min(self.m.len()).min(self.v.len());
        let per_thread = if len < PARALLEL_MIN { len.max(1) } else { len.div_ceil(threads.max(1)) };
        let parts = params[..len]
            .chunks_mut(per_thread)
            .zip(grads.chunks(per_thread).zip(decays.chunks(per_thread)))
            .zip(self.m.chunks_mut(per_thread).zip(self.v.chunks_mut(per_thread)));
        run_parts(parts.map(|((p, (g, d)), (m, v))| move || step.apply(p, g, d, m, v)));
    }
}

/// Parameters below which [`AdamW::update_split`] stays on one thread (starting
/// threads would cost more than the work).
const PARALLEL_MIN: usize = 1 << 15;

/// One AdamW step's constants.
#[derive(Clone, Copy)]
struct Step {
    beta1: f32,
    beta2: f32,
    epsilon: f32,
    weight_decay: f32,
    /// The moments' bias corrections.
    c1: f32,
    c2: f32,
    lr: f32,
}

impl Step {
    /// Updates a range of parameters and their moments.
    fn apply(self, params: &mut [f32], grads: &[f32], decays: &[bool], m: &mut [f32], v: &mut [f32]) {
        let Step { beta1, beta2, epsilon, weight_decay, c1, c2, lr } = self;
        // Zipped, so that no index is checked and the loop runs on vectors
        // (the same operations on each element as an indexed loop).
        for ((p, (&g, &decayed)), (m, v)) in params.iter_mut().zip(grads.iter().zip(decays)).zip(m.iter_mut().zip(v)) {
            *m = beta1 * *m + (1.0 - beta1) * g;
            *v = beta2 * *v + (1.0 - beta2) * g * g;
            let update = (*m / c1) / ((*v / c2).sqrt() + epsilon);
            let decay = if decayed { weight_decay * *p } else { 0.0 };
            *p -= lr * (update + decay);
        }
    }
}

/// Scales `grads` so their global norm is at most `max_norm` (0: no clipping);
/// returns the norm before clipping.
///
/// A gradient of norm 5 is scaled down to norm 1, keeping its direction; with
/// `max_norm` 0 it is left alone:
///
/// ```
/// use brt::train::optim::clip_by_global_norm;
/// let mut g = [3.0f32, 4.0];
/// assert_eq!(clip_by_global_norm(&mut g, 1.0), 5.0);
/// assert!((g[0] - 0.6).abs() < 1e-6 && (g[1] - 0.8).abs() < 1e-6);
/// let mut h = [3.0f32, 4.0];
/// assert_eq!(clip_by_global_norm(&mut h, 0.0), 5.0);
/// assert_eq!(h, [3.0, 4.0]);
/// ```
pub fn clip_by_global_norm(grads: &mut [f32], max_norm: f32) -> f32 {
    // Eight running sums: with one, each addition waits for the previous one
    // (this sum was the slowest part of a `small` optimizer step).
    let square = |g: &f32| *g as f64 * *g as f64;
    let mut sums = [0f64; 8];
    let chunks = grads.chunks_exact(sums.len());
    let tail: f64 = chunks.remainder().iter().map(square).sum();
    for chunk in chunks {
        sums.iter_mut().zip(chunk).for_each(|(sum, g)| *sum += square(g));
    }
    let norm = (sums.iter().sum::<f64>() + tail).sqrt() as f32;
    if max_norm > 0.0 && norm > max_norm {
        let scale = max_norm / norm;
        grads.iter_mut().for_each(|g| *g *= scale);
    }
    norm
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules() {
        let s = Schedule { peak: 1.0, floor: 0.1, warmup: 10, total: 110, decay: Decay::Cosine };
        assert_eq!(s.rate(5), 0.5);
        assert_eq!(s.rate(10), 1.0);
        assert!((s.rate(60) - 0.55).abs() < 1e-6);
        assert!((s.rate(110) - 0.1).abs() < 1e-6);
        let r = Schedule { decay: Decay::Rsqrt, ..s };
        assert!((r.rate(40) - 0.5).abs() < 1e-6);
    }

    #[test]
    fn adamw_moves_against_the_gradient_and_clipping_bounds_the_norm() {
        let mut p = vec![1.0f32, -1.0];
        let mut opt = AdamW::new(2, 0.0);
        opt.update(&mut p, &[0.5, -2.0], &[true, true], 0.1);
        // First step of Adam moves each parameter by lr against the gradient's sign.
        assert!((p[0] - 0.9).abs() < 1e-5 && (p[1] + 0.9).abs() < 1e-5, "{p:?}");
        let mut g = vec![3.0f32, 4.0];
        assert_eq!(clip_by_global_norm(&mut g, 1.0), 5.0);
        assert!((g[0] - 0.6).abs() < 1e-6 && (g[1] - 0.8).abs() < 1e-6);
    }
}
