//! The no_std guard: a `#![no_std]` static library with `panic = "abort"` and no
//! global allocator that runs a whole forward of a small Block-Recurrent
//! Transformer through the reference kernels of `brt-core` on memory the caller
//! provides.
//!
//! The same forward runs through the SIMD CPU backend (`brt-cpu` without its `std`
//! feature), also on caller memory.
//!
//! It exists to fail the build: if `brt-core`, `brt-cpu` or any of their
//! dependencies needed `std`, linking would bring std's panic handler and clash
//! with the one below; if any needed `alloc`, the library would need a global
//! allocator and has none.
#![no_std]

use brt_core::init::initialize;
use brt_core::{Arena, Config, GateKind, LayerSet, Model, Plan, Reference, StateLayout, Stream, WeightData, WeightDtype};

/// The model run by the guard: two layers, the second recurrent with LSTM gates in
/// the dual layout (the largest state update), bytes vocabulary.
pub const CONFIG: Config = Config {
    vocab: 260,
    d_model: 16,
    heads: 2,
    head_dim: 6,
    mlp_hidden: 24,
    layers: 2,
    window: 4,
    states: 3,
    recurrent: LayerSet::EMPTY.with(1),
    linear: LayerSet::EMPTY,
    gate: GateKind::Lstm,
    layout: StateLayout::Dual,
    feedback: false,
    abs_attention_scale: false,
};

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    loop {}
}

/// The CPU backend's settings: one thread (no std), scratch sized from the model.
fn cpu_options() -> brt_cpu::Options {
    brt_cpu::Options::for_config(&CONFIG)
}

/// f32 elements the caller must provide for `tokens` tokens per call: the initial
/// weights, the backend's copy of them, stream state and scratch as the plan says,
/// and the CPU backend's own scratch.
#[no_mangle]
pub extern "C" fn brt_guard_f32_len(tokens: usize) -> usize {
    match (Plan::new(&CONFIG, 1, tokens), cpu_options().scratch_len()) {
        (Ok(plan), Ok(cpu)) => 2 * plan.weights_len() + plan.activations_len() + cpu,
        _ => 0,
    }
}

/// Runs `n` tokens through a freshly initialised model (seed 1) on the reference
/// kernels and writes their logits (`n x 260`) to `logits`. Returns 0 on success,
/// 1 on a bad argument or a too small memory.
///
/// # Safety
/// `memory` must point to `memory_len` writable f32, `id_memory` to `id_memory_len`
/// writable u32 (at least `n`), `tokens` to `n` readable u32 and `logits` to
/// `n * 260` writable f32, none of them overlapping, all valid for the call.
#[no_mangle]
pub unsafe extern "C" fn brt_guard_forward(
    memory: *mut f32,
    memory_len: usize,
    id_memory: *mut u32,
    id_memory_len: usize,
    tokens: *const u32,
    n: usize,
    logits: *mut f32,
) -> i32 {
    // SAFETY: the caller upholds this function's contract, which is `call`'s.
    unsafe { call(Backend::Reference, memory, memory_len, id_memory, id_memory_len, tokens, n, logits) }
}

/// As [`brt_guard_forward`], through the SIMD CPU backend.
///
/// # Safety
/// As [`brt_guard_forward`].
#[no_mangle]
pub unsafe extern "C" fn brt_guard_forward_cpu(
    memory: *mut f32,
    memory_len: usize,
    id_memory: *mut u32,
    id_memory_len: usize,
    tokens: *const u32,
    n: usize,
    logits: *mut f32,
) -> i32 {
    // SAFETY: the caller upholds this function's contract, which is `call`'s.
    unsafe { call(Backend::Cpu, memory, memory_len, id_memory, id_memory_len, tokens, n, logits) }
}

/// The C entry points' common body.
///
/// # Safety
/// As [`brt_guard_forward`].
#[allow(clippy::too_many_arguments)]
unsafe fn call(
    backend: Backend,
    memory: *mut f32,
    memory_len: usize,
    id_memory: *mut u32,
    id_memory_len: usize,
    tokens: *const u32,
    n: usize,
    logits: *mut f32,
) -> i32 {
    if memory.is_null() || id_memory.is_null() || tokens.is_null() || logits.is_null() || n == 0 {
        return 1;
    }
    // SAFETY: the caller guarantees each pointer is valid for the given number of
    // elements, properly aligned, and that the regions do not overlap.
    let (memory, id_memory, tokens, logits) = unsafe {
        (
            core::slice::from_raw_parts_mut(memory, memory_len),
            core::slice::from_raw_parts_mut(id_memory, id_memory_len),
            core::slice::from_raw_parts(tokens, n),
            core::slice::from_raw_parts_mut(logits, n * CONFIG.vocab),
        )
    };
    match forward(memory, id_memory, tokens, logits, backend) {
        Ok(()) => 0,
        Err(()) => 1,
    }
}

/// Which kernels run the forward.
#[derive(Clone, Copy)]
enum Backend {
    Reference,
    Cpu,
}

fn forward(memory: &mut [f32], id_memory: &mut [u32], tokens: &[u32], logits: &mut [f32], backend: Backend) -> Result<(), ()> {
    let plan = Plan::new(&CONFIG, 1, tokens.len()).map_err(drop)?;
    let n_weights = plan.weights_len();
    if memory.len() < n_weights {
        return Err(());
    }
    let (init, rest) = memory.split_at_mut(n_weights);
    initialize(&CONFIG, 1, init).map_err(drop)?;
    let arena = Arena::new(rest, &mut [], id_memory);
    match backend {
        Backend::Reference => run(Reference::new(arena), init, plan, tokens, logits).map_err(drop),
        Backend::Cpu => {
            let k = brt_cpu::Cpu::with_options(arena, cpu_options()).map_err(drop)?;
            run(k, init, plan, tokens, logits).map_err(drop)
        }
    }
}

/// Loads the weights, streams the tokens and reads the logits on kernels `k`.
fn run<K: brt_core::Kernels>(mut k: K, weights: &[f32], plan: Plan, tokens: &[u32], logits: &mut [f32]) -> Result<(), K::Error> {
    let model = Model::from_flat(&mut k, &CONFIG, WeightDtype::F32, WeightData::F32(weights))?;
    let mut stream = Stream::new(&mut k, &model, plan)?;
    stream.forward(&mut k, &model, tokens, &[])?;
    stream.read_logits(&mut k, logits)
}
