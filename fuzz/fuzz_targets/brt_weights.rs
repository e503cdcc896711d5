//! brt weight files (safetensors + configuration JSON in the metadata):
//! `brt::format::from_bytes`, the reader behind `brt info/convert/logits/...`.
//!
//! First byte: framing (see `brt_fuzz::safetensors_file`). A file that reads
//! must read back identically after being written again.
#![no_main]

use brt::model_file::{detect, ModelFormat};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else { return };
    let file = brt_fuzz::safetensors_file(first & 1 == 1, rest);
    if let Ok(weights) = brt::format::from_bytes(&file) {
        assert_eq!(detect(&file), Some(ModelFormat::Brt), "a readable weight file is detected as one");
        let bytes = brt::format::to_bytes(&weights).expect("weights that were read can be written");
        let again = brt::format::from_bytes(&bytes).expect("written weights can be read");
        assert_eq!(again, weights, "the weights changed on a write and read");
    }
});
