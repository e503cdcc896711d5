//! The backend's error: what went wrong, in words that say what to do.

use brt_core::CoreError;

/// Everything the CUDA backend can fail with.
///
/// Each message says what to do; the core's errors keep their own message:
///
/// ```
/// use brt_core::CoreError;
/// use brt_cuda::CudaError;
///
/// let core = CudaError::from(CoreError::TokenOutOfRange { index: 0, id: 5, vocab: 4 });
/// assert_eq!(core.to_string(), "token id 5 at position 0 is outside the vocabulary of 4 ids");
/// let missing = CudaError::NoDevice { ordinal: 1, count: 1 };
/// assert_eq!(missing.to_string(), "no CUDA device 1: the driver reports 1 device(s); use --backend cpu");
/// let blas = CudaError::Blas { during: "sgemm", message: "CUBLAS_STATUS_EXECUTION_FAILED".into() };
/// assert_eq!(blas.to_string(), "cuBLAS error during sgemm: CUBLAS_STATUS_EXECUTION_FAILED");
/// assert!(CudaError::NoDriverLibrary.to_string().contains("install the NVIDIA driver"));
/// ```
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
///
/// ```
/// use brt_cuda::{CudaError, CudaResult};
///
/// fn head_dim(width: usize, heads: usize) -> CudaResult<usize> {
///     match width % heads {
///         0 => Ok(width / heads),
///         _ => Err(CudaError::Unsupported(format!("{heads} heads in a width of {width}"))),
///     }
/// }
/// assert_eq!(head_dim(64, 4).unwrap(), 16);
/// assert!(head_dim(10, 4).unwrap_err().to_string().ends_with("4 heads in a width of 10"));
/// ```
pub type CudaResult<T> = Result<T, CudaError>;

impl CudaError {
    /// The core's error inside, when this is one (e.g. `BufferTooSmall`).
    ///
    /// ```
    /// use brt_core::CoreError;
    /// use brt_cuda::CudaError;
    ///
    /// let small = CoreError::BufferTooSmall { what: "tensor write", needed: 5, available: 4 };
    /// assert_eq!(CudaError::from(small).core(), Some(small));
    /// assert_eq!(CudaError::NoNvrtcLibrary.core(), None);
    /// ```
    pub fn core(&self) -> Option<CoreError> {
        match self {
            CudaError::Core(e) => Some(*e),
            _ => None,
        }
    }

    /// Whether the error means that no usable GPU is there (no driver library,
    /// an unusable driver, no NVRTC, no device), as opposed to a failure of a
    /// working setup.
    ///
    /// Missing pieces are unavailability; a compile or driver failure of a
    /// working setup is not:
    ///
    /// ```
    /// use brt_cuda::CudaError;
    ///
    /// assert!(CudaError::NoNvrtcLibrary.is_unavailable());
    /// assert!(CudaError::NoDevice { ordinal: 0, count: 0 }.is_unavailable());
    /// assert!(CudaError::DriverUnusable { reason: "CUDA_ERROR_STUB_LIBRARY".into() }.is_unavailable());
    /// let failed = CudaError::Driver { during: "a launch", message: "CUDA_ERROR_LAUNCH_FAILED".into() };
    /// assert!(!failed.is_unavailable());
    /// assert!(!CudaError::Unsupported("Q8_0 weights".into()).is_unavailable());
    /// ```
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
