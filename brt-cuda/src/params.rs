//! The parameter struct of each kernel, mirrored field for field by the structs
//! of `kernels/*.cu`.
//!
//! Every struct is `#[repr(C)]` with its 8-byte fields first and its 4-byte
//! fields after, padded by hand to a multiple of 8 bytes; `Pod` is derived, and
//! that derive refuses any implicit padding, so the layout is exactly the
//! field list. The CUDA C side has `static_assert(sizeof(...) == N)` with the
//! sizes asserted here, and the emulator reports its own `sizeof` of each struct
//! so that a test compares both sides.

use bytemuck::{Pod, Zeroable};
use core::mem::size_of;

/// Storage type codes of `kernels/common.cuh` (`BRT_WDT_*`).
pub(crate) const WDTYPE_F32: u32 = 0;
pub(crate) const WDTYPE_F16: u32 = 1;
pub(crate) const WDTYPE_BF16: u32 = 2;

/// Activation codes of `kernels/common.cuh` (`BRT_ACT_*`).
pub(crate) const ACT_IDENTITY: u32 = 0;
pub(crate) const ACT_RELU: u32 = 1;
pub(crate) const ACT_TANH: u32 = 2;

/// Weight orders of `kernels/matmul.cu` (`BRT_MM_ORDER_*`).
pub(crate) const ORDER_IN_OUT: u32 = 0;
pub(crate) const ORDER_OUT_IN: u32 = 1;

#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub(crate) struct EmbedParams {
    pub tokens: u64,
    pub table: u64,
    pub out: u64,
    pub count: u64,
    pub dim: u64,
    pub vocab: u64,
    pub wdtype: u32,
    pub pad: u32,
}

#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub(crate) struct PositionsParams {
    pub x: u64,
    pub table: u64,
    pub positions: u64,
    pub batch: u64,
    pub dim: u64,
    pub wdtype: u32,
    pub pad: u32,
}

#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub(crate) struct GateFixedParams {
    pub state: u64,
    pub z: u64,
    pub bias: u64,
    pub len: u64,
    pub dim: u64,
    pub wdtype: u32,
    pub pad: u32,
}

#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub(crate) struct GateLstmParams {
    pub state: u64,
    pub z: u64,
    pub forget: u64,
    pub input: u64,
    pub forget_bias: u64,
    pub input_bias: u64,
    pub len: u64,
    pub dim: u64,
    pub wdtype: u32,
    pub pad: u32,
}

#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub(crate) struct FillParams {
    pub dst: u64,
    pub count: u64,
    pub len: u64,
    pub stride: u64,
    pub value: f32,
    pub pad: u32,
}

#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub(crate) struct CopyWeightsParams {
    pub src: u64,
    pub dst: u64,
    pub count: u64,
    pub len: u64,
    pub stride: u64,
    pub wdtype: u32,
    pub pad: u32,
}

#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub(crate) struct ActivationParams {
    pub x: u64,
    pub len: u64,
    pub activation: u32,
    pub pad: u32,
}

#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub(crate) struct RmsNormParams {
    pub x: u64,
    pub scale: u64,
    pub out: u64,
    pub rows: u64,
    pub dim: u64,
    pub wdtype: u32,
    pub pad: u32,
}

#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub(crate) struct L2NormParams {
    pub x: u64,
    pub segments: u64,
    pub head_dim: u64,
}

#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub(crate) struct MatmulParams {
    pub x: u64,
    pub w: u64,
    pub out: u64,
    pub m: u64,
    pub k: u64,
    pub n: u64,
    pub wdtype: u32,
    pub order: u32,
    pub accumulate: u32,
    pub activation: u32,
    pub alpha: f32,
    pub pad: u32,
}

#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub(crate) struct AttentionParams {
    pub q: u64,
    pub k: u64,
    pub v: u64,
    pub scale: u64,
    pub bias: u64,
    pub out: u64,
    pub batch: u64,
    pub queries: u64,
    pub keys: u64,
    pub heads: u64,
    pub head_dim: u64,
    pub offset: u64,
    pub window: u64,
    pub wdtype: u32,
    pub has_bias: u32,
    pub windowed: u32,
    pub abs_scale: u32,
}

#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C)]
pub(crate) struct LinearAttentionParams {
    pub q: u64,
    pub k: u64,
    pub v: u64,
    pub scale: u64,
    pub state: u64,
    pub out: u64,
    pub batch: u64,
    pub tokens: u64,
    pub heads: u64,
    pub head_dim: u64,
    pub wdtype: u32,
    pub abs_scale: u32,
}

/// The largest parameter struct; launches copy parameters into a block of this
/// many bytes.
pub(crate) const MAX_PARAM_BYTES: usize = 128;

/// `(kernel name, size of its parameter struct)`, the sizes the CUDA C
/// `static_assert`s state (compared with the emulator's C++ in its tests).
#[cfg(all(test, feature = "emulator"))]
pub(crate) const PARAM_SIZES: [(&str, usize); 12] = [
    ("brt_embed", size_of::<EmbedParams>()),
    ("brt_add_positions", size_of::<PositionsParams>()),
    ("brt_gate_fixed", size_of::<GateFixedParams>()),
    ("brt_gate_lstm", size_of::<GateLstmParams>()),
    ("brt_fill", size_of::<FillParams>()),
    ("brt_copy_weights", size_of::<CopyWeightsParams>()),
    ("brt_activation", size_of::<ActivationParams>()),
    ("brt_rms_norm", size_of::<RmsNormParams>()),
    ("brt_l2_normalize", size_of::<L2NormParams>()),
    ("brt_matmul", size_of::<MatmulParams>()),
    ("brt_attention", size_of::<AttentionParams>()),
    ("brt_linear_attention", size_of::<LinearAttentionParams>()),
];

// The sizes written in the CUDA C static_asserts.
const _: () = {
    assert!(size_of::<EmbedParams>() == 56);
    assert!(size_of::<PositionsParams>() == 48);
    assert!(size_of::<GateFixedParams>() == 48);
    assert!(size_of::<GateLstmParams>() == 72);
    assert!(size_of::<FillParams>() == 40);
    assert!(size_of::<CopyWeightsParams>() == 48);
    assert!(size_of::<ActivationParams>() == 24);
    assert!(size_of::<RmsNormParams>() == 48);
    assert!(size_of::<L2NormParams>() == 24);
    assert!(size_of::<MatmulParams>() == 72);
    assert!(size_of::<AttentionParams>() == 120);
    assert!(size_of::<LinearAttentionParams>() == 88);
    assert!(size_of::<AttentionParams>() <= MAX_PARAM_BYTES);
};
