//! Reverse-mode differentiation of the core's own forward pass.
//!
//! [`Recorder`] wraps a backend that has [`Gradients`] and is itself a backend:
//! while recording, each kernel call runs on the wrapped backend and is written to
//! a tape together with copies of the inputs its backward needs. [`Recorder::backward`]
//! then walks the tape in reverse, turning the gradient of each kernel's output into
//! gradients of its inputs and of the parameters. Because the core's `Stream` is
//! written against `Kernels`, this differentiates exactly what inference runs
//! (blocks, pieces, feedback, resets, carried caches) with no second copy of the
//! model's algebra.
//!
//! Buffers are tracked by identity; a buffer region that a kernel overwrote gets a
//! zero gradient before the kernel's inputs receive theirs, so regions reused as
//! scratch are handled exactly. Values that were never written during the recording
//! (the caches and states carried in from before) simply collect gradients that
//! nobody reads: truncated back-propagation.

use crate::error::{Error, Result};
use brt_core::desc::{Activation, Attention, Embed, Heads, LinearAttention, Matmul, Positions, Rows, Strided};
use brt_core::{CoreError, Gradients, KResult, Kernels, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
use std::collections::HashMap;

/// A buffer of the wrapped backend with the identity the tape refers to it by.
#[derive(Debug)]
pub struct Tracked<T> {
    inner: T,
    id: usize,
}

impl<T> Tracked<T> {
    /// The wrapped backend's buffer.
    pub fn inner(&self) -> &T {
        &self.inner
    }
    /// The wrapped backend's buffer, writable (changes are not recorded).
    pub fn inner_mut(&mut self) -> &mut T {
        &mut self.inner
    }
    /// The buffer's identity.
    pub fn id(&self) -> usize {
        self.id
    }
}

/// A region of a tracked buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Region {
    id: usize,
    offset: usize,
}

/// A saved copy on the tape.
type Saved = usize;

/// One recorded kernel call.
#[derive(Debug)]
enum Entry {
    Embed {
        tokens: Vec<u32>,
        table: Region,
        out: Region,
        desc: Embed,
    },
    RmsNorm {
        x: (Region, Saved),
        scale: Region,
        out: Region,
        desc: Rows,
    },
    AddPositions {
        x: Region,
        table: Region,
        desc: Positions,
    },
    L2Normalize {
        x: (Region, Saved),
        desc: Heads,
    },
    Matmul {
        x: (Region, Saved),
        w: Region,
        out: (Region, Option<Saved>),
        desc: Matmul,
    },
    Attention {
        q: (Region, Saved),
        k: (Region, Saved),
        v: (Region, Saved),
        scale: Region,
        bias: Option<Region>,
        out: Region,
        desc: Attention,
    },
    LinearAttention {
        q: (Region, Saved),
        k: (Region, Saved),
        v: (Region, Saved),
        scale: Region,
        state: (Region, Saved),
        out: Region,
        desc: LinearAttention,
    },
    GateFixed {
        state: (Region, Saved),
        z: (Region, Saved),
        bias: Region,
        desc: Rows,
    },
    GateLstm {
        state: (Region, Saved),
        z: (Region, Saved),
        forget: (Region, Saved),
        input: (Region, Saved),
        forget_bias: Region,
        input_bias: Region,
        desc: Rows,
    },
    Copy {
        src: Region,
        dst: Region,
        len: usize,
    },
    Fill {
        dst: Region,
        runs: Strided,
    },
    CopyWeights {
        src: Region,
        dst: Region,
        runs: Strided,
    },
}

/// A backend that records what it computes, so it can be differentiated.
pub struct Recorder<K: Gradients> {
    inner: K,
    /// Length of every tracked activation buffer (by id).
    tensor_lens: Vec<usize>,
    /// Times each activation buffer was written (by id), to share saved copies.
    versions: Vec<u64>,
    /// Length of every tracked parameter buffer (by id).
    weight_lens: Vec<usize>,
    /// Host copies of token buffers (by id), for the embedding's backward.
    token_mirrors: Vec<Vec<u32>>,
    recording: bool,
    tape: Vec<Entry>,
    saved: Vec<K::Tensor>,
    saved_index: HashMap<(Region, usize, u64), Saved>,
    grads: Vec<Option<K::Tensor>>,
    weight_grads: Vec<Option<K::Tensor>>,
}

impl<K: Gradients> std::fmt::Debug for Recorder<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("tape", &self.tape.len())
            .field("saved", &self.saved.len())
            .finish_non_exhaustive()
    }
}

fn core_error<K: Storage>(e: K::Error) -> Error
where
    Error: From<K::Error>,
{
    Error::from(e)
}

impl<K: Gradients> Recorder<K> {
    /// Wraps `inner`; nothing is recorded until [`Recorder::start`].
    pub fn new(inner: K) -> Self {
        Recorder {
            inner,
            tensor_lens: Vec::new(),
            versions: Vec::new(),
            weight_lens: Vec::new(),
            token_mirrors: Vec::new(),
            recording: false,
            tape: Vec::new(),
            saved: Vec::new(),
            saved_index: HashMap::new(),
            grads: Vec::new(),
            weight_grads: Vec::new(),
        }
    }

    /// The wrapped backend.
    pub fn inner(&mut self) -> &mut K {
        &mut self.inner
    }

    /// Forgets the previous tape and gradients, and records from now on.
    pub fn start(&mut self) {
        self.tape.clear();
        self.saved.clear();
        self.saved_index.clear();
        self.grads.iter_mut().for_each(|g| *g = None);
        self.weight_grads.iter_mut().for_each(|g| *g = None);
        self.recording = true;
    }

    /// Stops recording (the tape is kept for [`Recorder::backward`]).
    pub fn stop(&mut self) {
        self.recording = false;
    }

    /// Kernel calls on the tape.
    pub fn tape_len(&self) -> usize {
        self.tape.len()
    }

    /// Elements held in saved copies.
    pub fn saved_len(&self) -> usize {
        self.saved.iter().map(K::tensor_len).sum()
    }

    /// A saved copy of `view[..len]` as it is now (shared while the buffer is
    /// unchanged).
    fn save(&mut self, view: View<'_, Tracked<K::Tensor>>, len: usize) -> std::result::Result<Saved, K::Error> {
        let region = Region { id: view.tensor.id, offset: view.offset };
        let key = (region, len, self.versions[region.id]);
        if let Some(&saved) = self.saved_index.get(&key) {
            return Ok(saved);
        }
        let mut copy = self.inner.alloc_tensor(len)?;
        self.inner.copy(View::new(&view.tensor.inner, view.offset), ViewMut::new(&mut copy, 0), len)?;
        self.saved.push(copy);
        self.saved_index.insert(key, self.saved.len() - 1);
        Ok(self.saved.len() - 1)
    }

    fn written(&mut self, id: usize) {
        self.versions[id] += 1;
    }
}

impl<K: Gradients> Recorder<K>
where
    Error: From<K::Error>,
{
    /// Back-propagates from `seed`, the gradient of the loss with respect to
    /// `tensor[offset .. offset + seed.len()]` (e.g. the logits). `weights` are the
    /// parameters the recorded forward read (all of them must be this buffer).
    pub fn backward(
        &mut self,
        weights: &Tracked<K::Weights>,
        tensor: &Tracked<K::Tensor>,
        offset: usize,
        seed: &[f32],
    ) -> Result<()> {
        self.recording = false;
        let region = Region { id: tensor.id, offset };
        let mut g = self.grad(region.id)?;
        self.inner.write_tensor(&mut g, offset, seed).map_err(core_error::<K>)?;
        self.grads[region.id] = Some(g);
        let tape = std::mem::take(&mut self.tape);
        let result = tape.iter().rev().try_for_each(|entry| self.backward_entry(entry, weights));
        self.tape = tape;
        result
    }

    /// Reads the gradient of the parameters `weights` (zeros if none flowed).
    pub fn weight_gradient(&mut self, weights: &Tracked<K::Weights>, out: &mut [f32]) -> Result<()> {
        match self.weight_grads.get(weights.id).and_then(Option::as_ref) {
            Some(g) => self.inner.read_tensor(g, 0, out).map_err(core_error::<K>),
            None => {
                out.fill(0.0);
                Ok(())
            }
        }
    }

    /// The gradient buffer of activation buffer `id`, taken out (zeroed if new).
    fn grad(&mut self, id: usize) -> Result<K::Tensor> {
        match self.grads.get_mut(id).and_then(Option::take) {
            Some(g) => Ok(g),
            None => self.inner.alloc_tensor(self.tensor_lens[id]).map_err(core_error::<K>),
        }
    }

    fn put_grad(&mut self, id: usize, g: K::Tensor) {
        self.grads[id] = Some(g);
    }

    /// A zeroed temporary of `len` elements.
    fn temp(&mut self, len: usize) -> Result<K::Tensor> {
        self.inner.alloc_tensor(len).map_err(core_error::<K>)
    }

    /// A copy of the gradient region `region[..len]`.
    fn grad_copy(&mut self, region: Region, len: usize) -> Result<K::Tensor> {
        let mut t = self.temp(len)?;
        let g = self.grad(region.id)?;
        let r = self.inner.copy(View::new(&g, region.offset), ViewMut::new(&mut t, 0), len);
        self.put_grad(region.id, g);
        r.map_err(core_error::<K>)?;
        Ok(t)
    }

    /// Sets the gradient region to zero (the forward overwrote it).
    fn clear_grad(&mut self, region: Region, runs: Strided) -> Result<()> {
        let mut g = self.grad(region.id)?;
        let r = self.inner.fill(ViewMut::new(&mut g, region.offset), runs, 0.0);
        self.put_grad(region.id, g);
        r.map_err(core_error::<K>)
    }

    /// Adds `t[..len]` into the gradient region.
    fn add_grad(&mut self, region: Region, t: &K::Tensor, len: usize) -> Result<()> {
        let mut g = self.grad(region.id)?;
        let r = self.inner.add_assign(View::new(t, 0), ViewMut::new(&mut g, region.offset), len);
        self.put_grad(region.id, g);
        r.map_err(core_error::<K>)
    }

    /// Replaces the gradient region by `t[..len]`.
    fn set_grad(&mut self, region: Region, t: &K::Tensor, len: usize) -> Result<()> {
        let mut g = self.grad(region.id)?;
        let r = self.inner.copy(View::new(t, 0), ViewMut::new(&mut g, region.offset), len);
        self.put_grad(region.id, g);
        r.map_err(core_error::<K>)
    }

    /// Adds `t[..len]` into the parameter gradient region.
    fn add_weight_grad(&mut self, region: Region, t: &K::Tensor, len: usize) -> Result<()> {
        let mut g = match self.weight_grads.get_mut(region.id).and_then(Option::take) {
            Some(g) => g,
            None => self.inner.alloc_tensor(self.weight_lens[region.id]).map_err(core_error::<K>)?,
        };
        let r = self.inner.add_assign(View::new(t, 0), ViewMut::new(&mut g, region.offset), len);
        self.weight_grads[region.id] = Some(g);
        r.map_err(core_error::<K>)
    }

    fn backward_entry(&mut self, entry: &Entry, weights: &Tracked<K::Weights>) -> Result<()> {
        let contiguous = Strided::contiguous;
        let err = core_error::<K>;
        let w_at = |region: Region| -> Result<WeightView<'_, K::Weights>> {
            if region.id != weights.id {
                return Err(Error::Invalid(
                    "the recorded forward read parameters other than those given to backward".into(),
                ));
            }
            Ok(WeightView::new(&weights.inner, region.offset))
        };
        match *entry {
            Entry::Embed { ref tokens, table, out, desc } => {
                let n = desc.count() * desc.dim();
                let d_out = self.grad_copy(out, n)?;
                self.clear_grad(out, contiguous(n))?;
                let mut ids = self.inner.alloc_tokens(tokens.len()).map_err(err)?;
                self.inner.write_tokens(&mut ids, 0, tokens).map_err(err)?;
                let table_len = desc.vocab() * desc.dim();
                let mut d_table = self.temp(table_len)?;
                self.inner
                    .embed_backward(&ids, 0, View::new(&d_out, 0), ViewMut::new(&mut d_table, 0), desc)
                    .map_err(err)?;
                self.add_weight_grad(table, &d_table, table_len)
            }
            Entry::RmsNorm { x: (x, x_saved), scale, out, desc } => {
                let n = desc.len();
                let d_out = self.grad_copy(out, n)?;
                self.clear_grad(out, contiguous(n))?;
                let (mut d_x, mut d_scale) = (self.temp(n)?, self.temp(desc.dim())?);
                self.inner
                    .rms_norm_backward(
                        View::new(&self.saved[x_saved], 0),
                        w_at(scale)?,
                        View::new(&d_out, 0),
                        ViewMut::new(&mut d_x, 0),
                        ViewMut::new(&mut d_scale, 0),
                        desc,
                    )
                    .map_err(err)?;
                self.add_grad(x, &d_x, n)?;
                self.add_weight_grad(scale, &d_scale, desc.dim())
            }
            Entry::AddPositions { x, table, desc } => {
                let d_x = self.grad_copy(x, desc.len())?;
                let table_len = desc.positions() * desc.dim();
                let mut d_table = self.temp(table_len)?;
                self.inner
                    .add_positions_backward(View::new(&d_x, 0), ViewMut::new(&mut d_table, 0), desc)
                    .map_err(err)?;
                self.add_weight_grad(table, &d_table, table_len)
            }
            Entry::L2Normalize { x: (x, saved), desc } => {
                let mut d = self.grad_copy(x, desc.len())?;
                self.inner
                    .l2_normalize_backward(View::new(&self.saved[saved], 0), ViewMut::new(&mut d, 0), desc)
                    .map_err(err)?;
                self.set_grad(x, &d, desc.len())
            }
            Entry::Matmul { x: (x, x_saved), w, out: (out, out_saved), desc } => {
                let (m, k, n) = (desc.m(), desc.k(), desc.n());
                let mut d_out = self.grad_copy(out, m * n)?;
                let (mut d_x, mut d_w) = (self.temp(m * k)?, self.temp(k * n)?);
                // Without a saved output the activation is the identity and the
                // output is not read.
                let placeholder;
                let out_view = match out_saved {
                    Some(s) => View::new(&self.saved[s], 0),
                    None => {
                        placeholder = self.temp(m * n)?;
                        View::new(&placeholder, 0)
                    }
                };
                self.inner
                    .matmul_backward(
                        View::new(&self.saved[x_saved], 0),
                        w_at(w)?,
                        out_view,
                        ViewMut::new(&mut d_out, 0),
                        Some(ViewMut::new(&mut d_x, 0)),
                        Some(ViewMut::new(&mut d_w, 0)),
                        desc,
                    )
                    .map_err(err)?;
                if desc.accumulates() {
                    self.set_grad(out, &d_out, m * n)?;
                } else {
                    self.clear_grad(out, contiguous(m * n))?;
                }
                self.add_grad(x, &d_x, m * k)?;
                self.add_weight_grad(w, &d_w, k * n)
            }
            Entry::Attention { q: (q, qs), k: (k, ks), v: (v, vs), scale, bias, out, desc } => {
                let (nq, nk) = (desc.query_len(), desc.key_len());
                let d_out = self.grad_copy(out, nq)?;
                self.clear_grad(out, contiguous(nq))?;
                let (mut d_q, mut d_k, mut d_v) = (self.temp(nq)?, self.temp(nk)?, self.temp(nk)?);
                let (mut d_scale, mut d_bias) =
                    (self.temp(desc.heads())?, self.temp(desc.heads() * brt_core::params::T5_BUCKETS)?);
                let bias_view = match bias {
                    Some(b) => Some(w_at(b)?),
                    None => None,
                };
                let d_bias_view = bias.map(|_| ViewMut::new(&mut d_bias, 0));
                self.inner
                    .attention_backward(
                        View::new(&self.saved[qs], 0),
                        View::new(&self.saved[ks], 0),
                        View::new(&self.saved[vs], 0),
                        w_at(scale)?,
                        bias_view,
                        View::new(&d_out, 0),
                        ViewMut::new(&mut d_q, 0),
                        ViewMut::new(&mut d_k, 0),
                        ViewMut::new(&mut d_v, 0),
                        ViewMut::new(&mut d_scale, 0),
                        d_bias_view,
                        desc,
                    )
                    .map_err(err)?;
                self.add_grad(q, &d_q, nq)?;
                self.add_grad(k, &d_k, nk)?;
                self.add_grad(v, &d_v, nk)?;
                self.add_weight_grad(scale, &d_scale, desc.heads())?;
                if let Some(b) = bias {
                    self.add_weight_grad(b, &d_bias, desc.heads() * brt_core::params::T5_BUCKETS)?;
                }
                Ok(())
            }
            Entry::LinearAttention { q: (q, qs), k: (k, ks), v: (v, vs), scale, state: (state, ss), out, desc } => {
                let n = desc.token_len();
                let d_out = self.grad_copy(out, n)?;
                self.clear_grad(out, contiguous(n))?;
                let mut d_state = self.grad_copy(state, desc.state_len())?;
                let (mut d_q, mut d_k, mut d_v, mut d_scale) =
                    (self.temp(n)?, self.temp(n)?, self.temp(n)?, self.temp(desc.heads())?);
                self.inner
                    .linear_attention_backward(
                        View::new(&self.saved[qs], 0),
                        View::new(&self.saved[ks], 0),
                        View::new(&self.saved[vs], 0),
                        w_at(scale)?,
                        View::new(&self.saved[ss], 0),
                        View::new(&d_out, 0),
                        ViewMut::new(&mut d_state, 0),
                        ViewMut::new(&mut d_q, 0),
                        ViewMut::new(&mut d_k, 0),
                        ViewMut::new(&mut d_v, 0),
                        ViewMut::new(&mut d_scale, 0),
                        desc,
                    )
                    .map_err(err)?;
                self.set_grad(state, &d_state, desc.state_len())?;
                self.add_grad(q, &d_q, n)?;
                self.add_grad(k, &d_k, n)?;
                self.add_grad(v, &d_v, n)?;
                self.add_weight_grad(scale, &d_scale, desc.heads())
            }
            Entry::GateFixed { state: (state, ss), z: (z, zs), bias, desc } => {
                let n = desc.len();
                let mut d_state = self.grad_copy(state, n)?;
                let (mut d_z, mut d_bias) = (self.temp(n)?, self.temp(desc.dim())?);
                self.inner
                    .gate_fixed_backward(
                        View::new(&self.saved[ss], 0),
                        View::new(&self.saved[zs], 0),
                        w_at(bias)?,
                        ViewMut::new(&mut d_state, 0),
                        ViewMut::new(&mut d_z, 0),
                        ViewMut::new(&mut d_bias, 0),
                        desc,
                    )
                    .map_err(err)?;
                self.set_grad(state, &d_state, n)?;
                self.add_grad(z, &d_z, n)?;
                self.add_weight_grad(bias, &d_bias, desc.dim())
            }
            Entry::GateLstm {
                state: (state, ss),
                z: (z, zs),
                forget: (forget, fs),
                input: (input, is),
                forget_bias,
                input_bias,
                desc,
            } => {
                let n = desc.len();
                let mut d_state = self.grad_copy(state, n)?;
                let (mut d_z, mut d_f, mut d_i) = (self.temp(n)?, self.temp(n)?, self.temp(n)?);
                let (mut d_bf, mut d_bi) = (self.temp(desc.dim())?, self.temp(desc.dim())?);
                self.inner
                    .gate_lstm_backward(
                        View::new(&self.saved[ss], 0),
                        View::new(&self.saved[zs], 0),
                        View::new(&self.saved[fs], 0),
                        View::new(&self.saved[is], 0),
                        w_at(forget_bias)?,
                        w_at(input_bias)?,
                        ViewMut::new(&mut d_state, 0),
                        ViewMut::new(&mut d_z, 0),
                        ViewMut::new(&mut d_f, 0),
                        ViewMut::new(&mut d_i, 0),
                        ViewMut::new(&mut d_bf, 0),
                        ViewMut::new(&mut d_bi, 0),
                        desc,
                    )
                    .map_err(err)?;
                self.set_grad(state, &d_state, n)?;
                self.add_grad(z, &d_z, n)?;
                self.add_grad(forget, &d_f, n)?;
                self.add_grad(input, &d_i, n)?;
                self.add_weight_grad(forget_bias, &d_bf, desc.dim())?;
                self.add_weight_grad(input_bias, &d_bi, desc.dim())
            }
            Entry::Copy { src, dst, len } => {
                let d = self.grad_copy(dst, len)?;
                self.clear_grad(dst, contiguous(len))?;
                self.add_grad(src, &d, len)
            }
            Entry::Fill { dst, runs } => self.clear_grad(dst, runs),
            Entry::CopyWeights { src, dst, runs } => {
                let d = self.grad_copy(dst, runs.extent())?;
                self.clear_grad(dst, runs)?;
                let mut d_src = self.temp(runs.total())?;
                self.inner.gather_runs_add(View::new(&d, 0), ViewMut::new(&mut d_src, 0), runs).map_err(err)?;
                self.add_weight_grad(src, &d_src, runs.total())
            }
        }
    }
}

fn region<T>(view: &View<'_, Tracked<T>>) -> Region {
    Region { id: view.tensor.id, offset: view.offset }
}

fn region_mut<T>(view: &ViewMut<'_, Tracked<T>>) -> Region {
    Region { id: view.tensor.id, offset: view.offset }
}

fn weight_region<T>(view: &WeightView<'_, Tracked<T>>) -> Region {
    Region { id: view.weights.id, offset: view.offset }
}

fn inner<'a, T>(view: View<'a, Tracked<T>>) -> View<'a, T> {
    View::new(&view.tensor.inner, view.offset)
}

fn inner_mut<'a, T>(view: ViewMut<'a, Tracked<T>>) -> ViewMut<'a, T> {
    ViewMut::new(&mut view.tensor.inner, view.offset)
}

fn inner_weights<'a, T>(view: WeightView<'a, Tracked<T>>) -> WeightView<'a, T> {
    WeightView::new(&view.weights.inner, view.offset)
}

impl<K: Gradients> Storage for Recorder<K> {
    type Error = K::Error;
    type Tensor = Tracked<K::Tensor>;
    type Weights = Tracked<K::Weights>;
    type Tokens = Tracked<K::Tokens>;

    fn alloc_tensor(&mut self, len: usize) -> std::result::Result<Self::Tensor, K::Error> {
        let inner = self.inner.alloc_tensor(len)?;
        self.tensor_lens.push(len);
        self.versions.push(0);
        self.grads.push(None);
        Ok(Tracked { inner, id: self.tensor_lens.len() - 1 })
    }
    fn alloc_weights(&mut self, len: usize, dtype: WeightDtype) -> std::result::Result<Self::Weights, K::Error> {
        let inner = self.inner.alloc_weights(len, dtype)?;
        self.weight_lens.push(len);
        self.weight_grads.push(None);
        Ok(Tracked { inner, id: self.weight_lens.len() - 1 })
    }
    fn alloc_tokens(&mut self, len: usize) -> std::result::Result<Self::Tokens, K::Error> {
        let inner = self.inner.alloc_tokens(len)?;
        self.token_mirrors.push(vec![0; len]);
        Ok(Tracked { inner, id: self.token_mirrors.len() - 1 })
    }
    fn tensor_len(tensor: &Self::Tensor) -> usize {
        K::tensor_len(&tensor.inner)
    }
    fn weights_len(weights: &Self::Weights) -> usize {
        K::weights_len(&weights.inner)
    }
    fn tokens_len(tokens: &Self::Tokens) -> usize {
        K::tokens_len(&tokens.inner)
    }
    fn write_tensor(
        &mut self,
        dst: &mut Self::Tensor,
        offset: usize,
        src: &[f32],
    ) -> std::result::Result<(), K::Error> {
        self.written(dst.id);
        self.inner.write_tensor(&mut dst.inner, offset, src)
    }
    fn read_tensor(&mut self, src: &Self::Tensor, offset: usize, dst: &mut [f32]) -> std::result::Result<(), K::Error> {
        self.inner.read_tensor(&src.inner, offset, dst)
    }
    fn write_weights(
        &mut self,
        dst: &mut Self::Weights,
        offset: usize,
        src: WeightData<'_>,
    ) -> std::result::Result<(), K::Error> {
        self.inner.write_weights(&mut dst.inner, offset, src)
    }
    fn write_tokens(
        &mut self,
        dst: &mut Self::Tokens,
        offset: usize,
        src: &[u32],
    ) -> std::result::Result<(), K::Error> {
        self.inner.write_tokens(&mut dst.inner, offset, src)?;
        let mirror = &mut self.token_mirrors[dst.id];
        match mirror.get_mut(offset..offset + src.len()) {
            Some(m) => m.copy_from_slice(src),
            None => {
                return Err(CoreError::BufferTooSmall {
                    what: "tokens write",
                    needed: offset + src.len(),
                    available: mirror.len(),
                }
                .into())
            }
        }
        Ok(())
    }
    fn sync(&mut self) -> std::result::Result<(), K::Error> {
        self.inner.sync()
    }
}

impl<K: Gradients> Kernels for Recorder<K> {
    fn embed(
        &mut self,
        tokens: &Self::Tokens,
        token_offset: usize,
        table: WeightView<'_, Self::Weights>,
        out: ViewMut<'_, Self::Tensor>,
        desc: Embed,
    ) -> KResult<Self> {
        let (t, o) = (weight_region(&table), region_mut(&out));
        self.inner.embed(&tokens.inner, token_offset, inner_weights(table), inner_mut(out), desc)?;
        self.written(o.id);
        if self.recording {
            let ids = self.token_mirrors[tokens.id][token_offset..token_offset + desc.count()].to_vec();
            self.tape.push(Entry::Embed { tokens: ids, table: t, out: o, desc });
        }
        Ok(())
    }

    fn rms_norm(
        &mut self,
        x: View<'_, Self::Tensor>,
        scale: WeightView<'_, Self::Weights>,
        out: ViewMut<'_, Self::Tensor>,
        desc: Rows,
    ) -> KResult<Self> {
        let saved = if self.recording { Some(self.save(x, desc.len())?) } else { None };
        let (xr, s, o) = (region(&x), weight_region(&scale), region_mut(&out));
        self.inner.rms_norm(inner(x), inner_weights(scale), inner_mut(out), desc)?;
        self.written(o.id);
        if let Some(saved) = saved {
            self.tape.push(Entry::RmsNorm { x: (xr, saved), scale: s, out: o, desc });
        }
        Ok(())
    }

    fn add_positions(
        &mut self,
        x: ViewMut<'_, Self::Tensor>,
        table: WeightView<'_, Self::Weights>,
        desc: Positions,
    ) -> KResult<Self> {
        let (xr, t) = (region_mut(&x), weight_region(&table));
        self.inner.add_positions(inner_mut(x), inner_weights(table), desc)?;
        self.written(xr.id);
        if self.recording {
            self.tape.push(Entry::AddPositions { x: xr, table: t, desc });
        }
        Ok(())
    }

    fn l2_normalize(&mut self, x: ViewMut<'_, Self::Tensor>, desc: Heads) -> KResult<Self> {
        let xr = region_mut(&x);
        let saved = if self.recording { Some(self.save(View::new(&*x.tensor, x.offset), desc.len())?) } else { None };
        self.inner.l2_normalize(inner_mut(x), desc)?;
        self.written(xr.id);
        if let Some(saved) = saved {
            self.tape.push(Entry::L2Normalize { x: (xr, saved), desc });
        }
        Ok(())
    }

    fn matmul(
        &mut self,
        x: View<'_, Self::Tensor>,
        w: WeightView<'_, Self::Weights>,
        out: ViewMut<'_, Self::Tensor>,
        desc: Matmul,
    ) -> KResult<Self> {
        let saved = if self.recording { Some(self.save(x, desc.m() * desc.k())?) } else { None };
        let (xr, wr, o) = (region(&x), weight_region(&w), region_mut(&out));
        self.inner.matmul(inner(x), inner_weights(w), ViewMut::new(&mut out.tensor.inner, out.offset), desc)?;
        self.written(o.id);
        if let Some(saved) = saved {
            // The activation's derivative is read from the output.
            let out_saved = match desc.activation_kind() {
                Activation::Identity => None,
                _ => Some(self.save(View::new(&*out.tensor, o.offset), desc.m() * desc.n())?),
            };
            self.tape.push(Entry::Matmul { x: (xr, saved), w: wr, out: (o, out_saved), desc });
        }
        Ok(())
    }

    fn attention(
        &mut self,
        q: View<'_, Self::Tensor>,
        k: View<'_, Self::Tensor>,
        v: View<'_, Self::Tensor>,
        scale: WeightView<'_, Self::Weights>,
        bias: Option<WeightView<'_, Self::Weights>>,
        out: ViewMut<'_, Self::Tensor>,
        desc: Attention,
    ) -> KResult<Self> {
        let saved = if self.recording {
            Some((self.save(q, desc.query_len())?, self.save(k, desc.key_len())?, self.save(v, desc.key_len())?))
        } else {
            None
        };
        let (qr, kr, vr, s, b, o) = (
            region(&q),
            region(&k),
            region(&v),
            weight_region(&scale),
            bias.as_ref().map(weight_region),
            region_mut(&out),
        );
        self.inner.attention(
            inner(q),
            inner(k),
            inner(v),
            inner_weights(scale),
            bias.map(inner_weights),
            inner_mut(out),
            desc,
        )?;
        self.written(o.id);
        if let Some((qs, ks, vs)) = saved {
            self.tape.push(Entry::Attention { q: (qr, qs), k: (kr, ks), v: (vr, vs), scale: s, bias: b, out: o, desc });
        }
        Ok(())
    }

    fn linear_attention(
        &mut self,
        q: View<'_, Self::Tensor>,
        k: View<'_, Self::Tensor>,
        v: View<'_, Self::Tensor>,
        scale: WeightView<'_, Self::Weights>,
        state: ViewMut<'_, Self::Tensor>,
        out: ViewMut<'_, Self::Tensor>,
        desc: LinearAttention,
    ) -> KResult<Self> {
        let n = desc.token_len();
        let saved = if self.recording {
            Some((
                self.save(q, n)?,
                self.save(k, n)?,
                self.save(v, n)?,
                self.save(View::new(&*state.tensor, state.offset), desc.state_len())?,
            ))
        } else {
            None
        };
        let (qr, kr, vr, s, st, o) =
            (region(&q), region(&k), region(&v), weight_region(&scale), region_mut(&state), region_mut(&out));
        self.inner.linear_attention(
            inner(q),
            inner(k),
            inner(v),
            inner_weights(scale),
            inner_mut(state),
            inner_mut(out),
            desc,
        )?;
        self.written(st.id);
        self.written(o.id);
        if let Some((qs, ks, vs, ss)) = saved {
            self.tape.push(Entry::LinearAttention {
                q: (qr, qs),
                k: (kr, ks),
                v: (vr, vs),
                scale: s,
                state: (st, ss),
                out: o,
                desc,
            });
        }
        Ok(())
    }

    fn gate_fixed(
        &mut self,
        state: ViewMut<'_, Self::Tensor>,
        z: View<'_, Self::Tensor>,
        bias: WeightView<'_, Self::Weights>,
        desc: Rows,
    ) -> KResult<Self> {
        let n = desc.len();
        let saved = if self.recording {
            Some((self.save(View::new(&*state.tensor, state.offset), n)?, self.save(z, n)?))
        } else {
            None
        };
        let (st, zr, b) = (region_mut(&state), region(&z), weight_region(&bias));
        self.inner.gate_fixed(inner_mut(state), inner(z), inner_weights(bias), desc)?;
        self.written(st.id);
        if let Some((ss, zs)) = saved {
            self.tape.push(Entry::GateFixed { state: (st, ss), z: (zr, zs), bias: b, desc });
        }
        Ok(())
    }

    fn gate_lstm(
        &mut self,
        state: ViewMut<'_, Self::Tensor>,
        z: View<'_, Self::Tensor>,
        forget: View<'_, Self::Tensor>,
        input: View<'_, Self::Tensor>,
        forget_bias: WeightView<'_, Self::Weights>,
        input_bias: WeightView<'_, Self::Weights>,
        desc: Rows,
    ) -> KResult<Self> {
        let n = desc.len();
        let saved = if self.recording {
            Some((
                self.save(View::new(&*state.tensor, state.offset), n)?,
                self.save(z, n)?,
                self.save(forget, n)?,
                self.save(input, n)?,
            ))
        } else {
            None
        };
        let (st, zr, fr, ir) = (region_mut(&state), region(&z), region(&forget), region(&input));
        let (bf, bi) = (weight_region(&forget_bias), weight_region(&input_bias));
        self.inner.gate_lstm(
            inner_mut(state),
            inner(z),
            inner(forget),
            inner(input),
            inner_weights(forget_bias),
            inner_weights(input_bias),
            desc,
        )?;
        self.written(st.id);
        if let Some((ss, zs, fs, is)) = saved {
            self.tape.push(Entry::GateLstm {
                state: (st, ss),
                z: (zr, zs),
                forget: (fr, fs),
                input: (ir, is),
                forget_bias: bf,
                input_bias: bi,
                desc,
            });
        }
        Ok(())
    }

    fn copy(&mut self, src: View<'_, Self::Tensor>, dst: ViewMut<'_, Self::Tensor>, len: usize) -> KResult<Self> {
        let (s, d) = (region(&src), region_mut(&dst));
        self.inner.copy(inner(src), inner_mut(dst), len)?;
        self.written(d.id);
        if self.recording {
            self.tape.push(Entry::Copy { src: s, dst: d, len });
        }
        Ok(())
    }

    fn fill(&mut self, dst: ViewMut<'_, Self::Tensor>, runs: Strided, value: f32) -> KResult<Self> {
        let d = region_mut(&dst);
        self.inner.fill(inner_mut(dst), runs, value)?;
        self.written(d.id);
        if self.recording {
            self.tape.push(Entry::Fill { dst: d, runs });
        }
        Ok(())
    }

    fn copy_weights(
        &mut self,
        src: WeightView<'_, Self::Weights>,
        dst: ViewMut<'_, Self::Tensor>,
        runs: Strided,
    ) -> KResult<Self> {
        let (s, d) = (weight_region(&src), region_mut(&dst));
        self.inner.copy_weights(inner_weights(src), inner_mut(dst), runs)?;
        self.written(d.id);
        if self.recording {
            self.tape.push(Entry::CopyWeights { src: s, dst: d, runs });
        }
        Ok(())
    }
}
