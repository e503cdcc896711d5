//! Weights used where they lie: a model file's tensor data (in flash, ROM or a
//! mapped file) is the weight buffer, with no copy and no memory taken for it,
//! and gives the same logits as the same values loaded into memory.

use brt_core::half::{bf16, f16};
use brt_core::init::initialize;
use brt_core::{Arena, Config, GateKind, LayerSet, Model, Plan, StateLayout, Stream, WeightData, WeightDtype};
use brt_core::{Storage, WeightLayout};
use brt_cpu::{Cpu, CpuError, Heap, Options, SharedBytes, SimdLevel};
use brt_gguf::ModelFile;

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

/// The model file of `flat` stored as `dtype`, at an address aligned to 32 bytes
/// (as `brt_gguf::include_model!` or an mmap places it).
fn model_file(dtype: WeightDtype) -> (Vec<u64>, usize) {
    let flat = flat();
    let bytes = match dtype {
        WeightDtype::F32 => brt_gguf::write(&config(), None, WeightData::F32(&flat)),
        WeightDtype::F16 => brt_gguf::write(
            &config(),
            None,
            WeightData::F16(&flat.iter().map(|&x| f16::from_f32(x)).collect::<Vec<_>>()),
        ),
        WeightDtype::Bf16 => brt_gguf::write(
            &config(),
            None,
            WeightData::Bf16(&flat.iter().map(|&x| bf16::from_f32(x)).collect::<Vec<_>>()),
        ),
    }
    .unwrap();
    let mut words = vec![0u64; bytes.len().div_ceil(8)];
    bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..bytes.len()].copy_from_slice(&bytes);
    (words, bytes.len())
}

fn logits<M: brt_core::HostMemory>(k: &mut Cpu<M>, model: &Model<Cpu<M>>) -> Vec<f32> {
    let config = config();
    let mut stream = Stream::new(k, model, Plan::new(&config, 1, 10).unwrap()).unwrap();
    let tokens: Vec<u32> = (0..10).map(|i| i * 7 % 40).collect();
    stream.forward(k, model, &tokens, &[]).unwrap();
    stream.forward(k, model, &tokens[..3], &[]).unwrap();
    let mut out = vec![0f32; 3 * config.vocab];
    stream.read_logits(k, &mut out).unwrap();
    out
}

#[test]
fn weights_in_flash_give_the_logits_of_weights_in_memory_and_take_no_memory() {
    let config = config();
    let plan = Plan::new(&config, 1, 10).unwrap();
    for dtype in [WeightDtype::F32, WeightDtype::F16, WeightDtype::Bf16] {
        let (words, len) = model_file(dtype);
        let file = ModelFile::parse(&bytemuck::cast_slice(&words)[..len]).unwrap();
        for level in SimdLevel::available() {
            let options = Options { level: Some(level), ..Options::default() };
            // The caller's memory holds scratch, stream and tokens: no weights.
            let mut f32s = vec![0f32; options.scratch_len().unwrap() + plan.activations_len()];
            let mut u32s = vec![0u32; plan.tokens_len()];
            let mut k = Cpu::with_options(Arena::new(&mut f32s, &mut [], &mut u32s), options).unwrap();
            let weights = k.weights_in_place(file.weight_bytes(), dtype).unwrap();
            assert!(weights.is_in_place());
            let model = Model::with_layout(*file.layout(), dtype, weights).unwrap();
            let in_flash = logits(&mut k, &model);
            assert_eq!(k.memory().remaining(), (0, 0, 0), "{level}: the arena was sized without weights");

            let mut heap = Cpu::with_options(Heap, options).unwrap();
            let owned = Model::from_flat(&mut heap, &config, dtype, WeightData::F32(&flat())).unwrap();
            assert_eq!(in_flash, logits(&mut heap, &owned), "{level} {dtype:?}");
        }
    }
}

#[test]
fn a_mapped_file_shared_on_the_heap_is_used_in_place_too() {
    let (words, len) = model_file(WeightDtype::F16);
    /// A page-aligned mapping would do; aligned words stand in for it.
    struct Mapped(Vec<u64>);
    impl AsRef<[u8]> for Mapped {
        fn as_ref(&self) -> &[u8] {
            bytemuck::cast_slice(&self.0)
        }
    }
    let bytes = SharedBytes::new(Mapped(words));
    let bytes = bytes.slice(0..len).unwrap();
    let file = ModelFile::parse(&bytes).unwrap();
    let range = file.data_offset()..file.data_offset() + file.weight_bytes().len();
    let data = bytes.slice(range).unwrap();
    assert!(bytes.slice(0..len + 1).is_none());
    let mut k = Cpu::new(Heap).unwrap();
    let weights = k.weights_in_place(data.clone(), WeightDtype::F16).unwrap();
    assert_eq!(weights.len(), file.layout().len());
    let mut model = Model::with_layout(*file.layout(), WeightDtype::F16, weights).unwrap();
    let mut heap = Cpu::new(Heap).unwrap();
    let owned = Model::from_flat(&mut heap, &config(), WeightDtype::F16, WeightData::F32(&flat())).unwrap();
    assert_eq!(logits(&mut k, &model), logits(&mut heap, &owned));

    // Read-only: writing is an error and changes nothing.
    let err = k.write_weights(model.weights_mut(), 0, WeightData::F32(&[1.0])).unwrap_err();
    assert_eq!(err, CpuError::ReadOnlyWeights);
    assert!(err.to_string().contains("read-only"), "{err}");
    assert_eq!(logits(&mut k, &model), logits(&mut heap, &owned));
}

#[test]
fn bytes_that_are_not_whole_aligned_values_are_refused() {
    let words = vec![0u64; 8];
    let bytes: &[u8] = bytemuck::cast_slice(&words);
    let mut scratch = vec![0f32; Options::default().scratch_len().unwrap()];
    let k = Cpu::with_options(Arena::new(&mut scratch, &mut [], &mut []), Options::default()).unwrap();
    assert_eq!(
        k.weights_in_place(&bytes[1..9], WeightDtype::F32).unwrap_err(),
        CpuError::MisalignedWeights { size: 4 }
    );
    assert_eq!(k.weights_in_place(&bytes[..6], WeightDtype::F32).unwrap_err(), CpuError::MisalignedWeights { size: 4 });
    assert_eq!(
        k.weights_in_place(&bytes[1..5], WeightDtype::F16).unwrap_err(),
        CpuError::MisalignedWeights { size: 2 }
    );
    assert!(k.weights_in_place(&bytes[2..6], WeightDtype::Bf16).is_ok());
}
