//! Puts `memory.x` where cortex-m-rt's linker script finds it, links with that
//! script, and writes a linker map next to the firmware.

use std::error::Error;
use std::path::PathBuf;
use std::{env, fs};

fn main() -> Result<(), Box<dyn Error>> {
    let out = PathBuf::from(env::var_os("OUT_DIR").ok_or("cargo did not set OUT_DIR")?);
    fs::copy("memory.x", out.join("memory.x")).map_err(|e| format!("copying memory.x into {}: {e}", out.display()))?;
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-changed=build.rs");
    // cortex-m-rt's script (it includes memory.x).
    println!("cargo:rustc-link-arg-bins=-Tlink.x");
    // OUT_DIR is `<target>/<triple>/<profile>/build/<package>-<hash>/out`: the map
    // goes three folders up, beside the ELF, where check.sh reads it.
    let profile_dir = out.ancestors().nth(3).ok_or("OUT_DIR is not inside a cargo target folder")?;
    println!("cargo:rustc-link-arg-bins=-Map={}", profile_dir.join("brt-firmware.map").display());
    Ok(())
}
