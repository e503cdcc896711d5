// Helpers shared by every kernel (SPEC section 1 and 7 primitives).

// Element index of an invocation on a 2D grid of 1D workgroups of `size` threads.
fn flat_index(gid: vec3<u32>, nwg: vec3<u32>, size: u32) -> u32 {
    return gid.x + gid.y * nwg.x * size;
}

fn sigmoid(x: f32) -> f32 {
    return 1.0 / (1.0 + exp(-x));
}

// phi(x) = elu(x) + 1 of linear attention.
fn elu_plus_one(x: f32) -> f32 {
    if (x > 0.0) {
        return x + 1.0;
    }
    return exp(x);
}

// tanh saturates to +-1 in f32 well before 15; clamping keeps drivers whose tanh
// overflows for large inputs from returning NaN.
fn tanh_clamped(x: f32) -> f32 {
    return tanh(clamp(x, -15.0, 15.0));
}

fn activate(x: f32, kind: u32) -> f32 {
    if (kind == 1u) {
        return max(x, 0.0);
    }
    if (kind == 2u) {
        return tanh_clamped(x);
    }
    return x;
}
