//! Streaming evaluation with the library: read a file as one document, block by
//! block, in constant memory, and print bits per byte.
//!
//! ```sh
//! cargo run --release -p brt --example stream_eval -- MODEL FILE
//! ```

use brt::backend::BackendOptions;
use brt::eval::score_file;
use brt::tokenizer::Tokenizer;
use brt::{load_model, Engine};
use brt_cpu::{Cpu, Heap, Options};
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args_os().skip(1).map(PathBuf::from);
    let (Some(model), Some(file)) = (args.next(), args.next()) else {
        eprintln!("usage: stream_eval MODEL FILE");
        std::process::exit(2);
    };
    let weights = load_model(&model, Default::default())?;
    let threads = BackendOptions::for_config(weights.config(), 0).thread_count();
    let kernels = Cpu::with_options(Heap, Options { threads, ..Options::default() })?;
    let mut engine = Engine::new(kernels, &weights)?;
    // One document, fed 512 tokens per call; the KV caches and the recurrent
    // state carry everything else, so memory does not grow with the file.
    let mut session = engine.session(1, 512)?;
    let score = score_file(&mut engine, &mut session, &Tokenizer::Bytes, &file, None, &[], &mut |_| {})?;
    println!("{}: {} bytes, {:.4} bits per byte", file.display(), score.bytes, score.bits_per_byte(true));
    Ok(())
}
