//! The CUDA driver device: one context, one stream, the kernels compiled by
//! NVRTC (once per process and program), cuBLAS when it is installed.
//!
//! Every library is opened at run time (cudarc's dynamic loading). cudarc
//! panics when a library it needs is missing, so [`DriverDevice::open`] checks
//! that the driver and NVRTC libraries can be opened before any call, and runs
//! the first calls under `catch_unwind` as a last line of defence.

use crate::compile::{compiled, nvrtc_architectures, targets, Image, Target};
use crate::device::{Allocation, Device, Sgemm};
use crate::error::{CudaError, CudaResult};
use crate::launch::{Geometry, Kernel};
use crate::params::MAX_PARAM_BYTES;
use crate::source::Program;
use cudarc::driver::{
    result as dresult, sys as dsys, CudaContext, CudaFunction, CudaModule, CudaStream, DevicePtr, LaunchConfig,
    PushKernelArg,
};
use cudarc::nvrtc::{self, Ptx};
use std::collections::HashMap;
use std::sync::Arc;

fn driver_error(during: &'static str) -> impl FnOnce(dresult::DriverError) -> CudaError {
    move |e| CudaError::Driver { during, message: format!("{e}") }
}

/// Options of the real device.
///
/// The default is the first GPU, with cuBLAS; a GPU that does not exist is
/// an error, never a panic:
///
/// ```
/// use brt_cuda::{Cuda, DeviceOptions};
///
/// assert_eq!(DeviceOptions::default(), DeviceOptions { ordinal: 0, cublas: true });
/// let options = DeviceOptions { ordinal: 7, ..DeviceOptions::default() };
/// let err = Cuda::with_options(options).unwrap_err();
/// assert!(err.is_unavailable(), "{err}");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceOptions {
    /// Which GPU (0 is the first).
    pub ordinal: usize,
    /// Use cuBLAS for products with f32 weights when it is installed (the
    /// default); otherwise, and always for f16/bf16 weights, brt's own kernel.
    pub cublas: bool,
}

impl Default for DeviceOptions {
    fn default() -> Self {
        DeviceOptions { ordinal: 0, cublas: true }
    }
}

/// Whether the libraries the backend cannot work without can be opened.
/// Calls nothing in them.
pub(crate) fn check_libraries() -> CudaResult<()> {
    // SAFETY: `is_culib_present` only tries to open the library under its
    // candidate names (dlopen) and closes it again; it calls no CUDA function.
    if !unsafe { dsys::is_culib_present() } {
        return Err(CudaError::NoDriverLibrary);
    }
    // SAFETY: as above, for libnvrtc.
    if !unsafe { nvrtc::sys::is_culib_present() } {
        return Err(CudaError::NoNvrtcLibrary);
    }
    Ok(())
}

/// Runs `f`, turning a panic inside the CUDA bindings into an error.
pub(crate) fn guarded<T>(f: impl FnOnce() -> CudaResult<T>) -> CudaResult<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) => {
            let message = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            Err(CudaError::Bindings(message))
        }
    }
}

/// A cuBLAS handle bound to the backend's stream.
struct Blas {
    handle: cudarc::cublas::sys::cublasHandle_t,
}

// SAFETY: a cuBLAS handle may be used from any thread as long as it is not used
// by two threads at once; `Blas` is only reached through `&mut DriverDevice`.
unsafe impl Send for Blas {}

impl Drop for Blas {
    fn drop(&mut self) {
        // SAFETY: the handle was created by `create_handle` and is destroyed once.
        // An error here cannot be reported; the context is going away anyway.
        let _ = unsafe { cudarc::cublas::result::destroy_handle(self.handle) };
    }
}

fn blas_error(during: &'static str) -> impl FnOnce(cudarc::cublas::result::CublasError) -> CudaError {
    move |e| CudaError::Blas { during, message: format!("{e}") }
}

/// The real GPU.
pub(crate) struct DriverDevice {
    // Field order is drop order: handles and modules before the stream, the
    // stream before the context.
    blas: Option<Blas>,
    functions: HashMap<Program, HashMap<&'static str, CudaFunction>>,
    modules: Vec<Arc<CudaModule>>,
    stream: Arc<CudaStream>,
    ctx: Arc<CudaContext>,
    /// What to compile for, best first; the first that loads is kept.
    targets: Vec<Target>,
    description: String,
}

impl DriverDevice {
    /// Opens GPU `options.ordinal`, compiles and loads the common kernels, and
    /// opens cuBLAS when asked for and installed.
    pub(crate) fn open(options: DeviceOptions) -> CudaResult<DriverDevice> {
        check_libraries()?;
        guarded(|| DriverDevice::open_checked(options))
    }

    fn open_checked(options: DeviceOptions) -> CudaResult<DriverDevice> {
        match dresult::init() {
            Ok(()) => {}
            Err(e) if e.0 == dsys::CUresult::CUDA_ERROR_NO_DEVICE => {
                return Err(CudaError::NoDevice { ordinal: options.ordinal, count: 0 })
            }
            // What a machine without a working GPU says (e.g. the toolkit's
            // stub libcuda.so, or a driver whose kernel module is missing).
            Err(e)
                if matches!(
                    e.0,
                    dsys::CUresult::CUDA_ERROR_STUB_LIBRARY
                        | dsys::CUresult::CUDA_ERROR_DEVICE_UNAVAILABLE
                        | dsys::CUresult::CUDA_ERROR_SYSTEM_DRIVER_MISMATCH
                        | dsys::CUresult::CUDA_ERROR_SYSTEM_NOT_READY
                ) =>
            {
                return Err(CudaError::DriverUnusable { reason: format!("{:?}", e.0) })
            }
            Err(e) => return Err(driver_error("initialisation (cuInit)")(e)),
        }
        let count = CudaContext::device_count().map_err(driver_error("counting devices"))?;
        let count = usize::try_from(count).unwrap_or(0);
        if options.ordinal >= count {
            return Err(CudaError::NoDevice { ordinal: options.ordinal, count });
        }
        let ctx = CudaContext::new(options.ordinal).map_err(driver_error("creating the context"))?;
        // SAFETY: the backend uses exactly one stream, so cudarc's events that
        // order work between streams are not needed; disabling them before any
        // allocation means no buffer ever records one.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.new_stream().map_err(driver_error("creating the stream"))?;
        let (major, minor) = ctx.compute_capability().map_err(driver_error("reading the compute capability"))?;
        let targets = targets(major * 10 + minor, &nvrtc_architectures()?)?;
        let name = ctx.name().unwrap_or_else(|_| "unnamed GPU".into());

        let blas = if options.cublas {
            // SAFETY: only tries to open libcublas (dlopen); calls nothing.
            if unsafe { cudarc::cublas::sys::is_culib_present() } {
                let handle = cudarc::cublas::result::create_handle().map_err(blas_error("creating the handle"))?;
                let blas = Blas { handle };
                // SAFETY: valid handle and stream of the current context.
                unsafe { cudarc::cublas::result::set_stream(blas.handle, stream.cu_stream() as _) }
                    .map_err(blas_error("binding the stream"))?;
                // f32 products stay f32: no TF32 or other reduced precision.
                // SAFETY: valid handle.
                unsafe {
                    cudarc::cublas::sys::cublasSetMathMode(
                        blas.handle,
                        cudarc::cublas::sys::cublasMath_t::CUBLAS_DEFAULT_MATH,
                    )
                }
                .result()
                .map_err(blas_error("setting the math mode"))?;
                Some(blas)
            } else {
                None
            }
        } else {
            None
        };
        let description = format!(
            "{name} (compute capability {major}.{minor}); products with f32 weights: {}",
            if blas.is_some() { "cuBLAS" } else { "brt kernels (cuBLAS not found or disabled)" }
        );
        let mut device =
            DriverDevice { blas, functions: HashMap::new(), modules: Vec::new(), stream, ctx, targets, description };
        device.load(Program::Common)?;
        let kind = match device.targets.first() {
            Some(Target::Cubin(arch)) => format!("; kernels: sm_{arch} machine code"),
            Some(Target::Ptx(arch)) => format!("; kernels: compute_{arch} PTX compiled by the driver"),
            None => String::new(),
        };
        device.description.push_str(&kind);
        Ok(device)
    }

    /// Loads `program` into the context (compiling it if this process has not
    /// yet), trying the targets best first; a target that fails to compile or
    /// load is dropped for good.
    fn load(&mut self, program: Program) -> CudaResult<()> {
        if self.functions.contains_key(&program) {
            return Ok(());
        }
        self.bind()?;
        let mut failures = Vec::new();
        while let Some(&target) = self.targets.first() {
            match self.load_target(program, target) {
                Ok((module, functions)) => {
                    self.modules.push(module);
                    self.functions.insert(program, functions);
                    return Ok(());
                }
                Err(e) => {
                    failures.push(format!("{target:?}: {e}"));
                    if self.targets.len() == 1 {
                        return Err(e);
                    }
                    self.targets.remove(0);
                }
            }
        }
        Err(CudaError::Unsupported(format!("no way to build the kernels for this GPU: {}", failures.join("; "))))
    }

    fn load_target(
        &self,
        program: Program,
        target: Target,
    ) -> CudaResult<(Arc<CudaModule>, HashMap<&'static str, CudaFunction>)> {
        let image = compiled(target, program)?;
        let code = match &*image {
            Image::Cubin(bytes) => Ptx::from_binary(bytes.clone()),
            Image::Ptx(text) => Ptx::from_src(text.as_str()),
        };
        let module = self.ctx.load_module(code).map_err(driver_error("loading the compiled kernels"))?;
        let mut functions = HashMap::new();
        for &name in program.kernels() {
            let f = module.load_function(name).map_err(driver_error("finding a kernel"))?;
            functions.insert(name, f);
        }
        Ok((module, functions))
    }

    fn bind(&self) -> CudaResult<()> {
        self.ctx.bind_to_thread().map_err(driver_error("binding the context"))
    }
}

impl Device for DriverDevice {
    fn describe(&self) -> String {
        self.description.clone()
    }

    fn alloc(&mut self, bytes: usize) -> CudaResult<(Allocation, u64)> {
        self.bind()?;
        let slice = self.stream.alloc_zeros::<u8>(bytes).map_err(driver_error("allocating device memory"))?;
        let address = {
            // With event tracking off the guard records nothing when dropped.
            let (address, _guard) = slice.device_ptr(&self.stream);
            address
        };
        Ok((Allocation::Driver(slice), address))
    }

    fn upload(&mut self, dst: u64, src: &[u8]) -> CudaResult<()> {
        if src.is_empty() {
            return Ok(());
        }
        self.bind()?;
        // SAFETY: the backend checked that `dst .. dst + src.len()` lies inside
        // one of its live allocations. From pageable host memory the call
        // returns once `src` has been staged, so `src` may be reused after it.
        unsafe { dresult::memcpy_htod_async(dst, src, self.stream.cu_stream()) }
            .map_err(driver_error("copying to the device"))
    }

    fn download(&mut self, src: u64, dst: &mut [u8]) -> CudaResult<()> {
        if dst.is_empty() {
            return self.sync();
        }
        self.bind()?;
        // SAFETY: the backend checked that `src .. src + dst.len()` lies inside
        // one of its live allocations; `dst` is borrowed until the stream has
        // been synchronised below.
        unsafe { dresult::memcpy_dtoh_async(dst, src, self.stream.cu_stream()) }
            .map_err(driver_error("copying from the device"))?;
        self.sync()
    }

    fn copy(&mut self, dst: u64, src: u64, bytes: usize) -> CudaResult<()> {
        if bytes == 0 {
            return Ok(());
        }
        self.bind()?;
        // SAFETY: both ranges were checked against live allocations; they do not
        // overlap (distinct buffers, by the borrow rules of the Kernels API).
        unsafe { dresult::memcpy_dtod_async(dst, src, bytes, self.stream.cu_stream()) }
            .map_err(driver_error("copying on the device"))
    }

    fn launch(&mut self, kernel: Kernel, geometry: Geometry, params: &[u8]) -> CudaResult<()> {
        if params.len() > MAX_PARAM_BYTES {
            return Err(CudaError::Unsupported(format!("{} parameters of {} bytes", kernel.name(), params.len())));
        }
        self.load(kernel.program())?;
        self.bind()?;
        let function = self
            .functions
            .get(&kernel.program())
            .and_then(|f| f.get(kernel.name()))
            .ok_or_else(|| CudaError::Unsupported(format!("kernel {} is not in its program", kernel.name())))?;
        // The parameter struct, copied into an 8-byte aligned block; the driver
        // reads as many bytes as the kernel's parameter has.
        let mut block = [0u64; MAX_PARAM_BYTES / 8];
        bytemuck::cast_slice_mut::<u64, u8>(&mut block)[..params.len()].copy_from_slice(params);
        let config =
            LaunchConfig { grid_dim: (geometry.grid, 1, 1), block_dim: (geometry.block, 1, 1), shared_mem_bytes: 0 };
        let mut launch = self.stream.launch_builder(function);
        launch.arg(&block);
        // SAFETY: the kernel takes one struct parameter whose layout is `params`
        // (src/params.rs, checked against the CUDA C static_asserts); every
        // address inside it was checked by the backend to cover the kernel's
        // whole extent in live allocations; the geometry is what the kernel
        // expects (src/launch.rs); `block` outlives the launch call, which copies it.
        unsafe { launch.launch(config) }.map_err(driver_error("launching a kernel"))?;
        Ok(())
    }

    fn has_blas(&self) -> bool {
        self.blas.is_some()
    }

    fn sgemm(&mut self, g: &Sgemm) -> CudaResult<()> {
        use cudarc::cublas::sys::cublasOperation_t::{CUBLAS_OP_N, CUBLAS_OP_T};
        let blas = self.blas.as_ref().ok_or_else(|| CudaError::Unsupported("cuBLAS is not loaded".into()))?;
        self.ctx.bind_to_thread().map_err(driver_error("binding the context"))?;
        let op = |t: bool| if t { CUBLAS_OP_T } else { CUBLAS_OP_N };
        // SAFETY: the backend checked that A, B and C (with their leading
        // dimensions) lie inside live allocations; alpha and beta are host
        // values (the handle's default pointer mode).
        unsafe {
            cudarc::cublas::result::sgemm(
                blas.handle,
                op(g.transpose_a),
                op(g.transpose_b),
                g.m,
                g.n,
                g.k,
                &g.alpha,
                g.a as *const f32,
                g.lda,
                g.b as *const f32,
                g.ldb,
                &g.beta,
                g.c as *mut f32,
                g.ldc,
            )
        }
        .map_err(blas_error("sgemm"))
    }

    fn sync(&mut self) -> CudaResult<()> {
        self.bind()?;
        self.stream.synchronize().map_err(driver_error("waiting for the GPU"))
    }
}
