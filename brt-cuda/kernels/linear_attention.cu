// Linear attention (SPEC 7) in the token-by-token recurrent form of
// brt_core::reference, which the chunked form must equal:
//   S += phi(k_t)^T v_t,  z += phi(k_t),
//   out_t = phi(a q_t) S / (phi(a q_t) . z),   phi(x) = elu(x) + 1.
// State per batch row: H x DH x DH sums S[r][c] (row r of phi(k), column c of
// v), then H x DH sums z.
//
// A block is one (batch row, head); thread c owns column c of S (in
// registers) and z[c]. Tokens are walked in order; two barriers per token.

struct LinearAttentionParams {
    u64 q;
    u64 k;
    u64 v;
    u64 scale;
    u64 state;
    u64 out;
    u64 batch;
    u64 tokens;
    u64 heads;
    u64 head_dim;
    u32 wdtype;
    u32 abs_scale;
};
static_assert(sizeof(LinearAttentionParams) == 88, "LinearAttentionParams layout");

// Launched with blockDim.x a multiple of 32, at least DH, and batch * heads
// blocks; p.head_dim == DH.
template <int DH>
__device__ __forceinline__ void brt_linear_attention_body(const LinearAttentionParams& p) {
    __shared__ float phi_k[DH];
    __shared__ float values[DH];
    __shared__ float phi_q[DH];
    __shared__ float sums[DH];

    const u32 c = threadIdx.x;
    const bool owner = c < (u32)DH;
    const u64 h = (u64)blockIdx.x % p.heads;
    const u64 b = (u64)blockIdx.x / p.heads;
    const u64 width = p.heads * (u64)DH;
    const u64 per_row = p.heads * (u64)DH * (u64)(DH + 1);
    float* kv = (float*)p.state + b * per_row + h * (u64)DH * DH;
    float* z = (float*)p.state + b * per_row + p.heads * (u64)DH * DH + h * DH;
    const float* qp = (const float*)p.q;
    const float* kp = (const float*)p.k;
    const float* vp = (const float*)p.v;
    float* out = (float*)p.out;

    float a = brt_load_weight(p.scale, p.wdtype, h);
    if (p.abs_scale != 0u) {
        a = fabsf(a);
    }
    float column[DH];
    BRT_UNROLL
    for (int r = 0; r < DH; ++r) {
        column[r] = owner ? kv[(u64)r * DH + c] : 0.0f;
    }
    float own_sum = owner ? z[c] : 0.0f;

    for (u64 t = 0; t < p.tokens; ++t) {
        const u64 base = (t * p.batch + b) * width + h * DH;
        if (owner) {
            float pk = brt_elu_plus_one(kp[base + c]);
            phi_k[c] = pk;
            values[c] = vp[base + c];
            phi_q[c] = brt_elu_plus_one(a * qp[base + c]);
            own_sum += pk;
            sums[c] = own_sum;
        }
        __syncthreads();
        if (owner) {
            float v = values[c];
            float numerator = 0.0f;
            float normaliser = 0.0f;
            BRT_UNROLL
            for (int r = 0; r < DH; ++r) {
                column[r] += phi_k[r] * v;
                numerator += phi_q[r] * column[r];
                normaliser += phi_q[r] * sums[r];
            }
            out[base + c] = numerator / normaliser;
        }
        // Every thread is done with this token's phi_k, values, phi_q, sums.
        __syncthreads();
    }

    if (owner) {
        BRT_UNROLL
        for (int r = 0; r < DH; ++r) {
            kv[(u64)r * DH + c] = column[r];
        }
        z[c] = own_sum;
    }
}

#ifndef BRT_EMULATOR
// One thread per column, rounded up to whole warps (src/launch.rs); the bound
// lets the compiler use as many registers as that block size allows.
#define BRT_LINEAR_THREADS (((BRT_HEAD_DIM + 31) / 32) * 32)
extern "C" __global__ void __launch_bounds__(BRT_LINEAR_THREADS) brt_linear_attention(const LinearAttentionParams p) {
    brt_linear_attention_body<BRT_HEAD_DIM>(p);
}
#endif
