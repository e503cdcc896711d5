//! The scalar reference implementation of [`Kernels`]: clear, not fast; the oracle
//! every backend is checked against.
//!
//! Parameters are stored as f32 (f16/bf16 inputs are widened when written), sums are
//! accumulated in f64, and each kernel follows its SPEC formula literally.

use crate::desc::{
    Activation, Attention, Embed, Heads, LinearAttention, Mask, Matmul, Positions, Rows, Strided, WeightOrder,
};
use crate::error::{CoreError, CoreResult};
use crate::kernels::{check_extent, KResult, Kernels, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
use crate::memory::HostMemory;
use crate::params::T5_BUCKETS;
use crate::primitives::{elu_plus_one, sigmoid, t5_bucket, L2_EPSILON, RMS_EPSILON, SAFE_SOFTMAX_FLOOR};

/// The reference backend over a source of host memory.
#[derive(Debug)]
pub struct Reference<M: HostMemory> {
    memory: M,
}

impl<M: HostMemory> Reference<M> {
    /// A reference backend drawing its buffers from `memory`.
    pub fn new(memory: M) -> Self {
        Reference { memory }
    }

    /// The memory source (e.g. to see how much of an arena is left).
    pub fn memory(&self) -> &M {
        &self.memory
    }
}

/// The elements `offset .. offset + len` of a buffer, or a `BufferTooSmall` error.
fn range<'a>(what: &'static str, data: &'a [f32], offset: usize, len: usize) -> CoreResult<&'a [f32]> {
    check_extent(what, offset, len, data.len())?;
    Ok(&data[offset..offset + len])
}

fn range_mut<'a>(what: &'static str, data: &'a mut [f32], offset: usize, len: usize) -> CoreResult<&'a mut [f32]> {
    check_extent(what, offset, len, data.len())?;
    Ok(&mut data[offset..offset + len])
}

fn view<'a, M: HostMemory>(what: &'static str, v: View<'a, M::F32>, len: usize) -> CoreResult<&'a [f32]> {
    range(what, v.tensor, v.offset, len)
}

fn view_mut<'a, M: HostMemory>(what: &'static str, v: ViewMut<'a, M::F32>, len: usize) -> CoreResult<&'a mut [f32]> {
    range_mut(what, v.tensor, v.offset, len)
}

fn weights<'a, M: HostMemory>(what: &'static str, v: WeightView<'a, M::F32>, len: usize) -> CoreResult<&'a [f32]> {
    range(what, v.weights, v.offset, len)
}

/// Output columns accumulated at once by the reference attention.
const COLUMNS: usize = 16;

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
}

fn activate(x: f32, activation: Activation) -> f32 {
    match activation {
        Activation::Identity => x,
        Activation::Relu => x.max(0.0),
        Activation::Tanh => libm::tanhf(x),
    }
}

impl<M: HostMemory> Storage for Reference<M> {
    type Error = CoreError;
    type Tensor = M::F32;
    type Weights = M::F32;
    type Tokens = M::U32;

    fn alloc_tensor(&mut self, len: usize) -> CoreResult<M::F32> {
        self.memory.alloc_f32(len)
    }
    fn alloc_weights(&mut self, len: usize, _dtype: WeightDtype) -> CoreResult<M::F32> {
        // The oracle keeps every parameter in f32; narrower inputs widen exactly.
        self.memory.alloc_f32(len)
    }
    fn alloc_tokens(&mut self, len: usize) -> CoreResult<M::U32> {
        self.memory.alloc_u32(len)
    }
    fn tensor_len(tensor: &M::F32) -> usize {
        tensor.len()
    }
    fn weights_len(weights: &M::F32) -> usize {
        weights.len()
    }
    fn tokens_len(tokens: &M::U32) -> usize {
        tokens.len()
    }
    fn write_tensor(&mut self, dst: &mut M::F32, offset: usize, src: &[f32]) -> CoreResult<()> {
        range_mut("tensor write", dst, offset, src.len())?.copy_from_slice(src);
        Ok(())
    }
    fn read_tensor(&mut self, src: &M::F32, offset: usize, dst: &mut [f32]) -> CoreResult<()> {
        dst.copy_from_slice(range("tensor read", src, offset, dst.len())?);
        Ok(())
    }
    fn write_weights(&mut self, dst: &mut M::F32, offset: usize, src: WeightData<'_>) -> CoreResult<()> {
        let out = range_mut("weights write", dst, offset, src.len())?;
        for (i, o) in out.iter_mut().enumerate() {
            *o = src.get(i).unwrap_or(0.0);
        }
        Ok(())
    }
    fn write_tokens(&mut self, dst: &mut M::U32, offset: usize, src: &[u32]) -> CoreResult<()> {
        check_extent("tokens write", offset, src.len(), dst.len())?;
        dst[offset..offset + src.len()].copy_from_slice(src);
        Ok(())
    }
    fn sync(&mut self) -> CoreResult<()> {
        Ok(())
    }
}

impl<M: HostMemory> Kernels for Reference<M> {
    fn embed(
        &mut self,
        tokens: &M::U32,
        token_offset: usize,
        table: WeightView<'_, M::F32>,
        out: ViewMut<'_, M::F32>,
        desc: Embed,
    ) -> KResult<Self> {
        let (n, dim) = (desc.count(), desc.dim());
        check_extent("embed tokens", token_offset, n, tokens.len())?;
        let table = weights::<M>("embedding table", table, desc.vocab() * dim)?;
        let out = view_mut::<M>("embed output", out, n * dim)?;
        for (i, row) in out.chunks_exact_mut(dim).enumerate() {
            let id = tokens[token_offset + i];
            if id as usize >= desc.vocab() {
                return Err(CoreError::TokenOutOfRange { index: i, id, vocab: desc.vocab() });
            }
            row.copy_from_slice(&table[id as usize * dim..][..dim]);
        }
        Ok(())
    }

    fn rms_norm(
        &mut self,
        x: View<'_, M::F32>,
        scale: WeightView<'_, M::F32>,
        out: ViewMut<'_, M::F32>,
        desc: Rows,
    ) -> KResult<Self> {
        let dim = desc.dim();
        let x = view::<M>("rms_norm input", x, desc.len())?;
        let scale = weights::<M>("rms_norm scale", scale, dim)?;
        let out = view_mut::<M>("rms_norm output", out, desc.len())?;
        for (xr, yr) in x.chunks_exact(dim).zip(out.chunks_exact_mut(dim)) {
            let mean_square = (dot(xr, xr) / dim as f64) as f32;
            let inv = 1.0 / libm::sqrtf(mean_square + RMS_EPSILON);
            for ((y, &xv), &s) in yr.iter_mut().zip(xr).zip(scale) {
                *y = xv * inv * s;
            }
        }
        Ok(())
    }

    fn add_positions(
        &mut self,
        x: ViewMut<'_, M::F32>,
        table: WeightView<'_, M::F32>,
        desc: Positions,
    ) -> KResult<Self> {
        let dim = desc.dim();
        let table = weights::<M>("position table", table, desc.positions() * dim)?;
        let x = view_mut::<M>("add_positions input", x, desc.len())?;
        for (r, row) in x.chunks_exact_mut(dim).enumerate() {
            let position = r / desc.batch();
            for (v, &t) in row.iter_mut().zip(&table[position * dim..][..dim]) {
                *v += t;
            }
        }
        Ok(())
    }

    fn l2_normalize(&mut self, x: ViewMut<'_, M::F32>, desc: Heads) -> KResult<Self> {
        let x = view_mut::<M>("l2_normalize input", x, desc.len())?;
        for head in x.chunks_exact_mut(desc.head_dim()) {
            let inv = 1.0 / libm::sqrtf(dot(head, head) as f32 + L2_EPSILON);
            for v in head {
                *v *= inv;
            }
        }
        Ok(())
    }

    fn matmul(
        &mut self,
        x: View<'_, M::F32>,
        w: WeightView<'_, M::F32>,
        out: ViewMut<'_, M::F32>,
        desc: Matmul,
    ) -> KResult<Self> {
        let (m, k, n) = (desc.m(), desc.k(), desc.n());
        let x = view::<M>("matmul input", x, m * k)?;
        let w = weights::<M>("matmul weight", w, k * n)?;
        let out = view_mut::<M>("matmul output", out, m * n)?;
        for (xr, yr) in x.chunks_exact(k).zip(out.chunks_exact_mut(n)) {
            for (j, y) in yr.iter_mut().enumerate() {
                let sum: f64 = match desc.order() {
                    WeightOrder::InOut => xr.iter().enumerate().map(|(i, &a)| a as f64 * w[i * n + j] as f64).sum(),
                    WeightOrder::OutIn => dot(xr, &w[j * k..][..k]),
                };
                let product = desc.alpha_value() * sum as f32;
                let base = if desc.accumulates() { *y } else { 0.0 };
                *y = activate(base + product, desc.activation_kind());
            }
        }
        Ok(())
    }

    fn attention(
        &mut self,
        q: View<'_, M::F32>,
        k: View<'_, M::F32>,
        v: View<'_, M::F32>,
        scale: WeightView<'_, M::F32>,
        bias: Option<WeightView<'_, M::F32>>,
        out: ViewMut<'_, M::F32>,
        desc: Attention,
    ) -> KResult<Self> {
        let (batch, heads, dh, width) = (desc.batch(), desc.heads(), desc.head_dim(), desc.width());
        let q = view::<M>("attention queries", q, desc.query_len())?;
        let k = view::<M>("attention keys", k, desc.key_len())?;
        let v = view::<M>("attention values", v, desc.key_len())?;
        let scale = weights::<M>("attention scale", scale, heads)?;
        let bias = match bias {
            Some(b) => Some(weights::<M>("position bias table", b, heads * T5_BUCKETS)?),
            None => None,
        };
        let window_offset = match desc.mask() {
            Mask::Window { offset, .. } => Some(offset),
            Mask::None => None,
        };
        if bias.is_some() && window_offset.is_none() {
            return Err(CoreError::InvalidShape { what: "a position bias needs a window mask" });
        }
        let out = view_mut::<M>("attention output", out, desc.query_len())?;
        let at = |p: usize, b: usize, h: usize| (p * batch + b) * width + h * dh;
        for i in 0..desc.queries() {
            for b in 0..batch {
                for h in 0..heads {
                    let a = if desc.abs_scale() { scale[h].abs() } else { scale[h] };
                    let qh = &q[at(i, b, h)..][..dh];
                    let logit = |j: usize| -> f32 {
                        let mut content = dot(qh, &k[at(j, b, h)..][..dh]) as f32;
                        if let (Some(table), Some(offset)) = (bias, window_offset) {
                            content += table[h * T5_BUCKETS + t5_bucket(i + offset - j)];
                        }
                        a * content
                    };
                    let keys = desc.visible_keys(i);
                    let max = keys.clone().map(logit).fold(SAFE_SOFTMAX_FLOOR, f32::max);
                    let floor_term = libm::exp((SAFE_SOFTMAX_FLOOR - max) as f64);
                    let oh = &mut out[at(i, b, h)..][..dh];
                    // Weighted values summed in f64, a few columns at a time so that
                    // the accumulator lives on the stack.
                    for first in (0..dh).step_by(COLUMNS) {
                        let cols = COLUMNS.min(dh - first);
                        let mut acc = [0f64; COLUMNS];
                        let mut weight_sum = 0f64;
                        for j in keys.clone() {
                            let p = libm::exp((logit(j) - max) as f64);
                            weight_sum += p;
                            let vh = &v[at(j, b, h) + first..][..cols];
                            for (a, &x) in acc.iter_mut().zip(vh) {
                                *a += p * x as f64;
                            }
                        }
                        let denominator = weight_sum + floor_term;
                        for (o, a) in oh[first..first + cols].iter_mut().zip(acc) {
                            *o = (a / denominator) as f32;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn linear_attention(
        &mut self,
        q: View<'_, M::F32>,
        k: View<'_, M::F32>,
        v: View<'_, M::F32>,
        scale: WeightView<'_, M::F32>,
        state: ViewMut<'_, M::F32>,
        out: ViewMut<'_, M::F32>,
        desc: LinearAttention,
    ) -> KResult<Self> {
        let (batch, heads, dh) = (desc.batch(), desc.heads(), desc.head_dim());
        let width = heads * dh;
        let q = view::<M>("linear attention queries", q, desc.token_len())?;
        let k = view::<M>("linear attention keys", k, desc.token_len())?;
        let v = view::<M>("linear attention values", v, desc.token_len())?;
        let scale = weights::<M>("linear attention scale", scale, heads)?;
        let state = view_mut::<M>("linear attention state", state, desc.state_len())?;
        let out = view_mut::<M>("linear attention output", out, desc.token_len())?;
        // The token-by-token recurrent form: update the sums with token t, then read.
        for t in 0..desc.tokens() {
            for b in 0..batch {
                let row_state = &mut state[b * desc.state_per_row()..][..desc.state_per_row()];
                let (kv, z) = row_state.split_at_mut(heads * dh * dh);
                for h in 0..heads {
                    let base = (t * batch + b) * width + h * dh;
                    let a = if desc.abs_scale() { scale[h].abs() } else { scale[h] };
                    let kvh = &mut kv[h * dh * dh..][..dh * dh];
                    let zh = &mut z[h * dh..][..dh];
                    for r in 0..dh {
                        let phi_k = elu_plus_one(k[base + r]);
                        zh[r] += phi_k;
                        for c in 0..dh {
                            kvh[r * dh + c] += phi_k * v[base + c];
                        }
                    }
                    let mut normaliser = 0f64;
                    for r in 0..dh {
                        normaliser += elu_plus_one(a * q[base + r]) as f64 * zh[r] as f64;
                    }
                    for c in 0..dh {
                        let mut numerator = 0f64;
                        for r in 0..dh {
                            numerator += elu_plus_one(a * q[base + r]) as f64 * kvh[r * dh + c] as f64;
                        }
                        out[base + c] = (numerator / normaliser) as f32;
                    }
                }
            }
        }
        Ok(())
    }

    fn gate_fixed(
        &mut self,
        state: ViewMut<'_, M::F32>,
        z: View<'_, M::F32>,
        bias: WeightView<'_, M::F32>,
        desc: Rows,
    ) -> KResult<Self> {
        let dim = desc.dim();
        let z = view::<M>("gate update", z, desc.len())?;
        let bias = weights::<M>("gate bias", bias, dim)?;
        let state = view_mut::<M>("gated state", state, desc.len())?;
        for (i, (s, &zv)) in state.iter_mut().zip(z).enumerate() {
            let g = sigmoid(bias[i % dim]);
            *s = *s * g + zv * (1.0 - g);
        }
        Ok(())
    }

    fn gate_lstm(
        &mut self,
        state: ViewMut<'_, M::F32>,
        z: View<'_, M::F32>,
        forget: View<'_, M::F32>,
        input: View<'_, M::F32>,
        forget_bias: WeightView<'_, M::F32>,
        input_bias: WeightView<'_, M::F32>,
        desc: Rows,
    ) -> KResult<Self> {
        let dim = desc.dim();
        let z = view::<M>("gate update", z, desc.len())?;
        let forget = view::<M>("forget gate input", forget, desc.len())?;
        let input = view::<M>("input gate input", input, desc.len())?;
        let bf = weights::<M>("forget gate bias", forget_bias, dim)?;
        let bi = weights::<M>("input gate bias", input_bias, dim)?;
        let state = view_mut::<M>("gated state", state, desc.len())?;
        for (i, s) in state.iter_mut().enumerate() {
            let f = sigmoid(forget[i] + bf[i % dim] + 1.0);
            let g = sigmoid(input[i] + bi[i % dim] - 1.0);
            *s = *s * f + z[i] * g;
        }
        Ok(())
    }

    fn copy(&mut self, src: View<'_, M::F32>, dst: ViewMut<'_, M::F32>, len: usize) -> KResult<Self> {
        let src = view::<M>("copy source", src, len)?;
        view_mut::<M>("copy destination", dst, len)?.copy_from_slice(src);
        Ok(())
    }

    fn fill(&mut self, dst: ViewMut<'_, M::F32>, runs: Strided, value: f32) -> KResult<Self> {
        let dst = view_mut::<M>("fill destination", dst, runs.extent())?;
        for r in 0..runs.count() {
            dst[r * runs.stride()..][..runs.len()].fill(value);
        }
        Ok(())
    }

    fn copy_weights(&mut self, src: WeightView<'_, M::F32>, dst: ViewMut<'_, M::F32>, runs: Strided) -> KResult<Self> {
        let src = weights::<M>("copy_weights source", src, runs.total())?;
        let dst = view_mut::<M>("copy_weights destination", dst, runs.extent())?;
        for r in 0..runs.count() {
            dst[r * runs.stride()..][..runs.len()].copy_from_slice(&src[r * runs.len()..][..runs.len()]);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! Small cases checked by hand against the SPEC formulas.
    use super::*;
    use crate::memory::Arena;

    /// Runs `f` with a reference backend over a stack arena.
    fn with_reference<R>(f: impl FnOnce(&mut Reference<Arena<'_>>) -> R) -> R {
        let mut f32s = [0f32; 4096];
        let mut u32s = [0u32; 64];
        let mut k = Reference::new(Arena::new(&mut f32s, &mut [], &mut u32s));
        f(&mut k)
    }

    fn tensor<'m>(k: &mut Reference<Arena<'m>>, values: &[f32]) -> &'m mut [f32] {
        let t = k.alloc_tensor(values.len()).unwrap();
        t.copy_from_slice(values);
        t
    }

    #[test]
    fn window_mask_sees_exactly_the_w_previous_tokens() {
        // W = 2, two cached positions then 3 tokens. All keys are zero, so every
        // visible key gets the same weight; value j is the one-hot of j, so the
        // output row shows which keys were visible.
        with_reference(|k| {
            let (w, n, keys) = (2, 3, 5);
            let q = tensor(k, &[0.0; 3 * 5]);
            let zero_keys = tensor(k, &[0.0; 5 * 5]);
            let mut one_hot = [0f32; 25];
            for j in 0..keys {
                one_hot[j * 5 + j] = 1.0;
            }
            let v = tensor(k, &one_hot);
            let scale = tensor(k, &[1.0]);
            let mut out = k.alloc_tensor(n * 5).unwrap();
            let desc = Attention::new(1, n, keys, 1, 5, Mask::Window { offset: w, window: w }, false).unwrap();
            k.attention(
                View::new(&q, 0),
                View::new(&zero_keys, 0),
                View::new(&v, 0),
                WeightView::new(&scale, 0),
                None,
                ViewMut::new(&mut out, 0),
                desc,
            )
            .unwrap();
            // Query i (position i + 2 in the tile) sees keys i and i + 1 only:
            // never itself (i + 2), never anything older.
            for i in 0..n {
                for j in 0..keys {
                    let expected = if j == i || j == i + 1 { 0.5 } else { 0.0 };
                    assert!((out[i * 5 + j] - expected).abs() < 1e-6, "query {i} key {j}: {}", out[i * 5 + j]);
                }
            }
        });
    }

    #[test]
    fn zero_cache_at_a_document_start_gives_zero_output() {
        // The first token sees only the W zero cached keys/values: they take
        // probability mass (unmasked) but contribute zero values.
        with_reference(|k| {
            let q = tensor(k, &[0.3, -0.7]);
            let keys = tensor(k, &[0.0, 0.0, 0.0, 0.0, 0.6, 0.8]);
            let values = tensor(k, &[0.0, 0.0, 0.0, 0.0, 5.0, 7.0]);
            let scale = tensor(k, &[3.0]);
            let bias = tensor(k, &[0.5; 32]);
            let mut out = k.alloc_tensor(2).unwrap();
            let desc = Attention::new(1, 1, 3, 1, 2, Mask::Window { offset: 2, window: 2 }, false).unwrap();
            k.attention(
                View::new(&q, 0),
                View::new(&keys, 0),
                View::new(&values, 0),
                WeightView::new(&scale, 0),
                Some(WeightView::new(&bias, 0)),
                ViewMut::new(&mut out, 0),
                desc,
            )
            .unwrap();
            assert_eq!(&out[..], &[0.0, 0.0]);
        });
    }

    #[test]
    fn bias_is_added_before_the_scale() {
        // Two visible keys with q.k = 0 and biases 0 (distance 2) and 1 (distance 1):
        // logits a*(0 + bias) = (0, a), so the weights are softmax(0, a).
        with_reference(|k| {
            let q = tensor(k, &[0.0, 0.0]);
            let keys = tensor(k, &[0.0; 6]);
            let values = tensor(k, &[1.0, 0.0, 0.0, 1.0, 9.0, 9.0]);
            let a = 3.0f32;
            let scale = tensor(k, &[a]);
            let mut table = [0f32; 32];
            table[1] = 1.0; // bucket of distance 1
            let bias = tensor(k, &table);
            let mut out = k.alloc_tensor(2).unwrap();
            let desc = Attention::new(1, 1, 3, 1, 2, Mask::Window { offset: 2, window: 2 }, false).unwrap();
            k.attention(
                View::new(&q, 0),
                View::new(&keys, 0),
                View::new(&values, 0),
                WeightView::new(&scale, 0),
                Some(WeightView::new(&bias, 0)),
                ViewMut::new(&mut out, 0),
                desc,
            )
            .unwrap();
            let e = libm::expf(a);
            assert!((out[0] - 1.0 / (1.0 + e)).abs() < 1e-6);
            assert!((out[1] - e / (1.0 + e)).abs() < 1e-6);
        });
    }

    #[test]
    fn safe_softmax_attends_to_nothing_far_below_the_floor() {
        with_reference(|k| {
            let q = tensor(k, &[1.0, 0.0]);
            let keys = tensor(k, &[-1.0, 0.0]);
            let values = tensor(k, &[4.0, 2.0]);
            let mut out = k.alloc_tensor(2).unwrap();
            let desc = Attention::new(1, 1, 1, 1, 2, Mask::None, false).unwrap();
            // a = 2000: the only logit is -2000 < -1000, so the floor term wins.
            let scale = tensor(k, &[2000.0]);
            k.attention(
                View::new(&q, 0),
                View::new(&keys, 0),
                View::new(&values, 0),
                WeightView::new(&scale, 0),
                None,
                ViewMut::new(&mut out, 0),
                desc,
            )
            .unwrap();
            assert_eq!(&out[..], &[0.0, 0.0]);
            // abs(a) with a = -1: logit -1, one key: weight 1 (the floor is negligible).
            let scale = tensor(k, &[-1.0]);
            let desc = Attention::new(1, 1, 1, 1, 2, Mask::None, true).unwrap();
            k.attention(
                View::new(&q, 0),
                View::new(&keys, 0),
                View::new(&values, 0),
                WeightView::new(&scale, 0),
                None,
                ViewMut::new(&mut out, 0),
                desc,
            )
            .unwrap();
            assert_eq!(&out[..], &[4.0, 2.0]);
        });
    }

    #[test]
    fn gate_formulas() {
        with_reference(|k| {
            // Fixed: b = 0 gives g = 1/2, so s' = (s + z) / 2.
            let mut s = tensor(k, &[2.0, -4.0]);
            let z = tensor(k, &[6.0, 0.0]);
            let b = tensor(k, &[0.0, 0.0]);
            k.gate_fixed(ViewMut::new(&mut s, 0), View::new(&z, 0), WeightView::new(&b, 0), Rows::new(1, 2).unwrap())
                .unwrap();
            assert_eq!(&s[..], &[4.0, -2.0]);
            // LSTM: forget input -1 with bias 0 gives sigmoid(0) = 1/2 (the +1);
            // input 1 with bias 0 gives sigmoid(0) = 1/2 (the -1).
            let mut s = tensor(k, &[2.0, -4.0]);
            let forget = tensor(k, &[-1.0, -1.0]);
            let input = tensor(k, &[1.0, 1.0]);
            k.gate_lstm(
                ViewMut::new(&mut s, 0),
                View::new(&z, 0),
                View::new(&forget, 0),
                View::new(&input, 0),
                WeightView::new(&b, 0),
                WeightView::new(&b, 0),
                Rows::new(1, 2).unwrap(),
            )
            .unwrap();
            assert_eq!(&s[..], &[4.0, -2.0]);
        });
    }

    #[test]
    fn norms() {
        with_reference(|k| {
            let x = tensor(k, &[3.0, 4.0]);
            let scale = tensor(k, &[1.0, -2.0]);
            let mut out = k.alloc_tensor(2).unwrap();
            k.rms_norm(
                View::new(&x, 0),
                WeightView::new(&scale, 0),
                ViewMut::new(&mut out, 0),
                Rows::new(1, 2).unwrap(),
            )
            .unwrap();
            let inv = 1.0 / libm::sqrtf(12.5 + 1e-6);
            assert_eq!(&out[..], &[3.0 * inv, 4.0 * inv * -2.0]);
            let mut heads = tensor(k, &[3.0, 4.0, 0.0, 0.0]);
            k.l2_normalize(ViewMut::new(&mut heads, 0), Heads::new(1, 2, 2).unwrap()).unwrap();
            let inv = 1.0 / libm::sqrtf(25.0 + 1e-6);
            assert_eq!(&heads[..], &[3.0 * inv, 4.0 * inv, 0.0, 0.0]);
        });
    }

    #[test]
    fn matmul_orders_accumulation_and_activation() {
        with_reference(|k| {
            let x = tensor(k, &[1.0, 2.0]);
            let w = tensor(k, &[1.0, -1.0, 3.0, 0.5, 1.0, -2.0]); // (2, 3) in-out
            let mut out = tensor(k, &[10.0, 10.0, 10.0]);
            k.matmul(
                View::new(&x, 0),
                WeightView::new(&w, 0),
                ViewMut::new(&mut out, 0),
                Matmul::new(1, 2, 3).unwrap(),
            )
            .unwrap();
            assert_eq!(&out[..], &[2.0, 1.0, -1.0]);
            let desc = Matmul::new(1, 2, 3).unwrap().accumulate().activation(Activation::Relu).alpha(2.0);
            k.matmul(View::new(&x, 0), WeightView::new(&w, 0), ViewMut::new(&mut out, 0), desc).unwrap();
            assert_eq!(&out[..], &[6.0, 3.0, 0.0]);
            // Read as (n=2, k=3) out-in: rows are outputs.
            let x3 = tensor(k, &[1.0, 1.0, 1.0]);
            let mut out2 = k.alloc_tensor(2).unwrap();
            k.matmul(
                View::new(&x3, 0),
                WeightView::new(&w, 0),
                ViewMut::new(&mut out2, 0),
                Matmul::new(1, 3, 2).unwrap().transposed_weight(),
            )
            .unwrap();
            assert_eq!(&out2[..], &[3.0, -0.5]);
        });
    }

    #[test]
    fn linear_attention_of_a_first_token_returns_its_value() {
        // One token: S = phi(k)^T v, z = phi(k), so y = (phi(q).phi(k)) v / (phi(q).phi(k)) = v.
        with_reference(|k| {
            let q = tensor(k, &[0.2, -0.9]);
            let keys = tensor(k, &[-0.4, 0.7]);
            let v = tensor(k, &[3.0, -5.0]);
            let scale = tensor(k, &[2.0]);
            let desc = LinearAttention::new(1, 1, 1, 2, false).unwrap();
            let mut state = k.alloc_tensor(desc.state_len()).unwrap();
            let mut out = k.alloc_tensor(2).unwrap();
            k.linear_attention(
                View::new(&q, 0),
                View::new(&keys, 0),
                View::new(&v, 0),
                WeightView::new(&scale, 0),
                ViewMut::new(&mut state, 0),
                ViewMut::new(&mut out, 0),
                desc,
            )
            .unwrap();
            assert!((out[0] - 3.0).abs() < 1e-6 && (out[1] + 5.0).abs() < 1e-6, "{:?}", &out[..]);
        });
    }

    #[test]
    fn too_small_buffers_are_errors() {
        with_reference(|k| {
            let x = tensor(k, &[1.0; 3]);
            let scale = tensor(k, &[1.0; 2]);
            let mut out = k.alloc_tensor(4).unwrap();
            let err = k.rms_norm(
                View::new(&x, 0),
                WeightView::new(&scale, 0),
                ViewMut::new(&mut out, 0),
                Rows::new(2, 2).unwrap(),
            );
            assert_eq!(err, Err(CoreError::BufferTooSmall { what: "rms_norm input", needed: 4, available: 3 }));
            let err = k.copy(View::new(&x, 2), ViewMut::new(&mut out, 0), 2);
            assert_eq!(err, Err(CoreError::BufferTooSmall { what: "copy source", needed: 4, available: 3 }));
            let err = k.fill(ViewMut::new(&mut out, usize::MAX), Strided::contiguous(2), 0.0);
            assert!(matches!(err, Err(CoreError::BufferTooSmall { .. })));
        });
    }
}
