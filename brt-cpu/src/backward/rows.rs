//! Row-wise and element-wise backward kernels: RMS norm, per-head l2
//! normalisation, the two gates, the activation derivative of a product, and the
//! scatter/gather adds (embedding, positions, runs).
//!
//! Each body handles a contiguous range of rows so that the backend can split a
//! call over threads; parameter gradients that every row contributes to are summed
//! into the task's `partial` (see `Cpu::parallel_reduce`).

use crate::simd::{Simd, WithSimd};
use crate::vector::{add_assign, copy_streaming, dot, sqrt, sum_squares};
use crate::weights::WSlice;
use brt_core::desc::Activation;
use brt_core::primitives::{sigmoid, L2_EPSILON, RMS_EPSILON};

/// Column runs of this many values share a stack buffer of per-column values
/// (gate factors, widened scales).
const RUN: usize = 256;

/// `y = x r s` with `r = (mean(x^2) + eps)^(-1/2)`: `d_x += r dy s - x r^3 (dy.s.x) / d`,
/// `d_scale += dy x r` (into `partial`).
pub(crate) struct RmsNormGrad<'a> {
    pub x: &'a [f32],
    pub scale: WSlice<'a>,
    pub d_out: &'a [f32],
    pub d_x: &'a mut [f32],
    pub partial: &'a mut [f32],
    pub dim: usize,
}

impl WithSimd for RmsNormGrad<'_> {
    type Output = ();
    #[inline(always)]
    fn with<S: Simd>(self) {
        let dim = self.dim;
        let (mut s, mut dy_s) = ([0f32; RUN], [0f32; RUN]);
        let rows = self.x.chunks_exact(dim).zip(self.d_out.chunks_exact(dim)).zip(self.d_x.chunks_exact_mut(dim));
        for ((x, dy), dx) in rows {
            let r = 1.0 / sqrt::<S>(sum_squares::<S>(x) / dim as f32 + RMS_EPSILON);
            // t = sum dy s x, run by run of widened scales, as vector dot products
            // (one scalar sum was a chain of dependent additions, a quarter of
            // this kernel's time).
            let mut t = 0f32;
            for c0 in (0..dim).step_by(RUN) {
                let len = RUN.min(dim - c0);
                self.scale.widen(c0, &mut s[..len]);
                for ((p, &g), &sc) in dy_s.iter_mut().zip(&dy[c0..][..len]).zip(&s[..len]) {
                    *p = g * sc;
                }
                t += dot::<S>(&dy_s[..len], &x[c0..][..len]);
            }
            let k = r * r * r * t / dim as f32;
            for c0 in (0..dim).step_by(RUN) {
                let len = RUN.min(dim - c0);
                self.scale.widen(c0, &mut s[..len]);
                let (x, dy, dx, ds) =
                    (&x[c0..][..len], &dy[c0..][..len], &mut dx[c0..][..len], &mut self.partial[c0..][..len]);
                for c in 0..len {
                    dx[c] += r * dy[c] * s[c] - x[c] * k;
                    ds[c] += dy[c] * x[c] * r;
                }
            }
        }
    }
}

/// In place, per head of `x` (the value before `x / sqrt(sum x^2 + eps)`):
/// `d <- d / n - x (x.d) / n^3`.
pub(crate) struct L2NormalizeGrad<'a> {
    pub x: &'a [f32],
    pub d: &'a mut [f32],
    pub head_dim: usize,
}

impl WithSimd for L2NormalizeGrad<'_> {
    type Output = ();
    #[inline(always)]
    fn with<S: Simd>(self) {
        let dh = self.head_dim;
        for (x, d) in self.x.chunks_exact(dh).zip(self.d.chunks_exact_mut(dh)) {
            let n = sqrt::<S>(sum_squares::<S>(x) + L2_EPSILON);
            let inv = 1.0 / n;
            let k = dot::<S>(x, d) * inv * inv * inv;
            for (g, &xv) in d.iter_mut().zip(x) {
                *g = *g * inv - xv * k;
            }
        }
    }
}

/// The fixed gate `s' = s g + z (1 - g)`, `g = sigmoid(b)`: `d_z += ds (1 - g)`,
/// `d_b += ds (s - z) g (1 - g)` (into `partial`), `ds <- ds g`.
pub(crate) struct GateFixedGrad<'a> {
    pub state: &'a [f32],
    pub z: &'a [f32],
    pub bias: WSlice<'a>,
    pub d_state: &'a mut [f32],
    pub d_z: &'a mut [f32],
    pub partial: &'a mut [f32],
    pub dim: usize,
}

impl WithSimd for GateFixedGrad<'_> {
    type Output = ();
    #[inline(always)]
    fn with<S: Simd>(self) {
        let dim = self.dim;
        let mut g = [0f32; RUN];
        for c0 in (0..dim).step_by(RUN) {
            let len = RUN.min(dim - c0);
            for (j, slot) in g[..len].iter_mut().enumerate() {
                *slot = sigmoid(self.bias.get(c0 + j));
            }
            let d_b = &mut self.partial[c0..][..len];
            let rows = self
                .state
                .chunks_exact(dim)
                .zip(self.z.chunks_exact(dim))
                .zip(self.d_state.chunks_exact_mut(dim).zip(self.d_z.chunks_exact_mut(dim)));
            for ((s, z), (ds, dz)) in rows {
                let (s, z, ds, dz) = (&s[c0..][..len], &z[c0..][..len], &mut ds[c0..][..len], &mut dz[c0..][..len]);
                for c in 0..len {
                    let (gv, d) = (g[c], ds[c]);
                    dz[c] += d * (1.0 - gv);
                    d_b[c] += d * (s[c] - z[c]) * gv * (1.0 - gv);
                    ds[c] = d * gv;
                }
            }
        }
    }
}

/// The LSTM gate `s' = s f + z g`, `f = sigmoid(F + bf + 1)`, `g = sigmoid(I + bi - 1)`:
/// `d_z += ds g`, `d_F += ds s f (1 - f)`, `d_I += ds z g (1 - g)`, the biases take
/// the same sums (into `partial`: `dim` forget then `dim` input), `ds <- ds f`.
pub(crate) struct GateLstmGrad<'a> {
    pub state: &'a [f32],
    pub z: &'a [f32],
    pub forget: &'a [f32],
    pub input: &'a [f32],
    pub forget_bias: WSlice<'a>,
    pub input_bias: WSlice<'a>,
    pub d_state: &'a mut [f32],
    pub d_z: &'a mut [f32],
    pub d_forget: &'a mut [f32],
    pub d_input: &'a mut [f32],
    pub partial: &'a mut [f32],
    pub dim: usize,
}

impl WithSimd for GateLstmGrad<'_> {
    type Output = ();
    #[inline(always)]
    fn with<S: Simd>(self) {
        let dim = self.dim;
        let (mut bf, mut bi) = ([0f32; RUN], [0f32; RUN]);
        let (d_bf, d_bi) = self.partial.split_at_mut(dim);
        for c0 in (0..dim).step_by(RUN) {
            let len = RUN.min(dim - c0);
            self.forget_bias.widen(c0, &mut bf[..len]);
            self.input_bias.widen(c0, &mut bi[..len]);
            let (d_bf, d_bi) = (&mut d_bf[c0..][..len], &mut d_bi[c0..][..len]);
            for row in 0..self.state.len() / dim {
                let at = row * dim + c0;
                let (s, z) = (&self.state[at..][..len], &self.z[at..][..len]);
                let (f_in, i_in) = (&self.forget[at..][..len], &self.input[at..][..len]);
                let (ds, dz) = (&mut self.d_state[at..][..len], &mut self.d_z[at..][..len]);
                let (df, di) = (&mut self.d_forget[at..][..len], &mut self.d_input[at..][..len]);
                for c in 0..len {
                    let f = sigmoid(f_in[c] + bf[c] + 1.0);
                    let g = sigmoid(i_in[c] + bi[c] - 1.0);
                    let d = ds[c];
                    let d_f_pre = d * s[c] * f * (1.0 - f);
                    let d_g_pre = d * z[c] * g * (1.0 - g);
                    dz[c] += d * g;
                    df[c] += d_f_pre;
                    di[c] += d_g_pre;
                    d_bf[c] += d_f_pre;
                    d_bi[c] += d_g_pre;
                    ds[c] = d * f;
                }
            }
        }
    }
}

/// `d <- d * act'(y)` with `y` the activation's output.
pub(crate) struct ActivationGrad<'a> {
    pub y: &'a [f32],
    pub d: &'a mut [f32],
    pub activation: Activation,
}

impl WithSimd for ActivationGrad<'_> {
    type Output = ();
    #[inline(always)]
    fn with<S: Simd>(self) {
        match self.activation {
            Activation::Identity => {}
            Activation::Relu => {
                for (g, &y) in self.d.iter_mut().zip(self.y) {
                    *g = if y > 0.0 { *g } else { 0.0 };
                }
            }
            Activation::Tanh => {
                for (g, &y) in self.d.iter_mut().zip(self.y) {
                    *g *= 1.0 - y * y;
                }
            }
        }
    }
}

/// `dst += src`.
pub(crate) struct AddAssign<'a> {
    pub src: &'a [f32],
    pub dst: &'a mut [f32],
}

impl WithSimd for AddAssign<'_> {
    type Output = ();
    #[inline(always)]
    fn with<S: Simd>(self) {
        add_assign::<S>(self.dst, self.src);
    }
}

/// `dst = src` past the caches ([`copy_streaming`]).
pub(crate) struct CopyStreaming<'a> {
    pub src: &'a [f32],
    pub dst: &'a mut [f32],
}

impl WithSimd for CopyStreaming<'_> {
    type Output = ();
    #[inline(always)]
    fn with<S: Simd>(self) {
        copy_streaming::<S>(self.dst, self.src);
    }
}

/// Columns `cols` of `d_table[ids[i]] += d_out[i]` (every id already checked).
pub(crate) struct EmbedGrad<'a> {
    pub ids: &'a [u32],
    pub d_out: &'a [f32],
    /// The table gradient's columns `cols` of every row are this task's alone.
    pub d_table: crate::parallel::SendPtr,
    pub table_len: usize,
    pub dim: usize,
    pub cols: core::ops::Range<usize>,
}

impl WithSimd for EmbedGrad<'_> {
    type Output = ();
    #[inline(always)]
    fn with<S: Simd>(self) {
        let (dim, cols) = (self.dim, self.cols);
        for (i, &id) in self.ids.iter().enumerate() {
            let at = id as usize * dim + cols.start;
            if at + cols.len() > self.table_len {
                return; // ids were checked against the vocabulary; never reached
            }
            // SAFETY: `at + cols.len() <= table_len` (checked above), and columns
            // `cols` of every table row belong to this task alone.
            let row = unsafe { core::slice::from_raw_parts_mut(self.d_table.get().add(at), cols.len()) };
            add_assign::<S>(row, &self.d_out[i * dim + cols.start..][..cols.len()]);
        }
    }
}

/// `d_table[p] += sum over batch rows of d_x[p, b]` for the positions given.
pub(crate) struct PositionsGrad<'a> {
    pub d_x: &'a [f32],
    pub d_table: &'a mut [f32],
    pub batch: usize,
    pub dim: usize,
}

impl WithSimd for PositionsGrad<'_> {
    type Output = ();
    #[inline(always)]
    fn with<S: Simd>(self) {
        let (batch, dim) = (self.batch, self.dim);
        for (rows, out) in self.d_x.chunks_exact(batch * dim).zip(self.d_table.chunks_exact_mut(dim)) {
            for row in rows.chunks_exact(dim) {
                add_assign::<S>(out, row);
            }
        }
    }
}
