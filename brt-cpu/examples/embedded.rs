//! Embedding the CPU backend with no allocator: `brt-core` and `brt-cpu` only,
//! every buffer carved from memory the caller owns, sized exactly by the plan.
//!
//! A counting global allocator shows that loading the model and streaming a
//! document allocate nothing (the caller's pools are made before counting starts;
//! on a microcontroller they would be static arrays).
//!
//! ```sh
//! cargo run --release -p brt-cpu --example embedded
//! ```

use brt_core::init::initialize;
use brt_core::{Arena, Config, GateKind, LayerSet, Model, Plan, StateLayout, Stream, WeightData, WeightDtype};
use brt_cpu::{Cpu, Options};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator, which
// upholds `GlobalAlloc`'s contract; counting has no effect on the memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same layout, same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config {
        states: 8,
        recurrent: LayerSet::EMPTY.with(1),
        gate: GateKind::Lstm,
        layout: StateLayout::Dual,
        ..Config::plain(260, 64, 4, 16, 128, 2, 16)
    };
    let tokens_per_call = 16;
    let plan = Plan::new(&config, 1, tokens_per_call)?;
    let options = Options::for_config(&config);
    let memory = options.stream_memory(&plan)?;
    // The caller's memory: f32 for the backend's scratch and the stream, u16 for
    // the weights (stored in f16 below), u32 for token ids.
    let mut f32s = vec![0f32; memory.f32_len()];
    let mut u16s = vec![0u16; plan.weights_len()];
    let mut u32s = vec![0u32; memory.u32_len()];
    let mut weights = vec![0f32; plan.weights_len()];
    initialize(&config, 3, &mut weights)?;
    let document: Vec<u32> = b"caller memory, no allocator".iter().map(|&b| b as u32 + 3).collect();
    let mut logits = vec![0f32; tokens_per_call * config.vocab];

    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let mut k = Cpu::with_options(Arena::new(&mut f32s, &mut u16s, &mut u32s), options)?;
    let model = Model::from_flat(&mut k, &config, WeightDtype::F16, WeightData::F32(&weights))?;
    let mut stream = Stream::new(&mut k, &model, plan)?;
    let mut checksum = 0f64;
    for call in document.chunks(tokens_per_call) {
        stream.forward(&mut k, &model, call, &[])?;
        let out = &mut logits[..call.len() * config.vocab];
        stream.read_logits(&mut k, out)?;
        checksum += out.iter().map(|&x| x as f64).sum::<f64>();
    }
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
    println!(
        "{} tokens through a {}-parameter model (f16 weights, {} KiB of caller memory): {allocations} heap allocations, checksum {checksum:.4}",
        document.len(),
        plan.weights_len(),
        (f32s.len() * 4 + u16s.len() * 2 + u32s.len() * 4) / 1024
    );
    if allocations != 0 {
        return Err("the backend allocated".into());
    }
    Ok(())
}
