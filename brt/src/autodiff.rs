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
//! scratch are handled exactly.
//!
//! Speed: backward kernels add (`+=`) into the gradient buffers of the inputs and
//! parameters directly when the buffers involved are distinct (the usual case:
//! the core gives every role its own buffer), so most steps need no temporary and
//! no extra pass; otherwise they go through temporaries. Temporaries, saved
//! copies and gradient buffers are kept for reuse by length: a training step
//! needs the same ones as the previous step, and reusing them saves the
//! allocator's page faults and, for copies, the zeroing. Saved copies go through
//! [`Gradients::copy_to_tape`]: nothing reads them before the backward, so the
//! CPU writes them past its caches (a tape is hundreds of megabytes; a cached copy
//! would first read every line it overwrites). Values that were never written during the recording
//! (the caches and states carried in from before) simply collect gradients that
//! nobody reads: truncated back-propagation.
//!
//! The gradient of a product `y = x w` with respect to `w` is `x`:
//!
//! ```
//! use brt::autodiff::Recorder;
//! use brt_core::desc::Matmul;
//! use brt_core::{Kernels, Reference, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
//! use brt_heap::Heap;
//!
//! let mut k = Recorder::new(Reference::new(Heap));
//! // y = x w with x (1, 2) = [1, 2] and w (2, 1) = [3, 4].
//! let mut w = k.alloc_weights(2, WeightDtype::F32)?;
//! k.write_weights(&mut w, 0, WeightData::F32(&[3.0, 4.0]))?;
//! let mut x = k.alloc_tensor(2)?;
//! k.write_tensor(&mut x, 0, &[1.0, 2.0])?;
//! let mut y = k.alloc_tensor(1)?;
//! k.start();
//! k.matmul(View::new(&x, 0), WeightView::new(&w, 0), ViewMut::new(&mut y, 0), Matmul::new(1, 2, 1)?)?;
//! k.stop();
//! k.backward(&w, &y, 0, &[1.0])?; // the gradient of the loss y
//! let mut grad = [0f32; 2];
//! k.weight_gradient(&w, &mut grad)?;
//! assert_eq!(grad, [1.0, 2.0]); // dy/dw = x
//! # Ok::<(), brt::Error>(())
//! ```

use crate::error::{Error, Result};
use brt_core::desc::{Activation, Attention, Embed, Heads, LinearAttention, Matmul, Positions, Rows, Strided};
use brt_core::{CoreError, Gradients, KResult, Kernels, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
use std::collections::HashMap;

/// A buffer of the wrapped backend with the identity the tape refers to it by.
///
/// Every buffer gets its own identity and wraps a buffer of the backend:
///
/// ```
/// # use brt::autodiff::Recorder;
/// # use brt_core::desc::Matmul;
/// # use brt_core::{Kernels, Reference, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
/// # use brt_heap::Heap;
/// # let mut k = Recorder::new(Reference::new(Heap));
/// # // y = x w with x (1, 2) = [1, 2] and w (2, 1) = [3, 4].
/// # let mut w = k.alloc_weights(2, WeightDtype::F32)?;
/// # k.write_weights(&mut w, 0, WeightData::F32(&[3.0, 4.0]))?;
/// # let mut x = k.alloc_tensor(2)?;
/// # k.write_tensor(&mut x, 0, &[1.0, 2.0])?;
/// # let mut y = k.alloc_tensor(1)?;
///
/// assert_ne!(x.id(), y.id());
/// assert_eq!(Reference::<Heap>::tensor_len(x.inner()), 2);
/// # Ok::<(), brt::Error>(())
/// ```
#[derive(Debug)]
pub struct Tracked<T> {
    inner: T,
    id: usize,
}

impl<T> Tracked<T> {
    /// The wrapped backend's buffer.
    ///
    /// It can be read through the wrapped backend:
    ///
    /// ```
    /// # use brt::autodiff::Recorder;
    /// # use brt_core::desc::Matmul;
    /// # use brt_core::{Kernels, Reference, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
    /// # use brt_heap::Heap;
    /// # let mut k = Recorder::new(Reference::new(Heap));
    /// # // y = x w with x (1, 2) = [1, 2] and w (2, 1) = [3, 4].
    /// # let mut w = k.alloc_weights(2, WeightDtype::F32)?;
    /// # k.write_weights(&mut w, 0, WeightData::F32(&[3.0, 4.0]))?;
    /// # let mut x = k.alloc_tensor(2)?;
    /// # k.write_tensor(&mut x, 0, &[1.0, 2.0])?;
    /// # let mut y = k.alloc_tensor(1)?;
    ///
    /// let mut values = [0f32; 2];
    /// k.inner().read_tensor(x.inner(), 0, &mut values)?;
    /// assert_eq!(values, [1.0, 2.0]);
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn inner(&self) -> &T {
        &self.inner
    }
    /// The wrapped backend's buffer, writable (changes are not recorded).
    ///
    /// A write through the wrapped backend puts nothing on the tape:
    ///
    /// ```
    /// # use brt::autodiff::Recorder;
    /// # use brt_core::desc::Matmul;
    /// # use brt_core::{Kernels, Reference, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
    /// # use brt_heap::Heap;
    /// # let mut k = Recorder::new(Reference::new(Heap));
    /// # // y = x w with x (1, 2) = [1, 2] and w (2, 1) = [3, 4].
    /// # let mut w = k.alloc_weights(2, WeightDtype::F32)?;
    /// # k.write_weights(&mut w, 0, WeightData::F32(&[3.0, 4.0]))?;
    /// # let mut x = k.alloc_tensor(2)?;
    /// # k.write_tensor(&mut x, 0, &[1.0, 2.0])?;
    /// # let mut y = k.alloc_tensor(1)?;
    ///
    /// k.start();
    /// k.inner().write_tensor(x.inner_mut(), 0, &[5.0, 6.0])?;
    /// assert_eq!(k.tape_len(), 0);
    /// let mut values = [0f32; 2];
    /// k.read_tensor(&x, 0, &mut values)?;
    /// assert_eq!(values, [5.0, 6.0]);
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn inner_mut(&mut self) -> &mut T {
        &mut self.inner
    }
    /// The buffer's identity.
    ///
    /// Tensors are numbered in the order they are made:
    ///
    /// ```
    /// # use brt::autodiff::Recorder;
    /// # use brt_core::desc::Matmul;
    /// # use brt_core::{Kernels, Reference, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
    /// # use brt_heap::Heap;
    /// # let mut k = Recorder::new(Reference::new(Heap));
    /// # // y = x w with x (1, 2) = [1, 2] and w (2, 1) = [3, 4].
    /// # let mut w = k.alloc_weights(2, WeightDtype::F32)?;
    /// # k.write_weights(&mut w, 0, WeightData::F32(&[3.0, 4.0]))?;
    /// # let mut x = k.alloc_tensor(2)?;
    /// # k.write_tensor(&mut x, 0, &[1.0, 2.0])?;
    /// # let mut y = k.alloc_tensor(1)?;
    ///
    /// assert_eq!((x.id(), y.id()), (0, 1));
    /// # Ok::<(), brt::Error>(())
    /// ```
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
///
/// It computes what the wrapped backend computes, recording or not (the
/// examples here use the buffers `x`, `w` and `y` of the module's example):
///
/// ```
/// # use brt::autodiff::Recorder;
/// # use brt_core::desc::Matmul;
/// # use brt_core::{Kernels, Reference, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
/// # use brt_heap::Heap;
/// # let mut k = Recorder::new(Reference::new(Heap));
/// # // y = x w with x (1, 2) = [1, 2] and w (2, 1) = [3, 4].
/// # let mut w = k.alloc_weights(2, WeightDtype::F32)?;
/// # k.write_weights(&mut w, 0, WeightData::F32(&[3.0, 4.0]))?;
/// # let mut x = k.alloc_tensor(2)?;
/// # k.write_tensor(&mut x, 0, &[1.0, 2.0])?;
/// # let mut y = k.alloc_tensor(1)?;
/// k.start();
/// k.matmul(View::new(&x, 0), WeightView::new(&w, 0), ViewMut::new(&mut y, 0), Matmul::new(1, 2, 1)?)?;
/// k.stop();
///
/// let mut out = [0f32; 1];
/// k.read_tensor(&y, 0, &mut out)?;
/// assert_eq!(out, [11.0]); // 1 * 3 + 2 * 4
/// assert_eq!(k.tape_len(), 1);
/// # Ok::<(), brt::Error>(())
/// ```
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
    /// Buffers of the wrapped backend not in use, by length.
    pool: HashMap<usize, Vec<K::Tensor>>,
    /// A buffer passed as the unread output of an identity product's backward.
    placeholder: Option<K::Tensor>,
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
    ///
    /// ```
    /// # use brt::autodiff::Recorder;
    /// # use brt_core::desc::Matmul;
    /// # use brt_core::{Kernels, Reference, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
    /// # use brt_heap::Heap;
    /// # let mut k = Recorder::new(Reference::new(Heap));
    /// # // y = x w with x (1, 2) = [1, 2] and w (2, 1) = [3, 4].
    /// # let mut w = k.alloc_weights(2, WeightDtype::F32)?;
    /// # k.write_weights(&mut w, 0, WeightData::F32(&[3.0, 4.0]))?;
    /// # let mut x = k.alloc_tensor(2)?;
    /// # k.write_tensor(&mut x, 0, &[1.0, 2.0])?;
    /// # let mut y = k.alloc_tensor(1)?;
    ///
    /// k.matmul(View::new(&x, 0), WeightView::new(&w, 0), ViewMut::new(&mut y, 0), Matmul::new(1, 2, 1)?)?;
    /// assert_eq!(k.tape_len(), 0);
    /// # Ok::<(), brt::Error>(())
    /// ```
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
            pool: HashMap::new(),
            placeholder: None,
        }
    }

    /// The wrapped backend.
    ///
    /// Work done on it directly is not recorded:
    ///
    /// ```
    /// # use brt::autodiff::Recorder;
    /// # use brt_core::desc::Matmul;
    /// # use brt_core::{Kernels, Reference, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
    /// # use brt_heap::Heap;
    /// # let mut k = Recorder::new(Reference::new(Heap));
    /// # // y = x w with x (1, 2) = [1, 2] and w (2, 1) = [3, 4].
    /// # let mut w = k.alloc_weights(2, WeightDtype::F32)?;
    /// # k.write_weights(&mut w, 0, WeightData::F32(&[3.0, 4.0]))?;
    /// # let mut x = k.alloc_tensor(2)?;
    /// # k.write_tensor(&mut x, 0, &[1.0, 2.0])?;
    /// # let mut y = k.alloc_tensor(1)?;
    ///
    /// k.start();
    /// let mut plain = k.inner().alloc_tensor(3)?;
    /// k.inner().write_tensor(&mut plain, 0, &[1.0, 2.0, 3.0])?;
    /// assert_eq!(k.tape_len(), 0);
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn inner(&mut self) -> &mut K {
        &mut self.inner
    }

    /// Forgets the previous tape and gradients, and records from now on.
    ///
    /// Starting again forgets what the previous recording held:
    ///
    /// ```
    /// # use brt::autodiff::Recorder;
    /// # use brt_core::desc::Matmul;
    /// # use brt_core::{Kernels, Reference, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
    /// # use brt_heap::Heap;
    /// # let mut k = Recorder::new(Reference::new(Heap));
    /// # // y = x w with x (1, 2) = [1, 2] and w (2, 1) = [3, 4].
    /// # let mut w = k.alloc_weights(2, WeightDtype::F32)?;
    /// # k.write_weights(&mut w, 0, WeightData::F32(&[3.0, 4.0]))?;
    /// # let mut x = k.alloc_tensor(2)?;
    /// # k.write_tensor(&mut x, 0, &[1.0, 2.0])?;
    /// # let mut y = k.alloc_tensor(1)?;
    /// k.start();
    /// k.matmul(View::new(&x, 0), WeightView::new(&w, 0), ViewMut::new(&mut y, 0), Matmul::new(1, 2, 1)?)?;
    /// k.stop();
    ///
    /// assert_eq!(k.tape_len(), 1);
    /// k.start();
    /// assert_eq!((k.tape_len(), k.saved_len()), (0, 0));
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn start(&mut self) {
        self.tape.clear();
        self.saved_index.clear();
        let saved = std::mem::take(&mut self.saved);
        let grads = self.grads.iter_mut().chain(self.weight_grads.iter_mut()).filter_map(Option::take);
        let unused: Vec<K::Tensor> = saved.into_iter().chain(grads).collect();
        unused.into_iter().for_each(|t| self.recycle(t));
        self.recording = true;
    }

    /// Stops recording (the tape is kept for [`Recorder::backward`]).
    ///
    /// ```
    /// # use brt::autodiff::Recorder;
    /// # use brt_core::desc::Matmul;
    /// # use brt_core::{Kernels, Reference, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
    /// # use brt_heap::Heap;
    /// # let mut k = Recorder::new(Reference::new(Heap));
    /// # // y = x w with x (1, 2) = [1, 2] and w (2, 1) = [3, 4].
    /// # let mut w = k.alloc_weights(2, WeightDtype::F32)?;
    /// # k.write_weights(&mut w, 0, WeightData::F32(&[3.0, 4.0]))?;
    /// # let mut x = k.alloc_tensor(2)?;
    /// # k.write_tensor(&mut x, 0, &[1.0, 2.0])?;
    /// # let mut y = k.alloc_tensor(1)?;
    /// k.start();
    /// k.matmul(View::new(&x, 0), WeightView::new(&w, 0), ViewMut::new(&mut y, 0), Matmul::new(1, 2, 1)?)?;
    /// k.stop();
    ///
    /// k.matmul(View::new(&x, 0), WeightView::new(&w, 0), ViewMut::new(&mut y, 0), Matmul::new(1, 2, 1)?)?;
    /// assert_eq!(k.tape_len(), 1); // only the recorded call
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn stop(&mut self) {
        self.recording = false;
    }

    /// Kernel calls on the tape.
    ///
    /// ```
    /// # use brt::autodiff::Recorder;
    /// # use brt_core::desc::Matmul;
    /// # use brt_core::{Kernels, Reference, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
    /// # use brt_heap::Heap;
    /// # let mut k = Recorder::new(Reference::new(Heap));
    /// # // y = x w with x (1, 2) = [1, 2] and w (2, 1) = [3, 4].
    /// # let mut w = k.alloc_weights(2, WeightDtype::F32)?;
    /// # k.write_weights(&mut w, 0, WeightData::F32(&[3.0, 4.0]))?;
    /// # let mut x = k.alloc_tensor(2)?;
    /// # k.write_tensor(&mut x, 0, &[1.0, 2.0])?;
    /// # let mut y = k.alloc_tensor(1)?;
    ///
    /// k.start();
    /// for _ in 0..3 {
    ///     k.matmul(View::new(&x, 0), WeightView::new(&w, 0), ViewMut::new(&mut y, 0), Matmul::new(1, 2, 1)?)?;
    /// }
    /// assert_eq!(k.tape_len(), 3);
    /// # Ok::<(), brt::Error>(())
    /// ```
    pub fn tape_len(&self) -> usize {
        self.tape.len()
    }

    /// Elements held in saved copies.
    ///
    /// A product saves its input for its backward, once while the input is
    /// unchanged:
    ///
    /// ```
    /// # use brt::autodiff::Recorder;
    /// # use brt_core::desc::Matmul;
    /// # use brt_core::{Kernels, Reference, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
    /// # use brt_heap::Heap;
    /// # let mut k = Recorder::new(Reference::new(Heap));
    /// # // y = x w with x (1, 2) = [1, 2] and w (2, 1) = [3, 4].
    /// # let mut w = k.alloc_weights(2, WeightDtype::F32)?;
    /// # k.write_weights(&mut w, 0, WeightData::F32(&[3.0, 4.0]))?;
    /// # let mut x = k.alloc_tensor(2)?;
    /// # k.write_tensor(&mut x, 0, &[1.0, 2.0])?;
    /// # let mut y = k.alloc_tensor(1)?;
    ///
    /// k.start();
    /// for _ in 0..3 {
    ///     k.matmul(View::new(&x, 0), WeightView::new(&w, 0), ViewMut::new(&mut y, 0), Matmul::new(1, 2, 1)?)?;
    /// }
    /// assert_eq!(k.saved_len(), 2);
    /// # Ok::<(), brt::Error>(())
    /// ```
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
        let mut copy = self.buffer(len)?;
        self.inner.copy_to_tape(View::new(&view.tensor.inner, view.offset), ViewMut::new(&mut copy, 0), len)?;
        self.saved.push(copy);
        self.saved_index.insert(key, self.saved.len() - 1);
        Ok(self.saved.len() - 1)
    }

    fn written(&mut self, id: usize) {
        self.versions[id] += 1;
    }

    /// A buffer of `len` elements with any contents (reused when one is free).
    fn buffer(&mut self, len: usize) -> std::result::Result<K::Tensor, K::Error> {
        match self.pool.get_mut(&len).and_then(Vec::pop) {
            Some(t) => Ok(t),
            None => self.inner.alloc_tensor(len),
        }
    }

    /// A zeroed buffer of `len` elements.
    fn zeroed(&mut self, len: usize) -> std::result::Result<K::Tensor, K::Error> {
        match self.pool.get_mut(&len).and_then(Vec::pop) {
            Some(mut t) => match self.inner.fill(ViewMut::new(&mut t, 0), Strided::contiguous(len), 0.0) {
                Ok(()) => Ok(t),
                Err(e) => {
                    self.recycle(t);
                    Err(e)
                }
            },
            None => self.inner.alloc_tensor(len),
        }
    }

    /// Keeps `t` for reuse.
    fn recycle(&mut self, t: K::Tensor) {
        self.pool.entry(K::tensor_len(&t)).or_default().push(t);
    }
}

impl<K: Gradients> Recorder<K>
where
    Error: From<K::Error>,
{
    /// Back-propagates from `seed`, the gradient of the loss with respect to
    /// `tensor[offset .. offset + seed.len()]` (e.g. the logits). `weights` are the
    /// parameters the recorded forward read (all of them must be this buffer).
    ///
    /// The seed scales the gradient:
    ///
    /// ```
    /// # use brt::autodiff::Recorder;
    /// # use brt_core::desc::Matmul;
    /// # use brt_core::{Kernels, Reference, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
    /// # use brt_heap::Heap;
    /// # let mut k = Recorder::new(Reference::new(Heap));
    /// # // y = x w with x (1, 2) = [1, 2] and w (2, 1) = [3, 4].
    /// # let mut w = k.alloc_weights(2, WeightDtype::F32)?;
    /// # k.write_weights(&mut w, 0, WeightData::F32(&[3.0, 4.0]))?;
    /// # let mut x = k.alloc_tensor(2)?;
    /// # k.write_tensor(&mut x, 0, &[1.0, 2.0])?;
    /// # let mut y = k.alloc_tensor(1)?;
    /// k.start();
    /// k.matmul(View::new(&x, 0), WeightView::new(&w, 0), ViewMut::new(&mut y, 0), Matmul::new(1, 2, 1)?)?;
    /// k.stop();
    ///
    /// k.backward(&w, &y, 0, &[0.5])?;
    /// let mut grad = [0f32; 2];
    /// k.weight_gradient(&w, &mut grad)?;
    /// assert_eq!(grad, [0.5, 1.0]);
    /// # Ok::<(), brt::Error>(())
    /// ```
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
        let r = self.inner.write_tensor(&mut g, offset, seed).map_err(core_error::<K>);
        self.grads[region.id] = Some(g);
        r?;
        let tape = std::mem::take(&mut self.tape);
        let result = tape.iter().rev().try_for_each(|entry| self.backward_entry(entry, weights));
        self.tape = tape;
        result
    }

    /// Reads the gradient of the parameters `weights` (zeros if none flowed).
    ///
    /// Before any backward, the gradient is zero:
    ///
    /// ```
    /// # use brt::autodiff::Recorder;
    /// # use brt_core::desc::Matmul;
    /// # use brt_core::{Kernels, Reference, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
    /// # use brt_heap::Heap;
    /// # let mut k = Recorder::new(Reference::new(Heap));
    /// # // y = x w with x (1, 2) = [1, 2] and w (2, 1) = [3, 4].
    /// # let mut w = k.alloc_weights(2, WeightDtype::F32)?;
    /// # k.write_weights(&mut w, 0, WeightData::F32(&[3.0, 4.0]))?;
    /// # let mut x = k.alloc_tensor(2)?;
    /// # k.write_tensor(&mut x, 0, &[1.0, 2.0])?;
    /// # let mut y = k.alloc_tensor(1)?;
    ///
    /// let mut grad = [9f32; 2];
    /// k.weight_gradient(&w, &mut grad)?;
    /// assert_eq!(grad, [0.0, 0.0]);
    /// # Ok::<(), brt::Error>(())
    /// ```
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
            None => self.zeroed(self.tensor_lens[id]).map_err(core_error::<K>),
        }
    }

    fn put_grad(&mut self, id: usize, g: K::Tensor) {
        self.grads[id] = Some(g);
    }

    /// The gradient buffers of `N` distinct activation buffers, taken out
    /// together; `None` when two ids are the same buffer.
    fn grads<const N: usize>(&mut self, ids: [usize; N]) -> Result<Option<[K::Tensor; N]>> {
        if (1..N).any(|i| ids[..i].contains(&ids[i])) {
            return Ok(None);
        }
        let mut taken = Vec::with_capacity(N);
        for &id in &ids {
            match self.grad(id) {
                Ok(g) => taken.push(g),
                Err(e) => {
                    self.put_grads(&ids[..taken.len()], taken);
                    return Err(e);
                }
            }
        }
        Ok(taken.try_into().ok())
    }

    /// As [`Recorder::grads`] for a kernel's output and inputs, which are distinct
    /// buffers by construction (a `ViewMut` and `View`s cannot borrow one buffer).
    fn output_grads<const N: usize>(&mut self, ids: [usize; N]) -> Result<[K::Tensor; N]> {
        self.grads(ids)?.ok_or_else(|| Error::Invalid("internal: a kernel's output and input are one buffer".into()))
    }

    fn put_grads(&mut self, ids: &[usize], grads: impl IntoIterator<Item = K::Tensor>) {
        for (&id, g) in ids.iter().zip(grads) {
            self.put_grad(id, g);
        }
    }

    /// The gradient buffer of parameter buffer `id`, taken out (zeroed if new).
    fn weight_grad(&mut self, id: usize) -> Result<K::Tensor> {
        match self.weight_grads.get_mut(id).and_then(Option::take) {
            Some(g) => Ok(g),
            None => self.zeroed(self.weight_lens[id]).map_err(core_error::<K>),
        }
    }

    /// A zeroed temporary of `len` elements.
    fn temp(&mut self, len: usize) -> Result<K::Tensor> {
        self.zeroed(len).map_err(core_error::<K>)
    }

    /// A copy of the gradient region `region[..len]`.
    fn grad_copy(&mut self, region: Region, len: usize) -> Result<K::Tensor> {
        let mut t = self.buffer(len).map_err(core_error::<K>)?;
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
        let mut g = self.weight_grad(region.id)?;
        let r = self.inner.add_assign(View::new(t, 0), ViewMut::new(&mut g, region.offset), len);
        self.weight_grads[region.id] = Some(g);
        r.map_err(core_error::<K>)
    }

    /// Runs `f` on the parameter gradient buffer `id` (taken out meanwhile).
    fn with_weight_grad<T>(&mut self, id: usize, f: impl FnOnce(&mut Self, &mut K::Tensor) -> Result<T>) -> Result<T> {
        let mut g = self.weight_grad(id)?;
        let r = f(self, &mut g);
        self.weight_grads[id] = Some(g);
        r
    }

    /// A buffer of at least `len` elements for an output a kernel will not read.
    fn placeholder(&mut self, len: usize) -> Result<K::Tensor> {
        match self.placeholder.take() {
            Some(t) if K::tensor_len(&t) >= len => Ok(t),
            _ => self.inner.alloc_tensor(len).map_err(core_error::<K>),
        }
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
        // Every arm reads the gradient of what the kernel wrote, adds the
        // gradients of its inputs, then clears what it overwrote. The kernels work
        // on the gradient buffers themselves where the buffers are distinct (a
        // kernel's output is never one of its inputs); inputs that share a buffer
        // (attention's q, k, v) go through temporaries added afterwards.
        match *entry {
            Entry::Embed { ref tokens, table, out, desc } => {
                let n = desc.count() * desc.dim();
                let mut ids = self.inner.alloc_tokens(tokens.len()).map_err(err)?;
                self.inner.write_tokens(&mut ids, 0, tokens).map_err(err)?;
                let g_out = self.grad(out.id)?;
                let r = self.with_weight_grad(table.id, |s, d_table| {
                    let d_out = View::new(&g_out, out.offset);
                    s.inner.embed_backward(&ids, 0, d_out, ViewMut::new(d_table, table.offset), desc).map_err(err)
                });
                self.put_grad(out.id, g_out);
                r?;
                self.clear_grad(out, contiguous(n))
            }
            Entry::RmsNorm { x: (x, x_saved), scale, out, desc } => {
                let n = desc.len();
                let [g_out, mut g_x] = self.output_grads([out.id, x.id])?;
                let r = self.with_weight_grad(scale.id, |s, d_scale| {
                    s.inner
                        .rms_norm_backward(
                            View::new(&s.saved[x_saved], 0),
                            w_at(scale)?,
                            View::new(&g_out, out.offset),
                            ViewMut::new(&mut g_x, x.offset),
                            ViewMut::new(d_scale, scale.offset),
                            desc,
                        )
                        .map_err(err)
                });
                self.put_grads(&[out.id, x.id], [g_out, g_x]);
                r?;
                self.clear_grad(out, contiguous(n))
            }
            Entry::AddPositions { x, table, desc } => {
                // The gradient of `x` passes through; the table's is its sum.
                let g_x = self.grad(x.id)?;
                let r = self.with_weight_grad(table.id, |s, d_table| {
                    let d_x = View::new(&g_x, x.offset);
                    s.inner.add_positions_backward(d_x, ViewMut::new(d_table, table.offset), desc).map_err(err)
                });
                self.put_grad(x.id, g_x);
                r
            }
            Entry::L2Normalize { x: (x, saved), desc } => {
                // In place: the gradient after becomes the gradient before.
                let mut g_x = self.grad(x.id)?;
                let r = self.inner.l2_normalize_backward(
                    View::new(&self.saved[saved], 0),
                    ViewMut::new(&mut g_x, x.offset),
                    desc,
                );
                self.put_grad(x.id, g_x);
                r.map_err(err)
            }
            Entry::Matmul { x: (x, x_saved), w, out: (out, out_saved), desc } => {
                let (m, n) = (desc.m(), desc.n());
                // Without a saved output the activation is the identity and the
                // output is not read.
                let placeholder = match out_saved {
                    Some(_) => None,
                    None => Some(self.placeholder(m * n)?),
                };
                // `match` rather than `?` so that the placeholder is kept on errors.
                let result = match self.output_grads([out.id, x.id]) {
                    Ok([mut g_out, mut g_x]) => {
                        let r = self.with_weight_grad(w.id, |s, d_w| {
                            let out_view = match (out_saved, &placeholder) {
                                (Some(saved), _) => View::new(&s.saved[saved], 0),
                                (None, Some(p)) => View::new(p, 0),
                                (None, None) => {
                                    return Err(Error::Invalid("internal: a product without its output".into()))
                                }
                            };
                            s.inner
                                .matmul_backward(
                                    View::new(&s.saved[x_saved], 0),
                                    w_at(w)?,
                                    out_view,
                                    ViewMut::new(&mut g_out, out.offset),
                                    Some(ViewMut::new(&mut g_x, x.offset)),
                                    Some(ViewMut::new(d_w, w.offset)),
                                    desc,
                                )
                                .map_err(err)
                        });
                        self.put_grads(&[out.id, x.id], [g_out, g_x]);
                        // The gradient region of `out` now holds d_z: the gradient
                        // of the value it had before when the product added to it.
                        r.and_then(|_| match desc.accumulates() {
                            true => Ok(()),
                            false => self.clear_grad(out, contiguous(m * n)),
                        })
                    }
                    Err(e) => Err(e),
                };
                if let Some(p) = placeholder {
                    self.placeholder = Some(p);
                }
                result
            }
            Entry::Attention { q: (q, qs), k: (k, ks), v: (v, vs), scale, bias, out, desc } => {
                let (nq, nk) = (desc.query_len(), desc.key_len());
                let bias_len = desc.heads() * brt_core::params::T5_BUCKETS;
                let (mut d_scale, mut d_bias) = (self.temp(desc.heads())?, self.temp(bias_len)?);
                let bias_view = match bias {
                    Some(b) => Some(w_at(b)?),
                    None => None,
                };
                let scale_view = w_at(scale)?;
                let ids = [q.id, k.id, v.id, out.id];
                let r = match self.grads(ids)? {
                    Some([mut g_q, mut g_k, mut g_v, g_out]) => {
                        let r = self.inner.attention_backward(
                            View::new(&self.saved[qs], 0),
                            View::new(&self.saved[ks], 0),
                            View::new(&self.saved[vs], 0),
                            scale_view,
                            bias_view,
                            View::new(&g_out, out.offset),
                            ViewMut::new(&mut g_q, q.offset),
                            ViewMut::new(&mut g_k, k.offset),
                            ViewMut::new(&mut g_v, v.offset),
                            ViewMut::new(&mut d_scale, 0),
                            bias.map(|_| ViewMut::new(&mut d_bias, 0)),
                            desc,
                        );
                        self.put_grads(&ids, [g_q, g_k, g_v, g_out]);
                        r.map_err(err).and_then(|_| self.clear_grad(out, contiguous(nq)))
                    }
                    None => {
                        let d_out = self.grad_copy(out, nq)?;
                        self.clear_grad(out, contiguous(nq))?;
                        let (mut d_q, mut d_k, mut d_v) = (self.temp(nq)?, self.temp(nk)?, self.temp(nk)?);
                        let r = self
                            .inner
                            .attention_backward(
                                View::new(&self.saved[qs], 0),
                                View::new(&self.saved[ks], 0),
                                View::new(&self.saved[vs], 0),
                                scale_view,
                                bias_view,
                                View::new(&d_out, 0),
                                ViewMut::new(&mut d_q, 0),
                                ViewMut::new(&mut d_k, 0),
                                ViewMut::new(&mut d_v, 0),
                                ViewMut::new(&mut d_scale, 0),
                                bias.map(|_| ViewMut::new(&mut d_bias, 0)),
                                desc,
                            )
                            .map_err(err)
                            .and_then(|_| self.add_grad(q, &d_q, nq))
                            .and_then(|_| self.add_grad(k, &d_k, nk))
                            .and_then(|_| self.add_grad(v, &d_v, nk));
                        [d_out, d_q, d_k, d_v].into_iter().for_each(|t| self.recycle(t));
                        r
                    }
                };
                let r = r.and_then(|_| self.add_weight_grad(scale, &d_scale, desc.heads())).and_then(|_| match bias {
                    Some(b) => self.add_weight_grad(b, &d_bias, bias_len),
                    None => Ok(()),
                });
                self.recycle(d_scale);
                self.recycle(d_bias);
                r
            }
            Entry::LinearAttention { q: (q, qs), k: (k, ks), v: (v, vs), scale, state: (state, ss), out, desc } => {
                let n = desc.token_len();
                let d_out = self.grad_copy(out, n)?;
                self.clear_grad(out, contiguous(n))?;
                let mut d_state = self.grad_copy(state, desc.state_len())?;
                let (mut d_q, mut d_k, mut d_v, mut d_scale) =
                    (self.temp(n)?, self.temp(n)?, self.temp(n)?, self.temp(desc.heads())?);
                let r = self
                    .inner
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
                    .map_err(err)
                    .and_then(|_| self.set_grad(state, &d_state, desc.state_len()))
                    .and_then(|_| self.add_grad(q, &d_q, n))
                    .and_then(|_| self.add_grad(k, &d_k, n))
                    .and_then(|_| self.add_grad(v, &d_v, n))
                    .and_then(|_| self.add_weight_grad(scale, &d_scale, desc.heads()));
                [d_out, d_state, d_q, d_k, d_v, d_scale].into_iter().for_each(|t| self.recycle(t));
                r
            }
            Entry::GateFixed { state: (state, ss), z: (z, zs), bias, desc } => {
                let [mut g_state, mut g_z] = self.output_grads([state.id, z.id])?;
                let r = self.with_weight_grad(bias.id, |s, d_bias| {
                    s.inner
                        .gate_fixed_backward(
                            View::new(&s.saved[ss], 0),
                            View::new(&s.saved[zs], 0),
                            w_at(bias)?,
                            ViewMut::new(&mut g_state, state.offset),
                            ViewMut::new(&mut g_z, z.offset),
                            ViewMut::new(d_bias, bias.offset),
                            desc,
                        )
                        .map_err(err)
                });
                self.put_grads(&[state.id, z.id], [g_state, g_z]);
                r
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
                let r = self
                    .inner
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
                    .map_err(err)
                    .and_then(|_| self.set_grad(state, &d_state, n))
                    .and_then(|_| self.add_grad(z, &d_z, n))
                    .and_then(|_| self.add_grad(forget, &d_f, n))
                    .and_then(|_| self.add_grad(input, &d_i, n))
                    .and_then(|_| self.add_weight_grad(forget_bias, &d_bf, desc.dim()))
                    .and_then(|_| self.add_weight_grad(input_bias, &d_bi, desc.dim()));
                [d_state, d_z, d_f, d_i, d_bf, d_bi].into_iter().for_each(|t| self.recycle(t));
                r
            }
            Entry::Copy { src, dst, len } => {
                let [g_dst, mut g_src] = self.output_grads([dst.id, src.id])?;
                let r = self.inner.add_assign(View::new(&g_dst, dst.offset), ViewMut::new(&mut g_src, src.offset), len);
                self.put_grads(&[dst.id, src.id], [g_dst, g_src]);
                r.map_err(err).and_then(|_| self.clear_grad(dst, contiguous(len)))
            }
            Entry::Fill { dst, runs } => self.clear_grad(dst, runs),
            Entry::CopyWeights { src, dst, runs } => {
                let g_dst = self.grad(dst.id)?;
                let r = self.with_weight_grad(src.id, |s, d_src| {
                    let d = View::new(&g_dst, dst.offset);
                    s.inner.gather_runs_add(d, ViewMut::new(d_src, src.offset), runs).map_err(err)
                });
                self.put_grad(dst.id, g_dst);
                r.and_then(|_| self.clear_grad(dst, runs))
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

#[cfg(test)]
mod tests {
    use super::*;
    use brt_core::desc::Mask;
    use brt_core::{Reference64, WeightDtype};
    use brt_heap::Heap;

    /// The parameter gradient of `direction . y` for `x = relu(input W)`,
    /// `a = attention(x, x, x)`, `y = rms(a) s`, with the attention reading `x` as
    /// it is (`shared`: q, k and v are one buffer, so its backward goes through
    /// temporaries) or three copies of it (its backward works on the gradient
    /// buffers directly).
    fn chain_gradient(shared: bool) -> Vec<f32> {
        let (m, n, heads) = (7, 6, 2);
        let mut k = Recorder::new(Reference64::new_f64(Heap));
        let mut rng = brt_core::init::SplitMix64::new(7);
        let mut random = |len: usize| (0..len).map(|_| (rng.uniform() * 2.0 - 1.0) as f32).collect::<Vec<f32>>();
        // Parameters: the product (n x n), the attention scale (heads), the norm scale (n).
        let (a_at, s_at) = (n * n, n * n + heads);
        let params = random(s_at + n);
        let mut w = k.alloc_weights(params.len(), WeightDtype::F32).unwrap();
        k.write_weights(&mut w, 0, WeightData::F32(&params)).unwrap();
        let len = m * n;
        let mut input = k.alloc_tensor(len).unwrap();
        k.write_tensor(&mut input, 0, &random(len)).unwrap();
        let mut buffers: Vec<Tracked<Vec<f64>>> = (0..6).map(|_| k.alloc_tensor(len).unwrap()).collect();
        let [x, q, kk, v, a, y] = &mut buffers[..] else { unreachable!() };
        let attention = Attention::new(1, m, m, heads, n / heads, Mask::None, false).unwrap();
        k.start();
        let relu = Matmul::new(m, n, n).unwrap().activation(Activation::Relu).alpha(0.7);
        k.matmul(View::new(&input, 0), WeightView::new(&w, 0), ViewMut::new(x, 0), relu).unwrap();
        let scale = WeightView::new(&w, a_at);
        if shared {
            let xv = View::new(&*x, 0);
            k.attention(xv, xv, xv, scale, None, ViewMut::new(a, 0), attention).unwrap();
        } else {
            for copy in [&mut *q, &mut *kk, &mut *v] {
                k.copy(View::new(&*x, 0), ViewMut::new(copy, 0), len).unwrap();
            }
            let (qv, kv, vv) = (View::new(&*q, 0), View::new(&*kk, 0), View::new(&*v, 0));
            k.attention(qv, kv, vv, scale, None, ViewMut::new(a, 0), attention).unwrap();
        }
        k.rms_norm(View::new(&*a, 0), WeightView::new(&w, s_at), ViewMut::new(y, 0), Rows::new(m, n).unwrap()).unwrap();
        k.stop();
        k.backward(&w, y, 0, &random(len)).unwrap();
        let mut grad = vec![0f32; params.len()];
        k.weight_gradient(&w, &mut grad).unwrap();
        assert!(grad.iter().all(|&g| g != 0.0), "every parameter takes a gradient here");
        grad
    }

    #[test]
    fn attention_reading_one_buffer_three_times_matches_three_copies() {
        let copies = chain_gradient(false);
        let shared = chain_gradient(true);
        for (i, (a, b)) in copies.iter().zip(&shared).enumerate() {
            assert!((a - b).abs() <= 1e-6 * (1.0 + a.abs()), "parameter {i}: copies {a}, shared {b}");
        }
    }

    #[test]
    fn a_second_step_reuses_buffers_and_gives_the_same_gradient() {
        // Buffers come back from the pool dirty: the same recording twice must
        // give the same gradient (temporaries and gradients are zeroed again).
        let mut k = Recorder::new(Reference64::new_f64(Heap));
        let (m, n) = (3, 4);
        let mut w = k.alloc_weights(n * n, WeightDtype::F32).unwrap();
        let values: Vec<f32> = (0..n * n).map(|i| (i as f32 * 0.37).sin()).collect();
        k.write_weights(&mut w, 0, WeightData::F32(&values)).unwrap();
        let mut x = k.alloc_tensor(m * n).unwrap();
        k.write_tensor(&mut x, 0, &values[..m * n]).unwrap();
        let mut y = k.alloc_tensor(m * n).unwrap();
        let mut run = |k: &mut Recorder<Reference64<Heap>>| {
            k.start();
            let desc = Matmul::new(m, n, n).unwrap().activation(Activation::Tanh);
            k.matmul(View::new(&x, 0), WeightView::new(&w, 0), ViewMut::new(&mut y, 0), desc).unwrap();
            k.matmul(View::new(&x, 0), WeightView::new(&w, 0), ViewMut::new(&mut y, 0), desc.accumulate()).unwrap();
            k.stop();
            k.backward(&w, &y, 0, &[1.0; 12]).unwrap();
            let mut grad = vec![0f32; n * n];
            k.weight_gradient(&w, &mut grad).unwrap();
            grad
        };
        let first = run(&mut k);
        k.start();
        assert!(!k.pool.is_empty(), "the first step's buffers are kept for the next");
        let second = run(&mut k);
        assert_eq!(first, second);
        assert!(first.iter().any(|&g| g != 0.0));
    }
}
