// Contiguous parameters into `count` runs of `len` elements, `stride` apart.
struct P {
    src_off: u32,
    dst_off: u32,
    count: u32,
    len: u32,
    stride: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
//#WEIGHTS

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg, 256u);
    if (i >= p.count * p.len) {
        return;
    }
    let run = i / p.len;
    dst[p.dst_off + run * p.stride + i % p.len] = load_src(p.src_off + i);
}
