//! The forward kernels of the reference backend.

use super::{at, dot, view, view_mut, weights, Params, RefWeights, Reference};
use crate::desc::{
    Activation, Attention, Embed, Heads, LinearAttention, Mask, Matmul, Positions, Rows, Strided, WeightOrder,
};
use crate::encoding::{quantize_activations, Q8_0_BLOCK};
use crate::error::CoreError;
use crate::kernels::{check_extent, KResult, Kernels, View, ViewMut, WeightView};
use crate::memory::{HostMemory, Real};
use crate::params::T5_BUCKETS;
use crate::primitives::{t5_bucket, L2_EPSILON, RMS_EPSILON, SAFE_SOFTMAX_FLOOR};

/// Output columns accumulated at once by the reference attention.
pub(crate) const COLUMNS: usize = 16;

pub(crate) fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + libm::exp(-x))
}

pub(crate) fn elu_plus_one(x: f64) -> f64 {
    if x > 0.0 {
        x + 1.0
    } else {
        libm::exp(x)
    }
}

pub(crate) fn activate(x: f64, activation: Activation) -> f64 {
    match activation {
        Activation::Identity => x,
        Activation::Relu => x.max(0.0),
        Activation::Tanh => libm::tanh(x),
    }
}

/// The learned scale of head `h`, as `abs(a)` when asked.
pub(crate) fn head_scale<R: Real>(scale: Params<'_, R>, h: usize, abs: bool) -> f64 {
    let a = scale.at(h);
    if abs {
        a.abs()
    } else {
        a
    }
}

/// `1 / sqrt(mean(x^2) + eps)` of a row (SPEC 1).
pub(crate) fn rms_inverse<R: Real>(row: &[R]) -> f64 {
    1.0 / libm::sqrt(dot(row, row) / row.len() as f64 + RMS_EPSILON as f64)
}

/// `sqrt(sum(x^2) + eps)` of a head (SPEC 1).
pub(crate) fn l2_norm<R: Real>(head: &[R]) -> f64 {
    libm::sqrt(dot(head, head) + L2_EPSILON as f64)
}

/// Row offset of `(position p, batch row b, head h)` in a sequence buffer.
#[inline]
pub(crate) fn seq_at(p: usize, b: usize, h: usize, batch: usize, width: usize, dh: usize) -> usize {
    (p * batch + b) * width + h * dh
}

/// The attention logit of query `i` and key `j`: `a * (q.k + bias)` (SPEC 1, 2).
#[allow(clippy::too_many_arguments)]
pub(crate) fn logit<R: Real>(
    desc: &Attention,
    q: &[R],
    k: &[R],
    bias: Option<Params<'_, R>>,
    a: f64,
    i: usize,
    j: usize,
    b: usize,
    h: usize,
) -> f64 {
    let (batch, dh, width) = (desc.batch(), desc.head_dim(), desc.width());
    let qh = &q[seq_at(i, b, h, batch, width, dh)..][..dh];
    let kh = &k[seq_at(j, b, h, batch, width, dh)..][..dh];
    let mut content = dot(qh, kh);
    if let (Some(table), Mask::Window { offset, .. }) = (bias, desc.mask()) {
        content += table.at(h * T5_BUCKETS + t5_bucket(i + offset - j));
    }
    a * content
}

/// The softmax maximum (with the safe-softmax floor) and denominator of query `i`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn softmax_stats<R: Real>(
    desc: &Attention,
    q: &[R],
    k: &[R],
    bias: Option<Params<'_, R>>,
    a: f64,
    i: usize,
    b: usize,
    h: usize,
) -> (f64, f64) {
    let keys = desc.visible_keys(i);
    let max = keys.clone().map(|j| logit(desc, q, k, bias, a, i, j, b, h)).fold(SAFE_SOFTMAX_FLOOR as f64, f64::max);
    let sum: f64 = keys.map(|j| libm::exp(logit(desc, q, k, bias, a, i, j, b, h) - max)).sum();
    (max, sum + libm::exp(SAFE_SOFTMAX_FLOOR as f64 - max))
}

/// Checks the shared inputs of an attention call and returns them as slices.
#[allow(clippy::type_complexity)]
pub(crate) fn attention_inputs<
    'a,
    B: core::ops::Deref<Target = [R]>,
    Bytes: core::ops::Deref<Target = [u8]>,
    R: Real,
>(
    q: View<'a, B>,
    k: View<'a, B>,
    v: View<'a, B>,
    scale: WeightView<'a, RefWeights<B, Bytes>>,
    bias: Option<WeightView<'a, RefWeights<B, Bytes>>>,
    desc: &Attention,
) -> Result<(&'a [R], &'a [R], &'a [R], Params<'a, R>, Option<Params<'a, R>>), CoreError> {
    let q = view("attention queries", q, desc.query_len())?;
    let k = view("attention keys", k, desc.key_len())?;
    let v = view("attention values", v, desc.key_len())?;
    let scale = weights("attention scale", scale, desc.heads())?;
    let bias = match bias {
        Some(b) => Some(weights("position bias table", b, desc.heads() * T5_BUCKETS)?),
        None => None,
    };
    if bias.is_some() && desc.mask() == Mask::None {
        return Err(CoreError::InvalidShape { what: "a position bias needs a window mask" });
    }
    Ok((q, k, v, scale, bias))
}

impl<M: HostMemory, R: Real> Kernels for Reference<M, R> {
    fn embed(
        &mut self,
        tokens: &M::U32,
        token_offset: usize,
        table: WeightView<'_, RefWeights<R::Buffer<M>, M::Bytes>>,
        out: ViewMut<'_, R::Buffer<M>>,
        desc: Embed,
    ) -> KResult<Self> {
        let (n, dim) = (desc.count(), desc.dim());
        check_extent("embed tokens", token_offset, n, tokens.len())?;
        let table = weights("embedding table", table, desc.vocab() * dim)?;
        let out = view_mut("embed output", out, n * dim)?;
        for (i, row) in out.chunks_exact_mut(dim).enumerate() {
            let id = tokens[token_offset + i];
            if id as usize >= desc.vocab() {
                return Err(CoreError::TokenOutOfRange { index: i, id, vocab: desc.vocab() });
            }
            for (c, o) in row.iter_mut().enumerate() {
                *o = table.get(id as usize * dim + c);
            }
        }
        Ok(())
    }

    fn rms_norm(
        &mut self,
        x: View<'_, R::Buffer<M>>,
        scale: WeightView<'_, RefWeights<R::Buffer<M>, M::Bytes>>,
        out: ViewMut<'_, R::Buffer<M>>,
        desc: Rows,
    ) -> KResult<Self> {
        let dim = desc.dim();
        let x = view("rms_norm input", x, desc.len())?;
        let scale = weights("rms_norm scale", scale, dim)?;
        let out = view_mut("rms_norm output", out, desc.len())?;
        for (xr, yr) in x.chunks_exact(dim).zip(out.chunks_exact_mut(dim)) {
            let inv = rms_inverse(xr);
            for (c, y) in yr.iter_mut().enumerate() {
                *y = R::from_f64(at(xr, c) * inv * scale.at(c));
            }
        }
        Ok(())
    }

    fn add_positions(
        &mut self,
        x: ViewMut<'_, R::Buffer<M>>,
        table: WeightView<'_, RefWeights<R::Buffer<M>, M::Bytes>>,
        desc: Positions,
    ) -> KResult<Self> {
        let dim = desc.dim();
        let table = weights("position table", table, desc.positions() * dim)?;
        let x = view_mut("add_positions input", x, desc.len())?;
        for (r, row) in x.chunks_exact_mut(dim).enumerate() {
            let position = r / desc.batch();
            for (c, v) in row.iter_mut().enumerate() {
                *v = R::from_f64(v.to_f64() + table.at(position * dim + c));
            }
        }
        Ok(())
    }

    fn l2_normalize(&mut self, x: ViewMut<'_, R::Buffer<M>>, desc: Heads) -> KResult<Self> {
        let x = view_mut("l2_normalize input", x, desc.len())?;
        for head in x.chunks_exact_mut(desc.head_dim()) {
            let inv = 1.0 / l2_norm(head);
            for v in head {
                *v = R::from_f64(v.to_f64() * inv);
            }
        }
        Ok(())
    }

    fn matmul(
        &mut self,
        x: View<'_, R::Buffer<M>>,
        w: WeightView<'_, RefWeights<R::Buffer<M>, M::Bytes>>,
        out: ViewMut<'_, R::Buffer<M>>,
        desc: Matmul,
    ) -> KResult<Self> {
        let (m, k, n) = (desc.m(), desc.k(), desc.n());
        let x = view("matmul input", x, m * k)?;
        let w = weights("matmul weight", w, k * n)?;
        let out = view_mut("matmul output", out, m * n)?;
        let mut quantized = [0f64; Q8_0_BLOCK];
        let mut q = [0i8; Q8_0_BLOCK];
        for (xr, yr) in x.chunks_exact(k).zip(out.chunks_exact_mut(n)) {
            // With Q8_0 weights the input is quantized in blocks along k first
            // (the product's arithmetic, `quantize_activations`): each value
            // becomes d * q, exactly, in f64. Each block is quantized again for
            // every output: the oracle holds no buffer as long as a row.
            let mut input = |i: usize, quantized: &mut [f64; Q8_0_BLOCK]| -> f64 {
                if !w.is_q8_0() {
                    return at(xr, i);
                }
                if i % Q8_0_BLOCK == 0 {
                    let block: [f32; Q8_0_BLOCK] =
                        core::array::from_fn(|t| xr.get(i + t).map_or(0.0, |v| v.to_f64() as f32));
                    let len = Q8_0_BLOCK.min(k - i);
                    let d = quantize_activations(&block[..len], &mut q[..len]);
                    for (v, &q) in quantized.iter_mut().zip(&q[..len]) {
                        *v = d as f64 * q as f64;
                    }
                }
                quantized[i % Q8_0_BLOCK]
            };
            for (j, y) in yr.iter_mut().enumerate() {
                let sum: f64 = match desc.order() {
                    WeightOrder::InOut => (0..k).map(|i| input(i, &mut quantized) * w.at(i * n + j)).sum(),
                    WeightOrder::OutIn => (0..k).map(|i| input(i, &mut quantized) * w.at(j * k + i)).sum(),
                };
                let base = if desc.accumulates() { y.to_f64() } else { 0.0 };
                *y = R::from_f64(activate(base + desc.alpha_value() as f64 * sum, desc.activation_kind()));
            }
        }
        Ok(())
    }

    fn attention(
        &mut self,
        q: View<'_, R::Buffer<M>>,
        k: View<'_, R::Buffer<M>>,
        v: View<'_, R::Buffer<M>>,
        scale: WeightView<'_, RefWeights<R::Buffer<M>, M::Bytes>>,
        bias: Option<WeightView<'_, RefWeights<R::Buffer<M>, M::Bytes>>>,
        out: ViewMut<'_, R::Buffer<M>>,
        desc: Attention,
    ) -> KResult<Self> {
        let (q, k, v, scale, bias) = attention_inputs(q, k, v, scale, bias, &desc)?;
        let out = view_mut("attention output", out, desc.query_len())?;
        let (batch, heads, dh, width) = (desc.batch(), desc.heads(), desc.head_dim(), desc.width());
        for i in 0..desc.queries() {
            for b in 0..batch {
                for h in 0..heads {
                    let a = head_scale(scale, h, desc.abs_scale());
                    let (max, denominator) = softmax_stats(&desc, q, k, bias, a, i, b, h);
                    let oh = &mut out[seq_at(i, b, h, batch, width, dh)..][..dh];
                    // Weighted values summed in f64, a few columns at a time so that
                    // the accumulator lives on the stack.
                    for first in (0..dh).step_by(COLUMNS) {
                        let cols = COLUMNS.min(dh - first);
                        let mut acc = [0f64; COLUMNS];
                        for j in desc.visible_keys(i) {
                            let p = libm::exp(logit(&desc, q, k, bias, a, i, j, b, h) - max) / denominator;
                            let vh = &v[seq_at(j, b, h, batch, width, dh) + first..][..cols];
                            for (acc, &x) in acc.iter_mut().zip(vh) {
                                *acc += p * x.to_f64();
                            }
                        }
                        for (o, acc) in oh[first..first + cols].iter_mut().zip(acc) {
                            *o = R::from_f64(acc);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn linear_attention(
        &mut self,
        q: View<'_, R::Buffer<M>>,
        k: View<'_, R::Buffer<M>>,
        v: View<'_, R::Buffer<M>>,
        scale: WeightView<'_, RefWeights<R::Buffer<M>, M::Bytes>>,
        state: ViewMut<'_, R::Buffer<M>>,
        out: ViewMut<'_, R::Buffer<M>>,
        desc: LinearAttention,
    ) -> KResult<Self> {
        let (batch, heads, dh) = (desc.batch(), desc.heads(), desc.head_dim());
        let width = heads * dh;
        let q = view("linear attention queries", q, desc.token_len())?;
        let k = view("linear attention keys", k, desc.token_len())?;
        let v = view("linear attention values", v, desc.token_len())?;
        let scale = weights("linear attention scale", scale, heads)?;
        let state = view_mut("linear attention state", state, desc.state_len())?;
        let out = view_mut("linear attention output", out, desc.token_len())?;
        // The token-by-token recurrent form: update the sums with token t, then read.
        for t in 0..desc.tokens() {
            for b in 0..batch {
                let row_state = &mut state[b * desc.state_per_row()..][..desc.state_per_row()];
                let (kv, z) = row_state.split_at_mut(heads * dh * dh);
                for h in 0..heads {
                    let base = seq_at(t, b, h, batch, width, dh);
                    let a = head_scale(scale, h, desc.abs_scale());
                    let kvh = &mut kv[h * dh * dh..][..dh * dh];
                    let zh = &mut z[h * dh..][..dh];
                    for r in 0..dh {
                        let phi_k = elu_plus_one(at(k, base + r));
                        zh[r] = R::from_f64(zh[r].to_f64() + phi_k);
                        for c in 0..dh {
                            kvh[r * dh + c] = R::from_f64(kvh[r * dh + c].to_f64() + phi_k * at(v, base + c));
                        }
                    }
                    let phi_q = |r: usize| elu_plus_one(a * at(q, base + r));
                    let normaliser: f64 = (0..dh).map(|r| phi_q(r) * zh[r].to_f64()).sum();
                    for c in 0..dh {
                        let numerator: f64 = (0..dh).map(|r| phi_q(r) * kvh[r * dh + c].to_f64()).sum();
                        out[base + c] = R::from_f64(numerator / normaliser);
                    }
                }
            }
        }
        Ok(())
    }

    fn gate_fixed(
        &mut self,
        state: ViewMut<'_, R::Buffer<M>>,
        z: View<'_, R::Buffer<M>>,
        bias: WeightView<'_, RefWeights<R::Buffer<M>, M::Bytes>>,
        desc: Rows,
    ) -> KResult<Self> {
        let dim = desc.dim();
        let z = view("gate update", z, desc.len())?;
        let bias = weights("gate bias", bias, dim)?;
        let state = view_mut("gated state", state, desc.len())?;
        for (i, s) in state.iter_mut().enumerate() {
            let g = sigmoid(bias.at(i % dim));
            *s = R::from_f64(s.to_f64() * g + at(z, i) * (1.0 - g));
        }
        Ok(())
    }

    fn gate_lstm(
        &mut self,
        state: ViewMut<'_, R::Buffer<M>>,
        z: View<'_, R::Buffer<M>>,
        forget: View<'_, R::Buffer<M>>,
        input: View<'_, R::Buffer<M>>,
        forget_bias: WeightView<'_, RefWeights<R::Buffer<M>, M::Bytes>>,
        input_bias: WeightView<'_, RefWeights<R::Buffer<M>, M::Bytes>>,
        desc: Rows,
    ) -> KResult<Self> {
        let dim = desc.dim();
        let z = view("gate update", z, desc.len())?;
        let forget = view("forget gate input", forget, desc.len())?;
        let input = view("input gate input", input, desc.len())?;
        let bf = weights("forget gate bias", forget_bias, dim)?;
        let bi = weights("input gate bias", input_bias, dim)?;
        let state = view_mut("gated state", state, desc.len())?;
        for (i, s) in state.iter_mut().enumerate() {
            let f = sigmoid(at(forget, i) + bf.at(i % dim) + 1.0);
            let g = sigmoid(at(input, i) + bi.at(i % dim) - 1.0);
            *s = R::from_f64(s.to_f64() * f + at(z, i) * g);
        }
        Ok(())
    }

    fn copy(&mut self, src: View<'_, R::Buffer<M>>, dst: ViewMut<'_, R::Buffer<M>>, len: usize) -> KResult<Self> {
        let src = view("copy source", src, len)?;
        view_mut("copy destination", dst, len)?.copy_from_slice(src);
        Ok(())
    }

    fn fill(&mut self, dst: ViewMut<'_, R::Buffer<M>>, runs: Strided, value: f32) -> KResult<Self> {
        let dst = view_mut("fill destination", dst, runs.extent())?;
        for r in 0..runs.count() {
            dst[r * runs.stride()..][..runs.len()].fill(R::from_f64(value as f64));
        }
        Ok(())
    }

    fn copy_weights(
        &mut self,
        src: WeightView<'_, RefWeights<R::Buffer<M>, M::Bytes>>,
        dst: ViewMut<'_, R::Buffer<M>>,
        runs: Strided,
    ) -> KResult<Self> {
        let src = weights("copy_weights source", src, runs.total())?;
        let dst = view_mut("copy_weights destination", dst, runs.extent())?;
        for r in 0..runs.count() {
            for (c, o) in dst[r * runs.stride()..][..runs.len()].iter_mut().enumerate() {
                *o = src.get(r * runs.len() + c);
            }
        }
        Ok(())
    }
}
