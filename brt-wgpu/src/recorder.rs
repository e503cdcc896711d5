//! Recording: kernel calls and host writes become commands in a pending list,
//! submitted together in one command buffer when results are needed (a read or a
//! sync).
//!
//! Nothing is created per call once a model runs: each kernel's parameter block
//! is interned by content in a fixed ring of uniform slots (a stream repeats the
//! same calls every block, so after warm-up every block finds its slots already
//! written and uploads nothing), and bind groups are cached by the buffers they
//! bind.

use crate::buffers::Graveyard;
use crate::device::Gpu;
use crate::error::{Result, WgpuError};
use crate::pipelines::{Kernel, PipelineKey, Pipelines, PARAM_BYTES, PARAM_WORDS};
use std::collections::HashMap;
use std::num::NonZeroU64;
use std::sync::Arc;

/// Parameter slots in the ring: enough for the distinct calls of a large model
/// (a few dozen per layer) many times over.
const PARAM_SLOTS: u64 = 4096;
/// Most storage bindings of any kernel.
const MAX_BINDINGS: usize = 6;
/// Bytes of the upload ring through which host writes enter the command stream.
const UPLOAD_BYTES: u64 = 1 << 20;

/// A buffer bound to a kernel, with the identity the bind group cache keys on.
#[derive(Clone, Copy)]
pub(crate) struct Bound<'a> {
    pub id: u64,
    pub buffer: &'a wgpu::Buffer,
}

/// A kernel's parameter block: up to 32 words, u32 or f32 bits.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Params {
    words: [u32; PARAM_WORDS],
    len: usize,
}

impl Params {
    pub fn new() -> Params {
        Params { words: [0; PARAM_WORDS], len: 0 }
    }

    fn put(&mut self, word: u32) -> Result<()> {
        let slot = self
            .words
            .get_mut(self.len)
            .ok_or_else(|| WgpuError::Internal("kernel parameter block overflow".into()))?;
        *slot = word;
        self.len += 1;
        Ok(())
    }

    /// Appends an index or size (which must fit the shaders' u32 arithmetic).
    pub fn u(mut self, value: usize) -> Result<Params> {
        let word = u32::try_from(value).map_err(|_| {
            WgpuError::Unsupported(format!("index {value} does not fit the shaders' 32-bit arithmetic"))
        })?;
        self.put(word)?;
        Ok(self)
    }

    /// Appends a flag.
    pub fn flag(self, value: bool) -> Result<Params> {
        self.u(value as usize)
    }

    /// Appends an f32.
    pub fn f(mut self, value: f32) -> Result<Params> {
        self.put(value.to_bits())?;
        Ok(self)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct BindKey {
    kernel: Kernel,
    ids: [u64; MAX_BINDINGS],
}

/// A recorded command.
enum Command {
    Dispatch {
        pipeline: wgpu::ComputePipeline,
        bind_group: wgpu::BindGroup,
        offset: u32,
        groups: [u32; 3],
    },
    /// A host write, staged in the upload ring, copied into place in order.
    Upload {
        dst: wgpu::Buffer,
        from: u64,
        to: u64,
        bytes: u64,
    },
}

/// The pending dispatches and the caches they draw on.
pub(crate) struct Recorder {
    params: wgpu::Buffer,
    stride: u64,
    slots: HashMap<[u32; PARAM_WORDS], u32>,
    bind_groups: HashMap<BindKey, wgpu::BindGroup>,
    pending: Vec<Command>,
    upload: wgpu::Buffer,
    upload_cursor: u64,
    graveyard: Arc<Graveyard>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("pending", &self.pending.len())
            .field("slots", &self.slots.len())
            .field("bind_groups", &self.bind_groups.len())
            .finish_non_exhaustive()
    }
}

impl Recorder {
    pub fn new(gpu: &mut Gpu, graveyard: Arc<Graveyard>) -> Result<Recorder> {
        let align = gpu.limits.min_uniform_buffer_offset_alignment.max(1) as u64;
        let stride = PARAM_BYTES.next_multiple_of(align);
        let usage = wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST;
        let params = gpu.create_buffer("kernel parameters", stride * PARAM_SLOTS, usage)?;
        let usage = wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
        let upload = gpu.create_buffer("upload ring", UPLOAD_BYTES, usage)?;
        Ok(Recorder {
            params,
            stride,
            slots: HashMap::new(),
            bind_groups: HashMap::new(),
            pending: Vec::new(),
            upload,
            upload_cursor: 0,
            graveyard,
        })
    }

    /// Dispatches waiting to be submitted.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Records one dispatch of `key` over `groups` workgroups.
    pub fn record(
        &mut self,
        gpu: &mut Gpu,
        pipelines: &mut Pipelines,
        key: PipelineKey,
        bindings: &[Bound<'_>],
        params: Params,
        groups: [u32; 3],
    ) -> Result<()> {
        gpu.check()?;
        let kernel = key.kernel();
        if groups.contains(&0) {
            return Ok(());
        }
        if bindings.len() != kernel.bindings().len() {
            return Err(WgpuError::Internal(format!("{kernel:?} called with {} bindings", bindings.len())));
        }
        let pipeline = pipelines.get(gpu, key)?;
        let bind_group = self.bind_group(gpu, pipelines, kernel, bindings)?;
        let offset = self.slot(gpu, &params)?;
        self.pending.push(Command::Dispatch { pipeline, bind_group, offset, groups });
        gpu.counters.dispatches += 1;
        Ok(())
    }

    /// The cached bind group of these buffers, created on first use. Groups that
    /// hold a dropped buffer are released first.
    fn bind_group(
        &mut self,
        gpu: &mut Gpu,
        pipelines: &mut Pipelines,
        kernel: Kernel,
        bindings: &[Bound<'_>],
    ) -> Result<wgpu::BindGroup> {
        let dead = self.graveyard.drain();
        if !dead.is_empty() {
            self.bind_groups.retain(|key, _| !key.ids.iter().any(|id| dead.contains(id)));
        }
        let mut ids = [0u64; MAX_BINDINGS];
        for (slot, b) in ids.iter_mut().zip(bindings) {
            *slot = b.id;
        }
        let key = BindKey { kernel, ids };
        if let Some(group) = self.bind_groups.get(&key) {
            return Ok(group.clone());
        }
        let layout = pipelines.bind_layout(gpu, kernel)?;
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: &self.params,
                offset: 0,
                size: NonZeroU64::new(PARAM_BYTES),
            }),
        }];
        for (i, b) in bindings.iter().enumerate() {
            entries.push(wgpu::BindGroupEntry { binding: i as u32 + 1, resource: b.buffer.as_entire_binding() });
        }
        let group = gpu.scoped(|d| {
            d.create_bind_group(&wgpu::BindGroupDescriptor { label: None, layout: &layout, entries: &entries })
        })?;
        gpu.counters.bind_groups += 1;
        self.bind_groups.insert(key, group.clone());
        Ok(group)
    }

    /// The byte offset of the slot holding `params`, writing it if new. A full
    /// ring is emptied, after submitting the dispatches that read it.
    fn slot(&mut self, gpu: &mut Gpu, params: &Params) -> Result<u32> {
        if let Some(&offset) = self.slots.get(&params.words) {
            return Ok(offset);
        }
        if self.slots.len() as u64 >= PARAM_SLOTS {
            self.flush(gpu)?;
            self.slots.clear();
        }
        let offset = self.slots.len() as u64 * self.stride;
        let offset32 = u32::try_from(offset).map_err(|_| WgpuError::Internal("parameter ring beyond 4 GiB".into()))?;
        let bytes: &[u8] = bytemuck::cast_slice(&params.words);
        gpu.scoped(|_| gpu.queue.write_buffer(&self.params, offset, bytes))?;
        gpu.counters.param_writes += 1;
        self.slots.insert(params.words, offset32);
        Ok(offset32)
    }

    /// Writes `bytes` (a multiple of 4) at byte `offset` of `dst`, in order with
    /// the recorded kernels: staged in the upload ring and copied into place by
    /// the command stream, so a write between kernels needs no submission. Writes
    /// larger than the ring submit what is recorded and go straight to the queue.
    pub fn write(&mut self, gpu: &mut Gpu, dst: &wgpu::Buffer, offset: u64, bytes: &[u8]) -> Result<()> {
        let len = bytes.len() as u64;
        if len == 0 {
            return Ok(());
        }
        if len > UPLOAD_BYTES {
            // A queue write lands before the next submission's commands: what
            // was recorded earlier must be submitted first to keep program order.
            self.flush(gpu)?;
            return gpu.scoped(|_| gpu.queue.write_buffer(dst, offset, bytes));
        }
        if self.upload_cursor + len > UPLOAD_BYTES {
            self.flush(gpu)?;
        }
        let from = self.upload_cursor;
        gpu.scoped(|_| gpu.queue.write_buffer(&self.upload, from, bytes))?;
        self.upload_cursor = (from + len).next_multiple_of(4);
        self.pending.push(Command::Upload { dst: dst.clone(), from, to: offset, bytes: len });
        Ok(())
    }

    /// Submits the pending dispatches in one command buffer, then `then` (e.g. a
    /// copy for read-back) in the same one.
    pub fn flush_then(&mut self, gpu: &mut Gpu, then: impl FnOnce(&mut wgpu::CommandEncoder)) -> Result<()> {
        let pending = std::mem::take(&mut self.pending);
        let result = gpu.scoped(|d| {
            let mut encoder = d.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("brt step") });
            let mut commands = pending.iter().peekable();
            while let Some(command) = commands.next() {
                match command {
                    Command::Upload { dst, from, to, bytes } => {
                        encoder.copy_buffer_to_buffer(&self.upload, *from, dst, *to, *bytes);
                    }
                    Command::Dispatch { pipeline, bind_group, offset, groups } => {
                        // One compute pass for each run of dispatches.
                        let desc = wgpu::ComputePassDescriptor { label: Some("brt kernels"), timestamp_writes: None };
                        let mut pass = encoder.begin_compute_pass(&desc);
                        let mut next = Some((pipeline, bind_group, offset, groups));
                        while let Some((pipeline, bind_group, offset, groups)) = next {
                            pass.set_pipeline(pipeline);
                            pass.set_bind_group(0, bind_group, &[*offset]);
                            pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
                            next = match commands.peek() {
                                Some(Command::Dispatch { pipeline, bind_group, offset, groups }) => {
                                    commands.next();
                                    Some((pipeline, bind_group, offset, groups))
                                }
                                _ => None,
                            };
                        }
                    }
                }
            }
            then(&mut encoder);
            gpu.queue.submit([encoder.finish()]);
        });
        // Keep the list's capacity for the next step.
        self.pending = pending;
        self.pending.clear();
        self.upload_cursor = 0;
        gpu.counters.submissions += 1;
        result
    }

    /// Submits the pending dispatches, if any.
    pub fn flush(&mut self, gpu: &mut Gpu) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.flush_then(gpu, |_| {})
    }
}
