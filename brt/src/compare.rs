//! Element-by-element comparison of two runs of numbers (logits, gradients) in
//! which a NaN is a difference, never a pass.
//!
//! Why by hand: `f32::max` returns its other argument when one is NaN, so the
//! usual `worst = worst.max((a - b).abs())` silently drops a NaN, and NaN logits
//! then pass any bound. [`largest_difference`] keeps it.
//!
//! Two runs that agree but for a NaN do not pass:
//!
//! ```
//! use brt::compare::largest_difference;
//!
//! let reference = [0.25, -1.0, 3.5];
//! assert!(largest_difference(&reference, &[0.25, -1.0, 3.5 + 1e-6]).within(1e-5));
//! assert!(!largest_difference(&reference, &[0.25, f32::NAN, 3.5]).within(1e-5));
//! ```

/// The largest difference between two runs and where it is.
///
/// The largest difference of two runs, and where it is:
///
/// ```
/// use brt::compare::{largest_difference, Difference};
///
/// let d = largest_difference(&[1.0, -2.0, 3.0], &[1.5, -2.0, 2.0]);
/// assert_eq!(d, Difference { value: 1.0, index: 2 });
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Difference {
    /// `|a_i - b_i|`, the largest: NaN when a NaN is on either side, infinity
    /// when exactly one side is infinite (or the runs' lengths differ).
    pub value: f32,
    /// Index of that element (the first NaN; the shorter length when the
    /// lengths differ).
    pub index: usize,
}

impl Difference {
    /// No difference.
    ///
    /// The start of a worst-of-several: any difference is at least as bad:
    ///
    /// ```
    /// use brt::compare::Difference;
    ///
    /// let d = Difference { value: 0.5, index: 3 };
    /// assert_eq!(Difference::NONE.worse(d), d);
    /// assert!(Difference::NONE.within(0.0));
    /// ```
    pub const NONE: Difference = Difference { value: 0.0, index: 0 };

    /// Whether the largest difference is at most `bound` (never with a NaN).
    ///
    /// The bound is inclusive; a NaN is within no bound, not even infinity:
    ///
    /// ```
    /// use brt::compare::largest_difference;
    ///
    /// let d = largest_difference(&[1.0, 2.0], &[1.0, 2.5]);
    /// assert!(d.within(0.5) && !d.within(0.49));
    /// assert!(!largest_difference(&[f32::NAN], &[f32::NAN]).within(f32::INFINITY));
    /// ```
    pub fn within(&self, bound: f32) -> bool {
        self.value <= bound
    }

    /// The larger of two differences, a NaN winning (for the worst over several
    /// comparisons; the index is the winner's own).
    ///
    /// A NaN stays the worst whatever comes after it:
    ///
    /// ```
    /// use brt::compare::{largest_difference, Difference};
    ///
    /// let nan = largest_difference(&[f32::NAN], &[0.0]);
    /// let big = Difference { value: 5.0, index: 0 };
    /// assert!(Difference::NONE.worse(nan).worse(big).value.is_nan());
    /// assert_eq!(Difference { value: 1.0, index: 4 }.worse(big), big);
    /// ```
    pub fn worse(self, other: Difference) -> Difference {
        if self.value.is_nan() || other.value <= self.value {
            self
        } else {
            other
        }
    }
}

/// The largest `|a_i - b_i|` over the two runs, NaN as soon as either holds a
/// NaN (equal infinities differ by 0).
///
/// A NaN on either side is found even after a larger difference; equal
/// infinities do not differ; runs of different lengths differ infinitely:
///
/// ```
/// use brt::compare::{largest_difference, Difference};
///
/// let d = largest_difference(&[0.0, 0.0], &[9.0, f32::NAN]);
/// assert!(d.value.is_nan() && d.index == 1);
/// assert_eq!(largest_difference(&[f32::INFINITY], &[f32::INFINITY]).value, 0.0);
/// assert_eq!(largest_difference(&[1.0, 2.0], &[1.0]), Difference { value: f32::INFINITY, index: 1 });
/// ```
pub fn largest_difference(a: &[f32], b: &[f32]) -> Difference {
    if a.len() != b.len() {
        return Difference { value: f32::INFINITY, index: a.len().min(b.len()) };
    }
    let mut worst = Difference { value: 0.0, index: 0 };
    for (index, (&x, &y)) in a.iter().zip(b).enumerate() {
        let value = if x == y { 0.0 } else { (x - y).abs() };
        if value.is_nan() {
            return Difference { value, index };
        }
        if value > worst.value {
            worst = Difference { value, index };
        }
    }
    worst
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nan_on_either_side_fails_every_bound() {
        for (a, b) in [([1.0, f32::NAN, 2.0], [1.0, 5.0, 2.0]), ([1.0, 5.0, 2.0], [1.0, f32::NAN, 2.0])] {
            let d = largest_difference(&a, &b);
            assert!(d.value.is_nan());
            assert_eq!(d.index, 1);
            assert!(!d.within(f32::INFINITY));
        }
        // A NaN after a larger difference still wins: it is not folded away.
        let d = largest_difference(&[0.0, 0.0], &[9.0, f32::NAN]);
        assert!(d.value.is_nan() && d.index == 1);
        // Both NaN at the same place is no agreement either.
        assert!(!largest_difference(&[f32::NAN], &[f32::NAN]).within(1.0));
        // The worst of several keeps a NaN whatever comes after it.
        let nan = largest_difference(&[f32::NAN], &[0.0]);
        let big = Difference { value: 5.0, index: 0 };
        assert!(Difference::NONE.worse(nan).worse(big).value.is_nan());
        assert!(big.worse(nan).value.is_nan());
        assert_eq!(Difference::NONE.worse(big), big);
    }

    #[test]
    fn differences_are_the_largest_absolute_one() {
        let d = largest_difference(&[1.0, -2.0, 3.0], &[1.5, -2.0, 2.0]);
        assert_eq!(d, Difference { value: 1.0, index: 2 });
        assert!(d.within(1.0) && !d.within(0.99));
        assert_eq!(largest_difference(&[f32::INFINITY], &[f32::INFINITY]).value, 0.0);
        assert_eq!(largest_difference(&[f32::INFINITY], &[1.0]).value, f32::INFINITY);
        assert_eq!(largest_difference(&[1.0, 2.0], &[1.0]), Difference { value: f32::INFINITY, index: 1 });
        assert_eq!(largest_difference(&[], &[]).value, 0.0);
    }
}
