// Fused softmax attention (SPEC 1, 2 and 4): one 64-wide workgroup per (tile of up
// to 8 query positions, head, batch row). Keys are visited in chunks of 64 that
// cover the tile's visible range (for a window mask: the W keys before each query,
// so a block of W queries walks a W x 2W tile); per chunk the workgroup computes
// the logits a_h * (q.k + T5 bias), applies the mask, and folds the chunk into an
// online softmax whose running maximum starts at the official safe-softmax floor
// (-1000) with weight 1: that is exactly the extra exp(-1000 - max) term of the
// denominator. No score matrix is ever written to memory.
struct P {
    q_off: u32,
    k_off: u32,
    v_off: u32,
    o_off: u32,
    s_off: u32,
    b_off: u32,
    has_bias: u32,
    batch: u32,
    queries: u32,
    keys: u32,
    heads: u32,
    head_dim: u32,
    mask: u32,
    offset: u32,
    window: u32,
    abs_scale: u32,
    tile: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read> scale: array<u32>;
@group(0) @binding(5) var<storage, read> bias: array<u32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;
//#WEIGHTS

const WG: u32 = 64u;
const TQ: u32 = 8u;
const CHUNK: u32 = 64u;
const MASKED: f32 = -3.0e38;
const FLOOR: f32 = -1000.0;

var<workgroup> q_tile: array<f32, 1024>;   // [tile][head_dim], tile * head_dim <= 1024
var<workgroup> o_tile: array<f32, 1024>;   // running weighted sums of values
var<workgroup> scores: array<f32, 512>;    // [TQ][CHUNK] logits, then probabilities
var<workgroup> run_max: array<f32, 8>;
var<workgroup> run_sum: array<f32, 8>;
var<workgroup> rescale: array<f32, 8>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let i0 = wid.x * p.tile;
    let h = wid.y;
    let b = wid.z;
    let dh = p.head_dim;
    let width = p.heads * dh;
    let nq = min(p.tile, p.queries - i0);
    var a = load_scale(p.s_off + h);
    if (p.abs_scale != 0u) {
        a = abs(a);
    }
    for (var e = t; e < nq * dh; e = e + WG) {
        let r = e / dh;
        q_tile[e] = q[p.q_off + ((i0 + r) * p.batch + b) * width + h * dh + e % dh];
        o_tile[e] = 0.0;
    }
    if (t < TQ) {
        run_max[t] = FLOOR;
        run_sum[t] = 1.0;
    }
    workgroupBarrier();

    // Keys any query of the tile may see: [lo, hi).
    var lo = 0u;
    var hi = p.keys;
    if (p.mask == 1u) {
        lo = i0 + p.offset - p.window;
        hi = i0 + nq - 1u + p.offset;
    }
    for (var base = lo; base < hi; base = base + CHUNK) {
        let j = base + t;
        var dots: array<f32, 8>;
        for (var r = 0u; r < TQ; r = r + 1u) {
            dots[r] = 0.0;
        }
        if (j < hi) {
            let kb = p.k_off + (j * p.batch + b) * width + h * dh;
            for (var d = 0u; d < dh; d = d + 1u) {
                let kv = k[kb + d];
                for (var r = 0u; r < TQ; r = r + 1u) {
                    if (r < nq) {
                        dots[r] = dots[r] + q_tile[r * dh + d] * kv;
                    }
                }
            }
        }
        for (var r = 0u; r < TQ; r = r + 1u) {
            var s = MASKED;
            if (r < nq && j < hi) {
                let i = i0 + r;
                // Window: i + offset - window <= j < i + offset (SPEC 2).
                let visible = p.mask == 0u || (j < i + p.offset && j + p.window >= i + p.offset);
                if (visible) {
                    var content = dots[r];
                    if (p.has_bias != 0u) {
                        content = content + load_bias(p.b_off + h * 32u + t5_bucket(i + p.offset - j));
                    }
                    s = a * content;
                }
            }
            scores[r * CHUNK + t] = s;
        }
        workgroupBarrier();
        if (t < nq) {
            var m = run_max[t];
            for (var jj = 0u; jj < CHUNK; jj = jj + 1u) {
                m = max(m, scores[t * CHUNK + jj]);
            }
            let alpha = exp(run_max[t] - m);
            var sum = 0.0;
            for (var jj = 0u; jj < CHUNK; jj = jj + 1u) {
                let s = scores[t * CHUNK + jj];
                var pr = 0.0;
                if (s > MASKED) {
                    pr = exp(s - m);
                }
                scores[t * CHUNK + jj] = pr;
                sum = sum + pr;
            }
            run_sum[t] = run_sum[t] * alpha + sum;
            run_max[t] = m;
            rescale[t] = alpha;
        }
        workgroupBarrier();
        let count = min(CHUNK, hi - base);
        for (var e = t; e < nq * dh; e = e + WG) {
            let r = e / dh;
            let c = e % dh;
            var o = o_tile[e] * rescale[r];
            for (var jj = 0u; jj < count; jj = jj + 1u) {
                o = o + scores[r * CHUNK + jj] * v[p.v_off + ((base + jj) * p.batch + b) * width + h * dh + c];
            }
            o_tile[e] = o;
        }
        workgroupBarrier();
    }
    for (var e = t; e < nq * dh; e = e + WG) {
        let r = e / dh;
        out[p.o_off + ((i0 + r) * p.batch + b) * width + h * dh + e % dh] = o_tile[e] / run_sum[r];
    }
}
