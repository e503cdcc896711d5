//! The adapter and device: choosing them, their limits and features, and turning
//! every asynchronous wgpu failure (validation, out of memory, device loss) into a
//! [`WgpuError`] instead of wgpu's default panic.

use crate::error::{Result, WgpuError};
use std::sync::{Arc, Mutex};

/// How to pick and use an adapter.
///
/// The default searches every compiled backend (narrowed by `WGPU_BACKEND`)
/// and uses subgroups; a search of no backend finds no adapter:
///
/// ```
/// use brt_wgpu::{wgpu, Wgpu, WgpuError, WgpuOptions};
///
/// let default = WgpuOptions::default();
/// assert!(default.backends.is_none() && default.subgroups);
/// let vulkan = WgpuOptions { backends: Some(wgpu::Backends::VULKAN), ..WgpuOptions::default() };
/// assert!(vulkan.subgroups);
/// let nowhere = WgpuOptions { backends: Some(wgpu::Backends::empty()), ..WgpuOptions::default() };
/// assert!(matches!(Wgpu::with_options(&nowhere), Err(WgpuError::NoAdapter { .. })));
/// ```
#[derive(Clone, Debug)]
pub struct WgpuOptions {
    /// Backends to search; `None` means every compiled backend, narrowed by the
    /// `WGPU_BACKEND` environment variable when it is set (`vulkan`, `gl`, `metal`,
    /// `dx12`, comma-separated).
    pub backends: Option<wgpu::Backends>,
    /// Use subgroup operations in reductions when the adapter offers them. Turning
    /// this off forces the shared-memory variants everywhere.
    pub subgroups: bool,
}

impl Default for WgpuOptions {
    fn default() -> Self {
        WgpuOptions { backends: None, subgroups: true }
    }
}

impl WgpuOptions {
    /// The defaults, with `BRT_WGPU_SUBGROUPS=0` (or `off`, `false`) turning
    /// subgroup operations off.
    ///
    /// Any other value, or none, leaves them on; backends are left to
    /// `WGPU_BACKEND`, read when the adapter is searched:
    ///
    /// ```
    /// use brt_wgpu::WgpuOptions;
    ///
    /// std::env::set_var("BRT_WGPU_SUBGROUPS", "off");
    /// assert!(!WgpuOptions::from_env().subgroups);
    /// std::env::set_var("BRT_WGPU_SUBGROUPS", "1");
    /// assert!(WgpuOptions::from_env().subgroups);
    /// std::env::remove_var("BRT_WGPU_SUBGROUPS");
    /// let options = WgpuOptions::from_env();
    /// assert!(options.subgroups && options.backends.is_none());
    /// ```
    pub fn from_env() -> Self {
        let subgroups = match std::env::var("BRT_WGPU_SUBGROUPS") {
            Ok(v) => !matches!(v.trim().to_ascii_lowercase().as_str(), "0" | "off" | "false" | "no"),
            Err(_) => true,
        };
        WgpuOptions { backends: None, subgroups }
    }
}

/// Creation counts of the backend's GPU objects, to show that a running model
/// creates nothing after warm-up.
///
/// A new backend has compiled its f32 pipelines and made its two rings (kernel
/// parameters and uploads), but submitted and dispatched nothing:
///
/// ```
/// use brt_wgpu::Counters;
///
/// # let Some(k) = brt_wgpu::testing::backend_or_skip("Counters") else { return };
/// let c = k.counters();
/// assert!(c.pipelines > 0 && c.shader_modules > 0 && c.layouts > 0 && c.buffers >= 2);
/// assert_eq!((c.submissions, c.dispatches, c.bind_groups, c.param_writes), (0, 0, 0, 0));
/// assert_ne!(c, Counters::default());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Buffers created (tensors, weights, tokens, parameter slots, read-back).
    pub buffers: u64,
    /// Compute pipelines created.
    pub pipelines: u64,
    /// Shader modules compiled.
    pub shader_modules: u64,
    /// Bind groups created.
    pub bind_groups: u64,
    /// Bind group and pipeline layouts created.
    pub layouts: u64,
    /// Command buffers submitted.
    pub submissions: u64,
    /// Kernel dispatches recorded.
    pub dispatches: u64,
    /// Parameter slots written (new kernel parameter combinations).
    pub param_writes: u64,
}

/// What the adapter is and what the backend uses of it.
///
/// `backend` is the graphics API's name as wgpu spells it:
///
/// ```
/// # let Some(k) = brt_wgpu::testing::backend_or_skip("AdapterSummary") else { return };
/// let summary = k.adapter().clone();
/// println!("{summary:?}");
/// assert!(["Vulkan", "Metal", "Dx12", "Gl"].contains(&summary.backend.as_str()));
/// assert!(!summary.name.is_empty() && summary.max_binding > 0);
/// ```
#[derive(Clone, Debug)]
pub struct AdapterSummary {
    /// The adapter's name.
    pub name: String,
    /// The graphics API (Vulkan, GL, Metal, DX12).
    pub backend: String,
    /// The driver and its version.
    pub driver: String,
    /// Whether it is a CPU (software) adapter.
    pub software: bool,
    /// Whether the subgroup shader variants are in use.
    pub subgroups: bool,
    /// Largest buffer the backend will bind, in bytes.
    pub max_binding: u64,
}

/// Errors that wgpu reports outside an error scope, or through device loss.
#[derive(Debug, Default)]
struct ErrorSink {
    lost: Mutex<Option<String>>,
    uncaptured: Mutex<Option<WgpuError>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock only means another thread panicked while holding it; the
    // value (an optional message) is still meaningful.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The device, its queue and what it allows.
pub(crate) struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub limits: wgpu::Limits,
    pub summary: AdapterSummary,
    pub counters: Counters,
    sink: Arc<ErrorSink>,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpu").field("summary", &self.summary).finish_non_exhaustive()
    }
}

impl Gpu {
    /// Finds an adapter and opens a device on it.
    pub fn new(options: &WgpuOptions) -> Result<Gpu> {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        if let Some(backends) = options.backends {
            desc.backends = backends;
        }
        let backends = desc.backends;
        let instance = wgpu::Instance::new(desc);
        let power_preference = wgpu::PowerPreference::from_env().unwrap_or(wgpu::PowerPreference::HighPerformance);
        let request = wgpu::RequestAdapterOptions { power_preference, ..Default::default() };
        let adapter = pollster::block_on(instance.request_adapter(&request))
            .map_err(|e| WgpuError::NoAdapter { backends: format!("{backends:?}"), detail: e.to_string() })?;
        let info = adapter.get_info();
        let downlevel = adapter.get_downlevel_capabilities();
        if !downlevel.flags.contains(wgpu::DownlevelFlags::COMPUTE_SHADERS) {
            return Err(WgpuError::Unsupported(format!(
                "adapter `{}` ({:?}) has no compute shaders",
                info.name, info.backend
            )));
        }
        let subgroups = options.subgroups && adapter.features().contains(wgpu::Features::SUBGROUP);
        let required_features = if subgroups { wgpu::Features::SUBGROUP } else { wgpu::Features::empty() };
        let limits = adapter.limits();
        let device_desc = wgpu::DeviceDescriptor {
            label: Some("brt"),
            required_features,
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&device_desc))
            .map_err(|e| WgpuError::DeviceRequest(e.to_string()))?;

        let sink = Arc::new(ErrorSink::default());
        let on_error = Arc::clone(&sink);
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let mut slot = lock(&on_error.uncaptured);
            if slot.is_none() {
                *slot = Some(WgpuError::from(e));
            }
        }));
        let on_lost = Arc::clone(&sink);
        device.set_device_lost_callback(move |reason, message| {
            let mut slot = lock(&on_lost.lost);
            if slot.is_none() {
                *slot = Some(format!("{reason:?}: {message}"));
            }
        });

        // Element indices are u32 in the shaders, so no buffer exceeds 4 GiB.
        let max_binding = limits.max_storage_buffer_binding_size.min(limits.max_buffer_size).min(u32::MAX as u64 - 3);
        let summary = AdapterSummary {
            name: info.name.clone(),
            backend: format!("{:?}", info.backend),
            driver: format!("{} {}", info.driver, info.driver_info).trim().to_string(),
            software: info.device_type == wgpu::DeviceType::Cpu,
            subgroups,
            max_binding: max_binding & !3,
        };
        Ok(Gpu { device, queue, limits, summary, counters: Counters::default(), sink })
    }

    /// Fails if the device was lost or wgpu reported an error outside a scope.
    pub fn check(&self) -> Result<()> {
        if let Some(reason) = lock(&self.sink.lost).clone() {
            return Err(WgpuError::DeviceLost(reason));
        }
        match lock(&self.sink.uncaptured).take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Runs `f` inside out-of-memory, validation and internal error scopes and
    /// returns the first error any of them caught.
    pub fn scoped<T>(&self, f: impl FnOnce(&wgpu::Device) -> T) -> Result<T> {
        self.check()?;
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let internal = self.device.push_error_scope(wgpu::ErrorFilter::Internal);
        let value = f(&self.device);
        // Scopes pop in reverse order of their pushes.
        let internal = pollster::block_on(internal.pop());
        let validation = pollster::block_on(validation.pop());
        let oom = pollster::block_on(oom.pop());
        self.check()?;
        match oom.or(validation).or(internal) {
            Some(e) => Err(e.into()),
            None => Ok(value),
        }
    }

    /// A new buffer of `bytes` bytes (at least 4), counted, with errors caught.
    pub fn create_buffer(&mut self, what: &'static str, bytes: u64, usage: wgpu::BufferUsages) -> Result<wgpu::Buffer> {
        let limit = self.summary.max_binding;
        if bytes > limit {
            return Err(WgpuError::TooLarge { what, bytes, limit });
        }
        let size = bytes.max(4).next_multiple_of(4);
        let desc = wgpu::BufferDescriptor { label: Some(what), size, usage, mapped_at_creation: false };
        let buffer = self.scoped(|d| d.create_buffer(&desc)).map_err(|e| match e {
            WgpuError::OutOfMemory(_) => WgpuError::OutOfMemory(format!("{what}: {bytes} bytes")),
            other => other,
        })?;
        self.counters.buffers += 1;
        Ok(buffer)
    }

    /// Waits until the queue is idle.
    pub fn wait(&self) -> Result<()> {
        self.check()?;
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| WgpuError::Internal(format!("waiting for the GPU: {e}")))?;
        self.check()
    }

    /// Workgroup counts for `groups` workgroups on a 2D grid (x first), within the
    /// adapter's per-dimension limit.
    pub fn grid(&self, groups: u64) -> Result<[u32; 3]> {
        let max = self.limits.max_compute_workgroups_per_dimension.max(1) as u64;
        if groups <= max {
            return Ok([groups as u32, 1, 1]);
        }
        let y = groups.div_ceil(max);
        if y > max {
            return Err(WgpuError::Unsupported(format!("{groups} workgroups in one dispatch")));
        }
        Ok([max as u32, y as u32, 1])
    }

    /// Checks a workgroup count against the per-dimension limit.
    pub fn dim(&self, what: &'static str, groups: usize) -> Result<u32> {
        let max = self.limits.max_compute_workgroups_per_dimension as usize;
        if groups > max {
            return Err(WgpuError::Unsupported(format!("{what}: {groups} workgroups exceed the adapter's {max}")));
        }
        Ok(groups as u32)
    }

    /// Releases the device; every later call fails with [`WgpuError::DeviceLost`].
    pub fn destroy(&self) {
        self.device.destroy();
        let mut slot = lock(&self.sink.lost);
        if slot.is_none() {
            *slot = Some("the device was released".into());
        }
    }
}
