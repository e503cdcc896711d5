//! Whole models through the core's `Stream` on the GPU: every configuration
//! variant against the reference backend, the official Meliad test vectors, and
//! the promise that a running stream creates no GPU object after warm-up.

mod common;

use brt::compare::{largest_difference, Difference};
use brt::meliad::{import_file, ImportOptions};
use brt_core::init::{initialize, SplitMix64};
use brt_core::{
    Config, GateKind, Kernels, LayerSet, Model, Plan, Reference, StateLayout, Stream, WeightData, WeightDtype,
};
use brt_cpu::Heap;
use common::{assert_close, with_gpu};
use safetensors::SafeTensors;

/// Official-style initial weights, perturbed so that norm and attention scales
/// are not all 1 (which would hide mistakes in how they are applied).
fn weights_for(config: &Config, seed: u64) -> Vec<f32> {
    let len = brt_core::WeightLayout::new(config).unwrap().len();
    let mut flat = vec![0f32; len];
    initialize(config, seed, &mut flat).unwrap();
    let mut rng = SplitMix64::new(seed ^ 0x5eed);
    for v in &mut flat {
        *v = *v * (1.0 + 0.5 * rng.normal() as f32) + 0.05 * rng.normal() as f32;
    }
    flat
}

/// Calls of (tokens per row, resets) exercising partial blocks, block ends in the
/// middle of a call, and a reset of one row at a block boundary.
fn schedule(batch: usize) -> Vec<(usize, Vec<bool>)> {
    let mut one = vec![false; batch];
    one[batch - 1] = true;
    vec![(13, vec![true; batch]), (3, vec![]), (8, one), (5, vec![]), (1, vec![]), (2, vec![])]
}

/// Runs the schedule on `k` with the parameters stored as `dtype` (f32, f16 or
/// bf16: the reference gets the same rounded values) and returns the logits of
/// every call.
fn run<K: Kernels>(k: &mut K, config: &Config, dtype: WeightDtype, flat: &[f32], batch: usize) -> Vec<Vec<f32>> {
    let halves: Vec<brt_core::half::f16> = flat.iter().map(|&x| brt_core::half::f16::from_f32(x)).collect();
    let brains: Vec<brt_core::half::bf16> = flat.iter().map(|&x| brt_core::half::bf16::from_f32(x)).collect();
    let data = match dtype {
        WeightDtype::F16 => WeightData::F16(&halves),
        WeightDtype::Bf16 => WeightData::Bf16(&brains),
        _ => WeightData::F32(flat),
    };
    let model = Model::from_flat(k, config, dtype, data).unwrap();
    let plan = Plan::new(config, batch, 13).unwrap();
    let mut stream = Stream::new(k, &model, plan).unwrap();
    let mut rng = SplitMix64::new(99);
    let mut all = Vec::new();
    for (n, resets) in schedule(batch) {
        let tokens: Vec<u32> = (0..n * batch).map(|_| (rng.next_u64() % config.vocab as u64) as u32).collect();
        stream.forward(k, &model, &tokens, &resets).unwrap();
        let mut logits = vec![0f32; n * batch * config.vocab];
        stream.read_logits(k, &mut logits).unwrap();
        all.push(logits);
    }
    all
}

fn variants() -> Vec<(&'static str, Config)> {
    let base = Config::plain(37, 16, 2, 8, 24, 3, 8);
    let rec = |layers: &[i64]| LayerSet::from_indices(layers, 3).unwrap();
    vec![
        ("slide", base),
        ("fixed skip", Config { states: 4, recurrent: rec(&[1]), ..base }),
        (
            "lstm dual",
            Config { states: 5, recurrent: rec(&[-1]), gate: GateKind::Lstm, layout: StateLayout::Dual, ..base },
        ),
        ("fixed single", Config { states: 4, recurrent: rec(&[1]), layout: StateLayout::Single, ..base }),
        (
            "lstm skip feedback",
            Config { states: 4, recurrent: rec(&[1]), gate: GateKind::Lstm, feedback: true, ..base },
        ),
        (
            "linear layer, lstm single",
            Config {
                states: 3,
                recurrent: rec(&[2]),
                linear: rec(&[0]),
                gate: GateKind::Lstm,
                layout: StateLayout::Single,
                ..base
            },
        ),
        (
            "two recurrent layers, abs scales, dual feedback",
            Config {
                states: 4,
                recurrent: rec(&[0, 2]),
                layout: StateLayout::Dual,
                feedback: true,
                abs_attention_scale: true,
                ..base
            },
        ),
    ]
}

#[test]
fn every_configuration_matches_the_reference_stream() {
    for (name, config) in variants() {
        config.validate().unwrap();
        let flat = weights_for(&config, 7);
        for dtype in [WeightDtype::F32, WeightDtype::F16, WeightDtype::Bf16] {
            let want = run(&mut Reference::new(Heap), &config, dtype, &flat, 2);
            with_gpu(name, |k| {
                let got = run(k, &config, dtype, &flat, 2);
                let mut worst = 0f32;
                for (call, (g, w)) in got.iter().zip(&want).enumerate() {
                    worst = worst.max(assert_close(&format!("{name} {dtype:?} call {call}"), g, w, 5e-5, 1e-4));
                }
                println!("{name} {dtype:?}: worst |gpu - reference| = {worst:e}");
            });
        }
    }
}

fn testdata(case: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/meliad").join(case)
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

#[test]
fn meliad_test_vectors_match_the_official_logits() {
    for case in ["fixed_skip", "lstm_dual"] {
        let dir = testdata(case);
        if !dir.exists() {
            // The vectors live in the shared test data beside the repository.
            assert!(!brt_wgpu::testing::gpu_required(), "Meliad test vectors missing at {}", dir.display());
            eprintln!("SKIPPED meliad {case}: no test data at {}", dir.display());
            continue;
        }
        let w = import_file(&dir.join("checkpoint_0"), ImportOptions::default()).unwrap();
        let bytes = std::fs::read(dir.join("vectors.safetensors")).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let tokens: Vec<i32> = st
            .tensor("tokens")
            .unwrap()
            .data()
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let starts = st.tensor("start_of_sequence").unwrap().data().to_vec();
        let official = f32s(st.tensor("logits").unwrap().data());
        let (segments, batch, length, vocab) = (3, 2, 48, w.config().vocab);
        with_gpu(case, |k| {
            let model = Model::from_flat(k, w.config(), w.dtype(), w.buffer().data()).unwrap();
            let mut stream = Stream::new(k, &model, Plan::new(w.config(), batch, length).unwrap()).unwrap();
            for seg in 0..segments {
                let mut position_major = vec![0u32; length * batch];
                for b in 0..batch {
                    for t in 0..length {
                        position_major[t * batch + b] = tokens[(seg * batch + b) * length + t] as u32;
                    }
                }
                let resets: Vec<bool> = (0..batch).map(|b| starts[seg * batch + b] != 0).collect();
                stream.forward(k, &model, &position_major, &resets).unwrap();
                let mut ours = vec![0f32; length * batch * vocab];
                stream.read_logits(k, &mut ours).unwrap();
                let mut worst = Difference::NONE;
                for b in 0..batch {
                    for t in 0..length {
                        let theirs = &official[((seg * batch + b) * length + t) * vocab..][..vocab];
                        worst = worst.worse(largest_difference(&ours[(t * batch + b) * vocab..][..vocab], theirs));
                    }
                }
                println!("meliad {case} segment {seg}: max |gpu - official| = {:e}", worst.value);
                assert!(worst.within(1e-5), "meliad {case} segment {seg}: max abs error {:e} > 1e-5", worst.value);
            }
        });
    }
}

#[test]
fn a_long_stream_creates_nothing_after_warm_up_and_submits_once_per_step() {
    let config = Config {
        states: 4,
        recurrent: LayerSet::from_indices(&[1], 2).unwrap(),
        gate: GateKind::Lstm,
        ..Config::plain(29, 16, 2, 8, 24, 2, 8)
    };
    let flat = weights_for(&config, 3);
    with_gpu("no creation after warm-up", |k| {
        let model = Model::from_flat(k, &config, WeightDtype::F16, WeightData::F32(&flat)).unwrap();
        let batch = 2;
        let mut stream = Stream::new(k, &model, Plan::new(&config, batch, config.window).unwrap()).unwrap();
        let mut rng = SplitMix64::new(5);
        let mut logits = Vec::new();
        let mut step = |k: &mut brt_wgpu::Wgpu, stream: &mut Stream<brt_wgpu::Wgpu>, n: usize| {
            let tokens: Vec<u32> = (0..n * batch).map(|_| (rng.next_u64() % 29) as u32).collect();
            let before = k.counters().submissions;
            stream.forward(k, &model, &tokens, &[]).unwrap();
            // Recorded, not yet run: the whole step waits for the read.
            assert!(k.pending() > 0);
            assert_eq!(k.counters().submissions, before, "a forward call submitted work");
            logits.resize(n * batch * config.vocab, 0.0);
            stream.read_logits(k, &mut logits).unwrap();
            assert!(logits.iter().all(|x| x.is_finite()));
            assert_eq!(k.counters().submissions, before + 1, "one submission per step");
        };
        // Whole blocks per call, then token by token (generation).
        for n in [config.window, 1] {
            // Warm-up: one full cycle of positions in a block, twice.
            for _ in 0..2 * config.window / n {
                step(k, &mut stream, n);
            }
            let warm = k.counters();
            let steps = 300;
            for _ in 0..steps {
                step(k, &mut stream, n);
            }
            let after = k.counters();
            println!("{n} tokens per call, {steps} steps: warm {warm:?}\n after {after:?}");
            assert_eq!(after.buffers, warm.buffers, "buffers created after warm-up");
            assert_eq!(after.pipelines, warm.pipelines, "pipelines created after warm-up");
            assert_eq!(after.shader_modules, warm.shader_modules, "shaders compiled after warm-up");
            assert_eq!(after.bind_groups, warm.bind_groups, "bind groups created after warm-up");
            assert_eq!(after.layouts, warm.layouts, "layouts created after warm-up");
            assert_eq!(after.param_writes, warm.param_writes, "kernel parameters uploaded after warm-up");
            assert_eq!(after.submissions - warm.submissions, steps, "submissions per step");
            assert!(after.dispatches - warm.dispatches >= steps * 20, "the steps ran kernels");
        }
    });
}
