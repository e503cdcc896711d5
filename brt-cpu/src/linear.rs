//! Linear attention (SPEC section 7) in chunked form.
//!
//! Per (batch row, head) and chunk of [`crate::Tiles::linear_chunk`] tokens, with `phi = elu + 1`:
//! `num_i = phi(q_i) S + sum_{j<=i in chunk} (phi(q_i).phi(k_j)) v_j` and
//! `den_i = phi(q_i).z + sum_{j<=i} phi(q_i).phi(k_j)`, where `S` and `z` are the
//! sums carried in from before the chunk; then `S += phi(K)^T V`, `z += sum phi(K)`.
//! This equals the token-by-token recurrent form of the reference (token `i` sees
//! itself), with one state update per chunk instead of per token.

use crate::parallel::SendPtr;
use crate::simd::{Simd, WithSimd};
use crate::vector::{axpy, dot};
use crate::weights::WSlice;
use brt_core::desc::LinearAttention;
use brt_core::primitives::elu_plus_one;

/// Scratch (f32 elements) of one task with chunks of `chunk` tokens
/// ([`crate::Tiles::linear_chunk`]) for head widths up to `max_dh`: `phi(q)` and
/// `phi(k)` of a chunk and one numerator.
pub(crate) const fn scratch_len(chunk: usize, max_dh: usize) -> u64 {
    let dh = max_dh as u64;
    2 * chunk as u64 * dh + dh
}

/// One checked call, with the backend's (checked) chunk.
pub(crate) struct LinearCall<'a> {
    pub chunk: usize,
    pub q: &'a [f32],
    pub k: &'a [f32],
    pub v: &'a [f32],
    pub scale: WSlice<'a>,
    pub state: SendPtr,
    pub out: SendPtr,
    pub desc: LinearAttention,
}

/// Task `(row, head)` of a call.
pub(crate) struct LinearTask<'c, 'a> {
    pub call: &'c LinearCall<'a>,
    pub task: usize,
    pub scratch: &'c mut [f32],
}

impl WithSimd for LinearTask<'_, '_> {
    type Output = ();
    #[inline(always)]
    fn with<S: Simd>(self) {
        linear::<S>(self.call, self.task, self.scratch)
    }
}

#[inline(always)]
fn linear<S: Simd>(c: &LinearCall<'_>, task: usize, scratch: &mut [f32]) {
    let d = c.desc;
    let (heads, dh) = (d.heads(), d.head_dim());
    let (b, h) = (task / heads, task % heads);
    let chunk = c.chunk;
    if chunk == 0 || (scratch.len() as u64) < scratch_len(chunk, dh) {
        return; // checked and sized by the backend; never reached
    }
    let (phi_q, rest) = scratch.split_at_mut(chunk * dh);
    let (phi_k, rest) = rest.split_at_mut(chunk * dh);
    let num = &mut rest[..dh];
    let raw = c.scale.get(h);
    let a = if d.abs_scale() { raw.abs() } else { raw };
    let width = heads * dh;
    let ld = d.batch() * width;
    let col0 = b * width + h * dh;
    let per_row = d.state_per_row();
    // SAFETY: row b's state is `per_row` values at `b*per_row` (the backend checked
    // `state_len`); this head's sums (`dh x dh` at h*dh*dh and `dh` at
    // heads*dh*dh + h*dh) are touched by this task alone.
    let (kv, z) = unsafe {
        let row = c.state.0.add(b * per_row);
        (
            core::slice::from_raw_parts_mut(row.add(h * dh * dh), dh * dh),
            core::slice::from_raw_parts_mut(row.add(heads * dh * dh + h * dh), dh),
        )
    };
    let mut t0 = 0;
    while t0 < d.tokens() {
        let n = chunk.min(d.tokens() - t0);
        for i in 0..n {
            let at = (t0 + i) * ld + col0;
            for r in 0..dh {
                phi_q[i * dh + r] = elu_plus_one(a * c.q[at + r]);
                phi_k[i * dh + r] = elu_plus_one(c.k[at + r]);
            }
        }
        for i in 0..n {
            let pq = &phi_q[i * dh..][..dh];
            num.fill(0.0);
            for (r, &x) in pq.iter().enumerate() {
                axpy::<S>(num, x, &kv[r * dh..][..dh]);
            }
            let mut den = dot::<S>(pq, z);
            for j in 0..=i {
                let s = dot::<S>(pq, &phi_k[j * dh..][..dh]);
                axpy::<S>(num, s, &c.v[(t0 + j) * ld + col0..][..dh]);
                den += s;
            }
            // SAFETY: token t0+i of row b, head h lies within the output (checked
            // against `token_len`) and only this task writes it.
            let out = unsafe { core::slice::from_raw_parts_mut(c.out.0.add((t0 + i) * ld + col0), dh) };
            let inv = 1.0 / den;
            for (o, &x) in out.iter_mut().zip(num.iter()) {
                *o = x * inv;
            }
        }
        for j in 0..n {
            let pk = &phi_k[j * dh..][..dh];
            let vj = &c.v[(t0 + j) * ld + col0..][..dh];
            for (r, &x) in pk.iter().enumerate() {
                axpy::<S>(&mut kv[r * dh..][..dh], x, vj);
                z[r] += x;
            }
        }
        t0 += n;
    }
}
