// RMS norm (SPEC 1), one 64-wide workgroup per row:
// out = x / sqrt(mean(x^2) + 1e-6) * scale.
struct P {
    x_off: u32,
    s_off: u32,
    o_off: u32,
    rows: u32,
    dim: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> scale: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
//#WEIGHTS
//#REDUCE

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) t: u32 /*#SG_PARAMS*/) {
    /*#SG_INIT*/
    let row = wid.x + wid.y * nwg.x;
    // The whole workgroup leaves together, so the reduction stays uniform.
    if (row >= p.rows) {
        return;
    }
    let base = row * p.dim;
    var acc = 0.0;
    for (var c = t; c < p.dim; c = c + 64u) {
        let v = x[p.x_off + base + c];
        acc = acc + v * v;
    }
    let total = wg_sum(acc, t);
    let inv = 1.0 / sqrt(total / f32(p.dim) + 1e-6);
    for (var c = t; c < p.dim; c = c + 64u) {
        out[p.o_off + base + c] = x[p.x_off + base + c] * inv * load_scale(p.s_off + c);
    }
}
