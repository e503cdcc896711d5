//! Token input files (`brt logits --input`): `brt::logits::tokens_from_bytes`.
//!
//! First byte: framing (see `brt_fuzz::safetensors_file`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else { return };
    let file = brt_fuzz::safetensors_file(first & 1 == 1, rest);
    if let Ok(tokens) = brt::logits::tokens_from_bytes(&file) {
        assert!(tokens.batch() > 0 && tokens.len() > 0, "an accepted token file is not empty");
        // Every position can be read and checked against a vocabulary.
        let _ = tokens.get(tokens.batch() - 1, tokens.len() - 1);
        let _ = tokens.check_vocab(260);
    }
});
