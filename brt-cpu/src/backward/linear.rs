//! The backward of linear attention (SPEC section 7), chunk by chunk.
//!
//! A task is one (batch row, head). With `u_i = phi(a q_i)`, `f_j = phi(k_j)`
//! (`phi = elu + 1`) and the sums `S_c`, `z_c` carried in front of a chunk, the
//! forward's outputs in the chunk are `y_i = num_i / den_i` with
//! `num_i = u_i S_c + sum_{j<=i} (u_i.f_j) v_j` and
//! `den_i = u_i.z_c + sum_{j<=i} u_i.f_j`. The task walks the chunks backward,
//! each time running the sums forward from the carried state to the chunk's
//! `S_c`, `z_c` (quadratic in the number of chunks, and exact: recovering them
//! by subtracting each chunk's terms from the final sums cancels catastrophically
//! in f32 when the first keys' terms are tiny against the total), and with the
//! gradients `G_S`, `G_z` with respect to the sums after the chunk (held in
//! `d_state`):
//!
//! - `d_num_i = dy_i / den_i`, `d_den_i = -(dy_i.y_i) / den_i`;
//! - `d_u_i = S_c d_num_i + d_den_i z_c + sum_{j<=i} (d_num_i.v_j + d_den_i) f_j`;
//! - `d_f_j = sum_{i>=j} (d_num_i.v_j + d_den_i) u_i + G_S v_j + G_z`;
//! - `d_v_j = sum_{i>=j} (u_i.f_j) d_num_i + G_S^T f_j`;
//! - `G_S += sum_i u_i^T d_num_i`, `G_z += sum_i d_den_i u_i` (then they are
//!   the gradients with respect to the sums in front of the chunk).
//!
//! The scale's gradient is shared by all batch rows: it goes to `partial`.

use super::take;
use crate::parallel::SendPtr;
use crate::simd::{Simd, WithSimd};
use crate::vector::{axpy, dot};
use crate::weights::WSlice;
use brt_core::desc::LinearAttention;
use brt_core::primitives::elu_plus_one;

/// Scratch (f32 elements) of one task with chunks of `chunk` tokens
/// ([`crate::Tiles::linear_chunk`]) for head widths up to `max_dh`.
pub(crate) const fn scratch_len(chunk: usize, max_dh: usize) -> u64 {
    let (c, dh) = (chunk as u64, max_dh as u64);
    // S and z; u, f, d_num, d_u, d_f; the intra-chunk products; den, d_den.
    dh * dh + dh + 5 * c * dh + 2 * c * c + 2 * c
}

/// One checked call, with the backend's (checked) chunk.
pub(crate) struct LinearGradCall<'a> {
    pub chunk: usize,
    pub q: &'a [f32],
    pub k: &'a [f32],
    pub v: &'a [f32],
    pub scale: WSlice<'a>,
    pub state: &'a [f32],
    pub d_out: &'a [f32],
    pub d_state: SendPtr,
    pub d_q: SendPtr,
    pub d_k: SendPtr,
    pub d_v: SendPtr,
    pub desc: LinearAttention,
}

/// Task `(batch row, head)`; `partial` holds the scale gradients `(H,)`.
pub(crate) struct LinearGradTask<'c, 'a> {
    pub call: &'c LinearGradCall<'a>,
    pub task: usize,
    pub scratch: &'c mut [f32],
    pub partial: &'c mut [f32],
}

impl WithSimd for LinearGradTask<'_, '_> {
    type Output = ();
    #[inline(always)]
    fn with<S: Simd>(self) {
        linear_backward::<S>(self.call, self.task, self.scratch, self.partial)
    }
}

/// `d phi(x) / dx`.
#[inline(always)]
fn phi_slope(x: f32) -> f32 {
    if x > 0.0 {
        1.0
    } else {
        libm::expf(x)
    }
}

#[inline(always)]
fn linear_backward<S: Simd>(c: &LinearGradCall<'_>, task: usize, scratch: &mut [f32], partial: &mut [f32]) {
    let d = c.desc;
    let (heads, dh) = (d.heads(), d.head_dim());
    let (b, h) = (task / heads, task % heads);
    let chunk = c.chunk;
    if chunk == 0 || (scratch.len() as u64) < scratch_len(chunk, dh) || partial.len() < heads {
        return; // checked and sized by the backend; never reached
    }
    let mut rest = scratch;
    let s_sum = take(&mut rest, dh * dh);
    let z_sum = take(&mut rest, dh);
    let u = take(&mut rest, chunk * dh);
    let f = take(&mut rest, chunk * dh);
    let d_num = take(&mut rest, chunk * dh);
    let d_u = take(&mut rest, chunk * dh);
    let d_f = take(&mut rest, chunk * dh);
    let uf = take(&mut rest, chunk * chunk);
    let coef = take(&mut rest, chunk * chunk);
    let den = take(&mut rest, chunk);
    let d_den = take(&mut rest, chunk);

    let raw = c.scale.get(h);
    let a = if d.abs_scale() { raw.abs() } else { raw };
    let a_slope = match (d.abs_scale(), raw) {
        (false, _) => 1.0,
        (true, r) if r > 0.0 => 1.0,
        (true, r) if r < 0.0 => -1.0,
        _ => 0.0,
    };
    let width = heads * dh;
    let ld = d.batch() * width;
    let col0 = b * width + h * dh;
    let per_row = d.state_per_row();
    let (kv0, z0) = (b * per_row + h * dh * dh, b * per_row + heads * dh * dh + h * dh);
    // SAFETY: the backend checked `d_state` against `state_len` and `d_q`, `d_k`,
    // `d_v` against `token_len`. This head's sums (`dh x dh` at `kv0`, `dh` at `z0`)
    // and its columns `col0 .. col0 + dh` of every token row belong to this task
    // alone; token rows are `ld` apart.
    let (g_s, g_z) = unsafe {
        (
            core::slice::from_raw_parts_mut(c.d_state.get().add(kv0), dh * dh),
            core::slice::from_raw_parts_mut(c.d_state.get().add(z0), dh),
        )
    };
    let token = |t: usize| (t * ld + col0, dh);
    // SAFETY: see above; `t < tokens`, so `t*ld + col0 + dh <= token_len`.
    let grad_row =
        |ptr: SendPtr, t: usize| unsafe { core::slice::from_raw_parts_mut(ptr.get().add(t * ld + col0), dh) };

    let mut scale_grad = 0f32;
    let chunks = d.tokens().div_ceil(chunk);
    for index in (0..chunks).rev() {
        let t0 = index * chunk;
        let n = chunk.min(d.tokens() - t0);
        for i in 0..n {
            let (at, _) = token(t0 + i);
            for r in 0..dh {
                u[i * dh + r] = elu_plus_one(a * c.q[at + r]);
                f[i * dh + r] = elu_plus_one(c.k[at + r]);
            }
        }
        // The sums in front of the chunk, from the carried ones in token order.
        s_sum.copy_from_slice(&c.state[kv0..][..dh * dh]);
        z_sum.copy_from_slice(&c.state[z0..][..dh]);
        for t in 0..t0 {
            let (at, _) = token(t);
            let vt = &c.v[at..][..dh];
            for r in 0..dh {
                let fr = elu_plus_one(c.k[at + r]);
                axpy::<S>(&mut s_sum[r * dh..][..dh], fr, vt);
                z_sum[r] += fr;
            }
        }
        // Outputs again, then d_num and d_den.
        for i in 0..n {
            let ui = &u[i * dh..][..dh];
            let num = &mut d_num[i * dh..][..dh];
            num.fill(0.0);
            for (r, &x) in ui.iter().enumerate() {
                axpy::<S>(num, x, &s_sum[r * dh..][..dh]);
            }
            let mut total = dot::<S>(ui, z_sum);
            for j in 0..=i {
                let p = dot::<S>(ui, &f[j * dh..][..dh]);
                uf[i * chunk + j] = p;
                let (at, _) = token(t0 + j);
                axpy::<S>(num, p, &c.v[at..][..dh]);
                total += p;
            }
            den[i] = total;
            let (at, _) = token(t0 + i);
            let dy = &c.d_out[at..][..dh];
            // d_den = -(dy . num) / den^2; d_num = dy / den (replacing num).
            d_den[i] = -dot::<S>(dy, num) / (total * total);
            let inv = 1.0 / total;
            for (o, &g) in num.iter_mut().zip(dy) {
                *o = g * inv;
            }
        }
        // coef[i][j] = d_num_i . v_j + d_den_i for j <= i.
        for i in 0..n {
            for j in 0..=i {
                let (at, _) = token(t0 + j);
                coef[i * chunk + j] = dot::<S>(&d_num[i * dh..][..dh], &c.v[at..][..dh]) + d_den[i];
            }
        }
        // d_u_i = S_c d_num_i + d_den_i z_c + sum_{j<=i} coef_ij f_j.
        for i in 0..n {
            let du = &mut d_u[i * dh..][..dh];
            let dn = &d_num[i * dh..][..dh];
            for (r, slot) in du.iter_mut().enumerate() {
                *slot = dot::<S>(&s_sum[r * dh..][..dh], dn) + d_den[i] * z_sum[r];
            }
            for j in 0..=i {
                axpy::<S>(du, coef[i * chunk + j], &f[j * dh..][..dh]);
            }
        }
        // d_f_j = sum_{i>=j} coef_ij u_i + G_S v_j + G_z; d_v_j likewise.
        for j in 0..n {
            let (at, _) = token(t0 + j);
            let vj = &c.v[at..][..dh];
            let fj = &f[j * dh..][..dh];
            let df = &mut d_f[j * dh..][..dh];
            for (r, slot) in df.iter_mut().enumerate() {
                *slot = dot::<S>(&g_s[r * dh..][..dh], vj) + g_z[r];
            }
            for i in j..n {
                axpy::<S>(df, coef[i * chunk + j], &u[i * dh..][..dh]);
            }
            let dv = grad_row(c.d_v, t0 + j);
            for (r, &x) in fj.iter().enumerate() {
                axpy::<S>(dv, x, &g_s[r * dh..][..dh]);
            }
            for i in j..n {
                axpy::<S>(dv, uf[i * chunk + j], &d_num[i * dh..][..dh]);
            }
        }
        // The gradients with respect to the sums in front of the chunk.
        for i in 0..n {
            let ui = &u[i * dh..][..dh];
            let dn = &d_num[i * dh..][..dh];
            for (r, &x) in ui.iter().enumerate() {
                axpy::<S>(&mut g_s[r * dh..][..dh], x, dn);
            }
            axpy::<S>(g_z, d_den[i], ui);
        }
        // Through phi to q, k and the scale.
        for i in 0..n {
            let (at, _) = token(t0 + i);
            let dq = grad_row(c.d_q, t0 + i);
            let dk = grad_row(c.d_k, t0 + i);
            for r in 0..dh {
                let qr = c.q[at + r];
                let g = phi_slope(a * qr) * d_u[i * dh + r];
                dq[r] += a * g;
                scale_grad += qr * g;
                dk[r] += phi_slope(c.k[at + r]) * d_f[i * dh + r];
            }
        }
    }
    partial[h] += scale_grad * a_slope;
}
