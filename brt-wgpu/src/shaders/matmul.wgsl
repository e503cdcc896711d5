// out = act(alpha * x @ w + (accumulate ? out : 0)), x (m, k), out (m, n); w stored
// (k, n) row-major ("in-out", order 0) or (n, k) ("out-in", order 1).
//
// 64x64 output tiles per 16x16 workgroup, each invocation computing a 4x4 block;
// k walks in steps of 16 through shared memory. Weights are decoded from their
// storage type (f32, or f16/bf16 packed in u32) as they are loaded.
struct P {
    x_off: u32,
    w_off: u32,
    o_off: u32,
    m: u32,
    k: u32,
    n: u32,
    order: u32,
    alpha: f32,
    accumulate: u32,
    activation: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
//#WEIGHTS

const TILE: u32 = 64u;
const BK: u32 = 16u;
var<workgroup> a_tile: array<f32, 1024>; // [BK][TILE]: a_tile[kk * TILE + row]
var<workgroup> b_tile: array<f32, 1024>; // [BK][TILE]: b_tile[kk * TILE + col]

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let row0 = wid.y * TILE;
    let col0 = wid.x * TILE;
    var acc: array<f32, 16>;
    for (var i = 0u; i < 16u; i = i + 1u) {
        acc[i] = 0.0;
    }
    for (var k0 = 0u; k0 < p.k; k0 = k0 + BK) {
        // 64 rows x 16 inputs, consecutive invocations along k (coalesced).
        for (var e = 0u; e < 4u; e = e + 1u) {
            let idx = li + e * 256u;
            let r = idx / BK;
            let kk = idx % BK;
            var v = 0.0;
            if (row0 + r < p.m && k0 + kk < p.k) {
                v = x[p.x_off + (row0 + r) * p.k + k0 + kk];
            }
            a_tile[kk * TILE + r] = v;
        }
        // 16 inputs x 64 columns, consecutive invocations along the stored rows.
        for (var e = 0u; e < 4u; e = e + 1u) {
            let idx = li + e * 256u;
            var kk = idx / TILE;
            var c = idx % TILE;
            if (p.order == 1u) {
                kk = idx % BK;
                c = idx / BK;
            }
            var v = 0.0;
            if (k0 + kk < p.k && col0 + c < p.n) {
                var wi = (k0 + kk) * p.n + col0 + c;
                if (p.order == 1u) {
                    wi = (col0 + c) * p.k + k0 + kk;
                }
                v = load_w(p.w_off + wi);
            }
            b_tile[kk * TILE + c] = v;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk = kk + 1u) {
            var av: array<f32, 4>;
            var bv: array<f32, 4>;
            for (var i = 0u; i < 4u; i = i + 1u) {
                av[i] = a_tile[kk * TILE + lid.y * 4u + i];
                bv[i] = b_tile[kk * TILE + lid.x * 4u + i];
            }
            for (var i = 0u; i < 4u; i = i + 1u) {
                for (var j = 0u; j < 4u; j = j + 1u) {
                    acc[i * 4u + j] = acc[i * 4u + j] + av[i] * bv[j];
                }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i = i + 1u) {
        let r = row0 + lid.y * 4u + i;
        for (var j = 0u; j < 4u; j = j + 1u) {
            let c = col0 + lid.x * 4u + j;
            if (r < p.m && c < p.n) {
                let at = p.o_off + r * p.n + c;
                var y = p.alpha * acc[i * 4u + j];
                if (p.accumulate != 0u) {
                    y = out[at] + y;
                }
                out[at] = activate(y, p.activation);
            }
        }
    }
}
