//! The CPU backend: [`Storage`] and [`Kernels`] over a source of host memory.

use crate::attention::{AttnCall, AttnTask};
use crate::gemm::{Gemm, GemmTask};
use crate::gemv::{GemvTask, GEMV_MAX_ROWS};
use crate::linear::{LinearCall, LinearTask};
use crate::parallel::{part, SendPtr, Workers};
use crate::rows::{AddPositions, L2Normalize, RmsNorm};
use crate::tiles::Tiles;
use crate::weights::{CpuWeights, WSlice};
use crate::{CpuError, Options, SimdLevel};
use brt_core::desc::{Attention, Embed, Heads, LinearAttention, Mask, Matmul, Positions, Rows, Strided};
use brt_core::params::T5_BUCKETS;
use brt_core::primitives::sigmoid;
use brt_core::{
    kernels::check_extent, ByteLayout, CoreError, HostMemory, KResult, Kernels, Storage, View, ViewMut, WeightData,
    WeightDtype, WeightView,
};

/// A task of [`Cpu::parallel_reduce`]: `(task, scratch, partial sums)`.
pub(crate) type ReduceBody<'a> = dyn Fn(usize, &mut [f32], &mut [f32]) + Sync + 'a;

/// The SIMD CPU backend over host memory `M` (the heap with [`crate::Heap`], or
/// the caller's slices with [`brt_core::Arena`]).
///
/// Activations are `M::F32`; parameters are [`CpuWeights`] (f32, or f16/bf16 at
/// half the memory); every kernel computes in f32. All scratch is taken from `M`
/// once, at construction (its size is [`Options::scratch_len`]): no kernel
/// allocates.
///
/// A 2x3 by 3x2 product, checked against the one computed by hand:
///
/// ```
/// use brt_core::desc::Matmul;
/// use brt_core::{Kernels, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
/// use brt_cpu::{Cpu, CpuError, Heap, Options};
///
/// let mut k = Cpu::with_options(Heap, Options::threads(1))?;
/// // x (2, 3) and w (3, 2), row-major.
/// let (x, w) = ([1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], [7.0f32, 8.0, 9.0, 10.0, 11.0, 12.0]);
/// let mut xt = k.alloc_tensor(6)?;
/// k.write_tensor(&mut xt, 0, &x)?;
/// let mut wt = k.alloc_weights(6, WeightDtype::F32)?;
/// k.write_weights(&mut wt, 0, WeightData::F32(&w))?;
/// let mut out = k.alloc_tensor(4)?;
/// let desc = Matmul::new(2, 3, 2)?;
/// k.matmul(View::new(&xt, 0), WeightView::new(&wt, 0), ViewMut::new(&mut out, 0), desc)?;
/// let mut y = [0f32; 4];
/// k.read_tensor(&out, 0, &mut y)?;
/// // [1*7 + 2*9 + 3*11, 1*8 + 2*10 + 3*12, 4*7 + 5*9 + 6*11, 4*8 + 5*10 + 6*12]
/// assert_eq!(y, [58.0, 64.0, 139.0, 154.0]);
/// # Ok::<(), CpuError>(())
/// ```
pub struct Cpu<M: HostMemory> {
    memory: M,
    level: SimdLevel,
    tile: (usize, usize),
    tiles: Tiles,
    max_head_dim: usize,
    scratch: M::F32,
    per_worker: usize,
    workers: Workers,
}

impl<M: HostMemory> core::fmt::Debug for Cpu<M> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Cpu")
            .field("level", &self.level)
            .field("threads", &self.workers.count())
            .field("max_head_dim", &self.max_head_dim)
            .field("tiles", &self.tiles)
            .finish_non_exhaustive()
    }
}

impl<M: HostMemory> Cpu<M> {
    /// The fastest supported level, one thread.
    ///
    /// The level is [`SimdLevel::detect`]'s, with the default tiles:
    ///
    /// ```
    /// use brt_cpu::{Cpu, Heap, SimdLevel, Tiles};
    ///
    /// let k = Cpu::new(Heap).unwrap();
    /// assert_eq!((k.level(), k.threads()), (SimdLevel::detect(), 1));
    /// assert_eq!(k.tiles(), Tiles::default_for(SimdLevel::detect()));
    /// ```
    pub fn new(memory: M) -> Result<Self, CpuError> {
        Cpu::with_options(memory, Options::default())
    }

    /// A forced SIMD level, one thread; an error if the CPU cannot run it.
    ///
    /// Every supported level builds; a level this CPU lacks (there is always
    /// one: x86-64 and aarch64 levels are never both supported) is refused:
    ///
    /// ```
    /// use brt_cpu::{Cpu, CpuError, Heap, SimdLevel};
    ///
    /// for level in SimdLevel::available() {
    ///     assert_eq!(Cpu::with_level(Heap, level).unwrap().level(), level);
    /// }
    /// let missing = SimdLevel::ALL.into_iter().find(|l| !l.is_supported()).unwrap();
    /// let err = Cpu::with_level(Heap, missing).unwrap_err();
    /// assert_eq!(err, CpuError::UnsupportedLevel { level: missing });
    /// ```
    pub fn with_level(memory: M, level: SimdLevel) -> Result<Self, CpuError> {
        Cpu::with_options(memory, Options { level: Some(level), ..Options::default() })
    }

    /// Everything chosen by `options`.
    ///
    /// The backend reports the level, threads and tiles asked for:
    ///
    /// ```
    /// use brt_cpu::{Cpu, CpuError, Heap, Options, SimdLevel, Tiles};
    ///
    /// let tiles = Tiles::smallest(SimdLevel::Scalar);
    /// let options = Options { level: Some(SimdLevel::Scalar), tiles: Some(tiles), ..Options::threads(1) };
    /// let k = Cpu::with_options(Heap, options)?;
    /// assert_eq!((k.level(), k.threads(), k.tiles()), (SimdLevel::Scalar, 1, tiles));
    /// # Ok::<(), CpuError>(())
    /// ```
    pub fn with_options(mut memory: M, options: Options) -> Result<Self, CpuError> {
        let level = options.resolve_level()?;
        let tiles = options.resolve_tiles()?;
        let per_worker = options.scratch_per_thread()?;
        let scratch_len = options.scratch_len()?;
        let workers = Workers::new(options.threads)?;
        let scratch = memory.alloc_f32(scratch_len)?;
        Ok(Cpu {
            memory,
            level,
            tile: level.micro_tile(),
            tiles,
            max_head_dim: options.max_head_dim.max(1),
            scratch,
            per_worker,
            workers,
        })
    }

    /// Parameters used where they lie: `bytes` (e.g. the tensor data of a
    /// `brt_gguf::ModelFile`, in flash or a mapped file) read as the
    /// little-endian tensors `layout` places, with no copy and no memory taken.
    /// They are read-only. Wrap them with `Model::with_layout` and
    /// `layout.layout()`.
    ///
    /// Fails when `bytes` are not exactly the layout's length, or not aligned for
    /// the values (4 bytes for f32 and Q8_0 models, 2 for f16 and bf16).
    ///
    /// Aligned bytes of the layout's length are used as they are, read-only;
    /// the same bytes one byte further on are refused:
    ///
    /// ```
    /// use brt_core::{Arena, ByteLayout, Config, Storage, WeightData, WeightDtype};
    /// use brt_cpu::{Cpu, CpuError, CpuWeights, Options};
    ///
    /// let config = Config::plain(40, 16, 2, 8, 32, 1, 4);
    /// let layout = ByteLayout::new(&config, WeightDtype::F32, 32).unwrap();
    /// let len = layout.len();
    /// // u32 words give a 4-byte aligned start.
    /// let words = vec![0u32; len / 4 + 2];
    /// let bytes: &[u8] = bytemuck::cast_slice(&words);
    ///
    /// let mut scratch = vec![0f32; Options::default().scratch_len().unwrap()];
    /// let mut k = Cpu::with_options(Arena::new(&mut scratch, &mut [], &mut []), Options::default()).unwrap();
    /// let mut weights = k.weights_in_place(&bytes[..len], &layout).unwrap();
    /// assert!(weights.is_in_place());
    /// let write = k.write_weights(&mut weights, 0, WeightData::F32(&[1.0]));
    /// assert_eq!(write.unwrap_err(), CpuError::ReadOnlyWeights);
    /// assert_eq!((weights.dtype(), weights.bytes()), (WeightDtype::F32, len));
    /// assert_eq!(k.weights_in_place(&bytes[1..len + 1], &layout).unwrap_err(), CpuError::MisalignedWeights { size: 4 });
    /// assert!(matches!(k.weights_in_place(&bytes[..len - 4], &layout), Err(CpuError::Core(_))));
    ///
    /// // A Q8_0 model's data is used as it is too, one block type per tensor.
    /// let q8 = ByteLayout::new(&config, WeightDtype::Q8_0, 32).unwrap();
    /// let weights = k.weights_in_place(&bytes[..q8.len()], &q8).unwrap();
    /// assert!(matches!(weights, CpuWeights::Quantized(..)) && weights.is_in_place());
    /// assert_eq!(weights.dtype(), WeightDtype::Q8_0);
    /// ```
    pub fn weights_in_place(&self, bytes: M::Bytes, layout: &ByteLayout) -> Result<CpuWeights<M>, CpuError> {
        let size = layout.dtype().size().unwrap_or(4);
        if cfg!(target_endian = "big") {
            return Err(CpuError::MisalignedWeights { size });
        }
        if bytes.len() != layout.len() {
            let (expected, actual) = (layout.len(), bytes.len());
            return Err(CoreError::LengthMismatch { what: "tensor data bytes", expected, actual }.into());
        }
        CpuWeights::in_place(bytes, layout).ok_or(CpuError::MisalignedWeights { size })
    }

    /// The SIMD level in use.
    ///
    /// The forced level, when one was:
    ///
    /// ```
    /// use brt_cpu::{Cpu, Heap, SimdLevel};
    ///
    /// assert_eq!(Cpu::with_level(Heap, SimdLevel::Scalar).unwrap().level(), SimdLevel::Scalar);
    /// ```
    pub fn level(&self) -> SimdLevel {
        self.level
    }

    /// Threads in use, the caller's included.
    ///
    /// As many as [`Options::threads`] asked for:
    ///
    /// ```
    /// use brt_cpu::{Cpu, Heap, Options};
    ///
    /// assert_eq!(Cpu::with_options(Heap, Options::threads(1)).unwrap().threads(), 1);
    /// assert_eq!(Cpu::with_options(Heap, Options::threads(2)).unwrap().threads(), 2);
    /// ```
    pub fn threads(&self) -> usize {
        self.workers.count()
    }

    /// The kernels' blocking sizes in use.
    ///
    /// The level's defaults unless [`Options::tiles`] says otherwise:
    ///
    /// ```
    /// use brt_cpu::{Cpu, Heap, SimdLevel, Tiles};
    ///
    /// let k = Cpu::with_level(Heap, SimdLevel::Scalar).unwrap();
    /// assert_eq!(k.tiles(), Tiles::default_for(SimdLevel::Scalar));
    /// ```
    pub fn tiles(&self) -> Tiles {
        self.tiles
    }

    /// The memory source (e.g. to see how much of an arena is left).
    ///
    /// The backend took its scratch from the arena at construction, and a
    /// tensor takes the rest:
    ///
    /// ```
    /// use brt_core::{Arena, Storage};
    /// use brt_cpu::{Cpu, Options};
    ///
    /// let options = Options::default();
    /// let mut f32s = vec![0f32; options.scratch_len().unwrap() + 10];
    /// let mut u32s = [0u32; 3];
    /// let mut k = Cpu::with_options(Arena::new(&mut f32s, &mut [], &mut u32s), options).unwrap();
    /// assert_eq!(k.memory().remaining(), (10, 0, 3));
    /// let _tensor = k.alloc_tensor(10).unwrap();
    /// assert_eq!(k.memory().remaining(), (0, 0, 3));
    /// ```
    pub fn memory(&self) -> &M {
        &self.memory
    }

    /// Runs `tasks` tasks of `body(task, scratch)` on the workers, each with the
    /// scratch of the thread running it.
    pub(crate) fn parallel(&mut self, tasks: usize, body: &(dyn Fn(usize, &mut [f32]) + Sync)) -> Result<(), CpuError> {
        let base = SendPtr(self.scratch.as_mut_ptr());
        let per = self.per_worker;
        let threads = self.workers.count();
        if self.scratch.len() < per * threads {
            return Err(CoreError::BufferTooSmall {
                what: "CPU scratch",
                needed: per * threads,
                available: self.scratch.len(),
            }
            .into());
        }
        self.workers.run(tasks, &|t, w| {
            // SAFETY: worker indices are below `threads` and each belongs to one
            // thread for the whole call, which runs its tasks one after another,
            // so the `per`-long slices are disjoint and used by one task at a time;
            // the scratch holds `per * threads` values (checked above) and is
            // borrowed mutably by this call.
            let scratch = unsafe { core::slice::from_raw_parts_mut(base.get().add(w * per), per) };
            body(t, scratch)
        })
    }

    /// Runs `tasks` tasks of `body(task, scratch, partial)` that also add their
    /// shares of a sum into `partial` (the values of `outs`, one after another),
    /// with no atomics and no allocation (backward kernels: parameter gradients
    /// that every row contributes to).
    ///
    /// The tasks are split into one contiguous part per thread; each part runs its
    /// tasks in order, summing into its own zeroed area (in the scratch of the
    /// thread with the part's index, past the first `need` values), and the areas
    /// are added into `outs` in part order after the run. Which thread runs which
    /// part does not matter, so the sums are the same from run to run for a given
    /// thread count. Tasks get `need` values of the running thread's scratch.
    pub(crate) fn parallel_reduce(
        &mut self,
        tasks: usize,
        need: usize,
        outs: &mut [&mut [f32]],
        body: &ReduceBody<'_>,
    ) -> Result<(), CpuError> {
        let (per, threads) = (self.per_worker, self.workers.count());
        let total: usize = outs.iter().map(|o| o.len()).sum();
        if need.checked_add(total).is_none_or(|n| n > per) {
            return Err(CpuError::Capacity {
                what: "a backward kernel's scratch with its parameter-gradient sums (per thread; see \
                       `Options::gradient_sums`)",
                needed: need + total,
                limit: per,
            });
        }
        if self.scratch.len() < per * threads {
            return Err(CoreError::BufferTooSmall {
                what: "CPU scratch",
                needed: per * threads,
                available: self.scratch.len(),
            }
            .into());
        }
        let parts = threads.min(tasks).max(1);
        for p in 0..parts {
            self.scratch[p * per + need..][..total].fill(0.0);
        }
        let base = SendPtr(self.scratch.as_mut_ptr());
        self.workers.run(parts, &|part, w| {
            // SAFETY: the scratch holds `per * threads` values (checked above) and
            // is borrowed mutably by this call. Worker `w < threads` runs its parts
            // one after another and alone uses `[w*per, w*per + need)`; part
            // `part < parts <= threads` is run once and alone uses
            // `[part*per + need, part*per + need + total)`; `need + total <= per`
            // (checked above), so no two of these ranges overlap.
            let (scratch, partial) = unsafe {
                (
                    core::slice::from_raw_parts_mut(base.get().add(w * per), need),
                    core::slice::from_raw_parts_mut(base.get().add(part * per + need), total),
                )
            };
            for t in (tasks * part / parts)..(tasks * (part + 1) / parts) {
                body(t, scratch, partial);
            }
        })?;
        for p in 0..parts {
            let mut partial = &self.scratch[p * per + need..][..total];
            for out in outs.iter_mut() {
                let (mine, rest) = partial.split_at(out.len());
                out.iter_mut().zip(mine).for_each(|(o, &v)| *o += v);
                partial = rest;
            }
        }
        Ok(())
    }

    /// Runs a checked product on the workers: a few rows stream the weights
    /// (`gemv.rs`), more go through the packed GEMM split over row or column blocks.
    pub(crate) fn product(&mut self, g: &Gemm<'_>) -> Result<(), CpuError> {
        let (tile, level, tiles) = (self.tile, self.level, self.tiles);
        if g.m == 0 || g.n == 0 {
            return Ok(());
        }
        if g.m <= GEMV_MAX_ROWS && !g.a_transposed {
            // Few rows: stream the weights (split over columns, 256 at least each).
            let n = g.n;
            let tasks = self.workers.count().min(n.div_ceil(256)).max(1);
            return self.parallel(tasks, &|t, scratch| {
                let cols = (n * t / tasks)..(n * (t + 1) / tasks);
                level.dispatch(GemvTask { gemm: g, cols, scratch, tiles: &tiles });
            });
        }
        let split = g.split(self.workers.count(), tile);
        self.parallel(split.0 * split.1, &|t, scratch| {
            let (rows, cols) = g.task_block(t, split, tile);
            level.dispatch(GemmTask { gemm: g, rows, cols, scratch, tiles: &tiles });
        })
    }

    /// The micro-tile `(MR, NR)` of the level in use.
    pub(crate) fn tile(&self) -> (usize, usize) {
        self.tile
    }

    /// Splits `rows` rows into one contiguous range per thread when there is
    /// enough work (row-wise kernels), else one range.
    pub(crate) fn row_split(&self, rows: usize, dim: usize) -> usize {
        if rows * dim >= 1 << 15 {
            self.workers.count().min(rows).max(1)
        } else {
            1
        }
    }

    pub(crate) fn check_head_dim(&self, dh: usize) -> Result<(), CpuError> {
        if dh > self.max_head_dim {
            return Err(CpuError::Capacity { what: "attention head width", needed: dh, limit: self.max_head_dim });
        }
        Ok(())
    }
}

pub(crate) fn view<'a, T: core::ops::Deref<Target = [f32]>>(
    what: &'static str,
    v: View<'a, T>,
    len: usize,
) -> Result<&'a [f32], CoreError> {
    let t: &'a [f32] = v.tensor;
    check_extent(what, v.offset, len, t.len())?;
    Ok(&t[v.offset..v.offset + len])
}

pub(crate) fn view_mut<'a, T: core::ops::DerefMut<Target = [f32]>>(
    what: &'static str,
    v: ViewMut<'a, T>,
    len: usize,
) -> Result<&'a mut [f32], CoreError> {
    let t: &'a mut [f32] = v.tensor;
    check_extent(what, v.offset, len, t.len())?;
    Ok(&mut t[v.offset..v.offset + len])
}

pub(crate) fn weights<'a, M: HostMemory>(
    what: &'static str,
    w: WeightView<'a, CpuWeights<M>>,
    len: usize,
) -> Result<WSlice<'a>, CoreError> {
    w.weights.range(what, w.offset, len)
}

impl<M: HostMemory> Storage for Cpu<M> {
    type Error = CpuError;
    type Tensor = M::F32;
    type Weights = CpuWeights<M>;
    type Tokens = M::U32;

    fn alloc_tensor(&mut self, len: usize) -> Result<M::F32, CpuError> {
        Ok(self.memory.alloc_f32(len)?)
    }
    fn alloc_weights(&mut self, len: usize, dtype: WeightDtype) -> Result<CpuWeights<M>, CpuError> {
        Ok(match dtype {
            WeightDtype::F32 => CpuWeights::F32(self.memory.alloc_f32(len)?),
            WeightDtype::F16 => CpuWeights::F16(self.memory.alloc_u16(len)?),
            WeightDtype::Bf16 => CpuWeights::Bf16(self.memory.alloc_u16(len)?),
            WeightDtype::Q8_0 => return Err(CpuError::QuantizedNeedsFile),
        })
    }
    fn alloc_tokens(&mut self, len: usize) -> Result<M::U32, CpuError> {
        Ok(self.memory.alloc_u32(len)?)
    }
    fn tensor_len(tensor: &M::F32) -> usize {
        tensor.len()
    }
    fn weights_len(weights: &CpuWeights<M>) -> usize {
        weights.len()
    }
    fn tokens_len(tokens: &M::U32) -> usize {
        tokens.len()
    }
    fn write_tensor(&mut self, dst: &mut M::F32, offset: usize, src: &[f32]) -> Result<(), CpuError> {
        check_extent("tensor write", offset, src.len(), dst.len())?;
        dst[offset..offset + src.len()].copy_from_slice(src);
        Ok(())
    }
    fn read_tensor(&mut self, src: &M::F32, offset: usize, dst: &mut [f32]) -> Result<(), CpuError> {
        check_extent("tensor read", offset, dst.len(), src.len())?;
        dst.copy_from_slice(&src[offset..offset + dst.len()]);
        Ok(())
    }
    fn write_weights(&mut self, dst: &mut CpuWeights<M>, offset: usize, src: WeightData<'_>) -> Result<(), CpuError> {
        dst.write(offset, src)
    }
    fn write_tokens(&mut self, dst: &mut M::U32, offset: usize, src: &[u32]) -> Result<(), CpuError> {
        check_extent("tokens write", offset, src.len(), dst.len())?;
        dst[offset..offset + src.len()].copy_from_slice(src);
        Ok(())
    }
    fn sync(&mut self) -> Result<(), CpuError> {
        Ok(())
    }
}

impl<M: HostMemory> Kernels for Cpu<M> {
    fn embed(
        &mut self,
        tokens: &M::U32,
        token_offset: usize,
        table: WeightView<'_, CpuWeights<M>>,
        out: ViewMut<'_, M::F32>,
        desc: Embed,
    ) -> KResult<Self> {
        let (n, dim, vocab) = (desc.count(), desc.dim(), desc.vocab());
        check_extent("embed tokens", token_offset, n, tokens.len())?;
        let table = weights("embedding table", table, vocab * dim)?;
        let out = view_mut("embed output", out, n * dim)?;
        for (i, row) in out.chunks_exact_mut(dim).enumerate() {
            let id = tokens[token_offset + i];
            if id as usize >= vocab {
                return Err(CoreError::TokenOutOfRange { index: i, id, vocab }.into());
            }
            table.widen(id as usize * dim, row);
        }
        Ok(())
    }

    fn rms_norm(
        &mut self,
        x: View<'_, M::F32>,
        scale: WeightView<'_, CpuWeights<M>>,
        out: ViewMut<'_, M::F32>,
        desc: Rows,
    ) -> KResult<Self> {
        let x = view("rms_norm input", x, desc.len())?;
        let scale = weights("rms_norm scale", scale, desc.dim())?;
        let out = view_mut("rms_norm output", out, desc.len())?;
        let (rows, dim, level) = (desc.rows(), desc.dim(), self.level);
        let parts = self.row_split(rows, dim);
        let out = SendPtr(out.as_mut_ptr());
        self.parallel(parts, &|t, _| {
            let r = part(rows, parts, t);
            let range = r.start * dim..r.end * dim;
            // SAFETY: `out` holds `rows * dim` values (checked above) and the row
            // ranges of the tasks are disjoint.
            let out = unsafe { core::slice::from_raw_parts_mut(out.get().add(range.start), range.len()) };
            level.dispatch(RmsNorm { x: &x[range], scale, out, dim });
        })
    }

    fn add_positions(
        &mut self,
        x: ViewMut<'_, M::F32>,
        table: WeightView<'_, CpuWeights<M>>,
        desc: Positions,
    ) -> KResult<Self> {
        let table = weights("position table", table, desc.positions() * desc.dim())?;
        let x = view_mut("add_positions input", x, desc.len())?;
        self.level.dispatch(AddPositions { x, table, batch: desc.batch(), dim: desc.dim() });
        Ok(())
    }

    fn l2_normalize(&mut self, x: ViewMut<'_, M::F32>, desc: Heads) -> KResult<Self> {
        let x = view_mut("l2_normalize input", x, desc.len())?;
        let (rows, width, level) = (desc.rows(), desc.width(), self.level);
        let parts = self.row_split(rows, width);
        let x = SendPtr(x.as_mut_ptr());
        self.parallel(parts, &|t, _| {
            let r = part(rows, parts, t);
            let range = r.start * width..r.end * width;
            // SAFETY: `x` holds `rows * width` values (checked above) and the row
            // ranges of the tasks are disjoint.
            let x = unsafe { core::slice::from_raw_parts_mut(x.get().add(range.start), range.len()) };
            level.dispatch(L2Normalize { x, head_dim: desc.head_dim() });
        })
    }

    fn matmul(
        &mut self,
        x: View<'_, M::F32>,
        w: WeightView<'_, CpuWeights<M>>,
        out: ViewMut<'_, M::F32>,
        desc: Matmul,
    ) -> KResult<Self> {
        let (m, k, n) = (desc.m(), desc.k(), desc.n());
        let x = view("matmul input", x, m * k)?;
        let b = w.weights.product_source("matmul weight", w.offset, (k, n), desc.order())?;
        let out = view_mut("matmul output", out, m * n)?;
        if m == 0 {
            return Ok(());
        }
        let g =
            Gemm::new((m, n, k), (x, k), b, (out, n), desc.alpha_value(), desc.accumulates(), desc.activation_kind())?;
        self.product(&g)
    }

    fn attention(
        &mut self,
        q: View<'_, M::F32>,
        k: View<'_, M::F32>,
        v: View<'_, M::F32>,
        scale: WeightView<'_, CpuWeights<M>>,
        bias: Option<WeightView<'_, CpuWeights<M>>>,
        out: ViewMut<'_, M::F32>,
        desc: Attention,
    ) -> KResult<Self> {
        let q = view("attention queries", q, desc.query_len())?;
        let k = view("attention keys", k, desc.key_len())?;
        let v = view("attention values", v, desc.key_len())?;
        let scale = weights("attention scale", scale, desc.heads())?;
        let bias = match bias {
            Some(b) => Some(weights("position bias table", b, desc.heads() * T5_BUCKETS)?),
            None => None,
        };
        if bias.is_some() && desc.mask() == Mask::None {
            return Err(CoreError::InvalidShape { what: "a position bias needs a window mask" }.into());
        }
        let out = view_mut("attention output", out, desc.query_len())?;
        self.check_head_dim(desc.head_dim())?;
        if desc.queries() == 0 {
            return Ok(());
        }
        let (workers, tiles) = (self.workers.count(), self.tiles);
        let group_heads = crate::attention::group_capacity(&tiles, self.level.micro_tile(), desc.head_dim());
        let out = SendPtr(out.as_mut_ptr());
        let call = AttnCall { tiles, q, k, v, scale, bias, out, desc, workers, group_heads };
        let level = self.level;
        self.parallel(call.tasks(), &|task, scratch| {
            level.dispatch(AttnTask { call: &call, task, scratch });
        })
    }

    fn linear_attention(
        &mut self,
        q: View<'_, M::F32>,
        k: View<'_, M::F32>,
        v: View<'_, M::F32>,
        scale: WeightView<'_, CpuWeights<M>>,
        state: ViewMut<'_, M::F32>,
        out: ViewMut<'_, M::F32>,
        desc: LinearAttention,
    ) -> KResult<Self> {
        let q = view("linear attention queries", q, desc.token_len())?;
        let k = view("linear attention keys", k, desc.token_len())?;
        let v = view("linear attention values", v, desc.token_len())?;
        let scale = weights("linear attention scale", scale, desc.heads())?;
        let state = view_mut("linear attention state", state, desc.state_len())?;
        let out = view_mut("linear attention output", out, desc.token_len())?;
        self.check_head_dim(desc.head_dim())?;
        if desc.tokens() == 0 {
            return Ok(());
        }
        let call = LinearCall {
            chunk: self.tiles.linear_chunk,
            q,
            k,
            v,
            scale,
            state: SendPtr(state.as_mut_ptr()),
            out: SendPtr(out.as_mut_ptr()),
            desc,
        };
        let level = self.level;
        self.parallel(desc.batch() * desc.heads(), &|task, scratch| {
            level.dispatch(LinearTask { call: &call, task, scratch });
        })
    }

    fn gate_fixed(
        &mut self,
        state: ViewMut<'_, M::F32>,
        z: View<'_, M::F32>,
        bias: WeightView<'_, CpuWeights<M>>,
        desc: Rows,
    ) -> KResult<Self> {
        let dim = desc.dim();
        let z = view("gate update", z, desc.len())?;
        let bias = weights("gate bias", bias, dim)?;
        let state = view_mut("gated state", state, desc.len())?;
        // The gate depends on the column only: computed once per column run.
        const RUN: usize = 256;
        let mut g = [0f32; RUN];
        for c0 in (0..dim).step_by(RUN) {
            let len = RUN.min(dim - c0);
            for (j, slot) in g[..len].iter_mut().enumerate() {
                *slot = sigmoid(bias.get(c0 + j));
            }
            for (s_row, z_row) in state.chunks_exact_mut(dim).zip(z.chunks_exact(dim)) {
                for ((s, &zv), &gv) in s_row[c0..c0 + len].iter_mut().zip(&z_row[c0..c0 + len]).zip(&g[..len]) {
                    *s = *s * gv + zv * (1.0 - gv);
                }
            }
        }
        Ok(())
    }

    fn gate_lstm(
        &mut self,
        state: ViewMut<'_, M::F32>,
        z: View<'_, M::F32>,
        forget: View<'_, M::F32>,
        input: View<'_, M::F32>,
        forget_bias: WeightView<'_, CpuWeights<M>>,
        input_bias: WeightView<'_, CpuWeights<M>>,
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
            let f = sigmoid(forget[i] + bf.get(i % dim) + 1.0);
            let g = sigmoid(input[i] + bi.get(i % dim) - 1.0);
            *s = *s * f + z[i] * g;
        }
        Ok(())
    }

    fn copy(&mut self, src: View<'_, M::F32>, dst: ViewMut<'_, M::F32>, len: usize) -> KResult<Self> {
        let src = view("copy source", src, len)?;
        view_mut("copy destination", dst, len)?.copy_from_slice(src);
        Ok(())
    }

    fn fill(&mut self, dst: ViewMut<'_, M::F32>, runs: Strided, value: f32) -> KResult<Self> {
        let dst = view_mut("fill destination", dst, runs.extent())?;
        if runs.count() == 1 || runs.stride() == runs.len() {
            // One contiguous run, split over the threads when long (a training
            // step zeroes megabytes of gradients, which one core fills slower).
            let len = runs.total();
            let parts = self.row_split(len, 1);
            let d = SendPtr(dst.as_mut_ptr());
            return self.parallel(parts, &|t, _| {
                let range = part(len, parts, t);
                // SAFETY: `dst` holds `runs.extent() >= len` values (checked
                // above) and the ranges of the tasks are disjoint.
                let dst = unsafe { core::slice::from_raw_parts_mut(d.get().add(range.start), range.len()) };
                dst.fill(value);
            });
        }
        for r in 0..runs.count() {
            dst[r * runs.stride()..][..runs.len()].fill(value);
        }
        Ok(())
    }

    fn copy_weights(
        &mut self,
        src: WeightView<'_, CpuWeights<M>>,
        dst: ViewMut<'_, M::F32>,
        runs: Strided,
    ) -> KResult<Self> {
        let src = weights("copy_weights source", src, runs.total())?;
        let dst = view_mut("copy_weights destination", dst, runs.extent())?;
        for r in 0..runs.count() {
            src.widen(r * runs.len(), &mut dst[r * runs.stride()..][..runs.len()]);
        }
        Ok(())
    }
}
