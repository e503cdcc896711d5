//! The C header is what cbindgen generates from `src/c.rs` with `cbindgen.toml`:
//! a header that drifts from the Rust side fails here. `BRT_BLESS=1` rewrites it.

use std::path::Path;

#[test]
fn the_committed_header_is_what_cbindgen_generates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).unwrap();
    let bindings = cbindgen::Builder::new().with_config(config).with_src(dir.join("src/c.rs")).generate().unwrap();
    let mut generated = Vec::new();
    bindings.write(&mut generated);
    let path = dir.join("include/brt.h");
    if std::env::var_os("BRT_BLESS").is_some() {
        // Written beside and renamed, so the other test never reads half a header.
        let tmp = path.with_extension("h.tmp");
        std::fs::write(&tmp, &generated).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is not what cbindgen generates from src/c.rs; run `BRT_BLESS=1 cargo test -p brt-capi --test header`:\n{}",
        path.display(),
        String::from_utf8_lossy(&generated)
    );
}

#[test]
fn the_header_names_every_error_code_with_its_number() {
    let header = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("include/brt.h")).unwrap();
    for code in 0..=brt_capi::Error::MAX_CODE {
        let name = brt_capi::code_name(code).unwrap();
        assert!(header.contains(&format!("#define {name} {code}\n")), "{name} = {code} is not in the header");
    }
}
