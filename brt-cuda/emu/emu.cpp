// The kernel emulator: runs the CUDA C kernels of ../kernels on the CPU.
//
// A launch runs its blocks one after another. The threads of a block are
// fibers (ucontext) of the calling OS thread; each runs until it reaches
// __syncthreads or returns, then the next one runs. When every thread waits at
// the barrier, all are released (a new "phase"); when every thread has
// returned, the block is done. A block where some threads returned while others
// wait at a barrier is reported as an error (a barrier not reached by every
// thread: undefined behaviour on a GPU).
//
// Within a phase the fibers run in an order chosen by the caller: forward,
// reversed on every other phase, or shuffled. A kernel that reads shared memory
// written by another thread in the same phase (a missing barrier) gives
// different results under different orders, which the tests compare against the
// reference.

#include "emu.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <ucontext.h>
#include <vector>

thread_local uint3 threadIdx;
thread_local uint3 blockIdx;
thread_local dim3 blockDim;
thread_local dim3 gridDim;
unsigned char brt_t5_lut[128];

#include "../kernels/common.cuh"
#include "../kernels/elementwise.cu"
#include "../kernels/norms.cu"
#include "../kernels/matmul.cu"
#include "../kernels/attention.cu"
#include "../kernels/linear_attention.cu"

// Kernels that test the emulator itself (not part of brt).
struct EmuTestParams {
    u64 out;
    u64 generation;
    u64 barrier;
};

// Thread 0 returns while the others wait at a barrier.
extern "C" void brt_emu_test_divergent(const EmuTestParams) {
    if (threadIdx.x == 0) {
        return;
    }
    __syncthreads();
}

// Each thread stores a value, then reads its neighbour's: correct only with
// the barrier in between.
extern "C" void brt_emu_test_neighbour(const EmuTestParams p) {
    __shared__ float cells[1024];
    cells[threadIdx.x] = (float)(threadIdx.x + 1000u * (u32)p.generation);
    if (p.barrier != 0) {
        __syncthreads();
    }
    ((float*)p.out)[threadIdx.x] = cells[(threadIdx.x + 1u) % blockDim.x];
}

namespace {

enum class FiberState { Running, AtBarrier, Done };

struct Fiber {
    ucontext_t context;
    FiberState state;
};

// Stack of one emulated thread. Kernels keep at most a few KiB of locals.
constexpr size_t kStackBytes = 256 * 1024;

struct Scheduler {
    std::vector<Fiber> fibers;
    std::vector<std::vector<char>> stacks;
    ucontext_t main_context;
    unsigned current = 0;
    void (*body)(const void*) = nullptr;
    const void* params = nullptr;
};

thread_local Scheduler scheduler;

void fiber_entry() {
    Scheduler& s = scheduler;
    s.body(s.params);
    s.fibers[s.current].state = FiberState::Done;
    // Returning resumes uc_link, the scheduler.
}

// Runs block `blockIdx` to completion; returns an error message or "".
std::string run_block(unsigned threads, unsigned order, std::mt19937_64& rng) {
    Scheduler& s = scheduler;
    s.fibers.resize(threads);
    while (s.stacks.size() < threads) {
        s.stacks.emplace_back(kStackBytes);
    }
    for (unsigned t = 0; t < threads; ++t) {
        Fiber& f = s.fibers[t];
        if (getcontext(&f.context) != 0) {
            return "getcontext failed";
        }
        f.context.uc_stack.ss_sp = s.stacks[t].data();
        f.context.uc_stack.ss_size = s.stacks[t].size();
        f.context.uc_link = &s.main_context;
        makecontext(&f.context, fiber_entry, 0);
        f.state = FiberState::Running;
    }
    std::vector<unsigned> sequence(threads);
    for (unsigned phase = 0;; ++phase) {
        for (unsigned t = 0; t < threads; ++t) {
            sequence[t] = t;
        }
        if (order == 1 && phase % 2 == 1) {
            std::reverse(sequence.begin(), sequence.end());
        } else if (order == 2) {
            std::shuffle(sequence.begin(), sequence.end(), rng);
        }
        for (unsigned t : sequence) {
            if (s.fibers[t].state != FiberState::Running) {
                continue;
            }
            s.current = t;
            threadIdx = uint3{t, 0, 0};
            if (swapcontext(&s.main_context, &s.fibers[t].context) != 0) {
                return "swapcontext failed";
            }
        }
        unsigned done = 0;
        unsigned waiting = 0;
        for (const Fiber& f : s.fibers) {
            done += f.state == FiberState::Done;
            waiting += f.state == FiberState::AtBarrier;
        }
        if (done == threads) {
            return "";
        }
        if (waiting == threads) {
            for (Fiber& f : s.fibers) {
                f.state = FiberState::Running;
            }
            continue;
        }
        // The waiting fibers are abandoned: their stacks are reused by the next block.
        return "block " + std::to_string(blockIdx.x) + ": " + std::to_string(done) +
               " thread(s) returned while " + std::to_string(waiting) +
               " wait at __syncthreads (a barrier not reached by every thread of the block)";
    }
}

template <class P, void (*K)(const P)>
void call(const void* raw) {
    P p;
    std::memcpy(&p, raw, sizeof p);
    K(p);
}

// Head widths the emulator is built for (the GPU build compiles any).
#define BRT_EMU_HEAD_DIMS(X) \
    X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15) X(16) \
    X(17) X(24) X(32) X(48) X(64) X(96) X(128)

bool emulated_head_dim(u64 dh) {
#define BRT_EMU_IS(n) if (dh == (u64)(n)) return true;
    BRT_EMU_HEAD_DIMS(BRT_EMU_IS)
#undef BRT_EMU_IS
    return false;
}

void attention_entry(const void* raw) {
    AttentionParams p;
    std::memcpy(&p, raw, sizeof p);
    switch (p.head_dim) {
#define BRT_EMU_CASE(n) \
    case n: \
        brt_attention_body<n>(p); \
        break;
        BRT_EMU_HEAD_DIMS(BRT_EMU_CASE)
#undef BRT_EMU_CASE
        default:
            break;
    }
}

void linear_attention_entry(const void* raw) {
    LinearAttentionParams p;
    std::memcpy(&p, raw, sizeof p);
    switch (p.head_dim) {
#define BRT_EMU_CASE(n) \
    case n: \
        brt_linear_attention_body<n>(p); \
        break;
        BRT_EMU_HEAD_DIMS(BRT_EMU_CASE)
#undef BRT_EMU_CASE
        default:
            break;
    }
}

// What a kernel requires of its launch, as the GPU build does.
enum class BlockRule { Any, Exactly, PowerOfTwoUpTo, AtLeastHeadDim };

struct Entry {
    const char* name;
    size_t param_size;
    void (*run)(const void*);
    BlockRule rule;
    unsigned threads;
};

const Entry kEntries[] = {
    {"brt_embed", sizeof(EmbedParams), call<EmbedParams, brt_embed>, BlockRule::Any, 0},
    {"brt_add_positions", sizeof(PositionsParams), call<PositionsParams, brt_add_positions>, BlockRule::Any, 0},
    {"brt_gate_fixed", sizeof(GateFixedParams), call<GateFixedParams, brt_gate_fixed>, BlockRule::Any, 0},
    {"brt_gate_lstm", sizeof(GateLstmParams), call<GateLstmParams, brt_gate_lstm>, BlockRule::Any, 0},
    {"brt_fill", sizeof(FillParams), call<FillParams, brt_fill>, BlockRule::Any, 0},
    {"brt_copy_weights", sizeof(CopyWeightsParams), call<CopyWeightsParams, brt_copy_weights>, BlockRule::Any, 0},
    {"brt_activation", sizeof(ActivationParams), call<ActivationParams, brt_activation>, BlockRule::Any, 0},
    {"brt_rms_norm", sizeof(RmsNormParams), call<RmsNormParams, brt_rms_norm>, BlockRule::PowerOfTwoUpTo,
     BRT_REDUCE_MAX_THREADS},
    {"brt_l2_normalize", sizeof(L2NormParams), call<L2NormParams, brt_l2_normalize>, BlockRule::PowerOfTwoUpTo,
     BRT_REDUCE_MAX_THREADS},
    {"brt_matmul", sizeof(MatmulParams), call<MatmulParams, brt_matmul>, BlockRule::Exactly, BRT_MM_THREADS},
    {"brt_attention", sizeof(AttentionParams), attention_entry, BlockRule::Exactly, BRT_ATT_THREADS},
    {"brt_linear_attention", sizeof(LinearAttentionParams), linear_attention_entry, BlockRule::AtLeastHeadDim, 0},
    {"brt_emu_test_divergent", sizeof(EmuTestParams), call<EmuTestParams, brt_emu_test_divergent>, BlockRule::Any, 0},
    {"brt_emu_test_neighbour", sizeof(EmuTestParams), call<EmuTestParams, brt_emu_test_neighbour>, BlockRule::Any, 0},
};

const Entry* find(const char* name) {
    for (const Entry& e : kEntries) {
        if (std::strcmp(e.name, name) == 0) {
            return &e;
        }
    }
    return nullptr;
}

void set_error(char* error, size_t error_len, const std::string& message) {
    if (error_len == 0) {
        return;
    }
    size_t n = std::min(message.size(), error_len - 1);
    std::memcpy(error, message.data(), n);
    error[n] = '\0';
}

// The head width of a launch of the attention kernels (0 for the others).
u64 head_dim_of(const Entry& e, const void* params) {
    if (std::strcmp(e.name, "brt_attention") == 0) {
        AttentionParams p;
        std::memcpy(&p, params, sizeof p);
        return p.head_dim;
    }
    if (std::strcmp(e.name, "brt_linear_attention") == 0) {
        LinearAttentionParams p;
        std::memcpy(&p, params, sizeof p);
        return p.head_dim;
    }
    return 0;
}

}  // namespace

// Ends this thread's phase: back to the scheduler until every thread of the
// block has arrived.
void __syncthreads() {
    Scheduler& s = scheduler;
    Fiber& f = s.fibers[s.current];
    f.state = FiberState::AtBarrier;
    swapcontext(&f.context, &s.main_context);
}

extern "C" {

// Size of the parameter struct of kernel `name`, 0 for an unknown name.
size_t brt_emu_param_size(const char* name) {
    const Entry* e = find(name);
    return e ? e->param_size : 0;
}

// Whether the attention kernels are built for head width `dh`.
int brt_emu_head_dim_supported(unsigned long long dh) {
    return emulated_head_dim(dh) ? 1 : 0;
}

// The T5 bucket table (see kernels/common.cuh).
void brt_emu_set_t5_lut(const unsigned char* lut) {
    std::memcpy(brt_t5_lut, lut, sizeof brt_t5_lut);
}

// Runs kernel `name` on `grid` blocks of `block` threads. `order`: 0 forward,
// 1 reversed every other phase, 2 shuffled with `seed`. Returns 0, or 1 with a
// message in `error`.
int brt_emu_launch(const char* name, unsigned grid, unsigned block, const void* params, size_t params_len,
                   unsigned order, unsigned long long seed, char* error, size_t error_len) {
    const Entry* e = find(name);
    if (e == nullptr) {
        set_error(error, error_len, std::string("unknown kernel ") + name);
        return 1;
    }
    if (params_len != e->param_size) {
        set_error(error, error_len,
                  std::string(name) + ": parameters of " + std::to_string(params_len) + " bytes, the kernel takes " +
                      std::to_string(e->param_size));
        return 1;
    }
    // CUDA's own launch rules.
    if (grid == 0 || grid > 0x7fffffffu || block == 0 || block > 1024) {
        set_error(error, error_len,
                  std::string(name) + ": invalid launch configuration (" + std::to_string(grid) + " blocks of " +
                      std::to_string(block) + " threads)");
        return 1;
    }
    u64 dh = head_dim_of(*e, params);
    if (dh != 0 && !emulated_head_dim(dh)) {
        set_error(error, error_len, std::string(name) + ": the emulator is not built for head width " + std::to_string(dh));
        return 1;
    }
    bool ok = true;
    switch (e->rule) {
        case BlockRule::Any:
            break;
        case BlockRule::Exactly:
            ok = block == e->threads;
            break;
        case BlockRule::PowerOfTwoUpTo:
            ok = (block & (block - 1)) == 0 && block <= e->threads;
            break;
        case BlockRule::AtLeastHeadDim:
            ok = block >= dh;
            break;
    }
    if (!ok) {
        set_error(error, error_len, std::string(name) + ": block of " + std::to_string(block) + " threads is not what the kernel is written for");
        return 1;
    }

    std::mt19937_64 rng(seed);
    scheduler.body = e->run;
    scheduler.params = params;
    gridDim = dim3{grid, 1, 1};
    blockDim = dim3{block, 1, 1};
    for (unsigned b = 0; b < grid; ++b) {
        blockIdx = uint3{b, 0, 0};
        std::string message = run_block(block, order, rng);
        if (!message.empty()) {
            set_error(error, error_len, std::string(name) + ": " + message);
            return 1;
        }
    }
    return 0;
}

}  // extern "C"
