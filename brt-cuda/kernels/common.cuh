// brt CUDA kernels: shared definitions.
//
// The kernels are compiled at run time by NVRTC (prelude from src/source.rs
// first), and, for tests, by a host C++ compiler inside the emulator
// (emu/emu.h first, BRT_EMULATOR defined). Everything here is written for both:
// no headers, no warp intrinsics (barriers only through __syncthreads, which
// every thread of a block reaches the same number of times: no early return
// before a barrier), no atomics.
//
// Pointers travel as 64-bit integers inside one parameter struct per kernel;
// each struct has its 8-byte fields first, then its 4-byte fields, padded to a
// multiple of 8 bytes, and mirrors a `#[repr(C)]` struct of src/params.rs (the
// sizes are checked on both sides).

typedef unsigned int u32;
typedef unsigned long long u64;
typedef unsigned short u16;

// Full unrolling of loops with compile-time trip counts, so that small
// per-thread arrays stay in registers (the emulator ignores it).
#ifdef BRT_EMULATOR
#define BRT_UNROLL
#else
#define BRT_UNROLL _Pragma("unroll")
#endif

// Storage types of parameters (src/params.rs `WDTYPE_*`).
#define BRT_WDT_F32 0u
#define BRT_WDT_F16 1u
#define BRT_WDT_BF16 2u

// Activations of a product (src/params.rs `ACT_*`).
#define BRT_ACT_IDENTITY 0u
#define BRT_ACT_RELU 1u
#define BRT_ACT_TANH 2u

// SPEC section 1 constants (brt_core::primitives).
#define BRT_RMS_EPS 1e-6f
#define BRT_L2_EPS 1e-6f
#define BRT_SAFE_SOFTMAX_FLOOR (-1000.0f)

// Threads per block of the kernels whose tiling depends on it (the host
// launches exactly these; src/launch.rs has the same numbers and the prelude
// checks them, see BRT_HOST_* below).
#define BRT_ELEMENTWISE_THREADS 256
#define BRT_REDUCE_MAX_THREADS 256
#define BRT_MM_THREADS 256
#define BRT_ATT_THREADS 128

#ifdef BRT_HOST_MM_THREADS
static_assert(BRT_HOST_MM_THREADS == BRT_MM_THREADS, "matmul block size differs between host and kernels");
static_assert(BRT_HOST_ATT_THREADS == BRT_ATT_THREADS, "attention block size differs between host and kernels");
static_assert(BRT_HOST_ELEMENTWISE_THREADS == BRT_ELEMENTWISE_THREADS, "elementwise block size differs");
static_assert(BRT_HOST_REDUCE_MAX_THREADS == BRT_REDUCE_MAX_THREADS, "reduction block size differs");
#endif

// The T5 bucket of distances 0..127 (distances >= 128 are all in the last
// bucket, 31). Computed on the host by brt_core::primitives::t5_bucket, so the
// bucketing is bit-for-bit the core's; the NVRTC prelude defines BRT_T5_LUT,
// the emulator fills the array through its C interface.
#ifdef BRT_EMULATOR
extern unsigned char brt_t5_lut[128];
#else
__constant__ unsigned char brt_t5_lut[128] = BRT_T5_LUT;
#endif

__device__ __forceinline__ u32 brt_t5_bucket(u64 n) {
    return n < 128ull ? (u32)brt_t5_lut[n] : 31u;
}

// IEEE half -> float, exactly (no intrinsics, so the emulator runs the same code).
__device__ __forceinline__ float brt_f16_to_f32(u32 h) {
    u32 sign = (h & 0x8000u) << 16;
    u32 exponent = (h >> 10) & 0x1fu;
    u32 mantissa = h & 0x3ffu;
    if (exponent == 0u) {
        // Zero or subnormal: mantissa * 2^-24, exact in float.
        float magnitude = (float)mantissa * 5.9604644775390625e-8f;
        return __uint_as_float(__float_as_uint(magnitude) | sign);
    }
    if (exponent == 31u) {
        return __uint_as_float(sign | 0x7f800000u | (mantissa << 13));
    }
    return __uint_as_float(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

// bfloat16 -> float: the upper half of a float.
__device__ __forceinline__ float brt_bf16_to_f32(u32 h) {
    return __uint_as_float(h << 16);
}

// Parameter `i` of a buffer stored as `dtype`, widened to float.
__device__ __forceinline__ float brt_load_weight(u64 base, u32 dtype, u64 i) {
    if (dtype == BRT_WDT_F32) {
        return ((const float*)base)[i];
    }
    u32 bits = (u32)((const u16*)base)[i];
    return dtype == BRT_WDT_F16 ? brt_f16_to_f32(bits) : brt_bf16_to_f32(bits);
}

__device__ __forceinline__ float brt_sigmoid(float x) {
    return 1.0f / (1.0f + expf(-x));
}

// phi(x) = elu(x) + 1 (SPEC section 7).
__device__ __forceinline__ float brt_elu_plus_one(float x) {
    return x > 0.0f ? x + 1.0f : expf(x);
}

__device__ __forceinline__ float brt_activate(float x, u32 activation) {
    if (activation == BRT_ACT_RELU) {
        // Rust's f32::max(x, 0.0), also for NaN (gives 0).
        return fmaxf(x, 0.0f);
    }
    if (activation == BRT_ACT_TANH) {
        return tanhf(x);
    }
    return x;
}

// Sum of `value` over the block. blockDim.x must be a power of two no larger
// than BRT_REDUCE_MAX_THREADS; every thread of the block must call it.
// `scratch` is shared memory of BRT_REDUCE_MAX_THREADS floats; it may be
// reused as soon as this returns.
__device__ __forceinline__ float brt_block_sum(float value, float* scratch) {
    u32 t = threadIdx.x;
    scratch[t] = value;
    __syncthreads();
    for (u32 half = blockDim.x / 2u; half > 0u; half >>= 1) {
        if (t < half) {
            scratch[t] += scratch[t + half];
        }
        __syncthreads();
    }
    float total = scratch[0];
    __syncthreads();
    return total;
}

// First element index of this thread and the grid-wide step, for grid-stride
// loops over 64-bit extents.
__device__ __forceinline__ u64 brt_global_thread() {
    return (u64)blockIdx.x * (u64)blockDim.x + (u64)threadIdx.x;
}
__device__ __forceinline__ u64 brt_grid_threads() {
    return (u64)gridDim.x * (u64)blockDim.x;
}
