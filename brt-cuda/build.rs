//! Builds the kernel emulator (feature `emulator`): the CUDA C kernels of
//! `kernels/` compiled for the host by the C++ compiler. Without the feature
//! there is nothing to build: the kernels are compiled at run time by NVRTC.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "emulator")]
    {
        for file in [
            "emu/emu.cpp",
            "emu/emu.h",
            "kernels/common.cuh",
            "kernels/elementwise.cu",
            "kernels/norms.cu",
            "kernels/matmul.cu",
            "kernels/attention.cu",
            "kernels/linear_attention.cu",
        ] {
            println!("cargo:rerun-if-changed={file}");
        }
        cc::Build::new()
            .cpp(true)
            .file("emu/emu.cpp")
            .flag_if_supported("-std=c++17")
            .flag_if_supported("-fno-strict-aliasing")
            .warnings(true)
            .opt_level(2)
            .compile("brt_cuda_emu");
    }
}
