// Host definitions of the CUDA C the kernels use, so that the kernel sources of
// ../kernels compile unchanged with a C++17 compiler (see emu.cpp).
//
// A block's threads are fibers of one OS thread: they run one after another up
// to their next __syncthreads, so `__shared__` variables can simply be static
// (thread_local, because tests run emulators on several OS threads at once).
#pragma once

#include <cmath>
#include <cstring>

#define BRT_EMULATOR 1

struct uint3 {
    unsigned int x, y, z;
};
typedef uint3 dim3;

extern thread_local uint3 threadIdx;
extern thread_local uint3 blockIdx;
extern thread_local dim3 blockDim;
extern thread_local dim3 gridDim;

void __syncthreads();

#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(n)
#define __shared__ static thread_local

inline float __uint_as_float(unsigned int u) {
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
}

inline unsigned int __float_as_uint(float f) {
    unsigned int u;
    std::memcpy(&u, &f, sizeof u);
    return u;
}
