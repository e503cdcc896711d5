//! Row-wise kernels: RMS norm, per-head l2 normalisation, adding state ids.

use crate::simd::{Simd, WithSimd};
use crate::vector::{add_assign, scale, scale_mul, sqrt, sum_squares};
use crate::weights::{for_each_run, WSlice};
use brt_core::primitives::{L2_EPSILON, RMS_EPSILON};

/// `out = x / sqrt(mean(x^2) + eps) * scale`, row by row (SPEC 1).
pub(crate) struct RmsNorm<'a> {
    pub x: &'a [f32],
    pub scale: WSlice<'a>,
    pub out: &'a mut [f32],
    pub dim: usize,
}

impl WithSimd for RmsNorm<'_> {
    type Output = ();
    #[inline(always)]
    fn with<S: Simd>(self) {
        let dim = self.dim;
        for (x, y) in self.x.chunks_exact(dim).zip(self.out.chunks_exact_mut(dim)) {
            let mean_square = sum_squares::<S>(x) / dim as f32;
            let inv = 1.0 / sqrt::<S>(mean_square + RMS_EPSILON);
            for_each_run(self.scale, |start, w| {
                scale_mul::<S>(&x[start..], inv, w, &mut y[start..]);
            });
        }
    }
}

/// `x /= sqrt(sum(x^2) + eps)` per head (SPEC 1).
pub(crate) struct L2Normalize<'a> {
    pub x: &'a mut [f32],
    pub head_dim: usize,
}

impl WithSimd for L2Normalize<'_> {
    type Output = ();
    #[inline(always)]
    fn with<S: Simd>(self) {
        for head in self.x.chunks_exact_mut(self.head_dim) {
            let inv = 1.0 / sqrt::<S>(sum_squares::<S>(head) + L2_EPSILON);
            scale::<S>(head, inv);
        }
    }
}

/// Adds row `p` of `table` to every batch row of position `p`.
pub(crate) struct AddPositions<'a> {
    pub x: &'a mut [f32],
    pub table: WSlice<'a>,
    pub batch: usize,
    pub dim: usize,
}

impl WithSimd for AddPositions<'_> {
    type Output = ();
    #[inline(always)]
    fn with<S: Simd>(self) {
        let (batch, dim) = (self.batch, self.dim);
        for (p, rows) in self.x.chunks_exact_mut(batch * dim).enumerate() {
            let Ok(t) = self.table.range("position table", p * dim, dim) else { return };
            for row in rows.chunks_exact_mut(dim) {
                for_each_run(t, |start, w| add_assign::<S>(&mut row[start..], w));
            }
        }
    }
}
