//! The official Meliad test vectors (the repository's `testdata/meliad/`) through the core's
//! `Stream` on the CPU backend, at every SIMD level and on two threads: logits of
//! three consecutive segments with a per-row document reset, max abs err <= 1e-4.

mod common;

use brt::compare::{largest_difference, Difference};
use brt::meliad::{import_file, ImportOptions};
use brt_core::{Model, Plan, Stream};
use common::*;
use safetensors::SafeTensors;
use std::path::PathBuf;

fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/meliad")
}

fn read_i32(st: &SafeTensors<'_>, name: &str) -> Vec<i32> {
    let t = st.tensor(name).unwrap();
    t.data().chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

fn read_f32(st: &SafeTensors<'_>, name: &str) -> Vec<f32> {
    let t = st.tensor(name).unwrap();
    t.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

#[test]
fn meliad_vectors_match_at_every_level() {
    let root = testdata();
    for case in ["fixed_skip", "lstm_dual"] {
        let dir = root.join(case);
        let weights = import_file(&dir.join("checkpoint_0"), ImportOptions::default()).unwrap();
        let config = *weights.config();
        let bytes = std::fs::read(dir.join("vectors.safetensors")).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let tokens = read_i32(&st, "tokens");
        let sos = st.tensor("start_of_sequence").unwrap().data().to_vec();
        let logits = read_f32(&st, "logits");
        let shape = st.tensor("tokens").unwrap().shape().to_vec();
        let (segments, batch, len) = (shape[0], shape[1], shape[2]);
        let v = config.vocab;
        for (name, mut k) in backends() {
            let model = Model::from_flat(&mut k, &config, weights.dtype(), weights.buffer().data()).unwrap();
            let mut stream = Stream::new(&mut k, &model, Plan::new(&config, batch, len).unwrap()).unwrap();
            let mut worst = Difference::NONE;
            for seg in 0..segments {
                let mut ids = vec![0u32; len * batch];
                for b in 0..batch {
                    for t in 0..len {
                        ids[t * batch + b] = tokens[(seg * batch + b) * len + t] as u32;
                    }
                }
                let resets: Vec<bool> = (0..batch).map(|b| sos[seg * batch + b] != 0).collect();
                stream.forward(&mut k, &model, &ids, &resets).unwrap();
                let mut out = vec![0f32; len * batch * v];
                stream.read_logits(&mut k, &mut out).unwrap();
                for b in 0..batch {
                    for t in 0..len {
                        let ours = &out[(t * batch + b) * v..][..v];
                        let theirs = &logits[((seg * batch + b) * len + t) * v..][..v];
                        worst = worst.worse(largest_difference(ours, theirs));
                    }
                }
            }
            println!("{case} on {name}: max abs err {:e}", worst.value);
            // What the README claims (about 1e-6; 1.3e-6 measured at worst).
            assert!(worst.within(1e-5), "{case} on {name}: max abs err {:e} > 1e-5", worst.value);
        }
    }
}
