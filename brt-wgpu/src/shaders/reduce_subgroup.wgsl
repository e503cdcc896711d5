// Workgroup sum with subgroup operations: one subgroupAdd per subgroup, then the
// partial sums of the (few) subgroups through shared memory.
// Every invocation of the 64-wide workgroup must call it (uniform control flow).
var<workgroup> red: array<f32, 64>;
var<private> sg_lane: u32;
var<private> sg_id: u32;
var<private> sg_count: u32;

fn wg_sum(v: f32, t: u32) -> f32 {
    let s = subgroupAdd(v);
    if (sg_lane == 0u) {
        red[sg_id] = s;
    }
    workgroupBarrier();
    var total = 0.0;
    for (var i = 0u; i < sg_count; i = i + 1u) {
        total = total + red[i];
    }
    workgroupBarrier();
    return total;
}
