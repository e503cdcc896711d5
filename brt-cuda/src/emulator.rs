//! The kernel emulator device (feature `emulator`): the CUDA C kernels of this
//! crate, compiled for the host at build time (`emu/emu.cpp`), run on the CPU
//! with each CUDA thread a fiber. It exists to test the kernels and the host
//! logic around them where there is no GPU; it is slow and not a backend to
//! use.
//!
//! Beyond running the kernels it checks what a GPU would not report:
//! - every allocation has guard bytes before and after it, checked after each
//!   launch and copy (a kernel writing out of range is an error), and filled
//!   with NaN bit patterns so that out-of-range reads poison results;
//! - uploads, downloads, copies and the `sgemm` operands must lie inside one
//!   live allocation;
//! - launches must follow CUDA's rules and each kernel's block size, and every
//!   thread of a block must reach every barrier;
//! - the order in which threads run between barriers can be reversed or
//!   shuffled, so that a missing barrier changes results.
//!
//! `sgemm` is BLAS's column-major definition computed literally, so the
//! backend's mapping of row-major products onto cuBLAS is tested too.
//!
//! The same product on both paths (emulated cuBLAS and brt's kernel) and in
//! two thread orders gives the same result:
//!
//! ```
//! use brt_core::desc::Matmul;
//! use brt_core::{Kernels, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
//! use brt_cuda::emulator::{EmulatorOptions, ThreadOrder};
//! use brt_cuda::Cuda;
//!
//! for options in [EmulatorOptions::default(), EmulatorOptions { cublas: false, order: ThreadOrder::Forward }] {
//!     let mut k = Cuda::emulated(options);
//!     let (mut x, mut y) = (k.alloc_tensor(4)?, k.alloc_tensor(2)?);
//!     let mut w = k.alloc_weights(2, WeightDtype::F32)?;
//!     k.write_tensor(&mut x, 0, &[1.0, 2.0, 3.0, 4.0])?;
//!     k.write_weights(&mut w, 0, WeightData::F32(&[10.0, 1.0]))?;
//!     k.matmul(View::new(&x, 0), WeightView::new(&w, 0), ViewMut::new(&mut y, 0), Matmul::new(2, 2, 1)?)?;
//!     let mut out = [0f32; 2];
//!     k.read_tensor(&y, 0, &mut out)?;
//!     assert_eq!(out, [12.0, 34.0]);
//! }
//! # Ok::<(), brt_cuda::CudaError>(())
//! ```

use crate::device::{Allocation, Device, Sgemm};
use crate::error::{CudaError, CudaResult};
use crate::launch::{Geometry, Kernel};
use crate::source::t5_table;
use std::collections::HashMap;
use std::ffi::{c_char, CString};
use std::sync::{Arc, Mutex};

extern "C" {
    fn brt_emu_launch(
        name: *const c_char,
        grid: u32,
        block: u32,
        params: *const u8,
        params_len: usize,
        order: u32,
        seed: u64,
        error: *mut c_char,
        error_len: usize,
    ) -> i32;
    #[cfg(test)]
    fn brt_emu_param_size(name: *const c_char) -> usize;
    fn brt_emu_head_dim_supported(head_dim: u64) -> i32;
    fn brt_emu_set_t5_lut(lut: *const u8);
}

/// In which order the threads of a block run between two barriers.
///
/// A kernel with its barriers in place gives the same result in every order;
/// here an RMS norm (a reduction across the threads of a block):
///
/// ```
/// use brt_core::desc::Rows;
/// use brt_core::{Kernels, Storage, View, ViewMut, WeightData, WeightDtype, WeightView};
/// use brt_cuda::emulator::{EmulatorOptions, ThreadOrder};
/// use brt_cuda::Cuda;
///
/// let mut results = Vec::new();
/// for order in [ThreadOrder::Forward, ThreadOrder::Alternating, ThreadOrder::Shuffled(42)] {
///     let mut k = Cuda::emulated(EmulatorOptions { order, ..EmulatorOptions::default() });
///     let (mut x, mut y) = (k.alloc_tensor(4)?, k.alloc_tensor(4)?);
///     let mut scale = k.alloc_weights(4, WeightDtype::F32)?;
///     k.write_tensor(&mut x, 0, &[3.0, 4.0, 0.0, 0.0])?;
///     k.write_weights(&mut scale, 0, WeightData::F32(&[1.0; 4]))?;
///     k.rms_norm(View::new(&x, 0), WeightView::new(&scale, 0), ViewMut::new(&mut y, 0), Rows::new(1, 4)?)?;
///     let mut out = [0f32; 4];
///     k.read_tensor(&y, 0, &mut out)?;
///     results.push(out);
/// }
/// // mean(x^2) = 25/4: x / 2.5
/// assert!((results[0][0] - 1.2).abs() < 1e-5 && (results[0][1] - 1.6).abs() < 1e-5);
/// assert!(results.iter().all(|r| r == &results[0]));
/// # Ok::<(), brt_cuda::CudaError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadOrder {
    /// Thread 0 first.
    Forward,
    /// Forward, then backward on every other phase.
    Alternating,
    /// A random order per phase, from this seed.
    Shuffled(u64),
}

/// How the emulator behaves.
///
/// The default offers `sgemm` and alternates the thread order; the backend's
/// description says which:
///
/// ```
/// use brt_cuda::emulator::{EmulatorOptions, ThreadOrder};
/// use brt_cuda::Cuda;
///
/// assert_eq!(EmulatorOptions::default(), EmulatorOptions { cublas: true, order: ThreadOrder::Alternating });
/// let k = Cuda::emulated(EmulatorOptions { cublas: false, order: ThreadOrder::Shuffled(1) });
/// assert!(k.describe().contains("Shuffled(1)") && k.describe().contains("brt kernels"));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EmulatorOptions {
    /// Offer `sgemm` (as cuBLAS would), so that products with f32 weights take
    /// the cuBLAS path; otherwise they use the tiled kernel.
    pub cublas: bool,
    /// Thread order between barriers.
    pub order: ThreadOrder,
}

impl Default for EmulatorOptions {
    fn default() -> Self {
        EmulatorOptions { cublas: true, order: ThreadOrder::Alternating }
    }
}

/// Guard bytes on each side of an allocation.
const GUARD: usize = 256;
/// The guard byte: four of them are a NaN as f32 and an id past any vocabulary.
const GUARD_BYTE: u8 = 0xff;

/// Where a live allocation is: start of its memory, payload offset and length.
#[derive(Clone, Copy, Debug)]
struct Region {
    base: usize,
    total: usize,
    payload: usize,
    len: usize,
}

type Registry = Arc<Mutex<HashMap<u64, Region>>>;

/// Memory of the emulator: `u64` words (8-byte alignment, like device memory),
/// the payload between two guards.
pub(crate) struct EmuAllocation {
    // Owns the memory that kernels reach through raw addresses.
    #[allow(dead_code)]
    words: Box<[u64]>,
    id: u64,
    registry: Registry,
}

impl Drop for EmuAllocation {
    fn drop(&mut self) {
        let mut map = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&self.id);
        // `words` is freed after this, once no guard check can reach it.
    }
}

/// The emulated GPU.
pub(crate) struct EmuDevice {
    options: EmulatorOptions,
    registry: Registry,
    next_id: u64,
    launches: u64,
}

fn fault(message: impl Into<String>) -> CudaError {
    CudaError::Emulator(message.into())
}

/// The size the emulator's C++ gives the parameter struct of `name`.
#[cfg(test)]
fn param_size(name: &str) -> usize {
    let Ok(name) = CString::new(name) else { return 0 };
    // SAFETY: a valid NUL-terminated string; the function only compares it.
    unsafe { brt_emu_param_size(name.as_ptr()) }
}

/// Whether the emulator's attention kernels are built for head width
/// `head_dim` (1 to 17, 24, 32, 48, 64, 96 and 128; a GPU takes any up to 1024).
///
/// ```
/// use brt_cuda::emulator::head_dim_supported;
///
/// assert!((1..=16).all(head_dim_supported));
/// assert!(head_dim_supported(64) && head_dim_supported(128));
/// assert!(!head_dim_supported(0) && !head_dim_supported(1000));
/// ```
pub fn head_dim_supported(head_dim: usize) -> bool {
    // SAFETY: plain value in, plain value out.
    unsafe { brt_emu_head_dim_supported(head_dim as u64) != 0 }
}

impl EmuDevice {
    pub(crate) fn new(options: EmulatorOptions) -> EmuDevice {
        let table = t5_table();
        // SAFETY: the table has the 128 bytes the function copies.
        unsafe { brt_emu_set_t5_lut(table.as_ptr()) };
        EmuDevice { options, registry: Arc::new(Mutex::new(HashMap::new())), next_id: 0, launches: 0 }
    }

    /// The allocation holding `address .. address + bytes`, or an error.
    fn region(&self, what: &str, address: u64, bytes: usize) -> CudaResult<Region> {
        let map = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        let address = address as usize;
        map.values()
            .find(|r| {
                let start = r.base + r.payload;
                address >= start && address.checked_add(bytes).is_some_and(|end| end <= start + r.len)
            })
            .copied()
            .ok_or_else(|| fault(format!("{what}: {bytes} bytes at {address:#x} are not inside one live allocation")))
    }

    /// Checks that no guard byte of any live allocation was overwritten.
    fn check_guards(&self, after: &str) -> CudaResult<()> {
        let map = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        for region in map.values() {
            // SAFETY: the region describes the live `words` of an allocation in
            // the registry (removed from it before the memory is freed); the
            // emulator runs kernels synchronously, so nothing writes meanwhile.
            let bytes = unsafe { std::slice::from_raw_parts(region.base as *const u8, region.total) };
            let payload = region.payload..region.payload + region.len;
            if let Some(at) = bytes.iter().enumerate().position(|(i, &b)| !payload.contains(&i) && b != GUARD_BYTE) {
                let relative = at as isize - region.payload as isize;
                return Err(fault(format!(
                    "{after} wrote outside an allocation of {} bytes (at byte {relative} relative to its start)",
                    region.len
                )));
            }
        }
        Ok(())
    }

    /// The address of a column-major `rows x cols` operand with leading
    /// dimension `ld`, once its whole extent is known to be inside one allocation.
    fn matrix(&self, what: &str, address: u64, rows: usize, cols: usize, ld: usize) -> CudaResult<*mut f32> {
        if rows == 0 || cols == 0 {
            return Ok(address as *mut f32);
        }
        if ld < rows {
            return Err(fault(format!("sgemm {what}: leading dimension {ld} below its {rows} rows")));
        }
        let elements = ld * (cols - 1) + rows;
        self.region(&format!("sgemm operand {what}"), address, elements * 4)?;
        Ok(address as *mut f32)
    }
}

impl Device for EmuDevice {
    fn describe(&self) -> String {
        format!(
            "kernel emulator on the CPU (threads in {:?} order; products with f32 weights: {})",
            self.options.order,
            if self.options.cublas { "emulated cuBLAS sgemm" } else { "brt kernels" }
        )
    }

    fn alloc(&mut self, bytes: usize) -> CudaResult<(Allocation, u64)> {
        let total = GUARD + bytes.div_ceil(8) * 8 + GUARD;
        let mut words = vec![u64::MAX; total / 8].into_boxed_slice();
        let base = words.as_mut_ptr() as usize;
        bytemuck::cast_slice_mut::<u64, u8>(&mut words)[GUARD..GUARD + bytes].fill(0);
        let id = self.next_id;
        self.next_id += 1;
        let region = Region { base, total, payload: GUARD, len: bytes };
        self.registry.lock().unwrap_or_else(|p| p.into_inner()).insert(id, region);
        let address = (base + GUARD) as u64;
        Ok((Allocation::Emulated(EmuAllocation { words, id, registry: self.registry.clone() }), address))
    }

    fn upload(&mut self, dst: u64, src: &[u8]) -> CudaResult<()> {
        if src.is_empty() {
            return Ok(());
        }
        self.region("upload", dst, src.len())?;
        // SAFETY: the destination range lies inside a live allocation (checked
        // above) that `src`, a host slice, cannot overlap.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst as *mut u8, src.len()) };
        Ok(())
    }

    fn download(&mut self, src: u64, dst: &mut [u8]) -> CudaResult<()> {
        if dst.is_empty() {
            return Ok(());
        }
        self.region("download", src, dst.len())?;
        // SAFETY: the source range lies inside a live allocation (checked above).
        unsafe { std::ptr::copy_nonoverlapping(src as *const u8, dst.as_mut_ptr(), dst.len()) };
        Ok(())
    }

    fn copy(&mut self, dst: u64, src: u64, bytes: usize) -> CudaResult<()> {
        if bytes == 0 {
            return Ok(());
        }
        self.region("copy source", src, bytes)?;
        self.region("copy destination", dst, bytes)?;
        if src < dst + bytes as u64 && dst < src + bytes as u64 {
            return Err(fault("device copy between overlapping ranges"));
        }
        // SAFETY: both ranges lie inside live allocations and do not overlap.
        unsafe { std::ptr::copy_nonoverlapping(src as *const u8, dst as *mut u8, bytes) };
        self.check_guards("a device copy")
    }

    fn launch(&mut self, kernel: Kernel, geometry: Geometry, params: &[u8]) -> CudaResult<()> {
        let name = CString::new(kernel.name()).map_err(|_| fault("kernel name with a NUL byte"))?;
        let (order, seed) = match self.options.order {
            ThreadOrder::Forward => (0, 0),
            ThreadOrder::Alternating => (1, 0),
            ThreadOrder::Shuffled(seed) => (2, seed.wrapping_add(self.launches)),
        };
        self.launches += 1;
        let mut error = vec![0 as c_char; 512];
        // SAFETY: `params` is the kernel's parameter struct (its length is
        // checked against the C++ sizeof by the emulator); `error` has the
        // room stated. The kernel reads and writes device memory through the
        // addresses in `params`, which the backend checked to lie inside live
        // allocations of this emulator.
        let status = unsafe {
            brt_emu_launch(
                name.as_ptr(),
                geometry.grid,
                geometry.block,
                params.as_ptr(),
                params.len(),
                order,
                seed,
                error.as_mut_ptr(),
                error.len(),
            )
        };
        if status != 0 {
            let bytes: Vec<u8> = error.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
            return Err(fault(String::from_utf8_lossy(&bytes).into_owned()));
        }
        self.check_guards(kernel.name())
    }

    fn has_blas(&self) -> bool {
        self.options.cublas
    }

    fn sgemm(&mut self, g: &Sgemm) -> CudaResult<()> {
        if !self.options.cublas {
            return Err(fault("sgemm called while emulated cuBLAS is off"));
        }
        let dims = [g.m, g.n, g.k, g.lda, g.ldb, g.ldc];
        if dims.iter().any(|&d| d < 0) {
            return Err(fault(format!("sgemm with a negative dimension: {g:?}")));
        }
        let (m, n, k) = (g.m as usize, g.n as usize, g.k as usize);
        let (lda, ldb, ldc) = (g.lda as usize, g.ldb as usize, g.ldc as usize);
        // op(A) is m x k: A is m x k, or k x m when transposed; likewise B.
        let (a_rows, a_cols) = if g.transpose_a { (k, m) } else { (m, k) };
        let (b_rows, b_cols) = if g.transpose_b { (n, k) } else { (k, n) };
        let a = self.matrix("A", g.a, a_rows, a_cols, lda)?;
        let b = self.matrix("B", g.b, b_rows, b_cols, ldb)?;
        let c = self.matrix("C", g.c, m, n, ldc)?;
        for j in 0..n {
            for i in 0..m {
                let mut sum = 0f64;
                for l in 0..k {
                    let a_il = if g.transpose_a { l + i * lda } else { i + l * lda };
                    let b_lj = if g.transpose_b { j + l * ldb } else { l + j * ldb };
                    // SAFETY: the indices are inside the operands' checked extents.
                    sum += unsafe { *a.add(a_il) as f64 * *b.add(b_lj) as f64 };
                }
                // SAFETY: (i, j) is inside C's checked extent.
                let out = unsafe { &mut *c.add(i + j * ldc) };
                let product = g.alpha * sum as f32;
                // As BLAS: with beta == 0, C is not read (it may hold NaN).
                *out = if g.beta == 0.0 { product } else { product + g.beta * *out };
            }
        }
        self.check_guards("sgemm")
    }

    fn sync(&mut self) -> CudaResult<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::PARAM_SIZES;
    use bytemuck::Zeroable;

    #[test]
    fn parameter_structs_have_the_same_size_in_rust_and_in_the_cuda_c() {
        for (name, size) in PARAM_SIZES {
            assert_eq!(param_size(name), size, "{name}");
        }
        assert_eq!(param_size("no_such_kernel"), 0);
    }

    #[test]
    fn guards_catch_writes_outside_an_allocation_and_ranges_are_checked() {
        let mut device = EmuDevice::new(EmulatorOptions::default());
        let (_a, address) = device.alloc(12).unwrap();
        device.upload(address, &[1; 12]).unwrap();
        assert!(device.upload(address, &[1; 13]).is_err(), "one byte past the end");
        assert!(device.upload(address + 4, &[1; 12]).is_err());
        device.check_guards("nothing").unwrap();
        // SAFETY: one byte past the payload is inside the guard of this live
        // allocation (the test writes it to see the check fire).
        unsafe { *((address + 12) as *mut u8) = 0 };
        assert!(device.check_guards("the test").is_err());
    }

    /// Launches one of the emulator's own test kernels.
    fn launch_test_kernel(name: &str, block: u32, params: &[u64; 3], order: u32, seed: u64) -> Result<(), String> {
        let name = CString::new(name).unwrap();
        let mut error = vec![0 as c_char; 512];
        // SAFETY: `params` is the 24-byte EmuTestParams; its `out` address (if
        // used) points to a buffer of at least `block` floats kept alive by the
        // caller; `error` has the room stated.
        let status = unsafe {
            brt_emu_launch(
                name.as_ptr(),
                1,
                block,
                params.as_ptr() as *const u8,
                24,
                order,
                seed,
                error.as_mut_ptr(),
                error.len(),
            )
        };
        if status == 0 {
            Ok(())
        } else {
            Err(error.iter().take_while(|&&c| c != 0).map(|&c| c as u8 as char).collect())
        }
    }

    #[test]
    fn a_barrier_not_reached_by_every_thread_is_reported() {
        let message = launch_test_kernel("brt_emu_test_divergent", 64, &[0, 0, 0], 0, 0).unwrap_err();
        assert!(message.contains("1 thread(s) returned while 63 wait at __syncthreads"), "{message}");
    }

    #[test]
    fn a_missing_barrier_changes_results_under_some_thread_order() {
        let block = 64usize;
        let mut out = vec![0f32; block];
        let address = out.as_mut_ptr() as u64;
        let expected = |generation: u64| -> Vec<f32> {
            (0..block).map(|t| (((t + 1) % block) as u64 + 1000 * generation) as f32).collect()
        };
        // With the barrier every order gives the neighbours' values.
        for (generation, order) in [(1u64, 0u32), (2, 1), (3, 2)] {
            launch_test_kernel("brt_emu_test_neighbour", block as u32, &[address, generation, 1], order, 9).unwrap();
            assert_eq!(out, expected(generation), "order {order}");
        }
        // Without it, threads run before their neighbour read the old value.
        launch_test_kernel("brt_emu_test_neighbour", block as u32, &[address, 4, 0], 2, 9).unwrap();
        assert_ne!(out, expected(4), "a shuffled order exposes the missing barrier");
    }

    #[test]
    fn launches_breaking_cudas_or_the_kernels_rules_are_refused() {
        // The reductions are written for power-of-two blocks; empty grids are
        // invalid in CUDA.
        let mut device = EmuDevice::new(EmulatorOptions::default());
        let params = crate::params::L2NormParams { x: 0, segments: 0, head_dim: 1 };
        let refused = device.launch(Kernel::L2Normalize, Geometry { grid: 1, block: 48 }, bytemuck::bytes_of(&params));
        assert!(matches!(refused, Err(CudaError::Emulator(_))), "{refused:?}");
        let empty_grid =
            device.launch(Kernel::L2Normalize, Geometry { grid: 0, block: 32 }, bytemuck::bytes_of(&params));
        assert!(empty_grid.is_err());
        let matmul = crate::params::MatmulParams::zeroed();
        let wrong_block = device.launch(Kernel::Matmul, Geometry { grid: 1, block: 128 }, bytemuck::bytes_of(&matmul));
        assert!(wrong_block.is_err(), "the tiled product needs exactly 256 threads");
    }
}
