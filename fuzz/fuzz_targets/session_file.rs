//! Session files (`brt generate --resume`): `brt::Session::from_bytes` against a
//! fixed small model (`brt_fuzz::session_model`).
//!
//! First byte: bit 0 framing (see `brt_fuzz::safetensors_file`), bits 1-3 the
//! chunk (1-8). A session that restores must save and restore again to the same
//! position and logits, and accept more tokens.
#![no_main]

use brt::{Engine, Session};
use brt_core::Reference;
use brt_cpu::Heap;
use libfuzzer_sys::fuzz_target;
use std::cell::RefCell;

thread_local! {
    static ENGINE: RefCell<Engine<Reference<Heap>>> = RefCell::new(
        Engine::new(Reference::new(Heap), &brt_fuzz::session_model()).expect("the fuzzing model loads"),
    );
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else { return };
    let file = brt_fuzz::safetensors_file(first & 1 == 1, rest);
    let chunk = ((first >> 1) & 7) as usize + 1;
    ENGINE.with(|engine| {
        let engine = &mut *engine.borrow_mut();
        let Ok(mut session) = Session::from_bytes(engine, &file, chunk) else { return };
        let saved = session.to_bytes(engine).expect("a restored session can be saved");
        let again = Session::from_bytes(engine, &saved, chunk).expect("a saved session restores");
        assert_eq!(again.batch(), session.batch());
        assert_eq!(again.tokens_seen(), session.tokens_seen());
        assert_eq!(again.position_in_block(), session.position_in_block());
        for row in 0..session.batch() {
            let (a, b) = (again.last_logits(row), session.last_logits(row));
            assert_eq!(
                a.map(|l| l.iter().map(|v| v.to_bits()).collect::<Vec<_>>()),
                b.map(|l| l.iter().map(|v| v.to_bits()).collect())
            );
        }
        // Continue every row by two tokens: the restored state must be usable.
        // Extreme (but finite) saved values may give non-finite logits; that is
        // reported by the sampler, not here.
        let batch = session.batch();
        if batch <= 64 {
            let tokens = [3u32, 5];
            let rows: Vec<&[u32]> = (0..batch).map(|_| &tokens[..]).collect();
            session.feed_rows(engine, &rows, &[], None).expect("a restored session takes more tokens");
        }
    });
});
