// 32 workgroup sums at once through shared memory: invocation i < 32 receives the
// total of value i over the 64 invocations.
var<workgroup> red32: array<f32, 2048>; // [value][invocation]

fn wg_sum32(v: ptr<function, array<f32, 32>>, t: u32) -> f32 {
    for (var i = 0u; i < 32u; i = i + 1u) {
        red32[i * 64u + t] = (*v)[i];
    }
    workgroupBarrier();
    var total = 0.0;
    if (t < 32u) {
        for (var j = 0u; j < 64u; j = j + 1u) {
            total = total + red32[t * 64u + j];
        }
    }
    workgroupBarrier();
    return total;
}
