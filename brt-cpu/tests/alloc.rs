//! Zero heap allocations per block and per token in steady state, with the `std`
//! feature and two worker threads: a counting global allocator watches a long
//! stream (thousands of blocks, odd call sizes, per-row and whole-batch document
//! resets, feedback and non-feedback stacks with every kind of layer).
//!
//! The counting allocator sees every allocation of the process, so nothing else
//! may run in it: this binary has no test harness (`harness = false` in
//! Cargo.toml). Under libtest, the harness's main thread allocates while a test
//! runs when it prints its "has been running for over 60 seconds" notice, which
//! failed this check under QEMU (3 allocations, none of them brt-cpu's).

use brt_core::init::{initialize, SplitMix64};
use brt_core::{Config, GateKind, LayerSet, Model, Plan, StateLayout, Stream, WeightData, WeightDtype, WeightLayout};
use brt_cpu::{Cpu, Heap, Options};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn stream_without_allocating(config: Config, dtype: WeightDtype) {
    let batch = 2;
    let max_tokens = 3 * config.window;
    let layout = WeightLayout::new(&config).unwrap();
    let mut flat = vec![0f32; layout.len()];
    initialize(&config, 3, &mut flat).unwrap();
    let mut k = Cpu::with_options(Heap, Options::threads(2)).unwrap();
    let model = Model::from_flat(&mut k, &config, dtype, WeightData::F32(&flat)).unwrap();
    let mut stream = Stream::new(&mut k, &model, Plan::new(&config, batch, max_tokens).unwrap()).unwrap();
    let mut rng = SplitMix64::new(1);
    let tokens: Vec<u32> = (0..max_tokens * batch).map(|_| (rng.next_u64() % config.vocab as u64) as u32).collect();
    let mut logits = vec![0f32; max_tokens * batch * config.vocab];
    let row_reset = vec![true, false];
    let all_reset = vec![true, true];
    let none: Vec<bool> = Vec::new();

    // Call sizes cycle through whole blocks, odd sizes and the maximum; resets of
    // one row at block boundaries, of all rows anywhere.
    let sizes = [config.window, 1, 5, max_tokens, config.window - 1, 2, config.window];
    let mut run = |calls: usize| {
        let mut streamed = 0usize;
        for i in 0..calls {
            let n = sizes[i % sizes.len()].min(max_tokens);
            let resets = if i % 13 == 0 && stream.position_in_block() == 0 {
                &row_reset
            } else if i % 29 == 0 {
                &all_reset
            } else {
                &none
            };
            stream.forward(&mut k, &model, &tokens[..n * batch], resets).unwrap();
            stream.read_logits(&mut k, &mut logits[..n * batch * config.vocab]).unwrap();
            streamed += n;
        }
        streamed
    };
    run(2 * sizes.len()); // warm-up: first use of everything
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    assert!(before > 0, "the counting allocator saw the setup's allocations");
    let streamed = run(1500);
    let after = ALLOCATIONS.load(Ordering::SeqCst);
    let blocks = streamed / config.window;
    assert_eq!(
        after - before,
        0,
        "{} heap allocations while streaming {streamed} tokens ({blocks} blocks)",
        after - before
    );
    assert!(blocks > 1000);
}

fn main() {
    streaming_allocates_nothing_per_block_or_token();
    // The line libtest would print; reached only if nothing above panicked (a
    // panic exits with a failure status, which fails `cargo test`).
    println!("test streaming_allocates_nothing_per_block_or_token ... ok");
}

fn streaming_allocates_nothing_per_block_or_token() {
    let base = Config {
        states: 8,
        recurrent: LayerSet::EMPTY.with(2),
        linear: LayerSet::EMPTY.with(0),
        gate: GateKind::Lstm,
        layout: StateLayout::Dual,
        ..Config::plain(64, 32, 2, 16, 64, 4, 8)
    };
    stream_without_allocating(base, WeightDtype::F32);
    let feedback =
        Config { feedback: true, linear: LayerSet::EMPTY, layout: StateLayout::Single, gate: GateKind::Fixed, ..base };
    stream_without_allocating(feedback, WeightDtype::F16);
}
