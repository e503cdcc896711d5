//! The reader against files from the writer: every variant round-trips, and
//! every kind of damage is an error that names it, never a panic.

use brt_core::half::{bf16, f16};
use brt_core::{Config, GateKind, LayerSet, Param, StateLayout, TensorType, WeightData, WeightDtype, WeightLayout};
use brt_gguf::{keys, GgufError, ModelFile, Value};

/// A copy of `bytes` starting `shift` bytes past a 32-byte boundary, as a model
/// in flash or an mmap would lie (a `Vec<u8>` is only byte-aligned).
struct Placed {
    words: Vec<u64>,
    len: usize,
    shift: usize,
}

impl Placed {
    fn new(bytes: &[u8], shift: usize) -> Placed {
        let mut p = Placed { words: vec![0u64; (bytes.len() + shift + 32).div_ceil(8)], len: bytes.len(), shift };
        let start = p.start();
        bytemuck::cast_slice_mut::<u64, u8>(&mut p.words)[start..start + bytes.len()].copy_from_slice(bytes);
        p
    }
    fn start(&self) -> usize {
        (32 - (self.words.as_ptr() as usize) % 32) % 32 + self.shift
    }
    fn bytes(&self) -> &[u8] {
        &bytemuck::cast_slice::<u64, u8>(&self.words)[self.start()..self.start() + self.len]
    }
}

fn parse(bytes: &[u8]) -> Result<Config, GgufError> {
    let placed = Placed::new(bytes, 0);
    ModelFile::parse(placed.bytes()).map(|f| *f.config())
}

fn recurrent(gate: GateKind, layout: StateLayout) -> Config {
    Config { states: 4, recurrent: LayerSet::EMPTY.with(1), gate, layout, ..Config::plain(19, 8, 2, 3, 12, 3, 4) }
}

/// Every model variant: plain, both gates in every layout, feedback, linear attention.
fn variants() -> Vec<Config> {
    let mut out = vec![Config::plain(19, 8, 2, 3, 12, 2, 4)];
    for gate in [GateKind::Fixed, GateKind::Lstm] {
        for layout in [StateLayout::Skip, StateLayout::Single, StateLayout::Dual] {
            out.push(recurrent(gate, layout));
        }
    }
    out.push(Config { feedback: true, abs_attention_scale: true, ..recurrent(GateKind::Lstm, StateLayout::Dual) });
    out.push(Config { linear: LayerSet::EMPTY.with(0).with(2), ..recurrent(GateKind::Fixed, StateLayout::Skip) });
    out
}

/// Distinct values, exactly representable in every storage type.
fn values(config: &Config) -> Vec<f32> {
    let n = WeightLayout::new(config).unwrap().len();
    (0..n).map(|i| ((i % 251) as f32 - 125.0) / 64.0).collect()
}

fn file(config: &Config, dtype: WeightDtype) -> Vec<u8> {
    let v = values(config);
    match dtype {
        WeightDtype::F32 => brt_gguf::write(config, Some("test"), WeightData::F32(&v)),
        WeightDtype::F16 => {
            let h: Vec<f16> = v.iter().map(|&x| f16::from_f32(x)).collect();
            brt_gguf::write(config, Some("test"), WeightData::F16(&h))
        }
        WeightDtype::Bf16 => {
            let h: Vec<bf16> = v.iter().map(|&x| bf16::from_f32(x)).collect();
            brt_gguf::write(config, Some("test"), WeightData::Bf16(&h))
        }
        WeightDtype::Q8_0 => brt_gguf::write_as(config, Some("test"), WeightData::F32(&v), dtype),
    }
    .unwrap()
}

#[test]
fn every_variant_and_storage_type_round_trips_in_place() {
    for config in variants() {
        let want = values(&config);
        let canonical = WeightLayout::new(&config).unwrap();
        for dtype in [WeightDtype::F32, WeightDtype::F16, WeightDtype::Bf16] {
            let bytes = file(&config, dtype);
            let placed = Placed::new(&bytes, 0);
            let f = ModelFile::parse(placed.bytes()).unwrap();
            assert_eq!(f.config(), &config);
            assert_eq!(f.dtype(), dtype);
            assert_eq!(f.name(), Some("test"));
            assert_eq!(f.alignment(), 32);
            assert_eq!(f.data_offset() % 32, 0);
            let size = dtype.size().unwrap();
            assert_eq!(f.layout(), &WeightLayout::aligned(&config, 32 / size).unwrap());
            let weights = f.weights().unwrap();
            assert_eq!(weights.len(), f.layout().len());
            // In place: the weights are the file's own bytes.
            assert_eq!(f.weight_bytes().as_ptr(), placed.bytes()[f.data_offset()..].as_ptr());
            for spec in canonical.params() {
                let got = f.param(spec.param).unwrap();
                assert_eq!(got.len(), spec.span.len());
                for i in 0..got.len() {
                    assert_eq!(got.get(i), Some(want[spec.offset + i]), "{} element {i}", spec.param);
                }
                let placed_span = f.layout().span(spec.param).unwrap();
                assert_eq!(weights.get(placed_span.offset), Some(want[spec.offset]));
            }
        }
    }
}

/// Widths of whole Q8_0 blocks (d = 32, H*dh = 32, F = 64) and a recurrent
/// layer with LSTM gates: block tensors and f32 ones.
fn block_config() -> Config {
    Config { d_model: 32, heads: 2, head_dim: 16, mlp_hidden: 64, ..recurrent(GateKind::Lstm, StateLayout::Dual) }
}

#[test]
fn q8_0_files_hold_matrices_in_blocks_and_vectors_in_f32_in_place() {
    let config = block_config();
    let bytes = file(&config, WeightDtype::Q8_0);
    let placed = Placed::new(&bytes, 4);
    let f = ModelFile::parse(placed.bytes()).unwrap();
    assert_eq!(f.dtype(), WeightDtype::Q8_0);
    assert!(f.weights().is_none(), "tensors of different types have no one view");
    assert_eq!(f.layout(), &WeightLayout::new(&config).unwrap());
    let want = values(&config);
    let mut decoded = vec![0f32; want.len()];
    f.byte_layout().decode(f.weight_bytes(), &mut decoded).unwrap();
    let (mut blocks, mut f32s) = (0, 0);
    for spec in WeightLayout::new(&config).unwrap().params() {
        let (tensor, data) = f.tensor(spec.param).unwrap();
        assert_eq!(data.as_ptr(), f.weight_bytes()[tensor.offset..].as_ptr(), "in place");
        let range = spec.offset..spec.offset + spec.span.len();
        match tensor.ty {
            TensorType::Q8_0 => {
                blocks += 1;
                // Blocks run along the dimension a product sums over: a
                // kernel's rows (stored transposed), a table's columns.
                let summed = if spec.param.is_kernel() { spec.span.rows } else { spec.span.cols };
                assert!(
                    !spec.param.is_vector() && summed % 32 == 0 && tensor.is_transposed() == spec.param.is_kernel()
                );
                assert_eq!(data.len(), spec.span.len() / 32 * 34);
                assert!(f.param(spec.param).is_none());
                // In stored order, each block within half a step (the block's
                // largest magnitude / 127), plus the f16 rounding of the step
                // (2^-11 relative) times up to 127.
                let stored = |values: &[f32]| {
                    let mut out = vec![0f32; values.len()];
                    values.iter().enumerate().for_each(|(e, &v)| out[tensor.stored_index(e)] = v);
                    out
                };
                let (want, decoded) = (stored(&want[range.clone()]), stored(&decoded[range]));
                for (w, d) in want.chunks(32).zip(decoded.chunks(32)) {
                    let amax = w.iter().fold(0f32, |m, x| m.max(x.abs()));
                    let bound = amax / 127.0 * 0.5 + amax / 2048.0;
                    assert!(w.iter().zip(d).all(|(a, b)| (a - b).abs() <= bound), "{}", spec.param);
                }
            }
            TensorType::F32 => {
                f32s += 1;
                let values = f.param(spec.param).unwrap();
                assert_eq!((0..values.len()).map(|i| values.get(i).unwrap()).collect::<Vec<_>>(), want[range.clone()]);
                assert_eq!(decoded[range.clone()], want[range]);
            }
            other => panic!("{other:?} in a q8_0 file"),
        }
    }
    assert!(blocks > 5 && f32s > 5, "{blocks} block tensors, {f32s} f32 ones");
    // Written by a brt of format version 1 (kernels stored by inputs): refused,
    // with what to do.
    assert_eq!(parse(&with_u32(&bytes, keys::FORMAT_VERSION, 1)), Err(GgufError::OldQ8_0));
    // Misaligned for the f32 tensors: refused.
    let shifted = Placed::new(&bytes, 2);
    assert_eq!(ModelFile::parse(shifted.bytes()).unwrap_err(), GgufError::Misaligned { needed: 4 });
}

#[test]
fn q8_0_tensors_of_the_wrong_type_or_a_non_finite_scale_are_refused() {
    let config = block_config();
    let bytes = file(&config, WeightDtype::Q8_0);
    // `embed` (a 32-wide matrix) is stored in blocks; say it is f32.
    let name = (5u64).to_le_bytes().iter().copied().chain(*b"embed").collect::<Vec<u8>>();
    let type_at = bytes.windows(name.len()).position(|w| w == name).unwrap() + name.len() + 4 + 16;
    let mut ty = bytes.clone();
    ty[type_at..type_at + 4].copy_from_slice(&0u32.to_le_bytes());
    assert!(matches!(parse(&ty), Err(GgufError::Tensor { index: 0, .. })));
    // The first block's scale is NaN (checksum fixed so the check behind it runs).
    let f = ModelFile::parse(Placed::new(&bytes, 0).bytes()).map(|f| (f.data_offset(), f.weight_bytes().len()));
    let (data_at, data_len) = f.unwrap();
    let mut nan = bytes.clone();
    nan[data_at..data_at + 2].copy_from_slice(&f16::NAN.to_bits().to_le_bytes());
    let crc = crc32fast::hash(&nan[data_at..data_at + data_len]);
    let crc_at = value_at(&nan, keys::DATA_CRC32);
    nan[crc_at..crc_at + 4].copy_from_slice(&crc.to_le_bytes());
    assert_eq!(parse(&nan), Err(GgufError::NonFinite { index: 0, element: 0 }));
}

#[test]
fn metadata_lists_every_key_with_its_value() {
    let config = recurrent(GateKind::Lstm, StateLayout::Dual);
    let bytes = file(&config, WeightDtype::F16);
    let placed = Placed::new(&bytes, 0);
    let f = ModelFile::parse(placed.bytes()).unwrap();
    let meta: Vec<_> = f.metadata().collect();
    let get = |k: &str| meta.iter().find(|(key, _)| *key == k).map(|(_, v)| *v);
    assert_eq!(get(keys::ARCHITECTURE), Some(Value::Str("brt")));
    assert_eq!(get(keys::GATE), Some(Value::Str("lstm")));
    assert_eq!(get(keys::STATES).and_then(|v| v.as_u64()), Some(4));
    assert_eq!(get(keys::DATA_CRC32).and_then(|v| v.as_u64()), Some(f.crc32() as u64));
    match get(keys::RECURRENT) {
        Some(Value::Array(a)) => assert_eq!(a.iter().map(|v| v.as_u64().unwrap()).collect::<Vec<_>>(), vec![1]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn every_cut_is_an_error_and_so_is_anything_appended() {
    let bytes = file(&recurrent(GateKind::Fixed, StateLayout::Dual), WeightDtype::F16);
    for len in 0..bytes.len() {
        let err = parse(&bytes[..len]).expect_err("a cut file was accepted");
        if len >= 24 {
            assert!(
                matches!(err, GgufError::Truncated { .. } | GgufError::DataSize { .. } | GgufError::Malformed { .. }),
                "cut at {len}: {err}"
            );
        }
    }
    let mut longer = bytes.clone();
    longer.extend_from_slice(&[0u8; 32]);
    assert!(matches!(parse(&longer), Err(GgufError::DataSize { .. })));
    // Padding the last tensor to the alignment, as other writers do, is accepted.
    let mut padded = bytes.clone();
    padded.resize(bytes.len().div_ceil(32) * 32, 0);
    assert!(parse(&padded).is_ok());
}

#[test]
fn a_changed_byte_is_never_a_panic_and_in_the_data_always_a_checksum_error() {
    let bytes = file(&recurrent(GateKind::Lstm, StateLayout::Single), WeightDtype::Bf16);
    let placed = Placed::new(&bytes, 0);
    let data_offset = ModelFile::parse(placed.bytes()).unwrap().data_offset();
    for i in 0..bytes.len() {
        let mut broken = bytes.clone();
        broken[i] ^= 0x41;
        let result = parse(&broken);
        if i >= data_offset {
            assert!(matches!(result, Err(GgufError::Checksum { .. })), "byte {i}: {result:?}");
        }
    }
}

#[test]
fn misaligned_weights_are_refused_with_what_to_do() {
    let bytes = file(&Config::plain(19, 8, 2, 3, 12, 2, 4), WeightDtype::F32);
    for shift in 1..4 {
        let placed = Placed::new(&bytes, shift);
        let err = ModelFile::parse(placed.bytes()).unwrap_err();
        assert_eq!(err, GgufError::Misaligned { needed: 4 });
        assert!(err.to_string().contains("include_model"), "{err}");
    }
    // f16 needs two bytes.
    let bytes = file(&Config::plain(19, 8, 2, 3, 12, 2, 4), WeightDtype::F16);
    assert!(ModelFile::parse(Placed::new(&bytes, 2).bytes()).is_ok());
    assert_eq!(ModelFile::parse(Placed::new(&bytes, 1).bytes()).unwrap_err(), GgufError::Misaligned { needed: 2 });
}

/// The offset of the value of metadata `key` (after its type field).
fn value_at(bytes: &[u8], key: &str) -> usize {
    let mut pattern = (key.len() as u64).to_le_bytes().to_vec();
    pattern.extend_from_slice(key.as_bytes());
    let at = bytes.windows(pattern.len()).position(|w| w == pattern).unwrap();
    at + pattern.len() + 4
}

fn with_u32(bytes: &[u8], key: &str, value: u32) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let at = value_at(bytes, key);
    out[at..at + 4].copy_from_slice(&value.to_le_bytes());
    out
}

fn with_u64(bytes: &[u8], at: usize, value: u64) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[at..at + 8].copy_from_slice(&value.to_le_bytes());
    out
}

#[test]
fn lying_headers_and_metadata_are_named() {
    let config = recurrent(GateKind::Fixed, StateLayout::Skip);
    let bytes = file(&config, WeightDtype::F32);
    assert_eq!(parse(&bytes), Ok(config));

    let mut other = bytes.clone();
    other[..4].copy_from_slice(b"GGUG");
    assert_eq!(parse(&other), Err(GgufError::NotGguf));
    let mut v2 = bytes.clone();
    v2[4..8].copy_from_slice(&2u32.to_le_bytes());
    assert_eq!(parse(&v2), Err(GgufError::UnsupportedVersion { found: 2 }));
    // Counts larger than the file.
    assert!(matches!(parse(&with_u64(&bytes, 8, u64::MAX)), Err(GgufError::Malformed { .. })));
    assert!(matches!(parse(&with_u64(&bytes, 16, 1 << 40)), Err(GgufError::Malformed { .. })));
    // One tensor too many or too few.
    let tensors = u64::from_le_bytes(bytes[8..16].try_into().unwrap());
    assert!(matches!(parse(&with_u64(&bytes, 8, tensors + 1)), Err(GgufError::TensorCount { .. })));
    assert!(matches!(parse(&with_u64(&bytes, 8, tensors - 1)), Err(GgufError::TensorCount { .. })));
    // A string that claims more bytes than there are.
    let key_len_at = 24;
    assert!(matches!(parse(&with_u64(&bytes, key_len_at, 1 << 50)), Err(GgufError::Truncated { .. })));

    // Version 1 differs from 2 only in Q8_0 files.
    assert_eq!(parse(&with_u32(&bytes, keys::FORMAT_VERSION, 1)), parse(&bytes));
    for version in [0, 3] {
        assert_eq!(
            parse(&with_u32(&bytes, keys::FORMAT_VERSION, version)),
            Err(GgufError::UnsupportedFormatVersion { found: version })
        );
    }
    assert!(matches!(parse(&with_u32(&bytes, keys::DATA_CRC32, 7)), Err(GgufError::Checksum { stored: 7, .. })));
    assert_eq!(
        parse(&with_u32(&bytes, keys::ALIGNMENT, 24)),
        Err(GgufError::Metadata { key: keys::ALIGNMENT, problem: "not a power of two from 4 to 65536 bytes" })
    );
    // Another alignment than the tensors were written with puts them elsewhere.
    assert!(matches!(parse(&with_u32(&bytes, keys::ALIGNMENT, 64)), Err(GgufError::Tensor { .. })));
    // A configuration that needs other tensors, or is invalid.
    let at = value_at(&bytes, keys::D_MODEL);
    assert!(matches!(parse(&with_u64(&bytes, at, 9)), Err(GgufError::Tensor { .. })));
    assert!(matches!(parse(&with_u64(&bytes, at, 0)), Err(GgufError::Config(_))));
    let at = value_at(&bytes, keys::VOCAB);
    assert!(matches!(parse(&with_u64(&bytes, at, u64::MAX)), Err(GgufError::Config(_) | GgufError::Metadata { .. })));

    let mut arch = bytes.clone();
    let at = value_at(&bytes, keys::ARCHITECTURE) + 8;
    arch[at..at + 3].copy_from_slice(b"gpt");
    assert_eq!(parse(&arch), Err(GgufError::OtherArchitecture));

    let mut gate = bytes.clone();
    let at = value_at(&bytes, keys::GATE) + 8;
    gate[at..at + 5].copy_from_slice(b"fixxd");
    assert!(matches!(parse(&gate), Err(GgufError::Metadata { key: keys::GATE, .. })));

    // A key brt needs under another name: missing. The same key twice: refused.
    let mut missing = bytes.clone();
    let at = value_at(&bytes, keys::WINDOW) - 5;
    missing[at] = b'X';
    assert_eq!(parse(&missing), Err(GgufError::Metadata { key: keys::WINDOW, problem: "missing" }));
    // Two keys of equal length: the feed-forward width renamed to the (later)
    // absolute-scale flag makes that flag appear twice.
    assert_eq!(keys::MLP_HIDDEN.len(), keys::ABS_ATTENTION_SCALE.len());
    let mut twice = bytes.clone();
    let at = value_at(&bytes, keys::MLP_HIDDEN) - 4 - keys::MLP_HIDDEN.len();
    twice[at..at + keys::MLP_HIDDEN.len()].copy_from_slice(keys::ABS_ATTENTION_SCALE.as_bytes());
    assert_eq!(parse(&twice), Err(GgufError::Metadata { key: keys::ABS_ATTENTION_SCALE, problem: "appears twice" }));
}

#[test]
fn tensors_out_of_place_or_of_another_shape_or_type_are_named() {
    let config = recurrent(GateKind::Fixed, StateLayout::Skip);
    let bytes = file(&config, WeightDtype::F32);
    // The first tensor, `embed`, has 2 dimensions (cols, rows), type and offset.
    let name = (5u64).to_le_bytes().iter().copied().chain(*b"embed").collect::<Vec<u8>>();
    let at = bytes.windows(name.len()).position(|w| w == name).unwrap() + name.len();
    let dims_at = at + 4;
    let type_at = dims_at + 16;
    let offset_at = type_at + 4;
    assert!(matches!(parse(&with_u64(&bytes, dims_at, 9)), Err(GgufError::Tensor { index: 0, .. })));
    let mut ty = bytes.clone();
    ty[type_at..type_at + 4].copy_from_slice(&8u32.to_le_bytes());
    assert!(matches!(parse(&ty), Err(GgufError::Tensor { index: 0, .. })));
    assert!(matches!(parse(&with_u64(&bytes, offset_at, 32)), Err(GgufError::Tensor { index: 0, .. })));
    let mut dims = bytes.clone();
    dims[at..at + 4].copy_from_slice(&7u32.to_le_bytes());
    assert!(matches!(parse(&dims), Err(GgufError::Malformed { .. })));
    let mut renamed = bytes.clone();
    renamed[at - 1] = b'E';
    assert!(matches!(parse(&renamed), Err(GgufError::Tensor { index: 0, .. })));
}

#[test]
fn non_finite_weights_are_refused() {
    let config = Config::plain(19, 8, 2, 3, 12, 2, 4);
    let mut v = values(&config);
    let norm = WeightLayout::new(&config).unwrap().span(Param::FinalNorm).unwrap();
    v[norm.offset + 3] = f32::NAN;
    let bytes = brt_gguf::write(&config, None, WeightData::F32(&v)).unwrap();
    assert_eq!(parse(&bytes), Err(GgufError::NonFinite { index: 1, element: 3 }));
    v[norm.offset + 3] = f32::INFINITY;
    let h: Vec<f16> = v.iter().map(|&x| f16::from_f32(x)).collect();
    let bytes = brt_gguf::write(&config, None, WeightData::F16(&h)).unwrap();
    assert_eq!(parse(&bytes), Err(GgufError::NonFinite { index: 1, element: 3 }));
}

#[test]
fn the_writer_refuses_a_wrong_number_of_values() {
    let config = Config::plain(19, 8, 2, 3, 12, 2, 4);
    let v = vec![0f32; 10];
    assert!(brt_gguf::write(&config, None, WeightData::F32(&v)).is_err());
}
