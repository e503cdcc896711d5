// Per-head L2 normalisation in place (SPEC 1), one 64-wide workgroup per head of a
// row: x = x / sqrt(sum(x^2) + 1e-6).
struct P {
    x_off: u32,
    groups: u32,
    head_dim: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
//#REDUCE

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) t: u32 /*#SG_PARAMS*/) {
    /*#SG_INIT*/
    let g = wid.x + wid.y * nwg.x;
    if (g >= p.groups) {
        return;
    }
    let base = p.x_off + g * p.head_dim;
    var acc = 0.0;
    for (var c = t; c < p.head_dim; c = c + 64u) {
        let v = x[base + c];
        acc = acc + v * v;
    }
    let total = wg_sum(acc, t);
    let inv = 1.0 / sqrt(total + 1e-6);
    for (var c = t; c < p.head_dim; c = c + 64u) {
        x[base + c] = x[base + c] * inv;
    }
}
