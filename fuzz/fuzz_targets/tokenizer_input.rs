//! Tokenizer inputs: the text `brt eval` and `brt generate` read, through the
//! `bytes` and `ids` encoders, cut into pieces at fuzzer-chosen places (as file
//! reads cut it); with the `hf` feature also tokenizer.json files.
//!
//! Layout: byte 0 picks the tokenizer (`% 3`: bytes, ids, tokenizer.json), byte 1
//! is the number of cuts `n % 8`, the next `n` bytes place them; the rest is the
//! text (for tokenizer.json: the file, then after a 0x00 byte a text to encode).
//! Pieces must give exactly the ids of the whole text (or both fail), and the
//! byte tokenizer must decode what it encoded.
#![no_main]

use brt::tokenizer::Tokenizer;
use libfuzzer_sys::fuzz_target;

fn pieces_agree(tokenizer: &Tokenizer, text: &[u8], cuts: &[u8]) {
    let whole = tokenizer.encode(text);
    let mut points: Vec<usize> = cuts.iter().map(|&c| c as usize * text.len() / 256).collect();
    points.sort_unstable();
    let mut encoder = tokenizer.encoder();
    let mut ids = Vec::new();
    let mut start = 0;
    let mut failed = false;
    for end in points.into_iter().chain([text.len()]) {
        match encoder.push(&text[start..end]) {
            Ok(more) => ids.extend(more),
            Err(_) => {
                failed = true;
                break;
            }
        }
        start = end;
    }
    if !failed {
        match encoder.finish() {
            Ok(more) => ids.extend(more),
            Err(_) => failed = true,
        }
    }
    match whole {
        Ok(whole) => {
            assert!(!failed, "{}: pieces failed where the whole text encodes", tokenizer.name());
            assert_eq!(ids, whole, "{}: pieces differ from the whole", tokenizer.name());
        }
        Err(_) => assert!(failed, "{}: pieces encode where the whole text fails", tokenizer.name()),
    }
}

fuzz_target!(|data: &[u8]| {
    let [kind, count, rest @ ..] = data else { return };
    let cuts = &rest[..(*count as usize % 8).min(rest.len())];
    let text = &rest[cuts.len()..];
    match kind % 3 {
        0 => {
            pieces_agree(&Tokenizer::Bytes, text, cuts);
            let ids = Tokenizer::Bytes.encode(text).expect("any bytes encode");
            assert_eq!(Tokenizer::Bytes.decode(&ids).expect("byte ids decode"), text);
        }
        1 => {
            pieces_agree(&Tokenizer::Ids, text, cuts);
            if let Ok(ids) = Tokenizer::Ids.encode(text) {
                let written = Tokenizer::Ids.decode(&ids).expect("ids decode");
                assert_eq!(Tokenizer::Ids.encode(&written).expect("written ids encode"), ids);
            }
        }
        _ => hf(text, cuts),
    }
});

/// Writes the file part to a temporary file, reads it as a tokenizer.json (as
/// `--tokenizer PATH` does) and encodes the text part with it.
#[cfg(feature = "hf")]
fn hf(data: &[u8], cuts: &[u8]) {
    use std::io::Write;
    let (json, text) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &b"Hello, world!\nA second line."[..]),
    };
    let path = std::env::temp_dir().join(format!("brt-fuzz-tokenizer-{}.json", std::process::id()));
    let written = std::fs::File::create(&path).and_then(|mut f| f.write_all(json));
    if written.is_err() {
        return;
    }
    let Some(spec) = path.to_str() else { return };
    if let Ok(tokenizer) = Tokenizer::from_spec(spec) {
        pieces_agree_hf(&tokenizer, text, cuts);
        if let Ok(ids) = tokenizer.encode(text) {
            let _ = tokenizer.decode(&ids);
        }
    }
}

/// Hugging Face pieces break only at line ends, so whole and pieces may differ
/// only in where a long line was cut; here only the absence of panics counts.
#[cfg(feature = "hf")]
fn pieces_agree_hf(tokenizer: &Tokenizer, text: &[u8], cuts: &[u8]) {
    let mut encoder = tokenizer.encoder();
    let mut start = 0;
    for &c in cuts {
        let end = (c as usize * text.len() / 256).max(start);
        if encoder.push(&text[start..end]).is_err() {
            return;
        }
        start = end;
    }
    let _ = encoder.push(&text[start..]);
    let _ = encoder.finish();
}

#[cfg(not(feature = "hf"))]
fn hf(_: &[u8], _: &[u8]) {}
