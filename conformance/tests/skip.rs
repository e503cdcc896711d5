//! The skip rules for backends that need a device: without one every check is a
//! loudly printed skip, `BRT_REQUIRE_GPU=1` turns it into a failure, and a device
//! is built once per test binary.

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
fn run_child(test: &str, require: Option<&str>) -> std::process::Output {
    let exe = std::env::current_exe().expect("the test binary knows its own path");
    let mut cmd = Command::new(exe);
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
fn the_device_is_built_once_per_binary() {
    for _ in 0..3 {
        assert!(SharedDevice::create().is_ok());
    }
    assert_eq!(INITS.load(Ordering::SeqCst), 1);
}
