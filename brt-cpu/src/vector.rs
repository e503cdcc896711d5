//! Small vector loops shared by the kernels, generic over the lane operations:
//! full vectors first, then a scalar tail.

use crate::simd::Simd;

/// The whole vectors in `len` values, in values: what the vector loops cover
/// before their scalar tail. (One place for every loop's bound: their `SAFETY`
/// arguments rest on it being at most `len`.)
#[inline(always)]
fn vector_part<S: Simd>(len: usize) -> usize {
    len / S::LANES * S::LANES
}

/// `sum(x^2)`.
#[inline(always)]
pub(crate) fn sum_squares<S: Simd>(x: &[f32]) -> f32 {
    let n = vector_part::<S>(x.len());
    // SAFETY: `i + LANES <= n <= x.len()` for every load.
    let mut total = unsafe {
        let mut acc = [S::zero(); 4];
        let p = x.as_ptr();
        let mut i = 0;
        while i + 4 * S::LANES <= n {
            for (u, a) in acc.iter_mut().enumerate() {
                let v = S::load(p.add(i + u * S::LANES));
                *a = S::fma(v, v, *a);
            }
            i += 4 * S::LANES;
        }
        while i < n {
            let v = S::load(p.add(i));
            acc[0] = S::fma(v, v, acc[0]);
            i += S::LANES;
        }
        S::hsum(S::add(S::add(acc[0], acc[1]), S::add(acc[2], acc[3])))
    };
    for &v in &x[n..] {
        total += v * v;
    }
    total
}

/// `out = x * factor * w` element-wise.
#[inline(always)]
pub(crate) fn scale_mul<S: Simd>(x: &[f32], factor: f32, w: &[f32], out: &mut [f32]) {
    let len = x.len().min(w.len()).min(out.len());
    let n = vector_part::<S>(len);
    // SAFETY: `i + LANES <= n <= len` for every access.
    unsafe {
        let f = S::splat(factor);
        for i in (0..n).step_by(S::LANES) {
            let v = S::mul(S::mul(S::load(x.as_ptr().add(i)), f), S::load(w.as_ptr().add(i)));
            S::store(out.as_mut_ptr().add(i), v);
        }
    }
    for i in n..len {
        out[i] = x[i] * factor * w[i];
    }
}

/// The square root of `x` by the level's instruction ([`Simd::sqrt1`]).
#[inline(always)]
pub(crate) fn sqrt<S: Simd>(x: f32) -> f32 {
    // SAFETY: no memory access; the level is the one dispatch entered.
    unsafe { S::sqrt1(x) }
}

/// `x *= factor`.
#[inline(always)]
pub(crate) fn scale<S: Simd>(x: &mut [f32], factor: f32) {
    let n = vector_part::<S>(x.len());
    // SAFETY: `i + LANES <= n <= x.len()` for every access.
    unsafe {
        let f = S::splat(factor);
        let p = x.as_mut_ptr();
        for i in (0..n).step_by(S::LANES) {
            S::store(p.add(i), S::mul(S::load(p.add(i)), f));
        }
    }
    for v in &mut x[n..] {
        *v *= factor;
    }
}

/// `x = a * x + b` element-wise.
#[inline(always)]
pub(crate) fn scale_add<S: Simd>(x: &mut [f32], a: f32, b: &[f32]) {
    let len = x.len().min(b.len());
    let n = vector_part::<S>(len);
    // SAFETY: `i + LANES <= n <= len` for every access.
    unsafe {
        let av = S::splat(a);
        let p = x.as_mut_ptr();
        for i in (0..n).step_by(S::LANES) {
            S::store(p.add(i), S::fma(av, S::load(p.add(i)), S::load(b.as_ptr().add(i))));
        }
    }
    for i in n..len {
        x[i] = a * x[i] + b[i];
    }
}

/// `x = a * x + c`.
#[inline(always)]
pub(crate) fn scale_add_const<S: Simd>(x: &mut [f32], a: f32, c: f32) {
    let n = vector_part::<S>(x.len());
    // SAFETY: `i + LANES <= n <= x.len()` for every access.
    unsafe {
        let (av, cv) = (S::splat(a), S::splat(c));
        let p = x.as_mut_ptr();
        for i in (0..n).step_by(S::LANES) {
            S::store(p.add(i), S::fma(av, S::load(p.add(i)), cv));
        }
    }
    for v in &mut x[n..] {
        *v = a * *v + c;
    }
}

/// `x += y`.
#[inline(always)]
pub(crate) fn add_assign<S: Simd>(x: &mut [f32], y: &[f32]) {
    let len = x.len().min(y.len());
    let n = vector_part::<S>(len);
    // SAFETY: `i + LANES <= n <= len` for every access.
    unsafe {
        let p = x.as_mut_ptr();
        for i in (0..n).step_by(S::LANES) {
            S::store(p.add(i), S::add(S::load(p.add(i)), S::load(y.as_ptr().add(i))));
        }
    }
    for i in n..len {
        x[i] += y[i];
    }
}

/// `dst = src` with streaming stores ([`Simd::stream`]) for the aligned middle,
/// fenced before returning: a copy nothing reads soon.
#[inline(always)]
pub(crate) fn copy_streaming<S: Simd>(dst: &mut [f32], src: &[f32]) {
    let len = dst.len().min(src.len());
    // Plain copies up to the first aligned vector and after the last one.
    let head = dst.as_ptr().align_offset(S::LANES * core::mem::size_of::<f32>()).min(len);
    let n = head + vector_part::<S>(len - head);
    dst[..head].copy_from_slice(&src[..head]);
    // SAFETY: `head + LANES*j` is aligned to a vector (`align_offset`), and
    // `i + LANES <= n <= len` for every access; the fence follows the stores.
    unsafe {
        let p = dst.as_mut_ptr();
        for i in (head..n).step_by(S::LANES) {
            S::stream(p.add(i), S::load(src.as_ptr().add(i)));
        }
        S::stream_fence();
    }
    dst[n..len].copy_from_slice(&src[n..len]);
}

/// `x += a * y`.
#[inline(always)]
pub(crate) fn axpy<S: Simd>(x: &mut [f32], a: f32, y: &[f32]) {
    let len = x.len().min(y.len());
    let n = vector_part::<S>(len);
    // SAFETY: `i + LANES <= n <= len` for every access.
    unsafe {
        let av = S::splat(a);
        let p = x.as_mut_ptr();
        for i in (0..n).step_by(S::LANES) {
            S::store(p.add(i), S::fma(av, S::load(y.as_ptr().add(i)), S::load(p.add(i))));
        }
    }
    for i in n..len {
        x[i] += a * y[i];
    }
}

/// `sum(x * y)`.
#[inline(always)]
pub(crate) fn dot<S: Simd>(x: &[f32], y: &[f32]) -> f32 {
    let len = x.len().min(y.len());
    let n = vector_part::<S>(len);
    // SAFETY: `i + LANES <= n <= len` for every load.
    let mut total = unsafe {
        let mut acc = [S::zero(); 2];
        let mut i = 0;
        while i + 2 * S::LANES <= n {
            for (u, a) in acc.iter_mut().enumerate() {
                let at = i + u * S::LANES;
                *a = S::fma(S::load(x.as_ptr().add(at)), S::load(y.as_ptr().add(at)), *a);
            }
            i += 2 * S::LANES;
        }
        while i < n {
            acc[0] = S::fma(S::load(x.as_ptr().add(i)), S::load(y.as_ptr().add(i)), acc[0]);
            i += S::LANES;
        }
        S::hsum(S::add(acc[0], acc[1]))
    };
    for i in n..len {
        total += x[i] * y[i];
    }
    total
}

/// The largest element, at least `floor`.
#[inline(always)]
pub(crate) fn max_of<S: Simd>(x: &[f32], floor: f32) -> f32 {
    let n = vector_part::<S>(x.len());
    // SAFETY: `i + LANES <= n <= x.len()` for every load.
    let mut m = unsafe {
        let mut acc = S::splat(floor);
        for i in (0..n).step_by(S::LANES) {
            acc = S::max(acc, S::load(x.as_ptr().add(i)));
        }
        S::hmax(acc)
    };
    for &v in &x[n..] {
        m = m.max(v);
    }
    m
}

/// `x = exp(x - m)` in place; returns the sum of the results.
#[inline(always)]
pub(crate) fn exp_shifted_sum<S: Simd>(x: &mut [f32], m: f32) -> f32 {
    let n = vector_part::<S>(x.len());
    // SAFETY: `i + LANES <= n <= x.len()` for every access.
    let mut total = unsafe {
        let mv = S::splat(m);
        let mut acc = S::zero();
        let p = x.as_mut_ptr();
        for i in (0..n).step_by(S::LANES) {
            let e = S::exp(S::sub(S::load(p.add(i)), mv));
            S::store(p.add(i), e);
            acc = S::add(acc, e);
        }
        S::hsum(acc)
    };
    for v in &mut x[n..] {
        // The same vector routine for the tail keeps every element computed alike.
        let e = exp::<S>(*v - m);
        *v = e;
        total += e;
    }
    total
}

/// `exp(x)` of one value by the level's vector routine ([`Simd::exp`], for
/// `x <= 88`): computed like the vectors' values, and inside the level's code
/// (the attention's calls out to `libm::expf` were 2% of `small`'s training).
#[inline(always)]
pub(crate) fn exp<S: Simd>(x: f32) -> f32 {
    let mut lanes = [x; 16];
    // SAFETY: `lanes` holds 16 >= LANES values.
    unsafe {
        S::store(lanes.as_mut_ptr(), S::exp(S::load(lanes.as_ptr())));
    }
    lanes[0]
}
