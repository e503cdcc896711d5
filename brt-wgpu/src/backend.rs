//! The backend value: device, pipelines and recorder, and the [`Storage`] half of
//! the core's contract (buffers and transfers).

use crate::buffers::{pack_halves, weight_bytes, GpuTensor, GpuTokens, GpuWeights, Graveyard, Handle};
use crate::device::{AdapterSummary, Counters, Gpu, WgpuOptions};
use crate::error::{Result, WgpuError};
use crate::pipelines::{Kernel, PipelineKey, Pipelines};
use crate::recorder::{Bound, Params, Recorder};
use brt_core::half::{bf16, f16};
use brt_core::kernels::check_extent;
use brt_core::{Storage, WeightData, WeightDtype};
use std::sync::Arc;

/// Largest piece read back at once, so the read-back buffer stays small.
const READBACK_CHUNK: u64 = 16 << 20;

/// The wgpu backend: implements [`brt_core::Kernels`] with WGSL compute shaders.
///
/// Kernel calls and host writes are recorded, not run: a block step of the whole
/// model (token upload included) becomes one command buffer, submitted when a
/// result is read ([`Storage::read_tensor`]) or on [`Storage::sync`]. Buffers,
/// pipelines and bind groups are created at load time or on the first block and
/// reused afterwards ([`Wgpu::counters`] shows it).
///
/// A 2x3 by 3x2 product on the GPU, checked against the one computed by hand
/// (where no adapter exists, [`testing::backend_or_skip`](crate::testing::backend_or_skip)
/// prints why and the example stops):
///
/// ```
/// use brt_core::desc::Matmul;
/// use brt_core::{Kernels, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
///
/// let Some(mut k) = brt_wgpu::testing::backend_or_skip("Wgpu") else { return Ok(()) };
/// // x (2, 3) and w (3, 2), row-major.
/// let (x, w) = ([1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], [7.0f32, 8.0, 9.0, 10.0, 11.0, 12.0]);
/// let mut xt = k.alloc_tensor(6)?;
/// k.write_tensor(&mut xt, 0, &x)?;
/// let mut wt = k.alloc_weights(6, WeightDtype::F32)?;
/// k.write_weights(&mut wt, 0, WeightData::F32(&w))?;
/// let mut out = k.alloc_tensor(4)?;
/// k.matmul(View::new(&xt, 0), WeightView::new(&wt, 0), ViewMut::new(&mut out, 0), Matmul::new(2, 3, 2)?)?;
/// let mut y = [0f32; 4];
/// k.read_tensor(&out, 0, &mut y)?; // submits the writes and the product, waits
/// assert_eq!(y, [58.0, 64.0, 139.0, 154.0]);
/// # Ok::<(), brt_wgpu::WgpuError>(())
/// ```
pub struct Wgpu {
    pub(crate) gpu: Gpu,
    pub(crate) pipelines: Pipelines,
    pub(crate) recorder: Recorder,
    readback: Option<wgpu::Buffer>,
    graveyard: Arc<Graveyard>,
}

impl std::fmt::Debug for Wgpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wgpu").field("adapter", &self.gpu.summary).field("recorder", &self.recorder).finish()
    }
}

impl Wgpu {
    /// A backend on the best adapter, with options from the environment
    /// (`WGPU_BACKEND`, `WGPU_POWER_PREF`, `BRT_WGPU_SUBGROUPS`).
    ///
    /// A new backend names its adapter and has nothing recorded yet; where no
    /// adapter is usable, the error says why (here the example then stops,
    /// unless `BRT_REQUIRE_GPU=1` asks for a GPU):
    ///
    /// ```
    /// use brt_wgpu::{Wgpu, WgpuError};
    ///
    /// let k = match Wgpu::new() {
    ///     Ok(k) => k,
    ///     Err(e) if !brt_wgpu::testing::gpu_required() => {
    ///         println!("no usable GPU adapter: {e}");
    ///         return Ok(());
    ///     }
    ///     Err(e) => return Err(e),
    /// };
    /// assert!(!k.adapter().name.is_empty());
    /// assert_eq!(k.pending(), 0);
    /// # Ok::<(), WgpuError>(())
    /// ```
    pub fn new() -> Result<Wgpu> {
        Wgpu::with_options(&WgpuOptions::from_env())
    }

    /// A backend with explicit options.
    ///
    /// With subgroups turned off the backend uses the shared-memory variants
    /// whatever the adapter offers; with no backend to search there is no
    /// adapter, an error rather than a panic:
    ///
    /// ```
    /// use brt_wgpu::{testing, wgpu, Wgpu, WgpuError, WgpuOptions};
    ///
    /// let options = WgpuOptions { subgroups: false, ..WgpuOptions::default() };
    /// if let Some(k) = testing::decide("Wgpu::with_options", Wgpu::with_options(&options))? {
    ///     assert!(!k.adapter().subgroups);
    /// }
    /// let nowhere = WgpuOptions { backends: Some(wgpu::Backends::empty()), ..WgpuOptions::default() };
    /// assert!(matches!(Wgpu::with_options(&nowhere), Err(WgpuError::NoAdapter { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_options(options: &WgpuOptions) -> Result<Wgpu> {
        let mut gpu = Gpu::new(options)?;
        let graveyard = Arc::new(Graveyard::default());
        let recorder = Recorder::new(&mut gpu, Arc::clone(&graveyard))?;
        let mut backend = Wgpu { gpu, pipelines: Pipelines::default(), recorder, readback: None, graveyard };
        // Kernels without parameters (copies, fills, normalisation) and the f32
        // variants are compiled now; other storage types when weights of that
        // type are allocated.
        if let Err(e) = backend.pipelines.prepare(&mut backend.gpu, WeightDtype::F32) {
            if !backend.gpu.summary.subgroups {
                return Err(e);
            }
            // A driver that offers subgroups but cannot compile the variants
            // still runs the shared-memory ones.
            backend.gpu.summary.subgroups = false;
            backend.pipelines.prepare(&mut backend.gpu, WeightDtype::F32)?;
        }
        Ok(backend)
    }

    /// The adapter in use.
    ///
    /// Buffers are bound up to `max_binding` bytes, a multiple of 4 below 4 GiB
    /// (the shaders index with `u32`):
    ///
    /// ```
    /// # let Some(k) = brt_wgpu::testing::backend_or_skip("Wgpu::adapter") else { return Ok(()) };
    /// let a = k.adapter();
    /// println!("{} on {} ({}), software: {}", a.name, a.backend, a.driver, a.software);
    /// assert!(a.max_binding > 0 && a.max_binding % 4 == 0 && a.max_binding < 1 << 32);
    /// # Ok::<(), brt_wgpu::WgpuError>(())
    /// ```
    pub fn adapter(&self) -> &AdapterSummary {
        &self.gpu.summary
    }

    /// How many GPU objects have been created and commands submitted so far.
    ///
    /// Once a kernel call has run, the same call again creates nothing: no bind
    /// group and no parameter slot, only one more dispatch:
    ///
    /// ```
    /// use brt_core::{desc::Strided, Kernels, Storage, ViewMut};
    /// use brt_wgpu::Counters;
    ///
    /// # let Some(mut k) = brt_wgpu::testing::backend_or_skip("Wgpu::counters") else { return Ok(()) };
    /// let mut x = k.alloc_tensor(8)?;
    /// k.fill(ViewMut::new(&mut x, 0), Strided::contiguous(8), 1.0)?;
    /// k.sync()?;
    /// let warm = k.counters();
    /// k.fill(ViewMut::new(&mut x, 0), Strided::contiguous(8), 1.0)?;
    /// k.sync()?;
    /// let now = k.counters();
    /// assert_eq!((now.dispatches, now.submissions), (warm.dispatches + 1, warm.submissions + 1));
    /// let created = |c: Counters| (c.buffers, c.pipelines, c.bind_groups, c.param_writes);
    /// assert_eq!(created(now), created(warm));
    /// # Ok::<(), brt_wgpu::WgpuError>(())
    /// ```
    pub fn counters(&self) -> Counters {
        self.gpu.counters
    }

    /// Commands (kernel calls and host writes) recorded and not yet submitted.
    ///
    /// A write and a kernel call wait in the recorder until a read or a sync
    /// submits them:
    ///
    /// ```
    /// use brt_core::{desc::Strided, Kernels, Storage, ViewMut};
    ///
    /// # let Some(mut k) = brt_wgpu::testing::backend_or_skip("Wgpu::pending") else { return Ok(()) };
    /// let mut x = k.alloc_tensor(4)?;
    /// k.write_tensor(&mut x, 0, &[1.0, 2.0])?;
    /// k.fill(ViewMut::new(&mut x, 0), Strided::new(2, 1, 2)?, 7.0)?;
    /// assert_eq!(k.pending(), 2);
    /// let mut back = [0f32; 4];
    /// k.read_tensor(&x, 0, &mut back)?;
    /// assert_eq!((k.pending(), back), (0, [7.0, 2.0, 7.0, 0.0]));
    /// # Ok::<(), brt_wgpu::WgpuError>(())
    /// ```
    pub fn pending(&self) -> usize {
        self.recorder.pending()
    }

    /// Releases the device now (e.g. to give memory back); every later call
    /// returns [`WgpuError::DeviceLost`].
    ///
    /// Buffers made before still exist as values, but nothing runs on them:
    ///
    /// ```
    /// use brt_core::Storage;
    /// use brt_wgpu::WgpuError;
    ///
    /// # let Some(mut k) = brt_wgpu::testing::backend_or_skip("Wgpu::destroy") else { return Ok(()) };
    /// let x = k.alloc_tensor(4)?;
    /// k.destroy();
    /// assert!(matches!(k.read_tensor(&x, 0, &mut [0.0; 4]), Err(WgpuError::DeviceLost(_))));
    /// assert!(matches!(k.alloc_tensor(4), Err(WgpuError::DeviceLost(_))));
    /// # Ok::<(), brt_wgpu::WgpuError>(())
    /// ```
    pub fn destroy(&mut self) {
        self.gpu.destroy();
    }

    /// Records one kernel dispatch.
    pub(crate) fn dispatch(
        &mut self,
        kernel: Kernel,
        dtypes: [WeightDtype; 2],
        bindings: &[Bound<'_>],
        params: Params,
        groups: [u32; 3],
    ) -> Result<()> {
        let key = PipelineKey::new(kernel, dtypes, self.gpu.summary.subgroups);
        self.recorder.record(&mut self.gpu, &mut self.pipelines, key, bindings, params, groups)
    }

    /// Reads `count` 32-bit words of `buffer` from word `first`, after all
    /// recorded work.
    fn read_words(&mut self, buffer: &wgpu::Buffer, first: usize, out: &mut [u32]) -> Result<()> {
        if out.is_empty() {
            return self.sync_all();
        }
        let chunk_words = (READBACK_CHUNK / 4) as usize;
        let mut done = 0;
        while done < out.len() {
            let count = chunk_words.min(out.len() - done);
            let bytes = count as u64 * 4;
            let readback = self.readback_buffer(bytes)?;
            let src_offset = (first + done) as u64 * 4;
            self.recorder.flush_then(&mut self.gpu, |encoder| {
                encoder.copy_buffer_to_buffer(buffer, src_offset, &readback, 0, bytes);
            })?;
            let slice = readback.slice(0..bytes);
            let (sender, receiver) = std::sync::mpsc::channel();
            slice.map_async(wgpu::MapMode::Read, move |result| {
                // The receiver outlives the wait below; a failed send only means
                // the caller already returned with an error.
                let _ = sender.send(result);
            });
            self.gpu.wait()?;
            match receiver.try_recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(WgpuError::Internal(format!("reading results back: {e}"))),
                Err(_) => return Err(WgpuError::Internal("reading results back: the map never completed".into())),
            }
            {
                let view =
                    slice.get_mapped_range().map_err(|e| WgpuError::Internal(format!("reading results back: {e}")))?;
                let words: &[u32] = bytemuck::cast_slice(&view);
                out[done..done + count].copy_from_slice(&words[..count]);
            }
            readback.unmap();
            done += count;
        }
        Ok(())
    }

    /// The read-back buffer, grown to at least `bytes` (only while warming up:
    /// a stream reads the same sizes every step).
    fn readback_buffer(&mut self, bytes: u64) -> Result<wgpu::Buffer> {
        if let Some(b) = &self.readback {
            if b.size() >= bytes {
                return Ok(b.clone());
            }
        }
        let usage = wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST;
        let buffer = self.gpu.create_buffer("read-back", bytes, usage)?;
        self.readback = Some(buffer.clone());
        Ok(buffer)
    }

    /// Submits everything recorded and waits for it.
    fn sync_all(&mut self) -> Result<()> {
        self.recorder.flush(&mut self.gpu)?;
        self.gpu.wait()
    }

    /// Writes `bytes` at `offset` of `buffer` after all recorded work.
    fn write_after_recorded(&mut self, buffer: &wgpu::Buffer, offset: u64, bytes: &[u8]) -> Result<()> {
        self.recorder.write(&mut self.gpu, buffer, offset, bytes)
    }

    fn handle(&self) -> Handle {
        Handle::new(&self.graveyard)
    }
}

fn bytes_of(what: &'static str, elements: usize) -> Result<u64> {
    (elements as u64).checked_mul(4).ok_or(WgpuError::TooLarge { what, bytes: u64::MAX, limit: 0 })
}

const TENSOR_USAGE: wgpu::BufferUsages =
    wgpu::BufferUsages::STORAGE.union(wgpu::BufferUsages::COPY_SRC).union(wgpu::BufferUsages::COPY_DST);

/// `values` converted to the 16-bit storage type `dtype` (f16 or bf16 bits).
fn to_halves(values: WeightData<'_>, dtype: WeightDtype) -> Vec<u16> {
    let bf = dtype == WeightDtype::Bf16;
    match values {
        WeightData::F16(v) if !bf => v.iter().map(|x| x.to_bits()).collect(),
        WeightData::Bf16(v) if bf => v.iter().map(|x| x.to_bits()).collect(),
        _ => (0..values.len())
            .map(|i| {
                let x = values.get(i).unwrap_or(0.0);
                if bf {
                    bf16::from_f32(x).to_bits()
                } else {
                    f16::from_f32(x).to_bits()
                }
            })
            .collect(),
    }
}

impl Storage for Wgpu {
    type Error = WgpuError;
    type Tensor = GpuTensor;
    type Weights = GpuWeights;
    type Tokens = GpuTokens;

    fn alloc_tensor(&mut self, len: usize) -> Result<GpuTensor> {
        let bytes = bytes_of("an activation buffer", len)?;
        let buffer = self.gpu.create_buffer("an activation buffer", bytes, TENSOR_USAGE)?;
        Ok(GpuTensor { buffer, len, handle: self.handle() })
    }

    fn alloc_weights(&mut self, len: usize, dtype: WeightDtype) -> Result<GpuWeights> {
        if dtype == WeightDtype::Q8_0 {
            return Err(WgpuError::Unsupported(brt_core::encoding::Q8_0_CPU_ONLY.into()));
        }
        let what = "the parameter buffer";
        let bytes = weight_bytes(len, dtype).ok_or(WgpuError::TooLarge { what, bytes: u64::MAX, limit: 0 })?;
        let buffer = self.gpu.create_buffer(what, bytes, TENSOR_USAGE)?;
        // Load time: compile the kernels for this storage type now.
        self.pipelines.prepare(&mut self.gpu, dtype)?;
        Ok(GpuWeights { buffer, len, dtype, handle: self.handle() })
    }

    fn alloc_tokens(&mut self, len: usize) -> Result<GpuTokens> {
        let bytes = bytes_of("a token buffer", len)?;
        let buffer = self.gpu.create_buffer("a token buffer", bytes, TENSOR_USAGE)?;
        Ok(GpuTokens { buffer, host: vec![0; len], handle: self.handle() })
    }

    fn tensor_len(tensor: &GpuTensor) -> usize {
        tensor.len
    }

    fn weights_len(weights: &GpuWeights) -> usize {
        weights.len
    }

    fn tokens_len(tokens: &GpuTokens) -> usize {
        tokens.host.len()
    }

    fn write_tensor(&mut self, dst: &mut GpuTensor, offset: usize, src: &[f32]) -> Result<()> {
        check_extent("tensor write", offset, src.len(), dst.len)?;
        if src.is_empty() {
            return Ok(());
        }
        self.write_after_recorded(&dst.buffer, offset as u64 * 4, bytemuck::cast_slice(src))
    }

    fn read_tensor(&mut self, src: &GpuTensor, offset: usize, dst: &mut [f32]) -> Result<()> {
        check_extent("tensor read", offset, dst.len(), src.len)?;
        let mut words = vec![0u32; dst.len()];
        let buffer = src.buffer.clone();
        self.read_words(&buffer, offset, &mut words)?;
        for (d, w) in dst.iter_mut().zip(words) {
            *d = f32::from_bits(w);
        }
        Ok(())
    }

    fn write_weights(&mut self, dst: &mut GpuWeights, offset: usize, src: WeightData<'_>) -> Result<()> {
        check_extent("weights write", offset, src.len(), dst.len)?;
        if src.is_empty() {
            return Ok(());
        }
        if dst.dtype == WeightDtype::F32 {
            let values: Vec<f32> = match src {
                WeightData::F32(v) => v.to_vec(),
                _ => (0..src.len()).map(|i| src.get(i).unwrap_or(0.0)).collect(),
            };
            return self.write_after_recorded(&dst.buffer, offset as u64 * 4, bytemuck::cast_slice(&values));
        }
        // Packed halves: a write that starts or ends inside a word keeps the
        // other half of that word as it is on the device.
        let mut halves = to_halves(src, dst.dtype);
        let end = offset + halves.len();
        let buffer = dst.buffer.clone();
        if offset % 2 == 1 {
            let mut word = [0u32];
            self.read_words(&buffer, offset / 2, &mut word)?;
            halves.insert(0, word[0] as u16);
        }
        if end % 2 == 1 {
            let mut word = [0u32];
            self.read_words(&buffer, end / 2, &mut word)?;
            halves.push((word[0] >> 16) as u16);
        }
        let words = pack_halves(&halves);
        self.write_after_recorded(&buffer, (offset / 2) as u64 * 4, bytemuck::cast_slice(&words))
    }

    fn write_tokens(&mut self, dst: &mut GpuTokens, offset: usize, src: &[u32]) -> Result<()> {
        check_extent("tokens write", offset, src.len(), dst.host.len())?;
        if src.is_empty() {
            return Ok(());
        }
        self.write_after_recorded(&dst.buffer, offset as u64 * 4, bytemuck::cast_slice(src))?;
        dst.host[offset..offset + src.len()].copy_from_slice(src);
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        self.sync_all()
    }
}

/// The binding of an activation buffer.
pub(crate) fn tensor(t: &GpuTensor) -> Bound<'_> {
    Bound { id: t.handle.id, buffer: &t.buffer }
}

/// The binding of a parameter buffer.
pub(crate) fn weights(w: &GpuWeights) -> Bound<'_> {
    Bound { id: w.handle.id, buffer: &w.buffer }
}

/// The binding of a token buffer.
pub(crate) fn tokens(t: &GpuTokens) -> Bound<'_> {
    Bound { id: t.handle.id, buffer: &t.buffer }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_errors_are_caught_by_error_scopes() {
        let Some(mut k) = crate::testing::backend_or_skip("validation scope") else { return };
        // Mapping for reading is only allowed with copies (without a native-only
        // feature the backend does not request): a validation error, not a panic.
        let desc = wgpu::BufferDescriptor {
            label: None,
            size: 16,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        };
        let err = k.gpu.scoped(|d| d.create_buffer(&desc)).unwrap_err();
        assert!(matches!(err, WgpuError::Validation(_)), "{err:?}");
        assert!(err.to_string().contains("wgpu rejected"), "{err}");
        // The device is still usable.
        let t = k.alloc_tensor(2).unwrap();
        let mut back = [5f32; 2];
        k.read_tensor(&t, 0, &mut back).unwrap();
        assert_eq!(back, [0.0; 2]);
    }
}
