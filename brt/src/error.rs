//! The one error type users of `brt` see; every message says what to do.
//!
//! Errors of every part of the library come as [`Error`]; here an invalid
//! argument:
//!
//! ```
//! use brt::sample::{Sampler, SamplingOptions};
//!
//! let err = Sampler::new(SamplingOptions { temperature: -1.0, ..Default::default() }).unwrap_err();
//! assert!(matches!(err, brt::Error::Invalid(_)));
//! assert!(err.to_string().contains("temperature"));
//! ```

use std::path::PathBuf;

/// Errors of the `brt` library and program.
///
/// Each variant's message; a core error converts with `?`:
///
/// ```
/// use brt::Error;
/// use std::path::PathBuf;
///
/// assert_eq!(Error::Invalid("give a prompt".into()).to_string(), "give a prompt");
/// let format = Error::Format { path: PathBuf::from("m.gguf"), message: "cut short".into() };
/// assert_eq!(format.to_string(), "m.gguf: cut short");
/// let backend = Error::Backend { backend: "cpu", message: "no memory".into() };
/// assert_eq!(backend.to_string(), "backend `cpu`: no memory");
/// let core = brt_core::Config::plain(0, 8, 2, 4, 16, 2, 4).validate().unwrap_err();
/// assert!(matches!(Error::from(core), Error::Core(_)));
/// ```
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// A file's content is not what it should be.
    #[error("{path}: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong, and what to do about it.
        message: String,
    },
    /// The model configuration or an input does not fit the model.
    #[error("{0}")]
    Core(#[from] brt_core::CoreError),
    /// An argument or input is invalid.
    #[error("{0}")]
    Invalid(String),
    /// A backend failed.
    #[error("backend `{backend}`: {message}")]
    Backend {
        /// The backend's name.
        backend: &'static str,
        /// Its message.
        message: String,
    },
}

impl Error {
    /// A format error for `path`.
    ///
    /// The message follows the path:
    ///
    /// ```
    /// let err = brt::Error::format("model.safetensors", "no `config` metadata");
    /// assert_eq!(err.to_string(), "model.safetensors: no `config` metadata");
    /// ```
    pub fn format(path: impl Into<PathBuf>, message: impl Into<String>) -> Error {
        Error::Format { path: path.into(), message: message.into() }
    }

    /// An I/O error for `path`.
    ///
    /// The system's message follows the path, and stays the error's source:
    ///
    /// ```
    /// use std::error::Error as _;
    /// use std::io::{Error, ErrorKind};
    ///
    /// let err = brt::Error::io("in.txt", Error::new(ErrorKind::NotFound, "not found"));
    /// assert_eq!(err.to_string(), "in.txt: not found");
    /// assert!(err.source().is_some());
    /// ```
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io { path: path.into(), source }
    }
}

/// Result with [`Error`].
///
/// A function of the library's kind:
///
/// ```
/// fn vocab() -> brt::Result<usize> {
///     Ok(brt::default_model()?.config().vocab)
/// }
/// assert_eq!(vocab().ok(), Some(260));
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(feature = "cpu")]
impl From<brt_cpu::CpuError> for Error {
    fn from(e: brt_cpu::CpuError) -> Error {
        Error::Backend { backend: "cpu", message: e.to_string() }
    }
}

#[cfg(feature = "wgpu")]
impl From<brt_wgpu::WgpuError> for Error {
    fn from(e: brt_wgpu::WgpuError) -> Error {
        Error::Backend { backend: "wgpu", message: e.to_string() }
    }
}

#[cfg(feature = "cuda")]
impl From<brt_cuda::CudaError> for Error {
    fn from(e: brt_cuda::CudaError) -> Error {
        Error::Backend { backend: "cuda", message: e.to_string() }
    }
}
