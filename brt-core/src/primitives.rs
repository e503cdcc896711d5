//! Scalar definitions of the primitives of SPEC sections 1, 2 and 7, shared by the
//! reference kernels and available to every backend.

use crate::params::T5_BUCKETS;

/// Epsilon inside the RMS norm's square root (SPEC 1).
pub const RMS_EPSILON: f32 = 1e-6;
/// Epsilon inside the key/query normalisation's square root (SPEC 1).
pub const L2_EPSILON: f32 = 1e-6;
/// The official safe softmax's floor: its denominator has an extra
/// `exp(SAFE_SOFTMAX_FLOOR - max)` term, so a row whose logits are all far below it
/// attends to nothing (SPEC 1, "safe" form).
pub const SAFE_SOFTMAX_FLOOR: f32 = -1000.0;

/// The T5 relative-position bucket of a key `n >= 0` tokens before the query
/// (SPEC 2): `n` below 16, then logarithmic up to 31 at 113 and beyond.
///
/// Computed in f32 exactly as the official numpy code does
/// (`log(n/16 + eps) / log(8) * 16`, truncated).
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
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + libm::expf(-x))
}

/// `phi(x) = elu(x) + 1` of linear attention (SPEC 7); always positive.
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
