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

/// The end-of-sequence id comes from the tokenizer's special tokens (so that
/// `brt generate` stops there), and a tokenizer without one has none.
#[test]
fn the_end_of_sequence_comes_from_the_special_tokens() {
    use tokenizers::AddedToken;
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.json");
    word_tokenizer(&plain);
    assert_eq!(brt::tokenizer::Tokenizer::from_spec(plain.to_str().unwrap()).unwrap().eos(), None);

    let mut t = tokenizers::Tokenizer::from_file(&plain).unwrap();
    // "</s>" as plain added text is not an end of sequence; as a special token it is.
    t.add_special_tokens([AddedToken::from("<|im_end|>", true)]).unwrap();
    t.add_tokens([AddedToken::from("</s>", false)]).unwrap();
    let with = dir.path().join("with.json");
    t.save(&with, false).unwrap();
    let loaded = tokenizers::Tokenizer::from_file(&with).unwrap();
    let id = |s: &str| loaded.token_to_id(s).unwrap();
    let eos = brt::tokenizer::Tokenizer::from_spec(with.to_str().unwrap()).unwrap().eos();
    assert_eq!(eos, Some(id("<|im_end|>")));
    t.add_special_tokens([AddedToken::from("</s>", true)]).unwrap();
    t.save(&with, false).unwrap();
    let loaded = tokenizers::Tokenizer::from_file(&with).unwrap();
    let eos = brt::tokenizer::Tokenizer::from_spec(with.to_str().unwrap()).unwrap().eos();
    assert_eq!(eos, Some(loaded.token_to_id("</s>").unwrap()), "</s> comes first in the order");
}
