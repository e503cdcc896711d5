// LSTM gate (SPEC 4): f = sigmoid(forget + bf + 1), i = sigmoid(input + bi - 1),
// s = s*f + z*i.
struct P {
    s_off: u32,
    z_off: u32,
    f_off: u32,
    i_off: u32,
    bf_off: u32,
    bi_off: u32,
    len: u32,
    dim: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> state: array<f32>;
@group(0) @binding(2) var<storage, read> z: array<f32>;
@group(0) @binding(3) var<storage, read> forget: array<f32>;
@group(0) @binding(4) var<storage, read> input: array<f32>;
@group(0) @binding(5) var<storage, read> fbias: array<u32>;
@group(0) @binding(6) var<storage, read> ibias: array<u32>;
//#WEIGHTS

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg, 256u);
    if (i >= p.len) {
        return;
    }
    let c = i % p.dim;
    let f = sigmoid(forget[p.f_off + i] + load_fbias(p.bf_off + c) + 1.0);
    let g = sigmoid(input[p.i_off + i] + load_ibias(p.bi_off + c) - 1.0);
    let s = state[p.s_off + i];
    state[p.s_off + i] = s * f + z[p.z_off + i] * g;
}
