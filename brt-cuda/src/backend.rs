//! [`Cuda`]: `brt_core::Storage` and `brt_core::Kernels` on a [`Device`].
//!
//! Every call checks the extents of its views on the host first (a
//! `BufferTooSmall` error, never an out-of-range access), then enqueues work on
//! the device's single stream. Nothing is allocated after the buffers the core
//! asks for: parameter structs travel by value with each launch.

use crate::device::{Allocation, Device, Sgemm};
use crate::driver::{DeviceOptions, DriverDevice};
use crate::error::{CudaError, CudaResult};
use crate::launch::{self, Geometry, Kernel, ATT_QUERIES, ATT_THREADS, MAX_HEAD_DIM, MM_THREADS, MM_TILE};
use crate::params::*;
use brt_core::desc::{Activation, Attention, Embed, Heads, LinearAttention, Mask, Matmul, Positions, Rows, Strided};
use brt_core::half::{bf16, f16};
use brt_core::kernels::check_extent;
use brt_core::{CoreError, KResult, Kernels, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
use bytemuck::Pod;
use std::sync::atomic::{AtomicU64, Ordering};

/// Distinguishes backends, so that a buffer of one is refused by another.
static NEXT_BACKEND: AtomicU64 = AtomicU64::new(1);

/// Values converted per piece when parameters are written.
const CONVERT_CHUNK: usize = 1 << 20;

/// Device memory of one buffer.
struct Buffer {
    allocation: Allocation,
    address: u64,
    owner: u64,
}

impl Buffer {
    fn is_empty(&self) -> bool {
        matches!(self.allocation, Allocation::Empty)
    }
}

/// An f32 activation, state or scratch buffer in device memory.
///
/// A new tensor holds zeros; a write past its end is refused on the host
/// before anything reaches the device (where there is no GPU, this example
/// runs on the kernel emulator when the crate is built with feature
/// `emulator`, and otherwise prints why and stops):
///
/// ```
/// use brt_core::{CoreError, Storage};
/// use brt_cuda::Cuda;
///
/// # let required = brt_core::requires_gpu(std::env::var(brt_core::REQUIRE_GPU_VAR).ok().as_deref());
/// # let mut k = match brt_cuda::Cuda::new() {
/// #     Ok(k) => k,
/// #     Err(e) if required => return Err(e),
/// #     #[cfg(feature = "emulator")] // no GPU: the same kernels on the CPU
/// #     Err(_) => brt_cuda::Cuda::emulated(Default::default()),
/// #     #[cfg(not(feature = "emulator"))]
/// #     Err(e) => return Ok(println!("no CUDA GPU here, skipped: {e}")),
/// # };
/// let mut t = k.alloc_tensor(4)?;
/// assert_eq!(Cuda::tensor_len(&t), 4);
/// k.write_tensor(&mut t, 1, &[2.0, 3.0])?;
/// let mut back = [9f32; 4];
/// k.read_tensor(&t, 0, &mut back)?;
/// assert_eq!(back, [0.0, 2.0, 3.0, 0.0]);
/// let past_end = k.write_tensor(&mut t, 3, &[1.0, 2.0]).unwrap_err();
/// let needed = CoreError::BufferTooSmall { what: "tensor write", needed: 5, available: 4 };
/// assert_eq!(past_end.core(), Some(needed));
/// # Ok::<(), brt_cuda::CudaError>(())
/// ```
pub struct CudaTensor {
    buffer: Buffer,
    len: usize,
}

/// A parameter buffer in device memory, stored as f32, f16 or bf16.
///
/// Values are converted to the storage type when written, and back to f32 by
/// the kernels: here [`Kernels::copy_weights`] reads f16 parameters into a
/// tensor (where there is no GPU, it runs on the kernel emulator when the
/// crate is built with feature `emulator`, and otherwise prints why and stops):
///
/// ```
/// use brt_core::{desc::Strided, Kernels, Storage, ViewMut, WeightData, WeightDtype, WeightView};
///
/// # let required = brt_core::requires_gpu(std::env::var(brt_core::REQUIRE_GPU_VAR).ok().as_deref());
/// # let mut k = match brt_cuda::Cuda::new() {
/// #     Ok(k) => k,
/// #     Err(e) if required => return Err(e),
/// #     #[cfg(feature = "emulator")] // no GPU: the same kernels on the CPU
/// #     Err(_) => brt_cuda::Cuda::emulated(Default::default()),
/// #     #[cfg(not(feature = "emulator"))]
/// #     Err(e) => return Ok(println!("no CUDA GPU here, skipped: {e}")),
/// # };
/// let mut w = k.alloc_weights(3, WeightDtype::F16)?;
/// k.write_weights(&mut w, 0, WeightData::F32(&[1.0, 0.1, 3.0]))?;
/// let mut t = k.alloc_tensor(3)?;
/// k.copy_weights(WeightView::new(&w, 0), ViewMut::new(&mut t, 0), Strided::contiguous(3))?;
/// let mut back = [0f32; 3];
/// k.read_tensor(&t, 0, &mut back)?;
/// assert_eq!(back, [1.0, brt_core::half::f16::from_f32(0.1).to_f32(), 3.0]);
/// # Ok::<(), brt_cuda::CudaError>(())
/// ```
pub struct CudaWeights {
    buffer: Buffer,
    len: usize,
    dtype: WeightDtype,
}

/// Token ids in device memory.
///
/// Ids 2 and 0 pick rows of a three-row table. The backend does not check ids against the
/// vocabulary (the model does, before it uploads them): the kernel gives an id of 3 a row of
/// zeros rather than read past the table (where there is no GPU, it runs on the kernel emulator
/// when the crate is built with feature `emulator`, and otherwise prints why and stops):
///
/// ```
/// use brt_core::{desc::Embed, Kernels, Storage, ViewMut, WeightData, WeightDtype, WeightView};
/// use brt_cuda::Cuda;
///
/// # let required = brt_core::requires_gpu(std::env::var(brt_core::REQUIRE_GPU_VAR).ok().as_deref());
/// # let mut k = match brt_cuda::Cuda::new() {
/// #     Ok(k) => k,
/// #     Err(e) if required => return Err(e),
/// #     #[cfg(feature = "emulator")] // no GPU: the same kernels on the CPU
/// #     Err(_) => brt_cuda::Cuda::emulated(Default::default()),
/// #     #[cfg(not(feature = "emulator"))]
/// #     Err(e) => return Ok(println!("no CUDA GPU here, skipped: {e}")),
/// # };
/// let mut table = k.alloc_weights(6, WeightDtype::F32)?; // 3 ids, 2 columns
/// k.write_weights(&mut table, 0, WeightData::F32(&[0.0, 0.5, 1.0, 1.5, 2.0, 2.5]))?;
/// let mut ids = k.alloc_tokens(2)?;
/// k.write_tokens(&mut ids, 0, &[2, 0])?;
/// assert_eq!(Cuda::tokens_len(&ids), 2);
/// let (mut out, desc) = (k.alloc_tensor(4)?, Embed::new(2, 3, 2)?);
/// k.embed(&ids, 0, WeightView::new(&table, 0), ViewMut::new(&mut out, 0), desc)?;
/// let mut rows = [0f32; 4];
/// k.read_tensor(&out, 0, &mut rows)?;
/// assert_eq!(rows, [2.0, 2.5, 0.0, 0.5]);
///
/// k.write_tokens(&mut ids, 1, &[3])?;
/// k.embed(&ids, 0, WeightView::new(&table, 0), ViewMut::new(&mut out, 0), desc)?;
/// k.read_tensor(&out, 0, &mut rows)?;
/// assert_eq!(rows, [2.0, 2.5, 0.0, 0.0]);
/// # Ok::<(), brt_cuda::CudaError>(())
/// ```
pub struct CudaTokens {
    buffer: Buffer,
    len: usize,
}

impl std::fmt::Debug for CudaTensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CudaTensor({} f32 at {:#x})", self.len, self.buffer.address)
    }
}
impl std::fmt::Debug for CudaWeights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CudaWeights({} {} at {:#x})", self.len, self.dtype.name(), self.buffer.address)
    }
}
impl std::fmt::Debug for CudaTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CudaTokens({} at {:#x})", self.len, self.buffer.address)
    }
}

impl CudaWeights {
    /// How the parameters are stored.
    ///
    /// The type asked for at allocation, two bytes a value for f16 and bf16; 8-bit Q8_0 (a
    /// CPU-only format) is refused (where there is no GPU, it runs on the kernel emulator when
    /// the crate is built with feature `emulator`, and otherwise prints why and stops):
    ///
    /// ```
    /// use brt_core::{Storage, WeightDtype};
    /// use brt_cuda::CudaError;
    ///
    /// # let required = brt_core::requires_gpu(std::env::var(brt_core::REQUIRE_GPU_VAR).ok().as_deref());
    /// # let mut k = match brt_cuda::Cuda::new() {
    /// #     Ok(k) => k,
    /// #     Err(e) if required => return Err(e),
    /// #     #[cfg(feature = "emulator")] // no GPU: the same kernels on the CPU
    /// #     Err(_) => brt_cuda::Cuda::emulated(Default::default()),
    /// #     #[cfg(not(feature = "emulator"))]
    /// #     Err(e) => return Ok(println!("no CUDA GPU here, skipped: {e}")),
    /// # };
    /// let bytes = k.allocated_bytes();
    /// assert_eq!(k.alloc_weights(5, WeightDtype::Bf16)?.dtype(), WeightDtype::Bf16);
    /// assert_eq!(k.allocated_bytes(), bytes + 10);
    /// assert!(matches!(k.alloc_weights(32, WeightDtype::Q8_0), Err(CudaError::Unsupported(_))));
    /// # Ok::<(), CudaError>(())
    /// ```
    pub fn dtype(&self) -> WeightDtype {
        self.dtype
    }
}

/// The CUDA backend: kernels compiled by NVRTC, run on one stream of one GPU.
///
/// Create it with [`Cuda::new`]; with no NVIDIA driver, no NVRTC or no GPU that
/// returns an error saying which ([`CudaError::is_unavailable`]).
///
/// A 2x3 by 3x2 product, checked against the one computed by hand (where there is no GPU, it
/// runs on the kernel emulator when the crate is built with feature `emulator`, and otherwise
/// prints why and stops):
///
/// ```
/// use brt_core::desc::Matmul;
/// use brt_core::{Kernels, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
///
/// # let required = brt_core::requires_gpu(std::env::var(brt_core::REQUIRE_GPU_VAR).ok().as_deref());
/// # let mut k = match brt_cuda::Cuda::new() {
/// #     Ok(k) => k,
/// #     Err(e) if required => return Err(e),
/// #     #[cfg(feature = "emulator")] // no GPU: the same kernels on the CPU
/// #     Err(_) => brt_cuda::Cuda::emulated(Default::default()),
/// #     #[cfg(not(feature = "emulator"))]
/// #     Err(e) => return Ok(println!("no CUDA GPU here, skipped: {e}")),
/// # };
/// // x (2, 3) and w (3, 2), row-major.
/// let (x, w) = ([1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], [7.0f32, 8.0, 9.0, 10.0, 11.0, 12.0]);
/// let mut xt = k.alloc_tensor(6)?;
/// k.write_tensor(&mut xt, 0, &x)?;
/// let mut wt = k.alloc_weights(6, WeightDtype::F32)?;
/// k.write_weights(&mut wt, 0, WeightData::F32(&w))?;
/// let mut out = k.alloc_tensor(4)?;
/// k.matmul(View::new(&xt, 0), WeightView::new(&wt, 0), ViewMut::new(&mut out, 0), Matmul::new(2, 3, 2)?)?;
/// let mut y = [0f32; 4];
/// k.read_tensor(&out, 0, &mut y)?; // waits for the product
/// assert_eq!(y, [58.0, 64.0, 139.0, 154.0]);
/// # Ok::<(), brt_cuda::CudaError>(())
/// ```
pub struct Cuda {
    device: Box<dyn Device>,
    id: u64,
    allocations: u64,
    allocated_bytes: u64,
}

impl std::fmt::Debug for Cuda {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cuda").field("device", &self.device.describe()).field("allocations", &self.allocations).finish()
    }
}

fn wdtype(dtype: WeightDtype) -> u32 {
    match dtype {
        // No Q8_0 buffer exists (`alloc_weights` refuses them).
        WeightDtype::F32 | WeightDtype::Q8_0 => WDTYPE_F32,
        WeightDtype::F16 => WDTYPE_F16,
        WeightDtype::Bf16 => WDTYPE_BF16,
    }
}

/// Bytes per value of a parameter buffer (no Q8_0 buffer exists).
fn value_size(dtype: WeightDtype) -> usize {
    dtype.size().unwrap_or(4)
}

fn activation_code(activation: Activation) -> u32 {
    match activation {
        Activation::Identity => ACT_IDENTITY,
        Activation::Relu => ACT_RELU,
        Activation::Tanh => ACT_TANH,
    }
}

fn size(what: &'static str, a: usize, b: usize) -> CudaResult<usize> {
    a.checked_mul(b).ok_or(CudaError::Core(CoreError::SizeOverflow { what }))
}

impl Cuda {
    /// The first GPU, with cuBLAS when it is installed (unless the environment
    /// variable `BRT_CUDA_CUBLAS` is `0`).
    ///
    /// Fails with [`CudaError::NoDriverLibrary`], [`CudaError::NoNvrtcLibrary`]
    /// or [`CudaError::NoDevice`] where there is no usable GPU.
    ///
    /// Either a backend, or an error that says what is missing and suggests
    /// the CPU backend (here the example then stops, unless `BRT_REQUIRE_GPU=1`
    /// asks for a GPU):
    ///
    /// ```
    /// use brt_cuda::{Cuda, CudaError};
    ///
    /// match Cuda::new() {
    ///     Ok(cuda) => println!("CUDA: {}", cuda.describe()),
    ///     Err(e) => {
    ///         # assert!(!brt_core::requires_gpu(std::env::var("BRT_REQUIRE_GPU").ok().as_deref()), "{e}");
    ///         assert!(e.is_unavailable() && e.to_string().contains("--backend cpu"), "{e}");
    ///         println!("no CUDA here: {e}");
    ///     }
    /// }
    /// ```
    pub fn new() -> CudaResult<Cuda> {
        let cublas = std::env::var("BRT_CUDA_CUBLAS").map(|v| v != "0").unwrap_or(true);
        Cuda::with_options(DeviceOptions { cublas, ..DeviceOptions::default() })
    }

    /// A GPU chosen by `options`.
    ///
    /// There is no GPU number 1000: where the driver is installed it says how
    /// many devices it sees, and where it is not, that it is missing:
    ///
    /// ```
    /// use brt_cuda::{Cuda, CudaError, DeviceOptions};
    ///
    /// let err = Cuda::with_options(DeviceOptions { ordinal: 1000, cublas: false }).unwrap_err();
    /// println!("{err}");
    /// assert!(err.is_unavailable(), "{err}");
    /// if let CudaError::NoDevice { ordinal, count } = err {
    ///     assert!(ordinal == 1000 && count < 1000);
    /// }
    /// ```
    pub fn with_options(options: DeviceOptions) -> CudaResult<Cuda> {
        Ok(Cuda::on(Box::new(DriverDevice::open(options)?)))
    }

    /// The kernel emulator: the same kernels and host logic, run on the CPU
    /// (slow; for tests where there is no GPU).
    ///
    /// An emulator that runs products with brt's own kernel (no emulated
    /// cuBLAS) and its threads in a shuffled order, on a 1x2 by 2x1 product:
    ///
    /// ```
    /// use brt_core::desc::Matmul;
    /// use brt_core::{Kernels, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
    /// use brt_cuda::emulator::{EmulatorOptions, ThreadOrder};
    /// use brt_cuda::Cuda;
    ///
    /// let mut k = Cuda::emulated(EmulatorOptions { cublas: false, order: ThreadOrder::Shuffled(7) });
    /// assert!(k.describe().contains("kernel emulator"));
    /// let (mut x, mut y) = (k.alloc_tensor(2)?, k.alloc_tensor(1)?);
    /// let mut w = k.alloc_weights(2, WeightDtype::F32)?;
    /// k.write_tensor(&mut x, 0, &[1.0, 2.0])?;
    /// k.write_weights(&mut w, 0, WeightData::F32(&[3.0, 4.0]))?;
    /// k.matmul(View::new(&x, 0), WeightView::new(&w, 0), ViewMut::new(&mut y, 0), Matmul::new(1, 2, 1)?)?;
    /// let mut out = [0f32];
    /// k.read_tensor(&y, 0, &mut out)?;
    /// assert_eq!(out, [11.0]);
    /// # Ok::<(), brt_cuda::CudaError>(())
    /// ```
    #[cfg(feature = "emulator")]
    pub fn emulated(options: crate::emulator::EmulatorOptions) -> Cuda {
        Cuda::on(Box::new(crate::emulator::EmuDevice::new(options)))
    }

    fn on(device: Box<dyn Device>) -> Cuda {
        Cuda { device, id: NEXT_BACKEND.fetch_add(1, Ordering::Relaxed), allocations: 0, allocated_bytes: 0 }
    }

    /// The GPU and libraries in use, for messages and logs.
    ///
    /// A line of text, never empty (where there is no GPU, it runs on the kernel emulator when
    /// the crate is built with feature `emulator`, and otherwise prints why and stops):
    ///
    /// ```
    /// # let required = brt_core::requires_gpu(std::env::var(brt_core::REQUIRE_GPU_VAR).ok().as_deref());
    /// # let k = match brt_cuda::Cuda::new() {
    /// #     Ok(k) => k,
    /// #     Err(e) if required => return Err(e),
    /// #     #[cfg(feature = "emulator")] // no GPU: the same kernels on the CPU
    /// #     Err(_) => brt_cuda::Cuda::emulated(Default::default()),
    /// #     #[cfg(not(feature = "emulator"))]
    /// #     Err(e) => return Ok(println!("no CUDA GPU here, skipped: {e}")),
    /// # };
    /// let text = k.describe();
    /// println!("CUDA backend: {text}");
    /// assert!(!text.is_empty() && !text.contains('\n'));
    /// # Ok::<(), brt_cuda::CudaError>(())
    /// ```
    pub fn describe(&self) -> String {
        self.device.describe()
    }

    /// Device allocations made by this backend so far (each `alloc_*` of a
    /// non-empty buffer is one). A running stream makes none.
    ///
    /// An empty buffer takes no device allocation, and reads and writes make
    /// none (where there is no GPU, it runs on the kernel emulator when
    /// the crate is built with feature `emulator`, and otherwise prints why and stops):
    ///
    /// ```
    /// use brt_core::Storage;
    ///
    /// # let required = brt_core::requires_gpu(std::env::var(brt_core::REQUIRE_GPU_VAR).ok().as_deref());
    /// # let mut k = match brt_cuda::Cuda::new() {
    /// #     Ok(k) => k,
    /// #     Err(e) if required => return Err(e),
    /// #     #[cfg(feature = "emulator")] // no GPU: the same kernels on the CPU
    /// #     Err(_) => brt_cuda::Cuda::emulated(Default::default()),
    /// #     #[cfg(not(feature = "emulator"))]
    /// #     Err(e) => return Ok(println!("no CUDA GPU here, skipped: {e}")),
    /// # };
    /// let mut t = k.alloc_tensor(4)?;
    /// let _empty = k.alloc_tensor(0)?;
    /// assert_eq!(k.allocations(), 1);
    /// k.write_tensor(&mut t, 0, &[1.0; 4])?;
    /// k.read_tensor(&t, 0, &mut [0.0; 4])?;
    /// assert_eq!(k.allocations(), 1);
    /// # Ok::<(), brt_cuda::CudaError>(())
    /// ```
    pub fn allocations(&self) -> u64 {
        self.allocations
    }

    /// Bytes of device memory allocated by this backend so far.
    ///
    /// Four bytes an f32 value or token id, two an f16 value (where there is no GPU, it runs on
    /// the kernel emulator when the crate is built with feature `emulator`, and otherwise
    /// prints why and stops):
    ///
    /// ```
    /// use brt_core::{Storage, WeightDtype};
    ///
    /// # let required = brt_core::requires_gpu(std::env::var(brt_core::REQUIRE_GPU_VAR).ok().as_deref());
    /// # let mut k = match brt_cuda::Cuda::new() {
    /// #     Ok(k) => k,
    /// #     Err(e) if required => return Err(e),
    /// #     #[cfg(feature = "emulator")] // no GPU: the same kernels on the CPU
    /// #     Err(_) => brt_cuda::Cuda::emulated(Default::default()),
    /// #     #[cfg(not(feature = "emulator"))]
    /// #     Err(e) => return Ok(println!("no CUDA GPU here, skipped: {e}")),
    /// # };
    /// let _x = k.alloc_tensor(4)?;
    /// let _ids = k.alloc_tokens(3)?;
    /// let _w = k.alloc_weights(5, WeightDtype::F16)?;
    /// assert_eq!(k.allocated_bytes(), 16 + 12 + 10);
    /// # Ok::<(), brt_cuda::CudaError>(())
    /// ```
    pub fn allocated_bytes(&self) -> u64 {
        self.allocated_bytes
    }

    fn allocate(&mut self, bytes: usize) -> CudaResult<Buffer> {
        if bytes == 0 {
            return Ok(Buffer { allocation: Allocation::Empty, address: 0, owner: self.id });
        }
        let (allocation, address) = self.device.alloc(bytes)?;
        self.allocations += 1;
        self.allocated_bytes += bytes as u64;
        Ok(Buffer { allocation, address, owner: self.id })
    }

    fn owned(&self, buffer: &Buffer) -> CudaResult<()> {
        if buffer.owner != self.id && !buffer.is_empty() {
            return Err(CoreError::Mismatch { what: "a buffer of another CUDA backend" }.into());
        }
        Ok(())
    }

    /// The device address of `view`, once `extent` elements from it are known
    /// to be inside its buffer.
    fn at(&self, what: &'static str, view: View<'_, CudaTensor>, extent: usize) -> CudaResult<u64> {
        Self::check_view(what, &view, extent)?;
        self.owned(&view.tensor.buffer)?;
        Ok(view.tensor.buffer.address + view.offset as u64 * 4)
    }

    fn at_mut(&self, what: &'static str, view: &ViewMut<'_, CudaTensor>, extent: usize) -> CudaResult<u64> {
        Self::check_view_mut(what, view, extent)?;
        self.owned(&view.tensor.buffer)?;
        Ok(view.tensor.buffer.address + view.offset as u64 * 4)
    }

    /// Address and storage type of a parameter view of `extent` elements.
    fn weights_at(
        &self,
        what: &'static str,
        view: WeightView<'_, CudaWeights>,
        extent: usize,
    ) -> CudaResult<(u64, WeightDtype)> {
        Self::check_weights(what, &view, extent)?;
        self.owned(&view.weights.buffer)?;
        let dtype = view.weights.dtype;
        Ok((view.weights.buffer.address + (view.offset * value_size(dtype)) as u64, dtype))
    }

    fn run<P: Pod>(&mut self, kernel: Kernel, geometry: Geometry, params: &P) -> CudaResult<()> {
        self.device.launch(kernel, geometry, bytemuck::bytes_of(params))
    }

    /// `out = act(alpha * x @ w (+ out))` through cuBLAS (f32 weights):
    /// row-major `out (m, n)` is column-major `out^T (n, m)`, and
    /// `out^T = w^T x^T` where row-major `w` read column-major is `w^T`
    /// (`(k, n)` stored, leading dimension `n`) or, for an `(n, k)` weight,
    /// `w` itself to be transposed (leading dimension `k`).
    #[allow(clippy::too_many_arguments)]
    fn matmul_blas(&mut self, x: u64, w: u64, out: u64, desc: &Matmul) -> CudaResult<bool> {
        let (m, k, n) = (desc.m(), desc.k(), desc.n());
        let limit = i32::MAX as usize;
        if n > limit || k > limit {
            return Ok(false);
        }
        // Rows per call, so that no operand of one call has more than 2^31 - 1
        // elements (cuBLAS takes 32-bit sizes).
        let rows_per_call = (limit / n.max(k)).clamp(1, limit);
        let out_in = desc.order() == brt_core::desc::WeightOrder::OutIn;
        let mut first = 0;
        while first < m {
            let rows = rows_per_call.min(m - first);
            let gemm = Sgemm {
                transpose_a: out_in,
                transpose_b: false,
                m: n as i32,
                n: rows as i32,
                k: k as i32,
                alpha: desc.alpha_value(),
                a: w,
                lda: if out_in { k as i32 } else { n as i32 },
                b: x + (first * k * 4) as u64,
                ldb: k as i32,
                beta: if desc.accumulates() { 1.0 } else { 0.0 },
                c: out + (first * n * 4) as u64,
                ldc: n as i32,
            };
            self.device.sgemm(&gemm)?;
            first += rows;
        }
        let code = activation_code(desc.activation_kind());
        if code != ACT_IDENTITY {
            let len = (m * n) as u64;
            let params = ActivationParams { x: out, len, activation: code, pad: 0 };
            self.run(Kernel::Activation, launch::elementwise(len), &params)?;
        }
        Ok(true)
    }
}

impl Storage for Cuda {
    type Error = CudaError;
    type Tensor = CudaTensor;
    type Weights = CudaWeights;
    type Tokens = CudaTokens;

    fn alloc_tensor(&mut self, len: usize) -> CudaResult<CudaTensor> {
        let bytes = size("tensor", len, 4)?;
        Ok(CudaTensor { buffer: self.allocate(bytes)?, len })
    }

    fn alloc_weights(&mut self, len: usize, dtype: WeightDtype) -> CudaResult<CudaWeights> {
        if dtype == WeightDtype::Q8_0 {
            return Err(CudaError::Unsupported(brt_core::encoding::Q8_0_CPU_ONLY.into()));
        }
        let bytes = size("parameters", len, value_size(dtype))?;
        Ok(CudaWeights { buffer: self.allocate(bytes)?, len, dtype })
    }

    fn alloc_tokens(&mut self, len: usize) -> CudaResult<CudaTokens> {
        let bytes = size("tokens", len, 4)?;
        Ok(CudaTokens { buffer: self.allocate(bytes)?, len })
    }

    fn tensor_len(tensor: &CudaTensor) -> usize {
        tensor.len
    }
    fn weights_len(weights: &CudaWeights) -> usize {
        weights.len
    }
    fn tokens_len(tokens: &CudaTokens) -> usize {
        tokens.len
    }

    fn write_tensor(&mut self, dst: &mut CudaTensor, offset: usize, src: &[f32]) -> CudaResult<()> {
        check_extent("tensor write", offset, src.len(), dst.len)?;
        self.owned(&dst.buffer)?;
        self.device.upload(dst.buffer.address + offset as u64 * 4, bytemuck::cast_slice(src))
    }

    fn read_tensor(&mut self, src: &CudaTensor, offset: usize, dst: &mut [f32]) -> CudaResult<()> {
        check_extent("tensor read", offset, dst.len(), src.len)?;
        self.owned(&src.buffer)?;
        if dst.is_empty() {
            return self.device.sync();
        }
        self.device.download(src.buffer.address + offset as u64 * 4, bytemuck::cast_slice_mut(dst))
    }

    fn write_weights(&mut self, dst: &mut CudaWeights, offset: usize, src: WeightData<'_>) -> CudaResult<()> {
        check_extent("weights write", offset, src.len(), dst.len)?;
        self.owned(&dst.buffer)?;
        let element = value_size(dst.dtype);
        let mut start = 0;
        while start < src.len() {
            let end = (start + CONVERT_CHUNK).min(src.len());
            let address = dst.buffer.address + ((offset + start) * element) as u64;
            match dst.dtype {
                WeightDtype::F32 | WeightDtype::Q8_0 => {
                    let values: Vec<f32> = match src {
                        WeightData::F32(v) => v[start..end].to_vec(),
                        WeightData::F16(v) => v[start..end].iter().map(|x| x.to_f32()).collect(),
                        WeightData::Bf16(v) => v[start..end].iter().map(|x| x.to_f32()).collect(),
                    };
                    self.device.upload(address, bytemuck::cast_slice(&values))?;
                }
                WeightDtype::F16 => {
                    let bits: Vec<u16> = match src {
                        WeightData::F32(v) => v[start..end].iter().map(|&x| f16::from_f32(x).to_bits()).collect(),
                        WeightData::F16(v) => v[start..end].iter().map(|x| x.to_bits()).collect(),
                        WeightData::Bf16(v) => {
                            v[start..end].iter().map(|x| f16::from_f32(x.to_f32()).to_bits()).collect()
                        }
                    };
                    self.device.upload(address, bytemuck::cast_slice(&bits))?;
                }
                WeightDtype::Bf16 => {
                    let bits: Vec<u16> = match src {
                        WeightData::F32(v) => v[start..end].iter().map(|&x| bf16::from_f32(x).to_bits()).collect(),
                        WeightData::F16(v) => {
                            v[start..end].iter().map(|x| bf16::from_f32(x.to_f32()).to_bits()).collect()
                        }
                        WeightData::Bf16(v) => v[start..end].iter().map(|x| x.to_bits()).collect(),
                    };
                    self.device.upload(address, bytemuck::cast_slice(&bits))?;
                }
            }
            start = end;
        }
        Ok(())
    }

    fn write_tokens(&mut self, dst: &mut CudaTokens, offset: usize, src: &[u32]) -> CudaResult<()> {
        check_extent("tokens write", offset, src.len(), dst.len)?;
        self.owned(&dst.buffer)?;
        self.device.upload(dst.buffer.address + offset as u64 * 4, bytemuck::cast_slice(src))
    }

    fn sync(&mut self) -> CudaResult<()> {
        self.device.sync()
    }
}

impl Kernels for Cuda {
    fn embed(
        &mut self,
        tokens: &CudaTokens,
        token_offset: usize,
        table: WeightView<'_, CudaWeights>,
        out: ViewMut<'_, CudaTensor>,
        desc: Embed,
    ) -> KResult<Self> {
        let (count, vocab, dim) = (desc.count(), desc.vocab(), desc.dim());
        check_extent("embed tokens", token_offset, count, tokens.len)?;
        self.owned(&tokens.buffer)?;
        let (table, dtype) = self.weights_at("embedding table", table, vocab * dim)?;
        let out = self.at_mut("embed output", &out, count * dim)?;
        if count == 0 {
            return Ok(());
        }
        let params = EmbedParams {
            tokens: tokens.buffer.address + token_offset as u64 * 4,
            table,
            out,
            count: count as u64,
            dim: dim as u64,
            vocab: vocab as u64,
            wdtype: wdtype(dtype),
            pad: 0,
        };
        self.run(Kernel::Embed, launch::elementwise((count * dim) as u64), &params)
    }

    fn rms_norm(
        &mut self,
        x: View<'_, CudaTensor>,
        scale: WeightView<'_, CudaWeights>,
        out: ViewMut<'_, CudaTensor>,
        desc: Rows,
    ) -> KResult<Self> {
        let x = self.at("rms_norm input", x, desc.len())?;
        let (scale, dtype) = self.weights_at("rms_norm scale", scale, desc.dim())?;
        let out = self.at_mut("rms_norm output", &out, desc.len())?;
        if desc.is_empty() {
            return Ok(());
        }
        let params = RmsNormParams {
            x,
            scale,
            out,
            rows: desc.rows() as u64,
            dim: desc.dim() as u64,
            wdtype: wdtype(dtype),
            pad: 0,
        };
        self.run(Kernel::RmsNorm, launch::reduction(desc.rows() as u64, desc.dim() as u64), &params)
    }

    fn add_positions(
        &mut self,
        x: ViewMut<'_, CudaTensor>,
        table: WeightView<'_, CudaWeights>,
        desc: Positions,
    ) -> KResult<Self> {
        let (table, dtype) = self.weights_at("position table", table, desc.positions() * desc.dim())?;
        let x = self.at_mut("add_positions input", &x, desc.len())?;
        if desc.is_empty() {
            return Ok(());
        }
        let params = PositionsParams {
            x,
            table,
            positions: desc.positions() as u64,
            batch: desc.batch() as u64,
            dim: desc.dim() as u64,
            wdtype: wdtype(dtype),
            pad: 0,
        };
        self.run(Kernel::AddPositions, launch::elementwise(desc.len() as u64), &params)
    }

    fn l2_normalize(&mut self, x: ViewMut<'_, CudaTensor>, desc: Heads) -> KResult<Self> {
        let x = self.at_mut("l2_normalize input", &x, desc.len())?;
        if desc.is_empty() {
            return Ok(());
        }
        let segments = (desc.rows() * desc.heads()) as u64;
        let params = L2NormParams { x, segments, head_dim: desc.head_dim() as u64 };
        self.run(Kernel::L2Normalize, launch::reduction(segments, desc.head_dim() as u64), &params)
    }

    fn matmul(
        &mut self,
        x: View<'_, CudaTensor>,
        w: WeightView<'_, CudaWeights>,
        out: ViewMut<'_, CudaTensor>,
        desc: Matmul,
    ) -> KResult<Self> {
        let (m, k, n) = (desc.m(), desc.k(), desc.n());
        let x = self.at("matmul input", x, m * k)?;
        let (w, dtype) = self.weights_at("matmul weight", w, k * n)?;
        let out = self.at_mut("matmul output", &out, m * n)?;
        if m == 0 {
            return Ok(());
        }
        if dtype == WeightDtype::F32 && self.device.has_blas() && self.matmul_blas(x, w, out, &desc)? {
            return Ok(());
        }
        let tiles = (m.div_ceil(MM_TILE) as u64).saturating_mul(n.div_ceil(MM_TILE) as u64);
        let geometry = launch::exact(tiles, MM_THREADS, "a product")?;
        let params = MatmulParams {
            x,
            w,
            out,
            m: m as u64,
            k: k as u64,
            n: n as u64,
            wdtype: wdtype(dtype),
            order: match desc.order() {
                brt_core::desc::WeightOrder::InOut => ORDER_IN_OUT,
                brt_core::desc::WeightOrder::OutIn => ORDER_OUT_IN,
            },
            accumulate: desc.accumulates() as u32,
            activation: activation_code(desc.activation_kind()),
            alpha: desc.alpha_value(),
            pad: 0,
        };
        self.run(Kernel::Matmul, geometry, &params)
    }

    fn attention(
        &mut self,
        q: View<'_, CudaTensor>,
        k: View<'_, CudaTensor>,
        v: View<'_, CudaTensor>,
        scale: WeightView<'_, CudaWeights>,
        bias: Option<WeightView<'_, CudaWeights>>,
        out: ViewMut<'_, CudaTensor>,
        desc: Attention,
    ) -> KResult<Self> {
        let heads = desc.heads();
        let q = self.at("attention queries", q, desc.query_len())?;
        let k = self.at("attention keys", k, desc.key_len())?;
        let v = self.at("attention values", v, desc.key_len())?;
        let (scale, dtype) = self.weights_at("attention scale", scale, heads)?;
        let bias = match bias {
            Some(b) => Some(self.weights_at("position bias table", b, heads * brt_core::params::T5_BUCKETS)?),
            None => None,
        };
        let (windowed, offset, window) = match desc.mask() {
            Mask::None => (false, 0, 0),
            Mask::Window { offset, window } => (true, offset, window),
        };
        if bias.is_some() && !windowed {
            return Err(CoreError::InvalidShape { what: "a position bias needs a window mask" }.into());
        }
        if let Some((_, bias_dtype)) = bias {
            if bias_dtype != dtype {
                return Err(CudaError::Unsupported(format!(
                    "attention scale stored as {} and position bias as {}",
                    dtype.name(),
                    bias_dtype.name()
                )));
            }
        }
        let out = self.at_mut("attention output", &out, desc.query_len())?;
        if desc.queries() == 0 {
            return Ok(());
        }
        let head_dim = desc.head_dim();
        if head_dim > MAX_HEAD_DIM {
            return Err(CudaError::Unsupported(format!("head width {head_dim} (at most {MAX_HEAD_DIM})")));
        }
        let blocks = (desc.batch() as u64)
            .saturating_mul(heads as u64)
            .saturating_mul(desc.queries().div_ceil(ATT_QUERIES) as u64);
        let geometry = launch::exact(blocks, ATT_THREADS, "attention")?;
        let params = AttentionParams {
            q,
            k,
            v,
            scale,
            bias: bias.map_or(0, |(address, _)| address),
            out,
            batch: desc.batch() as u64,
            queries: desc.queries() as u64,
            keys: desc.keys() as u64,
            heads: heads as u64,
            head_dim: head_dim as u64,
            offset: offset as u64,
            window: window as u64,
            wdtype: wdtype(dtype),
            has_bias: bias.is_some() as u32,
            windowed: windowed as u32,
            abs_scale: desc.abs_scale() as u32,
        };
        self.run(Kernel::Attention { head_dim }, geometry, &params)
    }

    fn linear_attention(
        &mut self,
        q: View<'_, CudaTensor>,
        k: View<'_, CudaTensor>,
        v: View<'_, CudaTensor>,
        scale: WeightView<'_, CudaWeights>,
        state: ViewMut<'_, CudaTensor>,
        out: ViewMut<'_, CudaTensor>,
        desc: LinearAttention,
    ) -> KResult<Self> {
        let q = self.at("linear attention queries", q, desc.token_len())?;
        let k = self.at("linear attention keys", k, desc.token_len())?;
        let v = self.at("linear attention values", v, desc.token_len())?;
        let (scale, dtype) = self.weights_at("linear attention scale", scale, desc.heads())?;
        let state = self.at_mut("linear attention state", &state, desc.state_len())?;
        let out = self.at_mut("linear attention output", &out, desc.token_len())?;
        if desc.tokens() == 0 {
            return Ok(());
        }
        let head_dim = desc.head_dim();
        if head_dim > MAX_HEAD_DIM {
            return Err(CudaError::Unsupported(format!("head width {head_dim} (at most {MAX_HEAD_DIM})")));
        }
        let blocks = (desc.batch() as u64).saturating_mul(desc.heads() as u64);
        let geometry = launch::exact(blocks, launch::linear_attention_threads(head_dim), "linear attention")?;
        let params = LinearAttentionParams {
            q,
            k,
            v,
            scale,
            state,
            out,
            batch: desc.batch() as u64,
            tokens: desc.tokens() as u64,
            heads: desc.heads() as u64,
            head_dim: head_dim as u64,
            wdtype: wdtype(dtype),
            abs_scale: desc.abs_scale() as u32,
        };
        self.run(Kernel::LinearAttention { head_dim }, geometry, &params)
    }

    fn gate_fixed(
        &mut self,
        state: ViewMut<'_, CudaTensor>,
        z: View<'_, CudaTensor>,
        bias: WeightView<'_, CudaWeights>,
        desc: Rows,
    ) -> KResult<Self> {
        let z = self.at("gate update", z, desc.len())?;
        let (bias, dtype) = self.weights_at("gate bias", bias, desc.dim())?;
        let state = self.at_mut("gated state", &state, desc.len())?;
        if desc.is_empty() {
            return Ok(());
        }
        let len = desc.len() as u64;
        let params = GateFixedParams { state, z, bias, len, dim: desc.dim() as u64, wdtype: wdtype(dtype), pad: 0 };
        self.run(Kernel::GateFixed, launch::elementwise(len), &params)
    }

    fn gate_lstm(
        &mut self,
        state: ViewMut<'_, CudaTensor>,
        z: View<'_, CudaTensor>,
        forget: View<'_, CudaTensor>,
        input: View<'_, CudaTensor>,
        forget_bias: WeightView<'_, CudaWeights>,
        input_bias: WeightView<'_, CudaWeights>,
        desc: Rows,
    ) -> KResult<Self> {
        let z = self.at("gate update", z, desc.len())?;
        let forget = self.at("forget gate input", forget, desc.len())?;
        let input = self.at("input gate input", input, desc.len())?;
        let (forget_bias, dtype) = self.weights_at("forget gate bias", forget_bias, desc.dim())?;
        let (input_bias, input_dtype) = self.weights_at("input gate bias", input_bias, desc.dim())?;
        if input_dtype != dtype {
            return Err(CudaError::Unsupported(format!(
                "gate biases stored as {} and {}",
                dtype.name(),
                input_dtype.name()
            )));
        }
        let state = self.at_mut("gated state", &state, desc.len())?;
        if desc.is_empty() {
            return Ok(());
        }
        let len = desc.len() as u64;
        let params = GateLstmParams {
            state,
            z,
            forget,
            input,
            forget_bias,
            input_bias,
            len,
            dim: desc.dim() as u64,
            wdtype: wdtype(dtype),
            pad: 0,
        };
        self.run(Kernel::GateLstm, launch::elementwise(len), &params)
    }

    fn copy(&mut self, src: View<'_, CudaTensor>, dst: ViewMut<'_, CudaTensor>, len: usize) -> KResult<Self> {
        let src = self.at("copy source", src, len)?;
        let dst = self.at_mut("copy destination", &dst, len)?;
        self.device.copy(dst, src, len * 4)
    }

    fn fill(&mut self, dst: ViewMut<'_, CudaTensor>, runs: Strided, value: f32) -> KResult<Self> {
        let dst = self.at_mut("fill destination", &dst, runs.extent())?;
        if runs.is_empty() {
            return Ok(());
        }
        let params = FillParams {
            dst,
            count: runs.count() as u64,
            len: runs.len() as u64,
            stride: runs.stride() as u64,
            value,
            pad: 0,
        };
        self.run(Kernel::Fill, launch::elementwise(runs.total() as u64), &params)
    }

    fn copy_weights(
        &mut self,
        src: WeightView<'_, CudaWeights>,
        dst: ViewMut<'_, CudaTensor>,
        runs: Strided,
    ) -> KResult<Self> {
        let (src, dtype) = self.weights_at("copy_weights source", src, runs.total())?;
        let dst = self.at_mut("copy_weights destination", &dst, runs.extent())?;
        if runs.is_empty() {
            return Ok(());
        }
        let params = CopyWeightsParams {
            src,
            dst,
            count: runs.count() as u64,
            len: runs.len() as u64,
            stride: runs.stride() as u64,
            wdtype: wdtype(dtype),
            pad: 0,
        };
        self.run(Kernel::CopyWeights, launch::elementwise(runs.total() as u64), &params)
    }
}
