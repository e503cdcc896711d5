//! Bad input gets a clear error and a non-zero exit, never a panic.

mod common;

use brt::meliad::ImportOptions;
use brt::{load_model, ModelWeights};
use common::*;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

/// Runs `brt` and returns (exit code, stderr).
fn brt(args: &[&std::ffi::OsStr]) -> (i32, String) {
    let out = Command::new(brt_bin()).args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "brt panicked: {stderr}");
    (out.status.code().unwrap_or(-1), stderr)
}

fn os(s: &str) -> &std::ffi::OsStr {
    s.as_ref()
}

/// `brt info PATH` must fail with a message containing `expected`.
fn info_fails(path: &Path, expected: &str) {
    let (code, stderr) = brt(&[os("info"), path.as_os_str()]);
    assert_eq!(code, 1, "exit code for {}: {stderr}", path.display());
    assert!(stderr.contains(expected), "message for {} should mention `{expected}`: {stderr}", path.display());
}

fn checkpoint() -> Vec<u8> {
    std::fs::read(case_dir("fixed_skip").join("checkpoint_0")).unwrap()
}

fn load_bytes(bytes: &[u8], dir: &Path) -> Result<ModelWeights, String> {
    let path = dir.join("model");
    std::fs::write(&path, bytes).unwrap();
    load_model(&path, ImportOptions::default()).map_err(|e| e.to_string())
}

#[test]
fn truncated_checkpoints_are_rejected_at_every_offset() {
    let bytes = checkpoint();
    let dir = tempfile::tempdir().unwrap();
    let mut offsets: Vec<usize> = (0..64).chain((64..bytes.len()).step_by(211)).collect();
    offsets.push(bytes.len() - 1);
    for cut in offsets {
        assert!(load_bytes(&bytes[..cut], dir.path()).is_err(), "a checkpoint cut at byte {cut} was accepted");
    }
    let path = dir.path().join("cut");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    info_fails(&path, "truncated");
    std::fs::write(&path, b"").unwrap();
    info_fails(&path, "empty");
}

#[test]
fn corrupted_checkpoints_never_panic() {
    let bytes = checkpoint();
    let dir = tempfile::tempdir().unwrap();
    let mut rng = brt_core::init::SplitMix64::new(3);
    let mut rejected = 0;
    for _ in 0..300 {
        let mut bad = bytes.clone();
        for _ in 0..4 {
            let at = rng.next_u64() as usize % bad.len();
            bad[at] = rng.next_u64() as u8;
        }
        // Flipped bytes inside float data may leave a valid model; the point is
        // that nothing panics and structural damage is reported.
        rejected += load_bytes(&bad, dir.path()).is_err() as usize;
    }
    assert!(rejected > 0, "no corruption was noticed at all");
}

#[test]
fn missing_and_misshaped_official_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ckpt");
    // Rename a key in place (same length) so that the parameter goes missing. Keys
    // occur for the parameter and for its optimizer statistics: change all.
    let renamed = |from: &[u8], to: &[u8]| {
        let mut bytes = checkpoint();
        let found: Vec<usize> =
            bytes.windows(from.len()).enumerate().filter(|(_, w)| *w == from).map(|(i, _)| i).collect();
        assert!(!found.is_empty());
        for at in found {
            bytes[at..at + from.len()].copy_from_slice(to);
        }
        bytes
    };
    std::fs::write(&path, renamed(b"position_embeddings", b"position_embeddingx")).unwrap();
    info_fails(&path, "missing parameter `transformer2/recurrent_tbase/_kvq/position_embeddings`");
    std::fs::write(&path, renamed(b"gate_bias", b"gate_bixs")).unwrap();
    info_fails(&path, "no `gate_bias` or `input_gate`");
    // Shape byte of the final norm changed from 32 to 33: the data no longer fits.
    let mut bytes = checkpoint();
    let key = b"final_layernorm";
    let keys: Vec<usize> = bytes.windows(key.len()).enumerate().filter(|(_, w)| w == key).map(|(i, _)| i).collect();
    for at in keys {
        if let Some(p) = bytes[at..].windows(3).position(|w| w == [0x93, 0x91, 0x20]) {
            bytes[at + p + 2] = 0x21;
        }
    }
    std::fs::write(&path, &bytes).unwrap();
    info_fails(&path, "needs 132 bytes");
}

/// Rewrites brt weights with `edit` applied to the tensors and metadata.
fn rewrite(
    weights: &Path,
    out: &Path,
    edit: impl FnOnce(&mut Vec<(String, Dtype, Vec<usize>, Vec<u8>)>, &mut HashMap<String, String>),
) {
    let bytes = std::fs::read(weights).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
    let mut metadata = meta.metadata().clone().unwrap();
    let mut tensors: Vec<_> =
        st.iter().map(|(n, v)| (n.to_string(), v.dtype(), v.shape().to_vec(), v.data().to_vec())).collect();
    edit(&mut tensors, &mut metadata);
    let views: Vec<_> =
        tensors.iter().map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap())).collect();
    std::fs::write(out, safetensors::serialize(views, Some(metadata)).unwrap()).unwrap();
}

#[test]
fn bad_brt_weight_files() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.safetensors");
    let (code, err) = brt(&[os("convert"), case_dir("fixed_skip").join("checkpoint_0").as_os_str(), good.as_os_str()]);
    assert_eq!(code, 0, "{err}");
    let bad = dir.path().join("bad.safetensors");

    rewrite(&good, &bad, |t, _| t.retain(|(n, ..)| n != "layers.1.mlp_in"));
    info_fails(&bad, "missing tensor `layers.1.mlp_in`");

    rewrite(&good, &bad, |t, _| {
        let e = t.iter_mut().find(|(n, ..)| n == "final_norm").unwrap();
        e.2 = vec![16, 2];
    });
    info_fails(&bad, "tensor `final_norm` has shape [16, 2], expected [32]");

    rewrite(&good, &bad, |t, _| {
        let e = t.iter_mut().find(|(n, ..)| n == "layers.0.query").unwrap();
        e.3[0..4].copy_from_slice(&f32::NAN.to_le_bytes());
    });
    info_fails(&bad, "non-finite value");

    rewrite(&good, &bad, |_, m| {
        let c = m["config"].replace("\"d_model\":32", "\"d_model\":33");
        m.insert("config".into(), c);
    });
    info_fails(&bad, "has shape");

    rewrite(&good, &bad, |_, m| {
        let c = m["config"].replace("\"heads\":4", "\"heads\":0");
        m.insert("config".into(), c);
    });
    info_fails(&bad, "number of heads must be positive");

    rewrite(&good, &bad, |_, m| {
        let c = m["config"].replace("\"recurrent_layers\":[2]", "\"recurrent_layers\":[7]");
        m.insert("config".into(), c);
    });
    info_fails(&bad, "layer index out of range");

    rewrite(&good, &bad, |_, m| {
        m.insert("format_version".into(), "99".into());
    });
    info_fails(&bad, "format version 99");

    rewrite(&good, &bad, |t, _| {
        let e = t.iter_mut().find(|(n, ..)| n == "embed").unwrap();
        e.1 = Dtype::I32;
    });
    info_fails(&bad, "must be F32, F16 or BF16");

    info_fails(&dir.path().join("does-not-exist"), "No such file");
}

#[test]
fn bad_token_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let model = case_dir("fixed_skip").join("checkpoint_0");
    let input = dir.path().join("tokens.safetensors");
    let output = dir.path().join("out.safetensors");
    let logits = |input: &Path| {
        brt(&[
            os("logits"),
            os("--model"),
            model.as_os_str(),
            os("--input"),
            input.as_os_str(),
            os("--output"),
            output.as_os_str(),
        ])
    };

    write_tokens(&input, &[vec![5, 9, 260, 3]]);
    let (code, err) = logits(&input);
    assert_eq!(code, 1);
    assert!(err.contains("token id 260 (document 0, position 2) is not below the vocabulary size 260"), "{err}");
    assert!(!output.exists(), "no output is written when the input is bad");

    write_tokens(&input, &[vec![]]);
    let (code, err) = logits(&input);
    assert_eq!(code, 1);
    assert!(err.contains("empty input"), "{err}");

    let view = TensorView::new(Dtype::F32, vec![1, 2], &[0u8; 8]).unwrap();
    std::fs::write(&input, safetensors::serialize([("tokens", view)], None).unwrap()).unwrap();
    let (code, err) = logits(&input);
    assert_eq!(code, 1);
    assert!(err.contains("must be I32 or I64"), "{err}");

    let neg: Vec<u8> = (-1i32).to_le_bytes().to_vec();
    let view = TensorView::new(Dtype::I32, vec![1, 1], &neg).unwrap();
    std::fs::write(&input, safetensors::serialize([("tokens", view)], None).unwrap()).unwrap();
    let (code, err) = logits(&input);
    assert_eq!(code, 1);
    assert!(err.contains("negative"), "{err}");

    let (code, err) = logits(&dir.path().join("missing.safetensors"));
    assert_eq!(code, 1);
    assert!(err.contains("No such file"), "{err}");

    let (code, err) = brt(&[
        os("logits"),
        os("--model"),
        model.as_os_str(),
        os("--input"),
        input.as_os_str(),
        os("--output"),
        output.as_os_str(),
        os("--backend"),
        os("nope"),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown backend `nope`"), "{err}");

    let (code, err) = brt(&[os("convert"), model.as_os_str(), model.as_os_str()]);
    assert_eq!(code, 1);
    assert!(err.contains("same file"), "{err}");
}
