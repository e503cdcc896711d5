//! Whole-model gradients on the CPU backend: `brt::autodiff::Recorder<Cpu>` against
//! `Recorder<Reference>` (f64 math) through one training segment of the core's own
//! `Stream` (carried state and caches from a first segment, a reset in one row, a
//! segment that ends inside a block),
//! for several configuration variants, f32 and f16 storage, at the detected SIMD
//! level on one and two threads. Checks the logits and every parameter's gradient.
//! Then `brt::train::Trainer` on the CPU backend: a tiny model learns a verse by
//! heart, and a resumed run is bit-identical to an uninterrupted one.

use brt::autodiff::Recorder;
use brt::compare::largest_difference;
use brt::tokenizer::Tokenizer;
use brt::train::data::Corpus;
use brt::train::optim::{Decay, Schedule};
use brt::train::{TrainOptions, Trainer};
use brt_core::init::{initialize, SplitMix64};
use brt_core::{
    Config, GateKind, Gradients, LayerSet, Model, Plan, StateLayout, Storage, Stream, WeightData, WeightDtype,
    WeightLayout,
};
use brt_cpu::{Cpu, Heap, Options};

fn variants() -> Vec<(&'static str, Config)> {
    // Windows of 8 with blocks of 3 calls; widths that are not multiples of the
    // vector lanes.
    let base = Config { states: 5, ..Config::plain(37, 24, 2, 12, 40, 3, 8) };
    vec![
        ("plain", base),
        ("fixed/skip", Config { recurrent: LayerSet::EMPTY.with(1), ..base }),
        (
            "lstm/dual/feedback",
            Config {
                recurrent: LayerSet::EMPTY.with(1),
                gate: GateKind::Lstm,
                layout: StateLayout::Dual,
                feedback: true,
                ..base
            },
        ),
        (
            "lstm/single, two recurrent layers, abs scales",
            Config {
                recurrent: LayerSet::EMPTY.with(0).with(2),
                gate: GateKind::Lstm,
                layout: StateLayout::Single,
                abs_attention_scale: true,
                ..base
            },
        ),
        (
            "linear attention",
            Config { linear: LayerSet::EMPTY.with(0).with(2), recurrent: LayerSet::EMPTY.with(2), ..base },
        ),
    ]
}

/// Logits and parameter gradient of `direction . logits` of the second of two
/// segments, on backend `inner`.
fn gradient<K: Gradients>(config: &Config, dtype: WeightDtype, inner: K, seed: u64) -> (Vec<f32>, Vec<f32>)
where
    brt::Error: From<K::Error>,
{
    let layout = WeightLayout::new(config).unwrap();
    let mut flat = vec![0f32; layout.len()];
    initialize(config, seed, &mut flat).unwrap();
    let mut rng = SplitMix64::new(seed);
    for v in flat.iter_mut() {
        if *v == 1.0 {
            *v = (0.5 + 2.5 * rng.uniform()) as f32; // scales away from 1, like trained ones
        }
        // The values the storage type holds, so that both backends get the same.
        if dtype == WeightDtype::F16 {
            *v = brt_core::half::f16::from_f32(*v).to_f32();
        }
    }
    let mut k = Recorder::new(inner);
    let model = Model::from_flat(&mut k, config, dtype, WeightData::F32(&flat)).unwrap();
    let (batch, first, second) = (2, 16, 21);
    let mut stream = Stream::new(&mut k, &model, Plan::new(config, batch, second).unwrap()).unwrap();
    let ids = |n: usize, rng: &mut SplitMix64| {
        (0..n * batch).map(|_| (rng.next_u64() % config.vocab as u64) as u32).collect::<Vec<_>>()
    };
    let warm = ids(first, &mut rng);
    stream.forward(&mut k, &model, &warm, &[]).unwrap();
    let tokens = ids(second, &mut rng);
    let direction: Vec<f32> = (0..second * batch * config.vocab).map(|_| (rng.uniform() * 2.0 - 1.0) as f32).collect();
    k.start();
    stream.forward(&mut k, &model, &tokens, &[false, true]).unwrap();
    k.stop();
    let mut logits = vec![0f32; direction.len()];
    k.read_tensor(stream.logits(), 0, &mut logits).unwrap();
    k.backward(model.weights(), stream.logits(), 0, &direction).unwrap();
    let mut grad = vec![0f32; layout.len()];
    k.weight_gradient(model.weights(), &mut grad).unwrap();
    (logits, grad)
}

#[test]
fn recorder_on_cpu_matches_recorder_on_reference_for_every_variant() {
    for (i, (name, config)) in variants().into_iter().enumerate() {
        config.validate().unwrap();
        let layout = WeightLayout::new(&config).unwrap();
        for dtype in [WeightDtype::F32, WeightDtype::F16] {
            let seed = 70 + i as u64;
            let (ref_logits, ref_grad) = gradient(&config, dtype, brt_core::Reference::new(Heap), seed);
            let scale = ref_grad.iter().fold(0f32, |m, g| m.max(g.abs()));
            assert!(scale > 0.0, "{name}: no gradient at all");
            for threads in [1, 2] {
                let cpu = Cpu::with_options(Heap, Options { threads, max_head_dim: 64, ..Options::default() }).unwrap();
                let (logits, grad) = gradient(&config, dtype, cpu, seed);
                let what = format!("{name} {dtype:?} {threads} thread(s)");
                let logit_err = largest_difference(&logits, &ref_logits).value;
                assert!(logit_err < 2e-5, "{what}: logits differ by {logit_err:e}");
                // Every parameter tensor: its error against its own size, with a
                // floor of a thousandth of the largest gradient anywhere (tensors
                // whose gradient is almost zero carry only rounding).
                let mut worst = 0f32;
                for spec in layout.params() {
                    let span = spec.offset..spec.offset + spec.span.len();
                    let (a, e) = (&grad[span.clone()], &ref_grad[span]);
                    let size = e.iter().fold(0f32, |m, g| m.max(g.abs()));
                    let diff = largest_difference(a, e).value;
                    let err = diff / (size + 1e-3 * scale);
                    worst = worst.max(err);
                    assert!(
                        err < 1e-4,
                        "{what}: parameter {:?}: max diff {diff:e} against size {size:e} (largest gradient {scale:e})",
                        spec.param
                    );
                }
                println!("{what}: logits within {logit_err:.1e}, worst parameter gradient error {worst:.1e}");
            }
        }
    }
}

/// A folder of its own under the system's temporary folder, removed on drop.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("brt-cpu-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A tiny byte model, a verse, and the options of a run of `steps` steps.
fn tiny_run(dir: &std::path::Path, steps: u64) -> (brt::ModelWeights, Corpus, TrainOptions) {
    let config = Config { states: 4, recurrent: LayerSet::EMPTY.with(1), ..Config::plain(260, 32, 2, 16, 64, 2, 8) };
    let weights = brt::bench::random_model(&config, WeightDtype::F32, 11).unwrap();
    let file = dir.join("verse.txt");
    std::fs::write(&file, "Shall I compare thee to a summer's day? Thou art more lovely and more temperate.").unwrap();
    let corpus = Corpus::read(&[file], &Tokenizer::Bytes).unwrap();
    let options = TrainOptions {
        batch: 2,
        segment: 16,
        steps,
        schedule: Schedule { peak: 1e-2, floor: 1e-3, warmup: 10, total: steps, decay: Decay::Cosine },
        clip: 1.0,
        weight_decay: 0.0,
        seed: 7,
    };
    (weights, corpus, options)
}

fn two_threads() -> Cpu<Heap> {
    Cpu::with_options(Heap, Options { threads: 2, max_head_dim: 16, ..Options::default() }).unwrap()
}

#[test]
fn training_on_two_threads_learns_a_short_text_by_heart() {
    let dir = Scratch::new("learn");
    let steps = 400;
    let (weights, corpus, options) = tiny_run(&dir.0, steps);
    let mut trainer = Trainer::new(two_threads(), &weights, options).unwrap();
    let mut first = None;
    let mut last = 0.0;
    for _ in 0..steps {
        let report = trainer.step(&corpus).unwrap();
        first.get_or_insert(report.loss);
        last = report.loss;
    }
    let first = first.unwrap();
    println!("loss {first:.3} nats/token at step 1, {last:.4} at step {steps}");
    assert!(first > 4.0, "an untrained byte model is near ln(260) = 5.6 nats");
    assert!(last < 0.05, "the text is learnt by heart: loss {last}");
}

#[test]
fn a_resumed_run_on_two_threads_is_bit_identical() {
    // Parameter gradients summed over threads are summed in a fixed order, so a
    // run is reproducible for a given thread count.
    let dir = Scratch::new("resume");
    let (weights, corpus, options) = tiny_run(&dir.0, 8);
    let mut straight = Trainer::new(two_threads(), &weights, options.clone()).unwrap();
    for _ in 0..8 {
        straight.step(&corpus).unwrap();
    }
    let mut first_half = Trainer::new(two_threads(), &weights, options).unwrap();
    for _ in 0..5 {
        first_half.step(&corpus).unwrap();
    }
    let checkpoint = dir.0.join("run.ckpt");
    first_half.save_checkpoint(&checkpoint).unwrap();
    drop(first_half);
    let mut resumed = Trainer::resume(two_threads(), &checkpoint).unwrap();
    for _ in 0..3 {
        resumed.step(&corpus).unwrap();
    }
    assert_eq!(resumed.history, straight.history, "same losses, learning rates and norms");
    assert_eq!(resumed.weights().unwrap(), straight.weights().unwrap(), "bit-identical parameters");
}
