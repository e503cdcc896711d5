use brt::meliad::{import_file, ImportOptions};
use brt_core::{Model, Plan, Reference, Stream};
use brt_cpu::Heap;
use safetensors::SafeTensors;

#[test]
fn quick() {
    for case in ["fixed_skip", "lstm_dual"] {
        let dir = format!("{}/../../shared/testdata/meliad/{case}", env!("CARGO_MANIFEST_DIR"));
        let w = import_file(format!("{dir}/checkpoint_0").as_ref(), ImportOptions::default()).unwrap();
        println!("{:?}", w.config());
        let bytes = std::fs::read(format!("{dir}/vectors.safetensors")).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let tokens: Vec<i32> =
            st.tensor("tokens").unwrap().data().chunks(4).map(|c| i32::from_le_bytes(c.try_into().unwrap())).collect();
        let sos = st.tensor("start_of_sequence").unwrap().data().to_vec();
        let logits: Vec<f32> =
            st.tensor("logits").unwrap().data().chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
        let mut k = Reference::new(Heap);
        let model = Model::from_flat(&mut k, w.config(), w.dtype(), w.buffer().data()).unwrap();
        let plan = Plan::new(w.config(), 2, 48).unwrap();
        let mut stream = Stream::new(&mut k, &model, plan).unwrap();
        let v = 260;
        for seg in 0..3 {
            let mut tm = vec![0u32; 96];
            for b in 0..2 {
                for t in 0..48 {
                    tm[t * 2 + b] = tokens[(seg * 2 + b) * 48 + t] as u32;
                }
            }
            let resets = [sos[seg * 2] != 0, sos[seg * 2 + 1] != 0];
            stream.forward(&mut k, &model, &tm, &resets).unwrap();
            let mut out = vec![0f32; 96 * v];
            stream.read_logits(&mut k, &mut out).unwrap();
            let mut worst = 0f32;
            for b in 0..2 {
                for t in 0..48 {
                    for i in 0..v {
                        let ours = out[(t * 2 + b) * v + i];
                        let theirs = logits[((seg * 2 + b) * 48 + t) * v + i];
                        worst = worst.max((ours - theirs).abs());
                    }
                }
            }
            println!("{case} segment {seg}: max abs err {worst:e}");
        }
    }
}
