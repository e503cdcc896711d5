//! RAM you can count: the `tiny` benchmark configuration (`brt bench --config
//! tiny`) streams one token per call on one thread in under 256 KiB of RAM in
//! all, weights excluded, with the smallest tiles: a `brt_core::Arena` of exactly
//! the size `Options::stream_memory` computes before anything is allocated
//! (stream state, stream scratch with the logits of one call, the backend's
//! scratch, the token id), plus the caller's copy of one token's logits. The
//! weights are used where they lie, in a model file (as in flash): they take no
//! RAM.
//!
//! `cargo test -p brt-cpu --test small_memory -- --nocapture` prints the
//! breakdown.

use brt_core::init::initialize;
use brt_core::{Arena, Config, CoreError, Model, Plan, Stream, WeightData, WeightDtype, WeightLayout};
use brt_cpu::{Cpu, CpuError, Heap, Options, SimdLevel, StreamMemory, Tiles};
use brt_gguf::ModelFile;

/// The goal: stream state, scratch, backend scratch, token ids and logits.
const BUDGET: usize = 256 * 1024;
/// Tokens streamed, one per call: many blocks of the recurrent layer (W = 16).
const TOKENS: usize = 300;

fn tiny() -> Config {
    brt::bench::named_config("tiny").expect("the tiny configuration")
}

fn weights(config: &Config) -> Vec<f32> {
    let mut flat = vec![0f32; WeightLayout::new(config).unwrap().len()];
    initialize(config, 11, &mut flat).unwrap();
    flat
}

/// A document of byte-level ids (bytes + 3, below the vocabulary of 260).
fn document() -> Vec<u32> {
    let text = b"Block-Recurrent Transformers carry a state from block to block; ";
    (0..TOKENS).map(|i| text[(i * 7 + i / 13) % text.len()] as u32 + 3).collect()
}

/// The options under test: the model's head width and gradient sums, one
/// thread, the smallest tiles of `level`.
fn smallest(config: &Config, level: SimdLevel) -> Options {
    Options { level: Some(level), tiles: Some(Tiles::smallest(level)), ..Options::for_config(config) }
}

/// Every token's logits, and the (f32, u16, u32) values left in the arena.
struct Streamed {
    logits: Vec<f32>,
    left: (usize, usize, usize),
}

/// Streams `tokens` one per call on an arena of exactly `memory` (less
/// `short` f32 values), with the weights used in place from a model file of
/// `flat`; returns every token's logits and what is left of the arena.
fn stream_on_arena(
    config: &Config,
    options: Options,
    memory: StreamMemory,
    short: usize,
    flat: &[f32],
    tokens: &[u32],
) -> Result<Streamed, CpuError> {
    // The model file at an aligned address, as `brt_gguf::include_model!` puts
    // it in flash.
    let file = brt_gguf::write(config, None, WeightData::F32(flat)).unwrap();
    let mut flash = vec![0u64; file.len().div_ceil(8)];
    bytemuck::cast_slice_mut::<u64, u8>(&mut flash)[..file.len()].copy_from_slice(&file);
    let file = ModelFile::parse(&bytemuck::cast_slice(&flash)[..file.len()]).unwrap();
    let mut f32s = vec![0f32; memory.f32_len() - short];
    let mut u32s = vec![0u32; memory.u32_len()];
    let mut k = Cpu::with_options(Arena::new(&mut f32s, &mut [], &mut u32s), options)?;
    let weights = k.weights_in_place(file.weight_bytes(), file.byte_layout())?;
    let model = Model::with_layout(*file.layout(), WeightDtype::F32, weights)?;
    let mut stream = Stream::new(&mut k, &model, Plan::new(config, 1, 1)?)?;
    let mut logits = vec![0f32; config.vocab];
    let mut all = Vec::with_capacity(tokens.len() * config.vocab);
    for &token in tokens {
        stream.forward(&mut k, &model, &[token], &[])?;
        stream.read_logits(&mut k, &mut logits)?;
        all.extend_from_slice(&logits);
    }
    Ok(Streamed { logits: all, left: k.memory().remaining() })
}

/// The same stream on the heap with the default tiles of `level`.
fn stream_with_default_tiles(config: &Config, level: SimdLevel, flat: &[f32], tokens: &[u32]) -> Vec<f32> {
    let options = Options { level: Some(level), ..Options::for_config(config) };
    assert_eq!(options.resolve_tiles().unwrap(), Tiles::default_for(level));
    let mut k = Cpu::with_options(Heap, options).unwrap();
    let model = Model::from_flat(&mut k, config, WeightDtype::F32, WeightData::F32(flat)).unwrap();
    let mut stream = Stream::new(&mut k, &model, Plan::new(config, 1, 1).unwrap()).unwrap();
    let mut logits = vec![0f32; config.vocab];
    let mut all = Vec::with_capacity(tokens.len() * config.vocab);
    for &token in tokens {
        stream.forward(&mut k, &model, &[token], &[]).unwrap();
        stream.read_logits(&mut k, &mut logits).unwrap();
        all.extend_from_slice(&logits);
    }
    all
}

#[test]
fn tiny_streams_in_under_256_kib_with_the_smallest_tiles() {
    let config = tiny();
    let plan = Plan::new(&config, 1, 1).unwrap();
    let flat = weights(&config);
    let tokens = document();
    for level in SimdLevel::available() {
        let options = smallest(&config, level);
        let memory = options.stream_memory(&plan).unwrap();
        // What the parts are, from the plan and the options alone.
        assert_eq!(memory.state, plan.state_len());
        assert_eq!(memory.stream_scratch, plan.scratch().total());
        assert_eq!(memory.backend_scratch, options.scratch_len().unwrap());
        assert_eq!(memory.backend_scratch, options.scratch_per_thread().unwrap());
        assert_eq!(memory.tokens, 1);
        let logits_bytes = 4 * config.vocab;
        let total = memory.bytes() + logits_bytes;
        println!(
            "tiny, {level}, smallest tiles, 1 thread: state {} B, stream scratch {} B (its logits {} B), \
             backend scratch {} B, token ids {} B, caller's logits {} B: {} B in all ({:.1} KiB; weights {} B in place)",
            4 * memory.state,
            4 * memory.stream_scratch,
            4 * plan.scratch().logits,
            4 * memory.backend_scratch,
            4 * memory.tokens,
            logits_bytes,
            total,
            total as f64 / 1024.0,
            4 * plan.weights_len(),
        );
        assert!(total < BUDGET, "{level}: {total} bytes, over the 256 KiB budget");

        // The arena of exactly the computed size suffices and is used up.
        let small = stream_on_arena(&config, options, memory, 0, &flat, &tokens).unwrap();
        assert_eq!(small.left, (0, 0, 0), "{level}: the arena is used exactly as reported");
        // One value less does not.
        let short = stream_on_arena(&config, options, memory, 1, &flat, &tokens);
        assert!(
            matches!(short, Err(CpuError::Core(CoreError::OutOfMemory { .. }))),
            "{level}: one value short must be refused, got {:?}",
            short.map(|r| r.left)
        );

        // The same logits as the default tiles, up to rounding. The tiles only
        // change the order in which sums are rounded: the state update's
        // products take one inner-dimension step per block (a separate multiply
        // and add instead of a fused chain), the online softmax walks keys in
        // tiles of one micro-tile width instead of one tile; each differs by an
        // ulp or so per operation, carried by the recurrent state from block to
        // block. The one-token products (the gemv path) do not depend on tiles.
        let reference = stream_with_default_tiles(&config, level, &flat, &tokens);
        let mut worst = 0f32;
        for (i, (&a, &b)) in small.logits.iter().zip(&reference).enumerate() {
            let err = (a - b).abs() / b.abs().max(1.0);
            assert!(a.is_finite() && err <= 1e-5, "{level}: logit {i}: {a} with the smallest tiles, {b} by default");
            worst = worst.max(err);
        }
        println!("tiny, {level}: largest difference from the default tiles {worst:.2e} (relative, floor 1)");
    }
}

#[test]
fn the_smallest_tiles_need_a_few_kib_per_thread_for_the_tiny_model() {
    let config = tiny();
    for level in SimdLevel::available() {
        let small = smallest(&config, level).scratch_per_thread().unwrap();
        let default = Options { level: Some(level), ..Options::for_config(&config) }.scratch_per_thread().unwrap();
        // The largest need is the attention backward's: a few tiles of keys and
        // queries, one micro-tile each, so it grows with the micro-tile's area
        // (AVX-512's 12 x 32 is 4 times AVX2's 6 x 16): 16 KiB per 96 lanes.
        let (mr, nr) = level.micro_tile();
        let bound = 16 * 1024 * (mr * nr).max(96) / 96;
        assert!(4 * small < bound, "{level}: {small} values, {} bytes of at most {bound}", 4 * small);
        // AVX-512's default blocking is half of AVX2's (kc 128), its smallest
        // tiles 2 times larger: about 90 times less, and over 300 with AVX2.
        assert!(small * 50 < default, "{level}: {small} against {default} values");
        println!("{level}: {} bytes per thread with the smallest tiles, {} by default", 4 * small, 4 * default);
        // Two threads take twice as much.
        let two = Options { threads: 2, ..smallest(&config, level) };
        assert_eq!(two.scratch_len().unwrap(), 2 * small);
    }
}
