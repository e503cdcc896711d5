//! The skip rules for backends that need a device: without one every check is a
//! loudly printed skip, `BRT_REQUIRE_GPU=1` turns it into a failure, and a device
//! is built once per test binary. The same for a CPU SIMD level this processor
//! lacks, with `BRT_REQUIRE_SIMD` (and not `BRT_REQUIRE_GPU`).

mod common;

use brt_core::{CoreError, Reference};
use brt_cpu::Heap;
use conformance::{shared_device, Backend, Skip};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

/// A backend whose device is never there.
struct NoDevice;

impl Backend for NoDevice {
    type Kernels = Reference<Heap>;
    const NAME: &'static str = "no-device";

    fn create() -> Result<Reference<Heap>, Skip> {
        Err(Skip::new("this test backend never finds a device"))
    }
    fn core_error(error: &CoreError) -> Option<CoreError> {
        Some(*error)
    }
}

conformance::suite!(no_device, NoDevice);

/// A backend forcing a SIMD level this CPU never has.
struct NoLevel;

impl Backend for NoLevel {
    type Kernels = Reference<Heap>;
    const NAME: &'static str = "no-level";

    fn create() -> Result<Reference<Heap>, Skip> {
        Err(Skip::missing_level("this test backend's SIMD level is never here"))
    }
    fn core_error(error: &CoreError) -> Option<CoreError> {
        Some(*error)
    }
}

conformance::suite!(no_level, NoLevel);

static INITS: AtomicUsize = AtomicUsize::new(0);
static DEVICE: OnceLock<Result<Arc<u32>, String>> = OnceLock::new();

/// A backend with a "device" (a counter standing for one) built once and shared.
struct SharedDevice;

impl Backend for SharedDevice {
    type Kernels = Reference<Heap>;
    const NAME: &'static str = "shared-device";

    fn create() -> Result<Reference<Heap>, Skip> {
        let _device = shared_device(&DEVICE, || {
            INITS.fetch_add(1, Ordering::SeqCst);
            Ok(Arc::new(7))
        })?;
        Ok(Reference::new(Heap))
    }
    fn core_error(error: &CoreError) -> Option<CoreError> {
        Some(*error)
    }
}

conformance::suite!(shared, SharedDevice);

/// Runs one test of this binary in a child process with `BRT_REQUIRE_GPU` set
/// to `require` (or unset).
///
/// A binary cross-built for another architecture runs under cargo's `runner`
/// (an emulator such as `qemu-aarch64`), which the child needs too: the host
/// cannot execute it directly. `BRT_TEST_RUNNER` names that runner (a program
/// and its arguments, separated by spaces); `scripts/cross-check.sh` sets it.
fn run_child(test: &str, require: Option<&str>) -> std::process::Output {
    let exe = std::env::current_exe().expect("the test binary knows its own path");
    let runner = std::env::var("BRT_TEST_RUNNER").unwrap_or_default();
    let mut runner = runner.split_whitespace();
    let mut cmd = match runner.next() {
        Some(program) => {
            let mut cmd = Command::new(program);
            cmd.args(runner).arg(exe);
            cmd
        }
        None => Command::new(exe),
    };
    cmd.args([test, "--exact", "--nocapture", "--test-threads", "1"]);
    match require {
        Some(v) => cmd.env("BRT_REQUIRE_GPU", v),
        None => cmd.env_remove("BRT_REQUIRE_GPU"),
    };
    cmd.output().expect("the test binary runs")
}

#[test]
fn a_missing_device_is_a_loud_skip() {
    let out = run_child("no_device::embed", None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "a skip must not fail the test:\n{stderr}");
    assert!(stderr.contains("SKIPPING every check of backend `no-device`"), "no skip message:\n{stderr}");
    assert!(stderr.contains("this test backend never finds a device"), "the reason is missing:\n{stderr}");
}

#[test]
fn require_gpu_turns_the_skip_into_a_failure() {
    let out = run_child("no_device::embed", Some("1"));
    let text = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "BRT_REQUIRE_GPU=1 must fail a skipped check:\n{text}");
    assert!(text.contains("BRT_REQUIRE_GPU=1"), "the failure must say why:\n{text}");
    assert!(text.contains("this test backend never finds a device"), "the reason is missing:\n{text}");
    // Any other value leaves it a skip.
    assert!(run_child("no_device::embed", Some("0")).status.success());
}

#[test]
fn require_gpu_leaves_a_missing_simd_level_a_skip() {
    // `BRT_REQUIRE_SIMD` governs levels (see below): a GPU check runs whole test
    // binaries, NEON factories included, on an x86-64 machine.
    let out = run_child("no_level::embed", Some("1"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "a missing SIMD level must stay a skip under BRT_REQUIRE_GPU=1:\n{stderr}");
    assert!(stderr.contains("SKIPPING every check of backend `no-level`"), "no skip message:\n{stderr}");
    assert!(!stderr.contains("BRT_REQUIRE_GPU"), "a level's skip must not point at BRT_REQUIRE_GPU:\n{stderr}");
}

#[test]
fn the_device_is_built_once_per_binary() {
    for _ in 0..3 {
        assert!(SharedDevice::create().is_ok());
    }
    assert_eq!(INITS.load(Ordering::SeqCst), 1);
}

#[cfg(feature = "cpu")]
#[test]
fn require_simd_turns_a_missing_level_into_a_failure() {
    use brt_cpu::SimdLevel;
    use common::cpu::level_gate;
    use std::panic::catch_unwind;

    let fails = |level, supported, require: Option<&'static str>| {
        catch_unwind(|| level_gate(level, supported, require)).is_err()
    };
    // Without the variable, or naming other levels, a missing level is a skip
    // that gives the level's name.
    let skip = level_gate(SimdLevel::Neon, false, None).expect_err("a missing level is skipped");
    assert!(skip.reason.contains("neon"), "the skip must name the level: {skip}");
    assert!(level_gate(SimdLevel::Neon, false, Some("")).is_err());
    assert!(level_gate(SimdLevel::Neon, false, Some("avx2,avx512")).is_err());
    // Named (alone, in a list, spaced, in capitals), it is a failure.
    assert!(fails(SimdLevel::Neon, false, Some("neon")));
    assert!(fails(SimdLevel::Neon, false, Some("avx2, NEON")));
    assert!(fails(SimdLevel::Avx512, false, Some("avx2,avx512")));
    // A supported level runs, required or not.
    assert_eq!(level_gate(SimdLevel::Neon, true, Some("neon")), Ok(()));
    assert_eq!(level_gate(SimdLevel::Scalar, true, None), Ok(()));
    // A name that is not a level fails whatever the level, so a typo cannot
    // silently turn the requirement off.
    assert!(fails(SimdLevel::Neon, true, Some("neno")));
    assert!(fails(SimdLevel::Avx2, false, Some("neon,avx")));
}
