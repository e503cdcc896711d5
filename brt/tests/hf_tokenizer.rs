//! Hugging Face tokenizer.json files (with the `hf` feature).
#![cfg(feature = "hf")]

mod common;

use common::*;
use std::ffi::OsStr;

/// A word-level tokenizer of a few words, written as tokenizer.json.
fn word_tokenizer(path: &std::path::Path) {
    use tokenizers::models::wordlevel::WordLevel;
    use tokenizers::pre_tokenizers::whitespace::Whitespace;
    let vocab = [("[UNK]", 0u32), ("hello", 1), ("world", 2), ("brt", 3)].map(|(w, i)| (w.to_string(), i)).into();
    let model = WordLevel::builder().vocab(vocab).unk_token("[UNK]".into()).build().unwrap();
    let mut tokenizer = tokenizers::Tokenizer::new(model);
    tokenizer.with_pre_tokenizer(Some(Whitespace {}));
    tokenizer.save(path, false).unwrap();
}

#[test]
fn eval_and_generate_with_a_tokenizer_json() {
    let dir = tempfile::tempdir().unwrap();
    let (model, _) = small_model(dir.path(), "m", small_config());
    let tok = dir.path().join("tokenizer.json");
    word_tokenizer(&tok);
    let text = dir.path().join("t.txt");
    std::fs::write(&text, "hello world\nhello brt\nworld").unwrap();
    let os = |s: &'static str| -> &'static OsStr { s.as_ref() };
    let (code, out, err) = run_brt(&[
        os("eval"),
        os("--model"),
        model.as_os_str(),
        text.as_os_str(),
        os("--tokenizer"),
        tok.as_os_str(),
        os("--json"),
    ]);
    assert_eq!(code, 0, "{err}");
    let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(json["models"][0]["files"][0]["tokens"], 5);
    let bin = dir.path().join("b.bin");
    std::fs::write(&bin, [0xff, 0xfe, b'h']).unwrap();
    let (code, _, err) =
        run_brt(&[os("eval"), os("--model"), model.as_os_str(), bin.as_os_str(), os("--tokenizer"), tok.as_os_str()]);
    assert_eq!(code, 1);
    assert!(err.contains("not UTF-8"), "{err}");
    let (code, _, err) = run_brt(&[
        os("generate"),
        os("--model"),
        model.as_os_str(),
        os("hello world"),
        os("--tokenizer"),
        tok.as_os_str(),
        os("--max-tokens"),
        os("3"),
    ]);
    assert_eq!(code, 0, "{err}");
    std::fs::write(&tok, "{ not json").unwrap();
    let (code, _, err) =
        run_brt(&[os("eval"), os("--model"), model.as_os_str(), text.as_os_str(), os("--tokenizer"), tok.as_os_str()]);
    assert_eq!(code, 1);
    assert!(err.contains("not a Hugging Face tokenizer.json"), "{err}");
}
