//! The backward kernels of the reference backend (see [`Gradients`]).

use super::forward::{
    attention_inputs, elu_plus_one, head_scale, l2_norm, logit, rms_inverse, seq_at, sigmoid, softmax_stats,
};
use super::{at, dot, view, view_mut, weights, Params, RefWeights, Reference};
use crate::desc::{
    Activation, Attention, Embed, Heads, LinearAttention, Mask, Matmul, Positions, Rows, Strided, WeightOrder,
};
use crate::error::CoreError;
use crate::gradients::Gradients;
use crate::kernels::{check_extent, KResult, View, ViewMut, WeightView};
use crate::memory::{HostMemory, Real};
use crate::params::T5_BUCKETS;
use crate::primitives::t5_bucket;

/// `x += delta`, through f64.
#[inline]
fn add<R: Real>(x: &mut R, delta: f64) {
    *x = R::from_f64(x.to_f64() + delta);
}

/// `d phi(x) / dx` for `phi = elu + 1`.
fn elu_plus_one_derivative(x: f64) -> f64 {
    if x > 0.0 {
        1.0
    } else {
        libm::exp(x)
    }
}

/// `d |a| / d a` (0 at 0), or 1 when the scale is used as it is.
fn scale_derivative<R: Real>(scale: Params<'_, R>, h: usize, abs: bool) -> f64 {
    let a = scale.at(h);
    match (abs, a) {
        (false, _) => 1.0,
        (true, a) if a > 0.0 => 1.0,
        (true, a) if a < 0.0 => -1.0,
        _ => 0.0,
    }
}

impl<M: HostMemory, R: Real> Gradients for Reference<M, R> {
    fn embed_backward(
        &mut self,
        tokens: &M::U32,
        token_offset: usize,
        d_out: View<'_, R::Buffer<M>>,
        d_table: ViewMut<'_, R::Buffer<M>>,
        desc: Embed,
    ) -> KResult<Self> {
        let (n, dim) = (desc.count(), desc.dim());
        check_extent("embed tokens", token_offset, n, tokens.len())?;
        let d_out = view("embed output gradient", d_out, n * dim)?;
        let d_table = view_mut("embedding table gradient", d_table, desc.vocab() * dim)?;
        for i in 0..n {
            let id = tokens[token_offset + i];
            if id as usize >= desc.vocab() {
                return Err(CoreError::TokenOutOfRange { index: i, id, vocab: desc.vocab() });
            }
            for c in 0..dim {
                add(&mut d_table[id as usize * dim + c], at(d_out, i * dim + c));
            }
        }
        Ok(())
    }

    fn rms_norm_backward(
        &mut self,
        x: View<'_, R::Buffer<M>>,
        scale: WeightView<'_, RefWeights<R::Buffer<M>, M::Bytes>>,
        d_out: View<'_, R::Buffer<M>>,
        d_x: ViewMut<'_, R::Buffer<M>>,
        d_scale: ViewMut<'_, R::Buffer<M>>,
        desc: Rows,
    ) -> KResult<Self> {
        let dim = desc.dim();
        let x = view("rms_norm input", x, desc.len())?;
        let scale = weights("rms_norm scale", scale, dim)?;
        let d_out = view("rms_norm output gradient", d_out, desc.len())?;
        let d_x = view_mut("rms_norm input gradient", d_x, desc.len())?;
        let d_scale = view_mut("rms_norm scale gradient", d_scale, dim)?;
        for row in 0..desc.rows() {
            let xr = &x[row * dim..][..dim];
            let dy = &d_out[row * dim..][..dim];
            let r = rms_inverse(xr);
            // y_c = x_c r s_c, r = (sum x^2 / d + eps)^(-1/2).
            let t: f64 = (0..dim).map(|c| at(dy, c) * scale.at(c) * at(xr, c)).sum();
            for c in 0..dim {
                let g = r * at(dy, c) * scale.at(c) - at(xr, c) * r * r * r * t / dim as f64;
                add(&mut d_x[row * dim + c], g);
                add(&mut d_scale[c], at(dy, c) * at(xr, c) * r);
            }
        }
        Ok(())
    }

    fn add_positions_backward(
        &mut self,
        d_x: View<'_, R::Buffer<M>>,
        d_table: ViewMut<'_, R::Buffer<M>>,
        desc: Positions,
    ) -> KResult<Self> {
        let dim = desc.dim();
        let d_x = view("add_positions gradient", d_x, desc.len())?;
        let d_table = view_mut("position table gradient", d_table, desc.positions() * dim)?;
        for (r, row) in d_x.chunks_exact(dim).enumerate() {
            let position = r / desc.batch();
            for c in 0..dim {
                add(&mut d_table[position * dim + c], at(row, c));
            }
        }
        Ok(())
    }

    fn l2_normalize_backward(
        &mut self,
        x: View<'_, R::Buffer<M>>,
        d_x: ViewMut<'_, R::Buffer<M>>,
        desc: Heads,
    ) -> KResult<Self> {
        let x = view("l2_normalize input", x, desc.len())?;
        let d_x = view_mut("l2_normalize gradient", d_x, desc.len())?;
        let dh = desc.head_dim();
        for (xh, dh_slice) in x.chunks_exact(dh).zip(d_x.chunks_exact_mut(dh)) {
            // y = x / n, n = sqrt(sum x^2 + eps): dx = dy / n - x (x.dy) / n^3.
            let n = l2_norm(xh);
            let t = dot(xh, dh_slice);
            for (c, g) in dh_slice.iter_mut().enumerate() {
                *g = R::from_f64(g.to_f64() / n - at(xh, c) * t / (n * n * n));
            }
        }
        Ok(())
    }

    fn matmul_backward(
        &mut self,
        x: View<'_, R::Buffer<M>>,
        w: WeightView<'_, RefWeights<R::Buffer<M>, M::Bytes>>,
        out: View<'_, R::Buffer<M>>,
        d_out: ViewMut<'_, R::Buffer<M>>,
        d_x: Option<ViewMut<'_, R::Buffer<M>>>,
        d_w: Option<ViewMut<'_, R::Buffer<M>>>,
        desc: Matmul,
    ) -> KResult<Self> {
        let (m, k, n) = (desc.m(), desc.k(), desc.n());
        let x = view("matmul input", x, m * k)?;
        let w = weights("matmul weight", w, k * n)?;
        let out = view("matmul output", out, m * n)?;
        let d_out = view_mut("matmul output gradient", d_out, m * n)?;
        let mut d_x = match d_x {
            Some(v) => Some(view_mut("matmul input gradient", v, m * k)?),
            None => None,
        };
        let mut d_w = match d_w {
            Some(v) => Some(view_mut("matmul weight gradient", v, k * n)?),
            None => None,
        };
        let alpha = desc.alpha_value() as f64;
        let w_index = |r: usize, j: usize| match desc.order() {
            WeightOrder::InOut => r * n + j,
            WeightOrder::OutIn => j * k + r,
        };
        // d_z = d_out * act'(out), in place.
        for (g, &y) in d_out.iter_mut().zip(out) {
            let y = y.to_f64();
            let derivative = match desc.activation_kind() {
                Activation::Identity => 1.0,
                Activation::Relu => (y > 0.0) as u8 as f64,
                Activation::Tanh => 1.0 - y * y,
            };
            *g = R::from_f64(g.to_f64() * derivative);
        }
        for i in 0..m {
            for r in 0..k {
                if let Some(d_x) = d_x.as_deref_mut() {
                    let s: f64 = (0..n).map(|j| at(d_out, i * n + j) * w.at(w_index(r, j))).sum();
                    add(&mut d_x[i * k + r], alpha * s);
                }
                if let Some(d_w) = d_w.as_deref_mut() {
                    let xr = at(x, i * k + r);
                    for j in 0..n {
                        add(&mut d_w[w_index(r, j)], alpha * xr * at(d_out, i * n + j));
                    }
                }
            }
        }
        // Without accumulation the caller clears d_out; d_z is only the gradient of
        // the previous value of `out` when the forward added to it.
        Ok(())
    }

    fn attention_backward(
        &mut self,
        q: View<'_, R::Buffer<M>>,
        k: View<'_, R::Buffer<M>>,
        v: View<'_, R::Buffer<M>>,
        scale: WeightView<'_, RefWeights<R::Buffer<M>, M::Bytes>>,
        bias: Option<WeightView<'_, RefWeights<R::Buffer<M>, M::Bytes>>>,
        d_out: View<'_, R::Buffer<M>>,
        d_q: ViewMut<'_, R::Buffer<M>>,
        d_k: ViewMut<'_, R::Buffer<M>>,
        d_v: ViewMut<'_, R::Buffer<M>>,
        d_scale: ViewMut<'_, R::Buffer<M>>,
        d_bias: Option<ViewMut<'_, R::Buffer<M>>>,
        desc: Attention,
    ) -> KResult<Self> {
        let (q, k, v, scale, bias) = attention_inputs(q, k, v, scale, bias, &desc)?;
        let d_out = view("attention output gradient", d_out, desc.query_len())?;
        let d_q = view_mut("attention query gradient", d_q, desc.query_len())?;
        let d_k = view_mut("attention key gradient", d_k, desc.key_len())?;
        let d_v = view_mut("attention value gradient", d_v, desc.key_len())?;
        let d_scale = view_mut("attention scale gradient", d_scale, desc.heads())?;
        let mut d_bias = match d_bias {
            Some(b) => Some(view_mut("position bias gradient", b, desc.heads() * T5_BUCKETS)?),
            None => None,
        };
        if d_bias.is_some() != bias.is_some() {
            return Err(CoreError::InvalidShape { what: "a bias gradient goes with a bias" });
        }
        let (batch, heads, dh, width) = (desc.batch(), desc.heads(), desc.head_dim(), desc.width());
        for i in 0..desc.queries() {
            for b in 0..batch {
                for h in 0..heads {
                    let a = head_scale(scale, h, desc.abs_scale());
                    let (max, denominator) = softmax_stats(&desc, q, k, bias, a, i, b, h);
                    let qi = seq_at(i, b, h, batch, width, dh);
                    let dy = &d_out[qi..][..dh];
                    let prob = |j: usize| libm::exp(logit(&desc, q, k, bias, a, i, j, b, h) - max) / denominator;
                    let value_dot = |j: usize| dot(dy, &v[seq_at(j, b, h, batch, width, dh)..][..dh]);
                    // The safe-softmax floor acts as a key of value 0: it shares the
                    // probability mass but adds nothing to sum_j p_j dp_j.
                    let mean: f64 = desc.visible_keys(i).map(|j| prob(j) * value_dot(j)).sum();
                    for j in desc.visible_keys(i) {
                        let kj = seq_at(j, b, h, batch, width, dh);
                        let p = prob(j);
                        let d_logit = p * (value_dot(j) - mean);
                        let content = logit(&desc, q, k, bias, 1.0, i, j, b, h);
                        add(&mut d_scale[h], d_logit * content * scale_derivative(scale, h, desc.abs_scale()));
                        let d_content = a * d_logit;
                        for c in 0..dh {
                            add(&mut d_v[kj + c], p * at(dy, c));
                            add(&mut d_q[qi + c], d_content * at(k, kj + c));
                            add(&mut d_k[kj + c], d_content * at(q, qi + c));
                        }
                        if let (Some(d_bias), Mask::Window { offset, .. }) = (d_bias.as_deref_mut(), desc.mask()) {
                            add(&mut d_bias[h * T5_BUCKETS + t5_bucket(i + offset - j)], d_content);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    #[allow(clippy::needless_range_loop)] // `h` and `r` index several buffers at once
    fn linear_attention_backward(
        &mut self,
        q: View<'_, R::Buffer<M>>,
        k: View<'_, R::Buffer<M>>,
        v: View<'_, R::Buffer<M>>,
        scale: WeightView<'_, RefWeights<R::Buffer<M>, M::Bytes>>,
        state: View<'_, R::Buffer<M>>,
        d_out: View<'_, R::Buffer<M>>,
        d_state: ViewMut<'_, R::Buffer<M>>,
        d_q: ViewMut<'_, R::Buffer<M>>,
        d_k: ViewMut<'_, R::Buffer<M>>,
        d_v: ViewMut<'_, R::Buffer<M>>,
        d_scale: ViewMut<'_, R::Buffer<M>>,
        desc: LinearAttention,
    ) -> KResult<Self> {
        let (batch, heads, dh) = (desc.batch(), desc.heads(), desc.head_dim());
        let width = heads * dh;
        let q = view("linear attention queries", q, desc.token_len())?;
        let k = view("linear attention keys", k, desc.token_len())?;
        let v = view("linear attention values", v, desc.token_len())?;
        let scale = weights("linear attention scale", scale, heads)?;
        let state = view("linear attention state", state, desc.state_len())?;
        let d_out = view("linear attention output gradient", d_out, desc.token_len())?;
        let d_state = view_mut("linear attention state gradient", d_state, desc.state_len())?;
        let d_q = view_mut("linear attention query gradient", d_q, desc.token_len())?;
        let d_k = view_mut("linear attention key gradient", d_k, desc.token_len())?;
        let d_v = view_mut("linear attention value gradient", d_v, desc.token_len())?;
        let d_scale = view_mut("linear attention scale gradient", d_scale, heads)?;
        let per_row = desc.state_per_row();
        for b in 0..batch {
            for h in 0..heads {
                let a = head_scale(scale, h, desc.abs_scale());
                let kv0 = b * per_row + h * dh * dh;
                let z0 = b * per_row + heads * dh * dh + h * dh;
                let token = |t: usize| seq_at(t, b, h, batch, width, dh);
                // S_t and z_t are the sums before the call plus tokens 0..=t,
                // recomputed on the fly (clear rather than fast).
                let s_at = |t: usize, r: usize, c: usize| {
                    at(state, kv0 + r * dh + c)
                        + (0..=t).map(|j| elu_plus_one(at(k, token(j) + r)) * at(v, token(j) + c)).sum::<f64>()
                };
                let z_at = |t: usize, r: usize| {
                    at(state, z0 + r) + (0..=t).map(|j| elu_plus_one(at(k, token(j) + r))).sum::<f64>()
                };
                // d_state holds dL/dS_T and dL/dz_T; walking back it becomes dL/dS_t.
                for t in (0..desc.tokens()).rev() {
                    let base = token(t);
                    let u = |r: usize| elu_plus_one(a * at(q, base + r));
                    let den: f64 = (0..dh).map(|r| u(r) * z_at(t, r)).sum();
                    let y = |c: usize| (0..dh).map(|r| u(r) * s_at(t, r, c)).sum::<f64>() / den;
                    let dy_dot_y: f64 = (0..dh).map(|c| at(d_out, base + c) * y(c)).sum();
                    let d_den = -dy_dot_y / den;
                    for r in 0..dh {
                        let du: f64 = (0..dh).map(|c| at(d_out, base + c) / den * s_at(t, r, c)).sum::<f64>()
                            + d_den * z_at(t, r);
                        let qr = at(q, base + r);
                        let d_phi = elu_plus_one_derivative(a * qr) * du;
                        add(&mut d_q[base + r], a * d_phi);
                        add(&mut d_scale[h], qr * d_phi * scale_derivative(scale, h, desc.abs_scale()));
                        // The sums read at t gather u_r * (d_num, d_den).
                        for c in 0..dh {
                            add(&mut d_state[kv0 + r * dh + c], u(r) * at(d_out, base + c) / den);
                        }
                        add(&mut d_state[z0 + r], u(r) * d_den);
                    }
                    // S_t = S_{t-1} + phi(k_t)^T v_t, z_t = z_{t-1} + phi(k_t).
                    for r in 0..dh {
                        let kr = at(k, base + r);
                        let phi_k = elu_plus_one(kr);
                        let mut d_phi_k = at(d_state, z0 + r);
                        for c in 0..dh {
                            let g = at(d_state, kv0 + r * dh + c);
                            d_phi_k += g * at(v, base + c);
                            add(&mut d_v[base + c], g * phi_k);
                        }
                        add(&mut d_k[base + r], d_phi_k * elu_plus_one_derivative(kr));
                    }
                }
            }
        }
        Ok(())
    }

    fn gate_fixed_backward(
        &mut self,
        state: View<'_, R::Buffer<M>>,
        z: View<'_, R::Buffer<M>>,
        bias: WeightView<'_, RefWeights<R::Buffer<M>, M::Bytes>>,
        d_state: ViewMut<'_, R::Buffer<M>>,
        d_z: ViewMut<'_, R::Buffer<M>>,
        d_bias: ViewMut<'_, R::Buffer<M>>,
        desc: Rows,
    ) -> KResult<Self> {
        let dim = desc.dim();
        let state = view("gated state", state, desc.len())?;
        let z = view("gate update", z, desc.len())?;
        let bias = weights("gate bias", bias, dim)?;
        let d_state = view_mut("gated state gradient", d_state, desc.len())?;
        let d_z = view_mut("gate update gradient", d_z, desc.len())?;
        let d_bias = view_mut("gate bias gradient", d_bias, dim)?;
        for i in 0..desc.len() {
            // s' = s g + z (1 - g), g = sigmoid(b).
            let g = sigmoid(bias.at(i % dim));
            let ds = at(d_state, i);
            add(&mut d_z[i], ds * (1.0 - g));
            add(&mut d_bias[i % dim], ds * (at(state, i) - at(z, i)) * g * (1.0 - g));
            d_state[i] = R::from_f64(ds * g);
        }
        Ok(())
    }

    fn gate_lstm_backward(
        &mut self,
        state: View<'_, R::Buffer<M>>,
        z: View<'_, R::Buffer<M>>,
        forget: View<'_, R::Buffer<M>>,
        input: View<'_, R::Buffer<M>>,
        forget_bias: WeightView<'_, RefWeights<R::Buffer<M>, M::Bytes>>,
        input_bias: WeightView<'_, RefWeights<R::Buffer<M>, M::Bytes>>,
        d_state: ViewMut<'_, R::Buffer<M>>,
        d_z: ViewMut<'_, R::Buffer<M>>,
        d_forget: ViewMut<'_, R::Buffer<M>>,
        d_input: ViewMut<'_, R::Buffer<M>>,
        d_forget_bias: ViewMut<'_, R::Buffer<M>>,
        d_input_bias: ViewMut<'_, R::Buffer<M>>,
        desc: Rows,
    ) -> KResult<Self> {
        let dim = desc.dim();
        let state = view("gated state", state, desc.len())?;
        let z = view("gate update", z, desc.len())?;
        let forget = view("forget gate input", forget, desc.len())?;
        let input = view("input gate input", input, desc.len())?;
        let bf = weights("forget gate bias", forget_bias, dim)?;
        let bi = weights("input gate bias", input_bias, dim)?;
        let d_state = view_mut("gated state gradient", d_state, desc.len())?;
        let d_z = view_mut("gate update gradient", d_z, desc.len())?;
        let d_forget = view_mut("forget gate gradient", d_forget, desc.len())?;
        let d_input = view_mut("input gate gradient", d_input, desc.len())?;
        let d_bf = view_mut("forget bias gradient", d_forget_bias, dim)?;
        let d_bi = view_mut("input bias gradient", d_input_bias, dim)?;
        for i in 0..desc.len() {
            // s' = s f + z g, f = sigmoid(F + bf + 1), g = sigmoid(I + bi - 1).
            let f = sigmoid(at(forget, i) + bf.at(i % dim) + 1.0);
            let g = sigmoid(at(input, i) + bi.at(i % dim) - 1.0);
            let ds = at(d_state, i);
            let d_f_pre = ds * at(state, i) * f * (1.0 - f);
            let d_g_pre = ds * at(z, i) * g * (1.0 - g);
            add(&mut d_z[i], ds * g);
            add(&mut d_forget[i], d_f_pre);
            add(&mut d_input[i], d_g_pre);
            add(&mut d_bf[i % dim], d_f_pre);
            add(&mut d_bi[i % dim], d_g_pre);
            d_state[i] = R::from_f64(ds * f);
        }
        Ok(())
    }

    fn add_assign(&mut self, src: View<'_, R::Buffer<M>>, dst: ViewMut<'_, R::Buffer<M>>, len: usize) -> KResult<Self> {
        let src = view("add source", src, len)?;
        for (d, s) in view_mut("add destination", dst, len)?.iter_mut().zip(src) {
            add(d, s.to_f64());
        }
        Ok(())
    }

    fn gather_runs_add(
        &mut self,
        d_dst: View<'_, R::Buffer<M>>,
        d_src: ViewMut<'_, R::Buffer<M>>,
        runs: Strided,
    ) -> KResult<Self> {
        let d_dst = view("runs gradient", d_dst, runs.extent())?;
        let d_src = view_mut("gathered gradient", d_src, runs.total())?;
        for r in 0..runs.count() {
            for i in 0..runs.len() {
                add(&mut d_src[r * runs.len() + i], at(d_dst, r * runs.stride() + i));
            }
        }
        Ok(())
    }
}
