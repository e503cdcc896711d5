//! Deliberately broken kernels: the reference with exactly one fault each. The
//! suite must catch every one of them (see `main.rs`).

use brt_core::desc::{Attention, Embed, Heads, LinearAttention, Mask, Matmul, Positions, Rows, Strided};
use brt_core::half::f16;
use brt_core::kernels::check_extent;
use brt_core::params::T5_BUCKETS;
use brt_core::primitives::{sigmoid, t5_bucket, SAFE_SOFTMAX_FLOOR};
use brt_core::{CoreError, KResult, Kernels, Reference, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
use brt_cpu::{Heap, SharedBytes};

/// The reference's parameter buffer, which the broken backend wraps.
type Params = brt_core::RefWeights<Vec<f32>, SharedBytes>;

/// The values of parameters the reference holds (the suite gives this backend
/// no others).
fn held(weights: &Params) -> Result<&[f32], CoreError> {
    weights.values().ok_or(CoreError::InvalidShape { what: "the broken backend reads only held weights" })
}
use conformance::{Backend, Skip};
use std::marker::PhantomData;

/// A fault as a type, so that a broken kernel set can be a [`Backend`].
pub trait FaultKind {
    /// The fault.
    const FAULT: Fault;
    /// Its name in messages.
    const NAME: &'static str;
}

/// The enum of faults and, for each, a type of the same name.
macro_rules! faults {
    ($($(#[$doc:meta])* $kind:ident,)*) => {
        /// The fault a broken kernel set carries.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Fault {
            $($(#[$doc])* $kind,)*
        }
        $(
            #[derive(Debug)]
            pub struct $kind;
            impl FaultKind for $kind {
                const FAULT: Fault = Fault::$kind;
                const NAME: &'static str = stringify!($kind);
            }
        )*
    };
}
faults!(
    /// The window is shifted onto the query itself: keys 0 to W-1 back instead of
    /// 1 to W back.
    SelfInWindow,
    /// The window is one key short: 1 to W-1 back.
    WindowOffByOne,
    /// The gates' roles are swapped: the fixed gate keeps `1 - g` of the state, the
    /// LSTM forget gate reads the input gate's product and bias and vice versa.
    GateRolesSwapped,
    /// The state never updates: both gates do nothing.
    FrozenState,
    /// The fixed gate keeps 0.01% less of the state than it should (a fast
    /// sigmoid that is 0.01% low): a fault only a tight model tolerance sees.
    GateSlightlyLow,
    /// The T5 bias is added after the scale: `a*q.k + bias`.
    BiasAfterScale,
    /// The softmax lacks the official floor term `exp(-1000 - max)`.
    NoSafeFloor,
    /// Linear attention forgets the state carried in from earlier calls.
    LinearForgetsState,
    /// `rms_norm` drifts by a hair depending on the calls before: not reproducible.
    Nondeterministic,
    /// `copy` does not check its extents (and panics on a short buffer).
    UncheckedCopy,
    /// `matmul` leaves the last row of a product of several rows as it was (an
    /// off-by-one in the row loop).
    MatmulLastRowSkipped,
    /// `rms_norm` sums the squares of all but the last element of a row (still
    /// dividing by the row's width).
    RmsNormLastElementDropped,
    /// `l2_normalize` leaves the last head of every row unnormalized.
    L2LastHeadSkipped,
    /// `embed` reads the row after the token's (wrapping at the vocabulary).
    EmbedNextRow,
    /// `add_positions` adds a position's vector to its first batch row only (a
    /// missing broadcast).
    PositionsFirstRowOnly,
    /// `fill` skips the last of several runs (a document reset misses a row).
    FillSkipsLastRun,
    /// Windowed attention does not see the cached keys of earlier calls: results
    /// depend on where a document is split into calls.
    CacheIgnored,
    /// Attention reads the keys and values of batch row 0 for every row (a batch
    /// stride of zero).
    KeysOfFirstRow,
    /// Windowed attention reads the keys cached by earlier calls rounded to
    /// f16 (a cache kept at lower precision): logits move by a few 1e-3 with
    /// where a document is split (2.2e-3 in the case the suite shrinks to),
    /// which only a tolerance from the case's own conditioning sees.
    CachedKeysRounded,
);

/// A fixed gate that keeps `kept(g)` of the state (g = sigmoid(bias)) and takes
/// the rest from `z`; the official gate keeps `g`.
fn gate_fixed_keeping(
    state: ViewMut<'_, Vec<f32>>,
    z: View<'_, Vec<f32>>,
    bias: WeightView<'_, Params>,
    desc: Rows,
    kept: fn(f32) -> f32,
) -> KResult<Reference<Heap>> {
    let dim = desc.dim();
    let z = range("z", z.tensor, z.offset, desc.len())?;
    let bias = range("bias", held(bias.weights)?, bias.offset, dim)?;
    check_extent("state", state.offset, desc.len(), state.tensor.len())?;
    let s = &mut state.tensor[state.offset..state.offset + desc.len()];
    for (i, (s, &zv)) in s.iter_mut().zip(z).enumerate() {
        let keep = kept(sigmoid(bias[i % dim]));
        *s = *s * keep + zv * (1.0 - keep);
    }
    Ok(())
}

/// The reference kernels with fault `F`.
pub struct Broken<F> {
    inner: Reference<Heap>,
    calls: u64,
    fault: PhantomData<F>,
}

/// The factory of [`Broken`] kernels.
pub struct BrokenBackend<F>(PhantomData<F>);

impl<F: FaultKind> Backend for BrokenBackend<F> {
    type Kernels = Broken<F>;
    const NAME: &'static str = F::NAME;

    fn create() -> Result<Broken<F>, Skip> {
        Ok(Broken { inner: Reference::new(Heap), calls: 0, fault: PhantomData })
    }

    fn core_error(error: &CoreError) -> Option<CoreError> {
        Some(*error)
    }
}

fn range<'a>(what: &'static str, v: &'a [f32], offset: usize, len: usize) -> Result<&'a [f32], CoreError> {
    check_extent(what, offset, len, v.len())?;
    Ok(&v[offset..offset + len])
}

impl<F: FaultKind> Storage for Broken<F> {
    type Error = CoreError;
    type Tensor = Vec<f32>;
    type Weights = Params;
    type Tokens = Vec<u32>;

    fn alloc_tensor(&mut self, len: usize) -> Result<Vec<f32>, CoreError> {
        self.inner.alloc_tensor(len)
    }
    fn alloc_weights(&mut self, len: usize, dtype: WeightDtype) -> Result<Params, CoreError> {
        self.inner.alloc_weights(len, dtype)
    }
    fn alloc_tokens(&mut self, len: usize) -> Result<Vec<u32>, CoreError> {
        self.inner.alloc_tokens(len)
    }
    fn tensor_len(tensor: &Vec<f32>) -> usize {
        tensor.len()
    }
    fn weights_len(weights: &Params) -> usize {
        weights.len()
    }
    fn tokens_len(tokens: &Vec<u32>) -> usize {
        tokens.len()
    }
    fn write_tensor(&mut self, dst: &mut Vec<f32>, offset: usize, src: &[f32]) -> Result<(), CoreError> {
        self.inner.write_tensor(dst, offset, src)
    }
    fn read_tensor(&mut self, src: &Vec<f32>, offset: usize, dst: &mut [f32]) -> Result<(), CoreError> {
        self.inner.read_tensor(src, offset, dst)
    }
    fn write_weights(&mut self, dst: &mut Params, offset: usize, src: WeightData<'_>) -> Result<(), CoreError> {
        self.inner.write_weights(dst, offset, src)
    }
    fn write_tokens(&mut self, dst: &mut Vec<u32>, offset: usize, src: &[u32]) -> Result<(), CoreError> {
        self.inner.write_tokens(dst, offset, src)
    }
    fn sync(&mut self) -> Result<(), CoreError> {
        Ok(())
    }
}

impl<F: FaultKind> Broken<F> {
    /// The reference's attention with the window and the bias changed by the fault.
    #[allow(clippy::too_many_arguments)]
    fn faulty_attention(
        &mut self,
        q: View<'_, Vec<f32>>,
        k: View<'_, Vec<f32>>,
        v: View<'_, Vec<f32>>,
        scale: WeightView<'_, Params>,
        bias: Option<WeightView<'_, Params>>,
        out: ViewMut<'_, Vec<f32>>,
        desc: Attention,
    ) -> KResult<Self> {
        let (batch, heads, dh, width) = (desc.batch(), desc.heads(), desc.head_dim(), desc.width());
        let q = range("q", q.tensor, q.offset, desc.query_len())?;
        let k = range("k", k.tensor, k.offset, desc.key_len())?;
        let v = range("v", v.tensor, v.offset, desc.key_len())?;
        let scale = range("scale", held(scale.weights)?, scale.offset, heads)?;
        let bias = match bias {
            Some(b) => Some(range("bias", held(b.weights)?, b.offset, heads * T5_BUCKETS)?),
            None => None,
        };
        check_extent("out", out.offset, desc.query_len(), out.tensor.len())?;
        let offset = match (desc.mask(), bias) {
            (Mask::Window { offset, .. }, _) => offset,
            (Mask::None, None) => 0,
            (Mask::None, Some(_)) => {
                return Err(CoreError::InvalidShape { what: "a position bias needs a window mask" })
            }
        };
        for i in 0..desc.queries() {
            let visible = desc.visible_keys(i);
            let keys = match (F::FAULT, desc.mask()) {
                (Fault::SelfInWindow, Mask::Window { .. }) => visible.start + 1..visible.end + 1,
                (Fault::WindowOffByOne, Mask::Window { .. }) => visible.start + 1..visible.end,
                (Fault::CacheIgnored, Mask::Window { offset, .. }) => visible.start.max(offset)..visible.end,
                _ => visible,
            };
            for b in 0..batch {
                for h in 0..heads {
                    let a = if desc.abs_scale() { scale[h].abs() } else { scale[h] };
                    let at = |p: usize| (p * batch + b) * width + h * dh;
                    // Where key `p` of this row and head is read from.
                    let key_at = |p: usize| match F::FAULT {
                        Fault::KeysOfFirstRow => p * batch * width + h * dh,
                        _ => at(p),
                    };
                    let key = |j: usize, c: usize| match F::FAULT {
                        Fault::CachedKeysRounded if j < offset => f16::from_f32(k[key_at(j) + c]).to_f32(),
                        _ => k[key_at(j) + c],
                    };
                    let logit = |j: usize| -> f32 {
                        let dot: f64 = (0..dh).map(|c| q[at(i) + c] as f64 * key(j, c) as f64).sum();
                        let t5 = bias.map_or(0.0, |t| t[h * T5_BUCKETS + t5_bucket(i + offset - j)]);
                        match F::FAULT {
                            Fault::BiasAfterScale => a * dot as f32 + t5,
                            _ => a * (dot as f32 + t5),
                        }
                    };
                    let floor = if F::FAULT == Fault::NoSafeFloor { f32::NEG_INFINITY } else { SAFE_SOFTMAX_FLOOR };
                    let max = keys.clone().map(logit).fold(floor, f32::max);
                    let mut denominator =
                        if F::FAULT == Fault::NoSafeFloor { 0.0 } else { ((SAFE_SOFTMAX_FLOOR - max) as f64).exp() };
                    let mut acc = vec![0f64; dh];
                    for j in keys.clone() {
                        let p = ((logit(j) - max) as f64).exp();
                        denominator += p;
                        for (c, a) in acc.iter_mut().enumerate() {
                            *a += p * v[key_at(j) + c] as f64;
                        }
                    }
                    for (c, a) in acc.iter().enumerate() {
                        let value = if denominator > 0.0 { a / denominator } else { 0.0 };
                        out.tensor[out.offset + at(i) + c] = value as f32;
                    }
                }
            }
        }
        Ok(())
    }
}

impl<F: FaultKind> Kernels for Broken<F> {
    fn embed(
        &mut self,
        tokens: &Vec<u32>,
        token_offset: usize,
        table: WeightView<'_, Params>,
        out: ViewMut<'_, Vec<f32>>,
        desc: Embed,
    ) -> KResult<Self> {
        if F::FAULT == Fault::EmbedNextRow {
            let vocab = desc.vocab() as u32;
            let next: Vec<u32> = tokens.iter().map(|&t| if t < vocab { (t + 1) % vocab } else { t }).collect();
            return self.inner.embed(&next, token_offset, table, out, desc);
        }
        self.inner.embed(tokens, token_offset, table, out, desc)
    }

    fn rms_norm(
        &mut self,
        x: View<'_, Vec<f32>>,
        scale: WeightView<'_, Params>,
        mut out: ViewMut<'_, Vec<f32>>,
        desc: Rows,
    ) -> KResult<Self> {
        self.inner.rms_norm(x, scale, out.reborrow(), desc)?;
        if F::FAULT == Fault::RmsNormLastElementDropped && desc.dim() > 1 {
            // Rescaled from the right normalisation to the faulty one.
            let dim = desc.dim();
            let rows = range("x", x.tensor, x.offset, desc.len())?;
            for (r, row) in rows.chunks_exact(dim).enumerate() {
                let square = |v: &[f32]| v.iter().map(|&e| e as f64 * e as f64).sum::<f64>() / dim as f64;
                let eps = brt_core::primitives::RMS_EPSILON as f64;
                let ratio = ((square(row) + eps) / (square(&row[..dim - 1]) + eps)).sqrt() as f32;
                let at = out.offset + r * dim;
                out.tensor[at..at + dim].iter_mut().for_each(|y| *y *= ratio);
            }
        }
        if F::FAULT == Fault::Nondeterministic && !desc.is_empty() {
            // A bounded drift (at most 1.5e-7) that depends on how many calls came
            // before, with no short period: tolerances never notice it.
            self.calls += 1;
            let hash = self.calls.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 60;
            out.tensor[out.offset] += 1e-8 * hash as f32;
        }
        Ok(())
    }

    fn add_positions(
        &mut self,
        x: ViewMut<'_, Vec<f32>>,
        table: WeightView<'_, Params>,
        desc: Positions,
    ) -> KResult<Self> {
        if F::FAULT == Fault::PositionsFirstRowOnly && desc.batch() > 1 {
            let (dim, batch) = (desc.dim(), desc.batch());
            let before = range("x", x.tensor, x.offset, desc.len())?.to_vec();
            let offset = x.offset;
            self.inner.add_positions(ViewMut::new(&mut *x.tensor, offset), table, desc)?;
            for p in 0..desc.positions() {
                for b in 1..batch {
                    let at = (p * batch + b) * dim;
                    x.tensor[offset + at..offset + at + dim].copy_from_slice(&before[at..at + dim]);
                }
            }
            return Ok(());
        }
        self.inner.add_positions(x, table, desc)
    }

    fn l2_normalize(&mut self, x: ViewMut<'_, Vec<f32>>, desc: Heads) -> KResult<Self> {
        if F::FAULT == Fault::L2LastHeadSkipped {
            let (width, dh) = (desc.width(), desc.head_dim());
            let before = range("x", x.tensor, x.offset, desc.len())?.to_vec();
            let offset = x.offset;
            self.inner.l2_normalize(ViewMut::new(&mut *x.tensor, offset), desc)?;
            for r in 0..desc.rows() {
                let at = r * width + width - dh;
                x.tensor[offset + at..offset + at + dh].copy_from_slice(&before[at..at + dh]);
            }
            return Ok(());
        }
        self.inner.l2_normalize(x, desc)
    }

    fn matmul(
        &mut self,
        x: View<'_, Vec<f32>>,
        w: WeightView<'_, Params>,
        out: ViewMut<'_, Vec<f32>>,
        desc: Matmul,
    ) -> KResult<Self> {
        if F::FAULT == Fault::MatmulLastRowSkipped && desc.m() > 1 {
            let n = desc.n();
            let last = out.offset + (desc.m() - 1) * n;
            let kept = range("out", out.tensor, last, n)?.to_vec();
            let offset = out.offset;
            self.inner.matmul(x, w, ViewMut::new(&mut *out.tensor, offset), desc)?;
            out.tensor[last..last + n].copy_from_slice(&kept);
            return Ok(());
        }
        self.inner.matmul(x, w, out, desc)
    }

    fn attention(
        &mut self,
        q: View<'_, Vec<f32>>,
        k: View<'_, Vec<f32>>,
        v: View<'_, Vec<f32>>,
        scale: WeightView<'_, Params>,
        bias: Option<WeightView<'_, Params>>,
        out: ViewMut<'_, Vec<f32>>,
        desc: Attention,
    ) -> KResult<Self> {
        match F::FAULT {
            Fault::SelfInWindow
            | Fault::WindowOffByOne
            | Fault::BiasAfterScale
            | Fault::NoSafeFloor
            | Fault::CacheIgnored
            | Fault::KeysOfFirstRow
            | Fault::CachedKeysRounded => self.faulty_attention(q, k, v, scale, bias, out, desc),
            _ => self.inner.attention(q, k, v, scale, bias, out, desc),
        }
    }

    fn linear_attention(
        &mut self,
        q: View<'_, Vec<f32>>,
        k: View<'_, Vec<f32>>,
        v: View<'_, Vec<f32>>,
        scale: WeightView<'_, Params>,
        mut state: ViewMut<'_, Vec<f32>>,
        out: ViewMut<'_, Vec<f32>>,
        desc: LinearAttention,
    ) -> KResult<Self> {
        if F::FAULT == Fault::LinearForgetsState {
            check_extent("state", state.offset, desc.state_len(), state.tensor.len())?;
            state.tensor[state.offset..state.offset + desc.state_len()].fill(0.0);
        }
        self.inner.linear_attention(q, k, v, scale, state.reborrow(), out, desc)
    }

    fn gate_fixed(
        &mut self,
        state: ViewMut<'_, Vec<f32>>,
        z: View<'_, Vec<f32>>,
        bias: WeightView<'_, Params>,
        desc: Rows,
    ) -> KResult<Self> {
        match F::FAULT {
            Fault::FrozenState => Ok(()),
            // Keeps 1 - g of the state instead of g.
            Fault::GateRolesSwapped => gate_fixed_keeping(state, z, bias, desc, |g| 1.0 - g),
            Fault::GateSlightlyLow => gate_fixed_keeping(state, z, bias, desc, |g| g * 0.9999),
            _ => self.inner.gate_fixed(state, z, bias, desc),
        }
    }

    fn gate_lstm(
        &mut self,
        state: ViewMut<'_, Vec<f32>>,
        z: View<'_, Vec<f32>>,
        forget: View<'_, Vec<f32>>,
        input: View<'_, Vec<f32>>,
        forget_bias: WeightView<'_, Params>,
        input_bias: WeightView<'_, Params>,
        desc: Rows,
    ) -> KResult<Self> {
        match F::FAULT {
            Fault::FrozenState => Ok(()),
            Fault::GateRolesSwapped => self.inner.gate_lstm(state, z, input, forget, input_bias, forget_bias, desc),
            _ => self.inner.gate_lstm(state, z, forget, input, forget_bias, input_bias, desc),
        }
    }

    fn copy(&mut self, src: View<'_, Vec<f32>>, dst: ViewMut<'_, Vec<f32>>, len: usize) -> KResult<Self> {
        if F::FAULT == Fault::UncheckedCopy {
            // Indexing without the extent check: panics on a short buffer.
            dst.tensor[dst.offset..dst.offset + len].copy_from_slice(&src.tensor[src.offset..src.offset + len]);
            return Ok(());
        }
        self.inner.copy(src, dst, len)
    }

    fn fill(&mut self, dst: ViewMut<'_, Vec<f32>>, runs: Strided, value: f32) -> KResult<Self> {
        if F::FAULT == Fault::FillSkipsLastRun && runs.count() > 1 {
            check_extent("fill", dst.offset, runs.extent(), dst.tensor.len())?;
            let fewer = Strided::new(runs.count() - 1, runs.len(), runs.stride())?;
            return self.inner.fill(dst, fewer, value);
        }
        self.inner.fill(dst, runs, value)
    }

    fn copy_weights(
        &mut self,
        src: WeightView<'_, Params>,
        dst: ViewMut<'_, Vec<f32>>,
        runs: Strided,
    ) -> KResult<Self> {
        self.inner.copy_weights(src, dst, runs)
    }
}
