//! The core's error: a small `Copy` value of numbers and static strings.
//!
//! Backends wrap it in their own richer error (`From<CoreError>`); the facade turns
//! every error into a message that says what to do.

use core::fmt;

/// Everything that can go wrong inside the core.
///
/// Each variant carries enough numbers to say exactly what was wrong.
///
/// An error is a plain value: a failed call returns the variant that names the
/// rule, and its message (`Display`) states the numbers.
///
/// ```
/// use brt_core::{CoreError, Plan};
/// let config = brt_core::Config::plain(10, 8, 2, 4, 16, 2, 4);
/// let e = Plan::new(&config, 0, 4).unwrap_err();
/// assert_eq!(e, CoreError::InvalidConfig { what: "batch size must be positive", value: 0 });
/// assert_eq!(e.to_string(), "invalid model configuration: batch size must be positive (got 0)");
/// let e = CoreError::TokenOutOfRange { index: 3, id: 12, vocab: 10 };
/// assert_eq!(e.to_string(), "token id 12 at position 3 is outside the vocabulary of 10 ids");
/// let e = CoreError::TooManyTokens { tokens: 9, max: 8 };
/// assert!(e.to_string().contains("at most 8"));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoreError {
    /// A configuration value is invalid; `what` names the field and the rule.
    InvalidConfig {
        /// The field and the rule it broke.
        what: &'static str,
        /// The offending value.
        value: i64,
    },
    /// A size computed from the config overflows `usize`.
    SizeOverflow {
        /// What was being sized.
        what: &'static str,
    },
    /// A buffer is smaller than an operation needs.
    BufferTooSmall {
        /// Which buffer.
        what: &'static str,
        /// Elements needed (offset + extent).
        needed: usize,
        /// Elements available.
        available: usize,
    },
    /// An input has the wrong number of elements.
    LengthMismatch {
        /// Which input.
        what: &'static str,
        /// Elements expected.
        expected: usize,
        /// Elements given.
        actual: usize,
    },
    /// A shape descriptor was asked for with inconsistent dimensions.
    InvalidShape {
        /// The rule that was broken.
        what: &'static str,
    },
    /// A token id is not below the vocabulary size.
    TokenOutOfRange {
        /// Position of the token in the input (token-major index).
        index: usize,
        /// The id.
        id: u32,
        /// The vocabulary size.
        vocab: usize,
    },
    /// A call carries more tokens per row than the plan was made for.
    TooManyTokens {
        /// Tokens per row in the call.
        tokens: usize,
        /// The plan's maximum.
        max: usize,
    },
    /// A document reset was asked for in the middle of a block while other rows
    /// continue; rows of a batch share block boundaries.
    UnalignedReset {
        /// Position of the batch inside the current block.
        position_in_block: usize,
    },
    /// The caller's memory pool has no room for another buffer.
    OutOfMemory {
        /// Which pool ran out.
        what: &'static str,
        /// Elements asked for.
        requested: usize,
        /// Elements left.
        available: usize,
    },
    /// Two objects that must come from the same model or plan do not.
    Mismatch {
        /// What disagrees.
        what: &'static str,
    },
}

impl fmt::Display for CoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            CoreError::InvalidConfig { what, value } => {
                write!(f, "invalid model configuration: {what} (got {value})")
            }
            CoreError::SizeOverflow { what } => {
                write!(f, "the size of {what} overflows this machine's address space")
            }
            CoreError::BufferTooSmall { what, needed, available } => {
                write!(f, "buffer `{what}` too small: needs {needed} elements, has {available}")
            }
            CoreError::LengthMismatch { what, expected, actual } => {
                write!(f, "`{what}` has {actual} elements, expected {expected}")
            }
            CoreError::InvalidShape { what } => write!(f, "invalid shape: {what}"),
            CoreError::TokenOutOfRange { index, id, vocab } => {
                write!(f, "token id {id} at position {index} is outside the vocabulary of {vocab} ids")
            }
            CoreError::TooManyTokens { tokens, max } => {
                write!(f, "{tokens} tokens per row in one call; this plan allows at most {max}")
            }
            CoreError::UnalignedReset { position_in_block } => write!(
                f,
                "a row may start a new document only at a block boundary while other \
                 rows continue (the batch is {position_in_block} tokens into a block)"
            ),
            CoreError::OutOfMemory { what, requested, available } => {
                write!(f, "memory pool `{what}` exhausted: {requested} elements requested, {available} left")
            }
            CoreError::Mismatch { what } => write!(f, "mismatch: {what}"),
        }
    }
}

/// Result with the core's error.
///
/// A function of the core returns either its value or a [`CoreError`], which `?`
/// passes on.
///
/// ```
/// use brt_core::{Config, CoreResult, WeightLayout};
/// fn parameters(config: &Config) -> CoreResult<usize> {
///     config.validate()?;
///     Ok(WeightLayout::new(config)?.len())
/// }
/// assert!(parameters(&Config::plain(10, 8, 2, 4, 16, 2, 4))? > 0);
/// assert!(parameters(&Config::plain(10, 8, 2, 4, 16, 2, 0)).is_err());
/// # Ok::<(), brt_core::CoreError>(())
/// ```
pub type CoreResult<T> = Result<T, CoreError>;

/// Checked product of sizes, naming what overflowed.
pub(crate) fn mul(a: usize, b: usize, what: &'static str) -> CoreResult<usize> {
    a.checked_mul(b).ok_or(CoreError::SizeOverflow { what })
}

/// Checked sum of sizes, naming what overflowed.
pub(crate) fn add(a: usize, b: usize, what: &'static str) -> CoreResult<usize> {
    a.checked_add(b).ok_or(CoreError::SizeOverflow { what })
}

/// Checked product of several sizes.
pub(crate) fn product(dims: &[usize], what: &'static str) -> CoreResult<usize> {
    dims.iter().try_fold(1usize, |acc, &d| mul(acc, d, what))
}

impl core::error::Error for CoreError {}
