//! Compiling the kernel programs with NVRTC, once per process.
//!
//! For a GPU whose architecture NVRTC knows, the program is compiled to a
//! CUBIN for that architecture (`sm_XY`): machine code that the driver loads
//! as it is, with no PTX JIT, so an NVRTC newer than the driver (e.g. NVRTC
//! 13.5 with a 13.0 driver) works. Otherwise (a GPU newer than NVRTC), or if
//! the CUBIN cannot be loaded, it is compiled to PTX for the newest virtual
//! architecture (`compute_XY`) not above the GPU's, which the driver compiles.

use crate::error::{CudaError, CudaResult};
use crate::source::Program;
use cudarc::nvrtc::{result as nresult, sys as nsys};
use std::collections::HashMap;
use std::ffi::{c_char, CString};
use std::sync::{Arc, Mutex, OnceLock};

/// What NVRTC is asked to produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Target {
    /// A CUBIN for `sm_XY` (XY = major * 10 + minor).
    Cubin(i32),
    /// PTX for `compute_XY`.
    Ptx(i32),
}

impl Target {
    fn option(self) -> String {
        match self {
            Target::Cubin(arch) => format!("--gpu-architecture=sm_{arch}"),
            Target::Ptx(arch) => format!("--gpu-architecture=compute_{arch}"),
        }
    }
}

/// A compiled program, ready for `cuModuleLoadData`.
#[derive(Debug)]
pub(crate) enum Image {
    /// Machine code for one architecture.
    Cubin(Vec<u8>),
    /// PTX text.
    Ptx(String),
}

impl Image {
    /// Bytes of code.
    pub(crate) fn len(&self) -> usize {
        match self {
            Image::Cubin(bytes) => bytes.len(),
            Image::Ptx(text) => text.len(),
        }
    }
}

/// The architectures NVRTC can compile for (e.g. 75, 80, 90).
pub(crate) fn nvrtc_architectures() -> CudaResult<Vec<i32>> {
    let failure = |call: &str, status: nsys::nvrtcResult| CudaError::Compile {
        what: "querying NVRTC's architectures".into(),
        log: format!("{call}: {status:?}"),
    };
    let mut count: std::ffi::c_int = 0;
    // SAFETY: writes one int through a valid pointer.
    let status = unsafe { nsys::nvrtcGetNumSupportedArchs(&mut count) };
    if status != nsys::nvrtcResult::NVRTC_SUCCESS || count <= 0 {
        return Err(failure("nvrtcGetNumSupportedArchs", status));
    }
    let mut archs = vec![0 as std::ffi::c_int; count as usize];
    // SAFETY: `archs` has room for the `count` ints NVRTC writes.
    let status = unsafe { nsys::nvrtcGetSupportedArchs(archs.as_mut_ptr()) };
    if status != nsys::nvrtcResult::NVRTC_SUCCESS {
        return Err(failure("nvrtcGetSupportedArchs", status));
    }
    Ok(archs)
}

/// What to compile for a GPU of architecture `device`, best first: its own
/// CUBIN and PTX when NVRTC supports it, else PTX for the newest architecture
/// below it.
pub(crate) fn targets(device: i32, supported: &[i32]) -> CudaResult<Vec<Target>> {
    if supported.contains(&device) {
        return Ok(vec![Target::Cubin(device), Target::Ptx(device)]);
    }
    match supported.iter().copied().filter(|&a| a <= device).max() {
        Some(arch) => Ok(vec![Target::Ptx(arch)]),
        None => Err(CudaError::Unsupported(format!(
            "GPU compute capability {}.{} is older than every architecture this NVRTC supports ({supported:?})",
            device / 10,
            device % 10
        ))),
    }
}

/// Destroys an NVRTC program when dropped.
struct NvrtcProgram(nsys::nvrtcProgram);

impl Drop for NvrtcProgram {
    fn drop(&mut self) {
        // SAFETY: the program was created by `create_program` and is destroyed
        // once; a failure to free cannot be acted on.
        let _ = unsafe { nresult::destroy_program(self.0) };
    }
}

fn text(chars: &[c_char]) -> String {
    let bytes: Vec<u8> = chars.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Compiles `program` for `target` (no cache).
fn compile_now(program: Program, target: Target) -> CudaResult<Image> {
    let what = format!("{} with {}", program.name(), target.option());
    let fail = |log: String| CudaError::Compile { what: what.clone(), log };
    let source = CString::new(program.source()).map_err(|_| fail("the source contains a NUL byte".into()))?;
    let name = CString::new(program.name()).map_err(|_| fail("the name contains a NUL byte".into()))?;
    let program = NvrtcProgram(nresult::create_program(&source, Some(&name)).map_err(|e| fail(format!("{e:?}")))?);
    let options = [target.option(), "--std=c++17".to_string()];
    // SAFETY: a live program (destroyed only when `program` drops, after use);
    // `source` and `name` outlive it.
    if let Err(e) = unsafe { nresult::compile_program(program.0, &options) } {
        // SAFETY: as above.
        let log = unsafe { nresult::get_program_log(program.0) }.map(|l| text(&l)).unwrap_or_default();
        return Err(fail(format!("{e:?}\n{log}")));
    }
    match target {
        Target::Ptx(_) => {
            // SAFETY: as above; the program was compiled.
            let ptx = unsafe { nresult::get_ptx(program.0) }.map_err(|e| fail(format!("{e:?}")))?;
            Ok(Image::Ptx(text(&ptx)))
        }
        Target::Cubin(_) => {
            let mut size = 0usize;
            // SAFETY: as above; writes the size through a valid pointer.
            let status = unsafe { nsys::nvrtcGetCUBINSize(program.0, &mut size) };
            if status != nsys::nvrtcResult::NVRTC_SUCCESS || size == 0 {
                return Err(fail(format!("nvrtcGetCUBINSize: {status:?}")));
            }
            let mut cubin = vec![0u8; size];
            // SAFETY: `cubin` has the `size` bytes NVRTC writes.
            let status = unsafe { nsys::nvrtcGetCUBIN(program.0, cubin.as_mut_ptr() as *mut c_char) };
            if status != nsys::nvrtcResult::NVRTC_SUCCESS {
                return Err(fail(format!("nvrtcGetCUBIN: {status:?}")));
            }
            Ok(Image::Cubin(cubin))
        }
    }
}

/// Images by (target, program).
type Cache = Mutex<HashMap<(Target, Program), Arc<Image>>>;

/// `program` compiled for `target`: by NVRTC the first time this process asks
/// for it, from a process-wide cache afterwards.
pub(crate) fn compiled(target: Target, program: Program) -> CudaResult<Arc<Image>> {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    // A poisoned lock only means another thread panicked while compiling; the
    // map itself is always consistent (one insert per entry).
    let mut cache = CACHE.get_or_init(Default::default).lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(image) = cache.get(&(target, program)) {
        return Ok(image.clone());
    }
    let image = Arc::new(crate::driver::guarded(|| compile_now(program, target))?);
    cache.insert((target, program), image.clone());
    Ok(image)
}

/// Compiles every kernel program with NVRTC for compute capability
/// `major.minor` and the head widths `head_dims`, to every target the backend
/// would try on such a GPU (CUBIN and PTX), without a GPU: only NVRTC is
/// needed. Returns the total size of the code produced.
///
/// For checks where there is no GPU: it proves that the embedded CUDA C
/// compiles for that architecture.
///
/// The usual call is e.g. `compile_kernels(9, 0, &[64, 128])` (Hopper, two
/// head widths), which takes NVRTC a few seconds. Here, a compute capability
/// 1.0 that no NVRTC supports is refused before anything is compiled, and
/// where NVRTC is not installed that is the error:
///
/// ```
/// use brt_cuda::{compile_kernels, CudaError};
///
/// match compile_kernels(1, 0, &[64]) {
///     Err(CudaError::NoNvrtcLibrary) => println!("no NVRTC here"),
///     Err(CudaError::Unsupported(m)) => assert!(m.contains("older than every architecture"), "{m}"),
///     other => panic!("{other:?}"),
/// }
/// ```
pub fn compile_kernels(major: u32, minor: u32, head_dims: &[usize]) -> CudaResult<usize> {
    // SAFETY: only tries to open libnvrtc (dlopen); calls nothing in it.
    if !unsafe { nsys::is_culib_present() } {
        return Err(CudaError::NoNvrtcLibrary);
    }
    let supported = crate::driver::guarded(nvrtc_architectures)?;
    let mut total = 0;
    for target in targets((major * 10 + minor) as i32, &supported)? {
        total += compiled(target, Program::Common)?.len();
        for &head_dim in head_dims {
            total += compiled(target, Program::Attention { head_dim })?.len();
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_the_gpus_own_or_the_newest_ptx_below_it() {
        let supported = [75, 80, 86, 89, 90, 100, 120];
        assert_eq!(targets(90, &supported).unwrap(), vec![Target::Cubin(90), Target::Ptx(90)]);
        assert_eq!(targets(121, &supported).unwrap(), vec![Target::Ptx(120)]);
        assert_eq!(targets(87, &supported).unwrap(), vec![Target::Ptx(86)]);
        assert!(targets(70, &supported).is_err());
        assert_eq!(Target::Cubin(90).option(), "--gpu-architecture=sm_90");
        assert_eq!(Target::Ptx(120).option(), "--gpu-architecture=compute_120");
    }
}
