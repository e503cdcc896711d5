//! WGSL sources and their compile-time specialisation.
//!
//! Each kernel is one file in `shaders/`. A variant is made by plain text
//! substitution before compilation:
//!
//! - `//#WEIGHTS` becomes one `load_<name>(i) -> f32` function per parameter
//!   binding, decoding that binding's storage type (f32, or f16/bf16 packed two per
//!   `u32`, so no `shader-f16` support is needed);
//! - `//#REDUCE` (and `//#REDUCE32`, 32 sums at once) becomes the workgroup
//!   sum, with subgroup operations
//!   (`subgroupAdd`) or through shared memory only, and `/*#SG_PARAMS*/`,
//!   `/*#SG_INIT*/` bring in the subgroup built-ins the former needs;
//! - the T5 bucket function is generated from `brt_core::primitives::t5_bucket`,
//!   so the shader and the reference share one definition.

use crate::pipelines::Kernel;
use brt_core::primitives::t5_bucket;
use brt_core::WeightDtype;

const COMMON: &str = include_str!("shaders/common.wgsl");
const REDUCE_SHARED: &str = include_str!("shaders/reduce_shared.wgsl");
const REDUCE_SUBGROUP: &str = include_str!("shaders/reduce_subgroup.wgsl");
const REDUCE32_SHARED: &str = include_str!("shaders/reduce32_shared.wgsl");
const REDUCE32_SUBGROUP: &str = include_str!("shaders/reduce32_subgroup.wgsl");

/// The kernel's own source file.
fn body(kernel: Kernel) -> &'static str {
    match kernel {
        Kernel::Copy => include_str!("shaders/copy.wgsl"),
        Kernel::Fill => include_str!("shaders/fill.wgsl"),
        Kernel::CopyWeights => include_str!("shaders/copy_weights.wgsl"),
        Kernel::Embed => include_str!("shaders/embed.wgsl"),
        Kernel::AddPositions => include_str!("shaders/add_positions.wgsl"),
        Kernel::GateFixed => include_str!("shaders/gate_fixed.wgsl"),
        Kernel::GateLstm => include_str!("shaders/gate_lstm.wgsl"),
        Kernel::RmsNorm => include_str!("shaders/rms_norm.wgsl"),
        Kernel::L2Normalize => include_str!("shaders/l2_normalize.wgsl"),
        Kernel::Matmul => include_str!("shaders/matmul.wgsl"),
        Kernel::MatVec => include_str!("shaders/matvec.wgsl"),
        Kernel::Attention => include_str!("shaders/attention.wgsl"),
        Kernel::LinearAttention => include_str!("shaders/linear_attention.wgsl"),
    }
}

/// `fn load_<name>(i: u32) -> f32` reading element `i` of binding `<name>` stored
/// as `dtype` (an `array<u32>` in every case).
fn weight_loader(name: &str, dtype: WeightDtype) -> String {
    let expr = match dtype {
        // No Q8_0 buffer exists (`alloc_weights` refuses them).
        WeightDtype::F32 | WeightDtype::Q8_0 => format!("bitcast<f32>({name}[i])"),
        WeightDtype::F16 => format!("unpack2x16float({name}[i >> 1u])[i & 1u]"),
        // bf16 is the high half of an f32: shift the element into place.
        WeightDtype::Bf16 => {
            format!("bitcast<f32>(select({name}[i >> 1u] << 16u, {name}[i >> 1u] & 0xffff0000u, (i & 1u) == 1u))")
        }
    };
    format!("fn load_{name}(i: u32) -> f32 {{\n    return {expr};\n}}\n")
}

/// `(n, bucket)`: from distance `n` on, the bucket is `bucket` (for `n >= 16`),
/// read off the reference definition. The bucket is constant from 113 on (SPEC
/// 2); scanning a little past it catches every change.
fn t5_thresholds() -> Vec<(usize, usize)> {
    let mut out = vec![(16, t5_bucket(16))];
    for n in 17..=256usize {
        let b = t5_bucket(n);
        if out.last().is_some_and(|&(_, last)| last != b) {
            out.push((n, b));
        }
    }
    out
}

/// `fn t5_bucket(n: u32) -> u32`, the bucket of a key `n` positions back.
fn t5_function() -> String {
    let mut out = String::from("fn t5_bucket(n: u32) -> u32 {\n    if (n < 16u) {\n        return n;\n    }\n");
    out.push_str("    var bucket = 0u;\n");
    for (n, b) in t5_thresholds() {
        out.push_str(&format!("    if (n >= {n}u) {{\n        bucket = {b}u;\n    }}\n"));
    }
    out.push_str("    return bucket;\n}\n");
    out
}

/// The complete source of a kernel variant.
pub(crate) fn source(kernel: Kernel, dtypes: [WeightDtype; 2], subgroups: bool) -> String {
    let subgroups = subgroups && kernel.reduces();
    let mut text = String::new();
    if subgroups {
        // Naga enables subgroup operations with the device feature; it rejects
        // the standard `enable subgroups;` directive for now.
        text.push_str("// subgroup variant\n");
    }
    text.push_str(COMMON);
    text.push_str(&t5_function());
    let loaders: String =
        kernel.weight_names().iter().zip(dtypes).map(|(name, dtype)| weight_loader(name, dtype)).collect();
    let reduce = if subgroups { REDUCE_SUBGROUP } else { REDUCE_SHARED };
    let reduce32 = if subgroups { REDUCE32_SUBGROUP } else { REDUCE32_SHARED };
    let (sg_params, sg_init) = if subgroups {
        (
            ", @builtin(subgroup_invocation_id) sg_lane_in: u32, @builtin(subgroup_id) sg_id_in: u32, \
             @builtin(num_subgroups) sg_count_in: u32",
            "sg_lane = sg_lane_in;\n    sg_id = sg_id_in;\n    sg_count = sg_count_in;",
        )
    } else {
        ("", "")
    };
    let body = body(kernel)
        .replace("//#WEIGHTS", &loaders)
        .replace("//#REDUCE32", reduce32)
        .replace("//#REDUCE", if kernel.reduces() { reduce } else { "" })
        .replace("/*#SG_PARAMS*/", sg_params)
        .replace("/*#SG_INIT*/", sg_init);
    text.push_str(&body);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_t5_chain_equals_the_reference_buckets() {
        let chain = t5_thresholds();
        let text = t5_function();
        for (n, b) in &chain {
            assert!(text.contains(&format!("if (n >= {n}u) {{\n        bucket = {b}u;")));
        }
        for n in 0..5000 {
            // What the shader computes: n below 16, else the last threshold reached.
            let shader = if n < 16 { n } else { chain.iter().rev().find(|(t, _)| n >= *t).unwrap().1 };
            assert_eq!(shader, t5_bucket(n), "distance {n}");
        }
    }

    #[test]
    fn variants_differ_only_where_specialised() {
        let plain = source(Kernel::RmsNorm, [WeightDtype::F32; 2], false);
        let sub = source(Kernel::RmsNorm, [WeightDtype::F32; 2], true);
        assert!(
            !plain.contains("subgroupAdd")
                && !plain.contains("@builtin(subgroup")
                && sub.starts_with("// subgroup variant")
        );
        assert!(sub.contains("subgroupAdd") && sub.contains("@builtin(subgroup_id)"));
        let half = source(Kernel::Matmul, [WeightDtype::F16; 2], true);
        assert!(half.contains("unpack2x16float(w[i >> 1u])") && !half.contains("subgroupAdd"));
        for kernel in Kernel::ALL {
            let text = source(kernel, [WeightDtype::Bf16; 2], true);
            assert!(!text.contains("//#") && !text.contains("/*#"), "{kernel:?} has an unreplaced marker");
        }
    }
}
