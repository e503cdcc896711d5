//! x86-64 feature detection without the standard library: `cpuid` for what the
//! processor has, `xgetbv` for whether the operating system saves the wide
//! registers (the same two checks `is_x86_feature_detected!` makes).

use core::arch::x86_64::{__cpuid_count, _xgetbv, CpuidResult};

/// The features the CPU levels need.
#[cfg_attr(feature = "std", allow(dead_code))]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Features {
    /// AVX2, FMA and F16C, with the AVX state enabled by the OS.
    pub avx2: bool,
    /// AVX-512F, with the AVX-512 state enabled by the OS.
    pub avx512: bool,
}

fn cpuid(leaf: u32, sub: u32) -> CpuidResult {
    #[allow(unused_unsafe)]
    // SAFETY: `cpuid` exists on every x86-64 processor; leaves above the maximum
    // return zeros or the highest leaf's data, which the caller guards against.
    unsafe {
        __cpuid_count(leaf, sub)
    }
}

/// Reads the XCR0 register.
///
/// # Safety
/// The CPU must report OSXSAVE (cpuid leaf 1, ecx bit 27).
#[cfg_attr(feature = "std", allow(dead_code))]
#[target_feature(enable = "xsave")]
unsafe fn xcr0() -> u64 {
    // SAFETY: XSAVE is enabled by the OS (OSXSAVE), so `xgetbv 0` is allowed.
    unsafe { _xgetbv(0) }
}

/// The processor family (base plus extended) of an AMD processor, `None` on
/// other vendors.
pub(crate) fn amd_family() -> Option<u32> {
    let vendor = cpuid(0, 0);
    // "AuthenticAMD" in ebx, edx, ecx.
    if (vendor.ebx, vendor.edx, vendor.ecx) != (0x6874_7541, 0x6974_6e65, 0x444d_4163) {
        return None;
    }
    let eax = cpuid(1, 0).eax;
    let base = (eax >> 8) & 0xf;
    Some(if base == 0xf { base + ((eax >> 20) & 0xff) } else { base })
}

/// Detects the features (cheap; called once per backend construction).
#[cfg_attr(feature = "std", allow(dead_code))]
pub(crate) fn features() -> Features {
    let max_leaf = cpuid(0, 0).eax;
    if max_leaf < 7 {
        return Features::default();
    }
    let leaf1 = cpuid(1, 0);
    let leaf7 = cpuid(7, 0);
    let bit = |reg: u32, n: u32| reg & (1 << n) != 0;
    if !bit(leaf1.ecx, 27) {
        return Features::default();
    }
    // SAFETY: OSXSAVE was checked just above.
    let xcr0 = unsafe { xcr0() };
    let avx_state = xcr0 & 0b110 == 0b110;
    let avx512_state = xcr0 & 0xe6 == 0xe6;
    let avx2 = avx_state && bit(leaf1.ecx, 28) && bit(leaf1.ecx, 12) && bit(leaf1.ecx, 29) && bit(leaf7.ebx, 5);
    let avx512 = avx2 && avx512_state && bit(leaf7.ebx, 16);
    Features { avx2, avx512 }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use std::eprintln;
    use std::string::{String, ToString};

    #[test]
    fn cpuid_detection_agrees_with_the_standard_library() {
        let f = super::features();
        let std_avx2 = std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
            && std::is_x86_feature_detected!("f16c");
        assert_eq!(f.avx2, std_avx2);
        assert_eq!(f.avx512, std_avx2 && std::is_x86_feature_detected!("avx512f"));
    }

    /// The vendor and the family (base plus extended, in decimal) as the
    /// operating system reports them in `/proc/cpuinfo`: a second reading of
    /// `cpuid`, made by other code. `None`, said loudly as `test`'s skip,
    /// where the file or either field is missing.
    fn kernel_cpu(test: &str) -> Option<(String, u32)> {
        let info = std::fs::read_to_string("/proc/cpuinfo").ok();
        let field = |name: &str| {
            info.as_deref()?.lines().find_map(|line| {
                let (key, value) = line.split_once(':')?;
                (key.trim() == name).then(|| value.trim().to_string())
            })
        };
        let cpu = field("vendor_id").zip(field("cpu family").and_then(|family| family.parse().ok()));
        if cpu.is_none() {
            eprintln!("SKIPPED {test}: no vendor_id and cpu family to read in /proc/cpuinfo");
        }
        cpu
    }

    #[test]
    fn amd_family_is_the_family_the_kernel_reports() {
        let Some((vendor, family)) = kernel_cpu("amd_family_is_the_family_the_kernel_reports") else {
            return;
        };
        let want = (vendor == "AuthenticAMD").then_some(family);
        assert_eq!(super::amd_family(), want, "vendor {vendor}, family {family}");
    }

    /// `detect` prefers AVX2 to AVX-512 exactly on AMD processors up to
    /// Zen 4 (family 19h, 25), as its documentation says, with the vendor and
    /// family read from the kernel's report.
    #[test]
    fn detect_prefers_avx2_exactly_on_amd_up_to_zen_4() {
        use crate::SimdLevel;
        let Some((vendor, family)) = kernel_cpu("detect_prefers_avx2_exactly_on_amd_up_to_zen_4") else {
            return;
        };
        let widest = SimdLevel::available().max_by_key(|level| level.lanes()).unwrap_or(SimdLevel::Scalar);
        let half_width_avx512 = vendor == "AuthenticAMD" && family <= 25;
        let want = if widest == SimdLevel::Avx512 && half_width_avx512 { SimdLevel::Avx2 } else { widest };
        assert_eq!(SimdLevel::detect(), want, "vendor {vendor}, family {family}, widest {widest}");
    }
}
