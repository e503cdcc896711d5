// Dense products out = act(alpha * x @ w + (accumulate ? out : 0)), x (m, k)
// f32, w (k, n) or (n, k) row-major in f32/f16/bf16, f32 accumulation.
//
// Used for 16-bit weights (widened tile by tile in shared memory, so the
// activations keep full precision) and for f32 weights where cuBLAS is not
// available. A classic shared-memory tiling: a block computes a 64 x 64 tile
// of out with 256 threads, each thread 4 x 4 outputs (rows ty + 16*i, columns
// tx + 16*j), walking k in steps of 16.

#define BRT_MM_BM 64
#define BRT_MM_BN 64
#define BRT_MM_BK 16
#define BRT_MM_ORDER_IN_OUT 0u
#define BRT_MM_ORDER_OUT_IN 1u

struct MatmulParams {
    u64 x;
    u64 w;
    u64 out;
    u64 m;
    u64 k;
    u64 n;
    u32 wdtype;
    u32 order;
    u32 accumulate;
    u32 activation;
    float alpha;
    u32 pad;
};
static_assert(sizeof(MatmulParams) == 72, "MatmulParams layout");

// Launched with exactly BRT_MM_THREADS threads and ceil(m/64)*ceil(n/64) blocks.
extern "C" __global__ void __launch_bounds__(BRT_MM_THREADS) brt_matmul(const MatmulParams p) {
    // Transposed x tile (xs[kk][r]) and w tile (ws[kk][c]); +1 column of
    // padding keeps the transposed stores free of bank conflicts.
    __shared__ float xs[BRT_MM_BK][BRT_MM_BM + 1];
    __shared__ float ws[BRT_MM_BK][BRT_MM_BN + 1];

    const u32 t = threadIdx.x;
    const u32 tx = t % 16u;
    const u32 ty = t / 16u;
    const u64 tiles_n = (p.n + BRT_MM_BN - 1) / BRT_MM_BN;
    const u64 row0 = ((u64)blockIdx.x / tiles_n) * BRT_MM_BM;
    const u64 col0 = ((u64)blockIdx.x % tiles_n) * BRT_MM_BN;
    const float* x = (const float*)p.x;

    float acc[4][4];
    BRT_UNROLL
    for (u32 i = 0; i < 4u; ++i) {
        BRT_UNROLL
        for (u32 j = 0; j < 4u; ++j) {
            acc[i][j] = 0.0f;
        }
    }

    for (u64 k0 = 0; k0 < p.k; k0 += BRT_MM_BK) {
        // 64 x 16 values of x and 16 x 64 of w: four of each per thread,
        // zero outside the matrices.
        BRT_UNROLL
        for (u32 l = 0; l < 4u; ++l) {
            u32 e = t + BRT_MM_THREADS * l;
            u32 r = e / BRT_MM_BK;
            u32 kk = e % BRT_MM_BK;
            u64 row = row0 + r;
            u64 kidx = k0 + kk;
            xs[kk][r] = (row < p.m && kidx < p.k) ? x[row * p.k + kidx] : 0.0f;
        }
        BRT_UNROLL
        for (u32 l = 0; l < 4u; ++l) {
            u32 e = t + BRT_MM_THREADS * l;
            u32 kk;
            u32 c;
            if (p.order == BRT_MM_ORDER_IN_OUT) {
                // w[kidx*n + col]: consecutive threads read consecutive columns.
                kk = e / BRT_MM_BN;
                c = e % BRT_MM_BN;
            } else {
                // w[col*k + kidx]: consecutive threads read consecutive k.
                c = e / BRT_MM_BK;
                kk = e % BRT_MM_BK;
            }
            u64 col = col0 + c;
            u64 kidx = k0 + kk;
            float value = 0.0f;
            if (col < p.n && kidx < p.k) {
                u64 at = p.order == BRT_MM_ORDER_IN_OUT ? kidx * p.n + col : col * p.k + kidx;
                value = brt_load_weight(p.w, p.wdtype, at);
            }
            ws[kk][c] = value;
        }
        __syncthreads();
        BRT_UNROLL
        for (u32 kk = 0; kk < BRT_MM_BK; ++kk) {
            float a[4];
            float b[4];
            BRT_UNROLL
            for (u32 i = 0; i < 4u; ++i) {
                a[i] = xs[kk][ty + 16u * i];
                b[i] = ws[kk][tx + 16u * i];
            }
            BRT_UNROLL
            for (u32 i = 0; i < 4u; ++i) {
                BRT_UNROLL
                for (u32 j = 0; j < 4u; ++j) {
                    acc[i][j] += a[i] * b[j];
                }
            }
        }
        __syncthreads();
    }

    float* out = (float*)p.out;
    BRT_UNROLL
    for (u32 i = 0; i < 4u; ++i) {
        u64 row = row0 + ty + 16u * i;
        BRT_UNROLL
        for (u32 j = 0; j < 4u; ++j) {
            u64 col = col0 + tx + 16u * j;
            if (row < p.m && col < p.n) {
                u64 at = row * p.n + col;
                float value = p.alpha * acc[i][j];
                if (p.accumulate != 0u) {
                    value = out[at] + value;
                }
                out[at] = brt_activate(value, p.activation);
            }
        }
    }
}
