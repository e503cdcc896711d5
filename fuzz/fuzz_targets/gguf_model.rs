//! brt model files (GGUF): `brt_gguf::ModelFile::parse`, the no_std reader that
//! firmware and `brt info/eval/generate/logits/convert` use.
//!
//! First byte: bit 0 set means "fix the checksum": when the only fault is the
//! data's CRC-32, the harness writes the right one into `brt.data_crc32` and reads
//! again, so the fuzzer reaches the checks past it. The rest is the file, placed
//! at an aligned address as flash or a mapping would hold it.
//!
//! A file that reads must hand out every parameter (a Q8_0 one through its
//! decoder), and survive a write of its values (in its own storage type) and a
//! read unchanged.
#![no_main]

use brt_core::{WeightData, WeightLayout};
use brt_gguf::{GgufError, ModelFile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, file)) = data.split_first() else { return };
    let mut words = vec![0u64; file.len().div_ceil(8)];
    bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..file.len()].copy_from_slice(file);
    let mut result = ModelFile::parse(&bytemuck::cast_slice(&words)[..file.len()]).map(|f| *f.config());
    if let (Err(GgufError::Checksum { computed, .. }), true) = (result, first & 1 == 1) {
        let bytes = bytemuck::cast_slice_mut::<u64, u8>(&mut words);
        brt_fuzz::set_gguf_u32(&mut bytes[..file.len()], brt_gguf::keys::DATA_CRC32, computed);
        result = ModelFile::parse(&bytemuck::cast_slice(&words)[..file.len()]).map(|f| *f.config());
    }
    if result.is_err() {
        return;
    }
    let parsed = ModelFile::parse(&bytemuck::cast_slice(&words)[..file.len()]).expect("read twice, same answer");
    let canonical = WeightLayout::new(parsed.config()).expect("a read configuration has a layout");
    let values = decoded(&parsed, &canonical);
    let (config, name, dtype) = (*parsed.config(), parsed.name(), parsed.dtype());
    let written = rewrite(&config, name, &values, dtype, &canonical);
    if dtype == brt_core::WeightDtype::Q8_0 {
        // A block need not hold a quant of 127, which quantizing its values
        // again gives: the first write may change them, a second must not.
        let again = rewrite(&config, name, &written, dtype, &canonical);
        assert!(again == written, "Q8_0 values changed on a second write and read");
    } else {
        assert!(written == values, "values changed on a write and read");
    }
});

/// `values` written as a model file of `dtype`, read back (same configuration,
/// name and type) and decoded.
fn rewrite(
    config: &brt_core::Config,
    name: Option<&str>,
    values: &[f32],
    dtype: brt_core::WeightDtype,
    canonical: &WeightLayout,
) -> Vec<f32> {
    let bytes = brt_gguf::write_as(config, name, WeightData::F32(values), dtype).expect("writable");
    let mut words = vec![0u64; bytes.len().div_ceil(8)];
    bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..bytes.len()].copy_from_slice(&bytes);
    let reread = ModelFile::parse(&bytemuck::cast_slice(&words)[..bytes.len()]).expect("written files read");
    assert_eq!((reread.config(), reread.name(), reread.dtype()), (config, name, dtype));
    decoded(&reread, canonical)
}

/// Every value of the file in the canonical layout, as f32: read in place for a
/// model of one type (which must agree with the decoder), decoded for Q8_0.
fn decoded(file: &ModelFile<'_>, canonical: &WeightLayout) -> Vec<f32> {
    let mut values = vec![0f32; canonical.len()];
    file.byte_layout().decode(file.weight_bytes(), &mut values).expect("a read file decodes");
    match file.weights() {
        Some(all) => assert_eq!(all.len(), file.layout().len()),
        None => assert_eq!(file.dtype(), brt_core::WeightDtype::Q8_0),
    }
    for spec in canonical.params() {
        let (tensor, bytes) = file.tensor(spec.param).expect("every parameter is in the file");
        assert_eq!(Some(bytes.len()), tensor.ty.bytes(spec.span.len()), "{} has its size", spec.param);
        if let Some(param) = file.param(spec.param) {
            assert_eq!(param.len(), spec.span.len(), "{} has its shape", spec.param);
            let range = spec.offset..spec.offset + spec.span.len();
            assert!(values[range].iter().enumerate().all(|(i, &v)| param.get(i) == Some(v)), "{}", spec.param);
        }
    }
    values
}
