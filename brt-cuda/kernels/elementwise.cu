// Elementwise kernels: embedding gather, state ids, gates, fills, parameter
// copies and the activation epilogue of a cuBLAS product. Each is a
// grid-stride loop over a 64-bit element count, any grid and block size.

// out[i*dim + c] = table[tokens[i]*dim + c]. Ids are checked on the host
// before they are uploaded (brt_core::Stream); an id outside the table still
// never reads out of range here: its row is zero.
struct EmbedParams {
    u64 tokens;
    u64 table;
    u64 out;
    u64 count;
    u64 dim;
    u64 vocab;
    u32 wdtype;
    u32 pad;
};
static_assert(sizeof(EmbedParams) == 56, "EmbedParams layout");

extern "C" __global__ void brt_embed(const EmbedParams p) {
    u64 total = p.count * p.dim;
    for (u64 i = brt_global_thread(); i < total; i += brt_grid_threads()) {
        u64 row = i / p.dim;
        u64 c = i - row * p.dim;
        u64 id = (u64)((const u32*)p.tokens)[row];
        float value = 0.0f;
        if (id < p.vocab) {
            value = brt_load_weight(p.table, p.wdtype, id * p.dim + c);
        }
        ((float*)p.out)[i] = value;
    }
}

// x[(p*batch + b)*dim + c] += table[p*dim + c].
struct PositionsParams {
    u64 x;
    u64 table;
    u64 positions;
    u64 batch;
    u64 dim;
    u32 wdtype;
    u32 pad;
};
static_assert(sizeof(PositionsParams) == 48, "PositionsParams layout");

extern "C" __global__ void brt_add_positions(const PositionsParams p) {
    u64 row_len = p.batch * p.dim;
    u64 total = p.positions * row_len;
    float* x = (float*)p.x;
    for (u64 i = brt_global_thread(); i < total; i += brt_grid_threads()) {
        u64 position = i / row_len;
        u64 c = i % p.dim;
        x[i] += brt_load_weight(p.table, p.wdtype, position * p.dim + c);
    }
}

// Fixed gate: g = sigmoid(b), s = s*g + z*(1-g) (SPEC 4, "Gates").
struct GateFixedParams {
    u64 state;
    u64 z;
    u64 bias;
    u64 len;
    u64 dim;
    u32 wdtype;
    u32 pad;
};
static_assert(sizeof(GateFixedParams) == 48, "GateFixedParams layout");

extern "C" __global__ void brt_gate_fixed(const GateFixedParams p) {
    float* s = (float*)p.state;
    const float* z = (const float*)p.z;
    for (u64 i = brt_global_thread(); i < p.len; i += brt_grid_threads()) {
        float g = brt_sigmoid(brt_load_weight(p.bias, p.wdtype, i % p.dim));
        s[i] = s[i] * g + z[i] * (1.0f - g);
    }
}

// LSTM gate: f = sigmoid(forget + bf + 1), i = sigmoid(input + bi - 1),
// s = s*f + z*i; the +1/-1 are constants of the official code (SPEC 4).
struct GateLstmParams {
    u64 state;
    u64 z;
    u64 forget;
    u64 input;
    u64 forget_bias;
    u64 input_bias;
    u64 len;
    u64 dim;
    u32 wdtype;
    u32 pad;
};
static_assert(sizeof(GateLstmParams) == 72, "GateLstmParams layout");

extern "C" __global__ void brt_gate_lstm(const GateLstmParams p) {
    float* s = (float*)p.state;
    const float* z = (const float*)p.z;
    const float* forget = (const float*)p.forget;
    const float* input = (const float*)p.input;
    for (u64 i = brt_global_thread(); i < p.len; i += brt_grid_threads()) {
        u64 c = i % p.dim;
        float f = brt_sigmoid(forget[i] + brt_load_weight(p.forget_bias, p.wdtype, c) + 1.0f);
        float g = brt_sigmoid(input[i] + brt_load_weight(p.input_bias, p.wdtype, c) - 1.0f);
        s[i] = s[i] * f + z[i] * g;
    }
}

// dst[r*stride + e] = value for r < count, e < len.
struct FillParams {
    u64 dst;
    u64 count;
    u64 len;
    u64 stride;
    float value;
    u32 pad;
};
static_assert(sizeof(FillParams) == 40, "FillParams layout");

extern "C" __global__ void brt_fill(const FillParams p) {
    u64 total = p.count * p.len;
    float* dst = (float*)p.dst;
    for (u64 i = brt_global_thread(); i < total; i += brt_grid_threads()) {
        u64 run = i / p.len;
        dst[run * p.stride + (i - run * p.len)] = p.value;
    }
}

// dst[r*stride + e] = src[r*len + e] (parameters widened to float).
struct CopyWeightsParams {
    u64 src;
    u64 dst;
    u64 count;
    u64 len;
    u64 stride;
    u32 wdtype;
    u32 pad;
};
static_assert(sizeof(CopyWeightsParams) == 48, "CopyWeightsParams layout");

extern "C" __global__ void brt_copy_weights(const CopyWeightsParams p) {
    u64 total = p.count * p.len;
    float* dst = (float*)p.dst;
    for (u64 i = brt_global_thread(); i < total; i += brt_grid_threads()) {
        u64 run = i / p.len;
        dst[run * p.stride + (i - run * p.len)] = brt_load_weight(p.src, p.wdtype, i);
    }
}

// x = act(x): the epilogue of a cuBLAS product.
struct ActivationParams {
    u64 x;
    u64 len;
    u32 activation;
    u32 pad;
};
static_assert(sizeof(ActivationParams) == 24, "ActivationParams layout");

extern "C" __global__ void brt_activation(const ActivationParams p) {
    float* x = (float*)p.x;
    for (u64 i = brt_global_thread(); i < p.len; i += brt_grid_threads()) {
        x[i] = brt_activate(x[i], p.activation);
    }
}
