// The same product as matmul.wgsl for a handful of rows (generation: one row per
// document), where 64-row tiles would idle: one 64-wide workgroup per 8 output
// columns, the inner dimension split across the workgroup and summed at the end
// (with subgroup operations where the adapter has them).
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
//#REDUCE
//#REDUCE32

const WG: u32 = 64u;
const COLS: u32 = 8u;
const ROWS: u32 = 4u;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) t: u32 /*#SG_PARAMS*/) {
    /*#SG_INIT*/
    let col0 = (wid.x + wid.y * nwg.x) * COLS;
    // The whole workgroup leaves together, so the reductions stay uniform.
    if (col0 >= p.n) {
        return;
    }
    var acc: array<f32, 32>; // [ROWS][COLS]
    for (var i = 0u; i < 32u; i = i + 1u) {
        acc[i] = 0.0;
    }
    for (var kk = t; kk < p.k; kk = kk + WG) {
        var xv: array<f32, 4>;
        for (var r = 0u; r < ROWS; r = r + 1u) {
            xv[r] = 0.0;
            if (r < p.m) {
                xv[r] = x[p.x_off + r * p.k + kk];
            }
        }
        for (var c = 0u; c < COLS; c = c + 1u) {
            if (col0 + c < p.n) {
                var wi = kk * p.n + col0 + c;
                if (p.order == 1u) {
                    wi = (col0 + c) * p.k + kk;
                }
                let wv = load_w(p.w_off + wi);
                for (var r = 0u; r < ROWS; r = r + 1u) {
                    acc[r * COLS + c] = acc[r * COLS + c] + xv[r] * wv;
                }
            }
        }
    }
    let total = wg_sum32(&acc, t);
    let r = t / COLS;
    let c = t % COLS;
    if (t < 32u && r < p.m && col0 + c < p.n) {
        let at = p.o_off + r * p.n + col0 + c;
        var y = p.alpha * total;
        if (p.accumulate != 0u) {
            y = out[at] + y;
        }
        out[at] = activate(y, p.activation);
    }
}
