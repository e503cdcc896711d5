//! Official Meliad checkpoints (flax msgpack): `brt::meliad::import`.
//!
//! Whatever the bytes, import returns a model or an error; never a panic, a hang
//! or an allocation beyond the file's size. An imported model must survive the
//! trip through brt's own format unchanged.
#![no_main]

use brt::meliad::{import, ImportOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut result = import(data, ImportOptions::default());
    if matches!(&result, Err(e) if e.contains("give the window explicitly")) {
        // Also reach the code behind the window inference, as `--window` does.
        result = import(data, ImportOptions { window: Some(4), abs_attention_scale: true });
    }
    if let Ok(weights) = result {
        let bytes = brt::format::to_bytes(&weights).expect("an imported model can be written");
        let again = brt::format::from_bytes(&bytes).expect("written weights can be read");
        assert_eq!(again, weights, "the weights changed on the way through brt's format");
    }
});
