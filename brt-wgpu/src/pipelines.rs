//! The kernels' binding signatures, their layouts and the compute pipelines of
//! every variant in use, created once and kept.

use crate::device::Gpu;
use crate::error::Result;
use crate::shaders;
use brt_core::WeightDtype;
use std::collections::HashMap;
use std::num::NonZeroU64;

/// Bytes of one kernel's parameter block (binding 0, a uniform at a dynamic offset).
pub(crate) const PARAM_BYTES: u64 = 128;
/// 32-bit words of one parameter block.
pub(crate) const PARAM_WORDS: usize = (PARAM_BYTES / 4) as usize;

/// The compute kernels (one WGSL file each).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Kernel {
    Copy,
    Fill,
    CopyWeights,
    Embed,
    AddPositions,
    GateFixed,
    GateLstm,
    RmsNorm,
    L2Normalize,
    Matmul,
    MatVec,
    Attention,
    LinearAttention,
}

/// How a storage binding is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    Read,
    ReadWrite,
}

use Access::{Read as R, ReadWrite as RW};

impl Kernel {
    /// Every kernel.
    pub const ALL: [Kernel; 13] = [
        Kernel::Copy,
        Kernel::Fill,
        Kernel::CopyWeights,
        Kernel::Embed,
        Kernel::AddPositions,
        Kernel::GateFixed,
        Kernel::GateLstm,
        Kernel::RmsNorm,
        Kernel::L2Normalize,
        Kernel::Matmul,
        Kernel::MatVec,
        Kernel::Attention,
        Kernel::LinearAttention,
    ];

    /// The storage bindings `1..`, in order (binding 0 is the parameter block).
    pub const fn bindings(self) -> &'static [Access] {
        match self {
            Kernel::Copy => &[R, RW],
            Kernel::Fill => &[RW],
            Kernel::CopyWeights => &[R, RW],
            Kernel::Embed => &[R, R, RW],
            Kernel::AddPositions => &[RW, R],
            Kernel::GateFixed => &[RW, R, R],
            Kernel::GateLstm => &[RW, R, R, R, R, R],
            Kernel::RmsNorm => &[R, R, RW],
            Kernel::L2Normalize => &[RW],
            Kernel::Matmul | Kernel::MatVec => &[R, R, RW],
            Kernel::Attention => &[R, R, R, R, R, RW],
            Kernel::LinearAttention => &[R, R, R, R, RW, RW],
        }
    }

    /// Names of the parameter (weight) bindings, whose storage type is specialised.
    pub const fn weight_names(self) -> &'static [&'static str] {
        match self {
            Kernel::Copy | Kernel::Fill | Kernel::L2Normalize => &[],
            Kernel::CopyWeights => &["src"],
            Kernel::Embed | Kernel::AddPositions => &["table"],
            Kernel::GateFixed => &["bias"],
            Kernel::GateLstm => &["fbias", "ibias"],
            Kernel::RmsNorm => &["scale"],
            Kernel::Matmul | Kernel::MatVec => &["w"],
            Kernel::Attention => &["scale", "bias"],
            Kernel::LinearAttention => &["scale"],
        }
    }

    /// Whether the kernel has a workgroup reduction (and so a subgroup variant).
    pub const fn reduces(self) -> bool {
        matches!(self, Kernel::RmsNorm | Kernel::L2Normalize | Kernel::MatVec)
    }
}

/// One compiled variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct PipelineKey {
    kernel: Kernel,
    dtypes: [WeightDtype; 2],
    subgroups: bool,
}

impl PipelineKey {
    /// The variant of `kernel` for parameters stored as `dtypes`, with unused
    /// choices normalised so that equal programs share a key.
    pub fn new(kernel: Kernel, dtypes: [WeightDtype; 2], subgroups: bool) -> PipelineKey {
        let mut normal = [WeightDtype::F32; 2];
        let used = kernel.weight_names().len();
        normal[..used].copy_from_slice(&dtypes[..used]);
        PipelineKey { kernel, dtypes: normal, subgroups: subgroups && kernel.reduces() }
    }

    /// The kernel this variant compiles.
    pub fn kernel(&self) -> Kernel {
        self.kernel
    }
}

/// Layouts and pipelines, created on first need (at load time for a model's
/// storage type) and reused for the life of the backend.
#[derive(Debug, Default)]
pub(crate) struct Pipelines {
    layouts: HashMap<Kernel, (wgpu::BindGroupLayout, wgpu::PipelineLayout)>,
    pipelines: HashMap<PipelineKey, wgpu::ComputePipeline>,
}

impl Pipelines {
    /// The bind group layout of `kernel`.
    pub fn bind_layout(&mut self, gpu: &mut Gpu, kernel: Kernel) -> Result<wgpu::BindGroupLayout> {
        if let Some((layout, _)) = self.layouts.get(&kernel) {
            return Ok(layout.clone());
        }
        let mut entries = vec![wgpu::BindGroupLayoutEntry {
            binding: 0,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: true,
                min_binding_size: NonZeroU64::new(PARAM_BYTES),
            },
            count: None,
        }];
        for (i, access) in kernel.bindings().iter().enumerate() {
            entries.push(wgpu::BindGroupLayoutEntry {
                binding: i as u32 + 1,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage { read_only: *access == Access::Read },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            });
        }
        let label = format!("{kernel:?}");
        let (bind, pipeline) = gpu.scoped(|d| {
            let bind =
                d.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor { label: Some(&label), entries: &entries });
            let pipeline = d.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(&label),
                bind_group_layouts: &[Some(&bind)],
                immediate_size: 0,
            });
            (bind, pipeline)
        })?;
        gpu.counters.layouts += 2;
        self.layouts.insert(kernel, (bind.clone(), pipeline));
        Ok(bind)
    }

    /// The pipeline for `key`, compiling it if this is its first use.
    pub fn get(&mut self, gpu: &mut Gpu, key: PipelineKey) -> Result<wgpu::ComputePipeline> {
        if let Some(p) = self.pipelines.get(&key) {
            return Ok(p.clone());
        }
        self.bind_layout(gpu, key.kernel)?;
        let Some((_, layout)) = self.layouts.get(&key.kernel) else {
            return Err(crate::WgpuError::Internal("pipeline layout missing after creation".into()));
        };
        let source = shaders::source(key.kernel, key.dtypes, key.subgroups);
        let label = format!("{key:?}");
        let pipeline = gpu.scoped(|d| {
            let module = d.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(&label),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            });
            d.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(&label),
                layout: Some(layout),
                module: &module,
                entry_point: Some("main"),
                compilation_options: wgpu::PipelineCompilationOptions::default(),
                cache: None,
            })
        })?;
        gpu.counters.shader_modules += 1;
        gpu.counters.pipelines += 1;
        self.pipelines.insert(key, pipeline.clone());
        Ok(pipeline)
    }

    /// Compiles every kernel for parameters stored as `dtype` (load time).
    pub fn prepare(&mut self, gpu: &mut Gpu, dtype: WeightDtype) -> Result<()> {
        let subgroups = gpu.summary.subgroups;
        for kernel in Kernel::ALL {
            self.get(gpu, PipelineKey::new(kernel, [dtype; 2], subgroups))?;
        }
        Ok(())
    }
}
