//! The Rust API: a runner on exactly the memory `Sizes` gives computes the
//! logits of the CPU backend on the heap, fed in the same calls; every refusal is
//! an error that leaves the runner usable.

use brt_capi::{Error, Runner, Sizes};
use brt_core::init::initialize;
use brt_core::{Config, GateKind, LayerSet, Model, Plan, StateLayout, Stream, WeightData, WeightDtype, WeightLayout};
use brt_cpu::{Cpu, Heap};

fn config() -> Config {
    Config {
        states: 4,
        recurrent: LayerSet::EMPTY.with(1),
        gate: GateKind::Lstm,
        layout: StateLayout::Dual,
        ..Config::plain(40, 16, 2, 8, 32, 3, 4)
    }
}

fn flat() -> Vec<f32> {
    let mut flat = vec![0f32; WeightLayout::new(&config()).unwrap().len()];
    initialize(&config(), 5, &mut flat).unwrap();
    flat
}

/// A model file of `flat()` in `dtype`, in u64 words (an aligned address) and
/// its length in bytes.
fn model_file(dtype: WeightDtype) -> (Vec<u64>, usize) {
    let flat = flat();
    let half: Vec<brt_core::half::f16> = flat.iter().map(|&x| brt_core::half::f16::from_f32(x)).collect();
    let data = match dtype {
        WeightDtype::F16 => WeightData::F16(&half),
        _ => WeightData::F32(&flat),
    };
    let bytes = brt_gguf::write(&config(), None, data).unwrap();
    let mut words = vec![0u64; bytes.len().div_ceil(8)];
    bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..bytes.len()].copy_from_slice(&bytes);
    (words, bytes.len())
}

fn bytes(words: &[u64], len: usize) -> &[u8] {
    &bytemuck::cast_slice(words)[..len]
}

/// Logits after each of `calls` (fed as one call each) on the heap backend.
fn heap_logits(dtype: WeightDtype, calls: &[&[u32]], tokens_per_call: usize) -> Vec<Vec<f32>> {
    let config = config();
    let options = brt_capi::options(&config);
    let mut k = Cpu::with_options(Heap, options).unwrap();
    let model = Model::from_flat(&mut k, &config, dtype, WeightData::F32(&flat())).unwrap();
    let mut stream = Stream::new(&mut k, &model, Plan::new(&config, 1, tokens_per_call).unwrap()).unwrap();
    let mut out = Vec::new();
    for call in calls {
        stream.forward(&mut k, &model, call, &[]).unwrap();
        let mut all = vec![0f32; call.len() * config.vocab];
        stream.read_logits(&mut k, &mut all).unwrap();
        out.push(all[(call.len() - 1) * config.vocab..].to_vec());
    }
    out
}

#[test]
fn a_runner_on_exactly_the_planned_memory_gives_the_logits_of_the_heap_backend() {
    let tokens: Vec<u32> = (0..23).map(|i| (i * 7 + 3) % 40).collect();
    for dtype in [WeightDtype::F32, WeightDtype::F16] {
        let (words, len) = model_file(dtype);
        let model = bytes(&words, len);
        let sizes = Sizes::for_model(model, 5).unwrap();
        assert_eq!(sizes.u32s, 5);
        let mut f32s = vec![0f32; sizes.f32s];
        let mut u32s = vec![0u32; sizes.u32s];
        let mut runner = Runner::open(model, &mut f32s, &mut u32s, 5).unwrap();
        assert_eq!((runner.vocab(), runner.tokens_per_call(), runner.config()), (40, 5, &config()));

        // 23 tokens go in calls of 5, 5, 5, 5, 3; then one more token alone.
        runner.feed(&tokens).unwrap();
        let mut logits = vec![0f32; 40];
        runner.logits(&mut logits).unwrap();
        let calls: Vec<&[u32]> = tokens.chunks(5).chain([&[9u32][..]]).collect();
        let expected = heap_logits(dtype, &calls, 5);
        assert_eq!(logits, expected[4], "{dtype:?}");
        runner.feed(&[9]).unwrap();
        runner.logits(&mut logits).unwrap();
        assert_eq!(logits, expected[5], "{dtype:?}");
        assert_eq!(runner.position(), 24);

        // A new document is the first one again.
        runner.reset().unwrap();
        assert_eq!(runner.position(), 0);
        assert_eq!(runner.logits(&mut logits), Err(Error::NoLogits));
        runner.feed(&tokens).unwrap();
        runner.logits(&mut logits).unwrap();
        assert_eq!(logits, expected[4], "{dtype:?} after reset");
    }
}

#[test]
fn one_element_less_of_either_pool_is_refused() {
    let (words, len) = model_file(WeightDtype::F32);
    let model = bytes(&words, len);
    let sizes = Sizes::for_model(model, 7).unwrap();
    let options = brt_capi::options(&config());
    let plan = Plan::new(&config(), 1, 7).unwrap();
    assert_eq!(sizes.f32s, options.scratch_len().unwrap() + plan.activations_len());
    assert_eq!(sizes.bytes(), Some(4 * (sizes.f32s + 7)));

    let mut f32s = vec![0f32; sizes.f32s];
    let mut u32s = vec![0u32; sizes.u32s];
    let err = Runner::open(model, &mut f32s[1..], &mut u32s, 7).unwrap_err();
    assert_eq!(err, Error::MemoryTooSmall { what: "f32 pool", needed: sizes.f32s, available: sizes.f32s - 1 });
    assert_eq!(err.code(), 4);
    assert!(err.to_string().contains("f32 pool: "), "{err}");
    let err = Runner::open(model, &mut f32s, &mut u32s[1..], 7).unwrap_err();
    assert_eq!(err, Error::MemoryTooSmall { what: "u32 pool", needed: 7, available: 6 });
    // More than needed is fine.
    let mut more = vec![0f32; sizes.f32s + 3];
    Runner::open(model, &mut more, &mut u32s, 7).unwrap();
}

#[test]
fn one_region_of_bytes_works_like_two_pools_and_must_be_aligned() {
    let (words, len) = model_file(WeightDtype::F32);
    let model = bytes(&words, len);
    let sizes = Sizes::for_model(model, 4).unwrap();
    let n = sizes.bytes().unwrap();
    let mut region = vec![0u32; n / 4 + 1];
    let tokens = [1, 2, 3, 4, 5, 6];
    let mut from_region = vec![0f32; 40];
    {
        let region: &mut [u8] = bytemuck::cast_slice_mut(&mut region);
        let err = Runner::open_in(model, &mut region[..n - 1], 4).unwrap_err();
        assert!(matches!(err, Error::MemoryTooSmall { needed, .. } if needed == n), "{err:?}");
        assert_eq!(Runner::open_in(model, &mut region[1..], 4).unwrap_err(), Error::MisalignedMemory { needed: 4 });
        let mut runner = Runner::open_in(model, &mut region[..n], 4).unwrap();
        runner.feed(&tokens).unwrap();
        runner.logits(&mut from_region).unwrap();
    }
    let mut f32s = vec![0f32; sizes.f32s];
    let mut u32s = vec![0u32; sizes.u32s];
    let mut runner = Runner::open(model, &mut f32s, &mut u32s, 4).unwrap();
    runner.feed(&tokens).unwrap();
    let mut from_pools = vec![0f32; 40];
    runner.logits(&mut from_pools).unwrap();
    assert_eq!(from_region, from_pools);
}

#[test]
fn refusals_are_errors_and_leave_the_runner_usable() {
    let (words, len) = model_file(WeightDtype::F32);
    let model = bytes(&words, len);
    assert!(matches!(Sizes::for_model(model, 0), Err(Error::TokensPerCall(_))));
    assert!(matches!(Sizes::for_model(model, usize::MAX), Err(Error::TokensPerCall(_))));
    assert!(matches!(Sizes::for_model(&model[..len - 1], 4), Err(Error::Model(_))));
    assert_eq!(Sizes::for_model(b"not a model", 4), Err(Error::Model(brt_gguf::GgufError::NotGguf)));
    // The model's bytes must be aligned for its weights.
    let mut shifted = vec![0u64; words.len() + 1];
    bytemuck::cast_slice_mut::<u64, u8>(&mut shifted)[1..len + 1].copy_from_slice(model);
    let err = Sizes::for_model(&bytemuck::cast_slice::<u64, u8>(&shifted)[1..len + 1], 4).unwrap_err();
    assert_eq!(err, Error::Model(brt_gguf::GgufError::Misaligned { needed: 4 }));
    assert!(err.to_string().starts_with("not a valid brt model file"), "{err}");

    let sizes = Sizes::for_model(model, 4).unwrap();
    let mut f32s = vec![0f32; sizes.f32s];
    let mut u32s = vec![0u32; sizes.u32s];
    let mut runner = Runner::open(model, &mut f32s, &mut u32s, 4).unwrap();
    let mut logits = vec![0f32; 40];
    assert_eq!(runner.logits(&mut logits), Err(Error::NoLogits));
    runner.feed(&[]).unwrap();
    assert_eq!(runner.logits(&mut logits), Err(Error::NoLogits));
    runner.feed(&[1, 2, 3]).unwrap();
    runner.logits(&mut logits).unwrap();
    let before = logits.clone();
    let err = runner.feed(&[4, 5, 40, 6]).unwrap_err();
    assert_eq!(err, Error::TokenOutOfRange { index: 2, id: 40, vocab: 40 });
    assert_eq!(runner.position(), 3, "nothing was fed");
    assert_eq!(runner.logits(&mut logits[..39]), Err(Error::LogitsLength { expected: 40, actual: 39 }));
    runner.logits(&mut logits).unwrap();
    assert_eq!(logits, before);
    // The stream went on from where it was: same as feeding 1..=4 in one go.
    runner.feed(&[4]).unwrap();
    runner.logits(&mut logits).unwrap();
    let expected = heap_logits(WeightDtype::F32, &[&[1, 2, 3], &[4]], 4);
    assert_eq!(logits, expected[1]);
}
