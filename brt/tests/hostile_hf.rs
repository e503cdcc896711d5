//! Hostile tokenizer.json files (with the `hf` feature): malformed or cut short
//! at any byte, they give an error, never a panic (the `tokenizers` crate panics
//! on a syntax error inside `decoder`; brt checks the JSON first).
#![cfg(feature = "hf")]

mod common;

use brt::tokenizer::Tokenizer;
use common::*;
use std::ffi::OsStr;

/// A byte-level BPE tokenizer.json with a decoder.
const BPE: &str = r#"{"version":"1.0","truncation":null,"padding":null,"added_tokens":[],"normalizer":null,"pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true},"post_processor":null,"decoder":{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":true,"use_regex":true},"model":{"type":"BPE","dropout":null,"unk_token":null,"continuing_subword_prefix":null,"end_of_word_suffix":null,"fuse_unk":false,"byte_fallback":false,"ignore_merges":false,"vocab":{"a":0,"b":1,"c":2,"Ġ":3,"ab":4,"abc":5},"merges":["a b","ab c"]}}"#;

#[test]
fn tokenizer_json_cut_at_every_byte_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokenizer.json");
    std::fs::write(&path, BPE).unwrap();
    let whole = Tokenizer::from_spec(path.to_str().unwrap()).unwrap();
    assert_eq!(whole.encode(b"abc ab").unwrap(), vec![5, 3, 4]);
    for cut in 0..BPE.len() {
        std::fs::write(&path, &BPE.as_bytes()[..cut]).unwrap();
        let err = Tokenizer::from_spec(path.to_str().unwrap()).unwrap_err().to_string();
        assert!(err.contains("not a Hugging Face tokenizer.json"), "cut at {cut}: {err}");
    }
}

/// The input the `tokenizer_input` fuzz target found: a syntax error inside
/// `decoder` (here a missing `:`), through the program.
#[test]
fn a_syntax_error_inside_the_decoder_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let tok = dir.path().join("tokenizer.json");
    let broken = BPE.replace(
        r#""decoder":{"type":"ByteLevel","add_prefix_space":"#,
        r#""decoder":{"type":"ByteLevel","add_prefix_space" "#,
    );
    assert_ne!(broken, BPE);
    std::fs::write(&tok, &broken).unwrap();
    let (model, _) = small_model(dir.path(), "m", small_config());
    let text = dir.path().join("t.txt");
    std::fs::write(&text, "abc ab").unwrap();
    let os = |s: &'static str| -> &'static OsStr { s.as_ref() };
    let (code, _, err) =
        run_brt(&[os("eval"), os("--model"), model.as_os_str(), text.as_os_str(), os("--tokenizer"), tok.as_os_str()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not a Hugging Face tokenizer.json: expected `:`"), "{err}");
}

/// The second input the fuzz target found: a string of `decoder` that is not
/// valid text (a byte that is not UTF-8; likewise a lone surrogate escape).
#[test]
fn an_invalid_escape_inside_the_decoder_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokenizer.json");
    let broken = BPE.replace(r#""decoder":{"type":"ByteLevel""#, r#""decoder":{"type":"Byte\udc00Level""#);
    assert_ne!(broken, BPE);
    std::fs::write(&path, &broken).unwrap();
    let err = Tokenizer::from_spec(path.to_str().unwrap()).unwrap_err().to_string();
    assert!(err.contains("not a Hugging Face tokenizer.json"), "{err}");
    // The fuzzer's own input: a byte that is not UTF-8 in that string.
    let raw = BPE.as_bytes().to_vec();
    let at = BPE.find(r#""decoder":{"type":"ByteLevel""#).unwrap() + r#""decoder":{"type":"ByteLevel"#.len();
    let broken = [&raw[..at], &[0xb5], &raw[at..]].concat();
    std::fs::write(&path, &broken).unwrap();
    let err = Tokenizer::from_spec(path.to_str().unwrap()).unwrap_err().to_string();
    assert!(err.contains("not a Hugging Face tokenizer.json"), "{err}");
}

/// The third input the fuzz target found: a merge whose result is not in the
/// vocabulary (here `abc` renamed), longer than every entry, made the
/// `tokenizers` crate index out of its buffer. Also a merge whose right side
/// lacks the subword prefix, which it would cut off unchecked.
#[test]
fn a_merge_outside_the_vocabulary_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokenizer.json");
    let broken = BPE.replace(r#""abc":5"#, r#""":5"#);
    assert_ne!(broken, BPE);
    std::fs::write(&path, &broken).unwrap();
    let err = Tokenizer::from_spec(path.to_str().unwrap()).unwrap_err().to_string();
    assert!(err.contains("the merge `ab c` needs `abc`, which is not in the vocabulary"), "{err}");

    // The same with no model `type` (the crate then tries BPE first).
    let broken = BPE.replace(r#""abc":5"#, r#""":5"#).replace(r#""type":"BPE","#, "");
    assert!(!broken.contains(r#""BPE""#));
    std::fs::write(&path, &broken).unwrap();
    let err = Tokenizer::from_spec(path.to_str().unwrap()).unwrap_err().to_string();
    assert!(err.contains("the merge `ab c` needs `abc`, which is not in the vocabulary"), "{err}");

    let broken = BPE.replace(r#""continuing_subword_prefix":null"#, r###""continuing_subword_prefix":"##""###);
    assert_ne!(broken, BPE);
    std::fs::write(&path, &broken).unwrap();
    let err = Tokenizer::from_spec(path.to_str().unwrap()).unwrap_err().to_string();
    assert!(err.contains("does not start with the subword prefix `##`"), "{err}");
}
