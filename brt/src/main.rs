//! The `brt` program: convert and inspect models, compute logits.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::main()
}
