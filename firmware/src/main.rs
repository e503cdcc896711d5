//! A trained tiny Block-Recurrent Transformer on a Cortex-M4F: QEMU's
//! `mps2-an386` board, the model file in flash, every other buffer in static RAM,
//! output over semihosting.
//!
//! The program feeds a fixed prompt one token per call, printing the logits after
//! each token (as f32 bit patterns, so the host can compare them exactly), then
//! writes [`GENERATE`] tokens greedily, and reports what it measured: SysTick
//! ticks per token (instruction counts when QEMU runs with `-icount shift=0`, see
//! [`Clock`]) and the deepest the stack went. `check.sh` compares everything
//! with the host's `brt logits` and `brt generate`. It exits QEMU with success,
//! or prints what went wrong and exits with failure.
#![no_std]
#![no_main]

use brt_capi::{Runner, Sizes};
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU32, Ordering};
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::{SCB, SYST};
use cortex_m_rt::{entry, exception};
use cortex_m_semihosting::debug;
use cortex_m_semihosting::hio::{self, HostStream};
// Prints a panic's message over semihosting and exits QEMU with a failure. brt
// returns errors and this program handles them all; a panic would be a bug.
use panic_semihosting as _;

/// The model file, `brt convert`'s GGUF, aligned to 32 bytes in flash (.rodata):
/// its weights are used where they lie, never copied to RAM.
static MODEL: &[u8] = brt_gguf::include_model!("../model/tiny.gguf");

/// Tokens per call: one, the smallest memory (the activations of one token).
/// It also gives the logits after every prompt token, which the host compares.
const TOKENS_PER_CALL: usize = 1;

/// The f32 pool, exactly the plan of the model in [`MODEL`] on this CPU
/// (`Sizes::for_model(MODEL, TOKENS_PER_CALL).f32s`). A static array needs its
/// length when compiling, and the plan depends on the target's SIMD level, so
/// the number is written here and the program checks it against the plan when
/// it starts: too small stops with the plan's number (see [`Failure::Pool`]),
/// and `check.sh` also refuses a pool larger than the plan, so the RAM figures
/// it reports are the model's.
const F32S: usize = 21_770;

/// The u32 pool: the token ids of one call.
const U32S: usize = TOKENS_PER_CALL;

/// The vocabulary of the model (the byte vocabulary of 260 ids), for the static
/// logits buffer; checked against the model when the program starts.
const VOCAB: usize = 260;

/// The fixed prompt. Bytes `b` are token ids `b + 3` (brt's byte vocabulary).
/// From *Hamlet*, one of the four plays held out of training.
const PROMPT: &[u8] = b"HAMLET.\nTo be, or not to be, that is the question.\n";

/// Tokens written greedily after the prompt (fewer if the model ends the text).
const GENERATE: usize = 64;

/// The byte vocabulary's special ids: 0 padding, 1 end of text, 2 unknown;
/// bytes follow.
const SPECIAL: u32 = 3;
/// The end-of-text id, at which generation stops (as `brt generate` does).
const EOS: u32 = 1;

/// Iterations of the calibration loop (two instructions each).
const CALIBRATION_ITERATIONS: u32 = 1_000_000;

/// The program's entry: takes the static pools, runs, and exits QEMU.
#[entry]
fn main() -> ! {
    // `#[entry]` turns these into `&'static mut` references, given out once:
    // zero-initialised, so they lie in .bss and take no flash.
    static mut F32_POOL: [f32; F32S] = [0.0; F32S];
    static mut U32_POOL: [u32; U32S] = [0; U32S];
    static mut LOGITS: [f32; VOCAB] = [0.0; VOCAB];

    // Before anything else runs deep: every later stack frame lies above this
    // one's, so the painted words below it show how deep the stack went.
    stack::paint();
    let status = match hio::hstdout() {
        Ok(host) => {
            let mut out = Out::new(host);
            let result = run(&mut out, F32_POOL, U32_POOL, LOGITS);
            let result = match result {
                Ok(()) => Ok(()),
                Err(failure) => {
                    // Best effort: if semihosting output itself failed there is
                    // nowhere to report it, and the exit status still says so.
                    let _ = writeln!(out, "firmware: error: {failure}");
                    Err(failure)
                }
            };
            let flushed = out.flush();
            if result.is_ok() && flushed.is_ok() {
                debug::EXIT_SUCCESS
            } else {
                debug::EXIT_FAILURE
            }
        }
        Err(()) => debug::EXIT_FAILURE,
    };
    debug::exit(status);
    // Without a debugger (on a board) semihosting returns: stop here.
    loop {
        cortex_m::asm::wfi();
    }
}

/// What stops the program.
#[derive(Debug)]
enum Failure {
    /// brt refused the model or a call.
    Brt(brt_capi::Error),
    /// A static pool is smaller than the plan of this model.
    Pool { what: &'static str, constant: &'static str, needed: usize, available: usize },
    /// The model's vocabulary is not what the logits buffer was built for.
    Vocab { model: usize, built: usize },
    /// The Cortex-M core peripherals were already taken (cannot happen: only
    /// `run` takes them, once).
    Peripherals,
    /// Writing to the host over semihosting failed.
    Output,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Brt(e) => write!(f, "brt: {e}"),
            Failure::Pool { what, constant, needed, available } => write!(
                f,
                "the static {what} pool holds {available} elements, the model's plan needs {needed}: \
                 set {constant} in firmware/src/main.rs to {needed}"
            ),
            Failure::Vocab { model, built } => write!(
                f,
                "the model's vocabulary is {model}, the firmware was built for {built}: set VOCAB in \
                 firmware/src/main.rs to {model}"
            ),
            Failure::Peripherals => f.write_str("the core peripherals were already taken"),
            Failure::Output => f.write_str("writing to the host over semihosting failed"),
        }
    }
}

impl From<brt_capi::Error> for Failure {
    fn from(e: brt_capi::Error) -> Failure {
        Failure::Brt(e)
    }
}

impl From<fmt::Error> for Failure {
    fn from(_: fmt::Error) -> Failure {
        Failure::Output
    }
}

/// Sizes the pools, opens the model, runs the prompt and the generation, and
/// prints everything `check.sh` reads.
fn run(
    out: &mut Out,
    f32s: &'static mut [f32; F32S],
    u32s: &'static mut [u32; U32S],
    logits: &'static mut [f32; VOCAB],
) -> Result<(), Failure> {
    let peripherals = cortex_m::Peripherals::take().ok_or(Failure::Peripherals)?;
    let clock = Clock::start(peripherals.SYST);

    // The plan of this model on this CPU, checked against the static pools.
    let sizes = Sizes::for_model(MODEL, TOKENS_PER_CALL)?;
    if sizes.f32s > F32S {
        return Err(Failure::Pool { what: "f32", constant: "F32S", needed: sizes.f32s, available: F32S });
    }
    if sizes.u32s > U32S {
        return Err(Failure::Pool { what: "u32", constant: "U32S", needed: sizes.u32s, available: U32S });
    }
    let mut runner = Runner::open(MODEL, f32s, u32s, TOKENS_PER_CALL)?;
    let vocab = runner.vocab();
    if vocab != VOCAB {
        return Err(Failure::Vocab { model: vocab, built: VOCAB });
    }

    let c = runner.config();
    writeln!(
        out,
        "brt firmware: Cortex-M4F, {} SIMD level; model file {} bytes at {:#010x}: vocabulary {}, width {}, {} layers, \
         window {}, {} states",
        runner.simd_level(),
        MODEL.len(),
        MODEL.as_ptr() as usize,
        c.vocab,
        c.d_model,
        c.layers,
        c.window,
        c.states
    )?;
    writeln!(
        out,
        "plan: {} f32 + {} u32 for {} token per call; pools: {} f32 + {} u32; logits: {} f32",
        sizes.f32s, sizes.u32s, TOKENS_PER_CALL, F32S, U32S, VOCAB
    )?;

    // What one tick is: a loop of known length (two instructions per iteration).
    let start = clock.now();
    spin(CALIBRATION_ITERATIONS);
    let calibration = clock.now() - start;
    writeln!(out, "calibration: {} instructions in {} ticks", 2 * u64::from(CALIBRATION_ITERATIONS), calibration)?;

    // The prompt, one token per call, with the logits after each token.
    out.write_str("prompt:")?;
    for &byte in PROMPT {
        write!(out, " {}", u32::from(byte) + SPECIAL)?;
    }
    out.write_str("\n")?;
    let mut prompt_ticks = [0u64; PROMPT.len()];
    for (position, &byte) in PROMPT.iter().enumerate() {
        let start = clock.now();
        runner.feed(&[u32::from(byte) + SPECIAL])?;
        runner.logits(logits)?;
        prompt_ticks[position] = clock.now() - start;
        write!(out, "logits {position}:")?;
        for value in logits.iter() {
            write!(out, " {:08x}", value.to_bits())?;
        }
        out.write_str("\n")?;
    }

    // Greedy generation: the most likely token each time, as `brt generate
    // --temperature 0` chooses it; each token is fed back.
    let mut generated = [0u32; GENERATE];
    let mut count = 0;
    let mut generate_ticks = [0u64; GENERATE];
    // The smallest lead of the chosen token over the next best: how far the
    // host's rounding could move before it chose another token.
    let mut smallest_lead = f32::INFINITY;
    out.write_str("text:\n")?;
    while count < GENERATE {
        let start = clock.now();
        let (token, lead) = greedy(logits);
        if token == EOS {
            break;
        }
        runner.feed(&[token])?;
        runner.logits(logits)?;
        generate_ticks[count] = clock.now() - start;
        generated[count] = token;
        count += 1;
        smallest_lead = smallest_lead.min(lead);
        if let Some(byte) = token.checked_sub(SPECIAL).and_then(|b| u8::try_from(b).ok()) {
            out.write_bytes(&[byte])?;
        }
    }
    out.write_str("\n")?;
    out.write_str("generated:")?;
    for token in &generated[..count] {
        write!(out, " {token}")?;
    }
    out.write_str("\n")?;
    writeln!(out, "smallest greedy lead: {smallest_lead:e}")?;
    // Each token's ticks (feeding it and copying its logits; a generated token's
    // also choosing it), in order: `check.sh` turns them into instructions.
    out.write_str("ticks prompt:")?;
    for ticks in prompt_ticks {
        write!(out, " {ticks}")?;
    }
    out.write_str("\nticks generated:")?;
    for ticks in &generate_ticks[..count] {
        write!(out, " {ticks}")?;
    }
    out.write_str("\n")?;
    writeln!(out, "stack: {} bytes at most of {} available", stack::peak(), stack::available())?;
    Ok(())
}

/// The most likely token (the first of equals, as the host's greedy sampler)
/// and its lead over the next best.
fn greedy(logits: &[f32]) -> (u32, f32) {
    let mut best = 0;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] {
            best = i;
        }
    }
    let runner_up =
        logits.iter().enumerate().filter(|&(i, _)| i != best).map(|(_, &v)| v).fold(f32::NEG_INFINITY, f32::max);
    // Ids are below the vocabulary (260), far below u32::MAX.
    (best as u32, logits[best] - runner_up)
}

/// Counts down `iterations` times: `subs` and `bne`, two instructions each.
#[inline(never)]
fn spin(iterations: u32) {
    // SAFETY: the loop only decrements a scratch register to zero and branches;
    // it reads and writes no memory and no other register, and sets only the
    // flags (not preserved across `asm!` without `preserves_flags`).
    unsafe {
        core::arch::asm!(
            "2:",
            "subs {n}, {n}, #1",
            "bne 2b",
            n = inout(reg) iterations.max(1) => _,
            options(nomem, nostack),
        );
    }
}

/// SysTick reload value: the 24-bit counter's largest.
const RELOAD: u32 = 0x00FF_FFFF;

/// SysTick periods completed (counted by its exception).
static WRAPS: AtomicU32 = AtomicU32::new(0);

/// A 64-bit tick counter from SysTick on the core clock, extended by counting
/// its wraps.
///
/// QEMU's mps2 boards clock the core at 25 MHz: one tick is 40 ns of the
/// emulated machine's time. With `-icount shift=0` QEMU advances that time by
/// exactly 1 ns per instruction executed, so a tick is 40 instructions, and tick
/// counts are instruction counts (not cycles: QEMU does not model the M4's
/// pipeline, wait states or multi-cycle instructions). The calibration loop
/// printed at the start measures the ratio. Without `-icount` ticks follow the
/// host's clock and mean little.
struct Clock {
    _syst: SYST,
}

impl Clock {
    fn start(mut syst: SYST) -> Clock {
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(RELOAD);
        syst.clear_current();
        syst.enable_interrupt();
        syst.enable_counter();
        Clock { _syst: syst }
    }

    /// Ticks since [`Clock::start`].
    fn now(&self) -> u64 {
        cortex_m::interrupt::free(|_| {
            let mut wraps = WRAPS.load(Ordering::Relaxed);
            let mut value = SYST::get_current();
            // A wrap whose exception waits (interrupts are masked here): it
            // happened before or after the read above, so count it and read again.
            if SCB::is_pendst_pending() {
                wraps += 1;
                value = SYST::get_current();
            }
            u64::from(wraps) * (u64::from(RELOAD) + 1) + u64::from(RELOAD - value)
        })
    }
}

/// A fault (a bug: a bad address, an undefined instruction) stops the program
/// with a message and a failure status rather than the default endless loop,
/// so a run under QEMU ends.
#[exception]
unsafe fn HardFault(frame: &cortex_m_rt::ExceptionFrame) -> ! {
    if let Ok(mut host) = hio::hstdout() {
        // Best effort: the program is stopping either way.
        let _ = writeln!(host, "firmware: error: hard fault at pc {:#010x}", frame.pc());
    }
    debug::exit(debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::wfi();
    }
}

/// Counts SysTick's wraps for [`Clock::now`].
#[exception]
fn SysTick() {
    WRAPS.fetch_add(1, Ordering::Relaxed);
}

/// Output to the host's standard output over semihosting, in pieces of up to
/// [`Out::CAPACITY`] bytes (each semihosting call stops the emulated CPU, so a
/// line of logits is a few calls, not one per number).
struct Out {
    host: HostStream,
    buf: [u8; Out::CAPACITY],
    len: usize,
}

impl Out {
    const CAPACITY: usize = 256;

    fn new(host: HostStream) -> Out {
        Out { host, buf: [0; Out::CAPACITY], len: 0 }
    }

    fn write_bytes(&mut self, mut bytes: &[u8]) -> fmt::Result {
        while !bytes.is_empty() {
            if self.len == Out::CAPACITY {
                self.flush()?;
            }
            let n = bytes.len().min(Out::CAPACITY - self.len);
            self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
            self.len += n;
            bytes = &bytes[n..];
        }
        Ok(())
    }

    fn flush(&mut self) -> fmt::Result {
        let pending = &self.buf[..self.len];
        self.len = 0;
        self.host.write_all(pending).map_err(|()| fmt::Error)
    }
}

impl Write for Out {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.write_bytes(s.as_bytes())
    }
}

/// The stack's deepest point, by painting: the free RAM between the statics and
/// the stack is filled with a pattern at start, and at the end the lowest word
/// no longer holding it is as deep as the stack has been (exception frames
/// included). cortex-m-rt starts the stack at the top of RAM (`_stack_start`)
/// and it grows down towards the end of the statics (`_stack_end`).
mod stack {
    use core::ptr::{addr_of, read_volatile, write_volatile};

    /// The pattern painted; a stack word holding exactly it by chance would
    /// make the figure a word too small, at most.
    const PAINT: u32 = 0xC0DE_5EED;

    extern "C" {
        /// Top of the stack (cortex-m-rt's linker script: the end of RAM).
        static _stack_start: u32;
        /// Lowest address the stack may reach (the end of the statics).
        static _stack_end: u32;
    }

    fn bounds() -> (usize, usize) {
        // Only the symbols' addresses are taken (safe); nothing is read there.
        (addr_of!(_stack_end) as usize, addr_of!(_stack_start) as usize)
    }

    /// Bytes left unpainted below the stack pointer read in [`paint`]: the
    /// compiler may read it before `paint`'s own prologue pushes registers
    /// below it (it does), so the words just below stay as they are. The stack
    /// goes far deeper than this later, so [`peak`] is not affected.
    const MARGIN: usize = 256;

    /// Paints from the end of the statics up to [`MARGIN`] below the stack pointer.
    #[inline(never)]
    pub fn paint() {
        let (bottom, _) = bounds();
        let limit = (cortex_m::register::msp::read() as usize).saturating_sub(MARGIN);
        let mut addr = bottom;
        while addr + 4 <= limit {
            // SAFETY: [bottom, limit) lies between the end of the statics and
            // well below the stack pointer of this, the deepest frame so far
            // (interrupts are not enabled yet, so no exception frame can be
            // pushed there): no object lives there, and the address is 4-byte
            // aligned (the linker script asserts `_stack_end % 4 == 0`).
            unsafe { write_volatile(addr as *mut u32, PAINT) };
            addr += 4;
        }
    }

    /// Bytes of stack used at most since [`paint`].
    pub fn peak() -> usize {
        let (bottom, top) = bounds();
        let mut addr = bottom;
        // SAFETY: as in `paint`, [bottom, top) is RAM, aligned; reading words
        // the stack may own is harmless (volatile, no reference is made).
        while addr < top && unsafe { read_volatile(addr as *const u32) } == PAINT {
            addr += 4;
        }
        top - addr
    }

    /// Bytes between the end of the statics and the top of RAM.
    pub fn available() -> usize {
        let (bottom, top) = bounds();
        top - bottom
    }
}
