// Row reductions: RMS norm of rows and l2 normalisation of heads (SPEC 1).
// One block per row (grid-stride over rows, the same count of iterations for
// every thread of a block, so the barriers inside are reached uniformly);
// blockDim.x is a power of two, at most BRT_REDUCE_MAX_THREADS.

// out = x / sqrt(mean(x^2) + 1e-6) * scale, per row of `dim`.
struct RmsNormParams {
    u64 x;
    u64 scale;
    u64 out;
    u64 rows;
    u64 dim;
    u32 wdtype;
    u32 pad;
};
static_assert(sizeof(RmsNormParams) == 48, "RmsNormParams layout");

extern "C" __global__ void brt_rms_norm(const RmsNormParams p) {
    __shared__ float scratch[BRT_REDUCE_MAX_THREADS];
    for (u64 row = blockIdx.x; row < p.rows; row += gridDim.x) {
        const float* x = (const float*)p.x + row * p.dim;
        float* out = (float*)p.out + row * p.dim;
        float sum = 0.0f;
        for (u64 c = threadIdx.x; c < p.dim; c += blockDim.x) {
            float v = x[c];
            sum += v * v;
        }
        float total = brt_block_sum(sum, scratch);
        float inv = 1.0f / sqrtf(total / (float)p.dim + BRT_RMS_EPS);
        // Each thread rewrites only the columns it read, so out may alias x.
        for (u64 c = threadIdx.x; c < p.dim; c += blockDim.x) {
            out[c] = x[c] * inv * brt_load_weight(p.scale, p.wdtype, c);
        }
    }
}

// In place: each run of `head_dim` elements becomes x / sqrt(sum(x^2) + 1e-6).
struct L2NormParams {
    u64 x;
    u64 segments;
    u64 head_dim;
};
static_assert(sizeof(L2NormParams) == 24, "L2NormParams layout");

extern "C" __global__ void brt_l2_normalize(const L2NormParams p) {
    __shared__ float scratch[BRT_REDUCE_MAX_THREADS];
    for (u64 segment = blockIdx.x; segment < p.segments; segment += gridDim.x) {
        float* x = (float*)p.x + segment * p.head_dim;
        float sum = 0.0f;
        for (u64 c = threadIdx.x; c < p.head_dim; c += blockDim.x) {
            float v = x[c];
            sum += v * v;
        }
        float total = brt_block_sum(sum, scratch);
        float inv = 1.0f / sqrtf(total + BRT_L2_EPS);
        for (u64 c = threadIdx.x; c < p.head_dim; c += blockDim.x) {
            x[c] *= inv;
        }
    }
}
