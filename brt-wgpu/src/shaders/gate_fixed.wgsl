// Fixed gate (SPEC 4): g = sigmoid(b), s = s*g + z*(1-g).
struct P {
    s_off: u32,
    z_off: u32,
    b_off: u32,
    len: u32,
    dim: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> state: array<f32>;
@group(0) @binding(2) var<storage, read> z: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<u32>;
//#WEIGHTS

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg, 256u);
    if (i >= p.len) {
        return;
    }
    let g = sigmoid(load_bias(p.b_off + i % p.dim));
    let s = state[p.s_off + i];
    state[p.s_off + i] = s * g + z[p.z_off + i] * (1.0 - g);
}
