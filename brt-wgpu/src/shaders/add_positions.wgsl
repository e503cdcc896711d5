// x[(pos*batch + b)*dim + c] += table[pos*dim + c] (state ids, SPEC 4).
struct P {
    x_off: u32,
    table_off: u32,
    len: u32,
    batch: u32,
    dim: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read> table: array<u32>;
//#WEIGHTS

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg, 256u);
    if (i >= p.len) {
        return;
    }
    let row = i / p.dim;
    let pos = row / p.batch;
    x[p.x_off + i] = x[p.x_off + i] + load_table(p.table_off + pos * p.dim + i % p.dim);
}
