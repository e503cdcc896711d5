//! The backend on caller-provided memory (`brt_core::Arena`), as a `no_std`
//! program uses it: every buffer, the backend's own scratch included, is carved
//! from the caller's slices, sized exactly in advance; the logits equal those of
//! the heap-backed backend.

use brt_core::init::initialize;
use brt_core::{Arena, Config, LayerSet, Model, Plan, Stream, WeightData, WeightDtype, WeightLayout};
use brt_cpu::{Cpu, Heap, Options, SimdLevel};

fn config() -> Config {
    Config { states: 4, recurrent: LayerSet::EMPTY.with(1), ..Config::plain(40, 16, 2, 8, 32, 3, 4) }
}

fn logits_on<M: brt_core::HostMemory>(k: &mut Cpu<M>, dtype: WeightDtype, flat: &[f32]) -> Vec<f32> {
    let config = config();
    let model = Model::from_flat(k, &config, dtype, WeightData::F32(flat)).unwrap();
    let mut stream = Stream::new(k, &model, Plan::new(&config, 1, 10).unwrap()).unwrap();
    let tokens: Vec<u32> = (0..10).map(|i| i * 7 % 40).collect();
    stream.forward(k, &model, &tokens, &[]).unwrap();
    stream.forward(k, &model, &tokens[..3], &[]).unwrap();
    let mut out = vec![0f32; 3 * config.vocab];
    stream.read_logits(k, &mut out).unwrap();
    out
}

#[test]
fn a_backend_on_caller_memory_needs_exactly_the_planned_sizes() {
    let config = config();
    let layout = WeightLayout::new(&config).unwrap();
    let mut flat = vec![0f32; layout.len()];
    initialize(&config, 5, &mut flat).unwrap();
    let plan = Plan::new(&config, 1, 10).unwrap();
    for level in SimdLevel::available() {
        for dtype in [WeightDtype::F32, WeightDtype::F16] {
            let options = Options { level: Some(level), ..Options::default() };
            let weights_f32 = if dtype == WeightDtype::F32 { layout.len() } else { 0 };
            let weights_u16 = layout.len() - weights_f32;
            let mut f32s = vec![0f32; options.scratch_len().unwrap() + weights_f32 + plan.activations_len()];
            let mut u16s = vec![0u16; weights_u16];
            let mut u32s = vec![0u32; plan.tokens_len()];
            let mut k = Cpu::with_options(Arena::new(&mut f32s, &mut u16s, &mut u32s), options).unwrap();
            let on_arena = logits_on(&mut k, dtype, &flat);
            assert_eq!(k.memory().remaining(), (0, 0, 0), "{level}: the arena was sized exactly");
            let on_heap = logits_on(&mut Cpu::with_options(Heap, options).unwrap(), dtype, &flat);
            assert_eq!(on_arena, on_heap, "{level} {dtype:?}");
        }
    }
}

#[test]
fn too_little_caller_memory_is_an_error() {
    let options = Options::default();
    let mut f32s = vec![0f32; options.scratch_len().unwrap() - 1];
    let r = Cpu::with_options(Arena::new(&mut f32s, &mut [], &mut []), options);
    assert!(matches!(r, Err(brt_cpu::CpuError::Core(brt_core::CoreError::OutOfMemory { .. }))), "{r:?}");
}
