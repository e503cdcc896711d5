//! The backend's error: what went wrong, in words that say what to do.

use brt_core::CoreError;

/// Everything the CUDA backend can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CudaError {
    /// A shape, extent or input rule of the core was broken (e.g. a buffer too
    /// small for a kernel's descriptor).
    #[error(transparent)]
    Core(#[from] CoreError),

    /// The CUDA driver library could not be opened.
    #[error(
        "no CUDA driver library (libcuda.so) found; install the NVIDIA driver (CUDA 13 or newer) \
         or use --backend cpu"
    )]
    NoDriverLibrary,

    /// The NVRTC runtime compiler library could not be opened.
    #[error(
        "no NVRTC library (libnvrtc.so.13) found: the CUDA backend compiles its kernels at run time; \
         install the CUDA 13 runtime compiler (the cuda-nvrtc package of the CUDA toolkit, or \
         `pip install nvidia-cuda-nvrtc` and add its lib folder to LD_LIBRARY_PATH) or use --backend cpu"
    )]
    NoNvrtcLibrary,

    /// The driver library opened but cannot drive a GPU here (a stub library
    /// of the toolkit, a kernel module that does not match, no GPU visible).
    #[error("the CUDA driver cannot be used here ({reason}); check `nvidia-smi`, or use --backend cpu")]
    DriverUnusable {
        /// The driver's error name.
        reason: String,
    },

    /// The driver is there but there is no (such) GPU.
    #[error("no CUDA device {ordinal}: the driver reports {count} device(s); use --backend cpu")]
    NoDevice {
        /// The device asked for.
        ordinal: usize,
        /// Devices the driver sees.
        count: usize,
    },

    /// A CUDA driver call failed.
    #[error("CUDA driver error during {during}: {message}")]
    Driver {
        /// What was being done.
        during: &'static str,
        /// The driver's name and description of the error.
        message: String,
    },

    /// NVRTC could not compile the kernels (a bug of this crate or an NVRTC
    /// too old for the GPU).
    #[error("compiling the CUDA kernels with NVRTC failed ({what}):\n{log}")]
    Compile {
        /// Which source and architecture.
        what: String,
        /// The compiler's log.
        log: String,
    },

    /// A cuBLAS call failed.
    #[error("cuBLAS error during {during}: {message}")]
    Blas {
        /// What was being done.
        during: &'static str,
        /// The status reported.
        message: String,
    },

    /// The request is valid but beyond what this backend implements.
    #[error("not supported by the CUDA backend: {0}")]
    Unsupported(String),

    /// The CUDA bindings panicked (e.g. a driver too old to have a function);
    /// caught so that the program can report it.
    #[error("the CUDA bindings failed unexpectedly: {0}; check that the NVIDIA driver supports CUDA 13")]
    Bindings(String),

    /// The kernel emulator reported a fault (a test-only backend).
    #[error("kernel emulator: {0}")]
    Emulator(String),
}

/// Shorthand for results of this crate.
pub type CudaResult<T> = Result<T, CudaError>;

impl CudaError {
    /// The core's error inside, when this is one (e.g. `BufferTooSmall`).
    pub fn core(&self) -> Option<CoreError> {
        match self {
            CudaError::Core(e) => Some(*e),
            _ => None,
        }
    }

    /// Whether the error means that no usable GPU is there (no driver library,
    /// an unusable driver, no NVRTC, no device), as opposed to a failure of a
    /// working setup.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            CudaError::NoDriverLibrary
                | CudaError::NoNvrtcLibrary
                | CudaError::DriverUnusable { .. }
                | CudaError::NoDevice { .. }
        )
    }
}
