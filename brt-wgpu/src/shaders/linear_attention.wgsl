// Linear attention (SPEC 7) in chunked form, one 64-wide workgroup per (head, batch
// row). For a chunk of C tokens, with phi = elu + 1, S and z the carried sums:
//   out_t = (phi(q_t) S + sum_{j<=t} (phi(q_t).phi(k_j)) v_j)
//         / (phi(q_t).z + sum_{j<=t} phi(q_t).phi(k_j))
// then S += sum_j phi(k_j)^T v_j and z += sum_j phi(k_j). The causal part of the
// chunk is a small C x C matrix in shared memory; S stays in the state buffer,
// each column owned by one invocation.
struct P {
    q_off: u32,
    k_off: u32,
    v_off: u32,
    o_off: u32,
    s_off: u32,
    st_off: u32,
    batch: u32,
    tokens: u32,
    heads: u32,
    head_dim: u32,
    abs_scale: u32,
    chunk: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read> scale: array<u32>;
@group(0) @binding(5) var<storage, read_write> state: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;
//#WEIGHTS

const WG: u32 = 64u;
const CMAX: u32 = 16u;

var<workgroup> phi_q: array<f32, 1024>;  // [chunk][head_dim]
var<workgroup> phi_k: array<f32, 1024>;
var<workgroup> causal: array<f32, 256>;  // [CMAX][CMAX], phi(q_t).phi(k_j) for j <= t
var<workgroup> norm: array<f32, 16>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let h = wid.x;
    let b = wid.y;
    let dh = p.head_dim;
    let width = p.heads * dh;
    let per_row = p.heads * dh * (dh + 1u);
    let kv_base = p.st_off + b * per_row + h * dh * dh;
    let z_base = p.st_off + b * per_row + p.heads * dh * dh + h * dh;
    var a = load_scale(p.s_off + h);
    if (p.abs_scale != 0u) {
        a = abs(a);
    }
    for (var t0 = 0u; t0 < p.tokens; t0 = t0 + p.chunk) {
        let cn = min(p.chunk, p.tokens - t0);
        for (var e = t; e < cn * dh; e = e + WG) {
            let at = ((t0 + e / dh) * p.batch + b) * width + h * dh + e % dh;
            phi_q[e] = elu_plus_one(a * q[p.q_off + at]);
            phi_k[e] = elu_plus_one(k[p.k_off + at]);
        }
        workgroupBarrier();
        for (var e = t; e < cn * cn; e = e + WG) {
            let ti = e / cn;
            let tj = e % cn;
            var s = 0.0;
            if (tj <= ti) {
                for (var r = 0u; r < dh; r = r + 1u) {
                    s = s + phi_q[ti * dh + r] * phi_k[tj * dh + r];
                }
            }
            causal[ti * CMAX + tj] = s;
        }
        for (var ti = t; ti < cn; ti = ti + WG) {
            var s = 0.0;
            for (var r = 0u; r < dh; r = r + 1u) {
                s = s + phi_q[ti * dh + r] * state[z_base + r];
            }
            norm[ti] = s;
        }
        workgroupBarrier();
        if (t < cn) {
            var s = norm[t];
            for (var tj = 0u; tj <= t; tj = tj + 1u) {
                s = s + causal[t * CMAX + tj];
            }
            norm[t] = s;
        }
        workgroupBarrier();
        for (var c = t; c < dh; c = c + WG) {
            var vals: array<f32, 16>;
            var num: array<f32, 16>;
            for (var ti = 0u; ti < CMAX; ti = ti + 1u) {
                vals[ti] = 0.0;
                num[ti] = 0.0;
                if (ti < cn) {
                    vals[ti] = v[p.v_off + ((t0 + ti) * p.batch + b) * width + h * dh + c];
                }
            }
            for (var ti = 0u; ti < CMAX; ti = ti + 1u) {
                for (var tj = 0u; tj <= ti; tj = tj + 1u) {
                    if (ti < cn) {
                        num[ti] = num[ti] + causal[ti * CMAX + tj] * vals[tj];
                    }
                }
            }
            for (var r = 0u; r < dh; r = r + 1u) {
                let s = state[kv_base + r * dh + c];
                var update = 0.0;
                for (var ti = 0u; ti < CMAX; ti = ti + 1u) {
                    if (ti < cn) {
                        num[ti] = num[ti] + phi_q[ti * dh + r] * s;
                        update = update + phi_k[ti * dh + r] * vals[ti];
                    }
                }
                state[kv_base + r * dh + c] = s + update;
            }
            for (var ti = 0u; ti < CMAX; ti = ti + 1u) {
                if (ti < cn) {
                    out[p.o_off + ((t0 + ti) * p.batch + b) * width + h * dh + c] = num[ti] / norm[ti];
                }
            }
        }
        for (var r = t; r < dh; r = r + WG) {
            var s = 0.0;
            for (var ti = 0u; ti < cn; ti = ti + 1u) {
                s = s + phi_k[ti * dh + r];
            }
            state[z_base + r] = state[z_base + r] + s;
        }
        // z is read by every invocation at the start of the next chunk.
        storageBarrier();
        workgroupBarrier();
    }
}
