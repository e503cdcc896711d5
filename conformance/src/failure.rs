//! What a failed check reports: which numbers disagreed and by how much, which
//! property broke, or which error came back instead of the expected one.

use crate::tolerance::Tolerance;
use std::fmt;

/// Numbers outside their tolerance, with the worst of them.
#[derive(Clone, Debug, PartialEq)]
pub struct Mismatch {
    /// What was compared (e.g. "attention output").
    pub what: String,
    /// Elements compared.
    pub len: usize,
    /// Elements outside the tolerance.
    pub bad: usize,
    /// Index of the worst element (largest error relative to what is allowed).
    pub index: usize,
    /// The backend's value there.
    pub got: f32,
    /// The expected value there.
    pub want: f32,
    /// `|got - want|` there (infinite when one side is not finite).
    pub error: f64,
    /// The error the tolerance allows there.
    pub allowed: f64,
    /// The tolerance used.
    pub tolerance: Tolerance,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} of {} elements outside tolerance (abs {:e}, rel {:e}); worst at [{}]: got {:e}, want {:e}, \
             |error| {:e} > allowed {:e}",
            self.what,
            self.bad,
            self.len,
            self.tolerance.abs,
            self.tolerance.rel,
            self.index,
            self.got,
            self.want,
            self.error,
            self.allowed
        )
    }
}

/// Why a check failed.
#[derive(Clone, Debug, PartialEq)]
pub enum Failure {
    /// Results disagree with the expected values beyond the tolerance.
    Mismatch(Mismatch),
    /// Two results that must have the same length do not.
    Length {
        /// What was compared.
        what: String,
        /// Elements the backend gave.
        got: usize,
        /// Elements expected.
        want: usize,
    },
    /// A property of the contract does not hold (the message says which and where).
    Property(String),
    /// A call that must fail with a particular error returned something else.
    WrongError {
        /// The call.
        call: String,
        /// The error the contract asks for.
        expected: String,
        /// What came back (an error, or `Ok`).
        got: String,
    },
    /// The backend returned an error where none was expected.
    Backend {
        /// The call that failed.
        during: String,
        /// The backend's error message.
        error: String,
    },
    /// The backend panicked.
    Panic(String),
    /// A generated case failed: the (shrunk) case and why.
    Case {
        /// The check.
        check: &'static str,
        /// The case, as `Debug` prints it.
        case: String,
        /// Why it failed.
        cause: Box<Failure>,
    },
    /// The property runner gave up (too many rejected cases).
    Aborted(String),
}

impl Failure {
    /// A failure for an unexpected backend error during `during`.
    pub fn backend(during: impl Into<String>, error: impl fmt::Display) -> Failure {
        Failure::Backend { during: during.into(), error: error.to_string() }
    }

    /// The innermost cause (past the generated case).
    pub fn cause(&self) -> &Failure {
        match self {
            Failure::Case { cause, .. } => cause.cause(),
            other => other,
        }
    }

    /// Whether the suite *detected* a wrong result (numbers, a broken property or a
    /// wrong error), as opposed to the backend erroring out or panicking. The
    /// suite's own tests use this to check that a deliberately broken kernel is
    /// caught for the right reason.
    pub fn is_detection(&self) -> bool {
        matches!(
            self.cause(),
            Failure::Mismatch(_) | Failure::Length { .. } | Failure::Property(_) | Failure::WrongError { .. }
        )
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Mismatch(m) => write!(f, "{m}"),
            Failure::Length { what, got, want } => write!(f, "{what}: got {got} elements, want {want}"),
            Failure::Property(message) => write!(f, "property violated: {message}"),
            Failure::WrongError { call, expected, got } => {
                write!(f, "{call}: expected error {expected}, got {got}")
            }
            Failure::Backend { during, error } => write!(f, "unexpected backend error during {during}: {error}"),
            Failure::Panic(message) => write!(f, "the backend panicked: {message}"),
            Failure::Case { check, case, cause } => {
                write!(f, "check `{check}` failed on the case\n    {case}\n  because {cause}")
            }
            Failure::Aborted(message) => write!(f, "the property runner gave up: {message}"),
        }
    }
}

impl From<Mismatch> for Failure {
    fn from(m: Mismatch) -> Failure {
        Failure::Mismatch(m)
    }
}

impl From<brt_core::CoreError> for Failure {
    /// A core error while the suite prepares a case (a descriptor, a plan): a bug in
    /// the generated case or in the core, reported like a backend error.
    fn from(e: brt_core::CoreError) -> Failure {
        Failure::backend("preparing the case", e)
    }
}

impl std::error::Error for Failure {}
