//! Weights used where they lie: a model file's tensor data (in flash, ROM or a
//! mapped file) is the weight buffer, with no copy and no memory taken for it,
//! and gives the same logits as the same values loaded into memory.

use brt_core::half::{bf16, f16};
use brt_core::init::initialize;
use brt_core::{Arena, Config, GateKind, LayerSet, Model, Plan, StateLayout, Stream, WeightData, WeightDtype};
use brt_core::{ByteLayout, CoreError, Kernels, Reference, Storage, WeightLayout};
use brt_cpu::{Cpu, CpuError, Heap, Options, SharedBytes, SimdLevel, Tiles};
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
        WeightDtype::Q8_0 => brt_gguf::write_as(&config(), None, WeightData::F32(&flat), WeightDtype::Q8_0),
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
            let weights = k.weights_in_place(file.weight_bytes(), file.byte_layout()).unwrap();
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
    let data = tensor_data(&bytes, &file);
    assert!(bytes.slice(0..len + 1).is_none());
    let mut k = Cpu::new(Heap).unwrap();
    let weights = k.weights_in_place(data.clone(), file.byte_layout()).unwrap();
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
fn bytes_that_are_not_the_layouts_aligned_values_are_refused() {
    let layout = |dtype| ByteLayout::new(&config(), dtype, 32).unwrap();
    let len = layout(WeightDtype::F32).len();
    let words = vec![0u64; len / 8 + 2];
    let bytes: &[u8] = bytemuck::cast_slice(&words);
    let mut scratch = vec![0f32; Options::default().scratch_len().unwrap()];
    let k = Cpu::with_options(Arena::new(&mut scratch, &mut [], &mut []), Options::default()).unwrap();
    let f32s = layout(WeightDtype::F32);
    assert_eq!(k.weights_in_place(&bytes[1..len + 1], &f32s).unwrap_err(), CpuError::MisalignedWeights { size: 4 });
    let short = k.weights_in_place(&bytes[..len - 4], &f32s).unwrap_err();
    assert!(matches!(short, CpuError::Core(CoreError::LengthMismatch { .. })), "{short:?}");
    let halves = layout(WeightDtype::F16);
    let n = halves.len();
    assert_eq!(k.weights_in_place(&bytes[1..n + 1], &halves).unwrap_err(), CpuError::MisalignedWeights { size: 2 });
    assert!(k.weights_in_place(&bytes[2..n + 2], &layout(WeightDtype::Bf16)).is_ok());
    // A Q8_0 model has f32 tensors too: 4-byte alignment.
    let q8 = layout(WeightDtype::Q8_0);
    let n = q8.len();
    assert_eq!(k.weights_in_place(&bytes[2..n + 2], &q8).unwrap_err(), CpuError::MisalignedWeights { size: 4 });
    assert!(k.weights_in_place(&bytes[4..n + 4], &q8).is_ok());
}

/// A configuration whose widths are whole Q8_0 blocks (d = 64, H*dh = 32,
/// F = 96) with a recurrent layer: every kind of matrix is quantized.
fn block_config() -> Config {
    Config { states: 4, recurrent: LayerSet::EMPTY.with(1), ..Config::plain(50, 64, 2, 16, 96, 2, 8) }
}

/// Streams `calls` (tokens per call) of a document through `model`.
fn stream_logits<K: Kernels>(k: &mut K, model: &Model<K>, calls: &[usize]) -> Vec<f32> {
    let config = *model.config();
    let max = calls.iter().copied().max().unwrap_or(1);
    let mut stream = Stream::new(k, model, Plan::new(&config, 1, max).unwrap()).unwrap();
    let mut all = Vec::new();
    let mut next = 0u32;
    for &n in calls {
        let tokens: Vec<u32> = (0..n as u32).map(|i| (next + i) * 13 % config.vocab as u32).collect();
        next += n as u32;
        stream.forward(k, model, &tokens, &[]).unwrap();
        let mut out = vec![0f32; n * config.vocab];
        stream.read_logits(k, &mut out).unwrap();
        all.extend(out);
    }
    all
}

/// The largest difference between `got` and `want` relative to `1 + |want|`
/// (NaN when either holds one).
fn worst(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len());
    got.iter().zip(want).map(|(g, w)| (g - w).abs() / (1.0 + w.abs())).fold(0.0, |m, d| {
        if d.is_nan() || m.is_nan() {
            f32::NAN
        } else {
            m.max(d)
        }
    })
}

/// Runs the Q8_0 model in `data` (laid out as `layout`) on the reference,
/// which implements the 8-bit products plainly in f64.
fn reference_logits(data: SharedBytes, layout: &ByteLayout, calls: &[usize]) -> Vec<f32> {
    let mut reference = Reference::new(Heap);
    let weights = reference.weights_in_place(data, layout).unwrap();
    let model = Model::with_layout(*layout.layout(), WeightDtype::Q8_0, weights).unwrap();
    stream_logits(&mut reference, &model, calls)
}

/// The tensor data of `file`, parsed from `bytes`, shared with them (no copy).
fn tensor_data(bytes: &SharedBytes, file: &ModelFile) -> SharedBytes {
    bytes.slice(file.data_offset()..file.data_offset() + file.weight_bytes().len()).unwrap()
}

/// `block_config`'s initial weights and their Q8_0 model file, at an aligned
/// address.
fn q8_0_block_model() -> (Vec<f32>, SharedBytes) {
    let config = block_config();
    let mut flat = vec![0f32; WeightLayout::new(&config).unwrap().len()];
    initialize(&config, 9, &mut flat).unwrap();
    let bytes = brt_gguf::write_as(&config, None, WeightData::F32(&flat), WeightDtype::Q8_0).unwrap();
    (flat, SharedBytes::copy_aligned(&bytes))
}

#[test]
fn q8_0_weights_in_flash_compute_the_reference_s_8_bit_products() {
    let config = block_config();
    let (flat, shared) = q8_0_block_model();
    let file = ModelFile::parse(&shared).unwrap();
    assert_eq!(file.dtype(), WeightDtype::Q8_0);
    let mut decoded = vec![0f32; flat.len()];
    file.byte_layout().decode(file.weight_bytes(), &mut decoded).unwrap();
    let data = tensor_data(&shared, &file);
    // About 1.06 bytes a value: the matrices are 8.5 bits, the vectors f32.
    assert!(file.weight_bytes().len() < flat.len() * 11 / 10, "{} bytes", file.weight_bytes().len());
    // Prompt calls (packed products), then one token at a time (integer
    // products), then a call of 3 (few rows, several of them).
    let calls = [20, 1, 1, 3, 9];
    let want = reference_logits(data.clone(), file.byte_layout(), &calls);
    let mut heap = Cpu::new(Heap).unwrap();
    let f32_model = Model::from_flat(&mut heap, &config, WeightDtype::F32, WeightData::F32(&decoded)).unwrap();
    let unquantized_inputs = stream_logits(&mut heap, &f32_model, &calls);
    // What quantizing the products' inputs changes: small, and far more than
    // the backends' differences below.
    let quantization = worst(&unquantized_inputs, &want);
    assert!(quantization > 1e-5 && quantization < 0.1, "quantized inputs moved the logits by {quantization}");
    for level in SimdLevel::available() {
        // The default blocks of the inner dimension (whole 32-value quantization
        // blocks), and blocks of 24 steps: the packed products' second block then
        // starts at value 24 of a quantization block, whose run of values must
        // stop at the block's end.
        let split_blocks = Tiles { gemm_kc: 24, ..Tiles::default_for(level) };
        for (threads, tiles) in [(1, None), (2, None), (1, Some(split_blocks))] {
            let options = Options { level: Some(level), threads, tiles, ..Options::default() };
            let mut k = Cpu::with_options(Heap, options).unwrap();
            let weights = k.weights_in_place(data.clone(), file.byte_layout()).unwrap();
            assert!(weights.is_in_place() && weights.dtype() == WeightDtype::Q8_0);
            let model = Model::with_layout(*file.layout(), WeightDtype::Q8_0, weights).unwrap();
            let got = stream_logits(&mut k, &model, &calls);
            // f32 against f64 arithmetic on the same 8-bit products; an input
            // that rounds to the other side of a quantization step would move a
            // logit by about the step's share (see the message).
            let diff = worst(&got, &want);
            assert!(
                diff <= 1e-5,
                "{level}, {threads} threads, tiles {tiles:?}: {diff} from the reference (quantization {quantization})"
            );
        }
    }
}

/// The stack a thread streaming one token at a time may be given. The products
/// keep fixed buffers on the stack (the Q8_0 GEMV's quantized inputs and their
/// scales, 4.5 KiB), and a microcontroller has a few tens of KiB for everything
/// (the firmware measures its stream's use, on f16 weights). An unoptimized
/// build streams at every level here with the smallest stack a thread can be
/// given (a request of 4 KiB is raised to the platform's minimum); the budget
/// leaves room for other compilers. A buffer sized by a wrong formula (the
/// scales' `Q8_CHUNK / Q8_0_BLOCK` as `*`: 512 KiB) overflows it.
const SMALL_STACK: usize = 32 * 1024;

#[test]
fn q8_0_one_token_streams_run_on_a_small_stack() {
    let (_, shared) = q8_0_block_model();
    let file = ModelFile::parse(&shared).unwrap();
    let (layout, data) = (*file.byte_layout(), tensor_data(&shared, &file));
    for level in SimdLevel::available() {
        // One thread: every product runs on the caller's stack.
        let stream = move |data: SharedBytes| {
            let options = Options { level: Some(level), threads: 1, ..Options::default() };
            let mut k = Cpu::with_options(Heap, options).unwrap();
            let weights = k.weights_in_place(data, &layout).unwrap();
            let model = Model::with_layout(*layout.layout(), WeightDtype::Q8_0, weights).unwrap();
            stream_logits(&mut k, &model, &[1, 1, 1])
        };
        let small = {
            let data = data.clone();
            // A thread that outgrows its stack aborts the test binary ("fatal
            // runtime error: stack overflow"): the failure this test exists for.
            let thread = std::thread::Builder::new().stack_size(SMALL_STACK).spawn(move || stream(data)).unwrap();
            thread.join().expect("the stream on a small stack")
        };
        assert_eq!(small, stream(data.clone()), "{level}: the same logits as on the test's own stack");
    }
}

#[test]
fn q8_0_data_whose_length_is_not_a_multiple_of_four_is_used_in_place() {
    // d = 33: the last tensor, the MLP output kernel (F = 32 inputs for each of
    // its 33 outputs, stored by outputs), is 33 blocks of 34 bytes, so the data
    // ends 2 bytes past a multiple of 4.
    let config = Config::plain(20, 33, 1, 32, 32, 1, 4);
    let layout = ByteLayout::new(&config, WeightDtype::Q8_0, 32).unwrap();
    assert_eq!(layout.len() % 4, 2);
    let mut flat = vec![0f32; WeightLayout::new(&config).unwrap().len()];
    initialize(&config, 3, &mut flat).unwrap();
    let mut words = vec![0u64; layout.len().div_ceil(8)];
    let data = &mut bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..layout.len()];
    layout.encode(WeightData::F32(&flat), data).unwrap();
    let data = &bytemuck::cast_slice::<u64, u8>(&words)[..layout.len()];
    let calls = [5, 1];
    let plan = Plan::new(&config, 1, 5).unwrap();
    let options = Options::default();
    let mut f32s = vec![0f32; options.scratch_len().unwrap() + plan.activations_len()];
    let mut u32s = vec![0u32; plan.tokens_len()];
    let mut k = Cpu::with_options(Arena::new(&mut f32s, &mut [], &mut u32s), options).unwrap();
    let weights = k.weights_in_place(data, &layout).unwrap();
    let model = Model::with_layout(*layout.layout(), WeightDtype::Q8_0, weights).unwrap();
    let got = stream_logits(&mut k, &model, &calls);
    let want = reference_logits(SharedBytes::copy_aligned(data), &layout, &calls);
    assert!(worst(&got, &want) <= 1e-5, "{} from the reference", worst(&got, &want));
}
