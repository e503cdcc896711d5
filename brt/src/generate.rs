//! Writing text: incremental decoding (SPEC section 6). Tokens of an unfinished
//! block attend to the previous W tokens and to the state entering the block; when
//! a block completes its state update runs. The core's stream does exactly this
//! when fed one token at a time.

use crate::engine::{Engine, Session};
use crate::error::{Error, Result};
use crate::sample::Sampler;
use brt_core::Kernels;
use std::ops::ControlFlow;

/// Feeds `prompt` (which the sampler observes, as it does every token written,
/// for its penalties), then draws up to `max_tokens` tokens one at a time, calling
/// `on_token` with each as soon as it is chosen. Stops early at `stop` (which is
/// not fed), or after a token for which `on_token` says
/// [`ControlFlow::Break`] (its reader has gone; that token is kept and fed, so
/// the session has read the prompt and every token returned). Returns the
/// generated tokens.
pub fn generate<K: Kernels>(
    engine: &mut Engine<K>,
    session: &mut Session<K>,
    prompt: &[u32],
    max_tokens: usize,
    sampler: &mut Sampler,
    stop: Option<u32>,
    on_token: &mut dyn FnMut(u32) -> Result<ControlFlow<()>>,
) -> Result<Vec<u32>>
where
    Error: From<K::Error>,
{
    session.feed(engine, prompt)?;
    sampler.observe(prompt);
    let mut out = Vec::new();
    while out.len() < max_tokens {
        let logits = session.last_logits(0).ok_or_else(|| {
            Error::Invalid("nothing to continue: give a prompt (or resume a session that has read text)".into())
        })?;
        let token = sampler.sample(logits)?;
        if Some(token) == stop {
            break;
        }
        let flow = on_token(token)?;
        sampler.observe(&[token]);
        out.push(token);
        session.feed(engine, &[token])?;
        if flow.is_break() {
            break;
        }
    }
    Ok(out)
}
