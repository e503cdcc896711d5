// 32 workgroup sums at once: subgroupAdd per value, then the few subgroup partial
// sums through shared memory; invocation i < 32 receives the total of value i.
var<workgroup> red32: array<f32, 2048>; // [subgroup][value]

fn wg_sum32(v: ptr<function, array<f32, 32>>, t: u32) -> f32 {
    for (var i = 0u; i < 32u; i = i + 1u) {
        let s = subgroupAdd((*v)[i]);
        if (sg_lane == 0u) {
            red32[sg_id * 32u + i] = s;
        }
    }
    workgroupBarrier();
    var total = 0.0;
    if (t < 32u) {
        for (var g = 0u; g < sg_count; g = g + 1u) {
            total = total + red32[g * 32u + t];
        }
    }
    workgroupBarrier();
    return total;
}
