//! Test data from a seed. Proptest draws the *structure* of a case (sizes,
//! offsets, magnitudes, which variant) and one seed; the values follow from the
//! seed, so a failing case prints short and replays exactly.

use brt_core::init::SplitMix64;
use proptest::prelude::*;

/// A seeded generator of test values.
#[derive(Clone, Debug)]
pub struct Rng(SplitMix64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(SplitMix64::new(seed))
    }

    /// A standard normal value.
    pub fn normal(&mut self) -> f32 {
        self.0.normal() as f32
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.0.uniform() as f32
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.0.next_u64() % n as u64) as usize
        }
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.0.uniform() < p
    }

    /// +1 or -1.
    pub fn sign(&mut self) -> f32 {
        if self.0.next_u64() & 1 == 0 {
            1.0
        } else {
            -1.0
        }
    }

    /// `n` normal values times `scale`.
    pub fn normals(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.normal() * scale).collect()
    }

    /// `n` token ids below `vocab`.
    pub fn tokens(&mut self, n: usize, vocab: usize) -> Vec<u32> {
        (0..n).map(|_| self.below(vocab) as u32).collect()
    }

    /// A buffer of `pad + extent + tail` elements whose `extent` elements from
    /// `pad` on are drawn by `value` and whose padding is conspicuous junk (values
    /// near 100, a quarter of them negative zero), so that a kernel reading or
    /// writing outside its extent shows.
    pub fn placed(&mut self, pad: usize, extent: usize, tail: usize, mut value: impl FnMut(&mut Rng) -> f32) -> Placed {
        let mut values = Vec::with_capacity(pad + extent + tail);
        for i in 0..pad + extent + tail {
            let v = if i >= pad && i < pad + extent {
                value(self)
            } else if self.chance(0.25) {
                // Negative zero is the only value that adding +0.0 changes: a kernel
                // that accumulates a padding lane's zero past its extent (a write
                // another task may race with) shows only here.
                -0.0
            } else {
                100.0 + 10.0 * self.normal()
            };
            values.push(v);
        }
        Placed { values, offset: pad }
    }
}

/// Values for a buffer with the data at `offset`.
#[derive(Clone, Debug)]
pub struct Placed {
    /// The whole buffer, padding included.
    pub values: Vec<f32>,
    /// Where the data starts.
    pub offset: usize,
}

impl Placed {
    /// The data part, `extent` elements from the offset.
    pub fn data(&self, extent: usize) -> &[f32] {
        &self.values[self.offset..self.offset + extent]
    }

    /// The data part, mutable.
    pub fn data_mut(&mut self, extent: usize) -> &mut [f32] {
        &mut self.values[self.offset..self.offset + extent]
    }
}

/// How large generated activations are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Magnitude {
    /// About 1.
    Unit,
    /// About 1e-4 (epsilons matter).
    Tiny,
    /// About 1e3.
    Large,
}

impl Magnitude {
    /// The scale of the values.
    pub fn factor(self) -> f32 {
        match self {
            Magnitude::Unit => 1.0,
            Magnitude::Tiny => 1e-4,
            Magnitude::Large => 1e3,
        }
    }
}

/// Any magnitude, mostly unit.
pub fn magnitude() -> impl Strategy<Value = Magnitude> {
    prop_oneof![4 => Just(Magnitude::Unit), 1 => Just(Magnitude::Tiny), 1 => Just(Magnitude::Large)]
}

/// Padding before or after a buffer's data.
pub fn pad() -> impl Strategy<Value = usize> {
    prop_oneof![2 => Just(0usize), 1 => 1usize..=3]
}

/// A seed for the values.
pub fn seed() -> impl Strategy<Value = u64> {
    any::<u64>()
}

/// A head width: small, odd, and not a multiple of 4, 8 or 16 as often as not.
pub fn head_dim() -> impl Strategy<Value = usize> {
    prop_oneof![3 => 1usize..=9, 1 => Just(16usize), 1 => Just(17usize)]
}
