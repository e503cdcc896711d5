// Workgroup sum through shared memory (adapters without subgroup operations).
// Every invocation of the 64-wide workgroup must call it (uniform control flow).
var<workgroup> red: array<f32, 64>;

fn wg_sum(v: f32, t: u32) -> f32 {
    red[t] = v;
    workgroupBarrier();
    for (var s = 32u; s > 0u; s = s >> 1u) {
        if (t < s) {
            red[t] = red[t] + red[t + s];
        }
        workgroupBarrier();
    }
    let total = red[0];
    workgroupBarrier();
    return total;
}
