//! Configuration and flag values: what the library checks on behalf of the
//! command line. The clap parser itself lives in the `brt` binary and cannot be
//! called from here (see fuzz/README.md).
//!
//! Byte 0 picks (`% 3`):
//! - 0: the rest as configuration JSON (`ConfigFile::parse`, the `config`
//!   metadata of weight and session files); an accepted configuration must be
//!   valid and survive `to_json` and `parse` unchanged;
//! - 1: the rest as a `--backend` name;
//! - 2: sampling flags `--temperature` (f32), `--top-p` (f32), `--top-k` (u32),
//!   `--seed` (u64), then logits (f32 each) to sample from.
#![no_main]

use brt::config_file::ConfigFile;
use brt::sample::{Sampler, SamplingOptions};
use brt::BackendKind;
use libfuzzer_sys::fuzz_target;

fn f32_at(bytes: &[u8], at: usize) -> f32 {
    let mut b = [0u8; 4];
    for (o, i) in b.iter_mut().zip(at..) {
        *o = bytes.get(i).copied().unwrap_or(0);
    }
    f32::from_le_bytes(b)
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else { return };
    match kind % 3 {
        0 => {
            let Ok(json) = std::str::from_utf8(rest) else { return };
            if let Ok(config) = ConfigFile::parse(json) {
                config.validate().expect("an accepted configuration is valid");
                brt_core::WeightLayout::new(&config).expect("an accepted configuration has a layout");
                let again = ConfigFile::parse(&ConfigFile::to_json(&config)).expect("written configuration parses");
                assert_eq!(again, config);
            }
        }
        1 => {
            let Ok(name) = std::str::from_utf8(rest) else { return };
            if let Ok(kind) = name.parse::<BackendKind>() {
                assert_eq!(kind.name(), name);
            }
        }
        _ => {
            let options = SamplingOptions {
                temperature: f32_at(rest, 0),
                top_p: f32_at(rest, 4),
                top_k: f32_at(rest, 8).to_bits() as usize,
                seed: u64::from(f32_at(rest, 12).to_bits()),
                // The penalties and min-p from the first logits' bytes, when
                // they make valid settings (else the defaults).
                ..SamplingOptions::default()
            };
            let Ok(mut sampler) = Sampler::new(options) else { return };
            let logits: Vec<f32> = rest.get(16..).unwrap_or(&[]).chunks(4).map(|c| f32_at(c, 0)).collect();
            let tuned = SamplingOptions {
                min_p: f32_at(rest, 16),
                repetition_penalty: f32_at(rest, 20),
                presence_penalty: f32_at(rest, 24),
                ..options
            };
            if let Ok(tuned) = Sampler::new(tuned) {
                sampler = tuned;
            }
            // Any ids, seen or not, in range or not.
            sampler.observe(&logits.iter().map(|v| v.to_bits()).collect::<Vec<u32>>());
            if let Ok(token) = sampler.sample(&logits) {
                assert!((token as usize) < logits.len(), "sampled token {token} of {} logits", logits.len());
            }
        }
    }
});
