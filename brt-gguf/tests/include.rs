//! `include_model!` places a model file in the program aligned for in-place use.

use brt_core::{Config, WeightData, WeightLayout};
use brt_gguf::ModelFile;

static MODEL: &[u8] = brt_gguf::include_model!("data/plain.gguf");

fn config() -> Config {
    Config::plain(19, 8, 2, 3, 12, 2, 4)
}

/// The file's content: the writer's output for `config()` and these values.
fn expected() -> Vec<u8> {
    let n = WeightLayout::new(&config()).unwrap().len();
    let values: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
    brt_gguf::write(&config(), Some("plain"), WeightData::F32(&values)).unwrap()
}

#[test]
fn an_included_model_is_aligned_and_used_where_it_lies() {
    if std::env::var_os("BRT_WRITE_TEST_DATA").is_some() {
        std::fs::write(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/plain.gguf"), expected()).unwrap();
    }
    assert_eq!(MODEL, &expected()[..], "tests/data/plain.gguf is stale: rerun with BRT_WRITE_TEST_DATA=1");
    assert_eq!(MODEL.as_ptr() as usize % 32, 0);
    let file = ModelFile::parse(MODEL).unwrap();
    assert_eq!(file.config(), &config());
    assert_eq!(file.weight_bytes().as_ptr(), MODEL[file.data_offset()..].as_ptr());
}
