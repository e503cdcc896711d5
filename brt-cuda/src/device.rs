//! Where the kernels run: the CUDA driver, or (feature `emulator`) the CPU
//! emulator that runs the same CUDA C. The backend's host logic (extent checks,
//! launch geometry, parameter structs, cuBLAS argument mapping) is the same for
//! both, so testing it on the emulator tests what runs on a GPU.

use crate::error::CudaResult;
use crate::launch::{Geometry, Kernel};

/// A device allocation, freed when dropped (the variants are held for their
/// `Drop`; the backend uses the address returned with them).
#[allow(dead_code)]
pub(crate) enum Allocation {
    /// Nothing (a zero-length buffer).
    Empty,
    /// Memory of the CUDA driver.
    Driver(cudarc::driver::CudaSlice<u8>),
    /// Memory of the emulator.
    #[cfg(feature = "emulator")]
    Emulated(crate::emulator::EmuAllocation),
}

/// `C = alpha * op(A) op(B) + beta * C`, column-major, f32 (BLAS `sgemm`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sgemm {
    /// `op(A) = A^T`.
    pub transpose_a: bool,
    /// `op(B) = B^T`.
    pub transpose_b: bool,
    pub m: i32,
    pub n: i32,
    pub k: i32,
    pub alpha: f32,
    pub a: u64,
    pub lda: i32,
    pub b: u64,
    pub ldb: i32,
    pub beta: f32,
    pub c: u64,
    pub ldc: i32,
}

/// The operations the backend needs from a device. Addresses are device
/// addresses (`u64`) that the backend has checked to lie inside live
/// allocations of this device.
pub(crate) trait Device: Send {
    /// A description for messages (GPU name, libraries).
    fn describe(&self) -> String;
    /// `bytes` zeroed bytes (`bytes > 0`); returns the allocation and its address.
    fn alloc(&mut self, bytes: usize) -> CudaResult<(Allocation, u64)>;
    /// Copies host bytes to `dst`. The host buffer may be reused on return.
    fn upload(&mut self, dst: u64, src: &[u8]) -> CudaResult<()>;
    /// Copies `dst.len()` bytes from `src` once all enqueued work is done.
    fn download(&mut self, src: u64, dst: &mut [u8]) -> CudaResult<()>;
    /// Enqueues a device-to-device copy of non-overlapping ranges.
    fn copy(&mut self, dst: u64, src: u64, bytes: usize) -> CudaResult<()>;
    /// Enqueues `kernel` with its parameter struct.
    fn launch(&mut self, kernel: Kernel, geometry: Geometry, params: &[u8]) -> CudaResult<()>;
    /// Whether [`Device::sgemm`] is available (cuBLAS found).
    fn has_blas(&self) -> bool;
    /// Enqueues a cuBLAS `sgemm`.
    fn sgemm(&mut self, gemm: &Sgemm) -> CudaResult<()>;
    /// Waits for all enqueued work.
    fn sync(&mut self) -> CudaResult<()>;
}
