//! The one error type users of `brt` see; every message says what to do.

use std::path::PathBuf;

/// Errors of the `brt` library and program.
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
    pub fn format(path: impl Into<PathBuf>, message: impl Into<String>) -> Error {
        Error::Format { path: path.into(), message: message.into() }
    }

    /// An I/O error for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io { path: path.into(), source }
    }
}

/// Result with [`Error`].
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
