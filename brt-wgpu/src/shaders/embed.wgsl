// out[i] = table[tokens[tok_off + i]] (rows of `dim`); ids were checked on the host.
struct P {
    tok_off: u32,
    table_off: u32,
    out_off: u32,
    count: u32,
    dim: u32,
    vocab: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> tokens: array<u32>;
@group(0) @binding(2) var<storage, read> table: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
//#WEIGHTS

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg, 256u);
    if (i >= p.count * p.dim) {
        return;
    }
    let id = tokens[p.tok_off + i / p.dim];
    var v = 0.0;
    if (id < p.vocab) {
        v = load_table(p.table_off + id * p.dim + i % p.dim);
    }
    out[p.out_off + i] = v;
}
