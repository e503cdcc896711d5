//! brt model files (GGUF): `brt_gguf::ModelFile::parse`, the no_std reader that
//! firmware and `brt info/eval/generate/logits/convert` use.
//!
//! First byte: bit 0 set means "fix the checksum": when the only fault is the
//! data's CRC-32, the harness writes the right one into `brt.data_crc32` and reads
//! again, so the fuzzer reaches the checks past it. The rest is the file, placed
//! at an aligned address as flash or a mapping would hold it.
//!
//! A file that reads must hand out every parameter, and survive a write of its
//! values and a read unchanged.
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
    assert_eq!(parsed.weights().len(), parsed.layout().len());
    let canonical = WeightLayout::new(parsed.config()).expect("a read configuration has a layout");
    let mut values = Vec::with_capacity(canonical.len());
    for spec in canonical.params() {
        let param = parsed.param(spec.param).expect("every parameter is in the file");
        assert_eq!(param.len(), spec.span.len(), "{} has its shape", spec.param);
        values.extend((0..param.len()).map(|i| param.get(i).expect("in range")));
    }
    let again = brt_gguf::write(parsed.config(), parsed.name(), WeightData::F32(&values)).expect("writable");
    let mut words = vec![0u64; again.len().div_ceil(8)];
    bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..again.len()].copy_from_slice(&again);
    let reread = ModelFile::parse(&bytemuck::cast_slice(&words)[..again.len()]).expect("written files read");
    assert_eq!(reread.config(), parsed.config());
    assert_eq!(reread.name(), parsed.name());
    for spec in canonical.params() {
        let (a, b) = (reread.param(spec.param).unwrap(), parsed.param(spec.param).unwrap());
        assert!((0..a.len()).all(|i| a.get(i) == b.get(i)), "{} changed on a write and read", spec.param);
    }
});
