//! The glue to `proptest`: case counts, seeds, regression files and shrinking,
//! and the turn of a failing case into a [`Failure`] that says why.

use crate::backend::{report_skip, Backend};
use crate::failure::Failure;
use crate::tolerance::take_worst;
use proptest::strategy::Strategy;
use proptest::test_runner::{Config, FileFailurePersistence, RngSeed, TestCaseError, TestError, TestRunner};
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Debug;

/// The seed every check uses when the `CI` environment variable is set and
/// `PROPTEST_RNG_SEED` is not: CI runs are reproducible.
pub const CI_SEED: u64 = 0x6272_742d_636f_6e66; // "brt-conf"

/// How a check is run.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Save failing cases to `proptest-regressions/<check>.txt` (and replay the
    /// saved ones first, which always happens when the file exists).
    pub persist: bool,
    /// Shrink a failing case to a minimal one before reporting it.
    pub shrink: bool,
    /// Case count when `PROPTEST_CASES` is not set; `None` keeps each check's
    /// own default.
    pub cases: Option<u32>,
    /// Whether `PROPTEST_CASES`, `PROPTEST_RNG_SEED` and
    /// `PROPTEST_MAX_SHRINK_ITERS` apply. Without them a run
    /// has a strength of its own: the case count above (or the check's) and the
    /// fixed seed [`CI_SEED`], whatever the environment.
    pub environment: bool,
}

impl Options {
    /// A real run: failures are saved and shrunk.
    pub const fn suite() -> Options {
        Options { persist: true, shrink: true, cases: None, environment: true }
    }

    /// The suite's own tests against deliberately broken kernels: nothing saved
    /// (the failures are expected), no shrinking (only detection matters), and
    /// the strength each needs (every check's own case count, a fixed seed),
    /// which `PROPTEST_CASES=4` must not weaken into a missed fault.
    pub const fn meta() -> Options {
        Options { persist: false, shrink: false, cases: None, environment: false }
    }
}

/// The proptest configuration of one check.
fn config(check: &'static str, default_cases: u32, options: &Options) -> Config {
    // `Config::default()` already holds the PROPTEST_* environment variables.
    let mut config = Config::default();
    let from_environment = |name: &str| options.environment && std::env::var_os(name).is_some();
    if !from_environment("PROPTEST_CASES") {
        config.cases = options.cases.unwrap_or(default_cases);
    }
    if !options.environment || (!from_environment("PROPTEST_RNG_SEED") && std::env::var_os("CI").is_some()) {
        config.rng_seed = RngSeed::Fixed(CI_SEED);
    }
    config.failure_persistence = if options.persist && config.failure_persistence.is_some() {
        // Relative to the package root, where cargo runs tests. One file per check,
        // shared by every backend: a case that broke one backend is replayed on all.
        let path: &'static str = Box::leak(format!("proptest-regressions/{check}.txt").into_boxed_str());
        Some(Box::new(FileFailurePersistence::Direct(path)))
    } else {
        None
    };
    if !options.shrink {
        config.max_shrink_iters = 0;
    } else if !from_environment("PROPTEST_MAX_SHRINK_ITERS") {
        // Otherwise kept as the environment set it: `PROPTEST_MAX_SHRINK_ITERS=0`
        // reports the first failing case at once (mutation testing wants only the verdict).
        config.max_shrink_iters = 2048;
        config.max_shrink_time = 120_000;
    }
    config
}

/// Runs `test` on cases drawn from `strategy`; the first failing case (shrunk
/// when asked) is returned with the reason it failed.
pub(crate) fn run_cases<S, F>(
    check: &'static str,
    default_cases: u32,
    options: &Options,
    strategy: S,
    test: F,
) -> Result<(), Failure>
where
    S: Strategy,
    S::Value: Debug,
    F: Fn(&S::Value) -> Result<(), Failure>,
{
    let config = config(check, default_cases, options);
    let cases = config.cases;
    let failures: RefCell<HashMap<String, Failure>> = RefCell::new(HashMap::new());
    let mut runner = TestRunner::new(config);
    take_worst();
    let result = runner.run(&strategy, |case| match test(&case) {
        Ok(()) => Ok(()),
        Err(failure) => {
            let reason = failure.to_string();
            failures.borrow_mut().insert(format!("{case:?}"), failure);
            Err(TestCaseError::fail(reason))
        }
    });
    match result {
        Ok(()) => {
            let worst = take_worst();
            // Seen with `--nocapture`: how close the backend came to the tolerances.
            println!(
                "{check}: {cases} cases agree; worst error {:.3e} ({:.1}% of the allowed) in {}",
                worst.error,
                worst.ratio * 100.0,
                if worst.what.is_empty() { "-" } else { &worst.what }
            );
            Ok(())
        }
        Err(TestError::Fail(reason, case)) => {
            let case = format!("{case:?}");
            // A reason missing from the map came from a panic that proptest caught.
            let cause = failures.borrow_mut().remove(&case).unwrap_or_else(|| Failure::Panic(reason.to_string()));
            Err(Failure::Case { check, case, cause: Box::new(cause) })
        }
        Err(TestError::Abort(reason)) => Err(Failure::Aborted(reason.to_string())),
    }
}

/// Runs `test` on every case of a fixed list (shapes that must all be covered on
/// every run, such as a backend's blocking boundaries), in order; the first
/// failing case is returned with the reason it failed. Reports the worst
/// agreement like [`run_cases`]. A panic inside the backend is a failure of its
/// case, as in proptest.
pub(crate) fn run_list<C, F>(check: &'static str, cases: &[C], test: F) -> Result<(), Failure>
where
    C: Debug,
    F: Fn(&C) -> Result<(), Failure>,
{
    take_worst();
    for case in cases {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| test(case)));
        let failure = match outcome {
            Ok(Ok(())) => continue,
            Ok(Err(failure)) => failure,
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "a panic without a message".into());
                Failure::Panic(message)
            }
        };
        return Err(Failure::Case { check, case: format!("{case:?}"), cause: Box::new(failure) });
    }
    let worst = take_worst();
    println!(
        "{check}: all {} listed cases agree; worst error {:.3e} ({:.1}% of the allowed) in {}",
        cases.len(),
        worst.error,
        worst.ratio * 100.0,
        if worst.what.is_empty() { "-" } else { &worst.what }
    );
    Ok(())
}

/// A check of the suite: runs on a backend's kernels.
pub type CheckFn<B> = fn(&mut <B as Backend>::Kernels, &Options) -> Result<(), Failure>;

/// Runs one check on backend `B` as a test: makes the kernels (or reports the
/// skip), runs the check with [`Options::suite`] and fails the test with the
/// full report when the check fails.
///
/// # Panics
///
/// Panics (fails the calling test) when the check fails, or when the backend
/// cannot run and `BRT_REQUIRE_GPU=1`.
pub fn run<B: Backend>(check: &'static str, f: CheckFn<B>) {
    let mut kernels = match B::create() {
        Ok(k) => k,
        Err(skip) => {
            report_skip(B::NAME, check, &skip);
            return;
        }
    };
    if let Err(failure) = f(&mut kernels, &Options::suite()) {
        panic!("backend `{}` fails conformance check `{check}`:\n{failure}", B::NAME);
    }
}

/// Runs one check of the oracle as a test (see [`crate::gradient_oracle!`]).
///
/// # Panics
///
/// Panics (fails the calling test) when the check fails.
pub fn run_oracle(check: &'static str, f: crate::OracleFn) {
    if let Err(failure) = f(&Options::suite()) {
        panic!("the f64 reference fails oracle check `{check}`:\n{failure}");
    }
}
