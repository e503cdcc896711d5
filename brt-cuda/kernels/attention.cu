// Softmax attention (SPEC 1, 2 and 4), flash-attention style: the logits of a
// tile of queries against a tile of keys live in registers and shared memory
// only, with an online softmax; nothing of size queries x keys is ever
// written to global memory.
//
// Semantics of brt_core::reference: per head h,
//   logit(i, j) = a_h * (q_i . k_j + bias_h(bucket(i + offset - j)))   (bias before the scale)
//   a_h = scale[h], or |scale[h]| with abs_scale
//   visible keys: all (no mask), or offset+i-window <= j < offset+i (window)
//   out_i = sum_j exp(logit - M) v_j / (sum_j exp(logit - M) + exp(-1000 - M)),
//   M = max(-1000, max_j logit): the official "safe" softmax.
// The online form keeps M as a running maximum that starts at -1000, and
// rescales the running sums when it grows; at the end it is the same M.
//
// Layout: q, out rows (i*B + b), k, v rows (j*B + b), each row H heads of DH
// contiguous floats.
//
// A block is one (batch row, head, tile of 32 queries); 4 threads share a
// query, each owning the dimensions d = g + 4*t of it. Per tile of KT keys:
// load K and V (coalesced), each thread writes its partial dot products to
// shared memory, then the 4 threads of a query sum the 4 partials in the same
// order (so they agree bit for bit on the logits, the maximum and the
// denominator) and update their own dimensions of the output.

#define BRT_ATT_GROUP 4
#define BRT_ATT_QUERIES (BRT_ATT_THREADS / BRT_ATT_GROUP)
#define BRT_T5_BUCKETS 32

struct AttentionParams {
    u64 q;
    u64 k;
    u64 v;
    u64 scale;
    u64 bias;
    u64 out;
    u64 batch;
    u64 queries;
    u64 keys;
    u64 heads;
    u64 head_dim;
    u64 offset;
    u64 window;
    u32 wdtype;
    u32 has_bias;
    u32 windowed;
    u32 abs_scale;
};
static_assert(sizeof(AttentionParams) == 120, "AttentionParams layout");

// Keys per tile: as many as keep K and V tiles at 16 KiB in all, 1 to 32.
template <int DH>
struct BrtAttentionTile {
    static constexpr int raw = 2048 / DH;
    static constexpr int keys = raw < 1 ? 1 : (raw > 32 ? 32 : raw);
};

// Launched with exactly BRT_ATT_THREADS threads and
// batch * heads * ceil(queries / 32) blocks; p.head_dim == DH.
template <int DH>
__device__ __forceinline__ void brt_attention_body(const AttentionParams& p) {
    constexpr int DPT = (DH + BRT_ATT_GROUP - 1) / BRT_ATT_GROUP;
    constexpr int KT = BrtAttentionTile<DH>::keys;
    // Row stride of the partials: (KT + 1) * 4 floats keeps the 32 threads of a
    // warp on distinct banks when they store the partials of one key.
    constexpr int PSTRIDE = (KT + 1) * BRT_ATT_GROUP;
    __shared__ float ks[KT][DH];
    __shared__ float vs[KT][DH];
    __shared__ float partial[BRT_ATT_QUERIES * PSTRIDE];
    __shared__ float bias[BRT_T5_BUCKETS];

    const u32 t = threadIdx.x;
    const u32 qi = t / BRT_ATT_GROUP;
    const u32 g = t % BRT_ATT_GROUP;
    const u64 query_tiles = (p.queries + BRT_ATT_QUERIES - 1) / BRT_ATT_QUERIES;
    const u64 tile = (u64)blockIdx.x % query_tiles;
    const u64 row_head = (u64)blockIdx.x / query_tiles;
    const u64 h = row_head % p.heads;
    const u64 b = row_head / p.heads;
    const u64 width = p.heads * (u64)DH;
    const u64 i0 = tile * BRT_ATT_QUERIES;
    const u64 i = i0 + qi;
    const bool active = i < p.queries;

    const float* qp = (const float*)p.q;
    const float* kp = (const float*)p.k;
    const float* vp = (const float*)p.v;

    float a = brt_load_weight(p.scale, p.wdtype, h);
    if (p.abs_scale != 0u) {
        a = fabsf(a);
    }
    if (t < (u32)BRT_T5_BUCKETS) {
        bias[t] = p.has_bias != 0u ? brt_load_weight(p.bias, p.wdtype, h * BRT_T5_BUCKETS + t) : 0.0f;
    }

    float q[DPT];
    float acc[DPT];
    BRT_UNROLL
    for (int tt = 0; tt < DPT; ++tt) {
        u32 d = g + BRT_ATT_GROUP * (u32)tt;
        q[tt] = (active && d < (u32)DH) ? qp[(i * p.batch + b) * width + h * DH + d] : 0.0f;
        acc[tt] = 0.0f;
    }

    // The keys of the whole block, and those of this thread's query.
    const u64 last = (i0 + BRT_ATT_QUERIES <= p.queries ? i0 + BRT_ATT_QUERIES : p.queries) - 1;
    u64 block_begin = 0;
    u64 block_end = p.keys;
    u64 visible_begin = 0;
    u64 visible_end = p.keys;
    if (p.windowed != 0u) {
        // offset >= window and offset + queries <= keys (brt_core::desc::Attention).
        block_begin = i0 + p.offset - p.window;
        block_end = last + p.offset;
        visible_begin = i + p.offset - p.window;
        visible_end = i + p.offset;
    }

    float running_max = BRT_SAFE_SOFTMAX_FLOOR;
    float running_sum = 0.0f;
    for (u64 k0 = block_begin; k0 < block_end; k0 += KT) {
        // The previous tile is consumed by every thread (and `bias` is stored).
        __syncthreads();
        for (u32 e = t; e < (u32)(KT * DH); e += BRT_ATT_THREADS) {
            u32 jj = e / (u32)DH;
            u32 d = e % (u32)DH;
            u64 j = k0 + jj;
            float key = 0.0f;
            float value = 0.0f;
            if (j < block_end) {
                u64 at = (j * p.batch + b) * width + h * DH + d;
                key = kp[at];
                value = vp[at];
            }
            ks[jj][d] = key;
            vs[jj][d] = value;
        }
        __syncthreads();
        BRT_UNROLL
        for (int jj = 0; jj < KT; ++jj) {
            float s = 0.0f;
            BRT_UNROLL
            for (int tt = 0; tt < DPT; ++tt) {
                u32 d = g + BRT_ATT_GROUP * (u32)tt;
                if (d < (u32)DH) {
                    s += q[tt] * ks[jj][d];
                }
            }
            partial[qi * PSTRIDE + jj * BRT_ATT_GROUP + g] = s;
        }
        __syncthreads();

        // Logits of this tile (computed twice, identically: for the maximum,
        // then for the weights).
        float tile_max = -3.0e38f;
        for (int jj = 0; jj < KT; ++jj) {
            u64 j = k0 + jj;
            if (j < block_end && j >= visible_begin && j < visible_end) {
                const float* ps = &partial[qi * PSTRIDE + jj * BRT_ATT_GROUP];
                float content = ((ps[0] + ps[1]) + ps[2]) + ps[3];
                if (p.has_bias != 0u) {
                    content += bias[brt_t5_bucket(i + p.offset - j)];
                }
                tile_max = fmaxf(tile_max, a * content);
            }
        }
        float new_max = fmaxf(running_max, tile_max);
        float correction = expf(running_max - new_max);
        running_sum *= correction;
        BRT_UNROLL
        for (int tt = 0; tt < DPT; ++tt) {
            acc[tt] *= correction;
        }
        for (int jj = 0; jj < KT; ++jj) {
            u64 j = k0 + jj;
            if (j < block_end && j >= visible_begin && j < visible_end) {
                const float* ps = &partial[qi * PSTRIDE + jj * BRT_ATT_GROUP];
                float content = ((ps[0] + ps[1]) + ps[2]) + ps[3];
                if (p.has_bias != 0u) {
                    content += bias[brt_t5_bucket(i + p.offset - j)];
                }
                float weight = expf(a * content - new_max);
                running_sum += weight;
                BRT_UNROLL
                for (int tt = 0; tt < DPT; ++tt) {
                    u32 d = g + BRT_ATT_GROUP * (u32)tt;
                    if (d < (u32)DH) {
                        acc[tt] += weight * vs[jj][d];
                    }
                }
            }
        }
        running_max = new_max;
    }

    if (active) {
        float denominator = running_sum + expf(BRT_SAFE_SOFTMAX_FLOOR - running_max);
        float* out = (float*)p.out + (i * p.batch + b) * width + h * DH;
        BRT_UNROLL
        for (int tt = 0; tt < DPT; ++tt) {
            u32 d = g + BRT_ATT_GROUP * (u32)tt;
            if (d < (u32)DH) {
                out[d] = acc[tt] / denominator;
            }
        }
    }
}

#ifndef BRT_EMULATOR
extern "C" __global__ void __launch_bounds__(BRT_ATT_THREADS) brt_attention(const AttentionParams p) {
    brt_attention_body<BRT_HEAD_DIM>(p);
}
#endif
