//! Scalar definitions of the primitives of SPEC sections 1, 2 and 7, shared by the
//! reference kernels and available to every backend.

use crate::params::T5_BUCKETS;

/// Epsilon inside the RMS norm's square root (SPEC 1).
///
/// The reference RMS norm of `[3, 4]` (mean square 12.5) divides by
/// `sqrt(12.5 + RMS_EPSILON)`, and a zero row stays zero instead of turning NaN.
///
/// ```
/// use brt_core::primitives::RMS_EPSILON;
/// use brt_core::{desc::Rows, Arena, Kernels, Reference, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
/// # let mut f32s = vec![0f32; 16];
/// let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut []));
/// let (mut x, mut y) = (k.alloc_tensor(4)?, k.alloc_tensor(4)?);
/// k.write_tensor(&mut x, 0, &[3.0, 4.0, 0.0, 0.0])?;
/// let mut scale = k.alloc_weights(2, WeightDtype::F32)?;
/// k.write_weights(&mut scale, 0, WeightData::F32(&[1.0, 1.0]))?;
/// k.rms_norm(View::new(&x, 0), WeightView::new(&scale, 0), ViewMut::new(&mut y, 0), Rows::new(2, 2)?)?;
/// assert!((y[0] - 3.0 / (12.5 + RMS_EPSILON).sqrt()).abs() < 1e-6);
/// assert_eq!(&y[2..], [0.0, 0.0]);
/// # Ok::<(), brt_core::CoreError>(())
/// ```
pub const RMS_EPSILON: f32 = 1e-6;
/// Epsilon inside the key/query normalisation's square root (SPEC 1).
///
/// The reference key/query normalisation divides `[3, 4]` by
/// `sqrt(25 + L2_EPSILON)`, and leaves a zero head zero.
///
/// ```
/// use brt_core::primitives::L2_EPSILON;
/// use brt_core::{desc::Heads, Arena, Kernels, Reference, Storage, ViewMut};
/// # let mut f32s = vec![0f32; 16];
/// let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut []));
/// let mut x = k.alloc_tensor(4)?;
/// k.write_tensor(&mut x, 0, &[3.0, 4.0, 0.0, 0.0])?;
/// k.l2_normalize(ViewMut::new(&mut x, 0), Heads::new(1, 2, 2)?)?;
/// assert!((x[1] - 4.0 / (25.0 + L2_EPSILON).sqrt()).abs() < 1e-7);
/// assert_eq!(&x[2..], [0.0, 0.0]);
/// # Ok::<(), brt_core::CoreError>(())
/// ```
pub const L2_EPSILON: f32 = 1e-6;
/// The official safe softmax's floor: its denominator has an extra
/// `exp(SAFE_SOFTMAX_FLOOR - max)` term, so a row whose logits are all far below it
/// attends to nothing (SPEC 1, "safe" form).
///
/// One query and one key: with a logit of 0 the key gets (almost) all the weight;
/// with a logit of `-10000`, far below the floor, the query attends to nothing and
/// its output is 0.
///
/// ```
/// use brt_core::desc::{Attention, Mask};
/// use brt_core::primitives::SAFE_SOFTMAX_FLOOR;
/// use brt_core::{Arena, Kernels, Reference, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
/// assert_eq!(SAFE_SOFTMAX_FLOOR, -1000.0);
/// # let mut f32s = vec![0f32; 16];
/// let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut []));
/// let (mut q, mut key) = (k.alloc_tensor(1)?, k.alloc_tensor(1)?);
/// let (mut v, mut out) = (k.alloc_tensor(1)?, k.alloc_tensor(1)?);
/// let mut scale = k.alloc_weights(1, WeightDtype::F32)?;
/// k.write_weights(&mut scale, 0, WeightData::F32(&[1.0]))?;
/// k.write_tensor(&mut v, 0, &[5.0])?;
/// let desc = Attention::new(1, 1, 1, 1, 1, Mask::None, false)?;
/// for (qk, expected) in [(0.0, 5.0), (-10_000.0, 0.0)] {
///     k.write_tensor(&mut q, 0, &[qk])?;
///     k.write_tensor(&mut key, 0, &[1.0])?;
///     let (q, key, v) = (View::new(&q, 0), View::new(&key, 0), View::new(&v, 0));
///     k.attention(q, key, v, WeightView::new(&scale, 0), None, ViewMut::new(&mut out, 0), desc)?;
///     assert_eq!(out[0], expected);
/// }
/// # Ok::<(), brt_core::CoreError>(())
/// ```
pub const SAFE_SOFTMAX_FLOOR: f32 = -1000.0;

/// The T5 relative-position bucket of a key `n >= 0` tokens before the query
/// (SPEC 2): `n` below 16, then logarithmic up to 31 at 113 and beyond.
///
/// Computed in f32 exactly as the official numpy code does
/// (`log(n/16 + eps) / log(8) * 16`, truncated).
///
/// Distances below 16 are their own bucket; 16 starts the logarithmic range and
/// everything from 113 on shares the last bucket.
///
/// ```
/// use brt_core::primitives::t5_bucket;
/// assert!((0..16).all(|n| t5_bucket(n) == n));
/// assert_eq!((t5_bucket(16), t5_bucket(20), t5_bucket(112)), (16, 17, 30));
/// assert_eq!((t5_bucket(113), t5_bucket(1_000_000)), (31, 31));
/// ```
pub fn t5_bucket(n: usize) -> usize {
    const EXACT: usize = T5_BUCKETS / 2;
    if n < EXACT {
        return n;
    }
    if n >= 113 {
        return T5_BUCKETS - 1;
    }
    let ln8 = 2.079_441_5_f32; // f32(ln(128 / 16))
    let scaled = libm::logf(n as f32 / EXACT as f32 + f32::EPSILON) / ln8 * EXACT as f32;
    (EXACT + scaled as usize).min(T5_BUCKETS - 1)
}

/// The logistic function.
///
/// It is 1/2 at 0, symmetric (`sigmoid(-x) = 1 - sigmoid(x)`) and saturates
/// without overflow.
///
/// ```
/// use brt_core::primitives::sigmoid;
/// assert_eq!(sigmoid(0.0), 0.5);
/// assert!((sigmoid(-2.0) - (1.0 - sigmoid(2.0))).abs() < 1e-7);
/// assert_eq!((sigmoid(-200.0), sigmoid(200.0)), (0.0, 1.0));
/// ```
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + libm::expf(-x))
}

/// `phi(x) = elu(x) + 1` of linear attention (SPEC 7); always positive.
///
/// `x + 1` above zero, `exp(x)` below: 1 at 0 and positive even far below.
///
/// ```
/// use brt_core::primitives::elu_plus_one;
/// assert_eq!((elu_plus_one(2.0), elu_plus_one(0.0)), (3.0, 1.0));
/// assert!((elu_plus_one(-1.0) - (-1.0f32).exp()).abs() < 1e-7);
/// assert!(elu_plus_one(-50.0) > 0.0);
/// ```
pub fn elu_plus_one(x: f32) -> f32 {
    if x > 0.0 {
        x + 1.0
    } else {
        libm::expf(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t5_buckets_match_the_spec_table() {
        // SPEC.md section 2, written out by hand from the official bucketing.
        let table: [(usize, usize, usize); 17] = [
            (16, 18, 16),
            (19, 20, 17),
            (21, 23, 18),
            (24, 26, 19),
            (27, 30, 20),
            (31, 34, 21),
            (35, 39, 22),
            (40, 45, 23),
            (46, 51, 24),
            (52, 58, 25),
            (59, 66, 26),
            (67, 76, 27),
            (77, 86, 28),
            (87, 98, 29),
            (99, 112, 30),
            (113, 200, 31),
            (100_000, 100_010, 31),
        ];
        for n in 0..16 {
            assert_eq!(t5_bucket(n), n);
        }
        for (lo, hi, bucket) in table {
            for n in lo..=hi {
                assert_eq!(t5_bucket(n), bucket, "distance {n}");
            }
        }
    }

    #[test]
    fn t5_log_formula_agrees_with_the_shortcut_at_the_edge() {
        // The shortcut at 113 must agree with the formula itself.
        let ln8 = 2.079_441_5_f32;
        for n in [112usize, 113, 127, 128, 4096] {
            let scaled = libm::logf(n as f32 / 16.0 + f32::EPSILON) / ln8 * 16.0;
            assert_eq!((16 + scaled as usize).min(31), t5_bucket(n), "distance {n}");
        }
    }

    #[test]
    fn gate_and_feature_maps() {
        assert_eq!(sigmoid(0.0), 0.5);
        assert!(sigmoid(-200.0) >= 0.0 && sigmoid(200.0) == 1.0);
        assert_eq!(elu_plus_one(2.0), 3.0);
        assert!((elu_plus_one(-1.0) - libm::expf(-1.0)).abs() < 1e-7);
        assert!(elu_plus_one(-200.0) >= 0.0);
    }
}
