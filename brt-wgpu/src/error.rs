//! The backend's error: every way the GPU path can fail, each with a message that
//! says what happened and what to do about it.

use brt_core::CoreError;
use std::fmt;

/// Everything that can go wrong in the wgpu backend.
///
/// Each message says what to do; the core's errors keep their own message:
///
/// ```
/// use brt_core::CoreError;
/// use brt_wgpu::{wgpu, Wgpu, WgpuError, WgpuOptions};
///
/// let core = WgpuError::from(CoreError::TokenOutOfRange { index: 0, id: 5, vocab: 4 });
/// assert_eq!(core.to_string(), "token id 5 at position 0 is outside the vocabulary of 4 ids");
/// let big = WgpuError::TooLarge { what: "a token buffer", bytes: 8, limit: 4 };
/// assert!(big.to_string().starts_with("a token buffer needs 8 bytes but this adapter binds at most 4"));
/// // Searching no backend at all: no adapter, and a hint about drivers.
/// let nowhere = WgpuOptions { backends: Some(wgpu::Backends::empty()), ..WgpuOptions::default() };
/// let e = Wgpu::with_options(&nowhere).unwrap_err();
/// assert!(matches!(e, WgpuError::NoAdapter { .. }));
/// assert!(e.to_string().contains("mesa-vulkan-drivers"), "{e}");
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum WgpuError {
    /// A shape, extent or configuration error found by the core or by a kernel's
    /// own checks before anything was recorded.
    Core(CoreError),
    /// No GPU adapter could be found for the requested backends.
    NoAdapter {
        /// The backends that were searched (e.g. `"VULKAN | GL"`).
        backends: String,
        /// What wgpu said.
        detail: String,
    },
    /// The adapter refused to create a device.
    DeviceRequest(String),
    /// The device was lost (driver reset, device removed, or released with
    /// [`crate::Wgpu::destroy`]); nothing more can run on it.
    DeviceLost(String),
    /// wgpu rejected a command or resource (caught by an error scope). This is a
    /// bug in the backend or an adapter limit it did not anticipate.
    Validation(String),
    /// The device ran out of memory.
    OutOfMemory(String),
    /// A buffer would exceed what the adapter can bind or address.
    TooLarge {
        /// What was being allocated.
        what: &'static str,
        /// Bytes needed.
        bytes: u64,
        /// The adapter's limit in bytes.
        limit: u64,
    },
    /// The adapter cannot run a kernel with these shapes (e.g. too many workgroups).
    Unsupported(String),
    /// An internal driver error, or a failure while reading results back.
    Internal(String),
}

impl fmt::Display for WgpuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WgpuError::Core(e) => write!(f, "{e}"),
            WgpuError::NoAdapter { backends, detail } => write!(
                f,
                "no GPU adapter found for backends {backends} ({detail}); install a GPU driver \
                 (on Debian, `mesa-vulkan-drivers` gives a software Vulkan adapter), check \
                 WGPU_BACKEND, or use the CPU backend"
            ),
            WgpuError::DeviceRequest(m) => write!(f, "the GPU adapter refused to open a device: {m}"),
            WgpuError::DeviceLost(m) => {
                write!(f, "the GPU device was lost ({m}); create a new backend to continue")
            }
            WgpuError::Validation(m) => write!(
                f,
                "wgpu rejected a command (a bug in brt-wgpu or an unexpected adapter limit; please \
                 report it): {m}"
            ),
            WgpuError::OutOfMemory(m) => write!(
                f,
                "the GPU ran out of memory ({m}); use a smaller batch or token count, f16 weights, \
                 or a larger GPU"
            ),
            WgpuError::TooLarge { what, bytes, limit } => write!(
                f,
                "{what} needs {bytes} bytes but this adapter binds at most {limit} bytes per buffer; \
                 use f16 weights, a smaller batch or token count, or another adapter"
            ),
            WgpuError::Unsupported(m) => write!(f, "not supported on this adapter: {m}"),
            WgpuError::Internal(m) => write!(f, "GPU error: {m}"),
        }
    }
}

impl std::error::Error for WgpuError {}

impl From<CoreError> for WgpuError {
    fn from(e: CoreError) -> Self {
        WgpuError::Core(e)
    }
}

impl From<wgpu::Error> for WgpuError {
    fn from(e: wgpu::Error) -> Self {
        match e {
            wgpu::Error::OutOfMemory { .. } => WgpuError::OutOfMemory("reported by the driver".into()),
            wgpu::Error::Validation { description, .. } => WgpuError::Validation(description),
            wgpu::Error::Internal { description, .. } => WgpuError::Internal(description),
        }
    }
}

/// Result with the backend's error.
///
/// The error type defaults to [`WgpuError`]:
///
/// ```
/// use brt_wgpu::{wgpu, Wgpu, WgpuError, WgpuOptions};
///
/// let nowhere = WgpuOptions { backends: Some(wgpu::Backends::empty()), ..WgpuOptions::default() };
/// let opened: brt_wgpu::Result<Wgpu> = Wgpu::with_options(&nowhere);
/// assert!(matches!(opened, Err(WgpuError::NoAdapter { .. })));
/// let parsed: brt_wgpu::Result<u32, std::num::ParseIntError> = "7".parse();
/// assert_eq!(parsed, Ok(7));
/// ```
pub type Result<T, E = WgpuError> = std::result::Result<T, E>;
