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

/// `brt generate` stops at the end-of-sequence token of a tokenizer.json: the
/// tokenizer is made so that its special `</s>` is the token the model writes
/// first (greedy, found with the `ids` tokenizer, which has no end of sequence).
#[test]
fn generation_stops_at_the_tokenizers_end_of_sequence() {
    use tokenizers::models::wordlevel::WordLevel;
    use tokenizers::pre_tokenizers::whitespace::Whitespace;
    use tokenizers::AddedToken;
    let dir = tempfile::tempdir().unwrap();
    let (model, _) = small_model(dir.path(), "m", small_config());
    let generate = |tokenizer: &OsStr, prompt: &str| {
        let args: [&OsStr; 13] = [
            "generate".as_ref(),
            "--model".as_ref(),
            model.as_os_str(),
            prompt.as_ref(),
            "--tokenizer".as_ref(),
            tokenizer,
            "--temperature".as_ref(),
            "0".as_ref(),
            "--max-tokens".as_ref(),
            "5".as_ref(),
            "--json".as_ref(),
            "--threads".as_ref(),
            "1".as_ref(),
        ];
        let (code, out, err) = run_brt(&args);
        assert_eq!(code, 0, "{err}");
        serde_json::from_slice::<serde_json::Value>(&out).unwrap()["results"][0].clone()
    };
    let free = generate("ids".as_ref(), "1 2");
    assert_eq!(free["finish"], "length");
    let first = free["tokens"][0].as_u64().unwrap() as u32;

    // Words w0.. for the ids below `first`; `</s>`, added last, gets id `first`.
    let vocab = (0..first).map(|i| (format!("w{i}"), i)).collect();
    let words = WordLevel::builder().vocab(vocab).unk_token("w0".into()).build().unwrap();
    let mut t = tokenizers::Tokenizer::new(words);
    t.with_pre_tokenizer(Some(Whitespace {}));
    t.add_special_tokens([AddedToken::from("</s>", true)]).unwrap();
    assert_eq!(t.token_to_id("</s>"), Some(first));
    let path = dir.path().join("tokenizer.json");
    t.save(&path, false).unwrap();
    let stopped = generate(path.as_os_str(), "w1 w2");
    assert_eq!(stopped["finish"], "end_of_sequence");
    assert_eq!(stopped["tokens"].as_array().unwrap().len(), 0, "nothing is written before the end of sequence");
}

/// `brt train --tokenizer tokenizer.json` trains a model whose vocabulary is the
/// tokenizer's; the model (and a model file converted from it) records the
/// tokenizer, and `eval` refuses to run it with another.
#[test]
fn training_with_a_tokenizer_json_records_it_and_eval_checks_it() {
    let dir = tempfile::tempdir().unwrap();
    let tok = dir.path().join("tokenizer.json");
    word_tokenizer(&tok);
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    for i in 0..4 {
        // "[UNK]" is id 0: a real token here, not padding.
        std::fs::write(data.join(format!("d{i}.txt")), "hello world brt [UNK] hello brt world ".repeat(6 + i)).unwrap();
    }
    let out = dir.path().join("run");
    let run = |args: &[&OsStr]| run_brt(args);
    let (code, _, err) = run(&[
        "train".as_ref(),
        "--data".as_ref(),
        data.as_os_str(),
        "--tokenizer".as_ref(),
        tok.as_os_str(),
        "--steps".as_ref(),
        "3".as_ref(),
        "--batch".as_ref(),
        "2".as_ref(),
        "--segment".as_ref(),
        "16".as_ref(),
        "--threads".as_ref(),
        "1".as_ref(),
        "--out".as_ref(),
        out.as_os_str(),
    ]);
    assert_eq!(code, 0, "{err}");
    let model = out.join("model.safetensors");
    let (code, info, err) = run(&["info".as_ref(), model.as_os_str()]);
    assert_eq!(code, 0, "{err}");
    let info = String::from_utf8(info).unwrap();
    assert!(info.contains("vocabulary        4"), "{info}");
    assert!(info.contains("trained with      tokenizer.json:"), "{info}");

    let text = data.join("d0.txt");
    let eval = |model: &std::path::Path, tokenizer: Option<&OsStr>| {
        let mut args: Vec<&OsStr> = vec!["eval".as_ref(), "--model".as_ref(), model.as_os_str(), text.as_os_str()];
        if let Some(t) = tokenizer {
            args.extend(["--tokenizer".as_ref(), t]);
        }
        run(&args)
    };
    let (code, _, err) = eval(&model, Some(tok.as_os_str()));
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = eval(&model, None);
    assert_eq!(code, 1);
    assert!(err.contains("trained with the tokenizer `tokenizer.json:"), "{err}");
    // The record survives a conversion to a model file.
    let file = dir.path().join("model.gguf");
    let (code, _, err) = run(&["convert".as_ref(), model.as_os_str(), file.as_os_str()]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = eval(&file, None);
    assert_eq!(code, 1);
    assert!(err.contains("pass --tokenizer"), "{err}");
    let (code, _, err) = eval(&file, Some(tok.as_os_str()));
    assert_eq!(code, 0, "{err}");
}
