//! An independent re-implementation of the kernels in plain f32, with the
//! summation orders a SIMD backend would use (four partial sums, fused
//! multiply-adds, linear attention in the chunked block form) and parameters
//! stored in any of f32, f16 and bf16.
//!
//! It is not a backend: it exists so that the suite's own tests can show that a
//! *correct* implementation that rounds differently from the f64 reference passes
//! every check, i.e. that the tolerances are not too tight, with f32 and with
//! half-precision parameters.

use brt_core::desc::{
    Activation, Attention, Embed, Heads, LinearAttention, Mask, Matmul, Positions, Rows, Strided, WeightOrder,
};
use brt_core::half::{bf16, f16};
use brt_core::kernels::check_extent;
use brt_core::params::T5_BUCKETS;
use brt_core::primitives::{t5_bucket, L2_EPSILON, RMS_EPSILON, SAFE_SOFTMAX_FLOOR};
use brt_core::{CoreError, HostMemory, KResult, Kernels, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
use brt_cpu::Heap;
use conformance::{Backend, Skip};
use std::marker::PhantomData;

/// Parameters rounded to their storage type, kept as f32 for computing.
pub struct Stored {
    values: Vec<f32>,
    dtype: WeightDtype,
}

/// The f32 kernels.
pub struct Float32;

/// Which storage type the factory uses for model parameters.
pub trait Dtype {
    /// The storage type.
    const DTYPE: WeightDtype;
    /// The name of the backend in messages.
    const NAME: &'static str;
}

/// f32 parameters.
pub struct F32;
impl Dtype for F32 {
    const DTYPE: WeightDtype = WeightDtype::F32;
    const NAME: &'static str = "float32 double, f32 weights";
}
/// f16 parameters.
pub struct F16;
impl Dtype for F16 {
    const DTYPE: WeightDtype = WeightDtype::F16;
    const NAME: &'static str = "float32 double, f16 weights";
}
/// bf16 parameters.
pub struct Bf16;
impl Dtype for Bf16 {
    const DTYPE: WeightDtype = WeightDtype::Bf16;
    const NAME: &'static str = "float32 double, bf16 weights";
}

/// The factory: the f32 kernels with parameters stored as `D`.
pub struct Float32Backend<D>(PhantomData<D>);

impl<D: Dtype> Backend for Float32Backend<D> {
    type Kernels = Float32;
    const NAME: &'static str = D::NAME;

    fn create() -> Result<Float32, Skip> {
        Ok(Float32)
    }
    fn weight_dtype() -> WeightDtype {
        D::DTYPE
    }
    fn core_error(error: &CoreError) -> Option<CoreError> {
        Some(*error)
    }
}

fn sl<'a>(what: &'static str, v: &'a [f32], offset: usize, len: usize) -> Result<&'a [f32], CoreError> {
    check_extent(what, offset, len, v.len())?;
    Ok(&v[offset..offset + len])
}

fn sl_mut<'a>(what: &'static str, v: &'a mut [f32], offset: usize, len: usize) -> Result<&'a mut [f32], CoreError> {
    check_extent(what, offset, len, v.len())?;
    Ok(&mut v[offset..offset + len])
}

fn w<'a>(what: &'static str, v: WeightView<'a, Stored>, len: usize) -> Result<&'a [f32], CoreError> {
    sl(what, &v.weights.values, v.offset, len)
}

/// Dot product with four interleaved partial sums, like an unrolled SIMD loop.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 4];
    let chunks = a.len() / 4 * 4;
    for i in (0..chunks).step_by(4) {
        for l in 0..4 {
            acc[l] = a[i + l].mul_add(b[i + l], acc[l]);
        }
    }
    let mut tail = 0f32;
    for i in chunks..a.len().min(b.len()) {
        tail = a[i].mul_add(b[i], tail);
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

fn phi(x: f32) -> f32 {
    if x > 0.0 {
        x + 1.0
    } else {
        x.exp()
    }
}

fn round(dtype: WeightDtype, v: f32) -> f32 {
    match dtype {
        // Q8_0 is refused by `alloc_weights`.
        WeightDtype::F32 | WeightDtype::Q8_0 => v,
        WeightDtype::F16 => f16::from_f32(v).to_f32(),
        WeightDtype::Bf16 => bf16::from_f32(v).to_f32(),
    }
}

impl Storage for Float32 {
    type Error = CoreError;
    type Tensor = Vec<f32>;
    type Weights = Stored;
    type Tokens = Vec<u32>;

    fn alloc_tensor(&mut self, len: usize) -> Result<Vec<f32>, CoreError> {
        Heap.alloc_f32(len)
    }
    fn alloc_weights(&mut self, len: usize, dtype: WeightDtype) -> Result<Stored, CoreError> {
        if dtype == WeightDtype::Q8_0 {
            return Err(CoreError::InvalidShape { what: brt_core::encoding::Q8_0_CPU_ONLY });
        }
        Ok(Stored { values: Heap.alloc_f32(len)?, dtype })
    }
    fn alloc_tokens(&mut self, len: usize) -> Result<Vec<u32>, CoreError> {
        Heap.alloc_u32(len)
    }
    fn tensor_len(tensor: &Vec<f32>) -> usize {
        tensor.len()
    }
    fn weights_len(weights: &Stored) -> usize {
        weights.values.len()
    }
    fn tokens_len(tokens: &Vec<u32>) -> usize {
        tokens.len()
    }
    fn write_tensor(&mut self, dst: &mut Vec<f32>, offset: usize, src: &[f32]) -> Result<(), CoreError> {
        sl_mut("tensor write", dst, offset, src.len())?.copy_from_slice(src);
        Ok(())
    }
    fn read_tensor(&mut self, src: &Vec<f32>, offset: usize, dst: &mut [f32]) -> Result<(), CoreError> {
        dst.copy_from_slice(sl("tensor read", src, offset, dst.len())?);
        Ok(())
    }
    fn write_weights(&mut self, dst: &mut Stored, offset: usize, src: WeightData<'_>) -> Result<(), CoreError> {
        let dtype = dst.dtype;
        let out = sl_mut("weights write", &mut dst.values, offset, src.len())?;
        for (i, o) in out.iter_mut().enumerate() {
            *o = round(dtype, src.get(i).unwrap_or(0.0));
        }
        Ok(())
    }
    fn write_tokens(&mut self, dst: &mut Vec<u32>, offset: usize, src: &[u32]) -> Result<(), CoreError> {
        check_extent("tokens write", offset, src.len(), dst.len())?;
        dst[offset..offset + src.len()].copy_from_slice(src);
        Ok(())
    }
    fn sync(&mut self) -> Result<(), CoreError> {
        Ok(())
    }
}

impl Kernels for Float32 {
    fn embed(
        &mut self,
        tokens: &Vec<u32>,
        token_offset: usize,
        table: WeightView<'_, Stored>,
        out: ViewMut<'_, Vec<f32>>,
        desc: Embed,
    ) -> KResult<Self> {
        let (n, d) = (desc.count(), desc.dim());
        check_extent("tokens", token_offset, n, tokens.len())?;
        let table = w("table", table, desc.vocab() * d)?;
        let out = sl_mut("out", out.tensor, out.offset, n * d)?;
        for (i, row) in out.chunks_exact_mut(d).enumerate() {
            let id = tokens[token_offset + i] as usize;
            if id >= desc.vocab() {
                return Err(CoreError::TokenOutOfRange { index: i, id: id as u32, vocab: desc.vocab() });
            }
            row.copy_from_slice(&table[id * d..(id + 1) * d]);
        }
        Ok(())
    }

    fn rms_norm(
        &mut self,
        x: View<'_, Vec<f32>>,
        scale: WeightView<'_, Stored>,
        out: ViewMut<'_, Vec<f32>>,
        desc: Rows,
    ) -> KResult<Self> {
        let d = desc.dim();
        let x = sl("x", x.tensor, x.offset, desc.len())?;
        let scale = w("scale", scale, d)?;
        let out = sl_mut("out", out.tensor, out.offset, desc.len())?;
        for (xr, yr) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
            let inv = 1.0 / (dot(xr, xr) / d as f32 + RMS_EPSILON).sqrt();
            for ((y, &xv), &s) in yr.iter_mut().zip(xr).zip(scale) {
                *y = xv * inv * s;
            }
        }
        Ok(())
    }

    fn add_positions(
        &mut self,
        x: ViewMut<'_, Vec<f32>>,
        table: WeightView<'_, Stored>,
        desc: Positions,
    ) -> KResult<Self> {
        let d = desc.dim();
        let table = w("table", table, desc.positions() * d)?;
        let x = sl_mut("x", x.tensor, x.offset, desc.len())?;
        for (r, row) in x.chunks_exact_mut(d).enumerate() {
            let p = r / desc.batch();
            for (v, &t) in row.iter_mut().zip(&table[p * d..(p + 1) * d]) {
                *v += t;
            }
        }
        Ok(())
    }

    fn l2_normalize(&mut self, x: ViewMut<'_, Vec<f32>>, desc: Heads) -> KResult<Self> {
        let x = sl_mut("x", x.tensor, x.offset, desc.len())?;
        for head in x.chunks_exact_mut(desc.head_dim()) {
            let inv = 1.0 / (dot(head, head) + L2_EPSILON).sqrt();
            head.iter_mut().for_each(|v| *v *= inv);
        }
        Ok(())
    }

    fn matmul(
        &mut self,
        x: View<'_, Vec<f32>>,
        wt: WeightView<'_, Stored>,
        out: ViewMut<'_, Vec<f32>>,
        desc: Matmul,
    ) -> KResult<Self> {
        let (m, k, n) = (desc.m(), desc.k(), desc.n());
        let x = sl("x", x.tensor, x.offset, m * k)?;
        let wv = w("w", wt, k * n)?;
        let out = sl_mut("out", out.tensor, out.offset, m * n)?;
        let mut acc = vec![0f32; n];
        for (xr, yr) in x.chunks_exact(k).zip(out.chunks_exact_mut(n)) {
            match desc.order() {
                // Row-major weights: accumulate whole output rows, one input at a time.
                WeightOrder::InOut => {
                    acc.fill(0.0);
                    for (i, &a) in xr.iter().enumerate() {
                        for (s, &b) in acc.iter_mut().zip(&wv[i * n..(i + 1) * n]) {
                            *s = a.mul_add(b, *s);
                        }
                    }
                }
                WeightOrder::OutIn => {
                    for (j, s) in acc.iter_mut().enumerate() {
                        *s = dot(xr, &wv[j * k..(j + 1) * k]);
                    }
                }
            }
            for (y, &s) in yr.iter_mut().zip(&acc) {
                let v = if desc.accumulates() { desc.alpha_value().mul_add(s, *y) } else { desc.alpha_value() * s };
                *y = match desc.activation_kind() {
                    Activation::Identity => v,
                    Activation::Relu => v.max(0.0),
                    Activation::Tanh => v.tanh(),
                };
            }
        }
        Ok(())
    }

    fn attention(
        &mut self,
        q: View<'_, Vec<f32>>,
        k: View<'_, Vec<f32>>,
        v: View<'_, Vec<f32>>,
        scale: WeightView<'_, Stored>,
        bias: Option<WeightView<'_, Stored>>,
        out: ViewMut<'_, Vec<f32>>,
        desc: Attention,
    ) -> KResult<Self> {
        let (batch, heads, dh, width) = (desc.batch(), desc.heads(), desc.head_dim(), desc.width());
        let q = sl("q", q.tensor, q.offset, desc.query_len())?;
        let k = sl("k", k.tensor, k.offset, desc.key_len())?;
        let v = sl("v", v.tensor, v.offset, desc.key_len())?;
        let scale = w("scale", scale, heads)?;
        let bias = match bias {
            Some(b) => Some(w("bias", b, heads * T5_BUCKETS)?),
            None => None,
        };
        let offset = match (desc.mask(), bias) {
            (Mask::Window { offset, .. }, _) => offset,
            (Mask::None, None) => 0,
            (Mask::None, Some(_)) => {
                return Err(CoreError::InvalidShape { what: "a position bias needs a window mask" })
            }
        };
        let out = sl_mut("out", out.tensor, out.offset, desc.query_len())?;
        let mut p = vec![0f32; desc.keys()];
        for i in 0..desc.queries() {
            let keys = desc.visible_keys(i);
            for b in 0..batch {
                for h in 0..heads {
                    let at = |pos: usize| (pos * batch + b) * width + h * dh;
                    let a = if desc.abs_scale() { scale[h].abs() } else { scale[h] };
                    let qh = &q[at(i)..at(i) + dh];
                    let mut max = SAFE_SOFTMAX_FLOOR;
                    for j in keys.clone() {
                        let t5 = bias.map_or(0.0, |t| t[h * T5_BUCKETS + t5_bucket(i + offset - j)]);
                        p[j] = a * (dot(qh, &k[at(j)..at(j) + dh]) + t5);
                        max = max.max(p[j]);
                    }
                    let mut sum = (SAFE_SOFTMAX_FLOOR - max).exp();
                    for j in keys.clone() {
                        p[j] = (p[j] - max).exp();
                        sum += p[j];
                    }
                    let oh = &mut out[at(i)..at(i) + dh];
                    oh.fill(0.0);
                    for j in keys.clone() {
                        for (o, &x) in oh.iter_mut().zip(&v[at(j)..at(j) + dh]) {
                            *o = p[j].mul_add(x, *o);
                        }
                    }
                    let inv = 1.0 / sum;
                    oh.iter_mut().for_each(|o| *o *= inv);
                }
            }
        }
        Ok(())
    }

    fn linear_attention(
        &mut self,
        q: View<'_, Vec<f32>>,
        k: View<'_, Vec<f32>>,
        v: View<'_, Vec<f32>>,
        scale: WeightView<'_, Stored>,
        state: ViewMut<'_, Vec<f32>>,
        out: ViewMut<'_, Vec<f32>>,
        desc: LinearAttention,
    ) -> KResult<Self> {
        let (batch, heads, dh, t) = (desc.batch(), desc.heads(), desc.head_dim(), desc.tokens());
        let width = heads * dh;
        let q = sl("q", q.tensor, q.offset, desc.token_len())?;
        let k = sl("k", k.tensor, k.offset, desc.token_len())?;
        let v = sl("v", v.tensor, v.offset, desc.token_len())?;
        let scale = w("scale", scale, heads)?;
        let state = sl_mut("state", state.tensor, state.offset, desc.state_len())?;
        let out = sl_mut("out", out.tensor, out.offset, desc.token_len())?;
        // The chunked block form: phi(Q) (S + causal(phi(Q) phi(K)^T) V) over the
        // whole call at once, then the state update.
        for b in 0..batch {
            let row = &mut state[b * desc.state_per_row()..(b + 1) * desc.state_per_row()];
            let (kv, z) = row.split_at_mut(heads * dh * dh);
            for h in 0..heads {
                let a = if desc.abs_scale() { scale[h].abs() } else { scale[h] };
                let at = |pos: usize| (pos * batch + b) * width + h * dh;
                let pq: Vec<Vec<f32>> =
                    (0..t).map(|i| q[at(i)..at(i) + dh].iter().map(|&x| phi(a * x)).collect()).collect();
                let pk: Vec<Vec<f32>> =
                    (0..t).map(|j| k[at(j)..at(j) + dh].iter().map(|&x| phi(x)).collect()).collect();
                let kvh = &mut kv[h * dh * dh..(h + 1) * dh * dh];
                let zh = &mut z[h * dh..(h + 1) * dh];
                for i in 0..t {
                    let mut num = vec![0f32; dh];
                    for (r, &pqr) in pq[i].iter().enumerate() {
                        for (c, n) in num.iter_mut().enumerate() {
                            *n = pqr.mul_add(kvh[r * dh + c], *n);
                        }
                    }
                    let mut den = dot(&pq[i], zh);
                    for j in 0..=i {
                        let score = dot(&pq[i], &pk[j]);
                        den += score;
                        for (n, &x) in num.iter_mut().zip(&v[at(j)..at(j) + dh]) {
                            *n = score.mul_add(x, *n);
                        }
                    }
                    for (o, n) in out[at(i)..at(i) + dh].iter_mut().zip(&num) {
                        *o = n / den;
                    }
                }
                for j in 0..t {
                    for r in 0..dh {
                        zh[r] += pk[j][r];
                        for c in 0..dh {
                            kvh[r * dh + c] = pk[j][r].mul_add(v[at(j) + c], kvh[r * dh + c]);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn gate_fixed(
        &mut self,
        state: ViewMut<'_, Vec<f32>>,
        z: View<'_, Vec<f32>>,
        bias: WeightView<'_, Stored>,
        desc: Rows,
    ) -> KResult<Self> {
        let d = desc.dim();
        let z = sl("z", z.tensor, z.offset, desc.len())?;
        let bias = w("bias", bias, d)?;
        let s = sl_mut("state", state.tensor, state.offset, desc.len())?;
        for (i, (s, &zv)) in s.iter_mut().zip(z).enumerate() {
            // The interpolation form z + g (s - z), as vector code often writes it.
            *s = sigmoid(bias[i % d]).mul_add(*s - zv, zv);
        }
        Ok(())
    }

    fn gate_lstm(
        &mut self,
        state: ViewMut<'_, Vec<f32>>,
        z: View<'_, Vec<f32>>,
        forget: View<'_, Vec<f32>>,
        input: View<'_, Vec<f32>>,
        forget_bias: WeightView<'_, Stored>,
        input_bias: WeightView<'_, Stored>,
        desc: Rows,
    ) -> KResult<Self> {
        let d = desc.dim();
        let z = sl("z", z.tensor, z.offset, desc.len())?;
        let f = sl("forget", forget.tensor, forget.offset, desc.len())?;
        let g = sl("input", input.tensor, input.offset, desc.len())?;
        let bf = w("forget bias", forget_bias, d)?;
        let bi = w("input bias", input_bias, d)?;
        let s = sl_mut("state", state.tensor, state.offset, desc.len())?;
        for (i, s) in s.iter_mut().enumerate() {
            let fg = sigmoid(f[i] + bf[i % d] + 1.0);
            let ig = sigmoid(g[i] + bi[i % d] - 1.0);
            *s = s.mul_add(fg, z[i] * ig);
        }
        Ok(())
    }

    fn copy(&mut self, src: View<'_, Vec<f32>>, dst: ViewMut<'_, Vec<f32>>, len: usize) -> KResult<Self> {
        let src = sl("src", src.tensor, src.offset, len)?;
        sl_mut("dst", dst.tensor, dst.offset, len)?.copy_from_slice(src);
        Ok(())
    }

    fn fill(&mut self, dst: ViewMut<'_, Vec<f32>>, runs: Strided, value: f32) -> KResult<Self> {
        let dst = sl_mut("dst", dst.tensor, dst.offset, runs.extent())?;
        for r in 0..runs.count() {
            dst[r * runs.stride()..r * runs.stride() + runs.len()].fill(value);
        }
        Ok(())
    }

    fn copy_weights(
        &mut self,
        src: WeightView<'_, Stored>,
        dst: ViewMut<'_, Vec<f32>>,
        runs: Strided,
    ) -> KResult<Self> {
        let src = w("src", src, runs.total())?;
        let dst = sl_mut("dst", dst.tensor, dst.offset, runs.extent())?;
        for r in 0..runs.count() {
            let (d, s) = (r * runs.stride(), r * runs.len());
            dst[d..d + runs.len()].copy_from_slice(&src[s..s + runs.len()]);
        }
        Ok(())
    }
}
