//! Generation with the library: continue a prompt, printing bytes as they come,
//! then save the session so the text can be continued later.
//!
//! ```sh
//! cargo run --release -p brt --example generate -- MODEL "Once upon a time"
//! ```

use brt::generate::generate;
use brt::sample::{Sampler, SamplingOptions};
use brt::tokenizer::{bytes, Tokenizer};
use brt::{load_model, Engine};
use brt_cpu::{Cpu, Heap};
use std::io::Write;
use std::ops::ControlFlow;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, prompt] = args.as_slice() else {
        eprintln!("usage: generate MODEL PROMPT");
        std::process::exit(2);
    };
    let weights = load_model(model.as_ref(), Default::default())?;
    let mut engine = Engine::new(Cpu::new(Heap)?, &weights)?;
    let mut session = engine.session(1, 256)?;
    let prompt = Tokenizer::Bytes.encode(prompt.as_bytes())?;
    let mut sampler = Sampler::new(SamplingOptions { temperature: 0.8, top_p: 0.95, seed: 1, ..Default::default() })?;
    let mut out = std::io::stdout();
    let mut print = |token: u32| {
        let text = Tokenizer::Bytes.decode(&[token])?;
        out.write_all(&text).and_then(|()| out.flush()).map_err(|e| brt::Error::io("stdout", e))?;
        Ok(ControlFlow::Continue(()))
    };
    generate(&mut engine, &mut session, &prompt, 200, &mut sampler, Some(bytes::EOS), &mut print)?;
    println!();
    // The whole document so far (every layer's cache, every state) in one file.
    session.save(&mut engine, "generate.session".as_ref())?;
    Ok(())
}
